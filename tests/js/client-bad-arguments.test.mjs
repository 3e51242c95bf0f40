// Garbage arguments to the relay client, `ants-coord/client`, against real relays on 127.0.0.1:
// every public method of a connected RelayClient, of a Subscription it returned and of a
// RelayGroup, and the static `RelayClient.connect` / `RelayGroup.connect`. Each call must return,
// throw, or settle within CALL_MS; what it throws or rejects with must be an AntsCoordError (an
// Error of that `name`) whose `code` is in README's "## Error codes" table or is one of the
// client's own CONNECT_TIMEOUT and CLOSED.
// Never a code-less TypeError, never a wasm trap (`WebAssembly.RuntimeError`), never a promise
// left pending for garbage, and a synchronous throw changes nothing (`exportState()`). After the
// sweep the same client and group still publish and deliver, neither reported misbehaviour or an
// error about the honest relays, and both relays still answer /healthz. `close` comes last, and
// then every method once more: on a closed client nothing may wait forever.
//   ANTS_RELAY_BIN=$PWD/target/debug/ants-relay node --test tests/js/client-bad-arguments.test.mjs
//
// The methods are enumerated at run time from the prototypes of the live objects, so a new method
// is swept once it has an entry in VALID (the sweep fails until it has). Skipped in the sweep:
// `constructor`; `close` of the client and of the group, and a Subscription's `unsubscribe`,
// which end their receiver (exercised at the end instead); a Subscription's `subscribed`,
// `settle`, `push` and `end`, the hooks the client drives (not in client.d.ts); and
// `Symbol.asyncIterator` (a symbol, never listed; the iterators the sweep opens are returned).
// Private `#` members are not properties, so never listed. Getters (`relayId`, `agentId`,
// `clients`) are read once each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { WebSocket } from 'ws';
import { Capability, Identity } from 'ants-coord';
import { RelayClient, RelayGroup } from 'ants-coord/client';

import { GARBAGE, freePort, readmeErrorCodes, startRelay } from './helpers.mjs';

/** The codes of README's "## Error codes" table, and the client's own two. */
const CODES = readmeErrorCodes();
const CLIENT_CODES = new Set([...CODES, 'CONNECT_TIMEOUT', 'CLOSED']);

/** How long one call's promise may take to settle. */
const CALL_MS = 5_000;
/** connectTimeoutMs of the connects that are expected to fail. */
const SHORT_MS = 300;

/** Garbage values as [label, make]: made fresh for every call, so no call sees another's. */
const VALUES = [
  ...GARBAGE,
  ["'x'.repeat(300_000)", () => 'x'.repeat(300_000)],
  ['new Uint8Array(300_000)', () => new Uint8Array(300_000)],
  // Options-shaped garbage, for subscribe(topic, options).
  ["{ from: 'x' }", () => ({ from: 'x' })],
  ['{ from: -1 }', () => ({ from: -1 })],
  ["{ replica: 'x' }", () => ({ replica: 'x' })],
  ['{ config: 5 }', () => ({ config: 5 })],
  ['{ onEntry: 5 }', () => ({ onEntry: 5 })],
  ["{ onEvent: 'x' }", () => ({ onEvent: 'x' })],
  ["{ expectAll: 'x' }", () => ({ expectAll: 'x' })],
  ['{ maxQueuedBytes: 0 }', () => ({ maxQueuedBytes: 0 })],
];
/** The plain values (no options-shaped ones): for urls, identities and option fields. */
const PLAIN = VALUES.slice(0, GARBAGE.length + 2);
const TEXT = VALUES.find(([label]) => label === "'x'");

/** A valid argument as [label, make]. */
const ok = (value) => [typeof value === 'string' ? `'${value}'` : String(value), () => value];
const FN = ['() => {}', () => () => {}];

/** Valid arguments per method: `prefixes` are followed by each garbage value in the sweep (to
 * reach the checks of later parameters); `args` is one valid call, made again after `close`. */
