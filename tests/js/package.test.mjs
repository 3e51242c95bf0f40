// The built package under Node (ESM): the contract API, cross-checked against Node's built-in
// Ed25519 (node:crypto) in both directions, and a coded Error for every bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';

import init, {
  Identity,
  decodeOp,
  initSync,
  opId,
  signOp,
  verifyBatch,
  verifySignature,
} from 'ants-coord';
import { assertCode, nodePrivateKey, nodePublicKey, rawPublicKey } from './helpers.mjs';

const OP_DOMAIN = Buffer.from('ants-coord/op/v1\0');
const SAMPLES = 300;

function randomMessage() {
  return randomBytes(randomBytes(1)[0] * 4); // 0..1020 bytes, including empty
}

test('node ESM entry is ready without an init call; init is idempotent', async () => {
  assert.equal(typeof Identity.generate, 'function');
  await init();
  initSync({ module: new Uint8Array() }); // already initialized: returns without compiling
  assert.match(Identity.generate().agentId, /^[0-9a-f]{64}$/);
});

test('keys and signatures match node:crypto for random seeds and messages', () => {
  for (let i = 0; i < SAMPLES; i++) {
    const seed = randomBytes(32);
    const message = randomMessage();
    const identity = Identity.fromSeed(seed);
    const privateKey = nodePrivateKey(seed);
    const publicKey = rawPublicKey(privateKey);

    assert.deepEqual(Buffer.from(identity.publicKey), publicKey);
    assert.equal(identity.agentId, publicKey.toString('hex'));
    assert.deepEqual(Buffer.from(identity.exportSeed()), seed);

    // Ed25519 is deterministic: both sides produce the very same bytes.
    const ours = identity.sign(message);
    const theirs = nodeSign(null, message, privateKey);
    assert.deepEqual(Buffer.from(ours), theirs);

    // Each side verifies the other's signature.
    assert.equal(nodeVerify(null, message, nodePublicKey(identity.publicKey), ours), true);
    assert.equal(verifySignature(publicKey, message, theirs), true);

    // And both refuse a flipped bit in the message or the signature.
    const tampered = Buffer.from(theirs);
    tampered[i % 64] ^= 1 << (i % 8);
    assert.equal(verifySignature(publicKey, message, tampered), false);
    assert.equal(nodeVerify(null, message, nodePublicKey(publicKey), tampered), false);
    const otherMessage = Buffer.concat([message, Buffer.from([i & 0xff])]);
    assert.equal(verifySignature(publicKey, otherMessage, theirs), false);
    identity.free();
  }
});

test('verifyBatch agrees with node:crypto, exactly', () => {
  for (const size of [0, 1, 2, 7, 64]) {
    const keys = [];
    const messages = [];
    const signatures = [];
    for (let i = 0; i < size; i++) {
      const seed = randomBytes(32);
      const privateKey = nodePrivateKey(seed);
      const message = randomMessage();
      keys.push(rawPublicKey(privateKey));
      messages.push(message);
      signatures.push(nodeSign(null, message, privateKey));
    }
    assert.equal(verifyBatch(keys, messages, signatures), true, `batch of ${size}`);
    if (size > 0) {
      const bad = Buffer.from(signatures[size - 1]);
      bad[3] ^= 0x10;
      signatures[size - 1] = bad;
      assert.equal(verifyBatch(keys, messages, signatures), false, `tampered batch of ${size}`);
    }
  }
});

test('signOp and decodeOp round-trip every field; the signature is plain Ed25519', () => {
  const seed = randomBytes(32);
  const identity = Identity.fromSeed(seed);
  const deps = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')];
  const body = randomBytes(100);
  const bytes = signOp(identity, { topic: 'tasks/α', kind: 'post', counter: 7, body, deps, timeMs: 1_700_000_000_000 });
  assert.ok(bytes instanceof Uint8Array);

  const op = decodeOp(bytes);
  assert.equal(op.version, 1);
  assert.equal(op.author, identity.agentId);
  assert.equal(op.topic, 'tasks/α');
  assert.equal(op.kind, 'post');
  assert.equal(op.counter, 7);
  assert.equal(op.timeMs, 1_700_000_000_000);
  assert.deepEqual(op.deps, [...deps].sort());
  assert.deepEqual(Buffer.from(op.body), body);
  assert.ok(op.body instanceof Uint8Array);
  assert.equal(op.id, createHash('sha256').update(bytes).digest('hex'));
  assert.equal(opId(bytes), op.id);

  const signed = Buffer.concat([OP_DOMAIN, bytes.subarray(0, bytes.length - 64)]);
  assert.equal(nodeVerify(null, signed, nodePublicKey(identity.publicKey), op.signature), true);
  assert.deepEqual(identity.signOp({ topic: 'tasks/α', kind: 'post', counter: 7, body, deps, timeMs: 1_700_000_000_000 }), bytes);
});

