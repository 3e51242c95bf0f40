// RelayClient: moves frames between a WebSocket and the core's sans-IO Session (wasm).
//
// Every check happens in the Session (Rust, compiled to wasm): this file only does I/O, timers
// and callbacks. It runs wherever a WebSocket constructor exists: the global one in browsers,
// Deno and workers, or an injected one (`options.WebSocket`, e.g. the `ws` package) in Node 20.
//
// `makeRelayClient(ants)` binds the client to one loaded ants-coord module (the Session must
// live in the same wasm instance as the Identity); the entries `ants-coord/client` do that for
// each runtime.

const textEncoder = new TextEncoder();
// The longest a timer can wait: Node fires a longer setTimeout/setInterval after 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;
// A subscription's iterator queue: the client pauses the topic on the relay above this many
// bytes and resumes it below half of them.
const DEFAULT_MAX_QUEUED_BYTES = 16 * 2 ** 20;
// What an entry or replica event costs in the queue besides its bytes (the object, its strings).
const ITEM_OVERHEAD_BYTES = 512;

/** An error of the package's one shape (as the wasm module throws): `name` AntsCoordError. */
export function codedError(code, message) {
  const error = new Error(message);
  error.name = "AntsCoordError";
  error.code = code;
  return error;
}

export function badInput(message) {
  return codedError("BAD_INPUT", message);
}

function toBytes(body) {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return textEncoder.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw badInput("body must be a Uint8Array or a string");
}

function relayError(code, message) {
  return codedError(code, `${code}: ${message}`);
}

/** `options` of a call that takes an options object: absent, or an object. */
export function optionsArg(options) {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object") throw badInput("options must be an object");
  return options;
}

/** A callback argument: a function (or, where `optional`, undefined or null). */
function callbackArg(what, value, optional = false) {
  if (typeof value === "function" || (optional && value == null)) return value;
  throw badInput(`${what} must be a function`);
}

/** `onCompensation`'s options (`{ all }`, both optional): whether every agent's losses count. */
function compensationOptions(options) {
  if (options === undefined) return false;
  if (options === null || typeof options !== "object") throw badInput("onCompensation options must be an object");
  for (const key of Object.keys(options)) {
    if (key !== "all") throw badInput(`unknown onCompensation option ${JSON.stringify(key)}`);
  }
  if (options.all !== undefined && typeof options.all !== "boolean") throw badInput("all must be a boolean");
  return options.all === true;
}

/** A time option in ms: absent (`fallback`), or a number from 0 up, capped at MAX_TIMER_MS. */
export function msOption(options, name, fallback) {
  const value = options[name] ?? fallback;
  if (typeof value !== "number" || !(value >= 0)) throw badInput(`${name} must be a number of ms from 0 up`);
  return Math.min(value, MAX_TIMER_MS);
}

/** `maxQueuedBytes`: absent (16 MiB), or a number from 1 up (Infinity: no bound). */
function queueBoundOption(options) {
  const value = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  if (typeof value !== "number" || !(value >= 1)) throw badInput("maxQueuedBytes must be a number from 1 up");
  return value;
}

/** What an item holds in a subscription's queue, roughly: its bytes and the object around them. */
function queuedSize(item) {
  return ITEM_OVERHEAD_BYTES + (item.bytes?.byteLength ?? 0) + (item.body?.byteLength ?? 0);
}

/** `options.state`: absent, or the bytes `exportState()` gave (a Uint8Array or an ArrayBuffer). */
function stateOption(options) {
  const { state } = options;
  if (state == null) return null;
  if (state instanceof Uint8Array) return state;
  if (state instanceof ArrayBuffer) return new Uint8Array(state);
  throw badInput("state must be the Uint8Array exportState() returned");
}

/** Most capabilities one connection may bring (the relay's limit, `src/relay/access.rs`). */
const MAX_CAPABILITIES = 16;

/**
 * The frontends `connect` takes: one url (a string or a URL), or a non-empty array of them, all
 * frontends of one relay (cluster mode). Returned as a new array.
 */
function frontendsArg(urls) {
  // Not parsed here: a browser resolves a relative url against the page.
  const isUrl = (url) => typeof url === "string" || (typeof URL === "function" && url instanceof URL);
  if (!Array.isArray(urls)) {
    if (!isUrl(urls)) throw badInput("url must be a string, a URL, or a non-empty array of them");
    return [urls];
  }
  if (urls.length === 0) throw badInput("the array of frontend urls is empty");
  if (!urls.every(isUrl)) throw badInput("every frontend url must be a string or a URL");
  return [...urls];
}

