// The replica from JS: the shared vectors (tests/vectors/replica.json, election.json) must give
// the very events and state hashes the native build derives, and each coordination pattern works
// through the typed op builders, signed in JS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Identity, Replica, ReplicaOp, electLeader, priority } from 'ants-coord';

const vectors = (name) =>
  JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8'));
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));

function assertCode(fn, code) {
  assert.throws(fn, (error) => error instanceof Error && error.code === code);
}

/** Entry bytes (PROTOCOL.md section 4): 0x01 ‖ u64 seq ‖ u64 relay time ‖ u32 len ‖ op. */
function entryBytes(seq, relayTimeMs, op) {
  const out = Buffer.alloc(21 + op.length);
  out[0] = 1;
  out.writeBigUInt64BE(BigInt(seq), 1);
  out.writeBigUInt64BE(BigInt(relayTimeMs), 9);
  out.writeUInt32BE(op.length, 17);
  out.set(op, 21);
  return new Uint8Array(out);
}

/** A relay in miniature: signs with per-author counters and numbers entries. */
class Log {
  constructor(topic, startMs) {
    this.topic = topic;
    this.nowMs = startMs;
    this.entries = [];
    this.counters = new Map();
  }
  wait(ms) {
    this.nowMs += ms;
    return this;
  }
  push(identity, kind, body) {
    const counter = this.counters.get(identity.agentId) ?? 0;
    this.counters.set(identity.agentId, counter + 1);
    const op = identity.signOp({ topic: this.topic, kind, counter, timeMs: this.nowMs, body });
    const entry = entryBytes(this.entries.length, this.nowMs, op);
    this.entries.push(entry);
    return entry;
  }
}

const agent = (n) => Identity.fromSeed(new Uint8Array(32).fill(n));
const T0 = 1_700_000_000_000;

test('every vector scenario gives the native events and state hashes', () => {
  const { scenarios } = vectors('replica.json');
  assert.ok(scenarios.length >= 4);
  for (const scenario of scenarios) {
    const replica = new Replica(scenario.topic, unhex(scenario.config));
    let midway;
    scenario.entries.forEach((step, i) => {
      const events = replica.apply(unhex(step.entry));
      assert.deepEqual(events, step.events, `${scenario.name} seq ${step.seq}`);
      assert.equal(replica.stateHash(), step.stateHash, `${scenario.name} seq ${step.seq}`);
      if (midway) midway.apply(unhex(step.entry));
      if (i === Math.floor(scenario.entries.length / 2)) midway = Replica.restore(replica.snapshot());
    });
    assert.equal(replica.stateHash(), scenario.final.stateHash);
    assert.equal(hex(replica.snapshot()), scenario.final.snapshot);
    assert.equal(midway.stateHash(), scenario.final.stateHash, 'restored midway');
    assert.deepEqual(replica.supply(), scenario.final.supply);
    for (const [id, balance] of Object.entries(scenario.final.balances)) {
      assert.equal(replica.balance(id), balance);
    }
  }
});

test('the builders re-create every vector body byte for byte', () => {
  for (const scenario of vectors('replica.json').scenarios) {
    for (const step of scenario.entries) {
      const entry = unhex(step.entry);
      const opLen = Buffer.from(entry).readUInt32BE(17);
      // The op: version, author (32), topic, kind, counter, time, deps, then the body.
      const op = Buffer.from(entry.subarray(21, 21 + opLen));
      let at = 33;
      at += 1 + op[at];
      at += 1 + op[at];
      at += 16;
      at += 1 + 32 * op[at];
      const body = new Uint8Array(op.subarray(at + 4, at + 4 + op.readUInt32BE(at)));
      if (step.events.some((e) => e.code === 'MALFORMED_BODY')) {
        // A deliberately malformed body (scenario malformed-bodies): the decoder refuses it too.
        assert.throws(() => ReplicaOp.decode(step.kind, body), `${scenario.name} seq ${step.seq}`);
        continue;
      }
      let decoded;
      try {
        decoded = ReplicaOp.decode(step.kind, body);
      } catch (error) {
        // doc.update is not a replica body.
        assert.equal(error.code, 'BAD_KIND', error.message);
        continue;
      }
      assert.equal(decoded.kind, step.kind);
      assert.equal(hex(ReplicaOp.encode(decoded)), hex(body), `${scenario.name} ${step.kind}`);
    }
  }
});

