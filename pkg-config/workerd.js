// Cloudflare workerd (Workers, wrangler, workerd): the .wasm is imported as a compiled
// WebAssembly.Module, as workerd and wrangler do for `.wasm` imports; instantiating it at
// module scope is allowed (it draws no randomness). Call Identity.generate() inside a handler.
import wasmModule from './ants_coord_bg.wasm';
import { initSync } from './ants_coord.js';

initSync({ module: wasmModule });

export * from './ants_coord.js';
export { default } from './ants_coord.js';
