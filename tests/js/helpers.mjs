// Shared helpers of the node:test suites (not a test file itself).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('../../', import.meta.url));
/** The built package (scripts/build-pkg.sh). */
export const pkgDir = fileURLToPath(new URL('../../pkg/', import.meta.url));

/** The codes of the README's "## Error codes" table: what the package may throw. */
export function readmeErrorCodes() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const table = (readme.split(/^## Error codes$/m)[1] ?? '').split(/^## /m)[0];
  return new Set([...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((match) => match[1]));
}

/** Garbage arguments as [label, make], made fresh for every call (the bad-arguments sweeps). */
export const GARBAGE = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['0', () => 0],
  ['-1', () => -1],
  ['NaN', () => NaN],
  ['1.5', () => 1.5],
  ['2**60', () => 2 ** 60],
  ['2n**70n', () => 2n ** 70n],
  ["'x'", () => 'x'],
  ['{}', () => ({})],
  ['[]', () => []],
  ['new Uint8Array(0)', () => new Uint8Array(0)],
];

/** Asserts that `fn` throws a real Error carrying `code`. */
export function assertCode(fn, code, label = '') {
  let thrown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, `${label}: expected a throw with ${code}`);
  assert.ok(thrown instanceof Error, `${label}: threw a non-Error ${String(thrown)}`);
  assert.equal(thrown.code, code, `${label}: ${thrown.message}`);
}

/** Node crypto KeyObjects for a raw 32-byte Ed25519 seed / public key. */
export function nodePrivateKey(seed) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}
export function nodePublicKey(publicKey) {
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]);
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}
/** The raw 32-byte public key of a Node KeyObject. */
export function rawPublicKey(keyObject) {
  return createPublicKey(keyObject).export({ format: 'der', type: 'spki' }).subarray(12);
}

/**
 * The relay binary to test: `ANTS_RELAY_BIN`, or a debug build of this checkout (built now with
 * `features`; cluster tests need `relay,nats`, as `cargo test --all-features` builds it).
 */
export function relayBinary(features = 'relay') {
  if (process.env.ANTS_RELAY_BIN) return process.env.ANTS_RELAY_BIN;
  const build = spawnSync('cargo', ['build', '--features', features, '--bin', 'ants-relay'], { cwd: root, stdio: 'inherit' });
  assert.equal(build.status, 0, 'cargo build of ants-relay failed');
  return join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'ants-relay');
}

/**
 * Starts `relayBinary()` on a free 127.0.0.1 port with a fresh data directory and waits for
 * `/healthz`. Returns `{ port, origin, ws, stop }`: `ws` is the relay's `/ws` URL, and `stop()`
 * ends it with SIGTERM and removes the data directory.
 */
export async function startRelay(args = []) {
  const data = mkdtempSync(join(tmpdir(), 'ants-relay-test-'));
  const port = await freePort();
  const child = spawn(relayBinary(), ['--listen', `127.0.0.1:${port}`, '--data', data, ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let alive = true;
  const exited = new Promise((resolve) => child.once('exit', () => resolve((alive = false))));
  const stop = async () => {
    if (alive) child.kill('SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  };
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${origin}/healthz`, 20_000, () => alive);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, origin, ws: `ws://127.0.0.1:${port}/ws`, stop };
}

/**
 * For one test file: a relay started before its tests and stopped after them (`.relay`), one
 * client connected to it (`.writer`), and `.connect(options)` for more, each with a new identity.
 * Takes the `RelayClient`, `Identity` and `WebSocket` the file imported.
 */
export function relayForFile({ RelayClient, Identity, WebSocket }) {
  const shared = {
    connect: (options = {}) => RelayClient.connect(shared.relay.ws, Identity.generate(), { WebSocket, ...options }),
  };
  before(async () => {
    shared.relay = await startRelay();
    shared.writer = await shared.connect();
  });
  after(async () => {
    shared.writer?.close();
    await shared.relay?.stop();
  });
  return shared;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers (any status) or `ms` pass. */
export async function waitForHttp(url, ms, isAlive = () => true) {
  const deadline = Date.now() + ms;
  let lastError;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`server exited before answering ${url}`);
    try {
      return await fetch(url);
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`no answer from ${url} within ${ms} ms: ${lastError}`);
}
