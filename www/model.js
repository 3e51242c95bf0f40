// The demo's state, derived from the ordered feed alone: every view (feed, election, task board,
// escrow, shared text, recovery) is a pure function of the entries in sequence order and their
// relay times, so every tab and every agent that saw the same entries shows the same thing.
// (The package's Replica computes the same patterns natively; this file is the page's readable
// stand-in while its wasm bindings land.)

export const WINDOW_MS = 10_000; // election window
export const ACTIVE_MS = 30_000; // an agent is a candidate if it published this recently
export const CLAIM_TTL_MS = 20_000; // a claimed task not done by then is slashed
export const START_BALANCE = 100;
export const STAKE = 10;

const text = new TextDecoder();

/** FNV-1a over a string: the election's ranking key (deterministic, not security-relevant). */
export function rankKey(window, agent) {
  let h = 0x811c9dc5;
  for (const ch of `${window}:${agent}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The body of an op as JSON (the demo's kinds carry JSON); `{ text }` otherwise. */
export function bodyOf(op) {
  const raw = op.body instanceof Uint8Array || Array.isArray(op.body) ? text.decode(Uint8Array.from(op.body)) : String(op.body ?? '');
  try {
    return JSON.parse(raw);
  } catch {
    return { text: raw };
  }
}

export class Model {
  /**
   * `core`, when given, is the ants-coord module: its `electLeader` and `priority` (the
   * replica's election, PROTOCOL.md section 6.3) rank the candidates; without them a small FNV
   * ranking stands in. Every view of one topic must use the same choice.
   */
  constructor({ topic = 'demo', core = null } = {}) {
    this.topic = topic;
    this.core = core?.electLeader && core?.priority ? core : null;
    this.entries = new Map(); // seq -> entry
    this.next = 0;
    this.lastSeen = new Map(); // agent -> relay time of its last op
    this.balances = new Map();
    this.escrow = new Map(); // task -> { agent, amount }
    this.tasks = new Map(); // task -> { title, opener, holder, claimSeq, claimTime, state, conflicts: [] }
    this.compensations = []; // { seq, task, loser, winner, refund }
    this.ledger = []; // { seq, what, who, amount }
    this.doc = '';
    this.recovery = { guardians: [], threshold: 0, owner: null, requests: new Map(), rotated: [] };
    this.relayTime = 0;
    this.alarms = [];
  }

  balance(agent) {
    if (!this.balances.has(agent)) this.balances.set(agent, START_BALANCE);
    return this.balances.get(agent);
  }

  #move(agent, delta) {
    this.balances.set(agent, this.balance(agent) + delta);
  }

  /** Applies one verified entry; entries must arrive in sequence order (duplicates ignored). */
  apply(entry) {
    if (this.entries.has(entry.seq)) return false;
    this.entries.set(entry.seq, entry);
    this.next = Math.max(this.next, entry.seq + 1);
    const { op, seq, relayTimeMs: t } = entry;
    this.relayTime = Math.max(this.relayTime, t);
    this.#expireClaims(t);
    const who = op.author;
    this.lastSeen.set(who, t);
    this.balance(who);
    const b = bodyOf(op);
    switch (op.kind) {
      case 'task.open':
        if (!this.tasks.has(b.task)) this.tasks.set(b.task, { title: b.title ?? b.task, opener: who, reward: b.reward ?? 5, holder: null, state: 'open', conflicts: [] });
        break;
      case 'task.claim': {
        const task = this.tasks.get(b.task);
        if (!task) break;
        if (task.holder === null && task.state === 'open') {
          task.holder = who;
          task.claimSeq = seq;
          task.claimTime = t;
          task.state = 'claimed';
          this.#move(who, -STAKE);
          this.escrow.set(b.task, { agent: who, amount: STAKE });
          this.ledger.push({ seq, what: 'stake', who, amount: STAKE, task: b.task });
        } else {
          // Optimistic claim lost: the loser's stake was never taken, its work is rolled back.
          const c = { seq, task: b.task, loser: who, winner: task.holder ?? task.doneBy, winnerSeq: task.claimSeq, refund: STAKE };
          task.conflicts.push(c);
          this.compensations.push(c);
        }
        break;
      }
      case 'task.done': {
        const task = this.tasks.get(b.task);
        if (!task || task.holder !== who || task.state !== 'claimed') break;
        task.state = 'done';
        task.doneBy = who;
        const held = this.escrow.get(b.task);
        this.escrow.delete(b.task);
        this.#move(who, held.amount + task.reward);
        this.#move(task.opener, -task.reward);
        this.ledger.push({ seq, what: 'reward', who, amount: task.reward, task: b.task });
        break;
      }
      case 'override': {
        // The current leader may reverse a slash: the slashed stake goes back.
        const slash = this.ledger.find((l) => l.what === 'slash' && l.task === b.task && !l.overridden);
        if (!slash || this.leader(t)?.agent !== who) break;
        slash.overridden = true;
        this.#move(slash.who, slash.amount);
        this.#move(slash.to, -slash.amount);
        this.ledger.push({ seq, what: 'override', who: slash.who, amount: slash.amount, task: b.task, by: who });
        break;
      }
      case 'doc.insert': {
        const pos = Math.max(0, Math.min(this.doc.length, b.pos | 0));
        this.doc = this.doc.slice(0, pos) + String(b.text ?? '') + this.doc.slice(pos);
        break;
      }
      case 'doc.delete': {
        const pos = Math.max(0, Math.min(this.doc.length, b.pos | 0));
        this.doc = this.doc.slice(0, pos) + this.doc.slice(pos + Math.max(0, b.len | 0));
        break;
      }
      case 'recovery.guardians':
        this.recovery = { guardians: b.guardians ?? [], threshold: b.threshold ?? 2, owner: who, requests: new Map(), rotated: this.recovery.rotated };
        break;
      case 'recovery.request':
        if (b.old === this.recovery.owner) this.recovery.requests.set(who, { old: b.old, approvals: new Set(), seq });
        break;
      case 'recovery.approve': {
        const request = this.recovery.requests.get(b.new);
        if (!request || !this.recovery.guardians.includes(who)) break;
        request.approvals.add(who);
        if (request.approvals.size >= this.recovery.threshold && !request.done) {
          request.done = seq;
          this.recovery.rotated.push({ old: request.old, new: b.new, seq });
          // The new key inherits the old key's balance.
          this.#move(b.new, this.balance(request.old));
          this.balances.set(request.old, 0);
        }
        break;
      }
      default:
        break;
    }
    return true;
  }

  #expireClaims(now) {
    for (const [id, task] of this.tasks) {
      if (task.state === 'claimed' && now - task.claimTime > CLAIM_TTL_MS) {
        task.state = 'slashed';
        const held = this.escrow.get(id);
        this.escrow.delete(id);
        this.#move(task.opener, held.amount);
        this.ledger.push({ seq: null, what: 'slash', who: task.holder, to: task.opener, amount: held.amount, task: id });
        task.holder = null;
        task.state = 'open'; // back on the board
        task.slashed = (task.slashed ?? 0) + 1;
      }
    }
  }

  /** The election at relay time `t`: candidates active in the last ACTIVE_MS, ranked. */
  ranking(t = this.relayTime) {
    const window = Math.floor(t / WINDOW_MS);
    const candidates = [...this.lastSeen].filter(([, seen]) => t - seen <= ACTIVE_MS).map(([agent]) => agent);
    if (this.core && candidates.length) {
      const election = this.core.electLeader(candidates, this.topic, t, WINDOW_MS);
      return election.ranking.map((agent) => ({ agent, key: this.core.priority(agent, this.topic, window).slice(0, 8) }));
    }
    return candidates
      .map((agent) => ({ agent, key: rankKey(window, agent).toString(16).padStart(8, '0') }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.agent < b.agent ? -1 : 1));
  }

  leader(t = this.relayTime) {
    return this.ranking(t)[0] ?? null;
  }
}