test('every invalid config vector is refused with its code', () => {
  const { invalidConfigs } = vectors('replica.json');
  assert.ok(invalidConfigs.length >= 10);
  for (const c of invalidConfigs) assertCode(() => new Replica('a', unhex(c.config)), c.code);
});

test('election vectors: priorities, rankings, weighted rankings', () => {
  const v = vectors('election.json');
  const ids = v.candidates.map((c) => c.agentId);
  const weights = v.candidates.map((c) => c.weight);
  for (const w of v.windows) {
    for (const s of w.standings) assert.equal(priority(s.agentId, v.topic, w.window), s.priority);
    const plain = electLeader(ids, v.topic, w.nowMs, v.windowMs);
    assert.deepEqual(plain.ranking, w.ranking);
    assert.equal(plain.leader, w.leader);
    assert.equal(plain.window, w.window);
    assert.equal(plain.endsAtMs, w.endsAtMs);
    const weighted = electLeader(ids, v.topic, w.nowMs, v.windowMs, weights);
    assert.deepEqual(weighted.ranking, w.weightedRanking);
    assert.equal(weighted.leader, w.weightedLeader);
    // Packed ids give the same answer (named by hex).
    const packed = new Uint8Array(Buffer.concat(ids.map((id) => Buffer.from(id, 'hex'))));
    assert.deepEqual(electLeader(packed, v.topic, w.nowMs, v.windowMs, weights, 3).ranking,
      w.weightedRanking.slice(0, 3));
  }
  for (const c of v.prefixCases) assert.equal(priority(c.agentId, c.topic, c.window), c.priority);
  assertCode(() => electLeader([], v.topic, 0, 1000), 'NO_CANDIDATES');
  assertCode(() => electLeader(ids, v.topic, 0, 0), 'BAD_INPUT');
  assertCode(() => electLeader(['XYZ'], v.topic, 0, 1000), 'BAD_INPUT');
  assertCode(() => electLeader(ids, v.topic, 0, 1000, [1]), 'BAD_INPUT');
});

test('election is fair: equal candidates share windows, weight 2 leads twice as often', () => {
  const ids = [1, 2, 3, 4].map((n) => agent(n).agentId);
  const wins = new Map(ids.map((id) => [id, 0]));
  const windows = 8000;
  for (let w = 0; w < windows; w++) {
    const { leader } = electLeader(ids, 'fair', w * 1000, 1000, undefined, 1);
    wins.set(leader, wins.get(leader) + 1);
  }
  for (const count of wins.values()) assert.ok(Math.abs(count - windows / 4) < 300, `${count}`);
  let heavy = 0;
  for (let w = 0; w < windows; w++) {
    heavy += electLeader(ids.slice(0, 3), 'fair', w * 1000, 1000, [2, 1, 1], 1).leader === ids[0];
  }
  assert.ok(Math.abs(heavy - windows / 2) < 300, `${heavy}`);
});

test('double-booked slot: the later claim is compensated', () => {
  const [alice, bob] = [agent(1), agent(2)];
  const log = new Log('meetings', T0);
  const replica = new Replica('meetings', { defaultLeaseMs: 60_000 });
  const slot = 'room-4/2026-11-24T10:00';
  const compensations = [];
  replica.onCompensation('claim', (event) => compensations.push(event));
  replica.onCompensation('task.post', () => assert.fail('only claim handlers run'));
  for (const [who, wait] of [[alice, 0], [bob, 5]]) {
    replica.apply(log.wait(wait).push(who, 'claim', ReplicaOp.claim({ resource: slot })));
  }
  assert.equal(replica.claimHolder(slot), alice.agentId);
  assert.equal(compensations.length, 1);
  assert.deepEqual(
    { loser: compensations[0].loser, winner: compensations[0].winner, w: compensations[0].winningSeq, l: compensations[0].losingSeq, reason: compensations[0].reason },
    { loser: bob.agentId, winner: alice.agentId, w: 0, l: 1, reason: 'conflict' },
  );
  replica.offCompensation('claim');
  replica.apply(log.wait(5).push(bob, 'claim', ReplicaOp.claim({ resource: slot })));
  assert.equal(compensations.length, 1, 'no handler after offCompensation');
});

