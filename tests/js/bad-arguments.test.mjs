// Garbage arguments to every export of the package: each call must return, or throw a real Error
// named AntsCoordError whose `code` is one of README's "Error codes", and change nothing. Never a
// throw without a code, and never a wasm trap: a Rust panic (panic="abort" makes it a
// `WebAssembly.RuntimeError: unreachable`) or a fault such as "memory access out of bounds", after
// which the module instance may be poisoned for every later call.
//   node --test tests/js/bad-arguments.test.mjs
//
// The callables are enumerated at run time, so a new export is swept without editing this file:
// every function of the module namespace, and for every class its constructor (`new C(...)`), its
// statics and its prototype's methods, getters and setters. Skipped: `free` and wasm-bindgen glue (names
// starting with `__`: `__wrap`, `__destroy_into_raw`), `Symbol.dispose` (a symbol, so never
// listed), and the loaders `default` (`init`) and `initSync`. The relay client
// (`ants-coord/client`) needs a network and is out of scope.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as antsCoord from 'ants-coord';

import { GARBAGE, readmeErrorCodes } from './helpers.mjs';

const { Doc, DocSync, Identity, MerkleLog, RelayComparison, Replica, Session, SignedDoc } =
  antsCoord;

/** The codes of README's "## Error codes" table. */
const CODES = readmeErrorCodes();

const LOADERS = new Set(['default', 'init', 'initSync']);
const isGlue = (name) => name === 'free' || name.startsWith('__');
const isClass = (value) =>
  typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value));

/** Garbage values as [label, make] (helpers' GARBAGE and three more): made fresh for every call. */
const VALUES = [
  ...GARBAGE,
  ['new Uint8Array(100000)', () => new Uint8Array(100000)],
  ['[new Uint8Array(3)]', () => [new Uint8Array(3)]],
  ['{ topic: 5 }', () => ({ topic: 5 })],
];
const [TEXT, ZERO] = ["'x'", '0'].map((label) => VALUES.find(([text]) => text === label));

/** Argument tuples: none; each value alone and repeated to 2, 3 and 4 arguments; and each value
 * after a plausible string (and number), to reach the checks of later parameters. */
const TUPLES = [
  [],
  ...[1, 2, 3, 4].flatMap((count) => VALUES.map((value) => Array(count).fill(value))),
  ...VALUES.flatMap((value) => [
    [TEXT, value],
    [TEXT, ZERO, value],
    [TEXT, TEXT, value, value],
  ]),
];

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const SEED = new Uint8Array(32).fill(7);

/** Receivers built with valid arguments (and a little state, so more paths run), with a
 * fingerprint of their state where they have one: a call that throws must leave it unchanged.
 * A class with instance members but no entry here fails the sweep: add one. */
const RECEIVERS = {
  Doc: {
    make: () => {
      const doc = new Doc({ clientId: 1 });
      doc.insertText('x', 0, 'hello');
      doc.setMap('m', 'k', 1);
      return doc;
    },
    state: (doc) => hex(doc.encodeUpdate()) + doc.rootNames(),
  },
  DocSync: {
    make: () => new DocSync(RECEIVERS.Doc.make()),
    state: (sync) => hex(sync.awarenessMessage()),
  },
  Identity: { make: () => Identity.fromSeed(SEED) },
  MerkleLog: {
    make: () => {
      const log = new MerkleLog();
      for (let i = 0; i < 3; i++) log.append(new Uint8Array([i]));
      return log;
    },
    state: (log) => hex(log.root()),
  },
  RelayComparison: { make: () => new RelayComparison(2, 100, false), state: (c) => c.size },
  Replica: { make: () => new Replica('x', undefined), state: (replica) => replica.stateHash() },
  Session: {
    make: () => {
      const session = new Session(Identity.fromSeed(SEED));
      session.subscribe('x', 0, true, undefined);
      return session;
    },
    state: (session) => hex(session.exportState()),
  },
  SignedDoc: { make: () => new SignedDoc('x', null), state: (doc) => hex(doc.compact()) },
};

/** The callables as { label, receiver?, tuples?, call(self, args) }, and the failures found
 * while listing them. */
