// The package's web entry in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core), served from 127.0.0.1 on a free port. Signatures cross the boundary both
// ways and are checked against node:crypto here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { chromium } from 'playwright-core';

import { nodePrivateKey, nodePublicKey, rawPublicKey, root } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const SERVED = ['/pkg/', '/tests/js/fixtures/'];

let server;
let browser;
let page;
let profile;

before(async () => {
  server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://x').pathname));
    const file = join(root, path);
    if (!SERVED.some((prefix) => path.startsWith(prefix)) || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  profile = mkdtempSync(join(tmpdir(), 'ants-coord-chromium-'));
  // A fresh profile per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`http://127.0.0.1:${server.address().port}/tests/js/fixtures/browser.html`);
  assert.equal(await page.evaluate(() => window.antsCoordReady), true, errors.join('\n'));
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve) ?? resolve());
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const hex = (bytes) => Buffer.from(bytes).toString('hex');

test('Chromium signs what node:crypto verifies, byte for byte', async () => {
  const seeds = Array.from({ length: 40 }, () => hex(randomBytes(32)));
  const messages = seeds.map((_, i) => hex(randomBytes(i * 5)));
  const results = await page.evaluate(({ seeds, messages }) => {
    const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    const { Identity } = window.antsCoord;
    return seeds.map((seed, i) => {
      const identity = Identity.fromSeed(bytes(seed));
      const result = { agentId: identity.agentId, signature: toHex(identity.sign(bytes(messages[i]))) };
      identity.free();
      return result;
    });
  }, { seeds, messages });
  results.forEach(({ agentId, signature }, i) => {
    const privateKey = nodePrivateKey(Buffer.from(seeds[i], 'hex'));
    assert.equal(agentId, hex(rawPublicKey(privateKey)));
    const message = Buffer.from(messages[i], 'hex');
    assert.equal(signature, hex(nodeSign(null, message, privateKey)));
    assert.equal(nodeVerify(null, message, nodePublicKey(Buffer.from(agentId, 'hex')), Buffer.from(signature, 'hex')), true);
  });
});

test('Chromium verifies node:crypto signatures, singly and in a batch, and refuses tampering', async () => {
  const items = Array.from({ length: 32 }, (_, i) => {
    const privateKey = nodePrivateKey(randomBytes(32));
    const message = randomBytes(i * 3);
    return { key: hex(rawPublicKey(privateKey)), message: hex(message), signature: hex(nodeSign(null, message, privateKey)) };
  });
  const verdicts = await page.evaluate((items) => {
    const bytes = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
    const { verifySignature, verifyBatch } = window.antsCoord;
    const keys = items.map((item) => bytes(item.key));
    const messages = items.map((item) => bytes(item.message));
    const signatures = items.map((item) => bytes(item.signature));
    const single = items.map((_, i) => verifySignature(keys[i], messages[i], signatures[i]));
    const batch = verifyBatch(keys, messages, signatures);
    signatures[5][10] ^= 1;
    const tamperedSingle = verifySignature(keys[5], messages[5], signatures[5]);
    const tamperedBatch = verifyBatch(keys, messages, signatures);
    return { single, batch, tamperedSingle, tamperedBatch };
  }, items);
  assert.deepEqual(verdicts, { single: items.map(() => true), batch: true, tamperedSingle: false, tamperedBatch: false });
});

test('Chromium: ops round-trip, random identities work, and errors carry codes', async () => {
  const result = await page.evaluate(() => {
    const { Identity, signOp, decodeOp, opId, verifySignature } = window.antsCoord;
    const identity = Identity.generate();
    const bytes = signOp(identity, { topic: 'browser', kind: 'post', counter: 3, body: new Uint8Array([1, 2, 3]), timeMs: 42 });
    const op = decodeOp(bytes);
    const codes = [];
    for (const bad of [
      () => Identity.fromSeed(new Uint8Array(5)),
      () => verifySignature('key', new Uint8Array(), new Uint8Array(64)),
      () => decodeOp(bytes.subarray(1)),
      () => signOp({}, {}),
    ]) {
      try {
        bad();
        codes.push('no throw');
      } catch (error) {
        codes.push(error instanceof Error ? error.code : `not an Error: ${error}`);
      }
    }
    return { author: op.author, agentId: identity.agentId, counter: op.counter, timeMs: op.timeMs, body: Array.from(op.body), id: op.id, opId: opId(bytes), codes };
  });
  assert.equal(result.author, result.agentId);
  assert.equal(result.counter, 3);
  assert.equal(result.timeMs, 42);
  assert.deepEqual(result.body, [1, 2, 3]);
  assert.equal(result.id, result.opId);
  assert.deepEqual(result.codes, ['BAD_LENGTH', 'BAD_INPUT', 'UNSUPPORTED_VERSION', 'BAD_INPUT']);
});
