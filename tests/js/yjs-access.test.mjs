// Private Yjs rooms (PROTOCOL.md 8.7.1) with stock y-websocket `WebsocketProvider`s through the
// real `ants-relay` binary: the room `@<owner>/notes` is refused without a room proof and a
// capability (permission-denied message, then close 4401/4403, after which a stock provider stops
// reconnecting and emits `closed`), with an expired or a forged capability; a writer joins and
// syncs with the owner through `params: Capability.roomParams(…)`; a reader syncs but its edits
// never reach the room; a capability revoked while connected (a `cap.revoke` published over
// /ws) stops the provider with `closed` 4403 CAPABILITY_REVOKED; a room whose topic the owner made
// public (`topic.policy`) syncs a provider without params, read-only, until it turns private.
//
// Needs: pkg/ (scripts/build-pkg.sh) and the relay (ANTS_RELAY_BIN, or a debug build).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { Capability, Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';
import { WebSocket } from 'ws';

import { assertCode, startRelay } from './helpers.mjs';
import { providers } from './yjs-providers.mjs';

const PATIENCE_MS = 20_000;
const HOUR_MS = 3_600_000;
const { connect, destroy, destroyAll } = providers();
let relay;
let yjsUrl;

before(async () => {
  relay = await startRelay();
  yjsUrl = `ws://127.0.0.1:${relay.port}/yjs`;
});
after(async () => {
  destroyAll();
  await relay?.stop();
});

const hex = (bytes) => Buffer.from(bytes).toString('hex');

/**
 * A room proof (PROTOCOL.md 8.7.1): `identity` signs, with its plain Ed25519 `sign`, the domain,
 * its key, the expiry and the topic that guards the room; the proof is version 1, key, expiry,
 * signature.
 */
function roomProof(identity, topic, expiresMs) {
  const expires = new Uint8Array(8);
  new DataView(expires.buffer).setBigUint64(0, BigInt(expiresMs));
  const key = identity.publicKey;
  const message = Buffer.concat([Buffer.from('ants-coord/yjs-room/v1\0'), key, expires, Buffer.from(topic)]);
  return hex(Buffer.concat([Uint8Array.of(1), key, expires, identity.sign(message)]));
}

/** `params` for `holder` holding `caps` (capability bytes) in the room guarded by `topic`. */
function params(holder, topic, caps = []) {
  const out = { proof: roomProof(holder, topic, Date.now() + HOUR_MS) };
  if (caps.length > 0) out.cap = caps.map(hex).join(',');
  return out;
}

/**
 * Connects a provider that records the permission-denied reasons it hears (its auth message
 * handler, which by default only logs them, reads y-protocols/auth's encoding: 0, then the
 * reason as a string).
 */
function provider(room, doc, params) {
  const p = connect(yjsUrl, room, doc, params);
  p.denied = [];
  p.messageHandlers[2] = (_encoder, decoder) => {
    if (decoding.readVarUint(decoder) === 0) p.denied.push(decoding.readVarString(decoder));
  };
  return p;
}

