// The edge worker example (examples/edge-worker/worker.mjs) under Cloudflare's runtime (npm
// `workerd`) against the real ants-relay binary: esbuild bundles it like wrangler would, workerd
// serves two workers built from it — one with an AGENT_SEED binding, one without (a fresh key
// per request) — and their answers are checked against what a Node RelayClient following the
// same topic sees: same seq, same op id, same author, same holder, nothing reported.
//
// Needs: scripts/build-pkg.sh (pkg/) and `cargo build --features relay --bin ants-relay`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { bundleWorker, workerdBinary, workerdConfig } from '../../examples/edge-worker/serve.mjs';
import { freePort, root, waitForHttp } from './helpers.mjs';

const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const relayBin = join(targetDir, 'debug', 'ants-relay');

const TOPIC = 'edge-tasks';
const aliceSeed = new Uint8Array(32).fill(0xa1);
const hex = (bytes) => Buffer.from(bytes).toString('hex');

const dir = mkdtempSync(join(tmpdir(), 'ants-edge-test-'));
const servers = [];
let relayPort;
let alice; // http://127.0.0.1:port of the worker with AGENT_SEED
let fresh; // the worker without: a new key per request
let nowhere; // a worker whose RELAY_URL has no relay behind it
let observer; // a Node RelayClient following the topic
const seen = { entries: new Map(), events: [], misbehaviour: [] };

function start(command, args, label) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { child, label, output: '', exited: false };
  child.stdout.on('data', (chunk) => (server.output += chunk));
  child.stderr.on('data', (chunk) => (server.output += chunk));
  child.once('exit', () => (server.exited = true));
  servers.push(server);
  return server;
}