const VALID = {
  client: {
    ready: { args: [] },
    on: {
      prefixes: ['status', 'misbehaviour', 'error', 'acknowledged', 'verified', 'subscribed'].map(
        (type) => [ok(type)],
      ),
      args: [ok('status'), FN],
    },
    onCompensation: { prefixes: [[ok('claim')], [ok('claim'), FN]], args: [ok('claim'), FN] },
    subscribe: { prefixes: [[ok('t')]], args: [ok('t')] },
    unsubscribe: { args: [ok('t')] },
    publish: { prefixes: [[ok('t')], [ok('t'), ok('note')]], args: [ok('t'), ok('note'), ok('b')] },
    publishOp: { prefixes: [[ok('t')], [ok('t'), ok('note')]], args: [ok('t'), ok('note'), ok('b')] },
    publishSigned: { args: [['a signed op', () => signedOp]] },
    gossip: { args: [ok('t')] },
    receiveGossip: { args: [['new Uint8Array(8)', () => new Uint8Array(8)]] },
    requestCheckpoint: { args: [ok('t')] },
    cursor: { args: [ok('t')] },
    claimHolder: { prefixes: [[ok('t')]], args: [ok('t'), ok('r')] },
    leader: { prefixes: [[ok('t')]], args: [ok('t')] },
    exportState: { args: [] },
    // Only after close: a valid capability reconnects a live client.
    addCapability: { args: [['a capability', () => capability]] },
    close: { args: [] },
  },
  subscription: {
    delivered: { args: [ok(0)] },
    caughtUp: { args: [] },
    unsubscribe: { args: [] },
  },
  group: {
    on: { prefixes: ['misbehaviour', 'error', 'status'].map((type) => [ok(type)]), args: [ok('status'), FN] },
    subscribe: { prefixes: [[ok('t')]], args: [ok('t')] },
    publish: { prefixes: [[ok('t')], [ok('t'), ok('note')]], args: [ok('t'), ok('note'), ok('b')] },
    exportStates: { args: [] },
    close: { args: [] },
  },
};
/** Members that end their receiver (exercised after the sweep) or that only the client calls. */
const SKIP = {
  client: new Set(['constructor', 'close']),
  subscription: new Set(['constructor', 'unsubscribe', 'subscribed', 'settle', 'push', 'end', 'refused']),
  group: new Set(['constructor', 'close']),
};

/** Argument tuples of a method: none; each value alone and repeated to 2 and 3 arguments; each
 * value after one and two plausible strings; and each value after every valid prefix. */
function tuplesFor(prefixes = []) {
  return [
    [],
    ...[1, 2, 3].flatMap((count) => VALUES.map((value) => Array(count).fill(value))),
    ...VALUES.flatMap((value) => [
      [TEXT, value],
      [TEXT, TEXT, value],
    ]),
    ...prefixes.flatMap((prefix) => VALUES.map((value) => [...prefix, value])),
  ];
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const seed = (n) => new Uint8Array(32).fill(n);
const labelOf = (name, tuple) => `${name}(${tuple.map(([text]) => text).join(', ')})`;
const isThenable = (value) => typeof value?.then === 'function';

/** What is wrong with a thrown or rejected value, or null when it is a proper coded error. */
function problem(error) {
  if (error instanceof WebAssembly.RuntimeError) return `TRAPPED (${error})`;
  if (!(error instanceof Error)) return `threw a non-Error: ${String(error)}`;
  if (error.code === undefined) return `threw ${error.name} without a code: ${error.message}`;
  if (error.name !== 'AntsCoordError') return `threw ${error.name} (${error.code}), not an AntsCoordError`;
  if (!CLIENT_CODES.has(error.code)) return `threw code ${error.code}, not in README: ${error.message}`;
  return null;
}

/** `promise` settled within `ms`: { value } or { rejected }, else { pending: true }. */
function within(promise, ms = CALL_MS) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ pending: true }), ms);
  });
  const settled = Promise.resolve(promise).then(
    (value) => ({ value }),
    (error) => ({ rejected: error }),
  );
  return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
}

