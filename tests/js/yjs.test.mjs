// y-websocket interop: stock `WebsocketProvider`s (npm y-websocket, with `ws` in Node) edit one
// room through the real `ants-relay` binary at /yjs/<room> and converge; the room survives a
// relay restart (SIGTERM, and SIGKILL) on the same data directory; rooms bridged to a topic with
// `params: { topic }` too; a provider alone in a room is not dropped as silent.
//   cargo build --features relay --bin ants-relay && node --test tests/js/yjs.test.mjs
// (ANTS_RELAY_BIN overrides the binary; otherwise it is built into $CARGO_TARGET_DIR or target/.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { freePort, relayBinary, root, waitForHttp } from './helpers.mjs';
import { providers } from './yjs-providers.mjs';

const PATIENCE_MS = 20_000;

const binary = relayBinary();
const dataDir = mkdtempSync(join(tmpdir(), 'ants-coord-yjs-'));
const relays = new Set();
const { connect, destroy, destroyAll } = providers();

/** Starts the relay on a free loopback port over `dataDir`, letting rooms bridge to `doc-` topics. */
async function startRelay() {
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--data', dataDir, '--yjs-bridge', 'doc-'];
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  relays.add(child);
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, PATIENCE_MS, () => child.exitCode === null && child.signalCode === null);
  return {
    url: `ws://127.0.0.1:${port}/yjs`,
    port,
    /** SIGTERM (graceful shutdown) or `signal`, then the exit status. */
    async stop(signal = 'SIGTERM') {
      child.kill(signal);
      const status = await exited;
      relays.delete(child);
      return status;
    },
  };
}


/** Polls `predicate` until true, failing after the patience. */
async function until(predicate, what) {
  const deadline = Date.now() + PATIENCE_MS;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

after(async () => {
  destroyAll();
  for (const child of relays) {
    child.kill('SIGKILL');
  }
  rmSync(dataDir, { recursive: true, force: true });
});

test('two stock y-websocket providers converge through the relay, and the room survives a restart', async () => {
  const room = `notes-${Date.now().toString(36)}`;
  let relay = await startRelay();
  const docA = new Y.Doc();
  const docB = new Y.Doc();
  const a = connect(relay.url, room, docA);
  const b = connect(relay.url, room, docB);
  await until(() => a.synced && b.synced, 'both providers to sync');

  // Concurrent edits on both sides.
  docA.getText('body').insert(0, 'hello');
  docB.getText('body').insert(0, 'world ');
  const textA = () => docA.getText('body').toString();
  const textB = () => docB.getText('body').toString();
  await until(() => textA().length === 11 && textA() === textB(), 'the texts to converge');
  // Then sequential edits, and a map, to be sure updates keep flowing both ways.
  docB.getText('body').insert(textB().length, '!');
  docA.getMap('meta').set('title', 'Notes');
  await until(() => textA().endsWith('!') && docB.getMap('meta').get('title') === 'Notes', 'later edits');
  assert.equal(textA(), textB());
  const expected = textA();
  assert.ok(expected === 'helloworld !' || expected === 'world hello!', expected);
  assert.deepEqual(Y.encodeStateVector(docA), Y.encodeStateVector(docB));

  // Awareness flows through the room.
  a.awareness.setLocalStateField('user', { name: 'alice' });
  await until(() => b.awareness.getStates().get(docA.clientID)?.user?.name === 'alice', 'awareness to reach B');

  destroy(a);
  destroy(b);
  const status = await relay.stop();
  assert.equal(status.code, 0, `relay exit ${JSON.stringify(status)}`);

  relay = await startRelay();
  const docC = new Y.Doc();
  const c = connect(relay.url, room, docC);
  await until(() => c.synced, 'the third provider to sync');
  await until(() => docC.getText('body').toString() === expected, 'the stored text after restart');
  assert.equal(docC.getMap('meta').get('title'), 'Notes');
  destroy(c);
  assert.equal((await relay.stop()).code, 0);
});

test('a bad room name is refused with a close reason', async () => {
  const relay = await startRelay();
  try {
    const ws = new WebSocket(`${relay.url}/bad%20room`);
    const [code, reason] = await new Promise((resolve, reject) => {
      ws.once('close', (c, r) => resolve([c, r.toString()]));
      ws.once('error', reject);
    });
    assert.equal(code, 1008);
    assert.match(reason, /^BAD_INPUT: .*room name/);
  } finally {
    assert.equal((await relay.stop()).code, 0);
  }
});

test('providers with params.topic share the topic document, which survives a restart', async () => {
  const topic = `doc-${Date.now().toString(36)}`;
  let relay = await startRelay();
  const a = connect(relay.url, 'left', new Y.Doc(), { topic });
  const b = connect(relay.url, 'right', new Y.Doc(), { topic });
  await until(() => a.synced && b.synced, 'both bridged providers to sync');
  a.doc.getText('body').insert(0, 'through the topic');
  await until(() => b.doc.getText('body').toString() === 'through the topic', 'the edit to cross the bridge');
  destroy(a);
  destroy(b);
  assert.equal((await relay.stop()).code, 0);
  relay = await startRelay();
  const c = connect(relay.url, 'third', new Y.Doc(), { topic });
  await until(() => c.doc.getText('body').toString() === 'through the topic', 'the topic document after restart');
  destroy(c);
  assert.equal((await relay.stop()).code, 0);
});

test('an edit another provider has received survives a SIGKILL of the relay', async () => {
  const room = `crash-${Date.now().toString(36)}`;
  let relay = await startRelay();
  const a = connect(relay.url, room, new Y.Doc());
  const b = connect(relay.url, room, new Y.Doc());
  await until(() => a.synced && b.synced, 'both providers to sync');
  for (let i = 0; i < 20; i++) a.doc.getText('body').insert(0, `${i % 10}`);
  const expected = a.doc.getText('body').toString();
  // The relay forwards an update only after committing it: once B has it, it is on disk.
  await until(() => b.doc.getText('body').toString() === expected, 'B to receive every edit');
  destroy(a);
  destroy(b);
  assert.equal((await relay.stop('SIGKILL')).signal, 'SIGKILL');
  relay = await startRelay();
  const c = connect(relay.url, room, new Y.Doc());
  await until(() => c.synced, 'the provider to sync after the crash');
  assert.equal(c.doc.getText('body').toString(), expected);
  destroy(c);
  assert.equal((await relay.stop()).code, 0);
});

test('a stock provider alone in a room stays connected past its 30 s silence timeout', async () => {
  // y-websocket closes a socket that receives no message for 30 s (WebSocket pings are not
  // visible to it) and counts on the server echoing its own awareness renewal, sent every 15 s.
  // Issue 22 item 10: the relay forwarded awareness to every connection but the sender, so a
  // lone editor was disconnected and reconnected every ~33 s.
  const relay = await startRelay();
  try {
    const provider = connect(relay.url, `alone-${Date.now().toString(36)}`, new Y.Doc());
    await until(() => provider.synced, 'the provider to sync');
    const events = [];
    provider.on('connection-close', (event) => events.push(`connection-close ${event?.code}`));
    provider.on('status', ({ status }) => status !== 'connected' && events.push(`status ${status}`));
    // The observation window of the test, not a margin: longer than the 30 s timeout.
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    assert.deepEqual(events, []);
    assert.ok(provider.wsconnected && provider.synced);
    destroy(provider);
  } finally {
    assert.equal((await relay.stop()).code, 0);
  }
});

/** lib0 varUint. */
function varUint(out, n) {
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f));
    n = Math.floor(n / 128);
  }
  out.push(n);
}

