// Shared documents from the npm package, against the real yjs and y-protocols packages.
//   scripts/build-pkg.sh && node --test tests/js/doc.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as Y from 'yjs';
import * as syncProtocol from 'y-protocols/sync';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as authProtocol from 'y-protocols/auth';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as ac from 'ants-coord';

const vectors = JSON.parse(readFileSync(new URL('../vectors/yprotocols.json', import.meta.url)));
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));
const code = (fn) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    return e.code;
  }
  assert.fail('did not throw');
};

test('edits made in Yjs load into ants-coord, and back', () => {
  const y = new Y.Doc();
  y.getText('t').insert(0, 'hello 😀 world');
  y.getText('t').delete(0, 1);
  y.getMap('m').set('n', 42);
  y.getMap('m').set('o', { a: [1, 'x', null], b: true });
  y.getArray('a').insert(0, [1, 'two', { three: 3 }]);
  const doc = new ac.Doc();
  doc.applyUpdate(Y.encodeStateAsUpdate(y));
  assert.equal(doc.text('t'), 'ello 😀 world');
  assert.deepEqual(doc.getMap('m'), { n: 42, o: { a: [1, 'x', null], b: true } });
  assert.deepEqual(doc.getArray('a'), [1, 'two', { three: 3 }]);

  doc.insertText('t', 0, 'H');
  doc.setMap('m', 'bytes', new Uint8Array([1, 2, 3]));
  doc.deleteMap('m', 'n');
  doc.pushArray('a', [4.5]);
  doc.deleteArray('a', 0, 1);
  Y.applyUpdate(y, doc.encodeUpdate(Y.encodeStateVector(y)));
  assert.equal(y.getText('t').toString(), 'Hello 😀 world');
  assert.deepEqual(y.getMap('m').toJSON(), { o: { a: [1, 'x', null], b: true }, bytes: new Uint8Array([1, 2, 3]) });
  assert.deepEqual(y.getArray('a').toJSON(), ['two', { three: 3 }, 4.5]);
  assert.deepEqual(doc.toJSON(), { t: y.getText('t').toString(), m: y.getMap('m').toJSON(), a: y.getArray('a').toJSON() });
  doc.free();
});

test('v2 updates cross both ways', () => {
  const y = new Y.Doc();
  y.getText('t').insert(0, 'v2 from yjs');
  const doc = new ac.Doc();
  doc.applyUpdateV2(Y.encodeStateAsUpdateV2(y));
  assert.equal(doc.text('t'), 'v2 from yjs');
  doc.insertText('t', 0, '>');
  const y2 = new Y.Doc();
  Y.applyUpdateV2(y2, doc.encodeUpdateV2());
  assert.equal(y2.getText('t').toString(), '>v2 from yjs');
  doc.free();
});

test('concurrent edits, half in Yjs and half in ants-coord, converge', () => {
  const y = new Y.Doc();
  y.getText('t').insert(0, 'shared base');
  y.getMap('m').set('k', 0);
  y.getArray('a').push([0]);
  const doc = new ac.Doc();
  doc.applyUpdate(Y.encodeStateAsUpdate(y));
  const base = doc.stateVector();
  for (let i = 0; i < 50; i++) {
    y.getText('t').insert((i * 7) % y.getText('t').length, 'y');
    doc.insertText('t', (i * 5) % doc.textLength('t'), 'a');
    y.getMap('m').set(`y${i % 3}`, i);
    doc.setMap('m', `a${i % 3}`, i);
    doc.setMap('m', 'k', `ants ${i}`);
    y.getMap('m').set('k', `yjs ${i}`);
    y.getArray('a').insert(0, [`y${i}`]);
    doc.pushArray('a', [`a${i}`]);
    if (i % 10 === 9) {
      y.getText('t').delete(0, 2);
      doc.deleteText('t', 3, 2);
      doc.deleteArray('a', 1, 1);
    }
  }
  const fromYjs = Y.encodeStateAsUpdate(y, base);
  const fromAnts = doc.encodeUpdate(Y.encodeStateVector(y));
  Y.applyUpdate(y, fromAnts);
  doc.applyUpdate(fromYjs);
  assert.equal(doc.text('t'), y.getText('t').toString());
  assert.deepEqual(doc.getMap('m'), y.getMap('m').toJSON());
  assert.deepEqual(doc.getArray('a'), y.getArray('a').toJSON());
  doc.free();
});

