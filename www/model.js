// The demo's views of one topic, read from the core's Replica (wasm, PROTOCOL.md section 6):
// every verified entry's bytes go to `Replica.apply`, and the task board, balances, escrow and
// key recovery are drawn from the events it returns and the state it answers. This file only
// sorts those events into lists for the page; it decides nothing itself.

export const WINDOW_MS = 10_000; // election window of the page's ranking
export const ACTIVE_MS = 30_000; // an agent is a candidate if it published this recently
export const STAKE = 10; // what a claim puts in escrow
export const REWARD = 5; // what a task's poster puts in escrow
export const TASK_MS = 45_000; // a task's deadline, from when it is posted
export const GRANT = 100; // what the faucet mints for a newcomer

const utf8 = new TextEncoder();

/**
 * The demo faucet: an issuer whose key every tab and agent derives from the topic name, so any
 * of them can mint coins for newcomers. Not a secret by design; a real deployment's issuer keeps
 * its key private. (FNV-1a expanded to 32 bytes: determinism is all that is needed here.)
 */
export function faucetSeed(topic) {
  const seed = new Uint8Array(32);
  for (let block = 0; block < 8; block++) {
    let h = 0x811c9dc5;
    for (const byte of utf8.encode(`ants-coord demo faucet ${block} ${topic}`)) {
      h ^= byte;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    new DataView(seed.buffer).setUint32(block * 4, h);
  }
  return seed;
}

/** The replica configuration every participant of the demo topic uses (same bytes, same state). */
export function demoConfig(faucetId) {
  return { issuers: [faucetId], slashPolicy: 'poster', recoveryDelayMs: 5000 };
}

/** The op inside an entry (PROTOCOL.md sections 3, 4): its bytes, claimed time and body. */
export function opOf(entryBytes) {
  const op = entryBytes.subarray(21);
  const view = new DataView(op.buffer, op.byteOffset, op.byteLength);
  let at = 1 + 32; // version, author
  at += 1 + op[at]; // topic
  at += 1 + op[at]; // kind
  const timeMs = Number(view.getBigUint64(at + 8)); // after the counter
  at += 16;
  at += 1 + 32 * op[at]; // deps
  const length = view.getUint32(at);
  return { bytes: op, timeMs, body: op.subarray(at + 4, at + 4 + length) };
}

export class Model {
  /** `pkg`: the ants-coord module; `faucet`: the faucet's agent id. */
  constructor(pkg, topic, faucet) {
    this.pkg = pkg;
    this.topic = topic;
    this.faucet = faucet;
    this.replica = new pkg.Replica(topic, demoConfig(faucet));
    this.entries = new Map(); // seq -> { kind, author }
    this.relayTime = 0;
    this.lastSeen = new Map(); // agent -> relay time of its last op
    this.agentOfKey = new Map(); // rotated key -> agent
    this.tasks = new Map(); // task -> { poster, reward, deadlineMs, state, holder, stake, claimedAt, conflicts, slashed }
    this.compensations = []; // the replica's compensation events
    this.ledger = []; // the replica's money events
    this.rejections = []; // the replica's rejected events
    this.recovery = new Map(); // agent -> { guardians, threshold, request, rotated: [] }
  }

  /** The agent a signing key acts for. */
  agentOf(key) {
    return this.agentOfKey.get(key) ?? key;
  }

  /** Applies the next verified entry (`{ seq, bytes, author, kind, relayTimeMs }`): the events. */
  apply(entry) {
    const seq = Number(entry.seq);
    if (seq < Number(this.replica.nextSeq)) return null; // already applied
    const events = this.replica.apply(entry.bytes);
    const t = Number(entry.relayTimeMs);
    this.relayTime = Math.max(this.relayTime, t);
    this.entries.set(seq, { kind: entry.kind, author: entry.author });
    const who = this.agentOf(entry.author);
    if (who !== this.faucet) this.lastSeen.set(who, t);
    for (const event of events) this.#fold(event, t);
    return events;
  }

  #fold(e, t) {
    const task = this.tasks.get(e.resource ?? e.task);
    switch (e.type) {
      case 'taskPosted':
        this.tasks.set(e.task, { poster: e.poster, reward: e.reward, deadlineMs: e.deadlineMs, state: 'open', holder: null, conflicts: [], slashed: 0 });
        this.ledger.push(e);
        break;
      case 'claimed':
        if (task) Object.assign(task, { state: 'claimed', holder: e.holder, stake: e.stake, claimedAt: t });
        this.ledger.push(e);
        break;
      case 'compensation':
        task?.conflicts.push({ ...e, atMs: t });
        this.compensations.push(e);
        if (e.reason === 'outbid') this.ledger.push(e);
        break;
      case 'completed':
        if (task) task.state = 'done';
        this.ledger.push(e);
        break;
      case 'failed':
      case 'released':
      case 'leaseExpired':
        if (task) Object.assign(task, { state: 'open', holder: null, slashed: task.slashed + (e.type === 'failed' ? 1 : 0) });
        this.ledger.push(e);
        break;
      case 'taskExpired':
        if (task) Object.assign(task, { state: 'expired', slashed: task.slashed + (e.slashed ? 1 : 0) });
        this.ledger.push(e);
        break;
      case 'minted':
      case 'transferred':
        this.ledger.push(e);
        break;
      case 'guardiansSet':
        this.recovery.set(e.agent, { guardians: e.guardians, threshold: e.threshold, request: null, rotated: this.recovery.get(e.agent)?.rotated ?? [] });
        break;
      case 'recoveryRequested':
      case 'recoveryApproved':
      case 'recoveryScheduled':
      case 'recoveryVetoed':
      case 'recoveryCancelled': {
        const r = this.recovery.get(e.agent);
        if (!r) break;
        if (e.type === 'recoveryRequested') r.request = { newKey: e.newKey, approvals: e.approvals, seq: e.seq };
        if (e.type === 'recoveryApproved' && r.request) r.request.approvals = e.approvals;
        if (e.type === 'recoveryScheduled' && r.request) r.request.effectiveAtMs = e.effectiveAtMs;
        if (e.type === 'recoveryVetoed' || e.type === 'recoveryCancelled') r.request = null;
        break;
      }
      case 'keyRotated': {
        this.agentOfKey.set(e.newKey, e.agent);
        const r = this.recovery.get(e.agent);
        if (r) { r.rotated.push(e); r.request = null; }
        break;
      }
      case 'rejected':
        this.rejections.push(e);
        break;
      default:
        break;
    }
  }

  /** Free balance of an agent, as the replica holds it. */
  balance(agent) {
    return Number(this.replica.balance(agent));
  }

  /** What an agent has in escrow: stakes of its claims and rewards of its open tasks. */
  escrowed(agent) {
    let held = 0;
    for (const task of this.tasks.values()) {
      if (task.state === 'claimed' && task.holder === agent) held += Number(task.stake);
      if ((task.state === 'open' || task.state === 'claimed') && task.poster === agent) held += Number(task.reward);
    }
    return held;
  }

  /** Every agent the ledger has seen, the faucet excluded. */
  agents() {
    const all = new Set(this.lastSeen.keys());
    for (const e of this.ledger) for (const id of [e.to, e.holder, e.poster]) if (id) all.add(id);
    all.delete(this.faucet);
    return [...all];
  }

  /** The election at relay time `t`: the agents active in the last ACTIVE_MS, ranked by the core. */
  ranking(t = this.relayTime) {
    const candidates = [...this.lastSeen].filter(([, seen]) => t - seen <= ACTIVE_MS).map(([agent]) => agent);
    if (!candidates.length) return [];
    const election = this.pkg.electLeader(candidates, this.topic, t, WINDOW_MS);
    const window = Math.floor(t / WINDOW_MS);
    return election.ranking.map((agent) => ({ agent, key: this.pkg.priority(agent, this.topic, window).slice(0, 8) }));
  }

  leader(t = this.relayTime) {
    return this.ranking(t)[0] ?? null;
  }
}
