// The CommonJS entry: `require('ants-coord')` works with no init call and interoperates with
// node:crypto like the ESM entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { execFileSync } from 'node:child_process';

import { assertCode, nodePrivateKey, nodePublicKey, root } from './helpers.mjs';

const require = createRequire(import.meta.url);

test('require("ants-coord") resolves to the CommonJS build and works at once', () => {
  const resolved = require.resolve('ants-coord');
  assert.match(resolved, /cjs[\\/]ants_coord\.js$/);
  const { Identity, verifySignature, verifyBatch, signOp, decodeOp, opId } = require('ants-coord');
  for (let i = 0; i < 50; i++) {
    const seed = randomBytes(32);
    const message = randomBytes(i * 7);
    const identity = Identity.fromSeed(seed);
    const signature = identity.sign(message);
    assert.deepEqual(Buffer.from(signature), nodeSign(null, message, nodePrivateKey(seed)));
    assert.equal(nodeVerify(null, message, nodePublicKey(identity.publicKey), signature), true);
    assert.equal(verifySignature(identity.publicKey, message, signature), true);
    assert.equal(verifyBatch([identity.publicKey], [message], [signature]), true);
  }
  const identity = Identity.generate();
  const bytes = signOp(identity, { topic: 't', kind: 'k', counter: 1n, body: new Uint8Array([9]) });
  assert.equal(decodeOp(bytes).author, identity.agentId);
  assert.equal(opId(bytes), decodeOp(bytes).id);
  assertCode(() => Identity.fromSeed(new Uint8Array(2)), 'BAD_LENGTH');
  assertCode(() => verifySignature('x', new Uint8Array(), new Uint8Array(64)), 'BAD_INPUT');
  assertCode(() => decodeOp(new Uint8Array([1])), 'MALFORMED');
  // Methods on freed objects throw the package's coded error from the CommonJS glue too.
  const freed = Identity.generate();
  freed.free();
  assertCode(() => freed.sign(new Uint8Array([1])), 'BAD_INPUT', 'freed identity');
  const doc = new (require('ants-coord').Doc)();
  doc.free();
  assertCode(() => doc.text('t'), 'BAD_INPUT', 'freed doc');
});

test('a plain CommonJS script (node -e) can require the package', () => {
  const script = `
    const { Identity, verifySignature } = require('ants-coord');
    const id = Identity.generate();
    const m = Buffer.from('cjs');
    process.stdout.write(String(verifySignature(id.publicKey, m, id.sign(m))));
  `;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(out, 'true');
});

test('an Identity from the CommonJS entry given to the ESM client is BAD_INPUT that says why', async () => {
  const { Identity: CjsIdentity } = require('ants-coord');
  const { RelayClient } = await import('ants-coord/client');
  const identity = CjsIdentity.generate();
  await assert.rejects(
    RelayClient.connect('ws://127.0.0.1:9/ws', identity, { WebSocket: class {} }),
    (error) => error.code === 'BAD_INPUT' && /another copy of ants-coord/.test(error.message),
  );
  await assert.rejects(
    RelayClient.connect('ws://127.0.0.1:9/ws', { agentId: 'x' }, { WebSocket: class {} }),
    (error) => error.code === 'BAD_INPUT' && /must be an ants-coord Identity/.test(error.message),
  );
});