// Failures of the running test; also what the process reports while a call runs (an exception
// thrown from a callback, a rejection nobody handles, a timer Node clamped to 1 ms).
let failures = [];
let current = '(between calls)';
const fail = (message) => failures.push(message);
process.on('uncaughtException', (error) => fail(`${current}: uncaught ${error?.name}: ${error?.message}`));
process.on('unhandledRejection', (error) => fail(`${current}: unhandled rejection ${error?.name}: ${error?.message}`));
process.on('warning', (warning) => {
  if (warning.name === 'TimeoutOverflowWarning') fail(`${current}: ${warning.message}`);
});

function assertNoFailures(t, calls) {
  if (calls !== undefined) t.diagnostic(`${calls} calls`);
  const shown = failures.slice(0, 200).join('\n  ');
  const more = failures.length > 200 ? `\n  ... and ${failures.length - 200} more` : '';
  assert.equal(failures.length, 0, `${failures.length} bad calls:\n  ${shown}${more}`);
}

/** Long-lived things a call returned: closed after it, and their closing judged too. */
async function release(label, value) {
  if (value instanceof RelayClient || value instanceof RelayGroup) {
    await judge(`${label} → .close()`, () => value.close());
    return;
  }
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return;
  if (typeof value[Symbol.asyncIterator] === 'function') {
    await judge(`${label} → iterator.return()`, () => value[Symbol.asyncIterator]().return());
    if (typeof value.unsubscribe === 'function') {
      await judge(`${label} → .unsubscribe()`, () => value.unsubscribe());
    }
    return;
  }
  // A result carrying promises (publishOp's { op, receipt }): each must settle like a call's.
  for (const [key, inner] of Object.entries(value)) {
    if (isThenable(inner)) await judge(`${label} → .${key}`, () => inner);
  }
}

/**
 * Runs `call` and judges it: a throw must be coded and leave `fingerprint()` unchanged; a promise
 * must settle within CALL_MS, a rejection coded. Returns { threw } | { rejected } | { value } |
 * { pending }.
 */
async function judge(label, call, fingerprint) {
  current = label;
  const before = fingerprint?.();
  let result;
  try {
    result = call();
  } catch (error) {
    const wrong = problem(error);
    if (wrong) fail(`${label}: ${wrong}`);
    else if (fingerprint && fingerprint() !== before) fail(`${label}: threw ${error.code} but changed the state`);
    return { threw: error };
  }
  if (isThenable(result)) {
    const settled = await within(result);
    if (settled.pending) fail(`${label}: did not settle within ${CALL_MS} ms`);
    else if ('rejected' in settled) {
      const wrong = problem(settled.rejected);
      if (wrong) fail(`${label}: rejected: ${wrong}`);
    } else await release(label, settled.value);
    return settled;
  }
  await release(label, result);
  return { value: result };
}

/** The public members of `receiver` per its prototype: [name, descriptor], SKIP left out. */
function membersOf(kind, receiver) {
  const prototype = Object.getPrototypeOf(receiver);
  return Object.getOwnPropertyNames(prototype)
    .filter((name) => !SKIP[kind].has(name))
    .sort()
    .map((name) => [name, Object.getOwnPropertyDescriptor(prototype, name)]);
}

/** Every method of `receiver` with every tuple; getters once. Returns the number of calls. */
async function sweep(kind, name, receiver, fingerprint) {
  let calls = 0;
  for (const [member, descriptor] of membersOf(kind, receiver)) {
    if (descriptor.get) {
      calls += 1;
      await judge(`get ${name}.${member}`, () => descriptor.get.call(receiver));
    }
    if (typeof descriptor.value !== 'function') continue;
    const valid = VALID[kind][member];
    if (!valid) {
      fail(`${name}.${member}: no valid arguments to sweep it with; add it to VALID.${kind}`);
      continue;
    }
    for (const tuple of tuplesFor(valid.prefixes)) {
      calls += 1;
      const args = tuple.map(([, make]) => make());
      await judge(labelOf(`${name}.${member}`, tuple), () => descriptor.value.apply(receiver, args), fingerprint);
    }
  }
  return calls;
}

