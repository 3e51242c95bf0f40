// Types of ants-coord/client (hand-written).
import type { CompensationEvent, Identity, ReplicaConfig, ReplicaEvent } from "./ants_coord.js";

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
  event: ReplicaEvent;
}

export interface VerifiedReceipt {
  topic: string;
  opId: string;
  seq: number | bigint;
  /** The relay's signed receipt (never empty: every receipt is signed, PROTOCOL.md 5.3). */
  receipt: Uint8Array;
}

export interface Misbehaviour {
  type: "misbehaviour";
  topic: string;
  /** Stable code: GAP, DUPLICATE, INVALID_ENTRY, AUTHOR_ORDER, ACKNOWLEDGED_OP_MISSING,
   * HEAD_MISMATCH, BAD_RECEIPT, BAD_SUBSCRIPTION, RELAY_KEY_CHANGED, EVENT_MISMATCH,
   * UNAUTHORIZED_ENTRY, or an evidence code. */
  code: string;
  /** What happened, as a sentence for people (not stable: match on `code`). */
  detail: string;
  /** Canonical evidence bytes (PROTOCOL.md section 5), verifiable with the relay's key. */
  evidence: Uint8Array | null;
}

export interface ClientOptions {
  /** A WebSocket constructor (required in Node 20: e.g. `(await import("ws")).WebSocket`). */
  WebSocket?: new (url: string) => unknown;
  /** State from `exportState()` to resume from (a Uint8Array or its ArrayBuffer). */
  state?: Uint8Array | ArrayBuffer;
  /** Resolve `connect` only once live (default true). */
  wait?: boolean;
  /** Reject `connect` with code CONNECT_TIMEOUT when not live within this time (default 10000). */
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  tickMs?: number;
  /** How long a publish may wait for its receipt, retries included, before its promise rejects
   * (default 60000). */
  publishTimeoutMs?: number;
  /**
   * With several frontends of one relay: the order they are tried in. `"shuffled"` (default)
   * spreads clients over the frontends; `"listed"` tries them in the order given.
   */
  frontendOrder?: "shuffled" | "listed";
  /**
   * Capabilities (the bytes `Capability.grant` / `Capability.delegate` return) this client
   * holds, at most 16: sent to the relay on the WebSocket URL (`?cap=<hex>`) to read and write
   * owned topics (README "Private topics"). Each is decoded at once: bytes that are not a valid
   * chain reject `connect` with `Capability.decode`'s code, more than 16 with `LIMIT_EXCEEDED`.
   */
  capabilities?: Uint8Array[];
}

/** The client moved to another frontend of its relay (a lost connection or a failed connect). */
export interface Failover {
  /** The frontend it left. */
  from: string | URL;
  /** The frontend it connects to now (`client.url`). */
  to: string | URL;
}

/** A publish refused with a retryable code; the same bytes are sent again at `retryAtMs`. */
export interface PublishRetry {
  topic: string;
  opId: string;
  /** RATE_LIMITED or UNAVAILABLE. */
  code: string;
  message: string;
  /** How many retryable refusals the op has had. */
  attempt: number;
  /** When it is sent again (Date.now() clock). */
  retryAtMs: number;
}

/** The error a publish rejects with after `publishTimeoutMs`: the op's id and signed bytes. */
export interface PublishTimeoutError extends Error {
  code: string;
  opId: string;
  /** The signed op: `publishSigned(op)` later is safe. */
  op: Uint8Array;
}

/** A receipt of ours proven included in a later signed head of its topic. */
export interface ReceiptAudit {
  type: "receiptAudited";
  topic: string;
  opId: string;
  seq: number | bigint;
  treeSize: number | bigint;
}

/** A replica event the relay pushed to this client (e.g. a compensation for a lost claim). */
export interface PushedEvent {
  topic: string;
  seq: number | bigint;
  event: ReplicaEventItem["event"];
}

