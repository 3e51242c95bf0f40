// RelayClient given several frontends of one relay (issue 23 §3), against a real cluster: three
// nats-servers and two ants-relay frontends sharing one key (tests/js/cluster.mjs). The frontend
// the client uses is SIGKILLed while it publishes; the client fails over by itself, every
// publish settles with a receipt, and the log it follows has every op once, at its receipted seq.
// Also: frontends with another relay key are RELAY_KEY_CHANGED, a frontend refusing connections
// is passed over at connect, and bad url lists are BAD_INPUT.
//
// Needs: pkg/, nats-server (scripts/setup.sh), and ants-relay with the `nats` feature
// (ANTS_RELAY_BIN, as scripts/test.sh sets it, or built here with --features relay,nats).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { WebSocket } from 'ws';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { startCluster } from './cluster.mjs';
import { freePort, startRelay } from './helpers.mjs';

// Ops published before the kill, and while and after it: bounded, so the test is too.
const BEFORE_KILL = 10;
const AROUND_KILL = 20;

let cluster = null;
before(async () => {
  cluster = await startCluster(2);
});
after(async () => {
  await cluster?.stop();
});

/** The first `type` event of `client` that `accept` takes, as a promise. */
function nextEvent(client, type, accept = () => true) {
  return new Promise((resolve) => {
    const off = client.on(type, (event) => {
      if (!accept(event)) return;
      off();
      resolve(event);
    });
  });
}

test('a client of two frontends fails over when its frontend is SIGKILLed, losing nothing', async () => {
  const urls = cluster.frontends.map(({ ws }) => ws);
  const client = await RelayClient.connect(urls, Identity.generate(), { WebSocket });
  const misbehaviour = [];
  client.on('misbehaviour', (event) => misbehaviour.push(event));
  const failovers = [];
  client.on('failover', (event) => failovers.push(event));
  try {
    const topic = `failover-${Date.now()}`;
    // The log as the client follows it: seq → op id, every delivery kept.
    const delivered = [];
    const subscription = client.subscribe(topic, {
      onEntry: (entry) => delivered.push({ seq: Number(entry.seq), opId: entry.opId }),
    });
    const receipts = [];
    for (let i = 0; i < BEFORE_KILL; i += 1) receipts.push(await client.publish(topic, 'note', `before ${i}`));

    const used = client.url;
    assert.ok(urls.includes(used), `client.url ${used} is one of the frontends`);
    const other = urls.find((url) => url !== used);
    const victim = cluster.frontends[urls.indexOf(used)];
    const movedAway = nextEvent(client, 'failover', (event) => event.from === used);
    const liveAgain = nextEvent(client, 'status', (status) => status === 'live');

    // Half the rest in flight when the frontend dies, half published after it died.
    const pending = [];
    for (let i = 0; i < AROUND_KILL / 2; i += 1) pending.push(client.publish(topic, 'note', `around ${i}`));
    await victim.kill();
    for (let i = AROUND_KILL / 2; i < AROUND_KILL; i += 1) pending.push(client.publish(topic, 'note', `around ${i}`));

    assert.deepEqual(await movedAway, { from: used, to: other });
    await liveAgain;
    assert.equal(client.url, other, 'the client is on the surviving frontend');
    receipts.push(...(await Promise.all(pending)));

    // Every publish has one receipt; every receipted op is in the followed log once, at its seq.
    const total = BEFORE_KILL + AROUND_KILL;
    assert.equal(receipts.length, total);
    assert.equal(new Set(receipts.map((r) => r.opId)).size, total, 'one receipt per op');
    const last = Math.max(...receipts.map((r) => Number(r.seq)));
    assert.equal(last, total - 1, 'the topic holds only these ops');
    await subscription.delivered(last);
    const seqs = delivered.map((entry) => entry.seq);
    assert.deepEqual(seqs, [...Array(total).keys()], 'each seq delivered once, in order');
    for (const receipt of receipts) {
      assert.equal(delivered[Number(receipt.seq)].opId, receipt.opId, `op at its receipted seq ${receipt.seq}`);
    }
    assert.ok(failovers.length >= 1);
    assert.deepEqual(misbehaviour, [], 'no misbehaviour reported');
  } finally {
    client.close();
  }
});

test('frontends of two different relays: the second key is RELAY_KEY_CHANGED', async () => {
  // Two independent relays given as if they were one: the key pinned on the first must not
  // change on the second.
  const [first, second] = [await startRelay(), await startRelay()];
  const client = await RelayClient.connect([first.ws, second.ws], Identity.generate(), {
    WebSocket,
    frontendOrder: 'listed',
  });
  try {
    assert.equal(client.url, first.ws, 'listed order starts with the first url');
    const pinned = client.relayId;
    const caught = nextEvent(client, 'misbehaviour');
    const moved = nextEvent(client, 'failover');
    await first.stop();
    assert.deepEqual(await moved, { from: first.ws, to: second.ws });
    const event = await caught;
    assert.equal(event.code, 'RELAY_KEY_CHANGED');
    assert.equal(client.relayId, pinned, 'the pinned key stays');
    assert.equal(client.status, 'misbehaviour');
  } finally {
    client.close();
    await Promise.all([first.stop(), second.stop()]);
  }
});

test('a frontend that refuses connections is passed over at connect', async () => {
  const relay = await startRelay();
  const closed = `ws://127.0.0.1:${await freePort()}/ws`;
  const failovers = [];
  const client = await RelayClient.connect([closed, relay.ws], Identity.generate(), {
    WebSocket,
    frontendOrder: 'listed',
    wait: false,
  });
  client.on('failover', (event) => failovers.push(event));
  try {
    await client.ready();
    assert.equal(client.url, relay.ws);
    assert.deepEqual(failovers[0], { from: closed, to: relay.ws });
    const receipt = await client.publish(`passed-over-${Date.now()}`, 'note', 'here');
    assert.equal(Number(receipt.seq), 0);
  } finally {
    client.close();
    await relay.stop();
  }
});

test('connect refuses a bad list of frontends with BAD_INPUT', async () => {
  const identity = Identity.generate();
  const url = `ws://127.0.0.1:${await freePort()}/ws`;
  for (const urls of [[], [url, 7], [null], [url, {}]]) {
    await assert.rejects(RelayClient.connect(urls, identity, { WebSocket }), (error) => error.code === 'BAD_INPUT');
  }
  await assert.rejects(
    RelayClient.connect([url], identity, { WebSocket, frontendOrder: 'random' }),
    (error) => error.code === 'BAD_INPUT',
  );
});
