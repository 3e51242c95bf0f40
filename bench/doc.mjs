// Shared-document benchmark: ants-coord (yrs in wasm) against Yjs and ywasm, same process.
//
//   scripts/build-pkg.sh && node bench/doc.mjs
//
// Trace: automerge-paper (B4 of crdt-benchmarks), read from ../shared/data/ beside the repo
// (override with ANTS_DATA_DIR); it is never committed. BENCH_YWASM=0 skips ywasm's trace run
// (about half a minute), BENCH_UNDO=0 the undo-history run. Prints each time and the ratio against Yjs (>1 = ants-coord faster).
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import * as Y from 'yjs';
import * as ywasm from 'ywasm';
import * as ac from 'ants-coord';

const dataDir = process.env.ANTS_DATA_DIR ?? new URL('../../shared/data/', import.meta.url).pathname;
const trace = JSON.parse(gunzipSync(readFileSync(`${dataDir}/automerge-paper.json.gz`)));
const patches = trace.txns.flatMap((t) => t.patches);
const runYwasm = process.env.BENCH_YWASM !== '0';
const runUndo = process.env.BENCH_UNDO !== '0';

const rows = [];
const time = (fn) => {
  const t0 = performance.now();
  const result = fn();
  return [performance.now() - t0, result];
};
const check = (what, text) => {
  if (text !== trace.endContent) throw new Error(`${what}: final text differs from endContent`);
};
const row = (name, yjs, ours, extra = {}) => {
  rows.push({ name, yjs, ours, ...extra });
  const ratio = yjs && ours ? (yjs / ours).toFixed(2) + '×' : '';
  const f = (ms) => (ms === undefined ? '—' : ms < 10 ? ms.toFixed(2) + ' ms' : ms.toFixed(0) + ' ms');
  console.log(
    `${name.padEnd(46)} yjs ${f(yjs).padStart(9)}  ants-coord ${f(ours).padStart(9)}  ${ratio.padStart(7)}` +
      (extra.ywasm !== undefined ? `  ywasm ${f(extra.ywasm)}` : ''),
  );
};

console.log(`automerge-paper: ${patches.length} patches, ${trace.endContent.length} chars; node ${process.version}\n`);

// ---- 1. the trace, one transaction per edit ----
const [yjsTrace, ydoc] = time(() => {
  const doc = new Y.Doc();
  const text = doc.getText('text');
  for (const [pos, del, ins] of patches) {
    if (del && ins) {
      doc.transact(() => {
        text.delete(pos, del);
        text.insert(pos, ins);
      });
    } else if (del) text.delete(pos, del);
    else text.insert(pos, ins);
  }
  return doc;
});
check('yjs', ydoc.getText('text').toString());

const acTrace = (options) => {
  const doc = new ac.Doc(options);
  for (const [pos, del, ins] of patches) {
    if (del && ins) doc.applyEdits('text', [[pos, del, ins]]);
    else if (del) doc.deleteText('text', pos, del);
    else doc.insertText('text', pos, ins);
  }
  return doc;
};
const [oursTrace, adoc] = time(() => acTrace({ undo: false }));
check('ants-coord', adoc.text('text'));
let oursTraceUndo;
if (runUndo) {
  const [ms, adocUndo] = time(() => acTrace({ undo: true }));
  check('ants-coord (undo on)', adocUndo.text('text'));
  adocUndo.free();
  oursTraceUndo = ms;
}

let ywasmTrace;
if (runYwasm) {
  const [ms, ydocW] = time(() => {
    const doc = new ywasm.YDoc({});
    const text = doc.getText('text');
    for (const [pos, del, ins] of patches) {
      if (del) text.delete(pos, del, undefined);
      if (ins) text.insert(pos, ins, undefined, undefined);
    }
    return doc;
  });
  check('ywasm', ydocW.getText('text').toString(ydocW.beginTransaction()));
  ywasmTrace = ms;
}
row('trace, one transaction per edit', yjsTrace, oursTrace, { ywasm: ywasmTrace });
if (runUndo) row('  same, ants-coord with undo history on', yjsTrace, oursTraceUndo);

// ---- 1b. the trace through the batch API ----
const [oursBatch, bdoc] = time(() => {
  const doc = new ac.Doc({ undo: false });
  doc.applyEdits('text', patches);
  return doc;
});
check('ants-coord batch', bdoc.text('text'));
const [yjsBatch] = time(() => {
  const doc = new Y.Doc();
  const text = doc.getText('text');
  doc.transact(() => {
    for (const [pos, del, ins] of patches) {
      if (del) text.delete(pos, del);
      if (ins) text.insert(pos, ins);
    }
  });
  check('yjs one transaction', text.toString());
});
row('trace, one batch (Yjs: one transact)', yjsBatch, oursBatch);
const chunk = 1000;
const [oursChunks, cdoc] = time(() => {
  const doc = new ac.Doc({ undo: false });
  for (let i = 0; i < patches.length; i += chunk) doc.applyEdits('text', patches.slice(i, i + chunk));
  return doc;
});
check('ants-coord chunks', cdoc.text('text'));
const [yjsChunks] = time(() => {
  const doc = new Y.Doc();
  const text = doc.getText('text');
  for (let i = 0; i < patches.length; i += chunk) {
    doc.transact(() => {
      for (const [pos, del, ins] of patches.slice(i, i + chunk)) {
        if (del) text.delete(pos, del);
        if (ins) text.insert(pos, ins);
      }
    });
  }
});
row(`trace, batches of ${chunk} edits`, yjsChunks, oursChunks);
bdoc.free();
cdoc.free();

