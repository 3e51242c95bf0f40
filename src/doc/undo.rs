//! Undo and redo of local edits (Yrs' `UndoManager`, the port of `Y.UndoManager`).
//!
//! Only transactions made through this replica's [`Doc`] are captured; updates applied from
//! peers are not, and undoing never removes a peer's edit. Each captured transaction is one undo
//! step (no time-based grouping: the core has no clock); a batch edit is one transaction.
//!
//! Memory: content deleted by a captured step is kept (not garbage-collected) while the step can
//! still be undone or redone; [`UndoHistory::clear`] releases it.

use std::collections::HashSet;
use std::sync::Arc;

use yrs::undo::Options;
use yrs::{ReadTxn, Transact, UndoManager};

use super::document::{Doc, RootKind};
use crate::error::{Error, Result};

/// The undo/redo stacks of one replica's local edits on one document.
pub struct UndoHistory {
    manager: UndoManager,
    doc: Doc,
    scope: HashSet<Arc<str>>,
}

impl core::fmt::Debug for UndoHistory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UndoHistory")
            .field("roots", &self.scope.len())
            .field("can_undo", &self.manager.can_undo())
            .field("can_redo", &self.manager.can_redo())
            .finish()
    }
}

impl UndoHistory {
    /// Starts recording local edits of `doc` (roots are added with [`UndoHistory::track`]).
    pub fn new(doc: &Doc) -> Self {
        let options = Options {
            capture_timeout_millis: 0,
            tracked_origins: HashSet::new(),
            capture_transaction: None,
            timestamp: Arc::new(|| 0u64),
            init_undo_stack: Vec::new(),
            init_redo_stack: Vec::new(),
        };
        UndoHistory {
            manager: UndoManager::with_options(options),
            doc: doc.clone(),
            scope: HashSet::new(),
        }
    }

    /// Records local edits of the root `name` from now on, defining it as `kind` if it does not
    /// exist. Cheap when the root is already tracked.
    pub fn track(&mut self, name: &str, kind: RootKind) -> Result<()> {
        if self.scope.contains(name) {
            return Ok(());
        }
        self.doc.define_root(name, kind)?;
        // expand_scope subscribes to the document the first time: it must not be committing.
        drop(self.doc.write()?);
        let txn = self.doc.read()?;
        let root = txn.get_text(name);
        drop(txn);
        if let Some(root) = root {
            self.manager.expand_scope(&self.doc.inner, &root);
            self.scope.insert(Arc::from(name));
        }
        Ok(())
    }

    fn idle(&self) -> Result<()> {
        // UndoManager blocks on the document lock: make sure it is free instead.
        self.doc
            .inner
            .try_transact_mut()
            .map(drop)
            .map_err(|_| Error::DocBusy("undo/redo during a transaction"))
    }

    /// Reverts the last local step; `false` if there was nothing to undo.
    pub fn undo(&mut self) -> Result<bool> {
        if !self.manager.can_undo() {
            return Ok(false);
        }
        self.idle()?;
        Ok(self.manager.undo_blocking())
    }

    /// Re-applies the last undone step; `false` if there was nothing to redo.
    pub fn redo(&mut self) -> Result<bool> {
        if !self.manager.can_redo() {
            return Ok(false);
        }
        self.idle()?;
        Ok(self.manager.redo_blocking())
    }

    /// Whether there is a step to undo.
    pub fn can_undo(&self) -> bool {
        self.manager.can_undo()
    }

    /// Whether there is a step to redo.
    pub fn can_redo(&self) -> bool {
        self.manager.can_redo()
    }

    /// Forgets both stacks, releasing the deleted content they kept.
    pub fn clear(&mut self) -> Result<()> {
        self.idle()?;
        self.manager.clear_all();
        Ok(())
    }
}
