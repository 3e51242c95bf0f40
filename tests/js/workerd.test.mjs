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
import * as workerdPackage from 'workerd';

import { freePort, nodePrivateKey, pkgDir, rawPublicKey, root, waitForHttp } from './helpers.mjs';

// The workerd binary itself: node_modules/.bin/workerd is a Node wrapper that would leave the
// real server running (and this test hanging) when killed.
const workerdBinary = typeof workerdPackage.default === 'string' ? workerdPackage.default : workerdPackage.default.default;
const compatibilityDate = workerdPackage.compatibilityDate ?? '2025-01-01';

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
  compatibilityDate = "${compatibilityDate}",
);
`);

  const workerd = spawn(workerdBinary, ['serve', join(dir, 'config.capnp')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  workerd.stdout.on('data', (chunk) => (output += chunk));
  workerd.stderr.on('data', (chunk) => (output += chunk));
  let exited = false;
  workerd.on('exit', () => (exited = true));
  t.after(async () => {
    if (exited) return;
    const gone = new Promise((resolve) => workerd.once('exit', resolve));
    workerd.kill('SIGTERM');
    const timer = setTimeout(() => workerd.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
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
