// Election over 10,000 candidates in wasm (target: under 5 ms), side by side with the same
// election written in plain JS on node:crypto's SHA-256, and replica apply throughput from JS
// (signatures verified per entry, as `Replica.apply` does).
//
//   node bench/replica.mjs
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { Identity, Replica, ReplicaOp, electLeader } from 'ants-coord';

const N = 10_000;
const TOPIC = 'bench';
const WINDOW_MS = 30_000;
const NOW = 1_700_000_000_000;

/** Mean wall time per run, and the process's CPU time per run (closer to the unloaded cost on a
 * shared machine, where wall time includes waiting for a core). Returns the CPU time. */
function time(label, runs, fn) {
  for (let i = 0; i < Math.min(runs, 5); i++) fn(i); // warm up
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < runs; i++) fn(i);
  const ms = (performance.now() - start) / runs;
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000 / runs;
  console.log(`${label.padEnd(44)} ${ms.toFixed(3)} ms wall, ${cpuMs.toFixed(3)} ms CPU`);
  return cpuMs;
}

// 10,000 distinct 32-byte ids (hashes stand in for public keys: only the bytes are hashed).
const idBytes = Array.from({ length: N }, (_, i) =>
  createHash('sha256').update(`candidate-${i}`).digest(),
);
const ids = idBytes.map((b) => b.toString('hex'));
const packed = new Uint8Array(Buffer.concat(idBytes));
const weights = ids.map((_, i) => 1 + (i % 5));

/** The same priority election in plain JS (PROTOCOL.md 6.3), the peer a user might write. */
function jsLeader(idList, topic, nowMs, windowMs) {
  const domain = Buffer.from('ants-coord/election/v1\0');
  const topicBytes = Buffer.from(topic);
  const prefixLen = Math.ceil((domain.length + 1 + topicBytes.length) / 64) * 64;
  const prefix = Buffer.alloc(prefixLen);
  domain.copy(prefix, 0);
  prefix[domain.length] = topicBytes.length;
  topicBytes.copy(prefix, domain.length + 1);
  const windowBytes = Buffer.alloc(8);
  windowBytes.writeBigUInt64BE(BigInt(Math.floor(nowMs / windowMs)));
  let best = null;
  let bestId = null;
  for (const id of idList) {
    const p = createHash('sha256').update(prefix).update(id).update(windowBytes).digest();
    const c = best === null ? 1 : Buffer.compare(p, best);
    if (c > 0 || (c === 0 && Buffer.compare(id, bestId) < 0)) {
      best = p;
      bestId = id;
    }
  }
  return bestId.toString('hex');
}

console.log(`election over ${N} candidates`);
const leader = electLeader(packed, TOPIC, NOW, WINDOW_MS, undefined, 1).leader;
if (jsLeader(idBytes, TOPIC, NOW, WINDOW_MS) !== leader) throw new Error('JS peer disagrees');
const wasmPacked = time('wasm electLeader (packed ids, leader only)', 50, (i) =>
  electLeader(packed, TOPIC, NOW + i * WINDOW_MS, WINDOW_MS, undefined, 1),
);
const wasmHex = time('wasm electLeader (hex ids, top 3)', 30, (i) =>
  electLeader(ids, TOPIC, NOW + i * WINDOW_MS, WINDOW_MS, undefined, 3),
);
time('wasm electLeader (weighted, packed, top 3)', 30, (i) =>
  electLeader(packed, TOPIC, NOW + i * WINDOW_MS, WINDOW_MS, weights, 3),
);
time('wasm electLeader (hex ids, full ranking)', 20, (i) =>
  electLeader(ids, TOPIC, NOW + i * WINDOW_MS, WINDOW_MS),
);
const peer = time('JS peer (node:crypto SHA-256, leader only)', 20, (i) =>
  jsLeader(idBytes, TOPIC, NOW + i * WINDOW_MS, WINDOW_MS),
);
console.log(
  `ratio JS peer / wasm: packed ${(peer / wasmPacked).toFixed(2)}x, hex ${(peer / wasmHex).toFixed(2)}x` +
    ` (> 1: wasm faster; CPU time); target < 5 ms: ${wasmPacked < 5 ? 'met' : 'MISSED'} (${wasmPacked.toFixed(2)} ms CPU)`,
);

// Replica apply from JS: entries signed beforehand; apply verifies each signature.
const agents = Array.from({ length: 50 }, (_, i) => Identity.fromSeed(new Uint8Array(32).fill(i + 1)));
const entries = [];
const counters = new Array(agents.length).fill(0);
function entry(seq, t, op) {
  const out = Buffer.alloc(21 + op.length);
  out[0] = 1;
  out.writeBigUInt64BE(BigInt(seq), 1);
  out.writeBigUInt64BE(BigInt(t), 9);
  out.writeUInt32BE(op.length, 17);
  out.set(op, 21);
  return new Uint8Array(out);
}
for (let i = 0; i < 5000; i++) {
  const who = i < agents.length ? 0 : i % agents.length;
  const [kind, body] =
    i < agents.length
      ? ['mint', ReplicaOp.mint({ to: agents[i].agentId, amount: 1000 })]
      : i % 3 === 0
        ? ['claim.release', ReplicaOp.release({ resource: `slot-${i % 97}` })]
        : ['claim', ReplicaOp.claim({ resource: `slot-${i % 97}`, stake: i % 7 })];
  const op = agents[who].signOp({ topic: TOPIC, kind, counter: counters[who]++, timeMs: NOW + i, body });
  entries.push(entry(i, NOW + i, op));
}
const applyMs = time('Replica.apply x 5000 (with signature checks)', 3, () => {
  const replica = new Replica(TOPIC, { issuers: [agents[0].agentId] });
  for (const e of entries) replica.apply(e);
  replica.free();
});
console.log(`replica apply from JS: ${Math.round(5000 / (applyMs / 1000))} entries/s (ed25519 verification included)`);
