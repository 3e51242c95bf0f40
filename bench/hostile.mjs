// The relay under the attacks of issue 22 items 1, 2, 5 and 6, one after another, against one
// release relay on loopback, with its memory watched throughout (items 3 and 4: `ants-load
// flood`). For each attack: the relay's RSS before it, at its peak, and `--after` seconds after
// the attack's connections closed (the target: back within 1.5× of before, within 30 s).
//
//   1. ping flood: `--ping-connections` sockets each send `--pings` WebSocket pings and never
//      read (the relay answers each with a pong it must hold); one socket alone first, whose
//      peak growth is set against the README's per-connection budget for a `/ws` connection;
//   2. large entries: `--big-ops` ops of 256 KiB (as large as an op may be) over 4 topics by
//      one key holder, then idle;
//   5. presence lockout: 11 connections try to own 200 awareness ids each in one room (the relay
//      closes them), then each owns the most it may (4); meanwhile stock y-websocket providers
//      join the room one after another: the time from `new WebsocketProvider` to synced with
//      the room's text, `--joins` of them, against as many joins before the attack (the peer;
//      target: every join within 1 s);
//   6. room storm: `--storm-rooms` connections open as many rooms (bench/hostile-storm.mjs, in a
//      worker thread: the attacker's event loop is not the honest clients'), each sends a sync
//      step 1 and an update; meanwhile an honest room of two stock providers carries an update from
//      one to the other every 20 ms: its propagation p50/p99/max before the storm (the peer,
//      same run) and during it (target: p99 under 100 ms).
//
//   cargo build --release --features relay --bin ants-relay && node bench/hostile.mjs
//
// ANTS_RELAY_BIN=path runs another relay binary. Needs the package (scripts/build-pkg.sh).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { freePort, root, waitForHttp } from '../tests/js/helpers.mjs';
import { closeAll, openSocket, varUint } from './sockets.mjs';

const { values } = parseArgs({
  options: {
    after: { type: 'string', default: '30' },
    'ping-connections': { type: 'string', default: '8' },
    pings: { type: 'string', default: '750000' },
    'big-ops': { type: 'string', default: '6000' },
    joins: { type: 'string', default: '20' },
    'storm-rooms': { type: 'string', default: '1000' },
    only: { type: 'string' },
  },
});
const AFTER_S = Number(values.after);
const binary = process.env.ANTS_RELAY_BIN ?? join(root, 'target/release/ants-relay');

/** The relay's resident set, in MiB (from /proc). */
function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

/** Samples `pid`'s RSS every 100 ms until `stop()`; `stop()` returns the peak, in MiB. */
function watchPeak(pid) {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 100);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssMiB(pid));
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The `p` quantile (0..1) of `values`, in their unit. */
function quantile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Prints one attack's memory line; returns the ratio after/before. */
async function memoryAfter(relay, name, before, peak) {
  await sleep(AFTER_S * 1000);
  const after = rssMiB(relay.pid);
  const ratio = after / before;
  const status = readFileSync(`/proc/${relay.pid}/status`, 'utf8');
  const kib = (field) => (Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)[1]) / 1024).toFixed(1);
  const metrics = await (await fetch(`${relay.http}/metrics`)).text();
  const gauge = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  console.log(
    `${name}: RSS ${before.toFixed(1)} MiB before, ${peak.toFixed(1)} MiB at the peak, ` +
      `${after.toFixed(1)} MiB ${AFTER_S} s after = ${ratio.toFixed(2)}× before (target ≤ 1.5×: ${ratio <= 1.5 ? 'met' : 'NOT met'}); ` +
      `after: anonymous ${kib('RssAnon')} MiB, file-backed ${kib('RssFile')} MiB, entry cache ${(gauge('ants_relay_cache_bytes') / 2 ** 20).toFixed(1)} MiB, ` +
      `${gauge('ants_relay_yjs_rooms')} Yjs rooms open`,
  );
  return ratio;
}

// ---- item 1: ping flood ----

/** Sends `count` pings on a socket that never reads; resolves when sent or when it closed. */
async function pingFlood(url, count) {
  const ws = await openSocket(url);
  ws._socket.pause(); // never read: the relay's pongs pile up on its side
  let closed = false;
  ws.once('close', () => (closed = true));
  ws.on('error', () => (closed = true));
  const payload = Buffer.alloc(0);
  for (let i = 0; i < count && !closed; i++) {
    ws.ping(payload);
    if (ws.bufferedAmount > 4 * 1024 * 1024) {
      // Let the socket drain before queueing more in this process.
      await new Promise((resolve) => setImmediate(resolve));
      while (ws.bufferedAmount > 1024 * 1024 && !closed) await sleep(1);
    }
  }
  return ws;
}

