// Capabilities from JS: grant, delegate, decode, the owned-topic checks, and every vector of
// tests/vectors/capabilities.json (the same bytes, codes and decisions as the Rust core).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Capability, Identity } from 'ants-coord';
import { assertCode, root } from './helpers.mjs';

const vectors = JSON.parse(readFileSync(`${root}tests/vectors/capabilities.json`, 'utf8'));
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const agents = Object.fromEntries(
  vectors.agents.map(({ name, seed }) => [name, Identity.fromSeed(unhex(seed))]),
);
const NOW = 1_800_000_000_000;

test('grant, delegate and decode a chain', () => {
  const { alice, bob, carol } = agents;
  const docs = `@${alice.agentId}/docs/`;
  const root = Capability.grant(alice, {
    audience: bob.agentId,
    topic: docs,
    prefix: true,
    rights: ['read', 'write', 'delegate'],
    expiresMs: NOW + 1000,
  });
  assert.ok(root instanceof Uint8Array);
  const chain = Capability.delegate(bob, root, {
    audience: carol.agentId,
    topic: `${docs}plan`,
    rights: ['read'],
    expiresMs: NOW + 500,
  });
  const decoded = Capability.decode(chain);
  assert.equal(decoded.issuer, alice.agentId);
  assert.equal(decoded.audience, carol.agentId);
  assert.equal(decoded.topic, `${docs}plan`);
  assert.equal(decoded.prefix, false);
  assert.deepEqual(decoded.rights, ['read']);
  assert.equal(decoded.expiresMs, NOW + 500);
  assert.equal(decoded.notBeforeMs, 0);
  assert.equal(decoded.chain.length, 2);
  assert.equal(decoded.chain[0].prefix, true);
  assert.equal(decoded.chain[1].issuer, bob.agentId);
  assert.match(decoded.id, /^[0-9a-f]{64}$/);

  Capability.mayRead(`${docs}plan`, carol.agentId, [chain], NOW);
  assertCode(() => Capability.mayWrite(`${docs}plan`, carol.agentId, [chain], NOW), 'NOT_AUTHORIZED');
  assertCode(() => Capability.mayRead(`${docs}plan`, carol.agentId, [chain], NOW + 500), 'CAPABILITY_EXPIRED');
  assert.equal(Capability.topicOwner(docs), alice.agentId);
  assert.equal(Capability.topicOwner('tasks'), null);
});

test('a chain never widens, and bad grants get their codes', () => {
  const { alice, bob, carol } = agents;
  const topic = `@${alice.agentId}/notes`;
  const readOnly = Capability.grant(alice, {
    audience: bob.agentId,
    topic,
    rights: ['read', 'delegate'],
    expiresMs: NOW,
  });
  const to = (rights, extra = {}) => ({ audience: carol.agentId, topic, rights, expiresMs: NOW, ...extra });
  assertCode(() => Capability.delegate(bob, readOnly, to(['write'])), 'BAD_CAPABILITY', 'wider rights');
  assertCode(() => Capability.delegate(bob, readOnly, to(['read'], { expiresMs: NOW + 1 })), 'BAD_CAPABILITY', 'later expiry');
  assertCode(() => Capability.delegate(bob, readOnly, to(['read'], { prefix: true })), 'BAD_CAPABILITY', 'wider scope');
  assertCode(() => Capability.delegate(carol, readOnly, to(['read'])), 'BAD_CAPABILITY', 'not the holder');
  assertCode(() => Capability.grant(alice, to(['admin'])), 'BAD_INPUT', 'unknown right');
  assertCode(() => Capability.grant(alice, to([])), 'BAD_CAPABILITY', 'no rights');
  assertCode(() => Capability.grant(alice, to(['read'], { expires: 5 })), 'BAD_INPUT', 'unknown field');
  assertCode(() => Capability.grant(alice, to(['read'], { audience: 'bob' })), 'BAD_AGENT_ID', 'audience');
  assertCode(() => Capability.grant(alice, to(['read'], { topic: '' })), 'BAD_TOPIC', 'topic');
  assertCode(() => Capability.grant({}, to(['read'])), 'BAD_INPUT', 'issuer');
  assertCode(() => Capability.decode('00'), 'BAD_INPUT', 'not bytes');
});

test('the vectors: valid chains, invalid bytes, decisions', () => {
  for (const vector of vectors.valid) {
    const decoded = Capability.decode(unhex(vector.capability));
    assert.equal(decoded.id, vector.id, vector.name);
    assert.equal(decoded.issuer, vector.issuer, vector.name);
    assert.equal(decoded.audience, vector.audience, vector.name);
    assert.equal(decoded.topic, vector.scope, vector.name);
    assert.equal(decoded.prefix, vector.scope_kind === 'prefix', vector.name);
    assert.deepEqual(decoded.rights, vector.rights, vector.name);
    assert.equal(String(decoded.expiresMs), vector.expires_ms, vector.name);
    assert.equal(decoded.chain.length, vector.links.length, vector.name);
    // JS signs the same bytes: rebuild the chain link by link.
    let bytes;
    for (const link of vector.links) {
      const signer = Object.values(agents).find((a) => a.agentId === link.issuer);
      const grant = {
        audience: link.audience,
        topic: link.scope,
        prefix: link.scope_kind === 'prefix',
        rights: link.rights,
        notBeforeMs: Number(link.not_before_ms),
        expiresMs: Number(link.expires_ms),
      };
      bytes = bytes ? Capability.delegate(signer, bytes, grant) : Capability.grant(signer, grant);
    }
    assert.equal(hex(bytes), vector.capability, vector.name);
  }
  for (const vector of vectors.invalid) {
    assertCode(() => Capability.decode(unhex(vector.capability)), vector.code, vector.name);
  }
  const byName = Object.fromEntries(vectors.valid.map((v) => [v.name, unhex(v.capability)]));
  for (const decision of vectors.decisions) {
    const check = decision.check === 'may_read' ? Capability.mayRead : Capability.mayWrite;
    const call = () =>
      check(decision.topic, decision.agent, decision.capabilities.map((name) => byName[name]), Number(decision.now_ms));
    if (decision.result === 'OK') call();
    else assertCode(call, decision.result, decision.name);
  }
});
