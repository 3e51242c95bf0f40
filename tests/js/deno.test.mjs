// The package under Deno (npm `deno` binary): a bare `import ... from 'ants-coord'` with no init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sign as nodeSign } from 'node:crypto';

import { nodePrivateKey, root } from './helpers.mjs';

test('Deno imports ants-coord and signs, verifies and decodes', async (t) => {
  const denoDir = mkdtempSync(join(tmpdir(), 'ants-coord-deno-'));
  t.after(() => rmSync(denoDir, { recursive: true, force: true }));
  const deno = join(root, 'node_modules/.bin/deno');
  const { stdout } = await promisify(execFile)(
    deno,
    ['run', '--allow-read', '--no-prompt', '--quiet', 'tests/js/fixtures/deno-check.mjs'],
    { cwd: root, env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' }, timeout: 120_000 },
  );
  const result = JSON.parse(stdout);
  const privateKey = nodePrivateKey(Buffer.alloc(32, 2));
  assert.equal(result.runtime, 'deno');
  assert.equal(result.signature, nodeSign(null, Buffer.from('deno'), privateKey).toString('hex'));
  assert.equal(result.verified, true);
  assert.equal(result.batch, true);
  assert.equal(result.webCrypto, true);
  assert.deepEqual(result.op, { author: result.agentId, counter: 5, timeMs: 7, id: result.op.opId, opId: result.op.opId });
  assert.equal(result.code, 'BAD_LENGTH');
});