async function attackPings(relay) {
  const budgetMiB = (2 * 262_144 + 16_384 + 2 * (262_144 + 16) + 4 * 1024 * 1024 + 1024 * 1024) / 2 ** 20;
  const oneBefore = rssMiB(relay.pid);
  let stop = watchPeak(relay.pid);
  const one = await pingFlood(relay.ws, Number(values.pings));
  const onePeak = stop();
  await closeAll([one]);
  console.log(
    `ping flood, one connection: RSS grew ${(onePeak - oneBefore).toFixed(1)} MiB at most ` +
      `(the README's budget for one /ws connection at the defaults: ${budgetMiB.toFixed(1)} MiB)`,
  );
  await sleep(2_000);
  const before = rssMiB(relay.pid);
  stop = watchPeak(relay.pid);
  const n = Number(values['ping-connections']);
  const sockets = await Promise.all(Array.from({ length: n }, () => pingFlood(relay.ws, Number(values.pings))));
  const peak = stop();
  await closeAll(sockets);
  return memoryAfter(relay, `ping flood, ${n} connections × ${values.pings} pings`, before, peak);
}

// ---- item 2: large entries over several topics ----

async function attackBigEntries(relay) {
  const count = Number(values['big-ops']);
  const body = new Uint8Array(256 * 1024 - 1024).fill(0x5a);
  const before = rssMiB(relay.pid);
  const stop = watchPeak(relay.pid);
  const identity = Identity.generate();
  const client = await RelayClient.connect(relay.ws, identity, { WebSocket });
  const window = 16;
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < count) {
        const i = next++;
        await client.publish(`big-${i % 4}`, 'blob', body);
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  const peak = stop();
  client.close();
  console.log(`large entries: ${count} ops of ${body.length} bytes over 4 topics in ${seconds.toFixed(1)} s, all receipted`);
  return memoryAfter(relay, 'large entries', before, peak);
}

// ---- item 5: presence lockout ----

/** A y-protocols awareness message announcing `count` client ids from `from` on. */
function awarenessFlood(from, count) {
  const update = [];
  varUint(update, count);
  for (let id = from; id < from + count; id++) {
    varUint(update, id);
    varUint(update, 1);
    varUint(update, 2);
    update.push(0x7b, 0x7d);
  }
  const message = [1];
  varUint(message, update.length);
  return Uint8Array.from([...message, ...update]);
}

function provider(url, room, doc) {
  return new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true });
}

function destroyProvider(p) {
  p.destroy();
  p.doc.destroy();
}

async function attackPresence(relay) {
  const room = 'crowded';
  const before = rssMiB(relay.pid);
  const stop = watchPeak(relay.pid);
  const writer = provider(relay.yjs, room, new Y.Doc());
  await until(() => writer.synced, 'the writer to sync');
  writer.doc.getText('body').insert(0, 'shared');
  /** Stock providers joining one after another: each one's time from creation to synced. */
  const joinTimes = async () => {
    const joins = [];
    for (let j = 0; j < Number(values.joins); j++) {
      const doc = new Y.Doc();
      const started = performance.now();
      const newcomer = provider(relay.yjs, room, doc);
      await until(() => newcomer.synced && doc.getText('body').toString() === 'shared', 'a newcomer to sync', 30_000);
      joins.push(performance.now() - started);
      destroyProvider(newcomer);
    }
    return joins;
  };
  const calm = await joinTimes();
  const attackers = [];
  let refused = 0;
  for (let a = 0; a < 11; a++) {
    const from = 1_000_000 * (a + 1);
    const greedy = await openSocket(`${relay.yjs}/${room}`);
    const closed = new Promise((resolve) => greedy.once('close', (code) => resolve(code)));
    greedy.send(awarenessFlood(from, 200));
    if ((await closed) === 1008) refused++;
    const attacker = await openSocket(`${relay.yjs}/${room}`);
    attacker.send(awarenessFlood(from, 4));
    attackers.push(attacker);
  }
  await until(() => writer.awareness.getStates().size === 1 + 11 * 4, "the attackers' presence");
  const joins = await joinTimes();
  const peak = stop();
  destroyProvider(writer);
  await closeAll(attackers);
  const max = Math.max(...joins);
  console.log(
    `presence lockout: ${refused} of 11 greedy connections closed 1008; ${joins.length} stock providers joined ` +
      `and synced under the attack in p50 ${quantile(joins, 0.5).toFixed(1)} ms, max ${max.toFixed(1)} ms, against p50 ` +
      `${quantile(calm, 0.5).toFixed(1)} ms, max ${Math.max(...calm).toFixed(1)} ms before it (max ${(max / Math.max(...calm)).toFixed(2)}×; ` +
      `target ≤ 1,000 ms: ${max <= 1000 ? 'met' : 'NOT met'})`,
  );
  return memoryAfter(relay, 'presence lockout', before, peak);
}

