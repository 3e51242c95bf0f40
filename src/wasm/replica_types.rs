//! Hand-written TypeScript for the replica's plain objects (events, ops, config, queries).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const REPLICA_TYPES: &str = r#"
/** 64-bit integers are numbers up to `Number.MAX_SAFE_INTEGER`, BigInts above. */
export type U64 = number | bigint;

/** The rules of a topic (PROTOCOL.md 6.1). Every field is optional. */
export interface ReplicaConfig {
  /** Agent ids allowed to mint. */
  issuers?: string[];
  defaultLeaseMs?: U64;
  maxLeaseMs?: U64;
  recoveryDelayMs?: U64;
  /** Where slashed stakes go; default `burn`. */
  slashPolicy?: "burn" | "poster";
  electionWindowMs?: U64;
  electionMode?: "priority" | "weighted";
  /** Who may lead (fenced claims, `leader.act`). Weight defaults to 1. */
  candidates?: { agentId: string; weight?: U64 }[];
  /** Feed items kept (oldest dropped). */
  feedCapacity?: number;
}

/** The body of a replica op, as `ReplicaOp.encode` takes and `ReplicaOp.decode` gives it. */
export type ReplicaOpInput =
  | { kind: "post"; text: string }
  | { kind: "vouch"; subject: string; statement: string }
  | { kind: "claim"; resource: string; leaseMs?: U64; stake?: U64; fence?: U64 }
  | { kind: "claim.release"; resource: string }
  | { kind: "claim.complete"; resource: string }
  | { kind: "claim.fail"; resource: string }
  | { kind: "task.post"; task: string; reward?: U64; deadlineMs: U64 }
  | { kind: "mint"; to: string; amount: U64 }
  | { kind: "transfer"; to: string; amount: U64 }
  | { kind: "guardians.set"; guardians: string[] }
  | { kind: "recovery.request"; agent: string; newKey: string }
  | { kind: "recovery.approve"; agent: string; newKey: string }
  | { kind: "recovery.veto"; newKey: string }
  | { kind: "leader.act"; window: U64; payload?: Uint8Array };

/** Stable codes of `rejected` events. */
export type RejectCode =
  | "MALFORMED_BODY" | "KEY_ROTATED" | "INSUFFICIENT_BALANCE" | "NOT_ISSUER" | "SUPPLY_OVERFLOW"
  | "NOT_HOLDER" | "NOT_CLAIMED" | "NOT_POSTER" | "TASK_EXISTS" | "DEADLINE_PASSED"
  | "STALE_FENCE" | "NOT_LEADER" | "NO_CANDIDATES" | "SELF_GUARDIAN" | "NO_GUARDIANS"
  | "NOT_GUARDIAN" | "KEY_IN_USE" | "RECOVERY_SCHEDULED" | "NO_PENDING_RECOVERY"
  | "NOT_AUTHORIZED" | "CAPABILITY_EXPIRED" | "CAPABILITY_REVOKED" | "AUTHORITY_FULL";

/** What applying an entry caused (PROTOCOL.md 6.5). `seq` is the entry applied. */
export type ReplicaEvent =
  | { type: "rejected"; seq: U64; kind: string; code: RejectCode; reason: string }
  | { type: "recorded"; seq: U64; kind: string; author: string }
  | { type: "posted"; seq: U64; author: string; text: string }
  | { type: "vouched"; seq: U64; author: string; subject: string; statement: string }
  | { type: "minted"; seq: U64; to: string; amount: U64 }
  | { type: "transferred"; seq: U64; from: string; to: string; amount: U64 }
  | { type: "taskPosted"; seq: U64; task: string; poster: string; reward: U64; deadlineMs: U64 }
  | { type: "claimed"; seq: U64; resource: string; holder: string; stake: U64; leaseUntilMs: U64 }
  | { type: "claimRenewed"; seq: U64; resource: string; holder: string; leaseUntilMs: U64 }
  | {
      type: "compensation"; seq: U64; kind: string; resource: string; loser: string;
      winner: string; winningSeq: U64; losingSeq: U64; reason: "conflict" | "outbid";
      refunded: U64;
    }
  | { type: "released"; seq: U64; resource: string; holder: string; refunded: U64 }
  | { type: "leaseExpired"; seq: U64; resource: string; holder: string; refunded: U64 }
  | { type: "completed"; seq: U64; resource: string; holder: string; refunded: U64; reward: U64 }
  | {
      type: "failed"; seq: U64; resource: string; holder: string; slashed: U64;
      slashedTo: "burned" | "poster";
    }
  | {
      type: "taskExpired"; seq: U64; task: string; holder: string | null; slashed: U64;
      slashedTo: "burned" | "poster"; refunded: U64;
    }
  | { type: "guardiansSet"; seq: U64; agent: string; guardians: string[]; threshold: number }
  | { type: "recoveryRequested"; seq: U64; agent: string; newKey: string; approvals: number; threshold: number }
  | {
      type: "recoveryApproved"; seq: U64; agent: string; newKey: string; guardian: string;
      approvals: number; threshold: number;
    }
  | { type: "recoveryScheduled"; seq: U64; agent: string; newKey: string; effectiveAtMs: U64 }
  | { type: "recoveryVetoed"; seq: U64; agent: string; newKey: string }
  | { type: "recoveryCancelled"; seq: U64; agent: string; newKey: string; code: "KEY_IN_USE" }
  | { type: "keyRotated"; seq: U64; agent: string; oldKey: string; newKey: string }
  | { type: "leaderActed"; seq: U64; leader: string; window: U64; payload: string }
  | { type: "capabilityPresented"; seq: U64; agent: string; capability: string; expiresMs: U64 }
  | { type: "capabilityRevoked"; seq: U64; by: string; link: string }
  | { type: "topicPolicySet"; seq: U64; read: "public" | "private" };

/** A `compensation` event: the op of `kind` by `loser` lost `resource` to `winner`'s op. */
export type CompensationEvent = Extract<ReplicaEvent, { type: "compensation" }>;

/** A held claim. */
export interface ReplicaClaim {
  resource: string; holder: string; stake: U64; seq: U64; leaseUntilMs: U64;
}

/** Ledger totals: `circulating + escrowed === minted - burned` always. */
export interface ReplicaSupply {
  minted: U64; burned: U64; circulating: U64; escrowed: U64;
}

/** A feed item: a post, a vouch (`text` is the statement) or an op of another kind. */
export interface ReplicaFeedItem {
  seq: U64; author: string; kind: string; text?: string; subject?: string; opId?: string;
}

/** The answer of `electLeader` and `Replica.leader`. */
export interface LeaderElection {
  leader: string; window: U64; startsAtMs: U64; endsAtMs: U64; ranking: string[];
}
"#;