test('64-bit integers: number or BigInt in, number when safe and BigInt beyond', () => {
  const identity = Identity.generate();
  const big = 2n ** 63n + 5n;
  const op = decodeOp(signOp(identity, { topic: 't', kind: 'k', counter: big, timeMs: 9n, body: new Uint8Array() }));
  assert.equal(op.counter, big);
  assert.equal(op.timeMs, 9);
  const safe = decodeOp(signOp(identity, { topic: 't', kind: 'k', counter: Number.MAX_SAFE_INTEGER, body: new Uint8Array() }));
  assert.equal(safe.counter, Number.MAX_SAFE_INTEGER);
  assert.equal(typeof safe.timeMs, 'number');
  assert.ok(Math.abs(safe.timeMs - Date.now()) < 60_000, 'timeMs defaults to now');
  const max = decodeOp(signOp(identity, { topic: 't', kind: 'k', counter: 2n ** 64n - 1n, body: new Uint8Array() }));
  assert.equal(max.counter, 2n ** 64n - 1n);
});

test('any changed byte of a signed op makes decodeOp throw a coded Error', () => {
  const identity = Identity.generate();
  const bytes = signOp(identity, { topic: 'room', kind: 'chat.msg', counter: 1, body: randomBytes(40), deps: [randomBytes(32).toString('hex')] });
  const codes = new Set();
  for (let i = 0; i < bytes.length; i++) {
    const mutated = Uint8Array.from(bytes);
    mutated[i] ^= 1 << (i % 8);
    try {
      decodeOp(mutated);
      assert.fail(`mutation at byte ${i} was accepted`);
    } catch (error) {
      assert.ok(error instanceof Error);
      assert.match(error.code ?? '', /^[A-Z_]+$/, `byte ${i}: ${error.message}`);
      codes.add(error.code);
    }
  }
  assert.ok(codes.has('BAD_SIGNATURE'));
  assertCode(() => decodeOp(Uint8Array.from([...bytes, 0])), 'TRAILING_BYTES');
  assertCode(() => decodeOp(bytes.subarray(0, bytes.length - 1)), 'MALFORMED');
  const version = Uint8Array.from(bytes);
  version[0] = 2;
  assertCode(() => decodeOp(version), 'UNSUPPORTED_VERSION');
  for (let i = 0; i < 2000; i++) {
    const random = randomBytes(randomBytes(1)[0]);
    try {
      decodeOp(random);
    } catch (error) {
      assert.ok(error instanceof Error && typeof error.code === 'string', error.message);
    }
  }
});

