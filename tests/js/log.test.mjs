// The transparency log from JS: the CT reference vectors, proofs cross-checked against an
// independent RFC 6962 implementation on node:crypto, statements and evidence from the vector
// file, and a coded Error for every bad argument.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import {
  MerkleLog,
  decodeCheckpoint,
  decodeEvidence,
  decodeReceipt,
  leafHash,
  merkleRoot,
  verifyCheckpoint,
  verifyCheckpointNote,
  verifyConsistency,
  verifyEvidence,
  verifyInclusion,
  verifyReceipt,
} from 'ants-coord';
import { assertCode, root } from './helpers.mjs';

const merkle = JSON.parse(readFileSync(`${root}tests/vectors/merkle.json`, 'utf8'));
const statements = JSON.parse(readFileSync(`${root}tests/vectors/log-statements.json`, 'utf8'));
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));

// RFC 6962 §2.1 written out in JS, independent of the wasm core.
const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
function mth(leaves) {
  if (leaves.length === 0) return sha256(Buffer.alloc(0));
  if (leaves.length === 1) return sha256(Buffer.from([0]), leaves[0]);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

const leaves = merkle.leaves.map(unhex);
function ctLog() {
  const log = new MerkleLog();
  leaves.forEach((leaf, i) => assert.equal(log.append(leaf), i));
  return log;
}

test('CT reference vectors: roots, inclusion and consistency proofs', () => {
  const log = ctLog();
  assert.equal(log.size, 8);
  assert.equal(hex(log.root()), merkle.roots[8].root);
  for (const { size, root: expected } of merkle.roots) {
    assert.equal(hex(log.rootAt(size)), expected, `root at ${size}`);
    assert.equal(hex(merkleRoot(leaves.slice(0, size))), expected);
  }
  merkle.leaf_hashes.forEach((h, i) => assert.equal(hex(leafHash(leaves[i])), h));
  for (const { index, size, proof } of merkle.inclusion) {
    const got = log.inclusionProof(index, size);
    assert.deepEqual(got.map(hex), proof, `inclusion ${index}/${size}`);
    assert.equal(verifyInclusion(leaves[index], index, size, got, log.rootAt(size)), true);
  }
  for (const { old_size: m, new_size: n, proof } of merkle.consistency) {
    const got = log.consistencyProof(m, n);
    assert.deepEqual(got.map(hex), proof, `consistency ${m}->${n}`);
    assert.equal(verifyConsistency(m, log.rootAt(m), n, log.rootAt(n), got), true);
  }
});

test('random logs match the JS reference; tampered proofs are false', () => {
  // Distinct leaves (an index prefix): with two equal neighbours, a proof for one would rightly
  // verify for the other, and the wrong-index check below would fail by chance.
  const data = Array.from({ length: 300 }, (_, i) =>
    Buffer.concat([Buffer.from([i >> 8, i & 0xff]), randomBytes(randomBytes(1)[0] % 64)]),
  );
  const log = new MerkleLog();
  for (const leaf of data) log.append(leaf);
  for (let trial = 0; trial < 200; trial++) {
    const size = 1 + Math.floor(Math.random() * data.length);
    const index = Math.floor(Math.random() * size);
    const rootAt = log.rootAt(size);
    assert.deepEqual(Buffer.from(rootAt), mth(data.slice(0, size)));
    const proof = log.inclusionProof(index, size);
    assert.equal(verifyInclusion(data[index], index, size, proof, rootAt), true);
    if (proof.length > 0) {
      const bad = proof.map((h) => new Uint8Array(h));
      bad[trial % bad.length][trial % 32] ^= 1;
      assert.equal(verifyInclusion(data[index], index, size, bad, rootAt), false);
    }
    if (size > 1) {
      assert.equal(verifyInclusion(data[index], (index + 1) % size, size, proof, rootAt), false);
    }
    const old = Math.floor(Math.random() * (size + 1));
    const cproof = log.consistencyProof(old, size);
    assert.equal(verifyConsistency(old, log.rootAt(old), size, rootAt, cproof), true);
    if (old > 0 && old < size) {
      const badRoot = new Uint8Array(log.rootAt(old));
      badRoot[0] ^= 1;
      assert.equal(verifyConsistency(old, badRoot, size, rootAt, cproof), false);
    }
  }
});

test('bad arguments throw coded errors', () => {
  const log = ctLog();
  assertCode(() => log.append('text'), 'BAD_INPUT', 'append string');
  assertCode(() => log.inclusionProof(-1, 8), 'BAD_INPUT', 'negative index');
  assertCode(() => log.inclusionProof(1.5, 8), 'BAD_INPUT', 'fractional index');
  assertCode(() => log.inclusionProof(0, 2 ** 53), 'BAD_INPUT', 'unsafe size');
  assertCode(() => log.inclusionProof(8, 8), 'BAD_INPUT', 'index past size');
  assertCode(() => log.consistencyProof(5, 9), 'BAD_INPUT', 'size past log');
  const proof = log.inclusionProof(0, 8);
  assertCode(() => verifyInclusion(leaves[0], 0, 8, proof, new Uint8Array(31)), 'BAD_LENGTH', 'short root');
  assertCode(() => verifyInclusion(leaves[0], 0, 8, [new Uint8Array(3)], log.root()), 'BAD_LENGTH', 'short hash');
  assertCode(() => verifyInclusion(leaves[0], 0, 8, 'x', log.root()), 'BAD_INPUT', 'proof not array');
  assertCode(() => merkleRoot([leaves[0], 7]), 'BAD_INPUT', 'leaf not bytes');
  // A well-formed proof that is simply wrong is false, not a throw.
  assert.equal(verifyInclusion(leaves[0], 9, 8, proof, log.root()), false);
});

test('receipts, checkpoints and their text form from the vector file', () => {
  const relay = statements.relay_public_key;
  const r = statements.receipt;
  const receipt = verifyReceipt(unhex(r.bytes), relay);
  assert.equal(receipt.topic, r.topic);
  assert.equal(receipt.seq, r.seq);
  assert.equal(receipt.opId, r.op_id);
  assert.equal(receipt.relayTimeMs, r.relay_time_ms);
  assert.equal(receipt.treeSize, r.tree_size);
  assert.equal(hex(receipt.root), r.root);
  assert.equal(receipt.signature.length, 64);
  assert.equal(receipt.version, 1);
  assert.deepEqual(decodeReceipt(unhex(r.bytes)), receipt);
  // Receipts signed in one batch (version 2): one signature, each verifies on its own.
  const batch = statements.receipt_batch.map((b) => verifyReceipt(unhex(b), relay));
  assert.deepEqual(batch.map((b) => [b.version, b.topic, Number(b.seq)]), [[2, 'tasks/ü', 0], [2, 'tasks/ü', 1], [2, 'chat', 7]]);
  assert.deepEqual(batch[2].signature, batch[0].signature);
  const bent = unhex(statements.receipt_batch[1]);
  bent[20] ^= 1;
  assertCode(() => verifyReceipt(bent, relay), 'BAD_SIGNATURE', 'batch receipt, changed field');
  const c = statements.checkpoint;
  const checkpoint = verifyCheckpoint(unhex(c.bytes), unhex(relay));
  assert.equal(checkpoint.treeSize, c.tree_size);
  assert.equal(checkpoint.timeMs, c.time_ms);
  assert.equal(hex(checkpoint.root), c.root);
  assert.deepEqual(decodeCheckpoint(unhex(c.bytes)), checkpoint);
  const note = verifyCheckpointNote(statements.checkpoint_note, relay);
  assert.deepEqual(note, { topic: c.topic, treeSize: c.tree_size, root: checkpoint.root });

  const stranger = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
  assertCode(() => verifyReceipt(unhex(r.bytes), stranger), 'BAD_SIGNATURE', 'receipt, other key');
  assertCode(() => verifyCheckpoint(unhex(c.bytes), stranger), 'BAD_SIGNATURE', 'checkpoint, other key');
  assertCode(() => verifyCheckpoint(unhex(r.bytes), relay), 'TRAILING_BYTES', 'receipt as checkpoint');
  assertCode(() => verifyReceipt(unhex(r.bytes), 'nope'), 'BAD_AGENT_ID', 'bad key text');
  const trailing = new Uint8Array([...unhex(c.bytes), 0]);
  assertCode(() => decodeCheckpoint(trailing), 'TRAILING_BYTES', 'trailing');
});

test('each kind of evidence verifies with only the relay key', () => {
  const relay = statements.relay_public_key;
  const seen = new Set();
  for (const { violation, bytes } of statements.evidence) {
    assert.deepEqual(decodeEvidence(unhex(bytes)), { violation, topic: 'tasks/ü' });
    assert.deepEqual(verifyEvidence(unhex(bytes), relay), { violation, topic: 'tasks/ü' });
    const stranger = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
    assertCode(() => verifyEvidence(unhex(bytes), stranger), 'BAD_SIGNATURE', violation);
    seen.add(violation);
  }
  assert.deepEqual(
    [...seen].sort(),
    ['CONFLICTING_HEADS', 'COUNTER_ORDER', 'DEPS_ORDER', 'INVALID_LEAF', 'RECEIPT_CONTRADICTED', 'SPLIT_VIEW'],
  );
  assertCode(() => decodeEvidence(new Uint8Array([1, 99])), 'MALFORMED', 'unknown kind');
  assertCode(() => decodeEvidence(new Uint8Array([2, 1])), 'UNSUPPORTED_VERSION', 'version');
});
