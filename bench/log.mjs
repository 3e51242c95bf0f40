// Transparency-log micro-benchmarks in Node: wasm inclusion-proof verification at one million
// leaves (target: under 20 µs per proof), wasm append throughput, and as the peer the same RFC
// 9162 §2.1.3.2 verification written in JS on node:crypto's SHA-256, in the same run.
//
//   scripts/build-pkg.sh && node bench/log.mjs
import { createHash } from 'node:crypto';

import { MerkleLog, leafHash, verifyInclusion } from 'ants-coord';

const LEAVES = 1_000_000;
const PROOFS = 1000;
const ROUNDS = 20;

const leaf = (i) => {
  const bytes = new Uint8Array(200);
  new DataView(bytes.buffer).setUint32(0, i);
  return bytes;
};

function jsVerifyInclusion(leafData, index, size, proof, root) {
  const h = (...parts) => {
    const hash = createHash('sha256');
    for (const p of parts) hash.update(p);
    return hash.digest();
  };
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = h(Buffer.from([0]), leafData);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = h(Buffer.from([1]), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = h(Buffer.from([1]), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.compare(r, Buffer.from(root)) === 0;
}

const log = new MerkleLog();
let start = performance.now();
for (let i = 0; i < LEAVES; i++) log.append(leaf(i));
const appendMs = performance.now() - start;
const root = log.root();
console.log(`wasm append: ${(LEAVES / appendMs / 1000).toFixed(2)} M leaves/s (200-byte leaves, ${LEAVES} leaves)`);

const cases = Array.from({ length: PROOFS }, (_, k) => {
  const index = (k * 7919 * 104729) % LEAVES;
  return { index, data: leaf(index), proof: log.inclusionProof(index, LEAVES) };
});

// On a shared machine wall time includes waiting for a core: process CPU time is printed too.
function time(label, verify, proofOf = (c) => c.proof) {
  for (const c of cases) if (!verify(c.data, c.index, LEAVES, proofOf(c), root)) throw new Error(`${label} failed`);
  const begin = performance.now();
  const cpu = process.cpuUsage();
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) verify(c.data, c.index, LEAVES, proofOf(c), root);
  }
  const used = process.cpuUsage(cpu);
  const perProof = ((performance.now() - begin) * 1000) / (ROUNDS * PROOFS);
  const perProofCpu = (used.user + used.system) / (ROUNDS * PROOFS);
  console.log(
    `${label}: ${perProof.toFixed(2)} µs wall, ${perProofCpu.toFixed(2)} µs CPU per inclusion proof (${cases[0].proof.length} hashes)`,
  );
  return perProofCpu;
}

start = performance.now();
for (let k = 0; k < PROOFS; k++) log.inclusionProof(cases[k].index, LEAVES);
console.log(`wasm inclusionProof at 1M leaves: ${(((performance.now() - start) * 1000) / PROOFS).toFixed(2)} µs`);
for (const c of cases) c.flat = new Uint8Array(Buffer.concat(c.proof));
const wasm = time('wasm verifyInclusion (Uint8Array[] proof)', verifyInclusion);
const flat = time('wasm verifyInclusion (flat Uint8Array proof)', verifyInclusion, (c) => c.flat);
const js = time('peer JS (node:crypto SHA-256)', jsVerifyInclusion);
console.log(
  `ratio peer/wasm (CPU time): ${(js / wasm).toFixed(2)} (array proof), ${(js / flat).toFixed(2)} (flat proof); ` +
    `target wasm under 20 µs: ${wasm < 20 ? 'met' : 'NOT met'}`,
);
void leafHash;