export interface SubscribeOptions {
  /** First seq wanted (default 0). A topic the client already follows continues from the
   * client's cursor, with its first `replica`/`config`: `unsubscribe` it first to start over. */
  from?: number;
  /** Keep a replica of the topic (default: when `from` is 0). Only from seq 0: `replica: true`
   * with another `from` is `BAD_INPUT`. */
  replica?: boolean;
  /** The replica's config (issuers, election candidates, leases…): the same for every
   * participant of the topic. Default: no issuers, no candidates. */
  config?: ReplicaConfig | Uint8Array;
  onEntry?: (entry: VerifiedEntry) => void;
  onEvent?: (event: ReplicaEventItem["event"], item: ReplicaEventItem) => void;
  /** Bound of the iterator's queue, in bytes (default 16 MiB; `Infinity`: none). An iterator that
   * falls this far behind pauses the topic on the relay until it has read half of it; one not
   * yet iterated drops its queue past it, and iterating it then throws `LIMIT_EXCEEDED`. */
  maxQueuedBytes?: number;
}

export interface Subscription extends AsyncIterable<VerifiedEntry | ReplicaEventItem> {
  readonly topic: string;
  /** Resolves (to the cursor) once entry `seq` is verified and applied to the replica; also
   * after the iterator was left, until the subscription ends (then it rejects `CLOSED`). */
  delivered(seq: number | bigint): Promise<number>;
  /** Resolves (to the cursor) once every entry the relay had at subscription time is applied. */
  caughtUp(): Promise<number>;
  /** True while the iterator is `maxQueuedBytes` behind and the topic is paused on the relay. */
  readonly paused: boolean;
  /** Bytes (roughly) of the items waiting to be read from the iterator. */
  readonly queuedBytes: number;
  /** Set when the relay refused this subscription or ended it (`NOT_AUTHORIZED`,
   * `NOT_AUTHENTICATED`, `CAPABILITY_EXPIRED` when the capability that let it read an owned
   * topic expired): the `delivered`/`caughtUp` waits pending then reject with it, and the client
   * emits it as `"error"` (with `topic`). The subscription stays: the next connection (e.g.
   * after `addCapability`) subscribes again from the cursor, and the relay's answer clears it. */
  readonly error: (Error & { code: string; topic: string }) | undefined;
  /** Stops following the topic, if this is still the topic's subscription (a subscription that
   * a second `subscribe` replaced has already ended and changes nothing). */
  unsubscribe(): void;
}

export declare class RelayClient {
  /** Clients come from `connect` only (`new RelayClient` throws `BAD_INPUT`). */
  private constructor();
  /**
   * Connects to one relay. `url` may list several **frontends of that one relay** (cluster
   * mode: one relay key, one log, README "Cluster mode"): the client uses one at a time (see
   * `frontendOrder`) and, when its connection is lost or a connect fails, moves to the next with
   * its usual backoff, resuming every subscription from its cursor and re-sending unacknowledged
   * ops with the same bytes. Every frontend must prove the relay key pinned on first contact:
   * another key is `RELAY_KEY_CHANGED` misbehaviour. This is not `RelayGroup`, which follows
   * *independent* relays (each its own key and log) and compares them.
   *
   * Rejects `BAD_INPUT` for arguments or options of the wrong type (an empty array, a url that
   * is neither a string nor a URL).
   */
  static connect(
    url: string | URL | ReadonlyArray<string | URL>,
    identity: Identity,
    options?: ClientOptions,
  ): Promise<RelayClient>;
  /** The frontend in use: the one connected to, or being tried (one of the urls `connect` took). */
  readonly url: string | URL;
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
  on(type: "retrying", handler: (event: PublishRetry) => void): () => void;
  on(type: "audited", handler: (event: ReceiptAudit) => void): () => void;
  on(type: "event", handler: (event: PushedEvent) => void): () => void;
  /** The client moved to another of its relay's frontends. */
  on(type: "failover", handler: (event: Failover) => void): () => void;
  /**
   * Adds a capability (its bytes) to those sent to the relay: a live client reconnects to the
   * same frontend so the relay sees it, resuming every subscription from its cursor (a refused
   * subscription to an owned topic then works; `await client.ready()` for the new connection).
   * Returns false, changing nothing, when the client holds it already. Throws `BAD_INPUT` (not
   * bytes) or `Capability.decode`'s code, and `LIMIT_EXCEEDED` past 16 capabilities.
   */
  addCapability(capability: Uint8Array): boolean;
  /**
   * Calls `handler` for each compensation of an op of `kind` (e.g. "claim") that **this agent**
   * lost (`event.loser === agentId`): from the topic's replica, or pushed by the relay for a
   * topic followed without a replica (or not followed). `{ all: true }`: every agent's losses.
   * Returns a function that removes the handler. Throws `BAD_INPUT` for arguments of the wrong
   * type or an unknown option.
   */
  onCompensation(
    kind: string,
    handler: (event: CompensationEvent, topic: string) => void,
    options?: { all?: boolean },
  ): () => void;
  subscribe(topic: string, options?: SubscribeOptions): Subscription;
  unsubscribe(topic: string): void;
  /**
   * Publishes an op; resolves to its verified receipt. Throws `BAD_INPUT`, signing nothing, for
   * a replica kind (`post`, `claim`, …) whose body is not built with `ReplicaOp`, or a
   * `doc.update` whose body is not a document update; other kinds take any body.
   */
  publish(topic: string, kind: string, body: Uint8Array | ArrayBuffer | string): Promise<VerifiedReceipt>;
  /** Publishes like `publish`, also returning the signed op's bytes (for `publishSigned`). */
  publishOp(topic: string, kind: string, body: Uint8Array | ArrayBuffer | string): { op: Uint8Array; receipt: Promise<VerifiedReceipt> };
  /** Publishes an op this identity signed elsewhere (e.g. `publishOp` on another relay). */
  publishSigned(op: Uint8Array | ArrayBuffer): Promise<VerifiedReceipt>;
  /** Gossip body of the latest head of `topic` this client verified. */
  gossip(topic: string): Uint8Array | undefined;
  /** Takes checkpoint gossip seen anywhere; true when it concerned this relay and a followed
   * topic or one this client holds receipts of (they are audited against it). */
  receiveGossip(gossip: Uint8Array): boolean;
  /** Asks for the topic's signed checkpoint: it is checked against the client's tree of the
   * topic (if followed) and every kept receipt of the topic is audited against it. */
  requestCheckpoint(topic: string): void;
  cursor(topic: string): number | undefined;
  claimHolder(topic: string, resource: string): string | undefined;
  leader(topic: string, nowMs?: number): string | undefined;
  exportState(): Uint8Array;
  close(): void;
}

