// Yjs rooms on a cluster (issue 23 §2): stock y-websocket providers connected to two different
// frontends of one relay edit one document and see each other's awareness, and the room
// outlives the loss of a frontend. A
// plain room on a cluster is kept in the replicated log (topic `yjs/<room>`), not on a
// frontend's disk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as Y from 'yjs';

import { startCluster } from './cluster.mjs';
import { providers } from './yjs-providers.mjs';

const PATIENCE_MS = 60_000;
const open = providers();
const { destroy } = open;
const clusters = [];

after(async () => {
  open.destroyAll();
  for (const cluster of clusters) await cluster.stop();
});

const connect = (url, room) => open.connect(url, room, new Y.Doc());

/** Polls `predicate` until true, failing after the patience with `describe()`. */
async function until(predicate, what, describe = () => '') {
  const deadline = Date.now() + PATIENCE_MS;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what} ${describe()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const text = (provider) => provider.doc.getText('body').toString();

test('providers on two frontends converge, and the room survives the loss of a frontend', async () => {
  const cluster = await startCluster(2);
  clusters.push(cluster);
  const [one, two] = cluster.frontends;
  const room = `notes-${Date.now().toString(36)}`;

  const a = connect(one.yjs, room);
  const b = connect(two.yjs, room);
  await until(() => a.synced && b.synced, 'both providers to sync');

  // Concurrent edits on both frontends, many at once: both frontends sign the room's ops with
  // the one relay key, so their counters race; no edit may be lost to that.
  const edits = 40;
  for (let i = 0; i < edits; i += 1) {
    a.doc.getText('body').insert(0, 'a');
    b.doc.getText('body').insert(0, 'b');
    if (i % 8 === 7) await new Promise((r) => setTimeout(r, 5));
  }
  a.doc.getMap('meta').set('title', 'Notes');
  const converged = () => text(a).length === 2 * edits && text(a) === text(b);
  await until(converged, 'the texts to converge', () => `A=${text(a).length} B=${text(b).length}`);
  assert.equal([...text(a)].filter((c) => c === 'a').length, edits);
  assert.equal([...text(a)].filter((c) => c === 'b').length, edits);
  await until(() => b.doc.getMap('meta').get('title') === 'Notes', 'the map entry to reach B');

  // Awareness crosses frontends too: states both ways, and a departure.
  a.awareness.setLocalStateField('user', { name: 'alice' });
  b.awareness.setLocalStateField('user', { name: 'bob' });
  const nameIn = (provider, id) => provider.awareness.getStates().get(id)?.user?.name;
  await until(() => nameIn(b, a.doc.clientID) === 'alice', 'alice to appear on frontend two');
  await until(() => nameIn(a, b.doc.clientID) === 'bob', 'bob to appear on frontend one');
  const e = connect(one.yjs, room);
  await until(() => e.synced, 'a third provider on frontend one to sync');
  // A newcomer learns who is on the other frontend (its room asks the others on opening, and
  // hears their renewals).
  await until(() => nameIn(e, b.doc.clientID) === 'bob', 'the newcomer to see bob');
  e.awareness.setLocalStateField('user', { name: 'eve' });
  const eve = e.doc.clientID;
  await until(() => nameIn(b, eve) === 'eve', 'eve to appear on frontend two');
  destroy(e);
  await until(() => !b.awareness.getStates().has(eve), 'eve to leave frontend two');

  // Frontend one dies; the room lives on in the cluster: a newcomer on frontend two gets every
  // edit, and editing goes on there.
  await one.kill();
  const c = connect(two.yjs, room);
  await until(() => c.synced && text(c) === text(b), 'the newcomer on frontend two to catch up');
  b.doc.getText('body').insert(0, 'after-');
  await until(() => text(c).startsWith('after-'), 'an edit after the loss to reach the newcomer');

  // Frontend one comes back (its disk holds no room): it reopens the room from the log.
  await one.restart();
  const d = connect(one.yjs, room);
  await until(() => d.synced && text(d) === text(b), 'a provider on the restarted frontend to catch up',
    () => `D=${text(d).length} B=${text(b).length}`);
  assert.equal(d.doc.getMap('meta').get('title'), 'Notes');
  d.doc.getText('body').insert(text(d).length, '!');
  await until(() => text(b).endsWith('!') && text(c).endsWith('!'), 'an edit on the restarted frontend to reach frontend two');
  assert.deepEqual(Y.encodeStateVector(d.doc), Y.encodeStateVector(b.doc));

  for (const provider of [a, b, c, d]) destroy(provider);
});