// The relays, the swept client (on relay A) and group (on A and B), and what they reported.
let relayA;
let relayB;
let client;
let group;
let signedOp;
let capability;
const reports = { misbehaviour: [], error: [] };

before(async () => {
  [relayA, relayB] = await Promise.all([startRelay(), startRelay()]);
  client = await RelayClient.connect(relayA.ws, Identity.fromSeed(seed(1)), { WebSocket });
  const owner = Identity.fromSeed(seed(4));
  capability = Capability.grant(owner, {
    audience: client.agentId,
    topic: `@${owner.agentId}/notes`,
    rights: ['read'],
    expiresMs: Date.now() + 3_600_000,
  });
  group = await RelayGroup.connect([relayA.ws, relayB.ws], Identity.fromSeed(seed(2)), {
    WebSocket,
    deadlineMs: 1500,
    gossipMs: 200,
  });
  for (const [who, target] of [['client', client], ['group', group]]) {
    target.on('misbehaviour', (event) => reports.misbehaviour.push(`${who}: ${event.code} ${event.detail}`));
    target.on('error', (error) => reports.error.push(`${who}: ${error.code} ${error.message}`));
  }
});

after(async () => {
  for (const target of [client, group]) {
    try {
      target?.close();
    } catch {
      // Reported by the last test; the relays must stop regardless.
    }
  }
  await Promise.all([relayA?.stop(), relayB?.stop()]);
});

test('README lists the error codes the sweep accepts', () => {
  assert.ok(CODES.has('BAD_INPUT') && CODES.size >= 30, [...CODES].join(', '));
  assert.ok(!CODES.has('CONNECT_TIMEOUT') && !CODES.has('CLOSED'), 'the client-only codes');
});

test('RelayClient and Subscription methods refuse garbage with a documented code', async (t) => {
  failures = [];
  const state = () => hex(client.exportState());
  let calls = await sweep('client', 'client', client, state);
  // A Subscription of a topic with entries, so delivered/caughtUp have a cursor to compare.
  await client.publish('sub', 'note', 'one');
  const subscription = client.subscribe('sub');
  calls += await sweep('subscription', 'subscription', subscription, state);
  await release("client.subscribe('sub')", subscription);
  assertNoFailures(t, calls);
});

test('RelayGroup methods refuse garbage with a documented code', async (t) => {
  failures = [];
  const calls = await sweep('group', 'group', group, () => group.exportStates().map(hex).join());
  assertNoFailures(t, calls);
});

/** Judges a connect; `expect(outcome)` may add a stricter rule (a message, or null). */
async function connectCase(label, connect, expect) {
  const outcome = await judge(label, connect);
  const wrong = expect?.(outcome.threw ?? outcome.rejected, outcome);
  if (wrong) fail(`${label}: ${wrong}`);
}

/** A non-string url can never connect: refused at once, not after connectTimeoutMs. */
const mustRefuse = (error) =>
  error?.code === 'BAD_INPUT' ? null : `expected BAD_INPUT, got ${error ? error.code : 'a connection'}`;

/** Option fields that are times in ms: a well-formed one is a number >= 0 (or absent). */
const TIME_OPTIONS = new Set([
  'connectTimeoutMs',
  'tickMs',
  'minBackoffMs',
  'maxBackoffMs',
  'publishTimeoutMs',
  'deadlineMs',
  'gossipMs',
]);
const wellFormedTime = (value) => value === undefined || value === null || (typeof value === 'number' && value >= 0);

/** The rule for a connect to live relays with one option field set to `value` (a group has no
 * `state` and `wait` of its own: it sets them per relay). */