/** A y-protocols awareness message announcing `count` clients from `from` on, each with state `{}`. */
function awarenessFlood(from, count) {
  const update = [];
  varUint(update, count);
  for (let id = from; id < from + count; id++) {
    varUint(update, id);
    varUint(update, 1); // clock
    varUint(update, 2);
    update.push(0x7b, 0x7d); // '{}'
  }
  const message = [1];
  varUint(message, update.length);
  return Uint8Array.from([...message, ...update]);
}

/** A raw WebSocket to a room, once open. */
async function openRaw(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

test('a stock provider joins and syncs while attackers hold their awareness maximum', async () => {
  // Issue 22 item 5: 11 connections used to fill a room's 2,048 awareness ids, and every new
  // stock provider was then closed 1008 LIMIT_EXCEEDED and never synced.
  const relay = await startRelay();
  const room = `crowd-${Date.now().toString(36)}`;
  const attackers = [];
  try {
    const writer = connect(relay.url, room, new Y.Doc());
    await until(() => writer.synced, 'the writer to sync');
    writer.doc.getText('body').insert(0, 'shared');
    for (let a = 0; a < 11; a++) {
      const from = 1_000_000 * (a + 1);
      const greedy = await openRaw(`${relay.url}/${room}`);
      const closed = new Promise((resolve) => greedy.once('close', (code, reason) => resolve([code, reason.toString()])));
      greedy.send(awarenessFlood(from, 200));
      const [code, reason] = await closed;
      assert.equal(code, 1008, reason);
      assert.match(reason, /^LIMIT_EXCEEDED/);
      const attacker = await openRaw(`${relay.url}/${room}`);
      attacker.send(awarenessFlood(from, 4));
      attackers.push(attacker);
    }
    await until(() => writer.awareness.getStates().size === 1 + 11 * 4, "the attackers' clients to be present");

    const doc = new Y.Doc();
    const newcomer = connect(relay.url, room, doc);
    const closes = [];
    newcomer.on('connection-close', (event) => closes.push(event?.code));
    await until(() => newcomer.synced && doc.getText('body').toString() === 'shared', 'the newcomer to sync');
    newcomer.awareness.setLocalStateField('user', { name: 'newcomer' });
    await until(() => writer.awareness.getStates().get(doc.clientID)?.user?.name === 'newcomer', "the newcomer's presence");
    assert.deepEqual(closes, []);
    destroy(newcomer);
    destroy(writer);
  } finally {
    for (const attacker of attackers) attacker.terminate();
    assert.equal((await relay.stop()).code, 0);
  }
});
