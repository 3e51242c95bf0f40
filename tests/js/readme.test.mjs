// The JavaScript examples of README.md and of the npm package's README (pkg-config/README.md),
// run as written against the built package and real relays on 127.0.0.1, so that an example a
// reader copies cannot drift from the package. Every `js` block must have a check here.
//
// What the harness changes in a block, and nothing else: relay URLs (`ws://127.0.0.1:8787`,
// `wss://relay-*.example`) point at relays this test starts; a line `EXPR; // true` becomes a
// check that EXPR is true; and `globalThis.WebSocket` is the `ws` package's when absent: the
// global that browsers, Deno, workers and Node >= 22 have and Node 20 lacks.
//
// Needs: scripts/build-pkg.sh (pkg/) and the relay binary (helpers.relayBinary).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';

import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';

import { root, startRelay } from './helpers.mjs';

// Inside node_modules/ so that the blocks' bare imports ('ants-coord', 'ws', 'yjs') resolve
// exactly as in a project that installed them.
const scratch = join(root, 'node_modules', '.readme-examples');
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
const relays = [];
after(async () => {
  await Promise.all(relays.map((relay) => relay.stop()));
  rmSync(scratch, { recursive: true, force: true });
});

async function relay() {
  const started = await startRelay();
  relays.push(started);
  return started;
}

/** The ```js blocks of a markdown file, with the heading above each and its first line. */
function jsBlocks(file) {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const blocks = [];
  let heading = null;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('```')) {
      const start = i;
      while (++i < lines.length && !lines[i].startsWith('```'));
      if (lines[start] === '```js') {
        blocks.push({ file, heading, line: start + 2, code: lines.slice(start + 1, i).join('\n') });
      }
    } else if (/^#+ /.test(lines[i])) {
      heading = lines[i].replace(/^#+ /, '');
    }
  }
  return blocks;
}

const blocks = [...jsBlocks('README.md'), ...jsBlocks('pkg-config/README.md'), ...jsBlocks('docs/guide.md')];

function block(file, heading) {
  const found = blocks.filter((b) => b.file === file && b.heading === heading);
  assert.equal(found.length, 1, `one js block under "${heading}" in ${file}`);
  return found[0];
}

/**
 * Writes `b` as a module with the harness's changes (see the top of this file) and returns its
 * path and how many `// true` lines became checks. `urls` maps each URL in the block to another.
 */
function prepare(b, urls = {}) {
  let code = b.code;
  for (const [from, to] of Object.entries(urls)) {
    assert.ok(code.includes(from), `${b.file}:${b.line}: the example no longer names ${from}`);
    code = code.replaceAll(from, to);
  }
  let checks = 0;
  code = code
    .split('\n')
    .map((line, i) => {
      const claim = /^(\s*)([^/;]+?);\s*\/\/\s*true\s*$/.exec(line);
      if (!claim) return line;
      checks++;
      const where = `${b.file}:${b.line + i}`;
      return `${claim[1]}if ((${claim[2]}) !== true) throw new Error(${JSON.stringify(`${where}: not true: ${claim[2]}`)});`;
    })
    .join('\n');
  // One line, so that line k of the module is line b.line + k - 2 of the README.
  const prelude = "import { WebSocket as ReadmeWs } from 'ws'; globalThis.WebSocket ??= ReadmeWs;";
  const path = join(scratch, `${b.file.replace(/\W+/g, '-')}-${b.line}.mjs`);
  writeFileSync(path, `${prelude}\n${code}\n`);
  return { path, checks };
}

/** Runs a prepared block with node; resolves to its exit status and output. */
function run(path, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path} did not exit within ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: stdout.trimEnd().split('\n').filter(Boolean), stderr });
    });
  });
}

const GUIDE_URL = 'ws://127.0.0.1:8787/ws';
// The guide's examples, each with the number of `// true` checks it states and what it prints.
const GUIDE = [
  ['A task market with escrow', 3, /^[0-9a-f]{64}$/],
  ['Optimistic claims and compensation', 3, /^[0-9a-f]{8} lost job-7 to [0-9a-f]{8} \(seq [01]\)$/],
  ['Leader election without a vote', 4, /^leader until \d{4}-.*Z [0-9a-f]{64}$/],
  ['Recovering a lost key with guardians', 2, null],
  ['Shared documents', 2, /^(?=.*Hello from the first writer\.)(?=.*And from the second\.)/],
];

for (const [heading, expectedChecks, prints] of GUIDE) {
  test(`docs/guide.md "${heading}": runs against a relay and every \`// true\` holds`, async () => {
    const b = block('docs/guide.md', heading);
    const urls = b.code.includes(GUIDE_URL) ? { [GUIDE_URL]: (await relay()).ws } : {};
    const { path, checks } = prepare(b, urls);
    assert.equal(checks, expectedChecks);
    const { status, stdout, stderr } = await run(path);
    assert.equal(status, 0, stderr);
    assert.equal(stderr, '', 'nothing on stderr');
    if (prints) {
      assert.equal(stdout.length, 1, stdout.join('\n'));
      assert.match(stdout[0], prints);
    } else {
      assert.deepEqual(stdout, []);
    }
  });
}