function optionRule(key, value, group = false) {
  return (error) => {
    if (TIME_OPTIONS.has(key) && !wellFormedTime(value)) return mustRefuse(error);
    if (!group && key === 'wait' && value !== undefined && typeof value !== 'boolean') return mustRefuse(error);
    const stateBytes = value == null || value instanceof Uint8Array || value instanceof ArrayBuffer;
    if (!group && key === 'state' && !stateBytes) return mustRefuse(error);
    if (group && key === 'states' && value != null && !Array.isArray(value)) return mustRefuse(error);
    // Only "shuffled" and "listed" are orders; only an array of capabilities' bytes (here: []).
    if (key === 'frontendOrder' && value != null) return mustRefuse(error);
    const noCapabilities = value == null || (Array.isArray(value) && value.length === 0);
    if (key === 'capabilities' && !noCapabilities) return mustRefuse(error);
    // The relays are up: only a timeout that really is that short may time out.
    const short = key === 'connectTimeoutMs' && typeof value === 'number' && value < 100;
    if (error?.code === 'CONNECT_TIMEOUT' && !short) return `timed out against live relays: ${error.message}`;
    return null;
  };
}

test('RelayClient.connect and RelayGroup.connect refuse garbage with a documented code', async (t) => {
  failures = [];
  let calls = 0;
  const identity = () => Identity.fromSeed(seed(3));
  const base = { WebSocket, connectTimeoutMs: 4_000 };
  const closedUrl = `ws://127.0.0.1:${await freePort()}/ws`;
  const live = [relayA.ws, relayB.ws];

  calls += 1;
  await connectCase('RelayClient.connect()', () => RelayClient.connect());
  for (const [text, make] of PLAIN) {
    calls += 3;
    await connectCase(
      `RelayClient.connect(${text}, identity, { WebSocket, connectTimeoutMs: ${SHORT_MS} })`,
      () => RelayClient.connect(make(), identity(), { WebSocket, connectTimeoutMs: SHORT_MS }),
      typeof make() === 'string' ? undefined : mustRefuse,
    );
    await connectCase(`RelayClient.connect(relayA, ${text}, { WebSocket })`, () =>
      RelayClient.connect(relayA.ws, make(), base),
    );
    await connectCase(`RelayClient.connect(relayA, identity, ${text})`, () =>
      RelayClient.connect(relayA.ws, identity(), make()),
    );
  }
  const keys = ['WebSocket', 'state', 'wait', 'connectTimeoutMs', 'tickMs', 'minBackoffMs', 'maxBackoffMs', 'publishTimeoutMs'];
  for (const key of [...keys, 'frontendOrder', 'capabilities']) {
    for (const [text, make] of PLAIN) {
      calls += 1;
      await connectCase(
        `RelayClient.connect(relayA, identity, { WebSocket, connectTimeoutMs: 4000, ${key}: ${text} })`,
        () => RelayClient.connect(relayA.ws, identity(), { ...base, [key]: make() }),
        optionRule(key, make()),
      );
    }
  }
  // A well-formed url where nothing listens: the one garbage-free way to CONNECT_TIMEOUT.
  calls += 1;
  await connectCase(
    'RelayClient.connect(closed port, identity, { WebSocket, connectTimeoutMs: 300 })',
    () => RelayClient.connect(closedUrl, identity(), { WebSocket, connectTimeoutMs: SHORT_MS }),
    (error) => (error?.code === 'CONNECT_TIMEOUT' ? null : `expected CONNECT_TIMEOUT, got ${error?.code}`),
  );

  calls += 1;
  await connectCase('RelayGroup.connect()', () => RelayGroup.connect());
  const urlLists = [
    ...PLAIN.map(([text, make]) => [text, make]),
    ['[relayA]', () => [relayA.ws]],
    ['[relayA, relayA]', () => [relayA.ws, relayA.ws]],
    ...PLAIN.map(([text, make]) => [`[relayA, ${text}]`, () => [relayA.ws, make()]]),
    ['17 × relayA', () => Array(17).fill(relayA.ws)],
  ];
  for (const [text, make] of urlLists) {
    calls += 1;
    const urls = make();
    const nonString = Array.isArray(urls) && urls.some((url) => typeof url !== 'string');
    await connectCase(
      `RelayGroup.connect(${text}, identity, { WebSocket, connectTimeoutMs: ${SHORT_MS} })`,
      () => RelayGroup.connect(make(), identity(), { WebSocket, connectTimeoutMs: SHORT_MS }),
      nonString ? mustRefuse : undefined,
    );
  }
  calls += 1;
  await connectCase(
    'RelayGroup.connect([relayA, closed port], identity, { WebSocket, connectTimeoutMs: 300, minLive: 2 })',
    () => RelayGroup.connect([relayA.ws, closedUrl], identity(), { WebSocket, connectTimeoutMs: SHORT_MS, minLive: 2 }),
    (error) => (error?.code === 'CONNECT_TIMEOUT' ? null : `expected CONNECT_TIMEOUT, got ${error?.code}`),
  );
  for (const [text, make] of PLAIN) {
    calls += 2;
    await connectCase(`RelayGroup.connect([relayA, relayB], ${text}, { WebSocket })`, () =>
      RelayGroup.connect(live, make(), base),
    );
    await connectCase(`RelayGroup.connect([relayA, relayB], identity, ${text})`, () =>
      RelayGroup.connect(live, identity(), make()),
    );
  }
  const groupKeys = ['WebSocket', 'state', 'connectTimeoutMs', 'tickMs', 'minBackoffMs', 'maxBackoffMs', 'publishTimeoutMs'];
  for (const key of [...groupKeys, 'minLive', 'deadlineMs', 'gossipMs', 'states']) {
    for (const [text, make] of PLAIN) {
      calls += 1;
      await connectCase(
        `RelayGroup.connect([relayA, relayB], identity, { WebSocket, connectTimeoutMs: 4000, ${key}: ${text} })`,
        () => RelayGroup.connect(live, identity(), { ...base, [key]: make() }),
        optionRule(key, make(), true),
      );
    }
  }
  assertNoFailures(t, calls);
});