test('mergeUpdates output loads in Yjs; diffUpdate and compactUpdates agree with Yjs', () => {
  const docs = [1, 2, 3].map((clientId) => new ac.Doc({ clientId }));
  const updates = docs.map((d, i) => {
    d.insertText('t', 0, `doc${i} `);
    d.pushArray('a', [i]);
    return d.encodeUpdate();
  });
  const merged = ac.mergeUpdates(updates);
  const y = new Y.Doc();
  Y.applyUpdate(y, merged);
  const y2 = new Y.Doc();
  Y.applyUpdate(y2, Y.mergeUpdates(updates));
  assert.equal(y.getText('t').toString(), y2.getText('t').toString());
  assert.deepEqual(y.getArray('a').toJSON().sort(), [0, 1, 2]);
  // diffUpdate against a state vector: what a peer that has doc0 lacks.
  const sv0 = Y.encodeStateVectorFromUpdate(updates[0]);
  assert.equal(hex(ac.encodeStateVectorFromUpdate(updates[0])), hex(sv0));
  const diff = ac.diffUpdate(merged, sv0);
  const y3 = new Y.Doc();
  Y.applyUpdate(y3, updates[0]);
  Y.applyUpdate(y3, diff);
  assert.equal(y3.getText('t').toString(), y.getText('t').toString());
  // A Yjs-merged update loads here too, and compaction keeps the content.
  const doc = new ac.Doc();
  doc.applyUpdate(Y.mergeUpdates(updates));
  doc.deleteText('t', 0, 5);
  const compact = ac.compactUpdates([doc.encodeUpdate()]);
  const y4 = new Y.Doc();
  Y.applyUpdate(y4, compact);
  assert.equal(y4.getText('t').toString(), doc.text('t'));
  assert.equal(code(() => ac.mergeUpdates([new Uint8Array([0xff, 0xff, 0xff])])), 'BAD_UPDATE');
  assert.equal(code(() => ac.mergeUpdates('nope')), 'BAD_INPUT');
  docs.forEach((d) => d.free());
  doc.free();
});

test('bad indices and arguments throw stable codes, never panic', () => {
  const doc = new ac.Doc();
  doc.insertText('t', 0, 'abc');
  assert.equal(code(() => doc.insertText('t', 4, 'x')), 'OUT_OF_RANGE');
  assert.equal(code(() => doc.deleteText('t', 2, 2)), 'OUT_OF_RANGE');
  assert.equal(code(() => doc.deleteText('t', 2 ** 40, 1)), 'OUT_OF_RANGE');
  assert.equal(code(() => doc.insertText('t', -1, 'x')), 'BAD_INPUT');
  assert.equal(code(() => doc.insertText('t', 0.5, 'x')), 'BAD_INPUT');
  assert.equal(code(() => doc.insertText('t', NaN, 'x')), 'BAD_INPUT');
  assert.equal(code(() => doc.insertArray('a', 1, [1])), 'OUT_OF_RANGE');
  assert.equal(code(() => doc.deleteArray('a', 0, 1)), 'OUT_OF_RANGE');
  assert.equal(code(() => doc.setMap('t', 'k', 1)), 'ROOT_TYPE_MISMATCH');
  assert.equal(code(() => doc.setMap('m', 'k', () => 1)), 'BAD_INPUT');
  assert.equal(code(() => doc.pushArray('a', 'not an array')), 'BAD_INPUT');
  assert.equal(code(() => doc.applyUpdate(new Uint8Array([1, 2, 3]))), 'BAD_UPDATE');
  assert.equal(code(() => doc.applyEdits('t', [[0, 0, 'x'], [99, 0, 'y']])), 'OUT_OF_RANGE');
  assert.equal(doc.text('t'), 'abc', 'a refused batch changes nothing');
  doc.applyEdits('t', [[3, 0, 'd'], { index: 0, delete: 1 }, [0, 0, 'A']]);
  assert.equal(doc.text('t'), 'Abcd');
  assert.equal(code(() => new ac.Doc({ colour: 'red' })), 'BAD_INPUT');
  doc.free();
});

