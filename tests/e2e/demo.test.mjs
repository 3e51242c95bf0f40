// End-to-end test of the demo page (www/) against a real relay: Debian's Chromium driven by
// playwright-core, two browser contexts (each a fresh profile), the relay built from this
// checkout and started on a free loopback port with a temp data dir and `--www www`.
//
//   node --test tests/e2e/          # builds the relay (debug) and, if missing, pkg/
//
// Screenshots of every panel go to tests/e2e/artifacts/ (gitignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { WebSocket, WebSocketServer } from 'ws';

import { freePort, relayBinary, root, waitForHttp } from '../js/helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(root, 'tests/e2e/artifacts');
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
// A topic of its own per run, so a reused data dir could never leak old entries into the test.
const TOPIC = `e2e-${Date.now().toString(36)}`;

let relay;
let startRelay;
let dataDir;
let base;
const contexts = [];
const profiles = [];
let pageA;
let pageB;

async function openContext(viewport = { width: 1280, height: 1000 }) {
  const profile = mkdtempSync(join(tmpdir(), 'ants-coord-e2e-'));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
  contexts.push(context);
  return context;
}

async function openDemo(context, query = 'agents=0') {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.errors = errors;
  await page.goto(`${base}/?topic=${TOPIC}&${query}`);
  await page.waitForFunction(() => window.demo?.ready === true, null, { timeout: 20_000 });
  return page;
}

const feedRow = (page, predicate) => page.waitForFunction(predicate, null, { timeout: 15_000 });

before(async () => {
  if (!existsSync(join(root, 'pkg/ants_coord.js'))) {
    const build = spawnSync(join(root, 'scripts/build-pkg.sh'), { cwd: root, stdio: 'inherit' });
    assert.equal(build.status, 0, 'scripts/build-pkg.sh failed');
  }
  const binary = relayBinary();
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'ants-coord-e2e-relay-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  startRelay = async () => {
    relay = spawn(binary, ['--listen', `127.0.0.1:${port}`, '--data', dataDir, '--www', join(root, 'www')], { stdio: ['ignore', 'inherit', 'inherit'] });
    await waitForHttp(`${base}/healthz`, 20_000, () => relay.exitCode === null);
  };
  await startRelay();
  const served = await fetch(`${base}/pkg/ants_coord.js`);
  assert.equal(served.status, 200, 'the relay serves pkg/ at /pkg/ beside www/');
  pageA = await openDemo(await openContext());
  pageB = await openDemo(await openContext());
});

