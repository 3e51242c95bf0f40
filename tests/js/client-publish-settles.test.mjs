// A publish refused because the relay's disk is full (issue 21, item 2): the client retries it
// with backoff and the same signed bytes, a later op of the topic waits behind it, a reconnect in
// between loses nothing to COUNTER_STALE, and both settle with receipts once space is freed, each
// op in the log once. And a publish nobody answers (the relay is stopped) rejects UNAVAILABLE after
// `publishTimeoutMs` with its signed bytes, which `publishSigned` lands once the relay is back.
//
// The relay's data directory is a tmpfs (mounted here: needs root, skipped otherwise) of 128 MiB,
// above the relay's default free-space reserve of 64 MiB ([limits] storage_reserve_mib), so the
// relay takes ops until a filler file takes the space, and again once it is removed; ops of 32 KiB
// are published until one is refused. Needs the
// built package and the relay binary (ANTS_RELAY_BIN, or built).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { WebSocket } from 'ws';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { freePort, relayBinary, waitForHttp } from './helpers.mjs';

const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'mounting a tmpfs needs root';

// Every socket the clients open, so that a test can drop one (a reconnect).
const sockets = [];
class TrackedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    sockets.push(this);
  }
}

const relay = {};

before(async () => {
  if (skip) return;
  relay.mount = mkdtempSync(join(tmpdir(), 'ants-full-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m', 'tmpfs', relay.mount]);
  relay.data = join(relay.mount, 'relay');
  mkdirSync(relay.data);
  relay.port = await freePort();
  relay.ws = `ws://127.0.0.1:${relay.port}/ws`;
  await startProcess();
});

