// What the demo page's first visit transfers: Debian's Chromium (playwright-core, a fresh
// profile) opens the page served by a relay built from this checkout, with its three agent
// workers, and waits until the page and every agent are connected. Every response's body bytes
// as received (compressed when the relay sent it compressed; playwright's `request.sizes()`,
// workers' requests included) are summed, reads from the HTTP cache excepted (see
// cacheReads). Then the page is reloaded in the same profile:
// the repeat visit's bytes show what the caching headers save.
//
//   scripts/build-pkg.sh && node bench/first-visit.mjs [--www DIR] [--pkg DIR]
//
// --www / --pkg serve another copy of the page or the package (how the "before" figure in
// BENCHMARKS.md was taken: the previous www/ and a pkg/ without the .br/.gz copies).
// ANTS_RELAY_BIN=path uses a relay binary already built.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

import { root, startRelay } from '../tests/js/helpers.mjs';

const { values } = parseArgs({ options: { www: { type: 'string' }, pkg: { type: 'string' } } });
const www = values.www ?? join(root, 'www');
const args = ['--www', www, ...(values.pkg ? ['--pkg', values.pkg] : [])];
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const relay = await startRelay(args);
const profile = mkdtempSync(join(tmpdir(), 'ants-coord-first-visit-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** Every finished HTTP response of `page` (and its workers) while `visit` runs. */
async function transfer(page, visit) {
  const rows = [];
  const pending = [];
  const onFinished = (request) => {
    if (!request.url().startsWith('http')) return;
    pending.push((async () => {
      const response = await request.response();
      const headers = (await response?.allHeaders()) ?? {};
      const status = response?.status();
      // request.sizes() reports 0 here; the bytes on the wire are the body's (encoded) length:
      // Content-Length, or for a chunked (gzipped as served) body, the body gzipped again. A 304
      // has no body (and playwright refuses to read one).
      const body = status === 304 || !response ? 0
        : headers['content-length'] !== undefined ? Number(headers['content-length'])
        : headers['content-encoding'] === 'gzip' ? gzipSync(await response.body()).length : (await response.body()).length;
      rows.push({
        url: new URL(request.url()).pathname,
        status,
        encoding: headers['content-encoding'] ?? '',
        lengthKnown: headers['content-length'] !== undefined,
        body,
      });
    })());
  };
  context.on('requestfinished', onFinished);
  await visit();
  await Promise.all(pending);
  context.off('requestfinished', onFinished);
  return cacheReads(rows).sort((a, b) => b.body - a.body);
}

/**
 * The workers import the glue and the client modules the page already loaded, and a reload
 * reuses what a 304 confirmed; Chromium serves those from its HTTP cache, and playwright lists
 * them again with their decoded size and neither `Content-Encoding` nor `Content-Length` (a run
 * at 04:24 UTC counted 791,445 B that way). Every response of this relay has one of the two
 * (`/pkg/` files are sent with a length, precompressed or not; the page's are gzipped as
 * served), so such a row is a cache read: it is marked `cache` and counts 0 bytes.
 */
function cacheReads(rows) {
  return rows.map((row) => (row.encoding === '' && !row.lengthKnown && row.status === 200 ? { ...row, encoding: 'cache', body: 0 } : row));
}

const ready = (page) => page.waitForFunction(() => {
  const agents = [...document.querySelectorAll('#agents li')];
  return window.demo?.ready === true && agents.length === 3 && agents.every((li) => /\b(live|verified)\b/.test(li.textContent));
}, null, { timeout: 60_000 });

const page = context.pages()[0] ?? (await context.newPage());
const url = `${relay.origin}/?topic=first-visit-${Date.now().toString(36)}&agents=3`;
try {
  for (const [name, visit] of [
    ['first visit', async () => { await page.goto(url); await ready(page); }],
    ['repeat visit (reload)', async () => { await page.reload(); await ready(page); }],
  ]) {
    const rows = await transfer(page, visit);
    const total = rows.reduce((sum, row) => sum + row.body, 0);
    console.log(`\n${name}: ${rows.length} responses, ${total} body bytes (${(total / 1024).toFixed(1)} KiB)`);
    for (const row of rows) console.log(`  ${String(row.body).padStart(8)}  ${row.status} ${row.encoding.padEnd(4)} ${row.url}`);
  }
} finally {
  await context.close();
  await relay.stop();
  rmSync(profile, { recursive: true, force: true });
}