test('a compensation handler may read, apply to and register handlers on its replica', () => {
  const [alice, bob] = [agent(1), agent(2)];
  const log = new Log('meetings', T0);
  const replica = new Replica('meetings', { defaultLeaseMs: 60_000 });
  const slot = 'room-4/2026-11-24T11:00';
  const seen = [];
  replica.onCompensation('claim', (event) => {
    // The entry is applied before its handlers run: what they read already has it.
    seen.push({ losingSeq: event.losingSeq, holder: replica.claimHolder(slot), next: replica.nextSeq });
    if (event.losingSeq === 1) {
      // Registered now, called from the next compensation on (not for this one).
      replica.onCompensation('claim', () => seen.push('registered in a handler'));
      // The loser's application acts at once: here it applies the next entry of the topic.
      replica.apply(log.wait(1).push(bob, 'claim.release', ReplicaOp.release({ resource: slot })));
    }
  });
  replica.apply(log.push(alice, 'claim', ReplicaOp.claim({ resource: slot })));
  replica.apply(log.wait(5).push(bob, 'claim', ReplicaOp.claim({ resource: slot })));
  assert.deepEqual(seen, [{ losingSeq: 1, holder: alice.agentId, next: 2 }]);
  assert.equal(replica.nextSeq, 3, 'the entry applied inside the handler counts');
  replica.apply(log.wait(5).push(bob, 'claim', ReplicaOp.claim({ resource: slot })));
  assert.deepEqual(seen.slice(1), [{ losingSeq: 3, holder: alice.agentId, next: 4 }, 'registered in a handler']);
});

test('free() from a handler throws BAD_INPUT; the replica is freed once apply returns', () => {
  const [alice, bob] = [agent(1), agent(2)];
  const log = new Log('meetings', T0);
  const replica = new Replica('meetings', { defaultLeaseMs: 60_000 });
  const slot = 'room-4/2026-11-24T12:00';
  let thrown;
  replica.onCompensation('claim', () => {
    try {
      replica.free();
    } catch (error) {
      thrown = error;
    }
  });
  replica.apply(log.push(alice, 'claim', ReplicaOp.claim({ resource: slot })));
  const events = replica.apply(log.wait(5).push(bob, 'claim', ReplicaOp.claim({ resource: slot })));
  assert.equal(events.filter((e) => e.type === 'compensation').length, 1, 'apply still returns');
  assert.equal(thrown?.name, 'AntsCoordError');
  assert.equal(thrown?.code, 'BAD_INPUT');
  assert.match(thrown.message, /freed when that call returns/);
  assertCode(() => replica.claimHolder(slot), 'BAD_INPUT');
});

