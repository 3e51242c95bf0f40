// The shared text: a Yrs document (the package's SignedDoc) whose edits travel as signed
// `doc.update` ops on the demo topic (PROTOCOL.md section 7.1: 0x01 ‖ Yjs v1 update) and are
// merged on receipt, in any order, each op once. Concurrent edits converge as in Yjs.
import { opOf } from './model.js';

const ROOT = 'text';

export class SharedText {
  /** `publish(kind, body)` sends an op; `onRemote(value)` is told of edits merged from others. */
  constructor(pkg, topic, publish, onRemote = () => {}) {
    this.signed = new pkg.SignedDoc(topic);
    this.doc = this.signed.doc;
    this.doc.observe((change) => {
      if (change.local) {
        const body = new Uint8Array(change.update.length + 1);
        body[0] = 1;
        body.set(change.update, 1);
        publish('doc.update', body);
      } else {
        // The document is busy inside its own callback: read it right after.
        queueMicrotask(() => onRemote(this.value));
      }
    });
  }

  get value() {
    return this.doc.text(ROOT);
  }

  /** Merges the `doc.update` op of a verified entry (the core checks kind, topic and body). */
  apply(entryBytes) {
    return this.signed.applyOp(opOf(entryBytes).bytes);
  }

  /** Turns the text into `next` with one edit (the changed middle): one update, one op. */
  replace(next) {
    const before = this.value;
    let start = 0;
    while (start < before.length && start < next.length && before[start] === next[start]) start++;
    let endB = before.length;
    let endN = next.length;
    while (endB > start && endN > start && before[endB - 1] === next[endN - 1]) { endB--; endN--; }
    if (endB === start && endN === start) return;
    this.doc.applyEdits(ROOT, [[start, endB - start, next.slice(start, endN)]]);
  }

  append(text) {
    this.doc.insertText(ROOT, this.doc.textLength(ROOT), text);
  }
}
