// What a subscription and a client promise over their lifetime, against a real relay: waits that
// outlive a `break`, an `unsubscribe` of a replaced subscription that ends nothing, events in the
// shapes the types give (`null`, not `undefined`; replica events as `Replica.apply` gives them),
// and clients that come only from `connect`.
//
// Needs the built package (scripts/build-pkg.sh) and the relay binary (ANTS_RELAY_BIN, or built).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { WebSocket } from 'ws';
import { Identity, Replica, ReplicaOp } from 'ants-coord';
import { RelayClient, RelayGroup } from 'ants-coord/client';

import { relayForFile } from './helpers.mjs';

const shared = relayForFile({ RelayClient, Identity, WebSocket });

test('after a break, delivered and caughtUp still resolve while the client follows the topic', async () => {
  const client = await shared.connect();
  try {
    const first = await shared.writer.publish('after-break', 'note', 'one');
    const feed = client.subscribe('after-break');
    for await (const item of feed) if (item.type === 'entry') break;
    const later = await shared.writer.publish('after-break', 'note', 'two');
    assert.equal(await feed.delivered(later.seq), Number(later.seq) + 1);
    assert.ok((await feed.caughtUp()) > Number(first.seq));
    // The iterator stays ended; ending the subscription then rejects what it cannot reach.
    assert.deepEqual(await feed[Symbol.asyncIterator]().next(), { value: undefined, done: true });
    const never = feed.delivered(Number(later.seq) + 1000);
    feed.unsubscribe();
    await assert.rejects(never, { code: 'CLOSED' });
    assert.equal(client.cursor('after-break'), undefined);
  } finally {
    client.close();
  }
});

test('unsubscribe on a replaced subscription leaves its replacement alone', async () => {
  const client = await shared.connect();
  try {
    const replaced = client.subscribe('replaced');
    const current = client.subscribe('replaced');
    replaced.unsubscribe();
    const receipt = await shared.writer.publish('replaced', 'note', 'still followed');
    assert.equal(await current.delivered(receipt.seq), Number(receipt.seq) + 1);
    current.unsubscribe();
    assert.equal(client.cursor('replaced'), undefined);
  } finally {
    client.close();
  }
});

/** A ws WebSocket that hands every single-entry frame (type 0x45) to the client twice. */
class DuplicatingWebSocket extends WebSocket {
  set onmessage(handler) {
    super.onmessage = (event) => {
      handler(event);
      if (new Uint8Array(event.data)[1] === 0x45) handler(event);
    };
  }
  get onmessage() {
    return super.onmessage;
  }
}

test('a misbehaviour without evidence carries evidence: null', async () => {
  const client = await shared.connect({ WebSocket: DuplicatingWebSocket });
  try {
    const reports = [];
    client.on('misbehaviour', (event) => reports.push(event));
    client.subscribe('twice', { onEntry: () => {} });
    await shared.writer.publish('twice', 'note', 'x');
    while (reports.length === 0) await sleep(10);
    assert.equal(reports[0].code, 'DUPLICATE');
    assert.ok(Object.hasOwn(reports[0], 'evidence'));
    assert.equal(reports[0].evidence, null);
  } finally {
    client.close();
  }
});

test("replica events through the client are exactly Replica.apply's", async () => {
  const client = await shared.connect();
  try {
    const topic = 'expiring';
    const fromClient = [];
    const entries = [];
    const feed = client.subscribe(topic, {
      onEntry: (entry) => entries.push(entry.bytes),
      onEvent: (event) => fromClient.push(event),
    });
    const deadlineMs = Date.now() + 50;
    await client.publish(topic, 'task.post', ReplicaOp.taskPost({ task: 't1', reward: 0, deadlineMs }));
    await sleep(100);
    const last = await client.publish(topic, 'note', ReplicaOp.post({ text: 'after the deadline' }));
    await feed.delivered(last.seq);
    const replica = new Replica(topic);
    const fromReplica = entries.flatMap((bytes) => replica.apply(bytes));
    replica.free();
    assert.deepEqual(fromClient, fromReplica);
    const expired = fromClient.find((event) => event.type === 'taskExpired');
    assert.ok(expired, JSON.stringify(fromClient));
    assert.equal(expired.holder, null);
  } finally {
    client.close();
  }
});

test('clients come from connect only, and state and wait must have their types', async () => {
  assert.throws(() => new RelayClient(shared.relay.ws, Identity.generate(), { WebSocket }), {
    code: 'BAD_INPUT',
    name: 'AntsCoordError',
  });
  for (const options of [{ state: 'abc' }, { state: [1, 2] }, { wait: 'no' }, { wait: 0 }]) {
    await assert.rejects(
      shared.connect(options),
      { code: 'BAD_INPUT' },
      JSON.stringify(options),
    );
  }
  await assert.rejects(
    RelayGroup.connect([shared.relay.ws, shared.relay.ws], Identity.generate(), { WebSocket, states: 'x' }),
    { code: 'BAD_INPUT' },
  );
  // An exported state is taken as its Uint8Array or as its ArrayBuffer.
  const identity = Identity.generate();
  const original = await RelayClient.connect(shared.relay.ws, identity, { WebSocket });
  await shared.writer.publish('resumed', 'note', 'x');
  await original.subscribe('resumed').caughtUp();
  const state = original.exportState();
  original.close();
  for (const bytes of [state, state.slice().buffer]) {
    const resumed = await RelayClient.connect(shared.relay.ws, identity, { WebSocket, state: bytes });
    assert.equal(resumed.cursor('resumed'), 1);
    resumed.close();
  }
});
