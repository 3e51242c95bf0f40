// The room storm of bench/hostile.mjs (issue 22 item 6), run in a worker thread so that the
// attacker's event loop is not the honest clients' (as on another machine): opens `count` Yjs
// rooms (`handshakes` WebSocket upgrades in flight at once: past `[limits]
// max_http_connections`, 512, connections not yet upgraded, the relay closes the oldest), each
// sends a sync step 1 and an update, and holds them until told to close.
import { parentPort, workerData } from 'node:worker_threads';
import * as Y from 'yjs';

import { closeAll, openSocket, varUint } from './sockets.mjs';

const { url, count, handshakes } = workerData;

/** A y-protocols sync message: `type` 0 (step 1: a state vector) or 2 (an update). */
function syncMessage(type, bytes) {
  const out = [0, type];
  varUint(out, bytes.length);
  return Uint8Array.from([...out, ...bytes]);
}

const doc = new Y.Doc();
doc.getText('t').insert(0, 'storm');
const step1 = syncMessage(0, Y.encodeStateVector(new Y.Doc()));
const update = syncMessage(2, Y.encodeStateAsUpdate(doc));
const started = performance.now();
const sockets = [];
let failed = 0;
let next = 0;
await Promise.all(
  Array.from({ length: handshakes }, async () => {
    while (next < count) {
      const i = next++;
      try {
        const ws = await openSocket(`${url}/storm-${i}`);
        ws.on('error', () => {});
        ws.send(step1);
        ws.send(update);
        sockets.push(ws);
      } catch {
        failed++;
      }
    }
  }),
);
parentPort.postMessage({ opened: sockets.length, failed, ms: performance.now() - started });
parentPort.once('message', async () => {
  await closeAll(sockets);
  parentPort.postMessage({ closed: true });
});
