// RelayClient (ants-coord/client, web entry) in headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core) against the real ants-relay binary, which also serves the page
// (--www tests/js/fixtures) and the built package (--pkg pkg) from its own origin. The page and
// a Node RelayClient follow one topic: each sees the other's entry at the seq its publisher's
// verified receipt names, both verify a signed checkpoint of the whole log, nothing is reported;
// after a page reload the page resumes from state it kept in localStorage.
//
// Needs: scripts/build-pkg.sh (pkg/) and `cargo build --features relay --bin ants-relay`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { WebSocket } from 'ws';
import { Identity } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { freePort, pkgDir, root, waitForHttp } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const relayBin = join(targetDir, 'debug', 'ants-relay');
const TOPIC = 'browser-room';

const dir = mkdtempSync(join(tmpdir(), 'ants-client-browser-'));
let relay;
let relayExited = false;
let browser;
let page;
let node; // the Node-side RelayClient
const nodeSeen = { entries: [], misbehaviour: [] };
const pageErrors = [];

before(async () => {
  assert.ok(existsSync(relayBin), `build it: cargo build --features relay --bin ants-relay (${relayBin})`);
  const port = await freePort();
  relay = spawn(
    relayBin,
    ['--listen', `127.0.0.1:${port}`, '--data', join(dir, 'relay'), '--www', join(root, 'tests/js/fixtures'), '--pkg', pkgDir],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  relay.once('exit', () => (relayExited = true));
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(`${origin}/healthz`, 20_000, () => !relayExited);

  browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(error));
  await page.goto(`${origin}/client.html`);
  assert.equal(await page.evaluate(() => window.antsCoordReady), true, pageErrors.join('\n'));

  node = await RelayClient.connect(`ws://127.0.0.1:${port}/ws`, Identity.fromSeed(new Uint8Array(32).fill(7)), { WebSocket });
  node.on('misbehaviour', (event) => nodeSeen.misbehaviour.push(event));
  node.subscribe(TOPIC, { onEntry: (entry) => nodeSeen.entries.push(entry) });
});

after(async () => {
  node?.close();
  await browser?.close();
  if (relay && !relayExited) {
    const gone = new Promise((resolve) => relay.once('exit', resolve));
    relay.kill('SIGTERM');
    await gone;
  }
  rmSync(dir, { recursive: true, force: true });
});

const text = (bytes) => new TextDecoder().decode(bytes);

test('the page connects to the relay over its own origin and follows the topic', async () => {
  const result = await page.evaluate(async (topic) => {
    const { Identity } = window.antsCoord;
    const identity = Identity.generate();
    const client = await window.RelayClient.connect(`ws://${location.host}/ws`, identity);
    const seen = { entries: [], misbehaviour: [], verified: [], statuses: [] };
    client.on('misbehaviour', (event) => seen.misbehaviour.push({ code: event.code, detail: event.detail }));
    client.on('status', (status) => seen.statuses.push(status));
    client.on('verified', (event) => seen.verified.push(Number(event.treeSize)));
    client.subscribe(topic, {
      onEntry: (e) => seen.entries.push({ seq: Number(e.seq), opId: e.opId, author: e.author, kind: e.kind, text: new TextDecoder().decode(e.body) }),
    });
    window.identity = identity;
    window.client = client;
    window.seen = seen;
    return { agentId: client.agentId, relayId: client.relayId, status: client.status };
  }, TOPIC);
  assert.match(result.agentId, /^[0-9a-f]{64}$/);
  assert.equal(result.relayId, node.relayId, 'both pinned the same relay key');
  assert.equal(result.status, 'live');
});

test('an op published from the page reaches Node at the seq of its verified receipt', async () => {
  const receipt = await page.evaluate(async (topic) => {
    const r = await window.client.publish(topic, 'note', 'hello from Chromium');
    return { seq: Number(r.seq), opId: r.opId, signed: r.receipt.length };
  }, TOPIC);
  assert.equal(receipt.seq, 0);
  assert.ok(receipt.signed > 0, 'the relay signed the receipt');
  while (nodeSeen.entries.length < 1) await new Promise((resolve) => setTimeout(resolve, 20));
  const entry = nodeSeen.entries[0];
  assert.equal(Number(entry.seq), receipt.seq);
  assert.equal(entry.opId, receipt.opId);
  assert.equal(entry.author, await page.evaluate(() => window.client.agentId));
  assert.equal(text(entry.body), 'hello from Chromium');
});

