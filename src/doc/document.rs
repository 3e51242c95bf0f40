//! [`Doc`]: a Yrs document whose text, map and array roots are edited without transactions
//! leaking into the API, and exchanged in the Yjs binary formats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use yrs::types::{ToJson, TypeRef};
use yrs::updates::decoder::{Decode, Decoder};
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayRef, GetString, Map, MapRef, OffsetKind, Options, Origin, ReadTxn,
    StateVector, Text, TextRef, Transact, Transaction, TransactionMut, Update, WriteTxn,
};

use super::causal::{continues, HeldUpdates};
use super::observe::ObserverBook;
use super::value::DocValue;
use crate::error::{Error, Result};

/// Largest Yjs update (or snapshot) a document accepts in one call: 64 MiB.
pub const MAX_UPDATE_LEN: usize = 64 * 1024 * 1024;
/// Largest encoded state vector accepted: 1 MiB (about 100,000 clients).
pub const MAX_STATE_VECTOR_LEN: usize = 1024 * 1024;
/// Most edits in one [`Doc::apply_text_edits`] call.
pub const MAX_BATCH_EDITS: usize = 1 << 20;

/// Decodes a v1 update that must be exactly `bytes` (Yrs, like Yjs, stops reading after the
/// delete set and ignores whatever follows). `BAD_UPDATE` if it does not decode,
/// `TRAILING_BYTES` if bytes are left over.
fn decode_update_exact(bytes: &[u8]) -> Result<Update> {
    let mut decoder = yrs::updates::decoder::DecoderV1::from(bytes);
    let update = Update::decode(&mut decoder).map_err(|e| Error::BadUpdate(e.to_string()))?;
    let left = decoder
        .read_to_end()
        .map_err(|e| Error::BadUpdate(e.to_string()))?
        .len();
    if left > 0 {
        return Err(Error::TrailingBytes {
            what: "yjs update",
            count: left,
        });
    }
    Ok(update)
}

/// The transaction origin given to updates that came from elsewhere (apply_update). Observers
/// report them as not local, and undo never captures them.
pub(crate) const REMOTE_ORIGIN: &str = "ants-coord/remote";

/// The kind of shared type a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// A `Y.Text`.
    Text,
    /// A `Y.Map`.
    Map,
    /// A `Y.Array`.
    Array,
}

impl RootKind {
    /// The lowercase name (`text`, `map`, `array`).
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Text => "text",
            RootKind::Map => "map",
            RootKind::Array => "array",
        }
    }
}

/// One text edit of a batch: delete `delete` units at `index`, then insert `insert` there.
///
/// Indices and lengths count UTF-16 code units, as JavaScript strings and Yjs do.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct TextEdit {
    /// Where the edit happens.
    pub index: u32,
    /// How many units to delete at `index` (0 for a pure insertion).
    #[serde(default)]
    pub delete: u32,
    /// What to insert at `index` after the deletion (empty for a pure deletion).
    #[serde(default)]
    pub insert: String,
}

/// How to create a [`Doc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocOptions {
    /// The Yjs client id of this replica (what its edits are stamped with). `None` picks a random
    /// 32-bit id, as Yjs does. Two replicas editing with the same id corrupt each other.
    pub client_id: Option<u32>,
    /// Whether deleted content is garbage-collected at the end of each transaction (Yjs `gc`).
    pub gc: bool,
}

impl Default for DocOptions {
    fn default() -> Self {
        DocOptions {
            client_id: None,
            gc: true,
        }
    }
}

/// A shared document: text, map and array roots addressed by name, mergeable with every Yjs peer.
///
/// Cloning a `Doc` gives another handle to the same document. Every method opens and commits its
/// own transaction; none is left open between calls. A call made from inside an observer callback
/// (while the document is committing) fails with `DOC_BUSY` instead of deadlocking.
///
/// Text indices count UTF-16 code units (Yjs' `OffsetKind::Utf16`), so that positions agree with
/// JavaScript strings and with every Yjs peer.
#[derive(Clone)]
pub struct Doc {
    pub(crate) inner: yrs::Doc,
    pub(crate) observers: Arc<ObserverBook>,
    /// Updates waiting for the clocks before them (see `causal`).
    held: Arc<Mutex<HeldUpdates>>,
}

