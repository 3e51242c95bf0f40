// The TypeScript types of the package: `deno check` (Deno bundles a TypeScript compiler) of a
// file that uses every API with explicit types and two `@ts-expect-error` misuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { root } from './helpers.mjs';

test('the .d.ts files describe the API (deno check)', async (t) => {
  const denoDir = mkdtempSync(join(tmpdir(), 'ants-coord-deno-types-'));
  t.after(() => rmSync(denoDir, { recursive: true, force: true }));
  const deno = join(root, 'node_modules/.bin/deno');
  try {
    await promisify(execFile)(deno, ['check', '--quiet', 'tests/js/fixtures/types-check.ts'], {
      cwd: root,
      env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      timeout: 180_000,
    });
  } catch (error) {
    assert.fail(`deno check failed:\n${error.stdout}\n${error.stderr}`);
  }
});