async function stopRelay() {
  if (!relay || relay.exitCode !== null) return;
  const exited = new Promise((resolve) => relay.once('exit', resolve));
  relay.kill('SIGTERM');
  await exited;
}

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await stopRelay();
  for (const dir of [...profiles, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

test('before the page is connected: the first line says what to try, Publish cannot submit, the banner names the code once', async () => {
  const context = await openContext();
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    // A relay address where nothing listens: the page never connects.
    const nowhere = `ws://127.0.0.1:${await freePort()}/ws`;
    await page.goto(`${base}/?topic=${TOPIC}&agents=0&relay=${nowhere}`);
    assert.match(await page.textContent('#intro'), /^What you see: .*First, type a note and press Publish, or click Open a task/);
    assert.equal(await page.isDisabled('#post-form button'), true, 'Publish is disabled until connected');
    // Once app.js runs (it sets the status), try every way to submit the note form.
    await page.waitForFunction(() => document.querySelector('#status').textContent !== 'Loading the package…');
    await page.evaluate(() => { window.stillHere = true; });
    await page.fill('#post-text', 'too early');
    await page.press('#post-text', 'Enter');
    await page.click('#post-form button', { force: true });
    const prevented = await page.evaluate(() => {
      let seen;
      window.addEventListener('submit', (event) => { seen = event.defaultPrevented; }, { once: true });
      document.querySelector('#post-form').requestSubmit();
      return seen;
    });
    assert.equal(prevented, true, 'a submit is stopped, never sent natively');
    assert.equal(await page.evaluate(() => window.stillHere), true, 'the page was not reloaded');
    assert.ok(page.url().includes(`relay=${nowhere}`), page.url());
    assert.equal(await page.inputValue('#post-text'), 'too early');
    // The failed connection's banner gives its code once (not "CONNECT_TIMEOUT CONNECT_TIMEOUT: …").
    const banner = await (await page.waitForFunction(() => {
      const text = document.querySelector('#status').textContent;
      return /Cannot reach the relay/.test(text) ? text : null;
    }, null, { timeout: 30_000 })).jsonValue();
    const codes = banner.match(/\b[A-Z][A-Z_]{3,}\b/g) ?? [];
    assert.equal(new Set(codes).size, codes.length, banner);
  } finally {
    await context.close();
  }
});

test('a note published in one context shows in the other with the same seq, a ✓ and then the checkpoint ✓', async () => {
  await pageA.fill('#post-text', 'hello from A');
  await pageA.click('#post-form button');
  const find = () => {
    const row = [...document.querySelectorAll('#feed tbody tr')].find((r) => r.dataset.kind === 'post' && r.cells[3].textContent === 'hello from A');
    return row ? { seq: row.dataset.seq, verified: row.querySelector('.verified').textContent, author: row.dataset.author } : null;
  };
  const inA = await (await feedRow(pageA, find)).jsonValue();
  const inB = await (await feedRow(pageB, find)).jsonValue();
  assert.equal(inB.seq, inA.seq);
  assert.equal(inB.author, inA.author);
  assert.match(inB.verified, /✓/);
  assert.equal(inA.author, await pageA.evaluate(() => window.demo.state.me));
  // The client asks for a signed checkpoint after a burst; once it verifies against the tree the
  // tab rebuilt, every entry below its size is marked as included.
  const included = (seq) => document.querySelector(`#feed tbody tr[data-seq="${seq}"] .verified`)?.dataset.checkpoint === 'yes';
  await pageB.waitForFunction(included, inB.seq, { timeout: 15_000 });
  assert.match(await pageB.textContent(`#feed tbody tr[data-seq="${inB.seq}"] .verified`), /signature ✓ · checkpoint ✓/);
  assert.match(await pageB.textContent('#checkpoint'), /Signed checkpoint verified at tree size \d+/);
  await pageB.locator('#panel-feed').screenshot({ path: join(ARTIFACTS, 'feed.png') });
});

test('a private topic: you grant friend a capability, present it in the log, friend writes, stranger is refused', async () => {
  await pageA.click('#private-start');
  const friendsNote = () => document.querySelector('#private-feed tbody tr[data-kind="note"][data-who="friend"]')?.cells[3].textContent ?? null;
  assert.equal(await (await pageA.waitForFunction(friendsNote, null, { timeout: 20_000 })).jsonValue(), 'hello from friend');
  const presented = await pageA.textContent('#private-feed tbody tr[data-kind="cap.present"]');
  assert.match(presented, /presents the capability of friend: read \+ write/);
  const stranger = () => document.querySelector('#private-stranger')?.textContent ?? null;
  const refused = await (await pageA.waitForFunction(stranger, null, { timeout: 20_000 })).jsonValue();
  assert.match(refused, /reading refused NOT_AUTHORIZED, writing refused NOT_AUTHORIZED/);
  assert.equal(await pageA.getAttribute('#private-stranger', 'class'), 'ok');
  // The owned topic is its own log: nothing of it reached the shared feed of either context.
  for (const page of [pageA, pageB]) {
    const leaked = await page.evaluate(() => [...document.querySelectorAll('#feed tbody tr')].some((r) => /friend/.test(r.cells[3]?.textContent ?? '')));
    assert.equal(leaked, false);
  }
  assert.deepEqual(pageA.errors, []);
  await pageA.locator('#panel-private').screenshot({ path: join(ARTIFACTS, 'private-topic.png') });
});

test('a double claim: one wins, the loser sees a compensation', async () => {
  // Both people were funded by the faucet (a claim stakes 10 of their balance).
  const funded = () => window.demo.state.model.balance(window.demo.state.me) >= 10;
  await Promise.all([pageA.waitForFunction(funded, null, { timeout: 15_000 }), pageB.waitForFunction(funded, null, { timeout: 15_000 })]);
  await pageA.click('#task-open');
  const taskId = await (await pageA.waitForFunction(() => document.querySelector('#tasks li[data-state=open]')?.dataset.task)).jsonValue();
  const claimButton = async (page) => {
    await page.waitForSelector(`#tasks li[data-task="${taskId}"] [data-role=claim]`);
    return page.$(`#tasks li[data-task="${taskId}"] [data-role=claim]`);
  };
  const [buttonA, buttonB] = await Promise.all([claimButton(pageA), claimButton(pageB)]);
  // Both click before either has seen the other's claim: an optimistic race.
  await Promise.all([buttonA.evaluate((b) => b.click()), buttonB.evaluate((b) => b.click())]);
  const holder = async (page) => (await page.waitForFunction((t) => {
    const task = window.demo.state.model.tasks.get(t);
    return task?.holder && task.conflicts.length === 1 ? task.holder : null;
  }, taskId, { timeout: 15_000 })).jsonValue();
  const [holderA, holderB] = await Promise.all([holder(pageA), holder(pageB)]);
  assert.equal(holderA, holderB, 'both contexts agree on the winner');
  const meA = await pageA.evaluate(() => window.demo.state.me);
  const [winner, loser] = holderA === meA ? [pageA, pageB] : [pageB, pageA];
  const words = await (await loser.waitForFunction((t) => [...document.querySelectorAll('.compensation')].map((d) => d.textContent).find((s) => s.includes(t)), taskId)).jsonValue();
  assert.match(words, /lost to/);
  assert.equal(await winner.evaluate((t) => [...document.querySelectorAll('.compensation')].some((d) => d.textContent.includes(t)), taskId), false);
  await loser.locator('#panel-claims').screenshot({ path: join(ARTIFACTS, 'claims-conflict.png') });
  await loser.locator('#panel-escrow').screenshot({ path: join(ARTIFACTS, 'escrow-conflict.png') });
});

test('text typed in one context appears in the other; typed in both at once, it converges', async () => {
  await pageA.click('#doc');
  await pageA.keyboard.type('ants share a text');
  await pageB.waitForFunction(() => document.querySelector('#doc').value === 'ants share a text', null, { timeout: 15_000 });
  // Both type at once, at the end: the Yrs merge keeps each one's run of characters whole, and
  // both tabs end with the same text.
  await pageB.focus('#doc');
  await pageB.evaluate(() => { const d = document.querySelector('#doc'); d.setSelectionRange(d.value.length, d.value.length); });
  await pageA.evaluate(() => { const d = document.querySelector('#doc'); d.setSelectionRange(d.value.length, d.value.length); });
  await Promise.all([pageA.keyboard.type(' [typed in A]'), pageB.keyboard.type(' [typed in B]')]);
  const converged = () => {
    const value = document.querySelector('#doc').value;
    return value.includes('[typed in A]') && value.includes('[typed in B]') ? value : null;
  };
  const [textA, textB] = await Promise.all([pageA, pageB].map(async (page) => (await page.waitForFunction(converged, null, { timeout: 15_000 })).jsonValue()));
  assert.equal(textA, textB);
  assert.ok(textA.startsWith('ants share a text'));
  assert.equal(textA.length, 'ants share a text'.length + 2 * ' [typed in A]'.length);
  await pageB.locator('#panel-doc').screenshot({ path: join(ARTIFACTS, 'doc.png') });
});

test('a reload keeps the identity and resumes the feed without duplicates', async () => {
  const before = await pageB.evaluate(() => ({ me: window.demo.state.me, count: window.demo.state.model.entries.size }));
  await pageB.reload();
  await pageB.waitForFunction(() => window.demo?.ready === true);
  await pageB.waitForFunction((n) => window.demo.state.model.entries.size >= n, before.count, { timeout: 15_000 });
  const after = await pageB.evaluate(() => ({
    me: window.demo.state.me,
    seqs: [...document.querySelectorAll('#feed tbody tr[data-seq]')].map((r) => Number(r.dataset.seq)),
  }));
  assert.equal(after.me, before.me);
  assert.equal(new Set(after.seqs).size, after.seqs.length, 'no entry shown twice');
  assert.equal(after.seqs.length, before.count);
  assert.deepEqual([...after.seqs].sort((a, b) => a - b), Array.from({ length: before.count }, (_, i) => i));
});

test('a relay restart is shown in plain words, and the feed resumes without loss or duplicates', async () => {
  const count = await pageA.evaluate(() => window.demo.state.model.entries.size);
  await stopRelay();
  await pageA.waitForFunction(() => /reconnecting/i.test(document.querySelector('#status').textContent), null, { timeout: 15_000 });
  await pageA.locator('header').screenshot({ path: join(ARTIFACTS, 'reconnecting.png') });
  await startRelay();
  await pageA.waitForFunction(() => document.querySelector('#status').className.includes('live'), null, { timeout: 30_000 });
  await pageB.fill('#post-text', 'after the restart');
  await pageB.click('#post-form button');
  await pageA.waitForFunction(() => [...document.querySelectorAll('#feed td.body')].some((td) => td.textContent === 'after the restart'), null, { timeout: 20_000 });
  const seqs = await pageA.evaluate(() => [...document.querySelectorAll('#feed tbody tr[data-seq]')].map((r) => Number(r.dataset.seq)));
  assert.equal(seqs.length, count + 1);
  assert.deepEqual([...seqs].sort((a, b) => a - b), Array.from({ length: count + 1 }, (_, i) => i));
});

/**
 * Where each entry of an entry frame (0x45: one length-prefixed entry after the 6-byte header)
 * or entries frame (0x4a: a u16 count, then that many) lies in `bytes`, as [start, end) pairs.
 */
function entrySpans(bytes) {
  const lengths = bytes[1] === 0x45 ? 1 : bytes[1] === 0x4a ? bytes.readUInt16BE(6) : 0;
  const spans = [];
  let at = bytes[1] === 0x45 ? 6 : 8;
  for (let i = 0; i < lengths; i += 1) {
    const length = bytes.readUInt32BE(at);
    spans.push([at + 4, at + 4 + length]);
    at += 4 + length;
  }
  return spans;
}

/**
 * A lying relay: a WebSocket proxy in front of the real one that corrupts the signature of any
 * entry whose bytes contain `marker` (an entry ends with its op, which ends with its signature
 * R ‖ s; a byte of s is flipped).
 */
async function lyingProxy(upstream, marker) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (client) => {
    const relaySide = new WebSocket(upstream);
    const early = [];
    relaySide.on('open', () => early.splice(0).forEach((m) => relaySide.send(m)));
    client.on('message', (m) => (relaySide.readyState === WebSocket.OPEN ? relaySide.send(m) : early.push(m)));
    relaySide.on('message', (m) => {
      const bytes = Buffer.from(m);
      for (const [start, end] of entrySpans(bytes)) {
        if (bytes.subarray(start, end).includes(Buffer.from(marker))) bytes[end - 32] ^= 1;
      }
      client.send(bytes);
    });
    client.on('close', () => relaySide.close());
    relaySide.on('close', () => client.close());
  });
  return server;
}