test('observe reports changes and unsubscribes; calls from inside are DOC_BUSY', () => {
  const doc = new ac.Doc();
  const seen = [];
  const unsubscribe = doc.observe((change) => {
    seen.push(change);
    try {
      doc.insertText('t', 0, 'nested');
    } catch (e) {
      change.nested = e.code;
    }
  });
  doc.insertText('t', 0, 'x');
  const peer = new ac.Doc();
  peer.setMap('m', 'k', 1);
  doc.applyUpdate(peer.encodeUpdate());
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0].roots, [{ name: 't', kind: 'text' }]);
  assert.equal(seen[0].local, true);
  assert.equal(seen[0].nested, 'DOC_BUSY');
  assert.equal(seen[1].local, false);
  const y = new Y.Doc();
  Y.applyUpdate(y, seen[0].update);
  assert.equal(y.getText('t').toString(), 'x');
  unsubscribe();
  doc.insertText('t', 0, 'y');
  assert.equal(seen.length, 2);
  assert.equal(doc.observerCount, 0);
  // free() from inside a call on the doc: BAD_INPUT, and the doc goes once that call returns.
  let freeError;
  doc.observe(() => {
    try {
      doc.free();
    } catch (e) {
      freeError = e;
    }
  });
  doc.insertText('t', 0, 'z');
  assert.equal(freeError?.code, 'BAD_INPUT');
  assert.throws(() => doc.toJSON(), (e) => e.code === 'BAD_INPUT');
  peer.free();
});

test('subscribing and unsubscribing many times does not grow memory', () => {
  const doc = new ac.Doc();
  const wasm = ac.initSync(); // already initialized: returns the wasm exports
  const cycle = (n) => {
    for (let i = 0; i < n; i++) {
      const unsubscribe = doc.observe(() => {});
      if (i % 100 === 0) doc.insertText('t', 0, 'x');
      unsubscribe();
    }
  };
  cycle(2_000);
  const before = wasm.memory.buffer.byteLength;
  const heapBefore = process.memoryUsage().heapUsed;
  cycle(50_000);
  const grown = wasm.memory.buffer.byteLength - before;
  assert.equal(doc.observerCount, 0);
  assert.ok(grown <= 1 << 20, `wasm memory grew by ${grown} bytes over 50,000 subscriptions`);
  const heapGrown = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(heapGrown < 64 << 20, `JS heap grew by ${heapGrown} bytes`);
  doc.free();
});

test('undo and redo revert local edits only', () => {
  const doc = new ac.Doc({ undo: true });
  doc.insertText('t', 0, 'abc');
  doc.setMap('m', 'k', 1);
  const y = new Y.Doc();
  Y.applyUpdate(y, doc.encodeUpdate());
  y.getText('t').insert(0, '>');
  doc.applyUpdate(Y.encodeStateAsUpdate(y, doc.stateVector()));
  assert.equal(doc.undo(), true);
  assert.deepEqual(doc.getMap('m'), {});
  assert.equal(doc.undo(), true);
  assert.equal(doc.text('t'), '>');
  assert.equal(doc.undo(), false);
  assert.equal(doc.redo(), true);
  assert.equal(doc.text('t'), '>abc');
  const plain = new ac.Doc();
  assert.equal(code(() => plain.undo()), 'BAD_INPUT');
  doc.free();
  plain.free();
});

// ---- y-protocols ----

const frame = (type, write) => {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, type);
  write(e);
  return encoding.toUint8Array(e);
};