function callables() {
  const out = [];
  const failures = [];
  for (const name of Object.keys(antsCoord).sort()) {
    const value = antsCoord[name];
    if (LOADERS.has(name) || typeof value !== 'function') continue;
    if (!isClass(value)) {
      out.push({ label: name, call: (_, args) => value(...args) });
      continue;
    }
    out.push({ label: `new ${name}`, call: (_, args) => new value(...args) });
    for (const member of Object.getOwnPropertyNames(value).sort()) {
      if (['length', 'name', 'prototype'].includes(member) || isGlue(member)) continue;
      out.push(...members(`${name}.${member}`, Object.getOwnPropertyDescriptor(value, member)));
    }
    const instanceMembers = Object.getOwnPropertyNames(value.prototype)
      .filter((member) => member !== 'constructor' && !isGlue(member))
      .sort();
    if (instanceMembers.length > 0 && !RECEIVERS[name]) {
      failures.push(`${name}: no receiver to call its methods on; add one to RECEIVERS`);
      continue;
    }
    for (const member of instanceMembers) {
      const descriptor = Object.getOwnPropertyDescriptor(value.prototype, member);
      out.push(...members(`${name}#${member}`, descriptor, RECEIVERS[name]));
    }
  }
  return { out, failures };
}

/** The calls of one property: a method with every tuple, a getter once, a setter per value. */
function members(label, descriptor, receiver) {
  const calls = [];
  if (typeof descriptor.value === 'function') {
    calls.push({ label, receiver, call: (self, args) => descriptor.value.apply(self, args) });
  }
  if (descriptor.get) {
    const get = (self) => descriptor.get.call(self);
    calls.push({ label: `get ${label}`, receiver, tuples: [[]], call: get });
  }
  if (descriptor.set) {
    calls.push({
      label: `set ${label}`,
      receiver,
      tuples: VALUES.map((value) => [value]),
      call: (self, [value]) => descriptor.set.call(self, value),
    });
  }
  return calls;
}

/** What is wrong with a thrown value, or null when it is a proper coded error. */
function problem(error) {
  if (error instanceof WebAssembly.RuntimeError) return `TRAPPED (${error})`;
  if (!(error instanceof Error)) return `threw a non-Error: ${String(error)}`;
  if (error.code === undefined) return `threw ${error.name} without a code: ${error.message}`;
  if (!CODES.has(error.code)) return `threw code ${error.code}, not in README: ${error.message}`;
  if (error.name !== 'AntsCoordError') return `threw ${error.name} (code ${error.code})`;
  return null;
}

test('README lists the error codes the sweep accepts', () => {
  assert.ok(CODES.has('BAD_INPUT') && CODES.size >= 30, [...CODES].join(', '));
});

test('every export refuses garbage arguments with a documented code, never a panic', async (t) => {
  const { out, failures } = callables();
  let calls = 0;
  for (const { label, receiver, tuples = TUPLES, call } of out) {
    for (const tuple of tuples) {
      const args = tuple.map(([, make]) => make());
      const name = `${label}(${tuple.map(([text]) => text).join(', ')})`;
      const self = receiver?.make();
      const before = self && receiver.state?.(self);
      calls += 1;
      try {
        await call(self, args); // an async export's rejection is judged like a throw
      } catch (error) {
        const wrong = problem(error);
        if (wrong) failures.push(`${name}: ${wrong}`);
        else if (self && receiver.state && receiver.state(self) !== before) {
          failures.push(`${name}: threw ${error.code} but changed the receiver`);
        }
      } finally {
        self?.free();
      }
    }
  }
  t.diagnostic(`${calls} calls of ${out.length} callables`);
  assert.ok(out.length >= 100, `only ${out.length} callables found`);
  const shown = failures.slice(0, 200).join('\n  ');
  const more = failures.length > 200 ? `\n  ... and ${failures.length - 200} more` : '';
  assert.equal(failures.length, 0, `${failures.length} bad calls:\n  ${shown}${more}`);
});

test('the module still works after the sweep (no poisoned instance)', () => {
  const identity = Identity.generate();
  const message = new TextEncoder().encode('still alive');
  assert.equal(antsCoord.verifySignature(identity.publicKey, message, identity.sign(message)), true);
  const doc = new Doc();
  doc.insertText('t', 0, 'ok');
  assert.equal(doc.text('t'), 'ok');
  identity.free();
  doc.free();
});