// ---- 2. encode ----
const [yjsEncode, yenc] = time(() => Y.encodeStateAsUpdate(ydoc));
const [oursEncode, aenc] = time(() => adoc.encodeUpdate());
row(`encode (${yenc.length} / ${aenc.length} bytes)`, yjsEncode, oursEncode);

// ---- 3. load into a fresh document (apply + read the text) ----
const loads = 5;
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const yjsLoad = median(
  Array.from({ length: loads }, () =>
    time(() => {
      const doc = new Y.Doc();
      Y.applyUpdate(doc, yenc);
      check('yjs load', doc.getText('text').toString());
    })[0],
  ),
);
const oursLoad = median(
  Array.from({ length: loads }, () =>
    time(() => {
      const doc = new ac.Doc({ undo: false });
      doc.applyUpdate(aenc);
      check('ants-coord load', doc.text('text'));
      doc.free();
    })[0],
  ),
);
const oursLoadYjsBytes = median(
  Array.from({ length: loads }, () =>
    time(() => {
      const doc = new ac.Doc({ undo: false });
      doc.applyUpdate(yenc);
      check('ants-coord load of Yjs bytes', doc.text('text'));
      doc.free();
    })[0],
  ),
);
const ywasmLoad = median(
  Array.from({ length: loads }, () =>
    time(() => {
      const doc = new ywasm.YDoc({});
      ywasm.applyUpdate(doc, yenc, undefined);
      check('ywasm load', doc.getText('text').toString(doc.beginTransaction()));
      doc.free();
    })[0],
  ),
);
row(`load encoded doc (median of ${loads})`, yjsLoad, oursLoad, { ywasm: ywasmLoad });
row('  ants-coord loading the Yjs encoding', yjsLoad, oursLoadYjsBytes);

// ---- 4. merge 100 concurrent client updates ----
// Each client loads the final document, inserts a line at its own position, and sends what it
// added (a diff against the shared state): 100 updates concurrent with each other.
const baseSv = adoc.stateVector();
let seed = 42;
const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
const updates = [];
for (let i = 0; i < 100; i++) {
  const client = new ac.Doc({ clientId: 1000 + i, undo: false });
  client.applyUpdate(aenc);
  client.insertText('text', rand(trace.endContent.length), `client ${i} was here\n`);
  updates.push(client.encodeUpdate(baseSv));
  client.free();
}
const yjsMergeRuns = [];
const oursMergeRuns = [];
const oursApplyEachRuns = [];
let yfinal;
let afinal;
for (let run = 0; run < 3; run++) {
  // Both sides start from the same document (ants-coord's encoding, which the clients edited).
  const yd = new Y.Doc();
  Y.applyUpdate(yd, aenc);
  yjsMergeRuns.push(time(() => Y.applyUpdate(yd, Y.mergeUpdates(updates)))[0]);
  yfinal = yd.getText('text').toString();
  const ad = new ac.Doc({ undo: false });
  ad.applyUpdate(aenc);
  oursMergeRuns.push(time(() => ad.applyUpdate(ac.mergeUpdates(updates)))[0]);
  afinal = ad.text('text');
  ad.free();
  const ae = new ac.Doc({ undo: false });
  ae.applyUpdate(aenc);
  oursApplyEachRuns.push(time(() => updates.forEach((u) => ae.applyUpdate(u)))[0]);
  ae.free();
}
if (yfinal !== afinal) throw new Error('merged texts differ between Yjs and ants-coord');
row('merge 100 client updates + apply', median(yjsMergeRuns), median(oursMergeRuns));
row('  ants-coord applying the 100 one by one', median(yjsMergeRuns), median(oursApplyEachRuns));

// ---- 5. size of the shipped .wasm ----
const wasm = readFileSync(new URL('../pkg/ants_coord_bg.wasm', import.meta.url));
const gz = gzipSync(wasm, { level: 9 }).length;
console.log(`\nants_coord_bg.wasm: ${wasm.length} bytes, ${(gz / 1024).toFixed(1)} KiB gzip -9 (target ≤ 220 KB)`);
if (process.env.BENCH_JSON) console.log(JSON.stringify({ rows, wasmBytes: wasm.length, wasmGzip: gz }));