test('y-protocols vectors: the same bytes as the y-protocols package', () => {
  const y = new Y.Doc();
  y.clientID = vectors.doc.client_id;
  Y.applyUpdate(y, unhex(vectors.doc.update_v1));
  assert.equal(y.getText(vectors.doc.text_root).toString(), vectors.doc.text);
  const byName = Object.fromEntries(vectors.messages.map((m) => [m.name, m.message]));
  assert.equal(hex(frame(0, (e) => syncProtocol.writeSyncStep1(e, y))), byName.sync_step_1);
  assert.equal(hex(frame(0, (e) => syncProtocol.writeUpdate(e, unhex(vectors.doc.update_v1)))), byName.sync_update);
  assert.equal(
    hex(frame(0, (e) => { encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep2); encoding.writeVarUint8Array(e, unhex(vectors.doc.update_v1)); })),
    byName.sync_step_2,
  );
  // Awareness: decode the vector with y-protocols, re-encode it there, compare.
  const aw = new awarenessProtocol.Awareness(new Y.Doc());
  awarenessProtocol.applyAwarenessUpdate(aw, unhex(vectors.awareness_update), 'test');
  assert.deepEqual(aw.getStates().get(42), { user: { name: 'ant' } });
  assert.equal(hex(awarenessProtocol.encodeAwarenessUpdate(aw, [42, 300])), vectors.awareness_update);
  assert.equal(hex(frame(1, (e) => encoding.writeVarUint8Array(e, unhex(vectors.awareness_update)))), byName.awareness);
  assert.equal(hex(frame(2, (e) => authProtocol.writePermissionDenied(e, 'no'))), byName.permission_denied);
  assert.equal(hex(frame(3, () => {})), byName.query_awareness);
  aw.destroy();
});

test('DocSync talks to a y-protocols peer: sync both ways and awareness', () => {
  const y = new Y.Doc();
  y.getText('t').insert(0, 'from yjs');
  const doc = new ac.Doc();
  doc.setMap('m', 'k', 'from ants');
  const sync = new ac.DocSync(doc);
  const toYjs = [...sync.start()];
  const fromYjs = [frame(0, (e) => syncProtocol.writeSyncStep1(e, y))];
  // The Yjs side handles messages as y-websocket's client does.
  const yjsReceive = (message) => {
    const d = decoding.createDecoder(message);
    const e = encoding.createEncoder();
    const type = decoding.readVarUint(d);
    if (type === 0) {
      encoding.writeVarUint(e, 0);
      syncProtocol.readSyncMessage(d, e, y, 'ants');
      if (encoding.length(e) > 1) fromYjs.push(encoding.toUint8Array(e));
    } else if (type === 1) {
      awarenessProtocol.applyAwarenessUpdate(yAwareness, decoding.readVarUint8Array(d), 'ants');
    }
  };
  const yAwareness = new awarenessProtocol.Awareness(y);
  yAwareness.setLocalState({ user: 'yjs' });
  fromYjs.push(frame(1, (e) => encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(yAwareness, [y.clientID]))));
  toYjs.push(sync.setLocalAwareness({ user: 'ants' }));
  for (let round = 0; round < 5 && (toYjs.length || fromYjs.length); round++) {
    for (const m of toYjs.splice(0)) yjsReceive(m);
    for (const m of fromYjs.splice(0)) toYjs.push(...sync.receive(m).replies);
  }
  assert.ok(sync.synced);
  assert.equal(doc.text('t'), 'from yjs');
  assert.equal(y.getMap('m').get('k'), 'from ants');
  assert.deepEqual(sync.awarenessStates()[y.clientID], { user: 'yjs' });
  assert.deepEqual(yAwareness.getStates().get(doc.clientId), { user: 'ants' });
  // An incremental update from ants-coord, framed by DocSync, applies in Yjs.
  const unsubscribe = doc.observe((c) => yjsReceive(sync.updateMessage(c.update)));
  doc.insertText('t', 0, '>');
  unsubscribe();
  assert.equal(y.getText('t').toString(), '>from yjs');
  // A Yjs update message is applied and offered for broadcast.
  const before = Y.encodeStateVector(y);
  y.getText('t').insert(0, '<');
  const out = sync.receive(frame(0, (e) => syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(y, before))));
  assert.equal(doc.text('t'), '<>from yjs');
  assert.equal(out.broadcast.length, 1);
  assert.ok(out.update instanceof Uint8Array);
  // Query awareness gets every state back.
  const reply = sync.receive(frame(3, () => {})).replies[0];
  assert.equal(decoding.readVarUint(decoding.createDecoder(reply)), 1);
  assert.equal(code(() => sync.receive(new Uint8Array([9]))), 'MALFORMED');
  yAwareness.destroy();
  sync.free();
  doc.free();
});

