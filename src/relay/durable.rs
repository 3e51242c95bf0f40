//! The durability thread: makes committed batches durable, then announces them.
//!
//! The sequencer commits with `synchronous = NORMAL` (see [`super::store`]): `COMMIT` writes the
//! batch to the WAL file and returns without waiting for the disk. The sequencer then hands the
//! batch's [`Announcement`] (its entries for the fan-out hub, the answer to each publish, the
//! replica events to push) to this thread and goes on with the next batch. This thread takes
//! every announcement handed over so far, syncs the WAL file once (`fdatasync`), and only then
//! announces them, in order. A sync that returns covers every byte written to the file before it
//! began, so no receipt, entry or event leaves before the entry is on disk — the promise
//! `synchronous = FULL` kept — but the sequencer numbers and writes batch N+1 while batch N's
//! sync runs instead of waiting for it.
//!
//! A failed sync cannot be retried: the kernel may have dropped the unwritten pages, and a later
//! sync would succeed without them. The thread then refuses everything it holds and everything
//! handed to it later with `UNAVAILABLE` and raises [`Durability::failed`], after which the
//! sequencer refuses every publish; a restart recovers whatever reached the disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use super::hub::{CachedEntry, Hub};
use super::metrics::Metrics;
use super::sequencer::{AgentConnections, ReplyTo};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::Hash;
use crate::op::OpId;
use crate::wire::{Body, Frame};

/// The answer to one publish of a batch, sent once the batch is durable.
#[derive(Debug)]
pub struct Answer {
    /// Where to send it.
    pub reply: ReplyTo,
    /// The publish's request id.
    pub request_id: u32,
    /// The receipt (`seq`, op id, signed receipt bytes) or the refusal.
    pub outcome: Result<(u64, OpId, Vec<u8>)>,
    /// When the relay received the publish (for the publish-to-receipt metric).
    pub received_at: Instant,
}

/// What one committed batch tells the world once it is durable.
#[derive(Debug, Default)]
pub struct Announcement {
    /// The batch's entries per topic, in sequence order, and the topic's root after them.
    pub entries: Vec<(String, Vec<CachedEntry>, Hash)>,
    /// The answer to each publish of the batch, in order.
    pub answers: Vec<Answer>,
    /// Replica events for agents (compensations), pushed after the answers.
    pub pushes: Vec<(AgentId, Frame)>,
    /// When the batch began (for the batch-time metric; `None`: not a batch of publishes).
    pub started: Option<Instant>,
}

/// Makes written data durable.
pub trait Syncer: Send {
    /// Returns once everything written before the call is on disk.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// Syncs a SQLite database's WAL file through a handle of its own.
#[derive(Debug)]
pub struct WalSyncer {
    path: PathBuf,
    /// The open WAL file and its inode number.
    file: Option<(File, u64)>,
}

impl WalSyncer {
    /// The syncer of the WAL of the database at `db_path` (`<db_path>-wal`).
    pub fn new(db_path: &Path) -> Self {
        let mut path = db_path.as_os_str().to_owned();
        path.push("-wal");
        WalSyncer {
            path: PathBuf::from(path),
            file: None,
        }
    }
}

impl Syncer for WalSyncer {
    fn sync(&mut self) -> std::io::Result<()> {
        // SQLite keeps its WAL file while the database is open, but should it ever make a new
        // one (a new inode), sync that: the old one's content was checkpointed before it went.
        let inode = std::fs::metadata(&self.path)?.ino();
        if self.file.as_ref().map(|(_, known)| *known) != Some(inode) {
            let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
            let inode = file.metadata()?.ino();
            // A new file's directory entry must be durable too (SQLite syncs it on the first
            // sync of a new WAL when it syncs the WAL itself).
            if let Some(dir) = self.path.parent() {
                File::open(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                })?
                .sync_all()?;
            }
            self.file = Some((file, inode));
        }
        match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// The handle of the durability thread: hand it announcements; dropping it (after the last
/// hand-over) lets the thread announce what it holds and end.
#[derive(Debug)]
pub struct Durability {
    announcements: Option<Sender<Announcement>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    audience: Audience,
}

/// Where announcements go: the hub, the connections, the metrics.
#[derive(Debug, Clone)]
pub struct Audience {
    /// The fan-out hub.
    pub hub: Arc<Hub>,
    /// Every authenticated connection, by agent (for pushed events).
    pub agents: Arc<AgentConnections>,
    /// The relay's metrics.
    pub metrics: Arc<Metrics>,
}

impl Durability {
    /// Starts the durability thread.
    ///
    /// Errors: `UNAVAILABLE` when the thread cannot be started.
    pub fn start(syncer: impl Syncer + 'static, audience: Audience) -> Result<Self> {
        let (announcements, received) = std::sync::mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let raised = failed.clone();
        let told = audience.clone();
        let thread = std::thread::Builder::new()
            .name("ants-durable".into())
            .spawn(move || run(&received, syncer, &told, &raised))
            .map_err(|e| Error::Unavailable(format!("cannot start the durability thread: {e}")))?;
        Ok(Durability {
            announcements: Some(announcements),
            thread: Some(thread),
            failed,
            audience,
        })
    }

