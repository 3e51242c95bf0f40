// A minimal relay client for the demo, speaking the wire protocol of PROTOCOL.md section 8 with
// the package's wasm exports (Identity, signOp, decodeOp). It follows the contract of the npm
// package's RelayClient (connect / subscribe / publish / onCompensation / close / exportState);
// the page prefers the package's own RelayClient whenever the package exports one.
//
// Frames: version 0x01 ‖ type ‖ request id (u32, big-endian) ‖ payload.

const VERSION = 1;
const T = {
  HELLO: 0x01, SUBSCRIBE: 0x02, UNSUBSCRIBE: 0x03, PUBLISH: 0x04, GET_CHECKPOINT: 0x05,
  CHALLENGE: 0x40, WELCOME: 0x41, SUBSCRIBED: 0x42, UNSUBSCRIBED: 0x43, RECEIPT: 0x44,
  ENTRY: 0x45, EVENT: 0x46, CHECKPOINT: 0x47, ERROR: 0x4f,
};
const HELLO_DOMAIN = new TextEncoder().encode('ants-coord/hello/v1\0');
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** An error with a stable `code`, like the package's errors. */
export class RelayError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'RelayError';
    this.code = code;
  }
}

class Writer {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(Uint8Array.of(v)); return this; }
  u32(v) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v); this.parts.push(b); return this; }
  u64(v) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v)); this.parts.push(b); return this; }
  bytes(b) { this.parts.push(b); return this; }
  topic(t) { const b = utf8.encode(t); return this.u8(b.length).bytes(b); }
  blob(b) { return this.u32(b.length).bytes(b); }
  done() {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

class Reader {
  constructor(bytes) { this.b = bytes; this.at = 0; this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
  take(n) {
    if (this.at + n > this.b.length) throw new RelayError('MALFORMED', 'frame too short');
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8() { return this.take(1)[0]; }
  u16() { const x = this.v.getUint16(this.at); this.take(2); return x; }
  u32() { const x = this.v.getUint32(this.at); this.take(4); return x; }
  u64() { const x = this.v.getBigUint64(this.at); this.take(8); return Number(x); }
  topic() { return fromUtf8.decode(this.take(this.u8())); }
  blob() { return this.take(this.u32()); }
}

const frame = (type, requestId) => new Writer().u8(VERSION).u8(type).u32(requestId);
const hex = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');

/** Decodes an entry (PROTOCOL.md section 4) and verifies its op's signature with `decodeOp`. */
export function decodeEntry(bytes, decodeOp) {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== 1) throw new RelayError('UNSUPPORTED_VERSION', `entry version ${version}`);
  const seq = r.u64();
  const relayTimeMs = r.u64();
  const opBytes = r.blob();
  const op = decodeOp(opBytes); // throws BAD_SIGNATURE on a forged op
  return { seq, relayTimeMs, op, bytes };
}

/**
 * The entry shape both clients' iterators are read as: `{ seq, relayTimeMs, op }` with `op` a
 * DecodedOp (`author`, `kind`, `body`, `timeMs`, `id`); misbehaviour reports pass through.
 */
export function normalizeEntry(item, decodeOp) {
  if (!item || item.misbehaviour) return item ?? null;
  if (item.type === 'replica') return { ignored: true, item };
  if (item.type === 'entry' && item.bytes instanceof Uint8Array) {
    // The package's RelayClient yields flat VerifiedEntry objects; the op (with its signing
    // time, for the latency plot) is read back from the entry bytes.
    const entry = decodeEntry(item.bytes, decodeOp);
    return { seq: Number(item.seq), relayTimeMs: Number(item.relayTimeMs), op: entry.op, bytes: item.bytes };
  }
  const op = item.op instanceof Uint8Array ? decodeOp(item.op) : item.op ?? item;
  // Anything else an iterator may yield (e.g. replica events) is not a feed entry.
  if (typeof op?.author !== 'string' || item.seq === undefined) return { ignored: true, item };
  return { seq: Number(item.seq), relayTimeMs: Number(item.relayTimeMs ?? 0), op, bytes: item.bytes instanceof Uint8Array ? item.bytes : undefined };
}

/**
 * The RelayClient class to use: the package's (`/pkg/client-web.mjs`, ants-coord/client) when the
 * built package has it, unless `?client=builtin`; this file's otherwise.
 */
export async function relayClientClass(preferBuiltin = false) {
  if (preferBuiltin) return RelayClient;
  try {
    const module = await import('/pkg/client-web.mjs');
    return module.RelayClient ?? RelayClient;
  } catch {
    return RelayClient;
  }
}

/**
 * One authenticated connection to a relay, reconnecting with exponential backoff and jitter and
 * resuming every subscription from its cursor (the next sequence number it has not seen).
 */
export class RelayClient {
  /** Connects and completes the hello; resolves once the relay welcomed `identity`. */
  static async connect(url, identity, options = {}) {
    const client = new RelayClient(url, identity, options);
    await client.#open();
    return client;
  }

  #url; #identity; #pkg; #ws = null; #nextId = 1; #pending = new Map(); #subs = new Map();
  #compensation = new Map(); #statusHandlers = new Set(); #closed = false; #retry = 0;
  #counters = new Map(); #unacked = new Map(); #welcomed = null; #everLive = false;

  constructor(url, identity, options) {
    this.#url = url;
    this.#identity = identity;
    this.#pkg = options.pkg;
    if (!this.#pkg) throw new RelayError('BAD_INPUT', 'options.pkg (the ants-coord module) is required');
    this.status = 'connecting';
    if (options.onStatus) this.#statusHandlers.add(options.onStatus);
    for (const [topic, counter] of Object.entries(options.state?.counters ?? {})) this.#counters.set(topic, counter);
  }

  /** Registers `handler(status, detail)`; statuses: connecting, live, reconnecting, closed. */
  onStatus(handler) { this.#statusHandlers.add(handler); return () => this.#statusHandlers.delete(handler); }

  #setStatus(status, detail = '') {
    this.status = status;
    for (const h of this.#statusHandlers) h(status, detail);
  }

  #open() {
    this.#setStatus(this.#retry ? 'reconnecting' : 'connecting');
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#url);
      ws.binaryType = 'arraybuffer';
      this.#ws = ws;
      this.#welcomed = { resolve, reject };
      ws.onmessage = (event) => this.#receive(new Uint8Array(event.data));
      ws.onerror = () => {};
      ws.onclose = (event) => {
        if (this.#welcomed) {
          this.#welcomed.reject(new RelayError('UNAVAILABLE', `cannot reach the relay at ${this.#url}`));
          this.#welcomed = null;
        }
        // A first connection that never got through is the caller's to retry; once live, this
        // client reconnects on its own.
        if (this.#closed || !this.#everLive) return;
        this.#retry += 1;
        const delay = Math.min(10_000, 250 * 2 ** Math.min(this.#retry, 6)) * (0.5 + Math.random() / 2);
        this.#setStatus('reconnecting', `connection lost${event.reason ? ` (${event.reason})` : ''}; retrying in ${(delay / 1000).toFixed(1)} s`);
        setTimeout(() => this.#open().catch(() => {}), delay);
      };
    });
  }

  #send(bytes) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(bytes);
  }

  #receive(bytes) {
    let r;
    let type;
    let requestId;
    try {
      r = new Reader(bytes);
      if (r.u8() !== VERSION) throw new RelayError('UNSUPPORTED_VERSION', 'unknown wire version');
      type = r.u8();
      requestId = r.u32();
    } catch (error) {
      this.#setStatus('misbehaviour', `unreadable frame: ${error.message}`);
      return;
    }
    switch (type) {
      case T.CHALLENGE: {
        const relay = r.take(32);
        const nonce = r.take(32);
        this.relayId = hex(relay);
        const message = new Uint8Array([...HELLO_DOMAIN, ...nonce, ...relay]);
        const signature = this.#identity.sign(message);
        this.#send(frame(T.HELLO, 0).bytes(this.#identity.publicKey).bytes(signature).done());
        break;
      }
      case T.WELCOME: {
        this.#retry = 0;
        this.#everLive = true;
        this.#setStatus('live');
        for (const [topic, sub] of this.#subs) this.#subscribeFrame(topic, sub);
        for (const opBytes of this.#unacked.values()) this.#send(opBytes.frame);
        this.#welcomed?.resolve();
        this.#welcomed = null;
        break;
      }
      case T.SUBSCRIBED: {
        const topic = r.topic();
        r.u64();
        const head = r.u64();
        const sub = this.#subs.get(topic);
        if (sub) sub.head = head;
        break;
      }
      case T.ENTRY: {
        const sub = [...this.#subs.values()].find((s) => s.requestId === requestId);
        if (!sub) break;
        let entry;
        const blob = r.blob();
        try {
          entry = decodeEntry(blob, this.#pkg.decodeOp);
        } catch (error) {
          // The evidence: what the relay claimed, and the bytes that fail (signed by nobody).
          const claimed = blob.length >= 9 ? Number(new DataView(blob.buffer, blob.byteOffset + 1, 8).getBigUint64(0)) : '?';
          sub.push({
            misbehaviour: true,
            code: error.code ?? 'MALFORMED',
            evidence: `the relay's entry at seq ${claimed} does not verify (${error.message}); entry of ${blob.length} bytes, signature ${hex(blob.subarray(-64)).slice(0, 24)}…`,
            bytes: blob,
          });
          break;
        }
        if (entry.seq < sub.next) break; // already delivered (resume seam)
        if (entry.seq > sub.next) {
          sub.push({ misbehaviour: true, code: 'SEQ_GAP', evidence: `expected seq ${sub.next}, relay sent ${entry.seq}`, entry });
        }
        sub.next = entry.seq + 1;
        sub.push(entry);
        break;
      }
      case T.RECEIPT: {
        const seq = r.u64();
        const opId = hex(r.take(32));
        this.#settle(requestId, null, { seq, opId, receipt: r.blob() });
        break;
      }
      case T.EVENT: {
        const topic = r.topic();
        const seq = r.u64();
        const event = r.blob();
        for (const h of this.#compensation.values()) h({ topic, seq, event });
        break;
      }
      case T.CHECKPOINT:
        this.#settle(requestId, null, r.blob());
        break;
      case T.ERROR: {
        const code = fromUtf8.decode(r.take(r.u8()));
        const message = fromUtf8.decode(r.take(r.u16()));
        const error = new RelayError(code, message);
        if (!this.#settle(requestId, error)) this.#setStatus(this.status, `relay refused: ${code} ${message}`);
        break;
      }
      default:
        break;
    }
  }

  #settle(requestId, error, value) {
    const pending = this.#pending.get(requestId);
    if (!pending) return false;
    this.#pending.delete(requestId);
    this.#unacked.delete(requestId);
    if (error) pending.reject(error);
    else pending.resolve(value);
    return true;
  }

  #request(bytesFor) {
    const requestId = this.#nextId++;
    const bytes = bytesFor(requestId);
    return { requestId, bytes, done: new Promise((resolve, reject) => this.#pending.set(requestId, { resolve, reject })) };
  }

  #subscribeFrame(topic, sub) {
    sub.requestId = this.#nextId++;
    this.#send(frame(T.SUBSCRIBE, sub.requestId).topic(topic).u64(sub.next).done());
  }

  /**
   * Subscribes to `topic` from sequence number `from` (default 0): an async iterator of
   * verified entries `{ seq, relayTimeMs, op }` (op: the package's DecodedOp), each exactly
   * once and in order, across reconnects.
   */
  subscribe(topic, { from = 0 } = {}) {
    const queue = [];
    let wake = null;
    const sub = {
      next: from,
      head: 0,
      push: (item) => { queue.push(item); wake?.(); wake = null; },
    };
    this.#subs.set(topic, sub);
    if (this.status === 'live') this.#subscribeFrame(topic, sub);
    return {
      [Symbol.asyncIterator]() { return this; },
      next: async () => {
        while (!queue.length) {
          if (this.#closed) return { done: true, value: undefined };
          await new Promise((resolve) => { wake = resolve; });
        }
        return { done: false, value: queue.shift() };
      },
      return: async () => { this.#subs.delete(topic); return { done: true, value: undefined }; },
    };
  }

  /** Signs and publishes an op; resolves to the receipt `{ seq, opId }` once durably sequenced. */
  publish(topic, kind, body) {
    const counter = Math.max((this.#counters.get(topic) ?? 0) + 1, Date.now() * 1000);
    this.#counters.set(topic, counter);
    const bytes = body instanceof Uint8Array ? body : utf8.encode(typeof body === 'string' ? body : JSON.stringify(body));
    const op = this.#pkg.signOp(this.#identity, { topic, kind, counter, body: bytes, timeMs: Date.now() });
    const request = this.#request((id) => frame(T.PUBLISH, id).blob(op).done());
    this.#unacked.set(request.requestId, { frame: request.bytes });
    this.#send(request.bytes);
    return request.done;
  }

  /** Asks for a topic's latest signed checkpoint (raw bytes). */
  getCheckpoint(topic) {
    const request = this.#request((id) => frame(T.GET_CHECKPOINT, id).topic(topic).done());
    this.#send(request.bytes);
    return request.done;
  }

  /** Calls `handler(event)` for replica events the relay pushes (EVENT frames). */
  onCompensation(kind, handler) { this.#compensation.set(kind, handler); }

  /** What a reload needs to resume: per-topic cursors and counters. */
  exportState() {
    return {
      cursors: Object.fromEntries([...this.#subs].map(([t, s]) => [t, s.next])),
      counters: Object.fromEntries(this.#counters),
    };
  }

  /** Closes the connection for good. */
  close() {
    this.#closed = true;
    this.#ws?.close(1000, 'closed by the page');
    for (const sub of this.#subs.values()) sub.push(null);
    this.#setStatus('closed');
  }
}
