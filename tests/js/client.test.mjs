// RelayClient (ants-coord/client) in Node 20 against the real ants-relay binary, started by the
// test on 127.0.0.1 with a temp data dir: publish/subscribe, relay restart mid-stream (no loss,
// no duplicate), resume after a simulated page reload from exported state.
//
// Needs: scripts/build-pkg.sh (pkg/) and `cargo build --features relay --bin ants-relay`
// (found through CARGO_TARGET_DIR or target/debug).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, after } from 'node:test';

import { WebSocket } from 'ws';
import { Identity, RelayComparison, Session } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { assertCode, freePort, root, waitForHttp } from './helpers.mjs';

const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const relayBin = join(targetDir, 'debug', 'ants-relay');
const data = mkdtempSync(join(tmpdir(), 'ants-client-test-'));
let relay = null;
let port = 0;

async function startRelay() {
  if (relay) return;
  port ||= await freePort();
  const child = spawn(relayBin, ['--listen', `127.0.0.1:${port}`, '--data', data], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let alive = true;
  child.once('exit', () => {
    alive = false;
  });
  await waitForHttp(`http://127.0.0.1:${port}/`, 20_000, () => alive);
  relay = child;
}

async function stopRelay() {
  if (!relay) return;
  const child = relay;
  relay = null;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

after(async () => {
  await stopRelay();
  rmSync(data, { recursive: true, force: true });
});

const url = () => `ws://127.0.0.1:${port}/ws`;
const seed = (n) => new Uint8Array(32).fill(n);

async function take(iterator, n) {
  const items = [];
  for await (const item of iterator) {
    if (item.type === 'entry') items.push(item);
    if (items.length === n) break;
  }
  return items;
}

test('the relay binary and the package are built', () => {
  assert.ok(existsSync(relayBin), `build it: cargo build --features relay --bin ants-relay (${relayBin})`);
});

test('publish and subscribe through the real relay, verified', async () => {
  await startRelay();
  const alice = await RelayClient.connect(url(), Identity.fromSeed(seed(1)), { WebSocket });
  const bob = await RelayClient.connect(url(), Identity.fromSeed(seed(2)), { WebSocket });
  const misbehaviour = [];
  for (const client of [alice, bob]) client.on('misbehaviour', (e) => misbehaviour.push(e));
  const feed = bob.subscribe('room');
  const receipts = [];
  for (let i = 0; i < 10; i += 1) receipts.push(await alice.publish('room', 'note', `hello ${i}`));
  assert.deepEqual(receipts.map((r) => Number(r.seq)), [...Array(10).keys()]);
  const entries = await take(feed, 10);
  assert.deepEqual(entries.map((e) => Number(e.seq)), [...Array(10).keys()]);
  assert.equal(new TextDecoder().decode(entries[3].body), 'hello 3');
  assert.equal(entries[0].author, alice.agentId);
  assert.deepEqual(misbehaviour, []);
  alice.close();
  bob.close();
});

test('a wrong URL rejects with CONNECT_TIMEOUT instead of hanging', async () => {
  const wrong = `ws://127.0.0.1:${port}/not-the-relay`;
  await assert.rejects(
    RelayClient.connect(wrong, Identity.fromSeed(seed(9)), { WebSocket, connectTimeoutMs: 500, minBackoffMs: 50 }),
    (error) => error.code === 'CONNECT_TIMEOUT' && /not-the-relay/.test(error.message),
  );
});

test('relay restart mid-stream: no loss, no duplicate; resume from exported state', async () => {
  const alice = await RelayClient.connect(url(), Identity.fromSeed(seed(3)), {
    WebSocket,
    minBackoffMs: 50,
    maxBackoffMs: 500,
  });
  const reader = await RelayClient.connect(url(), Identity.fromSeed(seed(4)), { WebSocket, minBackoffMs: 50 });
  const seen = [];
  reader.subscribe('log', { onEntry: (e) => seen.push(Number(e.seq)) });
  const published = [];
  for (let i = 0; i < 5; i += 1) published.push(alice.publish('log', 'note', `a${i}`));
  await Promise.all(published);
  // The relay goes away with more ops queued; they are sent again after it restarts.
  await stopRelay();
  const more = [];
  for (let i = 5; i < 12; i += 1) more.push(alice.publish('log', 'note', `a${i}`));
  await startRelay();
  const receipts = await Promise.all(more);
  assert.deepEqual(receipts.map((r) => Number(r.seq)), [5, 6, 7, 8, 9, 10, 11]);
  while (seen.length < 12) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(seen, [...Array(12).keys()], 'no loss, no duplicate');

  // A page reload of the reader: a new client from the exported state resumes at its cursor.
  const state = reader.exportState();
  reader.close();
  await alice.publish('log', 'note', 'while away');
  const resumed = await RelayClient.connect(url(), Identity.fromSeed(seed(4)), { WebSocket, state });
  assert.equal(resumed.cursor('log'), 12);
  const later = [];
  resumed.subscribe('log', { onEntry: (e) => later.push(Number(e.seq)) });
  while (later.length < 1) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(later, [12]);
  alice.close();
  resumed.close();
});

test('a replica config given to subscribe: the leader among its candidates, bad config refused', async () => {
  await startRelay();
  const ids = [5, 6, 7].map((n) => Identity.fromSeed(seed(n)));
  const client = await RelayClient.connect(url(), ids[0], { WebSocket });
  const config = { candidates: ids.map((id) => ({ agentId: id.agentId })), electionWindowMs: 1000 };
  const feed = client.subscribe('elect', { config });
  await client.publish('elect', 'note', 'hello');
  await feed.caughtUp();
  const leader = client.leader('elect', 5_000);
  assert.ok(ids.some((id) => id.agentId === leader), `leader ${leader} is a candidate`);
  // Every participant with the same config computes the same leader.
  const { Replica } = await import('ants-coord');
  assert.equal(new Replica('elect', config).leader(5_000).leader, leader);
  assert.throws(() => client.subscribe('elect2', { config: { candidates: 'nobody' } }), (e) => e.code === 'BAD_INPUT');
  assert.equal(client.cursor('elect2'), undefined, 'a refused subscribe changes nothing');
  client.close();
});

test('bad numbers and op ids from JS are refused with BAD_INPUT and change nothing', () => {
  const session = new Session(Identity.fromSeed(seed(8)));
  for (const bad of [NaN, -1, Infinity, 2 ** 60]) {
    assertCode(() => session.tick(bad), 'BAD_INPUT', `tick(${bad})`);
    assertCode(() => session.publish('t', 'note', new Uint8Array(1), bad), 'BAD_INPUT', `publish at ${bad}`);
    assertCode(() => session.subscribe('t', bad, false), 'BAD_INPUT', `subscribe from ${bad}`);
    assertCode(() => new RelayComparison(2, bad, false), 'BAD_INPUT', `deadline ${bad}`);
  }
  assert.equal(session.cursor('t'), undefined);
  assert.equal(new Session(Identity.fromSeed(seed(8))).exportState().length, session.exportState().length);
  const comparison = new RelayComparison(2, 100, false);
  assertCode(() => comparison.shown(0, 'not an op id', 0), 'BAD_INPUT');
  assertCode(() => comparison.shown(2, 'ab'.repeat(32), 0), 'BAD_INPUT');
  assertCode(() => new RelayComparison(1, 100, false), 'BAD_INPUT');
  assert.equal(comparison.size, 0);
});
