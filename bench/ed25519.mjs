// Ed25519 throughput of the ants-coord wasm build under Node, side by side in one run with
// Node's built-in synchronous crypto.sign/verify, @noble/ed25519 (sync API, SHA-512 from
// node:crypto) and tweetnacl; prints each ratio and the gzip size of the shipped .wasm.
//
//   node bench/ed25519.mjs                 # needs pkg/ built (scripts/setup.sh) and npm packages
//   BENCH_MS=1500 node bench/ed25519.mjs   # longer measurements (default 600 ms per contender
//                                          # per round, 5 rounds, median)
//
// Every library signs/verifies the same 256 distinct keys and 128-byte messages. Batch rows
// report signatures verified per second; the peers have no batch API, so their batch figure is
// their one-by-one verify rate.
import { createHash, sign as nodeSign, verify as nodeVerify, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import * as noble from '@noble/ed25519';
import nacl from 'tweetnacl';

import { Identity, verifySignature, verifyBatch } from 'ants-coord';

noble.hashes.sha512 = (message) => new Uint8Array(createHash('sha512').update(message).digest());

const BENCH_MS = Number(process.env.BENCH_MS ?? 600); // per contender per round
const KEYS = 256;
const MESSAGE_LEN = 128;

const pkcs8 = (seed) => createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
const spki = (pk) => createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pk]), format: 'der', type: 'spki' });

const items = Array.from({ length: KEYS }, () => {
  const seed = randomBytes(32);
  const identity = Identity.fromSeed(seed);
  const publicKey = identity.publicKey;
  const message = new Uint8Array(randomBytes(MESSAGE_LEN));
  const signature = identity.sign(message);
  const naclPair = nacl.sign.keyPair.fromSeed(seed);
  return {
    seed: new Uint8Array(seed),
    identity,
    publicKey,
    message,
    signature,
    nodePrivate: pkcs8(seed),
    nodePublic: spki(Buffer.from(publicKey)),
    naclSecret: naclPair.secretKey,
  };
});

// Everyone agrees before anything is timed.
for (const it of items.slice(0, 16)) {
  const nodeSig = nodeSign(null, it.message, it.nodePrivate);
  if (Buffer.compare(nodeSig, Buffer.from(it.signature)) !== 0) throw new Error('node and wasm signatures differ');
  if (!nodeVerify(null, it.message, it.nodePublic, it.signature)) throw new Error('node rejects wasm signature');
  if (!noble.verify(it.signature, it.message, it.publicKey)) throw new Error('noble rejects wasm signature');
  if (!nacl.sign.detached.verify(it.message, it.signature, it.publicKey)) throw new Error('tweetnacl rejects wasm signature');
  if (!verifySignature(it.publicKey, it.message, nodeSig)) throw new Error('wasm rejects node signature');
}

/** Operations per second of `step(i)`, each call doing `perCall` operations. */
function measure(step, perCall = 1) {
  const warm = performance.now() + Math.min(200, BENCH_MS / 4);
  let i = 0;
  while (performance.now() < warm) step(i++);
  let calls = 0;
  const start = performance.now();
  const end = start + BENCH_MS;
  let now = start;
  while (now < end) {
    for (let k = 0; k < 8; k++) step(calls++);
    now = performance.now();
  }
  return (calls * perCall) / ((now - start) / 1000);
}

const pick = (i) => items[i % KEYS];

// The contenders of each row, measured round-robin (ROUNDS rounds, median per contender) so a
// change in machine load during the run hits every library alike.
const ROUNDS = 5;
function compare(contenders) {
  const samples = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, [step, perCall]] of Object.entries(contenders)) samples[name].push(measure(step, perCall));
  }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]));
}

