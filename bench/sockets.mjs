// WebSocket helpers shared by bench/hostile.mjs and its storm worker (bench/hostile-storm.mjs).
import WebSocket from 'ws';

/** A WebSocket to `url`, once open. */
export async function openSocket(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** Closes `sockets` and waits until each is closed (or 5 s). */
export async function closeAll(sockets) {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          ws.once('close', resolve);
          ws.terminate();
          setTimeout(resolve, 5_000);
        }),
    ),
  );
}

/** Appends `n` to `out` as a lib0 variable-length unsigned integer (y-protocols' framing). */
export function varUint(out, n) {
  while (n > 0x7f) {
    out.push(0x80 | (n & 0x7f));
    n = Math.floor(n / 128);
  }
  out.push(n);
}
