//! Whether the store can take writes: free space kept in reserve, and the last write's fate,
//! for `/healthz`, `/metrics` and the store itself.
//!
//! A full disk does not stop the relay: it refuses publishes `UNAVAILABLE` (retrying is safe)
//! and goes on serving what it stored. But a supervisor must see it, and the relay must keep
//! room for what SQLite writes besides entries (a WAL checkpoint copies the WAL's pages into the
//! database file, which grows by them). So the store keeps a reserve of free space: it refuses
//! to append while the file system holding the data directory has less than
//! `[limits] storage_reserve_mib` free, and accepts again as soon as it has. A failed write
//! (the disk filled anyway, an I/O error) marks storage degraded until a write succeeds.

use std::path::PathBuf;
use std::sync::Mutex;

/// Free space and write failures of the store's data directory. Shared between the sequencer
/// thread (which checks and reports) and the HTTP handlers (which read).
#[derive(Debug)]
pub struct StorageHealth {
    /// A directory on the file system the store writes to.
    dir: PathBuf,
    /// Free bytes below which the store refuses to append.
    reserve: u64,
    /// Why the last write failed, until a write succeeds.
    failure: Mutex<Option<String>>,
}

impl StorageHealth {
    /// The health of storage in `dir`, keeping `reserve` bytes free.
    pub fn new(dir: PathBuf, reserve: u64) -> Self {
        StorageHealth {
            dir,
            reserve,
            failure: Mutex::new(None),
        }
    }

    /// Bytes an unprivileged writer may still use on the data directory's file system (`None`
    /// when it cannot be read).
    pub fn free_bytes(&self) -> Option<u64> {
        rustix::fs::statvfs(&self.dir)
            .ok()
            .map(|fs| fs.f_bavail.saturating_mul(fs.f_frsize))
    }

    /// `Err` with a sentence for the operator when less than the reserve is free.
    pub fn check_space(&self) -> std::result::Result<(), String> {
        match self.free_bytes() {
            Some(free) if free < self.reserve => Err(format!(
                "storage: {} has {} KiB free, under the {} KiB the relay keeps in reserve \
                 ([limits] storage_reserve_mib): free space on it",
                self.dir.display(),
                free / 1024,
                self.reserve / 1024
            )),
            _ => Ok(()),
        }
    }

    /// Records that a write failed, and why.
    pub fn write_failed(&self, reason: &str) {
        if let Ok(mut failure) = self.failure.lock() {
            *failure = Some(reason.to_owned());
        }
    }

    /// Records that a write succeeded.
    pub fn write_succeeded(&self) {
        if let Ok(mut failure) = self.failure.lock() {
            if failure.is_some() {
                tracing::info!("storage writes succeed again");
            }
            *failure = None;
        }
    }

    /// `None` while storage is healthy; otherwise why it is degraded (free space under the
    /// reserve, or the last write failed).
    pub fn degraded(&self) -> Option<String> {
        if let Err(reason) = self.check_space() {
            return Some(reason);
        }
        self.failure.lock().ok().and_then(|failure| {
            failure
                .as_ref()
                .map(|reason| format!("the last write failed: {reason}"))
        })
    }

    /// The storage gauges in Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let degraded = u8::from(self.degraded().is_some());
        let _ = write!(
            out,
            "# HELP ants_relay_storage_degraded 1 while publishes are refused for storage: free \
             space under the reserve, or the last write failed.\n\
             # TYPE ants_relay_storage_degraded gauge\nants_relay_storage_degraded {degraded}\n"
        );
        if let Some(free) = self.free_bytes() {
            let _ = write!(
                out,
                "# HELP ants_relay_storage_free_bytes Free bytes on the data directory's file \
                 system.\n# TYPE ants_relay_storage_free_bytes gauge\n\
                 ants_relay_storage_free_bytes {free}\n\
                 # HELP ants_relay_storage_reserve_bytes Free bytes below which publishes are \
                 refused.\n# TYPE ants_relay_storage_reserve_bytes gauge\n\
                 ants_relay_storage_reserve_bytes {}\n",
                self.reserve
            );
        }
    }
}