const results = {};
results.sign = compare({
  wasm: [(i) => pick(i).identity.sign(pick(i).message)],
  node: [(i) => nodeSign(null, pick(i).message, pick(i).nodePrivate)],
  noble: [(i) => noble.sign(pick(i).message, pick(i).seed)],
  tweetnacl: [(i) => nacl.sign.detached(pick(i).message, pick(i).naclSecret)],
});
const batches = {};
for (const size of [64, 256]) {
  batches[size] = Array.from({ length: KEYS / size }, (_, b) => {
    const slice = items.slice(b * size, (b + 1) * size);
    return [slice.map((it) => it.publicKey), slice.map((it) => it.message), slice.map((it) => it.signature)];
  });
  for (const batch of batches[size]) if (!verifyBatch(...batch)) throw new Error('batch failed');
}
// One-by-one verification of every library and wasm's batches, in the same rounds.
const verify = compare({
  wasm: [(i) => verifySignature(pick(i).publicKey, pick(i).message, pick(i).signature)],
  node: [(i) => nodeVerify(null, pick(i).message, pick(i).nodePublic, pick(i).signature)],
  noble: [(i) => noble.verify(pick(i).signature, pick(i).message, pick(i).publicKey)],
  tweetnacl: [(i) => nacl.sign.detached.verify(pick(i).message, pick(i).signature, pick(i).publicKey)],
  batch64: [(i) => verifyBatch(...batches[64][i % batches[64].length]), 64],
  batch256: [(i) => verifyBatch(...batches[256][i % batches[256].length]), 256],
});
results.verify = { wasm: verify.wasm, node: verify.node, noble: verify.noble, tweetnacl: verify.tweetnacl };
for (const size of [64, 256]) {
  results[`verifyBatch ${size}`] = { wasm: verify[`batch${size}`], node: verify.node, noble: verify.noble, tweetnacl: verify.tweetnacl };
}

const wasmPath = fileURLToPath(new URL('../pkg/ants_coord_bg.wasm', import.meta.url));
const wasmBytes = readFileSync(wasmPath);
const gz = gzipSync(wasmBytes, { level: 9 }).length;

const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(9);
const ratio = (a, b) => `${(a / b).toFixed(2)}×`.padStart(7);
console.log(`ants-coord Ed25519 benchmark — ${new Date().toISOString()}`);
console.log(`machine: ${cpus().length} cpus, ${cpus()[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; node ${process.version}; median of ${ROUNDS} round-robin rounds of ${BENCH_MS} ms`);
console.log(`${KEYS} keys, ${MESSAGE_LEN}-byte messages; ops/s (batch rows: signatures/s); ratios are wasm ÷ peer\n`);
console.log(`${'operation'.padEnd(16)} ${'wasm'.padStart(9)} ${'node'.padStart(9)} ${'noble'.padStart(9)} ${'tweetnacl'.padStart(9)}   ${'÷node'.padStart(7)} ${'÷noble'.padStart(7)} ${'÷nacl'.padStart(7)}`);
for (const [name, r] of Object.entries(results)) {
  console.log(`${name.padEnd(16)} ${fmt(r.wasm)} ${fmt(r.node)} ${fmt(r.noble)} ${fmt(r.tweetnacl)}   ${ratio(r.wasm, r.node)} ${ratio(r.wasm, r.noble)} ${ratio(r.wasm, r.tweetnacl)}`);
}
console.log(`\npkg/ants_coord_bg.wasm: ${wasmBytes.length.toLocaleString('en-US')} bytes, ${gz.toLocaleString('en-US')} bytes gzip -9 (${(gz / 1024).toFixed(1)} KiB)`);

const targets = [
  ['single verify ≥ node crypto.verify', results.verify.wasm >= results.verify.node],
  ['batch verify (256) ≥ 2× node', results['verifyBatch 256'].wasm >= 2 * results.verify.node],
  ['batch verify (256) ≥ 10× noble', results['verifyBatch 256'].wasm >= 10 * results.verify.noble],
  ['.wasm ≤ 80 KB gzip', gz <= 80 * 1024],
];
console.log('\nissue 2 targets:');
for (const [label, met] of targets) console.log(`  ${met ? 'met    ' : 'NOT met'}  ${label}`);
if (process.env.BENCH_JSON) console.log(JSON.stringify({ results, wasmBytes: wasmBytes.length, gzipBytes: gz }));
