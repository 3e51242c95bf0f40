// Runs a worker in Cloudflare's runtime (npm `workerd`) for a test (not a test file itself):
// esbuild bundles the worker with the `workerd` export condition (as wrangler does, the .wasm
// stays a separate wasm module), workerd serves it on 127.0.0.1, and the test fetches from it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import * as workerdPackage from 'workerd';

import { freePort, waitForHttp } from './helpers.mjs';

// The workerd binary itself: node_modules/.bin/workerd is a Node wrapper that would leave the
// real server running (and the test hanging) when killed.
const workerdBinary = typeof workerdPackage.default === 'string' ? workerdPackage.default : workerdPackage.default.default;
const compatibilityDate = workerdPackage.compatibilityDate ?? '2025-01-01';

/**
 * Bundles `entry` (a worker module importing the package), serves it with the package's `wasm`
 * file beside it, and returns `get(pathAndQuery)`: the response of the worker once it answers,
 * with workerd's output in the error when it does not. Stopped and cleaned up after test `t`.
 */
export async function startWorker(t, entry, wasm) {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-workerd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['*.wasm'],
    outfile: join(dir, 'worker.js'),
    logLevel: 'silent',
  });
  assert.match(readFileSync(join(dir, 'worker.js'), 'utf8'), /from "\.\/ants_coord_bg\.wasm"/);
  copyFileSync(wasm, join(dir, 'ants_coord_bg.wasm'));

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

  return {
    /** The worker's answer to a GET of `path` (with its query), and workerd's output so far. */
    async get(path) {
      let response;
      try {
        response = await waitForHttp(`http://127.0.0.1:${port}${path}`, 60_000, () => !exited);
      } catch (error) {
        throw new Error(`${error.message}\nworkerd output:\n${output}`);
      }
      return { status: response.status, text: await response.text(), output };
    },
  };
}