// ---- item 6: room storm ----

/** Carries an update from A to B every 20 ms for `ms`; returns the propagation times (ms). */
async function propagation(a, b, ms) {
  const seen = [];
  const sent = new Map();
  const map = b.doc.getMap('clock');
  const observer = (event) => {
    for (const key of event.keysChanged) {
      const at = sent.get(key);
      if (at !== undefined) seen.push(performance.now() - at);
    }
  };
  map.observe(observer);
  const end = Date.now() + ms;
  let n = 0;
  while (Date.now() < end) {
    const key = `k${n++}`;
    sent.set(key, performance.now());
    a.doc.getMap('clock').set(key, n);
    await sleep(20);
  }
  await until(() => seen.length === n, 'every honest update to arrive', 30_000);
  map.unobserve(observer);
  return seen;
}

async function attackRooms(relay) {
  const a = provider(relay.yjs, 'honest', new Y.Doc());
  const b = provider(relay.yjs, 'honest', new Y.Doc());
  await until(() => a.synced && b.synced, 'the honest room to sync');
  const calm = await propagation(a, b, 3_000);

  const count = Number(values['storm-rooms']);
  const before = rssMiB(relay.pid);
  const stop = watchPeak(relay.pid);
  const honest = propagation(a, b, 6_000);
  const storm = new Worker(new URL('./hostile-storm.mjs', import.meta.url), {
    workerData: { url: relay.yjs, count, handshakes: 256 },
  });
  const { opened, failed, ms: openMs } = await new Promise((resolve) => storm.once('message', resolve));
  const during = await honest;
  const peak = stop();
  storm.postMessage('close');
  await new Promise((resolve) => storm.once('message', resolve));
  await storm.terminate();
  destroyProvider(a);
  destroyProvider(b);
  const p99 = quantile(during, 0.99);
  const line = (xs) => `p50 ${quantile(xs, 0.5).toFixed(1)}, p99 ${quantile(xs, 0.99).toFixed(1)}, max ${Math.max(...xs).toFixed(1)} ms`;
  console.log(
    `room storm: ${opened} rooms opened in ${(openMs / 1000).toFixed(1)} s by another thread, 256 upgrades in flight (${failed} failed); the honest room's propagation ` +
      `before: ${line(calm)}; during: ${line(during)} = ${(p99 / quantile(calm, 0.99)).toFixed(2)}× its p99 before ` +
      `(target p99 < 100 ms: ${p99 < 100 ? 'met' : 'NOT met'})`,
  );
  return memoryAfter(relay, 'room storm', before, peak);
}

// ---- the run ----

const data = mkdtempSync(join(tmpdir(), 'ants-coord-hostile-'));
const port = await freePort();
const child = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--data', data], { stdio: ['ignore', 'ignore', 'inherit'] });
const relay = { pid: child.pid, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws`, yjs: `ws://127.0.0.1:${port}/yjs` };
try {
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 30_000, () => child.exitCode === null);
  console.log(
    `relay ${binary}, ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ` +
      `${new Date().toISOString()}; RSS at start ${rssMiB(child.pid).toFixed(1)} MiB`,
  );
  const attacks = { 1: attackPings, 2: attackBigEntries, 5: attackPresence, 6: attackRooms };
  const chosen = values.only ? values.only.split(',') : Object.keys(attacks);
  for (const item of chosen) {
    await attacks[item](relay);
  }
  if (child.exitCode !== null) throw new Error('the relay exited during the attacks');
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve()));
  rmSync(data, { recursive: true, force: true });
}
process.exit(0);
