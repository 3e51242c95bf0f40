// Client-side verification throughput of the wasm Session under Node, and catch-up time of a new
// subscriber: N entries (signed by 16 authors) are fed to a Session as relay frames through
// receiveBatch in batches, each verified (batched signatures, seq continuity, Merkle tree,
// author order) and applied to the topic's replica.
//
// Peer, measured in the same run: Node's own `crypto.verify` (OpenSSL, native) checking as many
// Ed25519 signatures over messages of the same sizes — signatures only, no log, no replica. The
// ratio says how the whole wasm client compares with native signature checking alone.
//
//   scripts/build-pkg.sh && node bench/client.mjs [entries=100000] [batch=256]
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { Identity, Session } from 'ants-coord';

const total = Number(process.argv[2] ?? 100_000);
const batch = Number(process.argv[3] ?? 256);
const topic = 'bench';

function u64(view, offset, value) {
  view.setBigUint64(offset, BigInt(value));
}

function frame(type, requestId, payload) {
  const out = new Uint8Array(6 + payload.length);
  const view = new DataView(out.buffer);
  out[0] = 1;
  out[1] = type;
  view.setUint32(2, requestId);
  out.set(payload, 6);
  return out;
}

function entryBytes(seq, relayTimeMs, op) {
  const out = new Uint8Array(21 + op.length);
  const view = new DataView(out.buffer);
  out[0] = 1;
  u64(view, 1, seq);
  u64(view, 9, relayTimeMs);
  view.setUint32(17, op.length);
  out.set(op, 21);
  return out;
}

function blob(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

const t0 = 1_700_000_000_000;
const authors = Array.from({ length: 16 }, (_, i) => Identity.fromSeed(new Uint8Array(32).fill(i + 1)));
const relay = Identity.fromSeed(new Uint8Array(32).fill(99));
const reader = Identity.fromSeed(new Uint8Array(32).fill(100));

console.log(`signing ${total} ops…`);
const entries = [];
for (let seq = 0; seq < total; seq += 1) {
  const author = authors[seq % authors.length];
  const op = author.signOp({
    topic,
    kind: 'post',
    counter: Math.floor(seq / authors.length),
    timeMs: t0 + seq,
    body: new TextEncoder().encode(`entry ${seq}`),
  });
  entries.push(frame(0x45, 2, blob(entryBytes(seq, t0 + seq, op))));
}

const topicBytes = new TextEncoder().encode(topic);
const subscribed = new Uint8Array(1 + topicBytes.length + 16);
subscribed[0] = topicBytes.length;
subscribed.set(topicBytes, 1);
new DataView(subscribed.buffer).setBigUint64(1 + topicBytes.length + 8, BigInt(total));

const session = new Session(reader);
session.subscribe(topic, 0, true);
session.connected();
const challenge = new Uint8Array(64);
challenge.set(relay.publicKey, 0);
session.receive(frame(0x40, 0, challenge), t0);
session.receive(frame(0x41, 1, reader.publicKey), t0);
session.receive(frame(0x42, 2, subscribed), t0);
session.takeOutgoing();
session.takeEvents();

const start = performance.now();
let delivered = 0;
for (let i = 0; i < entries.length; i += batch) {
  session.receiveBatch(entries.slice(i, i + batch), t0 + total);
  for (const event of session.takeEvents()) {
    if (event.type === 'entry') delivered += 1;
    if (event.type === 'misbehaviour') throw new Error(`unexpected report: ${event.detail}`);
  }
}
const seconds = (performance.now() - start) / 1000;
if (delivered !== total) throw new Error(`delivered ${delivered} of ${total}`);

// The peer: node:crypto verifying the same number of signatures over messages of the same sizes.
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const messages = entries.map((e) => e.subarray(0, e.length - 64));
const signatures = messages.map((m) => sign(null, m, privateKey));
const peerStart = performance.now();
for (let i = 0; i < messages.length; i += 1) {
  if (!verify(null, messages[i], publicKey, signatures[i])) throw new Error('node:crypto refused');
}
const peerSeconds = (performance.now() - peerStart) / 1000;

const ours = total / seconds;
const peer = total / peerSeconds;
console.log(
  `wasm Session: ${total} entries verified and applied in ${seconds.toFixed(2)} s ` +
    `= ${Math.round(ours)} entries/s (batches of ${batch})`,
);
console.log(
  `node:crypto verify alone: ${Math.round(peer)} signatures/s; ratio wasm Session / node:crypto = ` +
    `${(ours / peer).toFixed(2)}x`,
);
console.log(
  `catch-up of a new subscriber to a ${total}-entry topic: ${seconds.toFixed(2)} s of client CPU ` +
    `(frames already received; network and relay not included)`,
);
