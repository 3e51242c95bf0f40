// The package in Cloudflare's runtime (npm `workerd`): esbuild bundles a worker with the
// `workerd` export condition (as wrangler does, the .wasm stays a separate wasm module), workerd
// serves it on 127.0.0.1, and the test fetches a signature and checks it with node:crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, sign as nodeSign } from 'node:crypto';
import * as esbuild from 'esbuild';

import { freePort, nodePrivateKey, pkgDir, rawPublicKey, root, waitForHttp } from './helpers.mjs';

test('workerd runs a worker that signs and verifies inside a request handler', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-workerd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  await esbuild.build({
    entryPoints: [join(root, 'tests/js/fixtures/worker.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['*.wasm'],
    outfile: join(dir, 'worker.js'),
    logLevel: 'silent',
  });
  assert.match(readFileSync(join(dir, 'worker.js'), 'utf8'), /from "\.\/ants_coord_bg\.wasm"/);
  copyFileSync(join(pkgDir, 'ants_coord_bg.wasm'), join(dir, 'ants_coord_bg.wasm'));

  const port = await freePort();
  writeFileSync(join(dir, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "ants_coord_bg.wasm", wasm = embed "ants_coord_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
);
`);

  const workerd = spawn(join(root, 'node_modules/.bin/workerd'), ['serve', join(dir, 'config.capnp')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  workerd.stdout.on('data', (chunk) => (output += chunk));
  workerd.stderr.on('data', (chunk) => (output += chunk));
  let exited = false;
  workerd.on('exit', () => (exited = true));
  t.after(() => {
    if (!exited) workerd.kill('SIGTERM');
  });

  const seed = randomBytes(32);
  const url = `http://127.0.0.1:${port}/?seed=${seed.toString('hex')}&message=edge`;
  let response;
  try {
    response = await waitForHttp(url, 60_000, () => !exited);
  } catch (error) {
    throw new Error(`${error.message}\nworkerd output:\n${output}`);
  }
  const text = await response.text();
  assert.equal(response.status, 200, `${text}\nworkerd output:\n${output}`);
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