test('a relay that forges an entry raises a red misbehaviour alarm with the evidence', async () => {
  const proxy = await lyingProxy(`${base.replace('http', 'ws')}/ws`, 'forged by the relay');
  const context = await openContext();
  try {
    const page = await openDemo(context, `agents=0&relay=ws://127.0.0.1:${proxy.address().port}/ws`);
    await pageB.fill('#post-text', 'forged by the relay');
    await pageB.click('#post-form button');
    // The client's Session refuses the entry (INVALID_ENTRY); its tree then no longer matches the
    // relay's signed checkpoint either (HEAD_MISMATCH), which may be reported too.
    const alarm = await (await page.waitForFunction(() => [...document.querySelectorAll('#feed tr.alarm')].map((r) => r.textContent).find((t) => t.includes('INVALID_ENTRY')), null, { timeout: 15_000 })).jsonValue();
    assert.match(alarm, /misbehaviour \(INVALID_ENTRY\): the relay's entry at seq \d+ does not verify .*Session report: the entry served at seq \d+ is not valid/);
    assert.match(await page.textContent('#status'), /does not verify/);
    // The honest view is unaffected.
    await pageA.waitForFunction(() => [...document.querySelectorAll('#feed td.body')].some((td) => td.textContent === 'forged by the relay'));
    assert.equal(await pageA.evaluate(() => document.querySelectorAll('#feed tr.alarm').length), 0);
    await page.locator('#panel-feed').screenshot({ path: join(ARTIFACTS, 'misbehaviour.png') });
  } finally {
    await context.close();
    for (const client of proxy.clients) client.terminate();
    await new Promise((resolve) => proxy.close(resolve));
  }
});

test('with agents running every panel fills in; screenshots; a phone-sized screen has no sideways scroll', async () => {
  const context = await openContext({ width: 1280, height: 1500 });
  const page = await openDemo(context, 'agents=3');
  await page.waitForFunction(() => window.demo.state.model.entries.size > 25 && window.demo.state.model.tasks.size > 0, null, { timeout: 60_000 });
  await page.click('#rec-guardians');
  // The person's recovery record, as the replica's events built it.
  const guardians = () => window.demo.state.model.recovery.get(window.demo.state.me)?.guardians.length === 3;
  const rotated = () => window.demo.state.model.recovery.get(window.demo.state.me)?.rotated.length === 1;
  await page.waitForFunction(guardians, null, { timeout: 15_000 });
  await page.click('#rec-lose');
  await page.waitForFunction(rotated, null, { timeout: 30_000 });
  // The new key now signs for the person's agent: its post is applied, not refused KEY_ROTATED.
  await page.waitForFunction(() => window.demo.state.publisher, null, { timeout: 15_000 });
  await page.fill('#post-text', 'signed with my new key');
  await page.click('#post-form button');
  const post = await (await page.waitForFunction(() => {
    const row = [...document.querySelectorAll('#feed tbody tr')].find((r) => r.cells[3]?.textContent === 'signed with my new key');
    return row ? { seq: Number(row.dataset.seq), key: row.dataset.author, chip: row.cells[1].textContent } : null;
  }, null, { timeout: 15_000 })).jsonValue();
  const me = await page.evaluate(() => window.demo.state.me);
  assert.notEqual(post.key, me, 'signed by the new key');
  assert.match(post.chip, /^you /, 'shown as the same agent');
  assert.equal(await page.evaluate((seq) => window.demo.state.model.rejections.some((r) => r.seq === seq), post.seq), false);
  // Escrow: the replica's ledger balances, and stakes were taken.
  const supply = await page.evaluate(() => window.demo.state.model.replica.supply());
  assert.equal(supply.circulating + supply.escrowed, supply.minted - supply.burned);
  assert.match(await page.textContent('#ledger'), /staked 10 on/);
  // The honesty panel's verdict is a condition to wait for (the checkpoint it reports comes
  // over the network), not something a fixed pause guarantees on a busy machine.
  const honest = /agree on every entry up to seq \d+\. Merkle tree head at size \d+/;
  await page.waitForFunction(
    (source) => new RegExp(source).test(document.querySelector('#honesty')?.textContent ?? ''),
    honest.source,
    { timeout: 30_000 },
  );
  for (const panel of ['agents', 'plots', 'election', 'claims', 'escrow', 'doc', 'recovery', 'honesty']) {
    await page.locator(`#panel-${panel}`).screenshot({ path: join(ARTIFACTS, `${panel}.png`) });
  }
  await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });
  assert.match(await page.textContent('#honesty'), honest);
  assert.match(await page.textContent('#rec-result'), /Rotated/);
  // Agents are named by their id's short form (the same in every tab), each in its own colour.
  const chips = await page.$$eval('#agents li .agent', (spans) => spans.map((s) => ({ text: s.textContent, id: s.dataset.agent, colour: s.style.background })));
  assert.equal(chips.length, 3);
  for (const chip of chips) assert.equal(chip.text, chip.id.slice(0, 8));
  assert.equal(new Set(chips.map((c) => c.colour)).size, 3, 'three agents, three colours');
  assert.deepEqual(page.errors, []);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`);
  await page.screenshot({ path: join(ARTIFACTS, 'phone.png') });
  assert.deepEqual(pageA.errors, []);
});

test('with ?relay2= two relays carry the topic: your ops are on both, checkpoints gossiped, no alarm', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-e2e-relay2-'));
  const port = await freePort();
  const second = spawn(relayBinary(), ['--listen', `127.0.0.1:${port}`, '--data', dir], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 20_000, () => second.exitCode === null);
    const page = await openDemo(await openContext(), `agents=0&relay2=ws://127.0.0.1:${port}/ws`);
    await page.waitForFunction(() => window.demo.state.group !== undefined, null, { timeout: 15_000 });
    await page.fill('#post-text', 'on both relays');
    await page.click('#post-form button');
    await page.waitForFunction(() => /✓ 1 of your ops acknowledged by both relays/.test(document.getElementById('honesty').textContent), null, { timeout: 15_000 });
    // Each relay's signed checkpoint verifies against the tree the tab rebuilt from it.
    await page.waitForFunction(() => /verified at sizes [1-9]\d* and [1-9]\d*/.test(document.getElementById('honesty').textContent), null, { timeout: 20_000 });
    assert.doesNotMatch(await page.textContent('#honesty'), /⚠/);
    // The gossip ops in the feed read as what they carry, not as binary.
    const gossip = await (await page.waitForFunction(() => [...document.querySelectorAll('#feed tbody tr[data-kind="ants.checkpoint"] td.body')].map((td) => td.textContent)[0], null, { timeout: 20_000 })).jsonValue();
    // A head is a signed checkpoint or a signed receipt.
    assert.match(gossip, /^gossip: relay [0-9a-f]{8}( signed tree size [1-9]\d*, root [0-9a-f]{16}…|'s signed receipt \(\d+ bytes\))$/);
    assert.equal(await page.getAttribute('#honesty', 'class'), 'ok');
    await page.locator('#panel-honesty').screenshot({ path: join(ARTIFACTS, 'honesty-two-relays.png') });
    assert.deepEqual(page.errors, []);
  } finally {
    const exited = new Promise((resolve) => second.once('exit', resolve));
    second.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
