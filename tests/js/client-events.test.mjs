// Relay-pushed events and readable misbehaviour details, against real relays (issue 21, items 4
// and 5): a losing claimant hears of its loss through the relay's `event` frame even when it
// does not follow the topic, and once only when it does; a misbehaviour's `detail` is a
// sentence, not Rust debug text.
//
// Needs the built package (scripts/build-pkg.sh) and the relay binary (ANTS_RELAY_BIN, or built).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WebSocket } from 'ws';
import { Identity, ReplicaOp } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { relayForFile, startRelay } from './helpers.mjs';

const shared = relayForFile({ RelayClient, Identity, WebSocket });

/** Resolves with the first `type` event of `client`. */
function nextEvent(client, type) {
  return new Promise((resolve) => {
    const off = client.on(type, (event) => {
      off();
      resolve(event);
    });
  });
}

test('a losing claimant that does not follow the topic gets its compensation pushed', async () => {
  const topic = 'pushed-unfollowed';
  const loser = await shared.connect();
  try {
    await shared.writer.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    const compensations = [];
    loser.onCompensation('claim', (event, eventTopic) => compensations.push([event, eventTopic]));
    const pushed = nextEvent(loser, 'event');
    const receipt = await loser.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    const { topic: pushedTopic, seq, event } = await pushed;
    assert.equal(pushedTopic, topic);
    assert.equal(Number(seq), Number(receipt.seq));
    assert.equal(event.type, 'compensation');
    assert.equal(event.loser, loser.agentId);
    assert.equal(event.winner, shared.writer.agentId);
    assert.equal(event.resource, 'slot');
    assert.deepEqual(compensations, [[event, topic]]);
  } finally {
    loser.close();
  }
});

test('a losing claimant that follows the topic hears once, and the push agrees with its replica', async () => {
  const topic = 'pushed-followed';
  const loser = await shared.connect();
  try {
    await shared.writer.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    const misbehaviour = [];
    loser.on('misbehaviour', (event) => misbehaviour.push(event));
    const compensations = [];
    loser.onCompensation('claim', (event) => compensations.push(event));
    const feed = loser.subscribe(topic, { onEntry: () => {} });
    const pushed = nextEvent(loser, 'event');
    const receipt = await loser.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    const { event } = await pushed;
    await feed.delivered(receipt.seq);
    assert.equal(compensations.length, 1, 'from the replica, not twice');
    assert.equal(compensations[0].loser, event.loser);
    assert.equal(Number(compensations[0].losingSeq), Number(event.losingSeq));
    assert.deepEqual(misbehaviour, []);
  } finally {
    loser.close();
  }
});

test("a misbehaviour's detail is a sentence", async () => {
  // A client that pinned one relay's key, resumed against another relay.
  const identity = Identity.generate();
  const pinned = await RelayClient.connect(shared.relay.ws, identity, { WebSocket });
  const pinnedState = pinned.exportState();
  pinned.close();
  const other = await startRelay();
  let client;
  try {
    client = await RelayClient.connect(other.ws, identity, { WebSocket, state: pinnedState, wait: false });
    const event = await nextEvent(client, 'misbehaviour');
    assert.equal(event.code, 'RELAY_KEY_CHANGED');
    assert.match(event.detail, /^the relay presented the key [0-9a-f]{64}, not the one pinned on first contact$/);
  } finally {
    client?.close();
    await other.stop();
  }
});
