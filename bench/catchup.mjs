// Catch-up of a new subscriber over a real relay: the relay binary is started on 127.0.0.1 with a
// fresh data dir, 16 RelayClients fill one topic with N signed ops (pipelined, durable receipts),
// then a new RelayClient subscribes from seq 0 and the time until all N entries are verified
// (batched signatures, sequence, Merkle tree, author order) and applied to its replica is taken.
//
// Peer, measured in the same run against the same relay and topic: a raw reader that does the
// same hello and subscribe but only counts the entry frames, verifying nothing. The ratio is the
// cost of verification on top of the relay's replay and the transport.
//
//   cargo build --release --features relay --bin ants-relay && scripts/build-pkg.sh
//   node bench/catchup.mjs [entries=100000]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { WebSocket } from 'ws';
import { Identity, Session } from 'ants-coord';
import { RelayClient } from 'ants-coord/client';

import { freePort, root, waitForHttp } from '../tests/js/helpers.mjs';

const total = Number(process.argv[2] ?? 100_000);
const topic = 'catchup';
const publishers = 16;
const inFlight = 256;

const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const relayBin = ['release', 'debug'].map((p) => join(targetDir, p, 'ants-relay')).find(existsSync);
if (!relayBin) throw new Error(`build the relay first: cargo build --release --features relay --bin ants-relay`);

const data = mkdtempSync(join(tmpdir(), 'ants-catchup-'));
const port = await freePort();
const relay = spawn(relayBin, ['--listen', `127.0.0.1:${port}`, '--data', data], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const url = `ws://127.0.0.1:${port}/ws`;
const seed = (n) => new Uint8Array(32).fill(n);

try {
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, 20_000);
  console.log(`relay ${relayBin}; filling "${topic}" with ${total} ops from ${publishers} publishers…`);
  const fillStart = performance.now();
  await Promise.all(
    Array.from({ length: publishers }, async (_, p) => {
      const client = await RelayClient.connect(url, Identity.fromSeed(seed(p + 1)), { WebSocket });
      const mine = Math.max(0, Math.floor((total - 1 - p) / publishers) + 1);
      let next = 0;
      const worker = async () => {
        while (next < mine) {
          next += 1;
          await client.publish(topic, 'note', `op ${p}/${next}`);
        }
      };
      await Promise.all(Array.from({ length: inFlight / publishers }, worker));
      client.close();
    }),
  );
  const fillSeconds = (performance.now() - fillStart) / 1000;
  console.log(`filled in ${fillSeconds.toFixed(1)} s (${Math.round(total / fillSeconds)} durable ops/s through RelayClient)`);

  // The peer: hello + subscribe through a Session, then only count the entries of entry frames.
  const rawSeconds = await new Promise((resolve, reject) => {
    const session = new Session(Identity.fromSeed(seed(200)));
    session.subscribe(topic, 0, false);
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    let count = 0;
    let start = 0;
    ws.onopen = () => session.connected();
    ws.onerror = (e) => reject(new Error(`raw reader: ${e.message}`));
    ws.onmessage = (event) => {
      const bytes = new Uint8Array(event.data);
      // An entry frame carries one entry; an entries frame (0x4a) a big-endian u16 count of them.
      if (bytes[1] === 0x45 || bytes[1] === 0x4a) {
        count += bytes[1] === 0x45 ? 1 : (bytes[6] << 8) | bytes[7];
        if (count === total) {
          ws.close();
          resolve((performance.now() - start) / 1000);
        }
        return;
      }
      session.receive(bytes, Date.now());
      for (const frame of session.takeOutgoing()) {
        start ||= performance.now();
        ws.send(frame);
      }
    };
  });

  const start = performance.now();
  const reader = await RelayClient.connect(url, Identity.fromSeed(seed(201)), { WebSocket });
  const misbehaviour = [];
  reader.on('misbehaviour', (e) => misbehaviour.push(e));
  let seen = 0;
  await new Promise((resolve) => {
    reader.subscribe(topic, {
      onEntry: () => {
        seen += 1;
        if (seen === total) resolve();
      },
    });
  });
  const seconds = (performance.now() - start) / 1000;
  const verified = new Promise((resolve) => reader.on('verified', resolve));
  reader.requestCheckpoint(topic);
  await verified;
  reader.close();
  if (misbehaviour.length) throw new Error(`honest relay reported: ${JSON.stringify(misbehaviour[0])}`);

  console.log(`raw reader (no verification): ${total} entries in ${rawSeconds.toFixed(2)} s`);
  console.log(
    `RelayClient catch-up: ${total} entries verified and applied in ${seconds.toFixed(2)} s ` +
      `(${Math.round(total / seconds)} entries/s), checkpoint verified; ratio raw / verified = ` +
      `${(rawSeconds / seconds).toFixed(2)}x`,
  );
} finally {
  relay.kill('SIGTERM');
  await new Promise((resolve) => relay.once('exit', resolve));
  rmSync(data, { recursive: true, force: true });
}