test('stakes 10 vs 15: override and refund; completion pays stake and reward; failure slashes', () => {
  const [issuer, poster, alice, bob] = [agent(9), agent(8), agent(1), agent(2)];
  const log = new Log('tasks', T0);
  const replica = new Replica('tasks', { issuers: [issuer.agentId], slashPolicy: 'burn' });
  const apply = (who, kind, body) => replica.apply(log.push(who, kind, body));
  for (const [who, amount] of [[poster, 100], [alice, 50], [bob, 50]]) {
    apply(issuer, 'mint', ReplicaOp.mint({ to: who.agentId, amount }));
  }
  apply(poster, 'task.post', ReplicaOp.taskPost({ task: 't', reward: 40, deadlineMs: T0 + 3_600_000 }));
  apply(alice, 'claim', ReplicaOp.claim({ resource: 't', stake: 10 }));
  const events = apply(bob, 'claim', ReplicaOp.claim({ resource: 't', stake: 15n }));
  const comp = events.find((e) => e.type === 'compensation');
  assert.equal(comp.reason, 'outbid');
  assert.equal(comp.loser, alice.agentId);
  assert.equal(comp.refunded, 10);
  assert.equal(replica.balance(alice.agentId), 50);
  assert.equal(replica.balance(bob.agentId), 35);
  const done = apply(poster, 'claim.complete', ReplicaOp.complete({ resource: 't' }));
  assert.deepEqual([done[0].type, done[0].refunded, done[0].reward], ['completed', 15, 40]);
  assert.equal(replica.balance(bob.agentId), 90);

  apply(poster, 'task.post', ReplicaOp.taskPost({ task: 'u', reward: 5, deadlineMs: T0 + 3_600_000 }));
  apply(alice, 'claim', ReplicaOp.claim({ resource: 'u', stake: 12 }));
  const failed = apply(alice, 'claim.fail', ReplicaOp.fail({ resource: 'u' }));
  assert.deepEqual([failed[0].type, failed[0].slashed, failed[0].slashedTo], ['failed', 12, 'burned']);
  const supply = replica.supply();
  assert.equal(supply.burned, 12);
  assert.equal(supply.circulating + supply.escrowed, supply.minted - supply.burned);
  const broke = apply(alice, 'transfer', ReplicaOp.transfer({ to: bob.agentId, amount: 1000 }));
  assert.equal(broke[0].code, 'INSUFFICIENT_BALANCE');
});

/** The vector file's recovery scenarios, re-signed in JS (tests/replica_vectors.rs). */
function recovery(approvers, veto) {
  const [issuer, alice, newKey] = [agent(9), agent(1), agent(50)];
  const guardians = [10, 11, 12, 13, 14, 15, 16].map(agent);
  const log = new Log('ants/recovery-vectors', T0);
  const replica = new Replica(log.topic, { issuers: [issuer.agentId], recoveryDelayMs: 60_000 });
  const apply = (who, kind, body) => replica.apply(log.push(who, kind, body));
  apply(issuer, 'mint', ReplicaOp.mint({ to: alice.agentId, amount: 30 }));
  log.wait(5);
  const set = apply(alice, 'guardians.set', ReplicaOp.guardiansSet({ guardians: guardians.map((g) => g.agentId) }));
  assert.equal(set[0].threshold, 5);
  const ask = { agent: alice.agentId, newKey: newKey.agentId };
  log.wait(5);
  const events = apply(guardians[0], 'recovery.request', ReplicaOp.recoveryRequest(ask));
  for (const g of guardians.slice(1, approvers)) {
    log.wait(5);
    events.push(...apply(g, 'recovery.approve', ReplicaOp.recoveryApprove(ask)));
  }
  if (veto) {
    log.wait(5);
    events.push(...apply(alice, 'recovery.veto', ReplicaOp.recoveryVeto({ newKey: newKey.agentId })));
  }
  log.wait(60_000);
  const old = apply(alice, 'transfer', ReplicaOp.transfer({ to: issuer.agentId, amount: 1 }));
  log.wait(5);
  const fresh = apply(newKey, 'transfer', ReplicaOp.transfer({ to: issuer.agentId, amount: 2 }));
  return { replica, events, old, fresh, alice, newKey, log };
}

/** The JS-signed scenario is the vector scenario, entry for entry, and ends in its state. */
function sameAsVector(name, { replica, log }) {
  const vector = vectors('replica.json').scenarios.find((s) => s.name === name);
  assert.deepEqual(log.entries.map(hex), vector.entries.map((e) => e.entry), name);
  assert.equal(replica.stateHash(), vector.final.stateHash, name);
}

