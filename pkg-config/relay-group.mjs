// RelayGroup: one topic followed on several relays, compared, with checkpoint gossip.
//
// Each relay numbers the topic on its own; the group publishes the *same signed op* to every
// relay and compares the relays by op id (the core's RelayComparison): an op that one relay
// acknowledged or showed and another has not shown past the deadline is reported. Each relay's
// own order (author counters, deps, forged entries, a signed head that contradicts its entries)
// is checked by that relay's Session. To catch a relay that shows two histories to two clients,
// the group publishes the heads it verified on one relay as gossip ops (kind "ants.checkpoint")
// through the *other* relays, and hands every gossip op it sees to every relay's session.

import { badInput, codedError, msOption, optionsArg } from "./client.mjs";

const GOSSIP_KIND = "ants.checkpoint";
const MAX_DELIVERED = 100_000;

/**
 * Resolves once `minLive` of `clients` are live; rejects with CONNECT_TIMEOUT, naming the relays
 * not live, after `ms`.
 */
function liveQuorum(urls, clients, minLive, ms) {
  return new Promise((resolve, reject) => {
    const live = new Set();
    const timer = setTimeout(() => {
      const missing = urls.filter((_, i) => !live.has(i));
      const detail = `${minLive} needed; not live: ${missing.join(", ")}`;
      reject(codedError("CONNECT_TIMEOUT", `${live.size} of ${urls.length} relays live within ${ms} ms, ${detail}`));
    }, ms);
    clients.forEach((client, i) =>
      client.ready().then(
        () => {
          live.add(i);
          if (live.size >= minLive) {
            clearTimeout(timer);
            resolve();
          }
        },
        // Rejected only when the client is closed: the timeout or the caller decides.
        () => {},
      ),
    );
  });
}

