// The README's main command, scripts/run.sh, as a newcomer runs it: it sets up, starts the relay
// with the demo page and the built package on one origin, prints the URL to open, and stops on
// Ctrl-C (SIGINT to its process group). Run with ANTS_RELAY_BIN (tests/e2e's relay build), so
// the script skips its release build; everything else is the script's own path.
//
//   node --test tests/e2e/run-script.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, relayBinary, root, waitForHttp } from '../js/helpers.mjs';

/** Starts scripts/run.sh in a process group of its own; resolves with the URL it prints. */
function startRunScript(env) {
  const child = spawn(join(root, 'scripts/run.sh'), [], {
    cwd: root,
    detached: true,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const found = /ants-coord demo: open (\S+)/.exec(out);
      if (found) resolve(found[1]);
    });
    exited.then(({ code }) => reject(new Error(`scripts/run.sh exited (${code}) before printing the URL:\n${out}`)));
  });
  return { child, exited, url };
}

/** Ctrl-C, as a terminal sends it: SIGINT to the script's whole process group. */
async function interrupt(run) {
  process.kill(-run.child.pid, 'SIGINT');
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 15_000)));
  const ended = await Promise.race([run.exited, timeout]);
  clearTimeout(timer);
  if (ended === 'timeout') process.kill(-run.child.pid, 'SIGKILL');
  return ended;
}

async function refused(url) {
  try {
    await fetch(url);
    return false;
  } catch {
    return true;
  }
}

test('scripts/run.sh serves the demo page, the package and the relay on one origin, and stops on Ctrl-C', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'ants-coord-run-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  const port = await freePort();
  const run = startRunScript({
    ANTS_RELAY_BIN: relayBinary(),
    ANTS_RELAY_LISTEN: `127.0.0.1:${port}`,
    ANTS_RELAY_DATA: join(data, 'relay-data'),
  });
  t.after(() => run.child.exitCode === null && process.kill(-run.child.pid, 'SIGKILL'));
  const url = await run.url;
  assert.equal(url, `http://127.0.0.1:${port}/`);
  const health = await waitForHttp(`${url}healthz`, 60_000, () => run.child.exitCode === null);
  assert.equal(health.status, 200);
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>ants-coord demo<\/title>/);
  const pkg = await fetch(`${url}pkg/ants_coord.js`);
  assert.equal(pkg.status, 200, 'the built package is served at /pkg/');
  assert.match(await pkg.text(), /export function signOp/);

  const ended = await interrupt(run);
  assert.deepEqual(ended, { code: 0, signal: null }, 'the relay shuts down cleanly on SIGINT');
  assert.ok(await refused(`${url}healthz`), 'nothing listens after Ctrl-C');
});

test('ANTS_DEMO_RELAY2 starts a second relay, names it in the URL, and Ctrl-C stops both', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'ants-coord-run-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  const [port, port2] = [await freePort(), await freePort()];
  const run = startRunScript({
    ANTS_RELAY_BIN: relayBinary(),
    ANTS_RELAY_LISTEN: `127.0.0.1:${port}`,
    ANTS_RELAY_DATA: join(data, 'relay-data'),
    ANTS_DEMO_RELAY2: `127.0.0.1:${port2}`,
  });
  t.after(() => run.child.exitCode === null && process.kill(-run.child.pid, 'SIGKILL'));
  const url = await run.url;
  assert.equal(url, `http://127.0.0.1:${port}/?relay2=ws://127.0.0.1:${port2}/ws`);
  const alive = () => run.child.exitCode === null;
  assert.equal((await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000, alive)).status, 200);
  assert.equal((await waitForHttp(`http://127.0.0.1:${port2}/healthz`, 60_000, alive)).status, 200);
  // Each relay signs with a key of its own, kept in its own data directory.
  const key = (dir) => readFileSync(join(data, dir, 'relay.key'), 'utf8').trim();
  assert.match(key('relay-data'), /^[0-9a-f]{64}$/);
  assert.notEqual(key('relay-data'), key('relay-data-2'));

  const ended = await interrupt(run);
  assert.deepEqual(ended, { code: 0, signal: null });
  assert.ok(await refused(`http://127.0.0.1:${port}/healthz`), 'the first relay stopped');
  assert.ok(await refused(`http://127.0.0.1:${port2}/healthz`), 'the second relay stopped');
});