test('after the sweep the client and the group still work, and nothing was reported', async () => {
  failures = [];
  current = 'after the sweep';
  // The client: publish, get the receipt, see the entry in a subscription.
  const feed = client.subscribe('after-sweep');
  const published = client.publishOp('after-sweep', 'note', 'still alive');
  signedOp = published.op;
  const receipt = await within(published.receipt);
  assert.ok(receipt.value, `client.publish after the sweep: ${receipt.rejected?.code ?? 'no receipt'}`);
  const iterator = feed[Symbol.asyncIterator]();
  let seen = false;
  for (let i = 0; i < 100 && !seen; i += 1) {
    const next = await within(iterator.next());
    assert.ok(next.value && !next.value.done, `client.subscribe after the sweep: ${JSON.stringify(next)}`);
    seen = next.value.value.type === 'entry' && next.value.value.opId === receipt.value.opId;
  }
  assert.ok(seen, 'the client saw its own op');
  await iterator.return();
  client.unsubscribe('after-sweep');

  // The group: one receipt per relay, the entry delivered once.
  const entries = [];
  group.subscribe('group-after-sweep', { onEntry: (entry) => entries.push(entry) });
  const receipts = await within(group.publish('group-after-sweep', 'note', 'still alive'));
  assert.equal(receipts.value?.length, 2, `group.publish after the sweep: ${receipts.rejected?.code ?? 'pending'}`);
  const deadline = Date.now() + CALL_MS;
  while (entries.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    entries.map((entry) => entry.opId),
    [receipts.value[0].opId],
    'the group delivered its op once',
  );

  for (const relay of [relayA, relayB]) {
    const health = await fetch(`${relay.origin}/healthz`);
    assert.equal(health.status, 200, `${relay.origin}/healthz`);
  }
  assert.deepEqual(reports.misbehaviour, [], 'misbehaviour reported about an honest relay');
  assert.deepEqual(reports.error, [], 'errors reported by the client or the group');
  assert.deepEqual(failures, []);
});