impl Default for Doc {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Doc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doc")
            .field("client_id", &self.client_id())
            .finish_non_exhaustive()
    }
}

fn kind_of(type_ref: &TypeRef) -> Option<&'static str> {
    match type_ref {
        TypeRef::Text => Some("text"),
        TypeRef::Map => Some("map"),
        TypeRef::Array => Some("array"),
        TypeRef::Undefined => None,
        TypeRef::XmlElement(_) | TypeRef::XmlFragment | TypeRef::XmlHook | TypeRef::XmlText => {
            Some("xml")
        }
        _ => Some("other"),
    }
}

fn utf16_len(text: &str) -> u64 {
    text.encode_utf16().count() as u64
}

fn check_len(what: &'static str, limit: usize, bytes: &[u8]) -> Result<()> {
    if bytes.len() > limit {
        return Err(Error::LimitExceeded {
            what,
            limit,
            got: bytes.len(),
        });
    }
    Ok(())
}

/// Decodes a v1 state vector (the format of `Y.encodeStateVector`).
pub(crate) fn decode_state_vector(bytes: &[u8]) -> Result<StateVector> {
    check_len("state vector length", MAX_STATE_VECTOR_LEN, bytes)?;
    StateVector::decode_v1(bytes).map_err(|e| Error::BadUpdate(format!("state vector: {e}")))
}

fn range_check(what: &'static str, index: u64, length: u64, len: u64) -> Result<()> {
    if index > len || length > len - index {
        return Err(Error::OutOfRange {
            what,
            index,
            length,
            len,
        });
    }
    Ok(())
}

impl Doc {
    /// A new empty document with a random client id and garbage collection on.
    pub fn new() -> Self {
        Self::with_options(DocOptions::default())
    }

    /// A new empty document with the given options. Without a client id and without secure
    /// randomness (workerd at global scope) the id falls back to 1; use
    /// [`Doc::try_with_options`] to get an error instead.
    pub fn with_options(options: DocOptions) -> Self {
        let client_id = options
            .client_id
            .unwrap_or_else(|| random_client_id().unwrap_or(1));
        Self::build(client_id, options.gc)
    }

    /// Like [`Doc::with_options`], failing with `RANDOMNESS_UNAVAILABLE` when a random client id
    /// is needed and the platform cannot provide one.
    pub fn try_with_options(options: DocOptions) -> Result<Self> {
        let client_id = match options.client_id {
            Some(id) => id,
            None => random_client_id()?,
        };
        Ok(Self::build(client_id, options.gc))
    }

    fn build(client_id: u32, gc: bool) -> Self {
        let mut yrs_options =
            Options::with_client_id(yrs::block::ClientID::new(u64::from(client_id)));
        yrs_options.offset_kind = OffsetKind::Utf16;
        yrs_options.skip_gc = !gc;
        Doc {
            inner: yrs::Doc::with_options(yrs_options),
            observers: Arc::new(ObserverBook::default()),
            held: Arc::default(),
        }
    }

    /// The Yjs client id this replica stamps its edits with.
    pub fn client_id(&self) -> u32 {
        self.inner.client_id().get() as u32
    }

