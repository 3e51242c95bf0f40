// The package in Cloudflare's runtime (npm `workerd`): esbuild bundles a worker with the
// `workerd` export condition (as wrangler does, the .wasm stays a separate wasm module), workerd
// serves it on 127.0.0.1, and the test fetches a signature and checks it with node:crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes, sign as nodeSign } from 'node:crypto';

import { nodePrivateKey, pkgDir, rawPublicKey, root } from './helpers.mjs';
import { startWorker } from './workerd.mjs';

test('workerd runs a worker that signs and verifies inside a request handler', async (t) => {
  const worker = await startWorker(t, join(root, 'tests/js/fixtures/worker.mjs'), join(pkgDir, 'ants_coord_bg.wasm'));
  const seed = randomBytes(32);
  const { status, text, output } = await worker.get(`/?seed=${seed.toString('hex')}&message=edge`);
  assert.equal(status, 200, `${text}\nworkerd output:\n${output}`);
  const result = JSON.parse(text);
  const privateKey = nodePrivateKey(seed);
  assert.equal(result.agentId, rawPublicKey(privateKey).toString('hex'));
  assert.equal(result.signature, nodeSign(null, Buffer.from('edge'), privateKey).toString('hex'));
  assert.equal(result.verified, true);
  assert.equal(result.batch, true);
  assert.equal(result.tampered, false);
  assert.equal(result.opAuthorIsGenerated, true);
  assert.equal(result.code, 'MALFORMED');
});