/** Starts the relay binary on `relay.port` over `relay.data` and waits for `/healthz`. */
async function startProcess() {
  relay.child = spawn(relayBinary(), ['--listen', `127.0.0.1:${relay.port}`, '--data', relay.data], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  relay.exited = new Promise((resolve) => relay.child.once('exit', resolve));
  await waitForHttp(`http://127.0.0.1:${relay.port}/healthz`, 20_000, () => relay.child.exitCode === null);
}

async function stopProcess() {
  if (relay.child?.exitCode === null) relay.child.kill('SIGTERM');
  await relay.exited;
}

after(async () => {
  if (skip) return;
  await stopProcess();
  if (relay.mount) {
    execFileSync('umount', [relay.mount]);
    rmSync(relay.mount, { recursive: true, force: true });
  }
});

const fillerPath = () => join(relay.mount, 'filler');

/** Writes a file until the tmpfs has no space left. */
function fillDisk() {
  const fd = openSync(fillerPath(), 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    assert.equal(error.code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
}

function freeDisk() {
  rmSync(fillerPath(), { force: true });
}

function connect(options = {}) {
  return RelayClient.connect(relay.ws, Identity.generate(), { WebSocket: TrackedWebSocket, ...options });
}

/** Resolves with the first `type` event of `client` that satisfies `accept`. */
function nextEvent(client, type, accept = () => true) {
  return new Promise((resolve) => {
    const off = client.on(type, (event) => {
      if (!accept(event)) return;
      off();
      resolve(event);
    });
  });
}

/**
 * On a full disk the relay still takes ops while its database has free pages: publishes ops of
 * 32 KiB until one is refused with a retryable code. Returns that publish (tracked) and its
 * `retrying` event.
 */
async function publishUntilRefused(client, topic) {
  const body = new Uint8Array(32 * 1024).fill(7);
  for (let i = 0; i < 1000; i += 1) {
    let off;
    const refused = new Promise((resolve) => {
      off = client.on('retrying', resolve);
    });
    const publish = track(client.publish(topic, 'note', body));
    const first = await Promise.race([publish.done.then(() => null), refused]);
    off();
    if (first !== null) return { publish, retry: first };
    assert.ifError(publish.error);
  }
  throw new Error('the relay took 1000 ops of 32 KiB on a full 16 MiB disk');
}

/** Tracks a promise's outcome without awaiting it. */
function track(promise) {
  const state = { settled: false };
  state.done = promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

/** Every entry of `topic` (from a fresh reader), once the reader has caught up. */
async function entriesOf(topic) {
  const reader = await connect();
  try {
    const entries = [];
    const feed = reader.subscribe(topic, { onEntry: (entry) => entries.push(entry) });
    await feed.caughtUp();
    return entries;
  } finally {
    reader.close();
  }
}

test('a publish refused on a full disk is retried with the same bytes and settles once space is freed', { skip }, async () => {
  const client = await connect();
  try {
    await client.publish('full-disk', 'note', 'before');
    const retries = [];
    client.on('retrying', (event) => retries.push(event));
    const errors = [];
    client.on('error', (error) => errors.push(error));
    fillDisk();
    let publish;
    let second;
    try {
      let retry;
      ({ publish, retry } = await publishUntilRefused(client, 'full-disk'));
      assert.equal(retry.code, 'UNAVAILABLE');
      // A second publish of the topic waits behind the first; then the socket drops and the
      // client reconnects.
      second = track(client.publish('full-disk', 'note', 'behind'));
      assert.equal(publish.settled, false, 'a refused publish does not settle');
      sockets.at(-1).terminate();
      // The relay may find room again by itself (a WAL checkpoint frees pages): then the retry
      // after the reconnect is taken. Otherwise it is refused again and nothing settles.
      const again = nextEvent(client, 'retrying', (event) => event.attempt >= 2 || event.opId !== retry.opId);
      const outcome = await Promise.race([again.then(() => 'refused'), publish.done.then(() => 'taken')]);
      if (outcome === 'refused') {
        assert.equal(publish.settled, false, 'a refused publish does not settle early');
        assert.equal(second.settled, false);
      }
      freeDisk();
      await Promise.all([publish.done, second.done]);
      assert.ifError(publish.error);
      assert.ifError(second.error);
      assert.equal(publish.value.opId, retry.opId);
      assert.ok(Number(second.value.seq) > Number(publish.value.seq), 'in publishing order');
    } finally {
      freeDisk();
    }
    assert.ok(retries.every((event) => event.code === 'UNAVAILABLE'), JSON.stringify(retries));
    assert.deepEqual(errors.map((error) => error.code), [], 'no refusal surfaced as an error');
    // Each op is in the log exactly once, the refused one before the one behind it.
    const ids = (await entriesOf('full-disk')).map((entry) => entry.opId);
    assert.equal(new Set(ids).size, ids.length, 'no op twice');
    assert.deepEqual(ids.slice(-2), [publish.value.opId, second.value.opId]);
  } finally {
    client.close();
  }
});

test('a publish that gets no receipt within publishTimeoutMs rejects with UNAVAILABLE and its signed bytes', { skip }, async () => {
  const client = await connect({ publishTimeoutMs: 1500, maxBackoffMs: 200 });
  try {
    await client.publish('no-answer', 'note', 'before');
    // The relay is gone: nothing answers the publish, and it still settles.
    await stopProcess();
    const started = Date.now();
    const error = await client.publish('no-answer', 'note', 'late').then(
      () => assert.fail('acknowledged with no relay'),
      (rejection) => rejection,
    );
    assert.ok(Date.now() - started >= 1500, `settled after ${Date.now() - started} ms`);
    assert.equal(error.code, 'UNAVAILABLE');
    assert.ok(error.op instanceof Uint8Array && typeof error.opId === 'string');
    // The same bytes, sent again once the relay is back: one entry, with that op id.
    await startProcess();
    const receipt = await client.publishSigned(error.op);
    assert.equal(receipt.opId, error.opId);
    const ids = (await entriesOf('no-answer')).map((entry) => entry.opId);
    assert.equal(ids.length, 2);
    assert.equal(ids[1], error.opId);
  } finally {
    client.close();
  }
});