test('an op published from Node reaches the page at the seq of its verified receipt', async () => {
  const receipt = await node.publish(TOPIC, 'note', 'hello from Node');
  assert.equal(Number(receipt.seq), 1);
  await page.waitForFunction(() => window.seen.entries.length >= 2);
  const entries = await page.evaluate(() => window.seen.entries);
  assert.deepEqual(entries[1], { seq: 1, opId: receipt.opId, author: node.agentId, kind: 'note', text: 'hello from Node' });
  assert.equal(entries[0].text, 'hello from Chromium');
  assert.equal(entries.length, 2, 'each entry delivered once');
});

test('both verify a signed checkpoint of the whole log; nothing is reported', async () => {
  const nodeVerified = new Promise((resolve) => {
    const off = node.on('verified', (event) => {
      if (event.topic === TOPIC && Number(event.treeSize) >= 2) {
        off();
        resolve(Number(event.treeSize));
      }
    });
  });
  node.requestCheckpoint(TOPIC);
  await page.evaluate((topic) => {
    window.seen.verified.length = 0;
    window.client.requestCheckpoint(topic);
  }, TOPIC);
  await page.waitForFunction(() => window.seen.verified.some((size) => size >= 2));
  const pageState = await page.evaluate(() => ({
    status: window.client.status,
    verified: window.seen.verified,
    misbehaviour: window.seen.misbehaviour,
    statuses: window.seen.statuses,
  }));
  assert.equal(await nodeVerified, 2);
  assert.equal(node.status, 'verified');
  assert.equal(pageState.status, 'verified');
  assert.ok(pageState.verified.includes(2), `verified sizes ${pageState.verified}`);
  assert.deepEqual(pageState.misbehaviour, []);
  assert.ok(!pageState.statuses.includes('misbehaviour'));
  assert.deepEqual(nodeSeen.misbehaviour, []);
  assert.deepEqual(pageErrors, []);
});

test('after a page reload the client resumes from state kept in localStorage', async () => {
  const agentId = await page.evaluate(() => {
    const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    const saved = { seed: hex(window.identity.exportSeed()), state: hex(window.client.exportState()) };
    localStorage.setItem('ants-coord-client', JSON.stringify(saved));
    window.client.close();
    return window.client.agentId;
  });
  const away = await node.publish(TOPIC, 'note', 'while the page reloads');
  assert.equal(Number(away.seq), 2);

  await page.reload();
  assert.equal(await page.evaluate(() => window.antsCoordReady), true, pageErrors.join('\n'));
  const resumed = await page.evaluate(async (topic) => {
    const bytes = (h) => Uint8Array.from(h.match(/../g), (b) => parseInt(b, 16));
    const saved = JSON.parse(localStorage.getItem('ants-coord-client'));
    const identity = window.antsCoord.Identity.fromSeed(bytes(saved.seed));
    const client = await window.RelayClient.connect(`ws://${location.host}/ws`, identity, { state: bytes(saved.state) });
    const seen = { entries: [], misbehaviour: [] };
    client.on('misbehaviour', (event) => seen.misbehaviour.push(event.code));
    const cursor = client.cursor(topic);
    client.subscribe(topic, { onEntry: (e) => seen.entries.push({ seq: Number(e.seq), opId: e.opId }) });
    window.client = client;
    window.seen = seen;
    return { agentId: client.agentId, cursor };
  }, TOPIC);
  assert.deepEqual(resumed, { agentId, cursor: 2 });
  await page.waitForFunction(() => window.seen.entries.length >= 1);
  // The page publishes again with the restored key: the next seq, seen by Node.
  const receipt = await page.evaluate(async (topic) => {
    const r = await window.client.publish(topic, 'note', 'back again');
    return { seq: Number(r.seq), opId: r.opId };
  }, TOPIC);
  assert.equal(receipt.seq, 3);
  await page.waitForFunction(() => window.seen.entries.length >= 2);
  const after = await page.evaluate(() => ({ entries: window.seen.entries, misbehaviour: window.seen.misbehaviour }));
  assert.deepEqual(after.entries, [{ seq: 2, opId: away.opId }, receipt], 'only what was missed, once, then its own');
  while (nodeSeen.entries.length < 4) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(nodeSeen.entries[3].opId, receipt.opId);
  assert.equal(nodeSeen.entries[3].author, agentId);
  assert.deepEqual(after.misbehaviour, []);
  assert.deepEqual(nodeSeen.misbehaviour, []);
  await page.evaluate(() => window.client.close());
});