test('close ends the client and the group; afterwards every method returns, throws or settles', async (t) => {
  failures = [];
  let calls = 0;
  // Things that wait on the client, made before close: close must end them.
  const subscription = client.subscribe('closing');
  const iterator = subscription[Symbol.asyncIterator]();
  const waiting = {
    'iterator.next()': iterator.next(),
    'subscription.delivered(2**40)': subscription.delivered(2 ** 40),
    'client.ready()': client.ready(),
  };
  calls += 2;
  await judge('client.close()', () => client.close());
  await judge('client.close() again', () => client.close());
  assert.equal(client.status, 'closed');
  for (const [label, promise] of Object.entries(waiting)) {
    calls += 1;
    await judge(`${label}, made before close`, () => promise);
  }
  const afterClose = async (kind, name, receiver) => {
    for (const [member, descriptor] of membersOf(kind, receiver)) {
      if (typeof descriptor.value !== 'function') continue;
      const valid = VALID[kind][member];
      if (!valid) continue; // reported by the sweep
      calls += 1;
      const args = valid.args.map(([, make]) => make());
      await judge(`${labelOf(`${name}.${member}`, valid.args)} after close`, () => descriptor.value.apply(receiver, args));
    }
  };
  SKIP.client.delete('close');
  SKIP.group.delete('close');
  SKIP.subscription.delete('unsubscribe');
  await afterClose('client', 'client', client);
  await afterClose('subscription', 'subscription', subscription);
  // A subscription made on a closed client must not wait forever either.
  const late = client.subscribe('late');
  calls += 3;
  const lateNext = await judge("client.subscribe('late') after close → iterator.next()", () =>
    late[Symbol.asyncIterator]().next(),
  );
  if (lateNext.value && !lateNext.value.done) fail("client.subscribe('late') after close: yielded an item");
  await judge("client.subscribe('late') after close → caughtUp()", () => late.caughtUp());
  await judge("client.subscribe('late') after close → delivered(0)", () => late.delivered(0));

  calls += 2;
  await judge('group.close()', () => group.close());
  await judge('group.close() again', () => group.close());
  await afterClose('group', 'group', group);
  assertNoFailures(t, calls);
});

test('an ended iterator buffers nothing, a second subscribe ends the first, a throwing status handler cannot stop close', async (t) => {
  const own = await RelayClient.connect(relayA.ws, Identity.fromSeed(seed(3)), { WebSocket });
  t.after(() => own.status === 'closed' || own.close());
  const misbehaviour = [];
  own.on('misbehaviour', (event) => misbehaviour.push(`${event.code} ${event.detail}`));
  // Leaving `for await` ends the iterator; the client still follows the topic (its cursor moves)
  // but the ended subscription keeps nothing.
  const first = own.subscribe('lifecycle');
  const iterator = first[Symbol.asyncIterator]();
  await iterator.return();
  const receipt = await own.publish('lifecycle', 'note', 'after the break');
  const second = own.subscribe('lifecycle');
  assert.deepEqual(await first[Symbol.asyncIterator]().next(), { value: undefined, done: true }, 'the first ended');
  await assert.rejects(first.delivered(receipt.seq + 1000), { code: 'CLOSED' }, 'an ended subscription waits for nothing');
  // The second subscription gets what comes after it (what the first already took is not
  // delivered twice to the client's replica, so it may or may not be replayed to the second).
  const later = await own.publish('lifecycle', 'note', 'for the second');
  const feed = second[Symbol.asyncIterator]();
  let item;
  do item = (await feed.next()).value;
  while (!(item.type === 'entry' && item.seq === later.seq));
  // Replaced while a consumer waits on its iterator: the wait ends instead of hanging.
  const replaced = own.subscribe('lifecycle-empty');
  const waitingForEntries = replaced[Symbol.asyncIterator]().next();
  own.subscribe('lifecycle-empty');
  assert.deepEqual(await waitingForEntries, { value: undefined, done: true }, 'the replaced one ended');
  // A status handler that throws: close() still ends everything before the throw reaches its caller.
  const waiting = second.delivered(receipt.seq + 1000);
  own.on('status', (status) => {
    if (status === 'closed') throw new Error('a careless handler');
  });
  assert.throws(() => own.close(), /a careless handler/);
  await assert.rejects(waiting, { code: 'CLOSED' });
  await assert.rejects(own.publish('lifecycle', 'note', 'x'), { code: 'CLOSED' });
  assert.equal(own.status, 'closed');
  assert.deepEqual(misbehaviour, []);
});
