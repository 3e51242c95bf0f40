// Runs examples/edge-worker/worker.mjs locally under Cloudflare's runtime (npm `workerd`),
// without wrangler: esbuild bundles it with the `workerd` export condition (the .wasm stays a
// separate wasm module, as wrangler does it) and workerd serves it.
//
//   node examples/edge-worker/serve.mjs --relay ws://127.0.0.1:8787/ws [--port 8788]
//        [--topic tasks] [--seed <64 hex>]
//   curl -X POST 'http://127.0.0.1:8788/claim?task=build-42'
//
// tests/js/edge.test.mjs uses the same functions.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import * as workerdPackage from 'workerd';

/** The workerd binary (node_modules/.bin/workerd is a Node wrapper that outlives a kill). */
export const workerdBinary =
  typeof workerdPackage.default === 'string' ? workerdPackage.default : workerdPackage.default.default;
const compatibilityDate = workerdPackage.compatibilityDate ?? '2025-01-01';

/** Bundles the worker into `dir` (worker.js + ants_coord_bg.wasm); returns the bundle's text. */
export async function bundleWorker(dir) {
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('./worker.mjs', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['*.wasm'],
    outfile: join(dir, 'worker.js'),
    logLevel: 'silent',
  });
  if (result.errors.length) throw new Error(result.errors.map((e) => e.text).join('\n'));
  // The worker imports the core build (`ants-coord/core`): its .wasm.
  copyFileSync(fileURLToPath(import.meta.resolve('ants-coord/core/ants_coord_bg.wasm')), join(dir, 'ants_coord_bg.wasm'));
}

/**
 * A workerd config serving the bundle in the same directory once per entry of `workers`
 * (`{ name, port, bindings: { RELAY_URL, TOPIC?, AGENT_SEED? } }`) on 127.0.0.1.
 */
export function workerdConfig(workers) {
  const worker = ({ bindings }) => {
    const list = Object.entries(bindings).map(([name, text]) => `(name = "${name}", text = ${JSON.stringify(text)})`);
    return `(
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "ants_coord_bg.wasm", wasm = embed "ants_coord_bg.wasm"),
  ],
  bindings = [ ${list.join(', ')} ],
  compatibilityDate = "${compatibilityDate}",
)`;
  };
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
${workers.map((w) => `    (name = "${w.name}", worker = .${w.name}),`).join('\n')}
    # Outbound connections (the relay's WebSocket). workerd allows only public addresses by
    # default; a relay on this machine or a private network needs "local" / "private".
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
${workers.map((w) => `    (name = "${w.name}", address = "127.0.0.1:${w.port}", http = (), service = "${w.name}"),`).join('\n')}
  ],
);

${workers.map((w) => `const ${w.name} :Workerd.Worker = ${worker(w)};`).join('\n\n')}
`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      relay: { type: 'string', default: 'ws://127.0.0.1:8787/ws' },
      port: { type: 'string', default: '8788' },
      topic: { type: 'string', default: 'tasks' },
      seed: { type: 'string' },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'ants-edge-worker-'));
  await bundleWorker(dir);
  const bindings = { RELAY_URL: values.relay, TOPIC: values.topic };
  if (values.seed) bindings.AGENT_SEED = values.seed;
  writeFileSync(join(dir, 'config.capnp'), workerdConfig([{ name: 'edge', port: values.port, bindings }]));
  console.log(`edge worker on http://127.0.0.1:${values.port} (relay ${values.relay})`);
  const workerd = spawn(workerdBinary, ['serve', join(dir, 'config.capnp')], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => workerd.kill('SIGTERM'));
  workerd.on('exit', (code) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code ?? 0);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