test('every js block of the READMEs is checked by this file', () => {
  const checked = [
    'README.md#Quick start: JavaScript',
    'README.md#Following a relay from JavaScript: `RelayClient`',
    'README.md#Several relays: `RelayGroup`',
    'README.md#Edge functions',
    'README.md#Yjs rooms',
    'README.md#Private topics',
    'README.md#Private Yjs rooms',
    'pkg-config/README.md#ants-coord',
    'pkg-config/README.md#Two builds: `ants-coord` and `ants-coord/core`',
    ...GUIDE.map(([heading]) => `docs/guide.md#${heading}`),
  ];
  assert.deepEqual(blocks.map((b) => `${b.file}#${b.heading}`).sort(), checked.sort());
});

test('README quick start: signs, verifies, decodes and reports MALFORMED', async () => {
  const { path, checks } = prepare(block('README.md', 'Quick start: JavaScript'));
  assert.equal(checks, 1);
  const { status, stdout, stderr } = await run(path);
  assert.equal(status, 0, stderr);
  assert.equal(stdout.length, 2, stdout.join('\n'));
  assert.match(stdout[0], /^[0-9a-f]{64} true$/);
  assert.equal(stdout[1], 'MALFORMED');
});

test("the npm package's README example: every `// true` holds", async () => {
  const { path, checks } = prepare(block('pkg-config/README.md', 'ants-coord'));
  assert.equal(checks, 2);
  const { status, stderr } = await run(path);
  assert.equal(status, 0, stderr);
});

test("the npm package's README, two builds: the core example's `// true` lines hold", async () => {
  const { path, checks } = prepare(block('pkg-config/README.md', 'Two builds: `ants-coord` and `ants-coord/core`'));
  assert.equal(checks, 4);
  const { status, stdout, stderr } = await run(path);
  assert.equal(status, 0, stderr);
  assert.deepEqual(stdout, []);
});

test('README RelayClient: publishes, reads its own entry from seq 0 and exits', async () => {
  const { ws } = await relay();
  const b = block('README.md', 'Following a relay from JavaScript: `RelayClient`');
  const { path } = prepare(b, { 'ws://127.0.0.1:8787/ws': ws });
  const { status, stdout, stderr } = await run(path);
  assert.equal(status, 0, stderr);
  assert.equal(stderr, '', 'no misbehaviour reported');
  assert.equal(stdout.length, 1, stdout.join('\n'));
  assert.match(stdout[0], /^0 [0-9a-f]{64} post$/);
});

test('README RelayGroup: one op published to two relays, a receipt from each', async () => {
  const [a, b] = [await relay(), await relay()];
  const urls = { 'wss://relay-a.example/ws': a.ws, 'wss://relay-b.example/ws': b.ws };
  const { path } = prepare(block('README.md', 'Several relays: `RelayGroup`'), urls);
  const { status, stdout, stderr } = await run(path);
  assert.equal(status, 0, stderr);
  assert.equal(stderr, '', 'no misbehaviour reported');
  assert.ok(stdout.includes('0 0'), `receipt seqs on each relay: ${stdout.join('\n')}`);
  // The group delivers the op once, whichever relay shows it first (the close may come first).
  assert.ok(stdout.filter((line) => line === '0 post').length <= 1, stdout.join('\n'));
  for (const url of [a.ws, b.ws]) {
    assert.ok(stdout.includes(`${url} closed`), `${url} closed: ${stdout.join('\n')}`);
  }
});

test('README edge function: the first claim wins (200), a second agent is told the holder (409)', async () => {
  const { ws } = await relay();
  const { path } = prepare(block('README.md', 'Edge functions'));
  const worker = (await import(pathToFileURL(path).href)).default;
  const claim = () => worker.fetch(new Request('http://worker/claim?task=build-42', { method: 'POST' }), { RELAY_URL: ws });
  const first = await claim();
  const won = await first.json();
  assert.equal(first.status, 200, JSON.stringify(won));
  assert.match(won.winner, /^[0-9a-f]{64}$/);
  assert.equal(won.seq, 0);
  const second = await claim();
  assert.equal(second.status, 409);
  assert.deepEqual(await second.json(), { holder: won.winner });
});

test('README private topics: bob reads with a capability and may not write; public, anyone reads', async () => {
  const { ws } = await relay();
  const { path, checks } = prepare(block('README.md', 'Private topics'), { 'ws://127.0.0.1:8787/ws': ws });
  assert.equal(checks, 3);
  const { status, stdout, stderr } = await run(path);
  assert.equal(status, 0, stderr);
  assert.deepEqual(stdout, ['for bob only']);
});

test('README private Yjs rooms: bob syncs with a capability, eve is refused with 4403', async () => {
  const { port } = await relay();
  const b = block('README.md', 'Private Yjs rooms');
  const { path, checks } = prepare(b, { 'ws://127.0.0.1:8787/yjs': `ws://127.0.0.1:${port}/yjs` });
  assert.equal(checks, 2);
  const { status, stderr } = await run(path);
  assert.equal(status, 0, stderr);
});

test('README Yjs rooms: a stock provider writes "hello" that another provider reads', async () => {
  const { port } = await relay();
  const b = block('README.md', 'Yjs rooms');
  const { path } = prepare(b, { 'ws://127.0.0.1:8787/yjs': `ws://127.0.0.1:${port}/yjs` });
  const child = spawn(process.execPath, [path], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const doc = new Y.Doc();
  const reader = new WebsocketProvider(`ws://127.0.0.1:${port}/yjs`, 'my-room', doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
  });
  try {
    const deadline = Date.now() + 20_000;
    while (doc.getText('body').toString() !== 'hello' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(doc.getText('body').toString(), 'hello');
  } finally {
    reader.destroy();
    doc.destroy(); // its awareness holds an interval timer
    child.kill('SIGTERM');
    await exited;
  }
});
