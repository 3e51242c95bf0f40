//! Observing a document: one callback per committed transaction with a summary of what changed.
//!
//! A subscription is a value: dropping it unsubscribes. If it is dropped while the document is
//! committing (from inside a callback), the removal is queued and done by the next call that opens
//! a transaction, so no callback is ever leaked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use yrs::{Origin, ReadTxn};

use super::document::{Doc, RootKind, REMOTE_ORIGIN};
use crate::error::{Error, Result};

/// What one committed transaction changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocChange {
    /// `true` for edits made through this document (including undo/redo), `false` for updates
    /// applied from peers.
    pub local: bool,
    /// The roots whose content (or nested content) changed, sorted by name.
    pub roots: Vec<ChangedRoot>,
    /// The transaction as a v1 update: send it to peers as is.
    #[serde(with = "bytes_as_vec")]
    pub update: Vec<u8>,
}

mod bytes_as_vec {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }
}

/// A root named in a [`DocChange`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangedRoot {
    /// The root's name.
    pub name: String,
    /// Its kind, when known.
    pub kind: Option<RootKind>,
}

/// Book-keeping shared by a document and its subscriptions.
#[derive(Debug, Default)]
pub(crate) struct ObserverBook {
    next_key: AtomicU64,
    /// Keys whose unsubscription had to wait for the document to be idle.
    pending: Mutex<Vec<Origin>>,
    /// Number of live subscriptions (for leak tests and diagnostics).
    live: AtomicU64,
}

impl ObserverBook {
    pub(crate) fn drain_pending(&self, doc: &yrs::Doc) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        pending.retain(|key| doc.unobserve_update_v1(key.clone()).is_err());
    }
}

/// A live observer. Dropping it (or calling [`DocSubscription::unsubscribe`]) removes the callback.
pub struct DocSubscription {
    doc: yrs::Doc,
    book: Arc<ObserverBook>,
    key: Option<Origin>,
}

impl core::fmt::Debug for DocSubscription {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DocSubscription")
            .field("active", &self.key.is_some())
            .finish()
    }
}

impl DocSubscription {
    /// Removes the callback now (idempotent).
    pub fn unsubscribe(&mut self) {
        if let Some(key) = self.key.take() {
            self.book.live.fetch_sub(1, Ordering::Relaxed);
            if self.doc.unobserve_update_v1(key.clone()).is_err() {
                if let Ok(mut pending) = self.book.pending.lock() {
                    pending.push(key);
                }
            }
        }
    }
}

impl Drop for DocSubscription {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

fn root_kind(out: &yrs::Out) -> Option<RootKind> {
    match out {
        yrs::Out::YText(_) => Some(RootKind::Text),
        yrs::Out::YMap(_) => Some(RootKind::Map),
        yrs::Out::YArray(_) => Some(RootKind::Array),
        _ => None,
    }
}

fn branch_of(out: &yrs::Out) -> Option<yrs::branch::BranchPtr> {
    use yrs::branch::BranchPtr;
    match out {
        yrs::Out::YText(t) => Some(BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(t))),
        yrs::Out::YMap(m) => Some(BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(m))),
        yrs::Out::YArray(a) => Some(BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(a))),
        yrs::Out::UndefinedRef(b) => Some(*b),
        _ => None,
    }
}

impl Doc {
    /// Calls `callback` after every transaction that changed the document, with a
    /// [`DocChange`]. Returns the subscription; dropping it stops the calls.
    ///
    /// The callback runs while the document is committing: document calls made from inside it
    /// fail with `DOC_BUSY`.
    pub fn observe<F>(&self, callback: F) -> Result<DocSubscription>
    where
        F: Fn(&DocChange) + 'static,
    {
        self.observers.drain_pending(&self.inner);
        let n = self.observers.next_key.fetch_add(1, Ordering::Relaxed);
        let key = Origin::from(format!("ants-coord/observer/{n}").as_str());
        let remote = Origin::from(REMOTE_ORIGIN);
        self.inner
            .observe_update_v1(key.clone(), move |txn, event| {
                let changed = txn.changed_parent_types();
                let mut roots: Vec<ChangedRoot> = txn
                    .root_refs()
                    .filter(|(_, out)| branch_of(out).is_some_and(|b| changed.contains(&b)))
                    .map(|(name, out)| ChangedRoot {
                        name: name.to_owned(),
                        kind: root_kind(&out),
                    })
                    .collect();
                roots.sort_by(|a, b| a.name.cmp(&b.name));
                let change = DocChange {
                    local: txn.origin() != Some(&remote),
                    roots,
                    update: event.update.clone(),
                };
                callback(&change);
            })
            .map_err(|_| Error::DocBusy("cannot subscribe during a transaction"))?;
        self.observers.live.fetch_add(1, Ordering::Relaxed);
        Ok(DocSubscription {
            doc: self.inner.clone(),
            book: self.observers.clone(),
            key: Some(key),
        })
    }

    /// How many subscriptions are live (for leak checks).
    pub fn observer_count(&self) -> u64 {
        self.observers.live.load(Ordering::Relaxed)
    }
}
