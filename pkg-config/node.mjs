// Node.js and Deno (ESM): compile the .wasm synchronously at import time, so
// `import { Identity } from 'ants-coord'` is ready to use with no init call.
import { readFileSync } from 'node:fs';
import { initSync } from './ants_coord.js';

initSync({ module: readFileSync(new URL('./ants_coord_bg.wasm', import.meta.url)) });

export * from './ants_coord.js';
// `init()` and `initSync()` stay available (they return at once: already initialized).
export { default } from './ants_coord.js';