async function until(predicate, what) {
  const deadline = Date.now() + PATIENCE_MS;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Expects `params` to be refused: permission denied, then a terminal close with `code`. */
async function refused(room, params, code) {
  const p = provider(room, new Y.Doc(), params);
  const closed = new Promise((resolve) => p.once('closed', resolve));
  try {
    const { code: closeCode, reason } = await closed;
    assert.equal(closeCode, code === 'NOT_AUTHENTICATED' ? 4401 : 4403, reason);
    assert.ok(reason.startsWith(code), reason);
    assert.ok(p.denied.some((d) => d.includes(code)), `permission denied: ${p.denied}`);
    // A terminal close: the provider does not reconnect on its own.
    assert.equal(p.shouldConnect, false);
  } finally {
    destroy(p);
  }
}

test('a private room refuses a provider without a proof and capability, or with an expired or forged one', async () => {
  const owner = Identity.generate();
  const bob = Identity.generate();
  const room = `@${owner.agentId}/notes`;
  const grant = (rights, expiresMs) => Capability.grant(owner, { audience: bob.agentId, topic: room, rights, expiresMs });
  await refused(room, {}, 'NOT_AUTHENTICATED');
  await refused(room, params(bob, room), 'NOT_AUTHORIZED');
  await refused(room, params(bob, room, [grant(['read'], Date.now() - 1)]), 'CAPABILITY_EXPIRED');
  const forged = grant(['read', 'write'], Date.now() + HOUR_MS);
  forged[forged.length - 1] ^= 1;
  await refused(room, params(bob, room, [forged]), 'BAD_SIGNATURE');
});

test('Capability.roomParams signs the proof PROTOCOL.md 8.7.1 lays out, and joins the capabilities with ","', () => {
  const owner = Identity.generate();
  const bob = Identity.generate();
  const topic = `@${owner.agentId}/notes`;
  const expiresMs = Date.now() + HOUR_MS;
  const caps = [1, 2].map(() => Capability.grant(owner, { audience: bob.agentId, topic, rights: ['read'], expiresMs }));
  // Ed25519 signatures are deterministic: the package's proof is the hand-made one.
  assert.deepEqual(Capability.roomParams(bob, topic, caps, expiresMs), { cap: caps.map(hex).join(','), proof: roomProof(bob, topic, expiresMs) });
  assert.deepEqual(Capability.roomParams(owner, topic, [], expiresMs), { proof: roomProof(owner, topic, expiresMs) });
  assertCode(() => Capability.roomParams(bob, topic, Array(17).fill(caps[0]), expiresMs), 'LIMIT_EXCEEDED');
  assertCode(() => Capability.roomParams(bob, 'bad\u0001topic', [], expiresMs), 'BAD_TOPIC');
});

test('a writer joins and syncs with the owner; a reader syncs but cannot write', async () => {
  const owner = Identity.generate();
  const writer = Identity.generate();
  const reader = Identity.generate();
  const room = `@${owner.agentId}/notes`;
  const expiresMs = Date.now() + HOUR_MS;
  const grant = (to, rights) => Capability.grant(owner, { audience: to.agentId, topic: room, rights, expiresMs });
  // What an application passes: the package's roomParams.
  const params = (holder, topic, caps = []) => Capability.roomParams(holder, topic, caps, expiresMs);

  const ownerDoc = new Y.Doc();
  const ownerSide = provider(room, ownerDoc, params(owner, room));
  await until(() => ownerSide.synced, 'the owner synced');
  ownerDoc.getText('t').insert(0, 'hello');

  const writerDoc = new Y.Doc();
  const writerSide = provider(room, writerDoc, params(writer, room, [grant(writer, ['read', 'write'])]));
  await until(() => writerDoc.getText('t').toString() === 'hello', 'the writer synced');
  writerDoc.getText('t').insert(5, ' world');
  await until(() => ownerDoc.getText('t').toString() === 'hello world', "the writer's edit at the owner");

  const readerDoc = new Y.Doc();
  const readerSide = provider(room, readerDoc, params(reader, room, [grant(reader, ['read'])]));
  await until(() => readerDoc.getText('t').toString() === 'hello world', 'the reader synced');
  readerDoc.getText('t').insert(0, 'reader: ');
  await until(() => readerSide.denied.length > 0, 'permission denied for the reader');
  assert.ok(readerSide.denied[0].startsWith('NOT_AUTHORIZED'), readerSide.denied[0]);
  // Still connected and following the room; the room never took the reader's edit.
  ownerDoc.getText('t').insert(11, '!');
  await until(() => readerDoc.getText('t').toString().endsWith('hello world!'), "the owner's edit at the reader");
  assert.equal(readerSide.wsconnected, true);
  assert.equal(ownerDoc.getText('t').toString(), 'hello world!');
  assert.equal(writerDoc.getText('t').toString(), 'hello world!');
  for (const p of [ownerSide, writerSide, readerSide]) destroy(p);
});

test('a capability revoked while connected: the stock provider stops with closed 4403 CAPABILITY_REVOKED', async () => {
  const owner = Identity.generate();
  const bob = Identity.generate();
  const room = `@${owner.agentId}/notes`;
  const expiresMs = Date.now() + HOUR_MS;
  const cap = Capability.grant(owner, { audience: bob.agentId, topic: room, rights: ['read', 'write'], expiresMs });
  const doc = new Y.Doc();
  const bobs = provider(room, doc, Capability.roomParams(bob, room, [cap], expiresMs));
  await until(() => bobs.synced, 'bob synced');
  const closed = new Promise((resolve) => bobs.once('closed', resolve));
  // The owner revokes the capability's root link in the room's topic, over /ws.
  const client = await RelayClient.connect(`ws://127.0.0.1:${relay.port}/ws`, owner, { WebSocket });
  try {
    await client.publish(room, 'cap.revoke', Capability.revocation(cap, 0));
    const { code, reason } = await closed;
    assert.equal(code, 4403, reason);
    assert.ok(reason.startsWith('CAPABILITY_REVOKED'), reason);
    assert.ok(bobs.denied.some((d) => d.startsWith('CAPABILITY_REVOKED')), `${bobs.denied}`);
    assert.equal(bobs.shouldConnect, false, 'a stock provider does not retry a 44xx close');
  } finally {
    client.close();
    destroy(bobs);
  }
});

test('a room whose topic the owner made public syncs a provider without params, until it is private again', async () => {
  const owner = Identity.generate();
  const room = `@${owner.agentId}/notes`;
  const expiresMs = Date.now() + HOUR_MS;
  const ownerDoc = new Y.Doc();
  const ownerSide = provider(room, ownerDoc, Capability.roomParams(owner, room, [], expiresMs));
  await until(() => ownerSide.synced, 'the owner synced');
  ownerDoc.getText('t').insert(0, 'hello');
  const client = await RelayClient.connect(`ws://127.0.0.1:${relay.port}/ws`, owner, { WebSocket });
  let anyone;
  try {
    await client.publish(room, 'topic.policy', Capability.topicPolicy({ read: 'public' }));
    const doc = new Y.Doc();
    anyone = provider(room, doc, {});
    await until(() => doc.getText('t').toString() === 'hello', 'a provider without params synced');
    // Reading only: its edit is dropped, with one permission-denied message.
    doc.getText('t').insert(0, 'anyone: ');
    await until(() => anyone.denied.length > 0, 'permission denied for the edit');
    assert.ok(anyone.denied[0].startsWith('NOT_AUTHORIZED'), anyone.denied[0]);
    const closed = new Promise((resolve) => anyone.once('closed', resolve));
    await client.publish(room, 'topic.policy', Capability.topicPolicy({ read: 'private' }));
    const { code, reason } = await closed;
    assert.equal(code, 4401, reason);
    assert.ok(reason.startsWith('NOT_AUTHENTICATED'), reason);
    assert.equal(anyone.shouldConnect, false, 'a stock provider does not retry a 44xx close');
    assert.equal(ownerDoc.getText('t').toString(), 'hello');
  } finally {
    client.close();
    if (anyone) destroy(anyone);
    destroy(ownerSide);
  }
});