export function makeRelayGroup(ants, RelayClient) {
  class RelayGroup {
    #clients;
    #listeners = new Map();
    #topics = new Map();
    #timer;
    #options;

    /**
     * Connects to every url (2 to 16) as `identity`, all at once. Resolves once `minLive` of
     * them (default: a majority) are live; the others keep reconnecting in the background, and
     * what is published meanwhile waits in their sessions until they are back. Rejects with
     * CONNECT_TIMEOUT, closing every connection, when fewer are live after `connectTimeoutMs`
     * (default 10 s). `options` are RelayClient options plus `minLive`, `deadlineMs` (default
     * 30 s: how long an op may be missing from one relay), `gossipMs` (default 10 s: how often
     * verified heads are asked for and gossiped) and `states` (one exported state per relay, in
     * url order).
     */
    static async connect(urls, identity, options = {}) {
      if (!Array.isArray(urls) || urls.length < 2 || urls.length > 16) {
        throw badInput("RelayGroup needs 2 to 16 relay urls");
      }
      optionsArg(options);
      // Checked before any connection: `deadlineMs` is used at subscribe, `gossipMs` by a timer.
      const connectTimeoutMs = msOption(options, "connectTimeoutMs", 10_000);
      msOption(options, "deadlineMs", 30_000);
      msOption(options, "gossipMs", 10_000);
      const minLive = options.minLive ?? Math.floor(urls.length / 2) + 1;
      if (!Number.isInteger(minLive) || minLive < 1 || minLive > urls.length) {
        throw badInput(`minLive must be an integer from 1 to ${urls.length}`);
      }
      if (options.states != null && (!Array.isArray(options.states) || options.states.length > urls.length)) {
        throw badInput("states must be an array of exported states, one per relay url");
      }
      const clients = [];
      try {
        for (const [i, url] of urls.entries()) {
          const state = options.states?.[i];
          clients.push(await RelayClient.connect(url, identity, { ...options, state, wait: false }));
        }
        await liveQuorum(urls, clients, minLive, connectTimeoutMs);
      } catch (error) {
        for (const client of clients) client.close();
        throw error;
      }
      return new RelayGroup(urls, clients, options);
    }

    constructor(urls, clients, options = {}) {
      this.urls = [...urls];
      this.#clients = clients;
      this.#options = {
        deadlineMs: msOption(options, "deadlineMs", 30_000),
        gossipMs: msOption(options, "gossipMs", 10_000),
      };
      clients.forEach((client, i) => {
        client.on("misbehaviour", (event) => this.#emit("misbehaviour", { ...event, relay: urls[i] }));
        client.on("verified", (event) => this.#gossip(i, event.topic));
        client.on("status", (status) => this.#emit("status", { relay: urls[i], status }));
      });
      this.#timer = setInterval(() => this.#tick(), Math.min(1000, this.#options.gossipMs));
      if (typeof this.#timer?.unref === "function") this.#timer.unref();
    }

    /** The RelayClient of each relay, in url order. */
    get clients() {
      return [...this.#clients];
    }

    /**
     * `on("misbehaviour" | "error" | "status", handler)`; returns a function that removes it.
     * "status" events are `{ relay, status }`, one relay's RelayClient status.
     */
    on(type, handler) {
      if (typeof type !== "string") throw badInput("event type must be a string");
      if (typeof handler !== "function") throw badInput("handler must be a function");
      if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
      this.#listeners.get(type).add(handler);
      return () => this.#listeners.get(type)?.delete(handler);
    }

    /**
     * Follows `topic` on every relay; `onEntry(entry)` gets each op once (from whichever relay
     * showed it first, named by `entry.relay`). With `expectAll`, every op — not only ours — must
     * show on every relay.
     */
    subscribe(topic, options = {}) {
      const { onEntry, expectAll = false, from = 0, config } = optionsArg(options);
      if (onEntry != null && typeof onEntry !== "function") throw badInput("onEntry must be a function");
      const comparison = new ants.RelayComparison(this.#clients.length, this.#options.deadlineMs, expectAll);
      const state = { comparison, delivered: new Set(), fresh: new Set(), lastGossip: new Map() };
      this.#clients.forEach((client, i) => {
        client.subscribe(topic, {
          from,
          config,
          onEntry: (entry) => {
            // Gossip goes only through the relays other than the one it speaks of: not compared.
            if (entry.kind === GOSSIP_KIND) {
              this.#takeGossip(entry.body);
              return;
            }
            comparison.shown(i, entry.opId, Date.now());
            state.fresh.add(i);
            if (state.delivered.has(entry.opId)) return;
            state.delivered.add(entry.opId);
            if (state.delivered.size > MAX_DELIVERED) {
              state.delivered.delete(state.delivered.values().next().value);
            }
            onEntry?.({ ...entry, relay: this.urls[i] });
          },
        });
      });
      // After the clients took the topic: a topic they refuse leaves no state here.
      this.#topics.set(topic, state);
    }

    /** Publishes one signed op to every relay; resolves to the receipts, in url order. */
    publish(topic, kind, body) {
      const { op, receipt } = this.#clients[0].publishOp(topic, kind, body);
      const opId = ants.opId(op);
      const comparison = this.#topics.get(topic)?.comparison;
      comparison?.published(opId);
      const receipts = [receipt, ...this.#clients.slice(1).map((client) => client.publishSigned(op))];
      receipts.forEach((promise, i) =>
        promise.then(
          () => comparison?.acknowledged(i, opId, Date.now()),
          () => {},
        ),
      );
      return Promise.all(receipts);
    }

    /** Persistable states, one per relay in url order (pass back as `options.states`). */
    exportStates() {
      return this.#clients.map((client) => client.exportState());
    }

    /** Closes every connection. */
    close() {
      clearInterval(this.#timer);
      for (const client of this.#clients) client.close();
    }

    #emit(type, value) {
      for (const handler of this.#listeners.get(type) ?? []) handler(value);
    }

    #tick() {
      const now = Date.now();
      for (const [topic, state] of this.#topics) {
        for (const d of state.comparison.tick(now)) {
          this.#emit("misbehaviour", {
            type: "misbehaviour",
            code: "NOT_ON_ALL_RELAYS",
            topic,
            opId: d.opId,
            relay: this.urls[d.missingOn],
            // "live" or "verified" for a relay that holds the op back; "connecting" for one
            // that is out of reach.
            status: this.#clients[d.missingOn].status,
            seenOn: this.urls[d.seenOn],
            detail: `op ${d.opId} shown by ${this.urls[d.seenOn]} is missing on ${this.urls[d.missingOn]} after ${d.waitedMs} ms`,
          });
        }
        // Relays with new entries since their last gossip: ask for a signed head; the
        // "verified" event that answers it is gossiped.
        for (const i of state.fresh) {
          const last = state.lastGossip.get(i) ?? 0;
          if (now - last >= this.#options.gossipMs) this.#clients[i].requestCheckpoint(topic);
        }
      }
    }

    #gossip(i, topic) {
      const state = this.#topics.get(topic);
      // Only heads that cover new non-gossip entries: gossip about gossip would never settle.
      if (!state?.fresh.has(i)) return;
      if (Date.now() - (state.lastGossip.get(i) ?? 0) < this.#options.gossipMs) return;
      const body = this.#clients[i].gossip(topic);
      if (!body) return;
      state.fresh.delete(i);
      state.lastGossip.set(i, Date.now());
      this.#clients.forEach((client, j) => {
        if (j !== i) client.publish(topic, GOSSIP_KIND, body).catch((error) => this.#emit("error", error));
      });
    }

    #takeGossip(body) {
      for (const client of this.#clients) {
        try {
          client.receiveGossip(body);
        } catch (error) {
          this.#emit("error", error);
        }
      }
    }
  }
  return RelayGroup;
}
