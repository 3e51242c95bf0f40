// A subscription's queue is bounded (`maxQueuedBytes`): an iterator that falls behind pauses the
// topic on the relay and misses nothing; a subscription not yet iterated drops its queue and
// says so when it is iterated; leaving a paused iterator lets the client follow the topic again.
//
// Needs the built package (scripts/build-pkg.sh) and the relay binary (ANTS_RELAY_BIN, or built).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { WebSocket } from 'ws';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { relayForFile } from './helpers.mjs';

const shared = relayForFile({ RelayClient, Identity, WebSocket });

const BODY = 'x'.repeat(4096);

/** Publishes `count` posts of 4 KiB to `topic`, 50 at a time; resolves to the last seq. */
async function publishPosts(topic, count) {
  let last = -1;
  for (let start = 0; start < count; start += 50) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 50); i += 1) batch.push(shared.writer.publish(topic, 'note', BODY));
    for (const receipt of await Promise.all(batch)) last = Math.max(last, Number(receipt.seq));
  }
  return last;
}

/** Rejects after `ms` with `what`: a wait that must not hang the test. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test('a slow iterator pauses the topic on the relay, stays within its bound and misses nothing', async () => {
  const topic = 'slow-reader';
  const count = 600; // about 5 MiB of queue if nothing bounded it
  const bound = 64 * 1024;
  await publishPosts(topic, count / 2);
  const reader = await shared.connect();
  try {
    const misbehaviour = [];
    reader.on('misbehaviour', (event) => misbehaviour.push(event));
    const feed = reader.subscribe(topic, { maxQueuedBytes: bound });
    const seqs = [];
    let maxQueued = 0;
    let pausedSeen = false;
    let more = null;
    for await (const item of feed) {
      maxQueued = Math.max(maxQueued, feed.queuedBytes);
      pausedSeen ||= feed.paused;
      if (item.type !== 'entry') continue;
      seqs.push(Number(item.seq));
      // The second half is published live, while the reader is behind.
      if (seqs.length === 1) more = publishPosts(topic, count / 2);
      if (seqs.length === count) break;
      await sleep(1);
    }
    await more;
    assert.deepEqual(seqs, [...Array(count).keys()], 'every entry once, in order');
    assert.ok(pausedSeen, 'the reader fell behind, so the topic was paused');
    // Past the bound only by what had already arrived with the batch that crossed it.
    assert.ok(maxQueued < 2 * 2 ** 20, `queue peaked at ${maxQueued} bytes`);
    assert.equal(feed.paused, false);
    assert.deepEqual(misbehaviour, []);
  } finally {
    reader.close();
  }
});

test('leaving a paused iterator resumes the topic: the client goes on following it', async () => {
  const topic = 'left-while-paused';
  const last = await publishPosts(topic, 200);
  const reader = await shared.connect();
  try {
    const feed = reader.subscribe(topic, { maxQueuedBytes: 16 * 1024 });
    for await (const item of feed) {
      if (item.type === 'entry' && feed.paused) break;
      await sleep(20);
    }
    assert.ok(reader.cursor(topic) < last + 1, 'the break came before the reader caught up');
    assert.equal(feed.paused, false);
    assert.equal(feed.queuedBytes, 0, 'what nobody will read is let go');
    // The subscription's iterator ended; the client still follows the topic to its end.
    await within(10_000, 'the topic followed after the break', waitForCursor(reader, topic, last + 1));
    const later = await shared.writer.publish(topic, 'note', 'after the break');
    await within(10_000, 'a live entry after the break', waitForCursor(reader, topic, Number(later.seq) + 1));
  } finally {
    reader.close();
  }
});

async function waitForCursor(client, topic, cursor) {
  while ((client.cursor(topic) ?? 0) < cursor) await sleep(10);
}

test('a subscription not iterated in time drops its queue, keeps following, and says so when iterated', async () => {
  const topic = 'never-read';
  const last = await publishPosts(topic, 40);
  const reader = await shared.connect();
  try {
    const feed = reader.subscribe(topic, { maxQueuedBytes: 16 * 1024 });
    // Only waited on, as the edge example does: it catches up whatever the queue holds.
    await within(10_000, 'caughtUp', feed.caughtUp());
    await within(10_000, 'delivered', feed.delivered(last));
    assert.equal(feed.paused, false);
    assert.ok(feed.queuedBytes <= 16 * 1024, `${feed.queuedBytes} bytes queued`);
    const iterator = feed[Symbol.asyncIterator]();
    await assert.rejects(iterator.next(), (error) => error.code === 'LIMIT_EXCEEDED' && /maxQueuedBytes/.test(error.message));
    assert.deepEqual(await iterator.next(), { value: undefined, done: true });
    // Within the bound, a subscription iterated late still yields everything from its start.
    const small = reader.subscribe('read-late');
    await shared.writer.publish('read-late', 'note', 'one');
    await within(10_000, 'caughtUp', small.caughtUp());
    const first = await small[Symbol.asyncIterator]().next();
    assert.equal(Number(first.value.seq), 0);
  } finally {
    reader.close();
  }
});

test('maxQueuedBytes must be a number from 1 up, and a refused subscribe follows nothing', async () => {
  const reader = await shared.connect();
  try {
    for (const maxQueuedBytes of [0, -1, Number.NaN, '1000', {}]) {
      assert.throws(
        () => reader.subscribe('refused', { maxQueuedBytes }),
        (error) => error.code === 'BAD_INPUT',
        String(maxQueuedBytes),
      );
    }
    assert.equal(reader.cursor('refused'), undefined);
    const unbounded = reader.subscribe('unbounded', { maxQueuedBytes: Infinity });
    await shared.writer.publish('unbounded', 'note', 'kept');
    const first = await unbounded[Symbol.asyncIterator]().next();
    assert.equal(first.value.type, 'entry');
  } finally {
    reader.close();
  }
});
