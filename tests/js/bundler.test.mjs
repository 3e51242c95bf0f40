// A bundler-style import: esbuild bundles an app that imports 'ants-coord' by name, for the
// browser (web entry, wasm given to init) and for Node (node entry, wasm copied beside the bundle).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sign as nodeSign } from 'node:crypto';
import * as esbuild from 'esbuild';

import { nodePrivateKey, pkgDir, root } from './helpers.mjs';

const entry = join(root, 'tests/js/fixtures/bundle-entry.mjs');
const expectedSignature = nodeSign(null, Buffer.from('bundled'), nodePrivateKey(Buffer.alloc(32, 1))).toString('hex');

function check(result) {
  assert.equal(result.verified, true);
  assert.equal(result.author, result.agentId);
  assert.equal(result.signature, expectedSignature);
  assert.equal(result.code, 'BAD_LENGTH');
}

test('esbuild, platform browser: the web entry is bundled and runs once init gets the wasm', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-esbuild-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'app.mjs');
  await esbuild.build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', outfile, logLevel: 'silent' });
  const bundle = readFileSync(outfile, 'utf8');
  assert.ok(!bundle.includes('readFileSync'), 'the browser bundle must not contain the Node entry');
  assert.ok(bundle.includes('ants_coord_bg.wasm'), 'the web glue (which locates the .wasm) is in the bundle');
  const { run } = await import(pathToFileURL(outfile).href);
  check(await run(readFileSync(join(pkgDir, 'ants_coord_bg.wasm'))));
});

test('esbuild, platform node: the node entry is bundled and loads the wasm beside the bundle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-esbuild-node-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'app.mjs');
  await esbuild.build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile, logLevel: 'silent' });
  assert.ok(readFileSync(outfile, 'utf8').includes('readFileSync'), 'the node bundle uses the Node entry');
  copyFileSync(join(pkgDir, 'ants_coord_bg.wasm'), join(dir, 'ants_coord_bg.wasm'));
  const { run } = await import(pathToFileURL(outfile).href);
  check(await run());
});