    pub(crate) fn read(&self) -> Result<Transaction<'_>> {
        self.inner
            .try_transact()
            .map_err(|_| Error::DocBusy("a transaction is in progress"))
    }

    pub(crate) fn write(&self) -> Result<TransactionMut<'_>> {
        self.observers.drain_pending(&self.inner);
        self.inner
            .try_transact_mut()
            .map_err(|_| Error::DocBusy("a transaction is in progress"))
    }

    fn write_remote(&self) -> Result<TransactionMut<'_>> {
        self.observers.drain_pending(&self.inner);
        self.inner
            .try_transact_mut_with(Origin::from(REMOTE_ORIGIN))
            .map_err(|_| Error::DocBusy("a transaction is in progress"))
    }

    /// The kind of the root `name`, or `None` if it does not exist or its kind is not known yet
    /// (content received from a peer before any local use fixed its type).
    pub fn root_kind(&self, name: &str) -> Result<Option<RootKind>> {
        let txn = self.read()?;
        Ok(txn.get_text(name).and_then(|r| {
            match kind_of(<TextRef as AsRef<yrs::branch::Branch>>::as_ref(&r).type_ref()) {
                Some("text") => Some(RootKind::Text),
                Some("map") => Some(RootKind::Map),
                Some("array") => Some(RootKind::Array),
                _ => None,
            }
        }))
    }

    /// The names of all roots, sorted.
    pub fn root_names(&self) -> Result<Vec<String>> {
        let txn = self.read()?;
        let mut names: Vec<String> = txn.root_refs().map(|(name, _)| name.to_owned()).collect();
        names.sort();
        Ok(names)
    }

    /// Checks that root `name` is absent, untyped or of `expected` kind.
    fn check_kind<T: ReadTxn>(txn: &T, name: &str, expected: RootKind) -> Result<bool> {
        match txn.get_text(name) {
            None => Ok(false),
            Some(r) => {
                let branch: &yrs::branch::Branch = r.as_ref();
                match kind_of(branch.type_ref()) {
                    None => Ok(true),
                    Some(found) if found == expected.as_str() => Ok(true),
                    Some(found) => Err(Error::RootTypeMismatch {
                        name: name.to_owned(),
                        expected: expected.as_str(),
                        found,
                    }),
                }
            }
        }
    }

    fn text_root(txn: &mut TransactionMut, name: &str) -> Result<TextRef> {
        Self::check_kind(txn, name, RootKind::Text)?;
        Ok(txn.get_or_insert_text(name))
    }
    fn map_root(txn: &mut TransactionMut, name: &str) -> Result<MapRef> {
        Self::check_kind(txn, name, RootKind::Map)?;
        Ok(txn.get_or_insert_map(name))
    }
    fn array_root(txn: &mut TransactionMut, name: &str) -> Result<ArrayRef> {
        Self::check_kind(txn, name, RootKind::Array)?;
        Ok(txn.get_or_insert_array(name))
    }

    /// Creates the root `name` as a `kind` if it does not exist yet (fixing its kind if it was
    /// only known from a peer's update). Errors: `ROOT_TYPE_MISMATCH`.
    pub fn define_root(&self, name: &str, kind: RootKind) -> Result<()> {
        let mut txn = self.write()?;
        match kind {
            RootKind::Text => Self::text_root(&mut txn, name).map(drop),
            RootKind::Map => Self::map_root(&mut txn, name).map(drop),
            RootKind::Array => Self::array_root(&mut txn, name).map(drop),
        }
    }

    // ---- text ----

    /// Inserts `text` into the text root `name` at UTF-16 offset `index`.
    ///
    /// Errors: `OUT_OF_RANGE` if `index` is past the end, `ROOT_TYPE_MISMATCH`, `DOC_BUSY`.
    pub fn insert_text(&self, name: &str, index: u32, text: &str) -> Result<()> {
        let mut txn = self.write()?;
        let root = Self::text_root(&mut txn, name)?;
        range_check(
            "text insert",
            u64::from(index),
            0,
            u64::from(root.len(&txn)),
        )?;
        if !text.is_empty() {
            root.insert(&mut txn, index, text);
        }
        Ok(())
    }

    /// Deletes `length` UTF-16 units from the text root `name` starting at `index`.
    ///
    /// Errors: `OUT_OF_RANGE` if the range is not inside the text, `ROOT_TYPE_MISMATCH`, `DOC_BUSY`.
    pub fn delete_text(&self, name: &str, index: u32, length: u32) -> Result<()> {
        let mut txn = self.write()?;
        let root = Self::text_root(&mut txn, name)?;
        range_check(
            "text delete",
            u64::from(index),
            u64::from(length),
            u64::from(root.len(&txn)),
        )?;
        if length > 0 {
            root.remove_range(&mut txn, index, length);
        }
        Ok(())
    }

    /// Applies many text edits to the text root `name` in **one** transaction (one update, one
    /// observer call). Every edit is checked against the length the text will have when it is
    /// reached, before anything is applied: on `OUT_OF_RANGE` nothing changes. Consecutive edits
    /// that continue each other (typing, backspacing) are joined first (see `coalesce.rs`): the
    /// text is the same as applying them one by one, with fewer items for Yrs to walk.
    pub fn apply_text_edits(&self, name: &str, edits: &[TextEdit]) -> Result<()> {
        if edits.len() > MAX_BATCH_EDITS {
            return Err(Error::LimitExceeded {
                what: "edits in one batch",
                limit: MAX_BATCH_EDITS,
                got: edits.len(),
            });
        }
        let mut txn = self.write()?;
        let root = Self::text_root(&mut txn, name)?;
        let mut len = u64::from(root.len(&txn));
        for edit in edits {
            range_check(
                "text edit",
                u64::from(edit.index),
                u64::from(edit.delete),
                len,
            )?;
            len = len - u64::from(edit.delete) + utf16_len(&edit.insert);
            if len > u64::from(u32::MAX) {
                return Err(Error::LimitExceeded {
                    what: "text length",
                    limit: u32::MAX as usize,
                    got: len as usize,
                });
            }
        }
        for run in super::coalesce::coalesce(edits) {
            if run.delete > 0 {
                root.remove_range(&mut txn, run.index, run.delete);
            }
            if !run.insert.is_empty() {
                // A run whose deletions split a surrogate pair inserts U+FFFD there, as a JS
                // string would render it.
                root.insert(&mut txn, run.index, &String::from_utf16_lossy(&run.insert));
            }
        }
        Ok(())
    }

    /// The content of the text root `name` (empty if it does not exist).
    pub fn text(&self, name: &str) -> Result<String> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Text)? {
            return Ok(String::new());
        }
        Ok(txn
            .get_text(name)
            .map(|t| t.get_string(&txn))
            .unwrap_or_default())
    }

    /// The length of the text root `name` in UTF-16 code units.
    pub fn text_len(&self, name: &str) -> Result<u32> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Text)? {
            return Ok(0);
        }
        Ok(txn.get_text(name).map(|t| t.len(&txn)).unwrap_or_default())
    }

    // ---- map ----

    /// Sets `key` of the map root `name` to `value` (stored as a Yjs "any" value).
    pub fn set_map(&self, name: &str, key: &str, value: &DocValue) -> Result<()> {
        value.check_depth()?;
        let mut txn = self.write()?;
        let root = Self::map_root(&mut txn, name)?;
        root.insert(&mut txn, key, Any::from(value));
        Ok(())
    }

    /// Removes `key` from the map root `name`; says whether it was there.
    pub fn delete_map(&self, name: &str, key: &str) -> Result<bool> {
        let mut txn = self.write()?;
        let root = Self::map_root(&mut txn, name)?;
        Ok(root.remove(&mut txn, key).is_some())
    }

    /// The value of `key` in the map root `name`.
    pub fn map_value(&self, name: &str, key: &str) -> Result<Option<DocValue>> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Map)? {
            return Ok(None);
        }
        Ok(txn
            .get_map(name)
            .and_then(|m| m.get(&txn, key))
            .map(|out| DocValue::from(&out.to_json(&txn))))
    }

    /// The map root `name` as a value tree (empty if it does not exist).
    pub fn map(&self, name: &str) -> Result<BTreeMap<String, DocValue>> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Map)? {
            return Ok(BTreeMap::new());
        }
        match txn.get_map(name).map(|m| DocValue::from(&m.to_json(&txn))) {
            Some(DocValue::Map(entries)) => Ok(entries),
            _ => Ok(BTreeMap::new()),
        }
    }

    // ---- array ----

    /// Appends `values` to the array root `name`.
    pub fn push_array(&self, name: &str, values: &[DocValue]) -> Result<()> {
        values.iter().try_for_each(DocValue::check_depth)?;
        let mut txn = self.write()?;
        let root = Self::array_root(&mut txn, name)?;
        let len = root.len(&txn);
        if !values.is_empty() {
            root.insert_range(&mut txn, len, values.iter().map(Any::from));
        }
        Ok(())
    }

    /// Inserts `values` into the array root `name` before position `index`.
    pub fn insert_array(&self, name: &str, index: u32, values: &[DocValue]) -> Result<()> {
        values.iter().try_for_each(DocValue::check_depth)?;
        let mut txn = self.write()?;
        let root = Self::array_root(&mut txn, name)?;
        range_check(
            "array insert",
            u64::from(index),
            0,
            u64::from(root.len(&txn)),
        )?;
        if !values.is_empty() {
            root.insert_range(&mut txn, index, values.iter().map(Any::from));
        }
        Ok(())
    }

    /// Deletes `length` elements of the array root `name` starting at `index`.
    pub fn delete_array(&self, name: &str, index: u32, length: u32) -> Result<()> {
        let mut txn = self.write()?;
        let root = Self::array_root(&mut txn, name)?;
        range_check(
            "array delete",
            u64::from(index),
            u64::from(length),
            u64::from(root.len(&txn)),
        )?;
        if length > 0 {
            root.remove_range(&mut txn, index, length);
        }
        Ok(())
    }

    /// The array root `name` as a list of values (empty if it does not exist).
    pub fn array(&self, name: &str) -> Result<Vec<DocValue>> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Array)? {
            return Ok(Vec::new());
        }
        match txn
            .get_array(name)
            .map(|a| DocValue::from(&a.to_json(&txn)))
        {
            Some(DocValue::Array(items)) => Ok(items),
            _ => Ok(Vec::new()),
        }
    }

    /// The number of elements of the array root `name`.
    pub fn array_len(&self, name: &str) -> Result<u32> {
        let txn = self.read()?;
        if !Self::check_kind(&txn, name, RootKind::Array)? {
            return Ok(0);
        }
        Ok(txn.get_array(name).map(|a| a.len(&txn)).unwrap_or_default())
    }

    /// Every root whose kind is known, as a value tree: text as a string, maps as objects, arrays
    /// as lists. Roots whose kind is not yet known are left out.
    pub fn to_value(&self) -> Result<BTreeMap<String, DocValue>> {
        let txn = self.read()?;
        let mut out = BTreeMap::new();
        for (name, value) in txn.root_refs() {
            let branch_kind = match &value {
                yrs::Out::YText(t) => DocValue::String(t.get_string(&txn)),
                yrs::Out::YMap(m) => DocValue::from(&m.to_json(&txn)),
                yrs::Out::YArray(a) => DocValue::from(&a.to_json(&txn)),
                _ => continue,
            };
            out.insert(name.to_owned(), branch_kind);
        }
        Ok(out)
    }

    // ---- exchange (Yjs binary formats) ----

    /// The state vector, v1 encoding (`Y.encodeStateVector`).
    pub fn state_vector(&self) -> Result<Vec<u8>> {
        Ok(self.read()?.state_vector().encode_v1())
    }

    /// Everything this document has that a peer with `state_vector` (v1, as from
    /// [`Doc::state_vector`]) lacks, as a v1 update (`Y.encodeStateAsUpdate`). `None`: the whole
    /// document (a snapshot).
    pub fn encode_update(&self, state_vector: Option<&[u8]>) -> Result<Vec<u8>> {
        let sv = match state_vector {
            Some(bytes) => decode_state_vector(bytes)?,
            None => StateVector::default(),
        };
        let state = self.read()?.encode_state_as_update_v1(&sv);
        let held = self.held()?;
        if held.is_empty() {
            return Ok(state);
        }
        // Like the blocks Yrs holds, held updates travel on, so that a peer can integrate them
        // once it has what they wait for.
        let merged = yrs::merge_updates_v1(std::iter::once(&state[..]).chain(held.updates()))
            .map_err(|e| Error::BadUpdate(e.to_string()))?;
        yrs::diff_updates_v1(&merged, &sv.encode_v1()).map_err(|e| Error::BadUpdate(e.to_string()))
    }

    /// Like [`Doc::encode_update`] in update format v2 (`Y.encodeStateAsUpdateV2`); the state
    /// vector is still v1, as in Yjs.
    pub fn encode_update_v2(&self, state_vector: Option<&[u8]>) -> Result<Vec<u8>> {
        let sv = match state_vector {
            Some(bytes) => decode_state_vector(bytes)?,
            None => StateVector::default(),
        };
        let held = self.held()?;
        if held.is_empty() {
            return Ok(self.read()?.encode_state_as_update_v2(&sv));
        }
        drop(held);
        let v1 = self.encode_update(state_vector)?;
        let update = Update::decode_v1(&v1).map_err(|e| Error::BadUpdate(e.to_string()))?;
        Ok(update.encode_v2())
    }

    /// Integrates a v1 update from a peer (`Y.applyUpdate`). Applying the same update twice, or
    /// updates in any order, gives the same document; parts whose dependencies are missing wait
    /// inside the document until those arrive. An update that skips clocks of one of its clients
    /// waits whole, as Yjs keeps those blocks pending; see [`Doc::has_pending`].
    ///
    /// Errors: `LIMIT_EXCEEDED` over [`MAX_UPDATE_LEN`], or when the updates waiting for missing
    /// predecessors would pass [`super::MAX_HELD_UPDATES`] or [`super::MAX_HELD_BYTES`];
    /// `BAD_UPDATE` if the bytes do not decode; `DOC_BUSY`. Nothing is applied on an error.
    /// Like `Y.applyUpdate`, bytes after the update's delete set are ignored (signed entries
    /// must apply the same here as in Yjs); a transport refuses them with
    /// [`Doc::apply_update_exact`].
    pub fn apply_update(&self, update: &[u8]) -> Result<()> {
        check_len("update length", MAX_UPDATE_LEN, update)?;
        let update = Update::decode_v1(update).map_err(|e| Error::BadUpdate(e.to_string()))?;
        self.apply_decoded(update)
    }

    /// [`Doc::apply_update`] for an update that must be exactly `update`: `TRAILING_BYTES` if
    /// bytes follow its delete set. What y-protocols messages carry (see [`super::DocSync`]):
    /// bytes appended inside a message's length prefix would otherwise be stored and forwarded
    /// with the update they ride on.
    pub fn apply_update_exact(&self, update: &[u8]) -> Result<()> {
        check_len("update length", MAX_UPDATE_LEN, update)?;
        self.apply_decoded(decode_update_exact(update)?)
    }

    /// Integrates a v2 update (`Y.applyUpdateV2`).
    pub fn apply_update_v2(&self, update: &[u8]) -> Result<()> {
        check_len("update length", MAX_UPDATE_LEN, update)?;
        let update = Update::decode_v2(update).map_err(|e| Error::BadUpdate(e.to_string()))?;
        self.apply_decoded(update)
    }

    pub(crate) fn apply_decoded(&self, update: Update) -> Result<()> {
        let mut held = self.held()?;
        let state = self.read()?.state_vector();
        let insertions = update.insertions(true);
        if continues(&insertions, &state) {
            self.integrate(update)?;
        } else {
            held.hold(update.encode_v1(), insertions)?;
        }
        // What was integrated may fill the gap held updates wait for, and a newly held update
        // may fill another's. Each release takes updates out of the hold, so this ends. The
        // update given is applied (or held) by now: should Yrs refuse a held one, which decoded
        // when it arrived, that one is dropped rather than reported as this call's error.
        loop {
            let Ok(state) = self.read().map(|txn| txn.state_vector()) else {
                return Ok(());
            };
            match held.release(&state) {
                Ok(Some(update)) => {
                    let _ = self.integrate(update);
                }
                Ok(None) | Err(_) => return Ok(()),
            }
        }
    }

    fn integrate(&self, update: Update) -> Result<()> {
        let mut txn = self.write_remote()?;
        txn.apply_update(update)
            .map_err(|e| Error::BadUpdate(e.to_string()))
    }

    fn held(&self) -> Result<MutexGuard<'_, HeldUpdates>> {
        match self.held.try_lock() {
            Ok(held) => Ok(held),
            Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::DocBusy("an update is being applied")),
        }
    }

    /// Whether parts of applied updates still wait for updates they depend on.
    pub fn has_pending(&self) -> Result<bool> {
        let held = !self.held()?.is_empty();
        let txn = self.read()?;
        Ok(held || txn.has_missing_updates())
    }

    /// Compaction: a copy of this document rebuilt from its own snapshot, with garbage
    /// collection on. See [`super::compact_updates`] for what this can and cannot reclaim.
    pub fn compacted(&self) -> Result<Doc> {
        let snapshot = self.encode_update(None)?;
        let fresh = Doc::with_options(DocOptions {
            client_id: Some(self.client_id()),
            gc: true,
        });
        for name in self.root_names()? {
            if let Some(kind) = self.root_kind(&name)? {
                fresh.define_root(&name, kind)?;
            }
        }
        fresh.apply_update(&snapshot)?;
        Ok(fresh)
    }
}

/// A random 32-bit client id (Yjs draws `random.uint32()`; ids above 2^32 do not survive a trip
/// through Yjs).
fn random_client_id() -> Result<u32> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::RandomnessUnavailable(e.to_string()))?;
    Ok(u32::from_le_bytes(bytes))
}
