// The shared text: a Yrs document (the package's SignedDoc) whose edits travel as signed
// `doc.update` ops on the demo topic (PROTOCOL.md section 7.1: 0x01 ‖ Yjs v1 update) and are
// merged on receipt, in any order, each op once. Concurrent edits converge as in Yjs.
import { opOf } from './model.js';

const ROOT = 'text';
const MARK = '\u0000';

export class SharedText {
  /** `publish(kind, body)` sends the op of each local edit. */
  constructor(pkg, topic, publish) {
    this.pkg = pkg;
    this.signed = new pkg.SignedDoc(topic);
    this.doc = this.signed.doc;
    this.doc.observe((change) => {
      if (!change.local) return;
      const body = new Uint8Array(change.update.length + 1);
      body[0] = 1;
      body.set(change.update, 1);
      publish('doc.update', body);
    });
  }

  get value() {
    return this.doc.text(ROOT);
  }

  /**
   * Merges the `doc.update` op of a verified entry (the core checks kind, topic and body);
   * `false` if it was merged before. With `caret` (a UTF-16 index into the current text), also
   * returns where that caret is after the merge: it stays after the same character.
   */
  apply(entryBytes, caret) {
    const op = opOf(entryBytes);
    let moved;
    if (caret !== undefined) {
      // A probe copy with a mark at the caret, merged with the same update: the mark is
      // anchored to its neighbour as Yjs anchors every insertion, so it moves as the text does.
      const probe = new this.pkg.Doc();
      try {
        probe.applyUpdate(this.doc.encodeUpdate());
        probe.insertText(ROOT, Math.min(caret, probe.textLength(ROOT)), MARK);
        probe.applyUpdate(op.body.subarray(1));
        moved = probe.text(ROOT).indexOf(MARK);
      } catch {
        moved = undefined; // the real merge below reports what is wrong with the update
      } finally {
        probe.free();
      }
    }
    const merged = this.signed.applyOp(op.bytes);
    return { merged, caret: moved };
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
