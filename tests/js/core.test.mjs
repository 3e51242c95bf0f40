// The core build (`ants-coord/core`, `--no-default-features`: no Yrs) in every runtime the full
// one supports: Node ESM and CommonJS, Deno and workerd. Each runs fixtures/core-check.mjs: it
// signs and verifies (checked here against node:crypto), folds every replica vector to the
// native events and state hashes, and has no document exports. The core client
// (`ants-coord/core/client`) publishes, follows a topic, elects a leader and gets a pushed
// compensation through the real relay.
//
// Needs: scripts/build-pkg.sh (pkg/ and pkg/core/); the relay binary (helpers.relayBinary).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes, sign as nodeSign } from 'node:crypto';

import { WebSocket } from 'ws';
import * as core from 'ants-coord/core';
import * as full from 'ants-coord';
import { RelayClient } from 'ants-coord/core/client';

import { DOCUMENT_EXPORTS, checkCore } from './fixtures/core-check.mjs';
import { nodePrivateKey, pkgDir, rawPublicKey, root, startRelay } from './helpers.mjs';
import { startWorker } from './workerd.mjs';

const require = createRequire(import.meta.url);
const vectors = JSON.parse(readFileSync(join(root, 'tests/vectors/replica.json'), 'utf8'));

/** Asserts a checkCore() summary for `seed` and `message` (a string). */
function assertChecked(result, seed, message) {
  const privateKey = nodePrivateKey(Buffer.from(seed));
  assert.equal(result.agentId, rawPublicKey(privateKey).toString('hex'));
  assert.equal(result.signature, nodeSign(null, Buffer.from(message), privateKey).toString('hex'));
  assert.equal(result.verified, true);
  assert.equal(result.batch, true);
  assert.equal(result.tampered, false);
  assert.equal(result.opAuthorIsGenerated, true);
  assert.equal(result.builder, true);
  assert.equal(result.scenarios, vectors.scenarios.length);
  assert.deepEqual(result.mismatches, []);
  assert.deepEqual(result.documentExports, []);
  assert.equal(result.code, 'MALFORMED');
}

test('the core build has every export of the full one but the documents', () => {
  const missing = Object.keys(full).filter((name) => !(name in core));
  for (const name of DOCUMENT_EXPORTS) assert.ok(missing.includes(name), `${name} is a document export of the full build`);
  assert.ok(missing.every((name) => /Doc|Update|Updates/.test(name)), `only documents are missing: ${missing}`);
  assert.deepEqual(Object.keys(core).filter((name) => !(name in full)), []);
  // Its own, smaller .wasm.
  const wasm = (dir) => readFileSync(join(pkgDir, dir, 'ants_coord_bg.wasm')).length;
  assert.ok(wasm('core') < wasm(''), 'the core .wasm is smaller than the full one');
});

test('Node ESM: import from ants-coord/core', () => {
  assert.equal(fileURLToPath(import.meta.resolve('ants-coord/core')), join(pkgDir, 'core/node.mjs'));
  const seed = randomBytes(32);
  assertChecked(checkCore(core, vectors, seed, Buffer.from('esm')), seed, 'esm');
});

test('Node CommonJS: require("ants-coord/core")', () => {
  assert.equal(require.resolve('ants-coord/core'), join(pkgDir, 'core/cjs/ants_coord.js'));
  const seed = randomBytes(32);
  assertChecked(checkCore(require('ants-coord/core'), vectors, seed, Buffer.from('cjs')), seed, 'cjs');
});

test('Deno: import from ants-coord/core', async (t) => {
  const denoDir = mkdtempSync(join(tmpdir(), 'ants-coord-deno-'));
  t.after(() => rmSync(denoDir, { recursive: true, force: true }));
  const { stdout } = await promisify(execFile)(
    join(root, 'node_modules/.bin/deno'),
    ['run', '--allow-read', '--no-prompt', '--quiet', 'tests/js/fixtures/deno-core.mjs'],
    { cwd: root, env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' }, timeout: 120_000 },
  );
  const { runtime, ...result } = JSON.parse(stdout);
  assert.equal(runtime, 'deno');
  assertChecked(result, new Uint8Array(32).fill(2), 'deno');
});

test('workerd: a worker on ants-coord/core, with the core .wasm', async (t) => {
  const worker = await startWorker(t, join(root, 'tests/js/fixtures/worker-core.mjs'), join(pkgDir, 'core/ants_coord_bg.wasm'));
  const seed = randomBytes(32);
  const { status, text, output } = await worker.get(`/?seed=${seed.toString('hex')}&message=edge`);
  assert.equal(status, 200, `${text}\nworkerd output:\n${output}`);
  assertChecked(JSON.parse(text), seed, 'edge');
});

test('the core client publishes, follows a topic, elects a leader and gets pushed compensations through the relay', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const ids = [1, 2, 3].map((n) => core.Identity.fromSeed(new Uint8Array(32).fill(n)));
  const alice = await RelayClient.connect(relay.ws, ids[0], { WebSocket });
  const bob = await RelayClient.connect(relay.ws, ids[1], { WebSocket });
  t.after(() => {
    alice.close();
    bob.close();
  });
  const config = { candidates: ids.map((id) => ({ agentId: id.agentId })), electionWindowMs: 1000 };
  const feed = bob.subscribe('core', { config });
  const receipt = await alice.publish('core', 'post', core.ReplicaOp.post({ text: 'from the core build' }));
  assert.equal(Number(receipt.seq), 0);
  for await (const item of feed) {
    if (item.type !== 'entry') continue;
    assert.equal(item.author, alice.agentId);
    assert.deepEqual(core.ReplicaOp.decode('post', item.body), { kind: 'post', text: 'from the core build' });
    break;
  }
  await feed.caughtUp();
  const leader = bob.leader('core', 5_000);
  assert.equal(new core.Replica('core', config).leader(5_000).leader, leader);
  // A losing claimant that does not follow the topic gets its compensation pushed, as the same
  // object the full build gives (the core build has no serde_json: the JS engine parses it).
  const compensations = [];
  alice.onCompensation('claim', (event, topic) => compensations.push([event, topic]));
  const pushed = new Promise((resolve) => {
    const off = alice.on('event', (event) => {
      off();
      resolve(event);
    });
  });
  await bob.publish('slots', 'claim', core.ReplicaOp.claim({ resource: 'slot' }));
  const lost = await alice.publish('slots', 'claim', core.ReplicaOp.claim({ resource: 'slot' }));
  const { topic, seq, event } = await pushed;
  assert.deepEqual([topic, Number(seq)], ['slots', Number(lost.seq)]);
  assert.equal(event.type, 'compensation');
  assert.deepEqual([event.loser, event.winner, event.resource], [alice.agentId, bob.agentId, 'slot']);
  assert.deepEqual(compensations, [[event, 'slots']]);
  // An Identity of the full build is another wasm instance: refused, saying so.
  await assert.rejects(
    RelayClient.connect(relay.ws, full.Identity.generate(), { WebSocket }),
    (error) => error.code === 'BAD_INPUT' && /ants-coord\/core/.test(error.message),
  );
});
