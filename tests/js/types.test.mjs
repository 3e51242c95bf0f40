// The TypeScript types of the package, as a web developer's project checks them: `deno check`
// (Deno bundles a TypeScript compiler) of sample apps under tests/js/fixtures/, each with its own
// deno.json: `strict`, `lib: ["es2022", "dom"]` (no Node or Deno types: the app asserts that
// `process` and `Deno` are unknown to it), and the package's .d.ts checked like the app's own
// files (resolved through node_modules to pkg/, a local directory, so nothing is skipped). A
// second app uses `using` under `lib: ["esnext", "dom"]`. Deno 2.9 bundles TypeScript 6; the
// same apps are checked with TypeScript 5 and 7 too (npm `tsc`). Then the generated .d.ts files
// are read for what must not come back: `any`, `Function`, and a stray `r"` in a doc comment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { root } from './helpers.mjs';

/** Runs `deno check` on the .ts files of a fixture directory with that directory's deno.json. */
async function denoCheck(t, dir, files) {
  const denoDir = mkdtempSync(join(tmpdir(), 'ants-coord-deno-types-'));
  t.after(() => rmSync(denoDir, { recursive: true, force: true }));
  const deno = join(root, 'node_modules/.bin/deno');
  const fixture = join('tests/js/fixtures', dir);
  const args = ['check', '--quiet', '--config', join(fixture, 'deno.json'), ...files.map((f) => join(fixture, f))];
  try {
    await promisify(execFile)(deno, args, {
      cwd: root,
      env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      timeout: 180_000,
    });
  } catch (error) {
    assert.fail(`deno check ${dir} failed:\n${error.stdout}\n${error.stderr}`);
  }
}

test('a strict web app (es2022 + dom, no Node types) type-checks against the .d.ts files', async (t) => {
  await denoCheck(t, 'ts-app', ['types-check.ts', 'replica-app.ts', 'core-app.ts']);
});

test('under lib esnext, `using` takes the classes and Symbol.dispose is declared once', async (t) => {
  await denoCheck(t, 'ts-esnext', ['dispose.ts']);
});

/** Runs a TypeScript compiler (`tsc` of an npm package) on a fixture's tsconfig.json. */
async function tsc(packageName, dir) {
  const compiler = join(root, 'node_modules', packageName, 'bin/tsc');
  const project = join('tests/js/fixtures', dir, 'tsconfig.json');
  try {
    await promisify(execFile)(process.execPath, [compiler, '-p', project], { cwd: root, timeout: 180_000 });
  } catch (error) {
    assert.fail(`${packageName} tsc -p ${project} failed:\n${error.stdout}\n${error.stderr}`);
  }
}

// The same apps under TypeScript 5 and 7 themselves (npm `typescript` 5.9 and `typescript-7`,
// the native compiler), with the settings of deno.json in each fixture's tsconfig.json
// (moduleResolution "bundler": the package's `types` conditions; `types: []`: no @types).
for (const [packageName, version] of [['typescript', 5], ['typescript-7', 7]]) {
  test(`TypeScript ${version} (tsc): the strict apps type-check`, async () => {
    const { version: installed } = JSON.parse(readFileSync(join(root, 'node_modules', packageName, 'package.json'), 'utf8'));
    assert.equal(Number(installed.split('.')[0]), version, `${packageName} is TypeScript ${installed}`);
    await tsc(packageName, 'ts-app');
    await tsc(packageName, 'ts-esnext');
  });
}

/** The .d.ts files of pkg/ a TypeScript project reads, of the full build and the core one. */
const TYPE_FILES = ['', 'core/'].flatMap((dir) =>
  ['ants_coord.d.ts', 'ants_coord_bg.wasm.d.ts', 'cjs/ants_coord.d.ts', 'client.d.ts'].map((file) => dir + file),
);

/** Lines of `text` (1-based numbers) where `pattern` matches, as "file:line: text". */
function hits(file, text, pattern) {
  return text
    .split('\n')
    .map((line, i) => [line, i + 1])
    .filter(([line]) => pattern.test(line))
    .map(([line, n]) => `${file}:${n}: ${line.trim()}`);
}

/** The types of a .d.ts: comments (which may say "any" in English) blanked, lines kept. */
function typesOnly(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, ' '))
    .replace(/\/\/.*$/gm, '');
}

/** What a .d.ts must not contain: in its types `any` and `Function`; anywhere a standalone `r"`
 * (a `///` doc comment passed through a macro_rules! matcher reaches wasm-bindgen as `r"...`). */
function forbidden(file, text) {
  const code = typesOnly(text);
  return [...hits(file, code, /\bany\b/), ...hits(file, code, /\bFunction\b/), ...hits(file, text, /(?<![\w"])r"/)];
}

test('the .d.ts files have no any, no Function and no stray r" in doc comments', () => {
  const found = TYPE_FILES.flatMap((file) => forbidden(file, readFileSync(join(root, 'pkg', file), 'utf8')));
  assert.deepEqual(found, []);
});

test('that check sees each of them, and not a word in a comment or a string type', () => {
  const sample = [
    'export class A {',
    '  /**',
    '   * r" a builder; any value; a Function.',
    '   */',
    '  on(h: Function): void;',
    '  x: any;',
    '  policy: "burn" | "poster";',
    '}',
  ].join('\n');
  assert.deepEqual(forbidden('a.d.ts', sample), [
    'a.d.ts:6: x: any;',
    'a.d.ts:5: on(h: Function): void;',
    'a.d.ts:3: * r" a builder; any value; a Function.',
  ]);
});
