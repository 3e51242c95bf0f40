//! Hand-written TypeScript for the plain objects that cross the boundary (wasm-bindgen's
//! generated `.d.ts` covers the classes and functions and refers to these names).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const PLAIN_OBJECTS: &str = r#"
declare global {
  /**
   * `Symbol.dispose` (explicit resource management): every class of this package has
   * `[Symbol.dispose]()`, the same as `free()`, so `using x = new Doc()` frees it at the end of
   * the block. Declared here as TypeScript's `esnext.disposable` lib declares it, so that the
   * types check with `lib: ["es2022", "dom"]` too. At run time the method exists where the
   * runtime has `Symbol.dispose`.
   */
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

/** What `signOp` signs. Unknown fields are refused (`BAD_INPUT`). */
export interface OpDraft {
  /** The topic (log) the op is published to: 1..=128 bytes of UTF-8, no control characters. */
  topic: string;
  /** The op kind: 1..=64 characters of `[a-z0-9._-]`, starting with a letter. */
  kind: string;
  /** The author's own counter in this topic: a safe integer number or a BigInt below 2^64. */
  counter: number | bigint;
  /** The kind-specific payload, at most 256 KiB. */
  body: Uint8Array;
  /** Ids (64 lowercase hex) of ops that must come first; at most 16; sorted and de-duplicated. */
  deps?: string[];
  /** The author's claimed time in ms since the Unix epoch; defaults to `Date.now()`. */
  timeMs?: number | bigint;
}

/** A decoded, verified op. 64-bit integers are numbers when at most
 * `Number.MAX_SAFE_INTEGER`, BigInts otherwise. */
export interface DecodedOp {
  /** The op id: SHA-256 of the signed bytes, 64 lowercase hex. */
  id: string;
  /** The op format version (1). */
  version: number;
  /** The author's agent id (64 lowercase hex). */
  author: string;
  topic: string;
  kind: string;
  counter: number | bigint;
  timeMs: number | bigint;
  /** Op ids, ascending. */
  deps: string[];
  body: Uint8Array;
  /** The 64-byte Ed25519 signature over `ants-coord/op/v1\0 ‖ op bytes before it`. */
  signature: Uint8Array;
}

/** Every error thrown by ants-coord: a real `Error` with a stable `code`
 * (`BAD_INPUT`, `BAD_LENGTH`, `BAD_PUBLIC_KEY`, `BAD_SIGNATURE`, `MALFORMED`, ...). */
export interface AntsCoordError extends Error {
  name: "AntsCoordError";
  code: string;
}
"#;
