// The traps a new user fell into (issue 25), made loud, against a real relay:
// - a replica kind (`post`, `claim`, …) published with a raw body is refused `BAD_INPUT` by the
//   client before it is signed or sent (every replica would reject it, `MALFORMED_BODY`), by
//   `publish`, `publishOp`, `publishSigned` and a RelayGroup's `publish` alike; other kinds take
//   any body;
// - a `doc.update` whose body is not a document update is refused the same way;
// - `onCompensation` calls its handler for this agent's own lost ops, `{ all: true }` for all.
//
// Needs the built package (scripts/build-pkg.sh) and the relay binary (ANTS_RELAY_BIN, or built).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WebSocket } from 'ws';
import { Doc, Identity, ReplicaOp, signOp } from 'ants-coord';
import { RelayClient, RelayGroup } from 'ants-coord/client';

import { assertCode, relayForFile, startRelay } from './helpers.mjs';

const shared = relayForFile({ RelayClient, Identity, WebSocket });

/** What `call` (sync or async) threw or rejected with. */
async function failure(call) {
  try {
    await call();
  } catch (error) {
    return error;
  }
  assert.fail('expected a refusal');
}

test('a replica kind with a raw body is refused BAD_INPUT before it leaves; other kinds take it', async () => {
  const topic = 'raw-bodies';
  const client = shared.writer;
  const before = client.exportState();
  for (const kind of ['post', 'claim', 'vouch', 'task.post', 'mint', 'transfer', 'leader.act']) {
    for (const body of ['hello', new Uint8Array([1, 2, 3]), new Uint8Array()]) {
      const error = await failure(() => client.publish(topic, kind, body));
      assert.equal(error.code, 'BAD_INPUT', `${kind}: ${error.message}`);
      assert.equal(error.name, 'AntsCoordError');
    }
    assertCode(() => client.publishOp(topic, kind, 'hello'), 'BAD_INPUT', `publishOp ${kind}`);
  }
  // Signed elsewhere by this agent, with signOp (which signs any body): refused at publishSigned.
  const identity = Identity.generate();
  const own = await RelayClient.connect(shared.relay.ws, identity, { WebSocket });
  try {
    const raw = signOp(identity, { topic, kind: 'post', counter: 1, body: new TextEncoder().encode('hello') });
    assert.equal((await failure(() => own.publishSigned(raw))).code, 'BAD_INPUT');
  } finally {
    own.close();
  }
  // Nothing was signed or queued: the state is as it was, and the topic's first op is seq 0.
  assert.deepEqual(client.exportState(), before);
  const first = await client.publish(topic, 'post', ReplicaOp.post({ text: 'hello' }));
  assert.equal(Number(first.seq), 0);
  const note = await client.publish(topic, 'note', 'hello');
  assert.equal(Number(note.seq), 1);
  const chat = await client.publishOp(topic, 'chat.msg', new Uint8Array([1, 2, 3])).receipt;
  assert.equal(Number(chat.seq), 2);
});

test('a RelayGroup refuses a raw replica body the same way, on no relay', async () => {
  const second = await startRelay();
  const group = await RelayGroup.connect([shared.relay.ws, second.ws], Identity.generate(), { WebSocket });
  try {
    const error = await failure(() => group.publish('group-raw', 'post', 'hello'));
    assert.equal(error.code, 'BAD_INPUT');
    const receipts = await group.publish('group-raw', 'post', ReplicaOp.post({ text: 'hello' }));
    assert.deepEqual(receipts.map((r) => Number(r.seq)), [0, 0], 'the refused op reached neither relay');
  } finally {
    group.close();
    await second.stop();
  }
});

test('a doc.update whose body is not a document update is refused BAD_INPUT', async () => {
  const topic = 'doc-bodies';
  const client = shared.writer;
  const doc = new Doc();
  try {
    doc.insertText('text', 0, 'hi');
    const update = doc.encodeUpdate();
    for (const [body, what] of [
      [update, 'the update without the version byte 1'],
      ['hello', 'text'],
      [new Uint8Array(), 'nothing'],
      [Uint8Array.of(2, ...update), 'another version'],
    ]) {
      const error = await failure(() => client.publish(topic, 'doc.update', body));
      assert.equal(error.code, 'BAD_INPUT', `${what}: ${error.message}`);
    }
    const receipt = await client.publish(topic, 'doc.update', Uint8Array.of(1, ...update));
    assert.equal(Number(receipt.seq), 0);
  } finally {
    doc.free();
  }
});

test("onCompensation hears this agent's own losses; { all: true } hears every agent's", async () => {
  const topic = 'own-compensations';
  const winner = shared.writer;
  const loser = await shared.connect();
  try {
    const heard = { winnerOwn: [], winnerAll: [], loserOwn: [] };
    winner.onCompensation('claim', (event) => heard.winnerOwn.push(event));
    winner.onCompensation('claim', (event) => heard.winnerAll.push(event), { all: true });
    let loserHeard;
    const loserHeardOnce = new Promise((resolve) => {
      loserHeard = resolve;
    });
    loser.onCompensation('claim', (event) => {
      heard.loserOwn.push(event);
      loserHeard();
    });
    // The winner follows the topic: its replica sees the loser's compensation.
    const feed = winner.subscribe(topic, { onEntry: () => {} });
    await winner.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    const lost = await loser.publish(topic, 'claim', ReplicaOp.claim({ resource: 'slot' }));
    await feed.delivered(lost.seq);
    // The loser does not follow the topic: its compensation is pushed by the relay.
    await loserHeardOnce;
    assert.deepEqual(heard.winnerOwn, [], "not the winner's loss");
    assert.equal(heard.winnerAll.length, 1);
    assert.equal(heard.winnerAll[0].loser, loser.agentId);
    assert.equal(heard.loserOwn.length, 1);
    assert.equal(heard.loserOwn[0].loser, loser.agentId);
    assert.equal(Number(heard.loserOwn[0].losingSeq), Number(lost.seq));
  } finally {
    loser.close();
  }
});

test('onCompensation refuses options it does not know', () => {
  const client = shared.writer;
  const handler = () => {};
  for (const options of [null, 5, 'all', { all: 'yes' }, { everyone: true }]) {
    assertCode(() => client.onCompensation('claim', handler, options), 'BAD_INPUT', JSON.stringify(options));
  }
  const off = client.onCompensation('claim', handler, { all: false });
  assert.equal(typeof off, 'function');
  off();
});
