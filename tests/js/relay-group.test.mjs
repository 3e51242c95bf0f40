// RelayGroup (ants-coord/client) against two real ants-relay processes started by the test:
// one op per publish on both relays, each entry delivered once, checkpoint gossip between honest
// relays raises nothing, and an op one relay never shows (a proxy in front of it swallows the
// publish) is reported NOT_ON_ALL_RELAYS after the deadline. A relay out of reach at connect
// does not keep the group from coming up with the others, and gets the ops once it is up.
//
// Needs: scripts/build-pkg.sh (pkg/) and `cargo build --features relay --bin ants-relay`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { WebSocket, WebSocketServer } from 'ws';
import { Identity } from 'ants-coord';
import { RelayGroup } from 'ants-coord/client';

import { freePort, root, waitForHttp } from './helpers.mjs';

const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const relayBin = join(targetDir, 'debug', 'ants-relay');
const relays = [];
const cleanups = [];

async function startRelay(port) {
  const data = mkdtempSync(join(tmpdir(), 'ants-group-test-'));
  port ??= await freePort();
  const child = spawn(relayBin, ['--listen', `127.0.0.1:${port}`, '--data', data], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let alive = true;
  child.once('exit', () => {
    alive = false;
  });
  cleanups.push(async () => {
    if (alive) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(data, { recursive: true, force: true });
  });
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 20_000, () => alive);
  return `ws://127.0.0.1:${port}/ws`;
}

/** A WebSocket proxy in front of `upstream` that swallows client frames containing `marker`. */
async function swallowingProxy(upstream, marker) {
  const port = await freePort();
  const server = new WebSocketServer({ host: '127.0.0.1', port });
  const needle = Buffer.from(marker);
  server.on('connection', (client) => {
    const relay = new WebSocket(upstream);
    const early = [];
    relay.on('open', () => early.splice(0).forEach((m) => relay.send(m)));
    relay.on('message', (m) => client.readyState === WebSocket.OPEN && client.send(m));
    client.on('message', (m) => {
      if (Buffer.from(m).includes(needle)) return;
      if (relay.readyState === WebSocket.OPEN) relay.send(m);
      else early.push(m);
    });
    client.on('close', () => relay.close());
    relay.on('close', () => client.close());
  });
  await new Promise((resolve) => server.once('listening', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        for (const c of server.clients) c.terminate();
        server.close(resolve);
      }),
  );
  return `ws://127.0.0.1:${port}/ws`;
}

