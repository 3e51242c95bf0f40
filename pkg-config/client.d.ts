// Types of ants-coord/client (hand-written).
import type { Identity } from "./ants_coord.js";

export type Status = "connecting" | "live" | "verified" | "misbehaviour" | "closed";

export interface VerifiedEntry {
  type: "entry";
  topic: string;
  seq: number | bigint;
  relayTimeMs: number | bigint;
  opId: string;
  author: string;
  kind: string;
  counter: number | bigint;
  body: Uint8Array;
  /** The entry's canonical bytes. */
  bytes: Uint8Array;
}

export interface ReplicaEventItem {
  type: "replica";
  topic: string;
  /** A replica event (PROTOCOL.md section 6), tagged by `type`, e.g. "compensation". */
  event: { type: string; seq: number | bigint; kind?: string; [field: string]: unknown };
}

export interface VerifiedReceipt {
  topic: string;
  opId: string;
  seq: number | bigint;
  /** The relay's signed receipt (empty when the relay signs none). */
  receipt: Uint8Array;
}

export interface Misbehaviour {
  type: "misbehaviour";
  topic: string;
  /** Stable code: GAP, DUPLICATE, INVALID_ENTRY, AUTHOR_ORDER, ACKNOWLEDGED_OP_MISSING,
   * HEAD_MISMATCH, BAD_RECEIPT, BAD_SUBSCRIPTION, RELAY_KEY_CHANGED, or an evidence code. */
  code: string;
  detail: string;
  /** Canonical evidence bytes (PROTOCOL.md section 5), verifiable with the relay's key. */
  evidence: Uint8Array | null;
}

export interface ClientOptions {
  /** A WebSocket constructor (required in Node 20: e.g. `(await import("ws")).WebSocket`). */
  WebSocket?: new (url: string) => any;
  /** State from `exportState()` to resume from. */
  state?: Uint8Array;
  /** Resolve `connect` only once live (default true). */
  wait?: boolean;
  /** Reject `connect` with code CONNECT_TIMEOUT when not live within this time (default 10000). */
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  tickMs?: number;
}

export interface SubscribeOptions {
  /** First seq wanted (default 0). */
  from?: number;
  /** Keep a replica of the topic (default: when `from` is 0). */
  replica?: boolean;
  onEntry?: (entry: VerifiedEntry) => void;
  onEvent?: (event: ReplicaEventItem["event"], item: ReplicaEventItem) => void;
}

export interface Subscription extends AsyncIterable<VerifiedEntry | ReplicaEventItem> {
  readonly topic: string;
  /** Resolves (to the cursor) once entry `seq` is verified and applied to the replica. */
  delivered(seq: number | bigint): Promise<number>;
  /** Resolves (to the cursor) once every entry the relay had at subscription time is applied. */
  caughtUp(): Promise<number>;
  unsubscribe(): void;
}

export declare class RelayClient {
  static connect(url: string, identity: Identity, options?: ClientOptions): Promise<RelayClient>;
  readonly status: Status;
  readonly relayId: string | undefined;
  readonly agentId: string;
  ready(): Promise<void>;
  on(type: "status", handler: (status: Status) => void): () => void;
  on(type: "misbehaviour", handler: (event: Misbehaviour) => void): () => void;
  on(type: "error", handler: (error: Error & { code?: string }) => void): () => void;
  on(type: "acknowledged", handler: (receipt: VerifiedReceipt) => void): () => void;
  on(type: "verified", handler: (event: { topic: string; treeSize: number | bigint }) => void): () => void;
  on(
    type: "subscribed",
    handler: (event: { topic: string; fromSeq: number | bigint; head: number | bigint }) => void,
  ): () => void;
  onCompensation(kind: string, handler: (event: ReplicaEventItem["event"], topic: string) => void): () => void;
  subscribe(topic: string, options?: SubscribeOptions): Subscription;
  unsubscribe(topic: string): void;
  publish(topic: string, kind: string, body: Uint8Array | string): Promise<VerifiedReceipt>;
  requestCheckpoint(topic: string): void;
  cursor(topic: string): number | undefined;
  claimHolder(topic: string, resource: string): string | undefined;
  leader(topic: string, nowMs?: number): string | undefined;
  exportState(): Uint8Array;
  close(): void;
}

export declare function makeRelayClient(ants: unknown): typeof RelayClient;
