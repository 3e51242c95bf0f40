// RelayClient's capabilities (issue 24 "Clients") against the real ants-relay binary: the
// `capabilities` option is sent on the WebSocket URL (`?cap=<hex>`), a reader without one is
// refused an owned topic, and `addCapability` on a live client makes a refused read work.
//
// Needs: pkg/ (scripts/build-pkg.sh) and the relay (ANTS_RELAY_BIN, or a debug build).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WebSocket } from 'ws';
import { Capability, Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { assertCode, relayForFile } from './helpers.mjs';

const shared = relayForFile({ RelayClient, Identity, WebSocket });
const HOUR_MS = 3_600_000;

/** An owner with a private topic holding `count` posts, and a reader identity. */
async function privateTopic(name, count) {
  const owner = Identity.generate();
  const reader = Identity.generate();
  const topic = `@${owner.agentId}/${name}`;
  const client = await RelayClient.connect(shared.relay.ws, owner, { WebSocket });
  const receipts = [];
  for (let i = 0; i < count; i += 1) receipts.push(await client.publish(topic, 'note', `note ${i}`));
  client.close();
  const readCap = Capability.grant(owner, {
    audience: reader.agentId,
    topic,
    rights: ['read'],
    expiresMs: Date.now() + HOUR_MS,
  });
  return { owner, reader, topic, receipts, readCap };
}

/** The bodies of the first `count` entries of `subscription`, as text. */
async function firstBodies(subscription, count) {
  const bodies = [];
  for await (const item of subscription) {
    if (item.type !== 'entry') continue;
    bodies.push(new TextDecoder().decode(item.body));
    if (bodies.length === count) break;
  }
  return bodies;
}

/** The next 'error' the client emits. */
function nextError(client) {
  return new Promise((resolve) => {
    const off = client.on('error', (error) => {
      off();
      resolve(error);
    });
  });
}

test('a client with a read capability follows another agent’s owned topic', async () => {
  const { reader, topic, readCap } = await privateTopic('notes', 3);
  const client = await RelayClient.connect(shared.relay.ws, reader, { WebSocket, capabilities: [readCap] });
  try {
    const bodies = await firstBodies(client.subscribe(topic), 3);
    assert.deepEqual(bodies, ['note 0', 'note 1', 'note 2']);
    // Read, not write: the relay refuses the reader's publish.
    await assert.rejects(client.publish(topic, 'note', 'mine'), (error) => error.code === 'NOT_AUTHORIZED');
  } finally {
    client.close();
  }
});

test('without a capability the subscription is refused; addCapability makes it work', async () => {
  const { reader, topic, readCap, receipts } = await privateTopic('plans', 2);
  const client = await RelayClient.connect(shared.relay.ws, reader, { WebSocket });
  try {
    const refused = nextError(client);
    const subscription = client.subscribe(topic);
    // The refusal belongs to the subscription: its waits reject with it, and it says why.
    const waited = subscription.caughtUp().then(
      () => assert.fail('caughtUp resolved on a refused subscription'),
      (error) => error,
    );
    const error = await refused;
    assert.ok(['NOT_AUTHENTICATED', 'NOT_AUTHORIZED'].includes(error.code), error.message);
    assert.equal(error.topic, topic);
    assert.equal(subscription.error, error);
    assert.equal(await waited, error);
    assert.equal(client.cursor(topic), 0, 'nothing was delivered');

    const url = client.url;
    assert.equal(client.addCapability(readCap), true);
    assert.equal(client.addCapability(readCap), false, 'a capability held already changes nothing');
    await client.ready();
    assert.equal(client.url, url, 'addCapability stays on the same frontend');
    // The session resubscribes from its cursor on the new connection, which has the capability.
    await subscription.delivered(receipts.at(-1).seq);
    assert.equal(subscription.error, undefined, 'the relay answered the new subscribe');
    assert.deepEqual(await firstBodies(subscription, 2), ['note 0', 'note 1']);
  } finally {
    client.close();
  }
});

test('capabilities are checked before they are sent', async () => {
  const { reader, readCap } = await privateTopic('checked', 0);
  const connect = (capabilities) =>
    RelayClient.connect(shared.relay.ws, reader, { WebSocket, capabilities, connectTimeoutMs: 4_000 });
  await assert.rejects(connect('cap'), (error) => error.code === 'BAD_INPUT');
  await assert.rejects(connect([readCap, 'cap']), (error) => error.code === 'BAD_INPUT');
  await assert.rejects(connect(Array(17).fill(readCap)), (error) => error.code === 'LIMIT_EXCEEDED');
  const forged = readCap.slice();
  forged[forged.length - 1] ^= 1;
  await assert.rejects(connect([forged]), (error) => error.code === 'BAD_SIGNATURE');

  const client = await connect([]);
  try {
    assertCode(() => client.addCapability('cap'), 'BAD_INPUT', 'addCapability(string)');
    assertCode(() => client.addCapability(forged), 'BAD_SIGNATURE', 'addCapability(forged)');
    assert.notEqual(client.status, 'connecting', 'a refused capability does not reconnect');
  } finally {
    client.close();
  }
});

test('a writer presents its capability; a revocation ends a live reader with CAPABILITY_REVOKED', async () => {
  const { owner, reader, topic, readCap } = await privateTopic('revoked', 1);
  const writer = Identity.generate();
  const writeCap = Capability.grant(owner, {
    audience: writer.agentId,
    topic,
    rights: ['write'],
    expiresMs: Date.now() + HOUR_MS,
  });
  assertCode(() => Capability.revocation(readCap, 1), 'BAD_INPUT', 'no link 1');
  const clients = [];
  const connect = async (identity, capabilities) => {
    const client = await RelayClient.connect(shared.relay.ws, identity, { WebSocket, capabilities });
    clients.push(client);
    return client;
  };
  try {
    const writing = await connect(writer, [writeCap]);
    // The relay refuses a write the topic's log does not authorize yet (PROTOCOL.md 10.8).
    await assert.rejects(writing.publish(topic, 'note', 'too early'), (error) => error.code === 'NOT_AUTHORIZED');
    await writing.publish(topic, 'cap.present', Capability.presentation(writeCap));
    await writing.publish(topic, 'note', 'from the writer');

    const reading = await connect(reader, [readCap]);
    const ended = nextError(reading);
    const subscription = reading.subscribe(topic);
    assert.deepEqual(await firstBodies(subscription, 1), ['note 0']);
    const ownerClient = await connect(owner, []);
    await ownerClient.publish(topic, 'cap.revoke', Capability.revocation(readCap));
    const error = await ended;
    assert.equal(error.code, 'CAPABILITY_REVOKED');
    // The owner's replica event names the revoked link by the hash `Capability.decode` shows.
    assert.match(Capability.decode(readCap).chain[0].hash, /^[0-9a-f]{64}$/);
    assert.equal(error.topic, topic);

    await ownerClient.publish(topic, 'cap.revoke', Capability.revocation(writeCap, 0));
    await assert.rejects(writing.publish(topic, 'note', 'still?'), (error) => error.code === 'CAPABILITY_REVOKED');
  } finally {
    for (const client of clients) client.close();
  }
});

test('the owner makes a topic public with Capability.topicPolicy, and private again', async () => {
  const { owner, reader: stranger, topic } = await privateTopic('public', 2);
  assertCode(() => Capability.topicPolicy({ read: 'open' }), 'BAD_INPUT', 'unknown read rule');
  assertCode(() => Capability.topicPolicy({ read: 'public', write: 'public' }), 'BAD_INPUT', 'unknown field');
  assertCode(() => Capability.topicPolicy('public'), 'BAD_INPUT', 'not an object');
  assert.deepEqual([...Capability.topicPolicy({ read: 'public' })], [1, 1]);
  const clients = [];
  const connect = async (identity) => {
    const client = await RelayClient.connect(shared.relay.ws, identity, { WebSocket });
    clients.push(client);
    return client;
  };
  try {
    const reading = await connect(stranger);
    // Only the owner sets the policy.
    await assert.rejects(
      reading.publish(topic, 'topic.policy', Capability.topicPolicy({ read: 'public' })),
      (error) => error.code === 'NOT_AUTHORIZED',
    );
    const ownerClient = await connect(owner);
    await ownerClient.publish(topic, 'topic.policy', Capability.topicPolicy({ read: 'public' }));
    // Public: a stranger without any capability reads every entry, the policy's included.
    const ended = nextError(reading);
    const subscription = reading.subscribe(topic);
    assert.deepEqual(await firstBodies(subscription, 2), ['note 0', 'note 1']);
    // Private again: the stranger's subscription ends with NOT_AUTHORIZED.
    await ownerClient.publish(topic, 'topic.policy', Capability.topicPolicy({ read: 'private' }));
    const error = await ended;
    assert.equal(error.code, 'NOT_AUTHORIZED');
    assert.equal(error.topic, topic);
  } finally {
    for (const client of clients) client.close();
  }
});