    /// Hands over a committed batch, to be announced once durable.
    pub fn hand_over(&self, announcement: Announcement) {
        let sent = self
            .announcements
            .as_ref()
            .map(|announcements| announcements.send(announcement));
        if let Some(Err(std::sync::mpsc::SendError(announcement))) = sent {
            // The thread is gone: nothing can be made durable any more.
            self.failed.store(true, Ordering::Release);
            announce(announcement, &self.audience, Some(&unavailable()));
        }
    }

    /// Whether a sync failed: nothing more can be acknowledged until the relay restarts.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The flag behind [`Durability::failed`], for whoever reports the relay's health.
    pub fn failure_flag(&self) -> Arc<AtomicBool> {
        self.failed.clone()
    }
}

impl Drop for Durability {
    /// Waits until everything handed over is announced.
    fn drop(&mut self) {
        self.announcements = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The refusal of every publish once a sync has failed.
pub(crate) fn unavailable() -> Error {
    Error::Unavailable("the relay could not make its storage durable; restart it".into())
}

fn run(
    received: &Receiver<Announcement>,
    mut syncer: impl Syncer,
    audience: &Audience,
    failed: &AtomicBool,
) {
    while let Ok(first) = received.recv() {
        let mut group = vec![first];
        group.extend(received.try_iter());
        if !failed.load(Ordering::Acquire) {
            let started = Instant::now();
            match syncer.sync() {
                Ok(()) => audience.metrics.fsync_latency(started.elapsed()),
                Err(error) => {
                    tracing::error!(%error, "WAL sync failed: refusing every publish until restart");
                    failed.store(true, Ordering::Release);
                }
            }
        }
        let refusal = failed.load(Ordering::Acquire).then(unavailable);
        for announcement in group {
            announce(announcement, audience, refusal.as_ref());
        }
    }
}

/// Announces a durable batch; with `refusal`, answers every publish of it with that error
/// instead and announces nothing else.
fn announce(announcement: Announcement, audience: &Audience, refusal: Option<&Error>) {
    if refusal.is_none() {
        // Entries first, so a client holding a receipt that then subscribes finds its entry
        // below the head.
        for (topic, entries, root) in announcement.entries {
            audience.hub.append(&topic, entries, root);
        }
        if let Some(started) = announcement.started {
            audience
                .metrics
                .batch(announcement.answers.len(), started.elapsed());
        }
    }
    for answer in announcement.answers {
        let outcome = match refusal {
            Some(refusal) => Err(refusal.clone()),
            None => answer.outcome,
        };
        let frame = match outcome {
            Ok((seq, op_id, receipt)) => {
                audience.metrics.accepted(answer.received_at.elapsed());
                Frame::new(
                    answer.request_id,
                    Body::Receipt {
                        seq,
                        op_id,
                        receipt,
                    },
                )
            }
            Err(error) => {
                audience.metrics.refused(error.code());
                Frame::error(answer.request_id, &error)
            }
        };
        answer.reply.send(&frame);
    }
    if refusal.is_none() {
        // Replica events right behind the receipts: the loser learns in one round trip.
        for (agent, frame) in announcement.pushes {
            audience.agents.send(&agent, &frame);
        }
    }
}

/// The next frame queued for a connection, waiting up to 10 s for it (tests only: answers
/// come from the durability thread).
#[cfg(test)]
pub(crate) fn next_frame(answers: &mut tokio::sync::mpsc::Receiver<Vec<u8>>) -> Frame {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(bytes) = answers.try_recv() {
            return Frame::decode(&bytes).unwrap();
        }
        assert!(Instant::now() < deadline, "no frame within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// A syncer that reports each call and returns only when told to, with the given result.
    struct Gate {
        calls: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<std::io::Result<()>>,
    }

    impl Syncer for Gate {
        fn sync(&mut self) -> std::io::Result<()> {
            let _ = self.calls.send(());
            self.release
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("gate dropped")))
        }
    }

    fn batch(reply: &ReplyTo, request_id: u32, seq: u64) -> Announcement {
        Announcement {
            entries: vec![(
                "t".into(),
                vec![CachedEntry {
                    seq,
                    bytes: Arc::from(vec![seq as u8]),
                    committed_at: Some(Instant::now()),
                }],
                [seq as u8; 32],
            )],
            answers: vec![Answer {
                reply: reply.clone(),
                request_id,
                outcome: Ok((seq, OpId([seq as u8; 32]), vec![1])),
                received_at: Instant::now(),
            }],
            pushes: vec![],
            started: Some(Instant::now()),
        }
    }

    /// A durability thread behind a [`Gate`], with its hub and metrics, and one connection.
    struct Gated {
        durability: Durability,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        /// One message per sync begun.
        calls: std::sync::mpsc::Receiver<()>,
        /// Ends the sync under way with this result.
        release: std::sync::mpsc::Sender<std::io::Result<()>>,
        reply: ReplyTo,
        answers: mpsc::Receiver<Vec<u8>>,
    }

    fn gated() -> Gated {
        let (calls_tx, calls) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let hub = Arc::new(Hub::new(16));
        let metrics = Arc::new(Metrics::default());
        let audience = Audience {
            hub: hub.clone(),
            agents: Arc::default(),
            metrics: metrics.clone(),
        };
        let gate = Gate {
            calls: calls_tx,
            release: release_rx,
        };
        let (frames, answers) = mpsc::channel(16);
        Gated {
            durability: Durability::start(gate, audience).unwrap(),
            hub,
            metrics,
            calls,
            release,
            reply: ReplyTo {
                frames,
                overflowed: Arc::default(),
                wake: Arc::default(),
            },
            answers,
        }
    }

    #[test]
    fn nothing_is_announced_before_the_sync_that_covers_it_returns() {
        let mut g = gated();
        g.durability.hand_over(batch(&g.reply, 1, 0));
        g.calls.recv().unwrap();
        // The sync is under way: batch 0 is neither answered nor in the hub, and batch 1,
        // handed over meanwhile, waits for a sync of its own.
        g.durability.hand_over(batch(&g.reply, 2, 1));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(g.answers.try_recv().is_err());
        assert_eq!(g.hub.head("t"), 0);
        g.release.send(Ok(())).unwrap();
        assert!(matches!(
            next_frame(&mut g.answers).body,
            Body::Receipt { seq: 0, .. }
        ));
        assert_eq!(g.hub.head("t"), 1);
        g.calls.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(g.answers.try_recv().is_err());
        g.release.send(Ok(())).unwrap();
        assert!(matches!(
            next_frame(&mut g.answers).body,
            Body::Receipt { seq: 1, .. }
        ));
        assert_eq!(g.hub.head("t"), 2);
        assert!(!g.durability.failed());
    }

    #[test]
    fn a_failed_sync_refuses_its_batches_and_every_later_one() {
        let mut g = gated();
        g.durability.hand_over(batch(&g.reply, 1, 0));
        g.calls.recv().unwrap();
        g.release
            .send(Err(std::io::Error::other("disk gone")))
            .unwrap();
        let code = |frame: Frame| match frame.body {
            Body::Error { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(next_frame(&mut g.answers)), "UNAVAILABLE");
        // No further sync is even tried: a later batch is refused at once.
        g.durability.hand_over(batch(&g.reply, 2, 1));
        assert_eq!(code(next_frame(&mut g.answers)), "UNAVAILABLE");
        assert!(g.calls.try_recv().is_err());
        assert!(g.durability.failed());
        assert_eq!(g.hub.head("t"), 0, "nothing reached the hub");
        drop(g.durability);
        assert!(g
            .metrics
            .render()
            .contains("ants_relay_refused_total{code=\"UNAVAILABLE\"} 2"));
    }

    #[test]
    fn the_wal_syncer_syncs_the_file_sqlite_writes() {
        let dir = std::env::temp_dir().join(format!("ants-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.sqlite3");
        let mut syncer = WalSyncer::new(&db);
        // No WAL yet: an error, not a silent success.
        assert!(syncer.sync().is_err());
        std::fs::write(dir.join("x.sqlite3-wal"), b"frames").unwrap();
        syncer.sync().unwrap();
        // A replaced file (new inode) is opened and synced in its turn.
        std::fs::remove_file(dir.join("x.sqlite3-wal")).unwrap();
        std::fs::write(dir.join("x.sqlite3-wal"), b"new").unwrap();
        syncer.sync().unwrap();
        let inode = std::fs::metadata(dir.join("x.sqlite3-wal")).unwrap().ino();
        assert_eq!(syncer.file.as_ref().map(|(_, i)| *i), Some(inode));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
