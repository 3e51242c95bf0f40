//! Hand-written TypeScript for the plain objects the document bindings take and return.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const DOC_TYPES: &str = r#"
/** A value stored in a document map or array: JSON plus byte arrays. */
export type DocValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | DocValue[]
  | { [key: string]: DocValue };

/** `new Doc(options)`. */
export interface DocOptions {
  /** The Yjs client id (uint32) this replica stamps its edits with; random by default. */
  clientId?: number;
  /** Garbage-collect deleted content at the end of each transaction (default true). */
  gc?: boolean;
  /** Record local edits for `undo()`/`redo()` (default false: opt-in, as `Y.UndoManager`). */
  undo?: boolean;
}

/** One edit of `doc.applyEdits`: `[index, deleteCount, insertText]` (the automerge-paper trace
 * format) or an object. Indices count UTF-16 code units. */
export type TextEditInput =
  | [index: number, deleteCount: number, insert?: string]
  | { index: number; delete?: number; insert?: string };

/** What `doc.observe` reports after each transaction. */
export interface DocChange {
  /** `true` for edits made through this Doc (including undo/redo), `false` for applied updates. */
  local: boolean;
  /** The roots that changed. */
  roots: { name: string; kind: "text" | "map" | "array" | null }[];
  /** The transaction as a v1 update: send it to peers as is. */
  update: Uint8Array;
}

/** What `DocSync.receive` returns. */
export interface SyncOutcome {
  /** Messages to send back to the peer the message came from. */
  replies: Uint8Array[];
  /** Messages to send to the document's other peers. */
  broadcast: Uint8Array[];
  /** The v1 update that was applied, if any. */
  update?: Uint8Array;
  /** Awareness clients (Yjs client ids) that changed. */
  awareness: { added: number[]; updated: number[]; removed: number[] };
  /** Set when the peer refused us (y-protocols auth "permission denied"), with its reason. */
  permissionDenied?: string;
}
"#;