/** `frontendOrder`: absent ("shuffled"), "shuffled" or "listed". */
function frontendOrderOption(options) {
  const order = options.frontendOrder ?? "shuffled";
  if (order !== "shuffled" && order !== "listed") throw badInput('frontendOrder must be "shuffled" or "listed"');
  return order;
}

/** Fisher–Yates, in place: clients given the same frontends spread over them. */
function shuffle(items) {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Lowercase hex, the form of the relay's `cap` query parameter. */
function lowerHex(bytes) {
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

/** `url` with `?cap=<hex>&…` for each capability (before a fragment, after an existing query). */
function withCapabilities(url, capabilities) {
  const text = String(url);
  if (capabilities.length === 0) return text;
  const hash = text.indexOf("#");
  const [base, fragment] = hash === -1 ? [text, ""] : [text.slice(0, hash), text.slice(hash)];
  const query = capabilities.map((hex) => `cap=${hex}`).join("&");
  const joiner = base.includes("?") ? (base.endsWith("?") || base.endsWith("&") ? "" : "&") : "?";
  return `${base}${joiner}${query}${fragment}`;
}

/**
 * `identity` must be an Identity of the module this client is bound to (`Identity`): one from
 * another copy of ants-coord (the CommonJS entry beside the ESM one, the other of the full and
 * core builds, or a second install) holds its key in another wasm instance, which this client's
 * Session cannot read.
 */
function identityArg(identity, Identity) {
  if (identity instanceof Identity) return;
  const foreign =
    typeof identity === "object" && identity !== null && identity.constructor?.name === "Identity";
  throw badInput(
    foreign
      ? "identity is an Identity from another copy of ants-coord: the CommonJS entry (`require('ants-coord')`) " +
          "and the ESM one (`import { Identity } from 'ants-coord'`) are two modules with two keys stores, " +
          "as are the full and core builds (`ants-coord`, `ants-coord/core`) and two installed versions. " +
          "Create it with the ESM entry of the build the client uses: `import { Identity } from 'ants-coord'` " +
          "for `ants-coord/client`, from 'ants-coord/core' for `ants-coord/core/client`"
      : "identity must be an ants-coord Identity (Identity.generate() or Identity.fromSeed(seed))",
  );
}

/** A seq to wait for: a whole number from 0 to 2^53, as a number or a bigint. */
function seqArg(seq) {
  const count = typeof seq === "bigint" || typeof seq === "number" ? Number(seq) : NaN;
  if (!Number.isInteger(count) || count < 0 || count > 2 ** 53) {
    throw badInput("seq must be a whole number from 0 to 2^53");
  }
  return count;
}

/**
 * A subscription: async iterable of verified entries and replica events.
 *
 * Its queue is bounded by `maxQueuedBytes`. While iterated, a consumer that falls that far
 * behind pauses the topic on the relay (the relay holds the entries; nothing is lost) until it
 * has read half of the queue. Before it is iterated, nothing can pause it (a subscription only
 * awaited with `caughtUp()` must go on following): past the bound the queue is dropped, and
 * iterating it later throws `LIMIT_EXCEEDED` rather than skip entries.
 */
class Subscription {
  #queue = [];
  #queuedBytes = 0;
  #maxQueuedBytes;
  #flow;
  #paused = false;
  #overflowed = false;
  #waiters = [];
  // Ended: unsubscribed, replaced by another subscribe of the topic, or the client closed.
  #done = false;
  #iterating = false;
  // The iterator was left (`break`): it yields nothing more, but the waits still resolve.
  #iteratorEnded = false;
  // Entries the relay had when it first answered this subscription (null until it answers).
  #head = null;
  // Promises of `delivered(seq)` / `caughtUp()`: { count, resolve, reject }, count = seq + 1.
  #progress = [];
  /** The relay's refusal when it refused or ended this subscription (`undefined` once it
   * answers a later subscribe). */
  error = undefined;
  /**
   * `flow`: `{ maxQueuedBytes, pause(), resume(), unsubscribe() }`: the topic on the relay, moved
   * only while this is the topic's current subscription.
   */
  constructor(client, topic, options, flow) {
    this.topic = topic;
    this.client = client;
    this.onEntry = options.onEntry;
    this.onEvent = options.onEvent;
    this.#maxQueuedBytes = flow.maxQueuedBytes;
    this.#flow = flow;
  }
  /** True while the iterator is `maxQueuedBytes` behind and the topic is paused on the relay. */
  get paused() {
    return this.#paused;
  }
  /** Bytes (roughly) of the items waiting to be read from the iterator. */
  get queuedBytes() {
    return this.#queuedBytes;
  }
  /**
   * Resolves once the entry `seq` has been delivered: verified, and applied to the topic's
   * replica (so `client.claimHolder` / `client.leader` include it).
   */
  delivered(seq) {
    return this.#wait(seqArg(seq) + 1);
  }
  /**
   * Resolves once every entry the relay had when it answered the subscription has been
   * delivered: the replica has caught up (read-your-topic before deciding).
   */
  caughtUp() {
    return this.#wait(null);
  }
  // Resolves once the cursor reaches `count` (null: the head); an ended subscription never
  // moves, so what it has not reached rejects CLOSED at once.
  #wait(count) {
    return new Promise((resolve, reject) => {
      this.#progress.push({ count, resolve, reject });
      this.settle();
      if (this.#done) this.#rejectProgress();
    });
  }
  #rejectProgress() {
    for (const { reject } of this.#progress.splice(0)) {
      reject(relayError("CLOSED", `subscription to ${this.topic} ended`));
    }
  }
  /** The relay answered the subscription with `head` entries (called by the client). */
  subscribed(head) {
    this.error = undefined;
    if (this.#head === null) this.#head = Number(head);
    this.settle();
  }
  /** Resolves the progress promises the cursor has reached (called by the client). */
  settle() {
    if (this.#progress.length === 0) return;
    const cursor = this.client.cursor(this.topic) ?? 0;
    this.#progress = this.#progress.filter((waiter) => {
      const count = waiter.count ?? this.#head;
      if (count === null || cursor < count) return true;
      waiter.resolve(cursor);
      return false;
    });
  }
  push(item) {
    if (item.type === "entry") this.onEntry?.(item);
    if (item.type === "replica") this.onEvent?.(item.event, item);
    // With callbacks and no iterator, nothing is buffered; nor once the iterator has ended
    // (a `break` out of `for await`), though the client still follows the topic.
    if (this.#done || this.#iteratorEnded || this.#overflowed) return;
    if ((this.onEntry || this.onEvent) && !this.#iterating) return;
    const waiter = this.#waiters.shift();
    if (waiter) return waiter({ value: item, done: false });
    this.#queue.push(item);
    this.#queuedBytes += queuedSize(item);
    if (this.#queuedBytes <= this.#maxQueuedBytes) return;
    if (this.#iterating) {
      if (!this.#paused) {
        this.#paused = true;
        this.#flow.pause();
      }
      return;
    }
    this.#overflowed = true;
    this.#queue = [];
    this.#queuedBytes = 0;
  }
  #take() {
    const item = this.#queue.shift();
    this.#queuedBytes -= queuedSize(item);
    if (this.#paused && this.#queuedBytes <= this.#maxQueuedBytes / 2) {
      this.#paused = false;
      this.#flow.resume();
    }
    return item;
  }
  end() {
    this.#done = true;
    this.#rejectProgress();
    this.#endIterator();
  }
  /**
   * The relay refused this subscription or ended it (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`…;
   * called by the client): `error` says why, and the waits pending now reject with it. The
   * subscription stays: the next connection (e.g. after `addCapability`) asks again from the
   * cursor, and its answer clears `error`.
   */
  refused(error) {
    this.error = error;
    for (const { reject } of this.#progress.splice(0)) reject(error);
  }
  // No more items: pending `next()`s end, and a paused topic resumes, since the client goes on
  // following it (unless the end is an unsubscribe or a close, where resuming does nothing).
  #endIterator() {
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true });
    if (this.#paused) {
      this.#paused = false;
      this.#flow.resume();
    }
  }
  /** Stops following the topic, if this is still the topic's subscription. */
  unsubscribe() {
    this.#flow.unsubscribe();
  }
  [Symbol.asyncIterator]() {
    this.#iterating = true;
    return {
      next: () => {
        if (this.#queue.length) return Promise.resolve({ value: this.#take(), done: false });
        if (this.#overflowed) {
          // The iterator ends with the error; the waits go on, as after a `break`.
          this.#overflowed = false;
          this.#iteratorEnded = true;
          this.#endIterator();
          const limit = this.#maxQueuedBytes;
          return Promise.reject(
            relayError(
              "LIMIT_EXCEEDED",
              `subscription to ${this.topic}: more than ${limit} bytes of items arrived before it ` +
                "was iterated, and were dropped; iterate it sooner, give onEntry/onEvent, or raise maxQueuedBytes",
            ),
          );
        }
        if (this.#done || this.#iteratorEnded) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push(resolve));
      },
      return: () => {
        // Left by `break`: nothing will read what is queued; `delivered`/`caughtUp` go on.
        this.#iteratorEnded = true;
        this.#queue = [];
        this.#queuedBytes = 0;
        this.#endIterator();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

// Only `RelayClient.connect` constructs a client: one built with `new` would never connect.
const CONNECTING = Symbol("RelayClient.connect");

export function makeRelayClient(ants) {
  /**
   * One capability as the relay takes it: bytes that decode as a valid chain (checked here, so a
   * bad one is refused at once rather than refusing every upgrade), as lowercase hex.
   */
  function capabilityHex(bytes) {
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    if (!(bytes instanceof Uint8Array)) throw badInput("a capability must be a Uint8Array");
    ants.Capability.decode(bytes);
    return lowerHex(bytes);
  }

  /** `capabilities`: absent, or an array of at most 16 capabilities' bytes; as hex. */
  function capabilitiesOption(options) {
    const { capabilities } = options;
    if (capabilities == null) return [];
    if (!Array.isArray(capabilities)) throw badInput("capabilities must be an array of Uint8Array");
    if (capabilities.length > MAX_CAPABILITIES) {
      throw codedError("LIMIT_EXCEEDED", `at most ${MAX_CAPABILITIES} capabilities per connection, got ${capabilities.length}`);
    }
    return [...new Set(capabilities.map(capabilityHex))];
  }

  class RelayClient {
    // The frontends of the relay, in the order they are tried, and the one in use.
    #frontends;
    #frontendIndex = 0;
    // Capabilities sent on the WebSocket URL, as hex.
    #capabilities;
    #WebSocket;
    #session;
    #ws = null;
    #inbox = [];
    #drainScheduled = false;
    #attempts = 0;
    #closed = false;
    #reconnectTimer = null;
    #tickTimer = null;
    // The session's next own deadline (a retry, a publish timeout): its timer and time.
    #wakeTimer = null;
    #wakeAt = Infinity;
    #pending = new Map();
    #subscriptions = new Map();
    #compensation = new Map();
    // Topics followed with a replica: their compensations come from the replica, not a push.
    #replicaTopics = new Set();
    #listeners = new Map();
    #liveWaiters = [];
    // The time options, checked: { connectTimeoutMs, tickMs, minBackoffMs, maxBackoffMs,
    // publishTimeoutMs }.
    #timing;
    #lastError = null;
    /** "connecting" | "live" | "verified" | "misbehaviour" | "closed" */
    status = "connecting";

    /**
     * Connects to `url` as `identity` (an ants-coord Identity). Resolves once the relay accepted
     * the hello (set `options.wait = false` to resolve at once). `url` may be an array of the
     * frontends of one relay (cluster mode): the client uses one at a time and moves to the next
     * when a connection is lost or fails.
     */
    static async connect(url, identity, options = {}) {
      const client = new RelayClient(url, identity, options, CONNECTING);
      client.#open();
      if (options.wait === false) return client;
      // A wrong URL or a relay that never answers must not hang the caller: give up after
      // `connectTimeoutMs` (default 10 s) with CONNECT_TIMEOUT and close the client.
      const ms = client.#timing.connectTimeoutMs;
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => {
          const detail = client.#lastError ? ` (last error: ${client.#lastError})` : "";
          const where = client.#frontends.length === 1 ? client.url : client.#frontends.join(", ");
          reject(relayError("CONNECT_TIMEOUT", `no live connection to ${where} within ${ms} ms${detail}`));
        }, ms);
      });
      try {
        await Promise.race([client.ready(), timeout]);
      } catch (error) {
        client.close();
        throw error;
      } finally {
        clearTimeout(timer);
      }
      return client;
    }

    constructor(url, identity, options = {}, token = undefined) {
      if (token !== CONNECTING) throw badInput("use RelayClient.connect(url, identity, options)");
      const frontends = frontendsArg(url);
      optionsArg(options);
      this.#frontends = frontendOrderOption(options) === "shuffled" ? shuffle(frontends) : frontends;
      this.#capabilities = capabilitiesOption(options);
      if (options.wait !== undefined && typeof options.wait !== "boolean") throw badInput("wait must be a boolean");
      identityArg(identity, ants.Identity);
      const state = stateOption(options);
      this.#timing = {
        connectTimeoutMs: msOption(options, "connectTimeoutMs", 10_000),
        tickMs: msOption(options, "tickMs", 1000),
        minBackoffMs: msOption(options, "minBackoffMs", 100),
        maxBackoffMs: msOption(options, "maxBackoffMs", 10_000),
        publishTimeoutMs: msOption(options, "publishTimeoutMs", 60_000),
      };
      this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
      if (typeof this.#WebSocket !== "function") {
        throw badInput("no WebSocket: pass options.WebSocket (e.g. the ws package in Node 20)");
      }
      this.#session = state ? ants.Session.restore(identity, state) : new ants.Session(identity);
      this.#session.setPublishTimeoutMs(this.#timing.publishTimeoutMs);
      const tick = () => {
        this.#session.tick(Date.now());
        this.#process();
      };
      this.#tickTimer = setInterval(tick, this.#timing.tickMs);
      if (typeof this.#tickTimer?.unref === "function") this.#tickTimer.unref();
    }

    /** The relay's key (hex), once pinned. */
    get relayId() {
      return this.#session.relayId;
    }

    /** The frontend in use: the url connected to, or being tried (one of those `connect` took). */
    get url() {
      return this.#frontends[this.#frontendIndex];
    }

    /**
     * Adds a capability (its bytes) to those sent to the relay, for a live client: reconnects
     * to the same frontend so the relay sees it, resuming every subscription from its cursor
     * (`await client.ready()` for the new connection). Returns false, changing nothing, for one
     * the client already holds. Throws `BAD_INPUT` for bytes that are not a capability (or a
     * code of `Capability.decode`), `LIMIT_EXCEEDED` past 16 capabilities.
     */
    addCapability(bytes) {
      const hex = capabilityHex(bytes);
      if (this.#capabilities.includes(hex)) return false;
      if (this.#capabilities.length >= MAX_CAPABILITIES) {
        throw codedError("LIMIT_EXCEEDED", `at most ${MAX_CAPABILITIES} capabilities per connection`);
      }
      this.#capabilities.push(hex);
      if (this.#closed) return true;
      // A connection under way (or live) was opened without it: open another to the same
      // frontend. Between two attempts, the next one brings it anyway.
      const ws = this.#ws;
      if (ws) {
        this.#ws = null;
        ws.close(1000);
        this.#session.disconnected();
        this.#open();
      }
      return true;
    }

    /** Our agent id (hex). */
    get agentId() {
      return this.#session.agentId;
    }

    /** Resolves when the connection is live. */
    ready() {
      if (this.#closed) return Promise.reject(relayError("CLOSED", "client closed"));
      if (this.#session.phase === "live") return Promise.resolve();
      return new Promise((resolve, reject) => this.#liveWaiters.push({ resolve, reject }));
    }

    /**
     * `on(type, handler)`: "status", "misbehaviour", "error", "acknowledged", "verified",
     * "subscribed", "retrying" (a publish refused with a retryable code, sent again later),
     * "audited" (a receipt of ours proven in a later checkpoint) or "event" (a replica event
     * the relay pushed to us: `{ topic, seq, event }`).
     */
    on(type, handler) {
      if (typeof type !== "string") throw badInput("event type must be a string");
      callbackArg("handler", handler);
      if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
      this.#listeners.get(type).add(handler);
      return () => this.#listeners.get(type)?.delete(handler);
    }

    /**
     * Calls `handler(event, topic)` for every compensation of an op of `kind` (e.g. "claim")
     * that this agent lost (`event.loser === client.agentId`): the ops it must undo. With
     * `{ all: true }`, for every agent's lost op (a monitor, a dashboard). Returns a function
     * that removes the handler.
     */
    onCompensation(kind, handler, options) {
      if (typeof kind !== "string") throw badInput("kind must be a string");
      callbackArg("handler", handler);
      const all = compensationOptions(options);
      if (!this.#compensation.has(kind)) this.#compensation.set(kind, new Set());
      const registration = { handler, all };
      this.#compensation.get(kind).add(registration);
      return () => this.#compensation.get(kind)?.delete(registration);
    }

    // Calls the compensation handlers of the event's kind: those for this agent's own losses,
    // and those registered with `all`.
    #compensate(event, topic) {
      const own = event.loser === this.#session.agentId;
      for (const { handler, all } of this.#compensation.get(event.kind) ?? []) {
        if (all || own) handler(event, topic);
      }
    }

    /**
     * Follows `topic` from seq `from` (default 0; a replica is kept when following from 0).
     * Returns an async iterable of `{ type: "entry", ... }` and `{ type: "replica", event }`;
     * `onEntry` / `onEvent` callbacks may be given instead. An iterator that falls
     * `maxQueuedBytes` (default 16 MiB) behind pauses the topic on the relay until it catches up.
     */
    subscribe(topic, options = {}) {
      optionsArg(options);
      callbackArg("onEntry", options.onEntry, true);
      callbackArg("onEvent", options.onEvent, true);
      const maxQueuedBytes = queueBoundOption(options);
      const from = options.from ?? 0;
      const replica = options.replica ?? from === 0;
      this.#session.subscribe(topic, from, replica, options.config);
      if (replica) this.#replicaTopics.add(topic);
      const flow = {
        maxQueuedBytes,
        pause: () => this.#flowControl(topic, subscription, "pause"),
        resume: () => this.#flowControl(topic, subscription, "resume"),
        unsubscribe: () => this.#flowControl(topic, subscription, "unsubscribe"),
      };
      const subscription = new Subscription(this, topic, options, flow);
      // A second subscribe to the topic replaces the first: end it, so its iterator and its
      // waits settle rather than hang.
      this.#subscriptions.get(topic)?.end();
      this.#subscriptions.set(topic, subscription);
      // A closed client delivers nothing: the subscription ends at once (the topic stays in
      // `exportState()`, like the rest of the session).
      if (this.#closed) subscription.end();
      this.#flush();
      return subscription;
    }

    // A subscription's pause, resume or unsubscribe: only the topic's current subscription
    // moves it (one that was replaced must not end its replacement).
    #flowControl(topic, subscription, action) {
      if (this.#subscriptions.get(topic) !== subscription) return;
      if (action === "unsubscribe") return this.unsubscribe(topic);
      this.#session[action](topic);
      this.#flush();
    }

    /** Stops following `topic`. */
    unsubscribe(topic) {
      this.#session.unsubscribe(topic);
      this.#replicaTopics.delete(topic);
      this.#subscriptions.get(topic)?.end();
      this.#subscriptions.delete(topic);
      this.#flush();
    }

    /**
     * Publishes an op; resolves to the verified receipt `{ topic, opId, seq, receipt }`. A refusal
     * with a retryable code (RATE_LIMITED, UNAVAILABLE) is retried with backoff, with the same
     * signed bytes; the promise always settles: it rejects with the relay's code for a final
     * refusal, and after `publishTimeoutMs` (default 60 s) without a receipt with the last
     * retryable code (UNAVAILABLE when the relay never answered). Such an error carries `opId`
     * and `op` (the signed bytes): `publishSigned(err.op)` later is safe (a relay that sequenced
     * it meanwhile answers with the original receipt). Throws `BAD_INPUT` before anything is
     * signed for a replica kind (`post`, `claim`, …) whose body is not a `ReplicaOp` body, or a
     * `doc.update` whose body is not `1 ‖ Yjs v1 update`.
     */
    publish(topic, kind, body) {
      return this.#awaitReceipt(this.#session.publish(topic, kind, toBytes(body), Date.now()));
    }

    /**
     * Publishes like `publish` and also returns the signed op's bytes, for other relays:
     * `{ op, receipt }` where `receipt` is the promise `publish` returns.
     */
    publishOp(topic, kind, body) {
      const op = this.#session.publishOp(topic, kind, toBytes(body), Date.now());
      return { op, receipt: this.#awaitReceipt(ants.opId(op)) };
    }

    /** Publishes an op this identity signed elsewhere (`publishOp` on another relay's client). */
    publishSigned(op) {
      return this.#awaitReceipt(this.#session.publishSigned(toBytes(op)));
    }

    /** The gossip body of the latest head of `topic` this client verified (or undefined). */
    gossip(topic) {
      return this.#session.gossip(topic);
    }

    /** Takes checkpoint gossip seen anywhere; true when it was about this relay and topic. */
    receiveGossip(bytes) {
      const used = this.#session.receiveGossip(toBytes(bytes));
      this.#process();
      return used;
    }

    #awaitReceipt(opId) {
      // The op stays queued in `exportState()`; this client will not send it.
      if (this.#closed) return Promise.reject(relayError("CLOSED", "client closed"));
      let pending = this.#pending.get(opId);
      if (!pending) {
        pending = {};
        pending.promise = new Promise((resolve, reject) => Object.assign(pending, { resolve, reject }));
        this.#pending.set(opId, pending);
      }
      this.#flush();
      this.#scheduleWake();
      return pending.promise;
    }

    /** Asks the relay for a signed checkpoint of `topic` (checked by the session). */
    requestCheckpoint(topic) {
      this.#session.requestCheckpoint(topic);
      this.#flush();
    }

    /** The next seq owed on `topic`. */
    cursor(topic) {
      return this.#session.cursor(topic);
    }

    /** Who holds `resource` in the topic's replica. */
    claimHolder(topic, resource) {
      return this.#session.claimHolder(topic, resource);
    }

    /** The topic's elected leader now. */
    leader(topic, nowMs = Date.now()) {
      return this.#session.leader(topic, nowMs);
    }

    /** Persistable state (Uint8Array): pass it back as `options.state` to resume. */
    exportState() {
      return this.#session.exportState();
    }

    /** Closes the connection for good; pending publishes stay in `exportState()`. */
    close() {
      this.#closed = true;
      clearTimeout(this.#reconnectTimer);
      clearTimeout(this.#wakeTimer);
      clearInterval(this.#tickTimer);
      const ws = this.#ws;
      this.#ws = null;
      if (ws) ws.close(1000);
      this.#session.disconnected();
      for (const subscription of this.#subscriptions.values()) subscription.end();
      for (const { reject } of this.#pending.values()) reject(relayError("CLOSED", "client closed"));
      this.#pending.clear();
      for (const { reject } of this.#liveWaiters.splice(0)) {
        reject(relayError("CLOSED", "client closed"));
      }
      // Last: a "status" handler that throws cannot stop the close halfway.
      this.#setStatus("closed");
    }

    #emit(type, value) {
      for (const handler of this.#listeners.get(type) ?? []) handler(value);
    }

    #setStatus(status) {
      if (this.status === status) return;
      if (this.status === "misbehaviour" && status !== "closed") return;
      this.status = status;
      this.#emit("status", status);
    }

    #open() {
      if (this.#closed) return;
      this.#setStatus("connecting");
      let ws;
      try {
        ws = new this.#WebSocket(withCapabilities(this.url, this.#capabilities));
      } catch (error) {
        this.#scheduleReconnect();
        return;
      }
      this.#ws = ws;
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        if (this.#ws !== ws) return;
        this.#session.connected();
        this.#inbox = [];
      };
      ws.onmessage = (event) => {
        if (this.#ws !== ws || typeof event.data === "string") return;
        this.#inbox.push(new Uint8Array(event.data));
        if (!this.#drainScheduled) {
          this.#drainScheduled = true;
          queueMicrotask(() => this.#drain());
        }
      };
      ws.onclose = () => {
        if (this.#ws !== ws) return;
        this.#drain();
        this.#ws = null;
        this.#session.disconnected();
        this.#scheduleReconnect();
      };
      ws.onerror = (event) => {
        if (this.#ws === ws) this.#lastError = event?.message ?? event?.error?.message ?? "socket error";
      };
    }

    #scheduleReconnect() {
      if (this.#closed) return;
      this.#setStatus("connecting");
      // A lost connection or a failed connect moves to the next frontend (cluster mode). The
      // session resumes there from its cursors and re-sends unacknowledged ops, same bytes.
      const from = this.url;
      this.#frontendIndex = (this.#frontendIndex + 1) % this.#frontends.length;
      const { minBackoffMs: min, maxBackoffMs: max } = this.#timing;
      const delay = Math.min(max, min * 2 ** this.#attempts) * (0.5 + Math.random() / 2);
      this.#attempts += 1;
      this.#reconnectTimer = setTimeout(() => this.#open(), delay);
      // Last: a handler that throws cannot stop the reconnect.
      if (this.url !== from) this.#emit("failover", { from, to: this.url });
    }

    #drain() {
      this.#drainScheduled = false;
      if (this.#inbox.length === 0) return;
      const batch = this.#inbox;
      this.#inbox = [];
      try {
        this.#session.receiveBatch(batch, Date.now());
      } catch (error) {
        // Not a frame: this relay does not speak the protocol; drop the connection.
        this.#emit("error", error);
        this.#ws?.close(4000);
      }
      this.#process();
    }

    // A timer for the session's next own deadline (a retry due, a publish timeout), when it is
    // before the one already set; the interval tick covers everything else.
    #scheduleWake() {
      if (this.#closed) return;
      const at = this.#session.nextWakeMs();
      if (at === undefined || at >= this.#wakeAt) return;
      clearTimeout(this.#wakeTimer);
      this.#wakeAt = at;
      const delay = Math.min(MAX_TIMER_MS, Math.max(1, at - Date.now()));
      this.#wakeTimer = setTimeout(() => {
        this.#wakeAt = Infinity;
        this.#session.tick(Date.now());
        this.#process();
      }, delay);
      if (typeof this.#wakeTimer?.unref === "function") this.#wakeTimer.unref();
    }

    #flush() {
      const ws = this.#ws;
      const frames = this.#session.takeOutgoing();
      if (!ws || ws.readyState !== 1) return;
      for (const frame of frames) ws.send(frame);
    }

    #process() {
      this.#flush();
      for (const event of this.#session.takeEvents()) {
        switch (event.type) {
          case "live":
            this.#attempts = 0;
            this.#setStatus("live");
            for (const { resolve } of this.#liveWaiters.splice(0)) resolve();
            break;
          case "subscribed":
            this.#subscriptions.get(event.topic)?.subscribed(event.head);
            this.#emit("subscribed", event);
            break;
          case "entry":
            this.#subscriptions.get(event.topic)?.push(event);
            break;
          case "replica": {
            this.#subscriptions.get(event.topic)?.push(event);
            if (event.event.type === "compensation") this.#compensate(event.event, event.topic);
            break;
          }
          case "verified":
            this.#setStatus("verified");
            this.#emit("verified", event);
            break;
          case "acknowledged": {
            const pending = this.#pending.get(event.opId);
            this.#pending.delete(event.opId);
            const receipt = { topic: event.topic, opId: event.opId, seq: event.seq, receipt: event.receipt };
            pending?.resolve(receipt);
            this.#emit("acknowledged", receipt);
            break;
          }
          case "refused": {
            const pending = this.#pending.get(event.opId);
            this.#pending.delete(event.opId);
            pending?.reject(relayError(event.code, event.message));
            break;
          }
          case "timedOut": {
            const pending = this.#pending.get(event.opId);
            this.#pending.delete(event.opId);
            const error = relayError(event.code, event.message);
            error.opId = event.opId;
            error.op = event.op;
            pending?.reject(error);
            break;
          }
          case "retrying": {
            const { topic, opId, code, message, attempt, retryAtMs } = event;
            this.#emit("retrying", { topic, opId, code, message, attempt, retryAtMs: Number(retryAtMs) });
            break;
          }
          case "receiptAudited":
            this.#emit("audited", event);
            break;
          case "pushed": {
            const pushed = { topic: event.topic, seq: event.seq, event: event.event };
            this.#emit("event", pushed);
            // A followed topic's replica gives its compensations (and checks this push).
            if (event.event?.type === "compensation" && !this.#replicaTopics.has(event.topic)) {
              this.#compensate(event.event, event.topic);
            }
            break;
          }
          case "misbehaviour":
            this.#setStatus("misbehaviour");
            this.#emit("misbehaviour", event);
            break;
          case "relayError":
            this.#emit("error", relayError(event.code, event.message));
            break;
          case "subscriptionEnded": {
            const error = relayError(event.code, event.message);
            error.topic = event.topic;
            this.#subscriptions.get(event.topic)?.refused(error);
            this.#emit("error", error);
            break;
          }
          default:
            break;
        }
      }
      for (const subscription of this.#subscriptions.values()) subscription.settle();
      this.#flush();
      this.#scheduleWake();
    }
  }
  return RelayClient;
}