test('5 of 7 guardians rotate a key; the old key is refused afterwards', () => {
  const run = recovery(5, false);
  const { replica, events, old, fresh, alice, newKey } = run;
  assert.ok(events.some((e) => e.type === 'recoveryScheduled'));
  assert.equal(old[0].type, 'keyRotated');
  assert.equal(old[1].code, 'KEY_ROTATED');
  assert.equal(fresh[0].type, 'transferred');
  assert.equal(fresh[0].from, alice.agentId, 'the new key spends as alice');
  assert.equal(replica.currentKey(alice.agentId), newKey.agentId);
  assert.equal(replica.balance(newKey.agentId), 28);
  sameAsVector('recovery-5-of-7', run);
});

test('4 of 7 do not; a veto inside the delay stops 5 of 7', () => {
  for (const [approvers, veto, name] of [[4, false, 'recovery-4-of-7'], [5, true, 'recovery-veto']]) {
    const run = recovery(approvers, veto);
    assert.equal(run.events.some((e) => e.type === 'recoveryVetoed'), veto);
    assert.equal(run.old[0].type, 'transferred');
    assert.equal(run.replica.currentKey(run.alice.agentId), run.alice.agentId);
    sameAsVector(name, run);
  }
});

test('bad input and refused entries carry codes and change nothing', () => {
  const alice = agent(1);
  const replica = new Replica('a');
  const before = replica.stateHash();
  const other = new Log('b', T0);
  assertCode(() => replica.apply(other.push(alice, 'post', ReplicaOp.post({ text: 'x' }))), 'WRONG_TOPIC');
  const log = new Log('a', T0);
  log.push(alice, 'post', ReplicaOp.post({ text: '0' }));
  assertCode(() => replica.apply(log.push(alice, 'post', ReplicaOp.post({ text: '1' }))), 'OUT_OF_ORDER');
  assert.equal(replica.stateHash(), before);
  const forged = log.entries[0].slice();
  forged[forged.length - 1] ^= 1;
  assertCode(() => replica.apply(forged), 'BAD_SIGNATURE');
  assertCode(() => replica.apply('nope'), 'BAD_INPUT');
  assertCode(() => new Replica('a', { bogus: 1 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: -1 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.mint({ to: 'not-an-id', amount: 1 }), 'BAD_AGENT_ID');
  assertCode(() => ReplicaOp.decode('doc.update', new Uint8Array([1])), 'BAD_KIND');
  assertCode(() => Replica.restore(new Uint8Array([1, 2, 3])), 'MALFORMED');
  const round = ReplicaOp.decode('claim', ReplicaOp.claim({ resource: 'r', stake: 3, fence: 9 }));
  assert.deepEqual(round, { kind: 'claim', resource: 'r', leaseMs: 0, stake: 3, fence: 9 });
});

test("one value convention (pkg-config/README.md): plain objects, and U64 a BigInt past 2^53", () => {
  const [issuer, alice] = [agent(9), agent(1)];
  const log = new Log('big', T0);
  const replica = new Replica('big', { issuers: [issuer.agentId] });
  const apply = (who, kind, body) => replica.apply(log.push(who, kind, body));
  const big = 2n ** 60n;
  apply(issuer, 'mint', ReplicaOp.mint({ to: alice.agentId, amount: big }));
  const [claimed] = apply(alice, 'claim', ReplicaOp.claim({ resource: 'r', stake: big }));
  assert.equal(claimed.stake, big);
  assert.equal(claimed.seq, 1, 'a safe integer stays a number');
  const claim = replica.claim('r');
  assert.equal(claim.stake, big, 'Replica.claim: a BigInt, not an error');
  assert.equal(claim.seq, 1);
  assert.equal(typeof claim.leaseUntilMs, 'number');
  assert.deepEqual(replica.supply(), { minted: big, burned: 0, circulating: 0, escrowed: big });
  for (const record of [claimed, claim, replica.supply(), ...replica.feed()]) {
    assert.equal(Object.getPrototypeOf(record), Object.prototype, JSON.stringify(Object.keys(record)));
  }
  assert.equal(replica.nextSeq, 2);
});

test('an op object with a field its kind does not have, or without a kind, is BAD_INPUT', () => {
  assertCode(() => ReplicaOp.encode({ kind: 'post', text: 'x', stake: 1 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'slot', lease: 5 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.taskPost({ task: 't', deadlineMs: 1, deadline: 1 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.encode({ kind: 'no.such.kind' }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.encode({ text: 'no kind' }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.encode('post'), 'BAD_INPUT');
  // Every optional field given, and read back with the kind first.
  const body = ReplicaOp.claim({ resource: 'slot', leaseMs: 5, stake: 2n ** 60n, fence: 3 });
  const decoded = ReplicaOp.decode('claim', body);
  assert.deepEqual(Object.keys(decoded), ['kind', 'resource', 'leaseMs', 'stake', 'fence']);
  assert.deepEqual(ReplicaOp.encode(decoded), body);
});

test('records read field by field: absent optional fields default, null or a wrong type is BAD_INPUT', () => {
  const alice = agent(1);
  // Optional fields absent, or null where the field is nullable.
  assert.deepEqual(
    ReplicaOp.decode('claim', ReplicaOp.claim({ resource: 'r', fence: null })),
    { kind: 'claim', resource: 'r', leaseMs: 0, stake: 0 },
  );
  assert.deepEqual(ReplicaOp.decode('leader.act', ReplicaOp.leaderAct({ window: 7 })), {
    kind: 'leader.act', window: 7, payload: new Uint8Array(0),
  });
  // Bytes as a Uint8Array or an ArrayBuffer, as before.
  const payload = new Uint8Array([1, 2, 3]);
  assert.deepEqual(ReplicaOp.leaderAct({ window: 1, payload: payload.buffer }), ReplicaOp.leaderAct({ window: 1, payload }));
  const draft = { topic: 't', kind: 'post', counter: 0, timeMs: T0, body: ReplicaOp.post({ text: 'x' }) };
  assert.deepEqual(alice.signOp(draft), alice.signOp({ ...draft, body: draft.body.slice().buffer, timeMs: BigInt(T0) }));
  // Required fields missing, null or of the wrong type.
  assertCode(() => ReplicaOp.claim({}), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 5 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: null }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: 1.5 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: 2 ** 53 }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: -1n }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: 2n ** 64n }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.claim({ resource: 'r', stake: '1' }), 'BAD_INPUT');
  assert.equal(ReplicaOp.decode('claim', ReplicaOp.claim({ resource: 'r', stake: 2n ** 64n - 1n })).stake, 2n ** 64n - 1n);
  assertCode(() => ReplicaOp.taskPost({ task: 't' }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.guardiansSet({}), 'BAD_INPUT');
  assertCode(() => ReplicaOp.guardiansSet({ guardians: [1] }), 'BAD_INPUT');
  assertCode(() => ReplicaOp.leaderAct({ window: 1, payload: [1, 2] }), 'BAD_INPUT');
  assertCode(() => alice.signOp({ ...draft, counter: undefined }), 'BAD_INPUT');
  assertCode(() => alice.signOp({ ...draft, body: 'x' }), 'BAD_INPUT');
  assertCode(() => alice.signOp({ ...draft, deps: null }), 'BAD_INPUT');
  assertCode(() => alice.signOp({ ...draft, time_ms: T0 }), 'BAD_INPUT');
  // A config: every field optional; candidates are { agentId, weight? } records.
  const config = { issuers: [alice.agentId], candidates: [{ agentId: alice.agentId }], feedCapacity: 3 };
  assert.equal(new Replica('c', config).nextSeq, 0);
  assert.equal(new Replica('c', { slashPolicy: null, electionMode: null }).nextSeq, 0);
  assertCode(() => new Replica('c', { candidates: [{ agentId: alice.agentId, weight: 1, extra: 1 }] }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { candidates: [{ weight: 1 }] }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { candidates: 'nobody' }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { issuers: null }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { feedCapacity: -1 }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { feedCapacity: 2 ** 32 }), 'BAD_INPUT');
  assertCode(() => new Replica('c', { defaultLeaseMs: 'soon' }), 'BAD_INPUT');
});