async function stop(server) {
  if (server.exited) return;
  const gone = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

before(async () => {
  assert.ok(existsSync(relayBin), `build it: cargo build --features relay --bin ants-relay (${relayBin})`);
  relayPort = await freePort();
  const relay = start(relayBin, ['--listen', `127.0.0.1:${relayPort}`, '--data', join(dir, 'relay')], 'relay');
  await waitForHttp(`http://127.0.0.1:${relayPort}/healthz`, 20_000, () => !relay.exited);
  const relayUrl = `ws://127.0.0.1:${relayPort}/ws`;

  // Bundled as wrangler would (examples/edge-worker/serve.mjs): one wasm module, shared by
  // `ants-coord/core` and `ants-coord/core/client` (the Identity and the Session share one
  // instance), of the core build: no document classes. This file's observer uses the full build.
  await bundleWorker(dir);
  const bundle = readFileSync(join(dir, 'worker.js'), 'utf8');
  assert.equal(bundle.match(/from "\.\/ants_coord_bg\.wasm"/g)?.length, 1);
  assert.match(bundle, /\/\/ pkg\/core\/ants_coord\.js\n/);
  assert.doesNotMatch(bundle, /SignedDoc/);
  const [alicePort, freshPort, nowherePort, closedPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // Its "internet" service lets the workers reach 127.0.0.1: workerd refuses private and
  // loopback addresses by default ("connecting to 127.0.0.1:… is not allowed").
  writeFileSync(
    join(dir, 'config.capnp'),
    workerdConfig([
      { name: 'alice', port: alicePort, bindings: { RELAY_URL: relayUrl, TOPIC, AGENT_SEED: hex(aliceSeed) } },
      { name: 'fresh', port: freshPort, bindings: { RELAY_URL: relayUrl, TOPIC } },
      { name: 'nowhere', port: nowherePort, bindings: { RELAY_URL: `ws://127.0.0.1:${closedPort}/ws`, TOPIC, CONNECT_TIMEOUT_MS: '500' } },
    ]),
  );
  const workerd = start(workerdBinary, ['serve', join(dir, 'config.capnp')], 'workerd');
  alice = `http://127.0.0.1:${alicePort}`;
  fresh = `http://127.0.0.1:${freshPort}`;
  nowhere = `http://127.0.0.1:${nowherePort}`;
  for (const base of [alice, fresh, nowhere]) {
    try {
      await waitForHttp(`${base}/`, 60_000, () => !workerd.exited);
    } catch (error) {
      throw new Error(`${error.message}\nworkerd output:\n${workerd.output}`);
    }
  }

  observer = await RelayClient.connect(relayUrl, Identity.fromSeed(new Uint8Array(32).fill(0x0b)), { WebSocket });
  observer.on('misbehaviour', (event) => seen.misbehaviour.push(event));
  observer.subscribe(TOPIC, {
    onEntry: (entry) => seen.entries.set(Number(entry.seq), entry),
    onEvent: (event) => seen.events.push(event),
  });
});

after(async () => {
  observer?.close();
  for (const server of servers.reverse()) await stop(server);
  rmSync(dir, { recursive: true, force: true });
});

/** Calls the worker; returns { status, body } (workerd's output attached on a non-JSON answer). */
async function call(base, method, path) {
  const response = await fetch(`${base}${path}`, { method });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    const output = servers.map((s) => `--- ${s.label}\n${s.output}`).join('\n');
    throw new Error(`${method} ${path}: ${response.status} ${text}\n${output}`);
  }
}

/** Waits until the observer has delivered `count` entries of the topic. */
async function observerReaches(count) {
  while ((observer.cursor(TOPIC) ?? 0) < count) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** The answer's receipt matches the entry the observer got at that seq. */
function assertSameEntry(body) {
  const entry = seen.entries.get(body.receipt.seq);
  assert.ok(entry, `observer has entry ${body.receipt.seq}`);
  assert.equal(entry.opId, body.receipt.opId);
  assert.equal(entry.author, body.agentId);
  assert.equal(entry.kind, 'claim');
  assert.ok(body.receipt.verifiedTreeSize > body.receipt.seq, 'a signed head covering the entry matched');
  assert.match(body.receipt.signed, /^[0-9a-f]+$/);
}

test('the seeded worker claims a free task; the observer sees the same entry and holder', async () => {
  const aliceId = Identity.fromSeed(aliceSeed).agentId;
  const before = await call(alice, 'GET', '/holder?task=build-1');
  assert.deepEqual(before, { status: 200, body: { topic: TOPIC, task: 'build-1', holder: null, cursor: 0 } });

  const claim = await call(alice, 'POST', '/claim?task=build-1');
  assert.equal(claim.status, 200, JSON.stringify(claim.body));
  assert.equal(claim.body.agentId, aliceId, 'the key comes from the AGENT_SEED binding');
  assert.equal(claim.body.won, true);
  assert.equal(claim.body.holder, aliceId);
  assert.equal(claim.body.receipt.seq, 0);
  assert.equal(claim.body.relay, observer.relayId);
  await observerReaches(1);
  assertSameEntry(claim.body);
  assert.equal(observer.claimHolder(TOPIC, 'build-1'), aliceId);
});

test('another identity is told who holds the task and publishes nothing', async () => {
  const aliceId = Identity.fromSeed(aliceSeed).agentId;
  const other = await call(fresh, 'POST', '/claim?task=build-1');
  assert.equal(other.status, 409, JSON.stringify(other.body));
  assert.equal(other.body.won, false);
  assert.equal(other.body.holder, aliceId);
  assert.notEqual(other.body.agentId, aliceId, 'no AGENT_SEED: a key generated in the handler');
  assert.equal(other.body.receipt, undefined);
  const holder = await call(fresh, 'GET', '/holder?task=build-1');
  assert.deepEqual(holder.body, { topic: TOPIC, task: 'build-1', holder: aliceId, cursor: 1 });
  assert.equal(observer.cursor(TOPIC), 1, 'nothing was published');
});

test('two workers racing for one task: the log picks one winner and everyone agrees', async (t) => {
  const answers = await Promise.all([
    call(alice, 'POST', '/claim?task=build-2'),
    call(fresh, 'POST', '/claim?task=build-2'),
  ]);
  const winners = answers.filter((a) => a.body.won);
  assert.equal(winners.length, 1, JSON.stringify(answers.map((a) => a.body)));
  const winner = winners[0].body;
  assert.equal(winners[0].status, 200);
  const published = answers.filter((a) => a.body.receipt);
  t.diagnostic(`claims published: ${published.length} (2: a compensation decided; 1: the loser read the winner first)`);
  await observerReaches(1 + published.length);
  for (const { body } of published) assertSameEntry(body);
  for (const { body } of answers) assert.equal(body.holder, winner.agentId);
  assert.equal(observer.claimHolder(TOPIC, 'build-2'), winner.agentId);
  const claimed = seen.events.filter((e) => e.type === 'claimed' && e.resource === 'build-2');
  assert.deepEqual(claimed.map((e) => [Number(e.seq), e.holder]), [[winner.receipt.seq, winner.agentId]]);
  // When both got to publish, the later claim lost by the log's order: a compensation.
  const loser = answers.find((a) => !a.body.won).body;
  const compensations = seen.events.filter((e) => e.type === 'compensation' && e.resource === 'build-2');
  if (loser.receipt) {
    assert.ok(loser.receipt.seq > winner.receipt.seq);
    assert.deepEqual(
      compensations.map((e) => [Number(e.losingSeq), e.loser, Number(e.winningSeq), e.winner]),
      [[loser.receipt.seq, loser.agentId, winner.receipt.seq, winner.agentId]],
    );
  } else {
    assert.deepEqual(compensations, []);
  }
});

test('the observer verifies the whole log and saw no misbehaviour', async () => {
  const size = observer.cursor(TOPIC);
  const verified = new Promise((resolve) => {
    const off = observer.on('verified', (event) => {
      if (event.topic === TOPIC && Number(event.treeSize) >= size) {
        off();
        resolve(Number(event.treeSize));
      }
    });
  });
  observer.requestCheckpoint(TOPIC);
  assert.equal(await verified, size);
  assert.equal(observer.status, 'verified');
  assert.deepEqual(seen.misbehaviour, []);
});

test('bad requests and an unreachable relay get an answer, not a hang', async () => {
  assert.deepEqual(await call(alice, 'POST', '/claim'), { status: 400, body: { error: 'BAD_INPUT', message: 'missing ?task=' } });
  assert.equal((await call(alice, 'GET', '/elsewhere?task=x')).status, 404);
  const down = await call(nowhere, 'GET', '/holder?task=build-1');
  assert.equal(down.status, 503);
  assert.equal(down.body.error, 'CONNECT_TIMEOUT');
});