test('signed document updates: writers only, forgeries refused, nothing applied', () => {
  const alice = ac.Identity.fromSeed(new Uint8Array(32).fill(1));
  const mallory = ac.Identity.fromSeed(new Uint8Array(32).fill(2));
  const shared = new ac.SignedDoc('notes', [alice.agentId]);
  const local = new ac.Doc();
  local.insertText('t', 0, 'signed');
  const op = ac.signDocUpdate(alice, 'notes', 0, local.encodeUpdate());
  assert.equal(shared.applyOp(op), true);
  assert.equal(shared.applyOp(op), false);
  assert.equal(shared.doc.text('t'), 'signed');
  local.insertText('t', 6, '!');
  const update = local.encodeUpdate(shared.doc.stateVector());
  assert.equal(code(() => shared.applyOp(ac.signDocUpdate(mallory, 'notes', 0, update))), 'NOT_A_WRITER');
  const altered = ac.signDocUpdate(alice, 'notes', 1, update);
  altered[altered.length - 70] ^= 1;
  assert.equal(code(() => shared.applyOp(altered)), 'BAD_SIGNATURE');
  // A writer set is bounded (4,096), counted before any id is read.
  assert.equal(code(() => new ac.SignedDoc('notes', new Array(4097).fill(alice.agentId))), 'LIMIT_EXCEEDED');
  assert.equal(code(() => new ac.SignedDoc('notes', new Array(4097))), 'LIMIT_EXCEEDED');
  new ac.SignedDoc('notes', new Array(4096).fill(alice.agentId)).free();
  assert.equal(shared.doc.text('t'), 'signed');
  assert.equal(shared.applyOp(ac.signDocUpdate(alice, 'notes', 1, update)), true);
  assert.equal(shared.doc.text('t'), 'signed!');
  shared.free();
  local.free();
});

/** Entry bytes (PROTOCOL.md section 4): 0x01 ‖ u64 seq ‖ u64 relay time ‖ u32 len ‖ op. */
function entryOf(seq, op) {
  const out = new Uint8Array(21 + op.length);
  const view = new DataView(out.buffer);
  out[0] = 1;
  view.setBigUint64(1, BigInt(seq));
  view.setBigUint64(9, 1_700_000_000_000n);
  view.setUint32(17, op.length);
  out.set(op, 21);
  return out;
}

test('a SignedDoc takes a delivered entry as it comes: its bytes or the client item', () => {
  const alice = ac.Identity.fromSeed(new Uint8Array(32).fill(1));
  const shared = new ac.SignedDoc('notes', [alice.agentId]);
  const local = new ac.Doc();
  local.insertText('t', 0, 'entry');
  const op = ac.signDocUpdate(alice, 'notes', 0, local.encodeUpdate());
  assert.equal(shared.applyEntry(entryOf(0, op)), true);
  assert.equal(shared.applyEntry({ type: 'entry', seq: 0, bytes: entryOf(0, op) }), false, 'merged once');
  assert.equal(shared.applyOp(op), false, 'the same op, however it arrives');
  assert.equal(shared.doc.text('t'), 'entry');
  // Not an entry, a tampered one, a wrong argument: coded errors, nothing merged.
  const version2 = entryOf(0, op);
  version2[0] = 2;
  assert.equal(code(() => shared.applyEntry(version2)), 'UNSUPPORTED_VERSION');
  assert.equal(code(() => shared.applyEntry(entryOf(0, op).subarray(0, 30))), 'MALFORMED');
  const tampered = entryOf(1, ac.signDocUpdate(alice, 'notes', 1, local.encodeUpdate()));
  tampered[tampered.length - 70] ^= 1;
  assert.equal(code(() => shared.applyEntry(tampered)), 'BAD_SIGNATURE');
  assert.equal(code(() => shared.applyEntry({ bytes: 'no' })), 'BAD_INPUT');
  assert.equal(code(() => shared.applyEntry(7)), 'BAD_INPUT');
  assert.equal(shared.doc.text('t'), 'entry');
  shared.free();
  local.free();
});
