//! Coalescing the edits of one batch into runs before they reach Yrs.
//!
//! Yrs finds a text position by walking the text's items from the start (no position cache such
//! as Yjs' search markers), so the cost of a batch is about (number of edits) × (number of items).
//! Inside one transaction nobody can observe the intermediate states, so consecutive edits that
//! continue each other are joined first, exactly:
//!
//! - typing on: an insertion at the end of the pending inserted run extends it;
//! - correcting: a deletion entirely inside the pending inserted run removes those units from it
//!   (they never reach the document, so no tombstone is left);
//! - deleting on: forward deletes at the same index, or backspaces just before the pending
//!   deleted range, extend it.
//!
//! Anything else flushes the pending run. The resulting text is the same as applying every edit
//! in order (a property test checks it against a plain string model).

use super::document::TextEdit;

/// One edit to apply to Yrs: delete `delete` units at `index`, then insert `insert` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub index: u32,
    pub delete: u32,
    pub insert: Vec<u16>,
}

/// Joins `edits` (already checked to be in range, in order) into runs with the same effect.
pub(crate) fn coalesce(edits: &[TextEdit]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut pending: Option<Run> = None;
    for edit in edits {
        let insert: Vec<u16> = edit.insert.encode_utf16().collect();
        if let Some(run) = pending.as_mut() {
            if extend(run, edit.index, edit.delete, &insert) {
                continue;
            }
        }
        if let Some(run) = pending.take() {
            runs.push(run);
        }
        pending = Some(Run {
            index: edit.index,
            delete: edit.delete,
            insert,
        });
    }
    runs.extend(pending);
    runs
}

/// Tries to fold the edit `(index, delete, insert)` into `run`; says whether it did.
fn extend(run: &mut Run, index: u32, delete: u32, insert: &[u16]) -> bool {
    let run_end = run.index + run.insert.len() as u32;
    if delete == 0 {
        // Typing on at the end of the run's insertion.
        if index == run_end && !insert.is_empty() {
            run.insert.extend_from_slice(insert);
            return true;
        }
        return insert.is_empty();
    }
    if !insert.is_empty() {
        return false;
    }
    // A deletion inside the run's own insertion never reaches the document.
    if index >= run.index && index + delete <= run_end {
        let from = (index - run.index) as usize;
        run.insert.drain(from..from + delete as usize);
        return true;
    }
    if run.insert.is_empty() {
        // Forward delete at the same place, or backspace just before the deleted range.
        if index == run.index {
            run.delete += delete;
            return true;
        }
        if index + delete == run.index {
            run.index = index;
            run.delete += delete;
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn apply(text: &mut Vec<u16>, index: u32, delete: u32, insert: &[u16]) {
        let i = index as usize;
        text.splice(i..i + delete as usize, insert.iter().copied());
    }

    proptest! {
        #[test]
        fn runs_have_the_effect_of_the_edits(raw in proptest::collection::vec((any::<u16>(), 0u32..3, "[a-c]{0,3}"), 0..80)) {
            // Make every edit valid against the text it meets.
            let mut model: Vec<u16> = "hello".encode_utf16().collect();
            let start = model.clone();
            let mut edits = Vec::new();
            for (at, del, ins) in raw {
                let len = model.len() as u32;
                let index = u32::from(at) % (len + 1);
                let delete = del.min(len - index);
                let ins16: Vec<u16> = ins.encode_utf16().collect();
                apply(&mut model, index, delete, &ins16);
                edits.push(TextEdit { index, delete, insert: ins });
            }
            let mut replay = start;
            for run in coalesce(&edits) {
                apply(&mut replay, run.index, run.delete, &run.insert);
            }
            prop_assert_eq!(replay, model);
        }
    }

    #[test]
    fn typing_and_backspacing_join() {
        let e = |index, delete, insert: &str| TextEdit {
            index,
            delete,
            insert: insert.into(),
        };
        let runs = coalesce(&[
            e(0, 0, "a"),
            e(1, 0, "b"),
            e(2, 0, "c"),
            e(2, 1, ""),
            e(2, 0, "d"),
        ]);
        assert_eq!(runs.len(), 1);
        assert_eq!(String::from_utf16(&runs[0].insert).unwrap(), "abd");
        let runs = coalesce(&[e(5, 1, ""), e(4, 1, ""), e(4, 1, "")]);
        assert_eq!(
            runs,
            vec![Run {
                index: 4,
                delete: 3,
                insert: vec![]
            }]
        );
    }
}