test('every bad input gives an Error with a stable code', () => {
  const identity = Identity.generate();
  const key = identity.publicKey;
  const message = new Uint8Array([1, 2, 3]);
  const signature = identity.sign(message);
  const body = new Uint8Array();
  const draft = { topic: 't', kind: 'k', counter: 1, body };
  const smallOrderKey = new Uint8Array(32);
  smallOrderKey[0] = 1; // the identity point

  const cases = [
    ['fromSeed(string)', () => Identity.fromSeed('seed'), 'BAD_INPUT'],
    ['fromSeed(undefined)', () => Identity.fromSeed(), 'BAD_INPUT'],
    ['fromSeed(array)', () => Identity.fromSeed(new Array(32).fill(0)), 'BAD_INPUT'],
    ['fromSeed(31 bytes)', () => Identity.fromSeed(new Uint8Array(31)), 'BAD_LENGTH'],
    ['fromSeed(33 bytes)', () => Identity.fromSeed(new Uint8Array(33)), 'BAD_LENGTH'],
    ['sign(string)', () => identity.sign('hello'), 'BAD_INPUT'],
    ['sign(null)', () => identity.sign(null), 'BAD_INPUT'],
    ['verifySignature(key string)', () => verifySignature('00', message, signature), 'BAD_INPUT'],
    ['verifySignature(message number)', () => verifySignature(key, 5, signature), 'BAD_INPUT'],
    ['verifySignature(signature missing)', () => verifySignature(key, message), 'BAD_INPUT'],
    ['verifySignature(short key)', () => verifySignature(key.subarray(1), message, signature), 'BAD_LENGTH'],
    ['verifySignature(long signature)', () => verifySignature(key, message, new Uint8Array(65)), 'BAD_LENGTH'],
    ['verifySignature(small-order key)', () => verifySignature(smallOrderKey, message, signature), 'BAD_PUBLIC_KEY'],
    ['verifyBatch(not arrays)', () => verifyBatch(key, [message], [signature]), 'BAD_INPUT'],
    ['verifyBatch(counts differ)', () => verifyBatch([key, key], [message], [signature]), 'BAD_INPUT'],
    ['verifyBatch(item type)', () => verifyBatch([key], ['m'], [signature]), 'BAD_INPUT'],
    ['verifyBatch(item length)', () => verifyBatch([key], [message], [signature.subarray(1)]), 'BAD_LENGTH'],
    ['signOp(no identity)', () => signOp(undefined, draft), 'BAD_INPUT'],
    ['signOp(plain object identity)', () => signOp({}, draft), 'BAD_INPUT'],
    ['signOp(draft not object)', () => signOp(identity, 'draft'), 'BAD_INPUT'],
    ['signOp(missing body)', () => signOp(identity, { topic: 't', kind: 'k', counter: 1 }), 'BAD_INPUT'],
    ['signOp(body array)', () => signOp(identity, { ...draft, body: [1, 2] }), 'BAD_INPUT'],
    ['signOp(body string)', () => signOp(identity, { ...draft, body: 'x' }), 'BAD_INPUT'],
    ['signOp(counter negative)', () => signOp(identity, { ...draft, counter: -1 }), 'BAD_INPUT'],
    ['signOp(counter fraction)', () => signOp(identity, { ...draft, counter: 1.5 }), 'BAD_INPUT'],
    ['signOp(counter unsafe)', () => signOp(identity, { ...draft, counter: 2 ** 60 }), 'BAD_INPUT'],
    ['signOp(counter string)', () => signOp(identity, { ...draft, counter: '1' }), 'BAD_INPUT'],
    ['signOp(counter 2^64)', () => signOp(identity, { ...draft, counter: 2n ** 64n }), 'BAD_INPUT'],
    ['signOp(unknown field)', () => signOp(identity, { ...draft, time_ms: 1 }), 'BAD_INPUT'],
    ['signOp(dep not hex)', () => signOp(identity, { ...draft, deps: ['xyz'] }), 'BAD_INPUT'],
    ['signOp(dep upper hex)', () => signOp(identity, { ...draft, deps: ['AB'.repeat(32)] }), 'BAD_INPUT'],
    ['signOp(empty topic)', () => signOp(identity, { ...draft, topic: '' }), 'BAD_TOPIC'],
    ['signOp(long topic)', () => signOp(identity, { ...draft, topic: 'x'.repeat(129) }), 'BAD_TOPIC'],
    ['signOp(control in topic)', () => signOp(identity, { ...draft, topic: 'a\nb' }), 'BAD_TOPIC'],
    ['signOp(bad kind)', () => signOp(identity, { ...draft, kind: 'Post' }), 'BAD_KIND'],
    ['signOp(too many deps)', () => signOp(identity, { ...draft, deps: Array.from({ length: 17 }, (_, i) => i.toString(16).padStart(64, '0')) }), 'LIMIT_EXCEEDED'],
    ['signOp(body too large)', () => signOp(identity, { ...draft, body: new Uint8Array(256 * 1024 + 1) }), 'LIMIT_EXCEEDED'],
    ['decodeOp(string)', () => decodeOp('op'), 'BAD_INPUT'],
    ['decodeOp(empty)', () => decodeOp(new Uint8Array()), 'MALFORMED'],
    ['opId(number)', () => opId(1), 'BAD_INPUT'],
    ['opId(empty)', () => opId(new Uint8Array()), 'MALFORMED'],
  ];
  for (const [label, fn, code] of cases) assertCode(fn, code, label);

  const freed = Identity.generate();
  freed.free();
  assertCode(() => signOp(freed, draft), 'BAD_INPUT', 'signOp(freed identity)');
  // A method on a freed object: the glue's own check, given the package's error shape.
  for (const [label, fn] of [
    ['freed.sign', () => freed.sign(new Uint8Array([1]))],
    ['freed.agentId', () => freed.agentId],
  ]) {
    assertCode(fn, 'BAD_INPUT', label);
    try {
      fn();
    } catch (error) {
      assert.equal(error.name, 'AntsCoordError', label);
      assert.match(error.message, /freed/, label);
    }
  }
});

test('errors are real Errors named AntsCoordError, and secrets never print', () => {
  try {
    Identity.fromSeed(new Uint8Array(1));
  } catch (error) {
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'AntsCoordError');
    assert.ok(typeof error.stack === 'string');
  }
  const seed = randomBytes(32);
  const identity = Identity.fromSeed(seed);
  const hexSeed = seed.toString('hex');
  assert.equal(JSON.stringify(identity), JSON.stringify({ agentId: identity.agentId }));
  assert.ok(!String(identity).includes(hexSeed));
  assert.ok(String(identity).includes(identity.agentId));
});
