// Writes a brotli (.br) and a gzip (.gz) copy beside each .wasm and text file in the given
// directories, for the relay to serve precompressed (src/relay/assets.rs); scripts/build-pkg.sh
// runs it on pkg/. Brotli at its highest quality and window (the 1.2 MB .wasm: 287 KB, against
// 377 KB with gzip -9). A copy is kept only when it is smaller than the file; copies whose file
// is gone are deleted.
//
//   node scripts/compress-static.mjs pkg
import { readdirSync, readFileSync, writeFileSync, statSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const compressible = /\.(wasm|js|mjs|html|css|json|svg|txt)$/;

// Only the files directly in each directory: pkg/cjs/ is Node's (CommonJS) and is packed into
// the npm package whole, so it gets no copies.
function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isFile()) yield path;
  }
}

let before = 0;
let after = 0;
for (const dir of process.argv.slice(2)) {
  for (const path of files(dir)) {
    if (/\.(br|gz)$/.test(path)) {
      if (!existsSync(path.replace(/\.(br|gz)$/, ''))) rmSync(path);
      continue;
    }
    if (!compressible.test(path)) continue;
    const bytes = readFileSync(path);
    const variants = {
      br: brotliCompressSync(bytes, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
          [constants.BROTLI_PARAM_LGWIN]: constants.BROTLI_MAX_WINDOW_BITS,
          [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
        },
      }),
      gz: gzipSync(bytes, { level: 9 }),
    };
    for (const [ext, packed] of Object.entries(variants)) {
      if (packed.length < bytes.length) writeFileSync(`${path}.${ext}`, packed);
      else rmSync(`${path}.${ext}`, { force: true });
    }
    before += bytes.length;
    after += Math.min(bytes.length, variants.br.length);
  }
}
console.log(`compress-static: ${before} bytes, ${after} as brotli`);