export declare function makeRelayClient(ants: unknown): typeof RelayClient;

/** The clients' options, except `state` and `wait`, which the group sets per relay. */
export interface GroupOptions extends Omit<ClientOptions, "state" | "wait"> {
  /**
   * Relays that must be live before `connect` resolves (default: a majority); the others keep
   * reconnecting. `connectTimeoutMs` bounds the wait.
   */
  minLive?: number;
  /** How long an op may be missing from one relay after another had it (default 30000 ms). */
  deadlineMs?: number;
  /** How often verified heads are requested and gossiped through the other relays (default 10000 ms). */
  gossipMs?: number;
  /** One `exportState()` per relay, in url order, to resume from. */
  states?: Uint8Array[];
}

/** A misbehaviour of the group: a relay's own report (with `relay`), or NOT_ON_ALL_RELAYS. */
export type GroupMisbehaviour = (Misbehaviour & { relay: string }) | {
  type: "misbehaviour";
  code: "NOT_ON_ALL_RELAYS";
  topic: string;
  opId: string;
  /** The relay that has not shown the op. */
  relay: string;
  /** That relay's client status when reported: "connecting" means it is out of reach. */
  status: Status;
  /** A relay that acknowledged or showed it. */
  seenOn: string;
  detail: string;
};

/** One topic followed on several relays, compared by op id, with checkpoint gossip. */
export declare class RelayGroup {
  static connect(urls: string[], identity: Identity, options?: GroupOptions): Promise<RelayGroup>;
  readonly urls: string[];
  readonly clients: RelayClient[];
  on(type: "misbehaviour", handler: (event: GroupMisbehaviour) => void): () => void;
  on(type: "error", handler: (error: Error & { code?: string }) => void): () => void;
  on(type: "status", handler: (event: { relay: string; status: Status }) => void): () => void;
  subscribe(topic: string, options?: { onEntry?: (entry: VerifiedEntry & { relay: string }) => void; expectAll?: boolean; from?: number; config?: SubscribeOptions["config"] }): void;
  /** Publishes one signed op to every relay; resolves to the receipts in url order. */
  publish(topic: string, kind: string, body: Uint8Array | string): Promise<VerifiedReceipt[]>;
  exportStates(): Uint8Array[];
  close(): void;
}

export declare function makeRelayGroup(ants: unknown, client: typeof RelayClient): typeof RelayGroup;
