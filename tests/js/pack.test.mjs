// Packaging: `npm pack` the built pkg/, install the tarball into a fresh temporary project and
// import it there as ESM and CommonJS, the full build (`ants-coord`) and the core one
// (`ants-coord/core`), so what npm would publish is what is tested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pkgDir } from './helpers.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('npm pack → install the tarball → import (ESM) and require (CJS)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ants-coord-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const quiet = { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] };

  const packed = JSON.parse(execFileSync(npm, ['pack', pkgDir, '--json', '--pack-destination', dir], quiet));
  const files = packed[0].files.map((file) => file.path).sort();
  for (const required of ['package.json', 'README.md', 'ants_coord.js', 'ants_coord.d.ts', 'ants_coord_bg.wasm', 'node.mjs', 'workerd.js', 'cjs/ants_coord.js', 'cjs/ants_coord.d.ts', 'cjs/package.json',
    'core/ants_coord.js', 'core/ants_coord.d.ts', 'core/ants_coord_bg.wasm', 'core/node.mjs', 'core/workerd.js',
    'core/cjs/ants_coord.js', 'core/cjs/ants_coord.d.ts', 'core/cjs/package.json', 'core/client-node.mjs',
    'core/client-web.mjs', 'core/client-workerd.mjs', 'core/client.d.ts']) {
    assert.ok(files.includes(required), `tarball lacks ${required}: ${files.join(', ')}`);
  }
  // The relay's precompressed copies are not packed.
  assert.deepEqual(files.filter((file) => /\.(br|gz)$/.test(file)), []);

  const project = join(dir, 'project');
  execFileSync('mkdir', [project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  execFileSync(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', join(dir, packed[0].filename)], { ...quiet, cwd: project });
  assert.ok(readdirSync(join(project, 'node_modules/ants-coord')).includes('ants_coord_bg.wasm'));

  const check = `
    const m = Buffer.from('packed');
    const id = Identity.generate();
    const ok = verifySignature(id.publicKey, m, id.sign(m));
    const op = decodeOp(signOp(id, { topic: 't', kind: 'k', counter: 1, body: m }));
    let code;
    try { Identity.fromSeed(new Uint8Array(1)); } catch (e) { code = e.code; }
    process.stdout.write(JSON.stringify({ ok, author: op.author === id.agentId, code, doc: typeof Doc }));
  `;
  const names = 'Identity, verifySignature, signOp, decodeOp, Doc';
  for (const [entry, doc] of [['ants-coord', 'function'], ['ants-coord/core', 'undefined']]) {
    writeFileSync(join(project, 'esm.mjs'), `import * as ants from '${entry}';\nconst { ${names} } = ants;\n${check}`);
    writeFileSync(join(project, 'cjs.cjs'), `const { ${names} } = require('${entry}');\n${check}`);
    for (const script of ['esm.mjs', 'cjs.cjs']) {
      const out = execFileSync(process.execPath, [script], { ...quiet, cwd: project });
      assert.deepEqual(JSON.parse(out), { ok: true, author: true, code: 'BAD_LENGTH', doc }, `${entry} ${script}`);
    }
  }
});