before(async () => {
  relays.push(await startRelay(), await startRelay());
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const seed = (n) => new Uint8Array(32).fill(n);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const options = { WebSocket, deadlineMs: 1500, gossipMs: 200 };

test('two honest relays: one op per publish, each entry once, gossip raises nothing', async () => {
  const alice = await RelayGroup.connect(relays, Identity.fromSeed(seed(1)), options);
  const bob = await RelayGroup.connect(relays, Identity.fromSeed(seed(2)), options);
  const reports = [];
  const seen = { alice: [], bob: [] };
  for (const [name, group] of [['alice', alice], ['bob', bob]]) {
    group.on('misbehaviour', (e) => reports.push({ name, ...e }));
    group.subscribe('shared', { expectAll: true, onEntry: (e) => seen[name].push(new TextDecoder().decode(e.body)) });
  }
  const receipts = await alice.publish('shared', 'note', 'from alice');
  assert.equal(receipts.length, 2);
  assert.equal(receipts[0].opId, receipts[1].opId, 'the same op on both relays');
  await bob.publish('shared', 'note', 'from bob');
  // Wait for what must happen (each op seen by each group, verified heads on both relays), not
  // for a fixed time, which a busy machine can overrun; then let the deadline and a few gossip
  // rounds pass, so that a NOT_ON_ALL_RELAYS or a gossip conflict would have been reported (a
  // lower bound only: waiting longer cannot make the test fail).
  const until = Date.now() + 20_000;
  const done = () =>
    seen.alice.length >= 2 && seen.bob.length >= 2 && alice.clients.every((c) => c.gossip('shared') !== undefined);
  while (!done() && Date.now() < until) await sleep(50);
  await sleep(options.deadlineMs + 3 * options.gossipMs);
  for (const name of ['alice', 'bob']) {
    assert.deepEqual([...seen[name]].sort(), ['from alice', 'from bob'], `${name} got each op once`);
  }
  const gossiped = alice.clients.every((c) => c.gossip('shared') !== undefined);
  assert.ok(gossiped, 'both relays gave verified heads');
  assert.deepEqual(reports, []);
  alice.close();
  bob.close();
});

test('an op one relay never shows is reported NOT_ON_ALL_RELAYS after the deadline', async () => {
  const hiding = await swallowingProxy(relays[1], 'hidden on relay two');
  const urls = [relays[0], hiding];
  const alice = await RelayGroup.connect(urls, Identity.fromSeed(seed(3)), options);
  const reports = [];
  alice.on('misbehaviour', (e) => reports.push(e));
  alice.subscribe('hiding');
  // Relay one acknowledges it; relay two never sees it, so the group's promise stays pending.
  const hidden = alice.publish('hiding', 'note', 'hidden on relay two');
  await alice.publish('hiding', 'note', 'shown on both');
  const deadline = Date.now() + 10_000;
  while (!reports.some((r) => r.code === 'NOT_ON_ALL_RELAYS') && Date.now() < deadline) await sleep(100);
  const missing = reports.filter((r) => r.code === 'NOT_ON_ALL_RELAYS');
  assert.equal(missing.length, 1, JSON.stringify(reports));
  assert.equal(missing[0].relay, hiding);
  assert.equal(missing[0].seenOn, relays[0]);
  assert.match(missing[0].detail, /missing on/);
  alice.close();
  await assert.rejects(hidden, (e) => e.code === 'CLOSED', 'still unacknowledged by relay two at close');
});

test('a relay out of reach at connect: the group comes up with the others, and the op reaches it once it is up', async () => {
  const port = await freePort();
  const late = `ws://127.0.0.1:${port}/ws`;
  const urls = [relays[0], relays[1], late];
  const statuses = [];
  const alice = await RelayGroup.connect(urls, Identity.fromSeed(seed(5)), { ...options, maxBackoffMs: 300 });
  alice.on('status', (e) => statuses.push(e));
  assert.deepEqual(alice.clients.map((c) => c.status), ['live', 'live', 'connecting']);
  const reports = [];
  alice.on('misbehaviour', (e) => reports.push(e));
  alice.subscribe('late');
  const published = alice.publish('late', 'note', 'waits for the third relay');
  const deadline = Date.now() + 10_000;
  while (reports.length === 0 && Date.now() < deadline) await sleep(100);
  assert.equal(reports.length, 1, JSON.stringify(reports));
  assert.equal(reports[0].code, 'NOT_ON_ALL_RELAYS');
  assert.equal(reports[0].relay, late);
  assert.equal(reports[0].status, 'connecting', 'reported as out of reach, not as hiding the op');
  await startRelay(port);
  const receipts = await published;
  assert.equal(receipts.length, 3);
  assert.ok(receipts.every((r) => r.opId === receipts[0].opId), 'the same op on all three relays');
  assert.ok(statuses.some((e) => e.relay === late && e.status === 'live'), JSON.stringify(statuses));
  alice.close();
});

test('RelayGroup rejects CONNECT_TIMEOUT, naming the relays out of reach, when fewer than minLive are live', async () => {
  const dead = `ws://127.0.0.1:${await freePort()}/ws`;
  await assert.rejects(
    RelayGroup.connect([relays[0], dead], Identity.fromSeed(seed(6)), { ...options, minLive: 2, connectTimeoutMs: 800 }),
    (e) => e.code === 'CONNECT_TIMEOUT' && e.message.includes(dead) && !e.message.includes(relays[0]),
  );
  for (const minLive of [0, 3, 1.5]) {
    await assert.rejects(
      RelayGroup.connect(relays, Identity.fromSeed(seed(6)), { ...options, minLive }),
      (e) => e.code === 'BAD_INPUT',
    );
  }
});

test('RelayGroup refuses fewer than two relays', async () => {
  await assert.rejects(RelayGroup.connect([relays[0]], Identity.fromSeed(seed(4)), options), (e) => e.code === 'BAD_INPUT');
});
