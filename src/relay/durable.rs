//! The durability thread: waits until committed batches are durable, then announces them.
//!
//! The sequencer appends a batch to its store ([`super::store::Store::append`]), which returns
//! once the batch is written but not yet durable, and hands the batch's [`Announcement`] (its
//! entries for the fan-out hub, the answer to each publish, the replica events to push) to this
//! thread with the append's ticket, and goes on with the next batch. This thread waits for each
//! ticket in turn ([`super::store::Acks::wait`]: for SQLite one WAL sync covers every batch
//! written before it began) and only then announces the batch. So no receipt, entry or event
//! leaves before the store holds it durably, yet the sequencer numbers and writes batch N+1
//! while batch N is made durable.
//!
//! A store that cannot promise durability any more ([`AppendError::Broken`]: a failed sync
//! cannot be retried, the kernel may have dropped the unwritten pages) makes this thread refuse
//! everything it holds and everything handed to it later with `UNAVAILABLE` and raise
//! [`Durability::failed`], after which the sequencer refuses every publish; a restart recovers
//! whatever reached the disk. A conflict or a passing unavailability refuses only that batch
//! (retrying is safe) and asks the sequencer to reload its heads ([`Durability::take_reload`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hub::{CachedEntry, Hub};
use super::metrics::Metrics;
use super::reply::{AgentConnections, ReplyTo};
use super::store::{Acks, AppendError};
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
    /// The op's topic (a cluster frontend receipts an op once its entry is in the hub).
    pub topic: String,
    /// The receipt (`seq`, op id, signed receipt bytes) or the refusal.
    pub outcome: Result<(u64, OpId, Vec<u8>)>,
    /// When the relay received the publish (for the publish-to-receipt metric).
    pub received_at: Instant,
    /// Whether the op was stored before and this is the original receipt again (a retry),
    /// counted apart from newly stored ops.
    pub retry: bool,
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

/// The handle of the durability thread: hand it announcements; dropping it (after the last
/// hand-over) lets the thread announce what it holds and end.
#[derive(Debug)]
pub struct Durability<A: Acks> {
    announcements: Option<Sender<(Announcement, Option<A::Ticket>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    failed: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    audience: Audience,
}

/// How a durable batch's entries reach the fan-out hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOut {
    /// The durability thread appends them, before the batch's receipts (one relay process:
    /// its sequencer is the hub's only source).
    Announce,
    /// A follower of the replicated log appends them, in the log's order, whoever sequenced
    /// them (a cluster frontend, [`crate::relay::jetstream::follower`]). The durability thread
    /// appends nothing; it sends a batch's receipts once the hub holds the entry of every op
    /// they receipt (new, or the original of a retry), so that a client holding a receipt
    /// finds its entry on this frontend, or after `patience`
    /// anyway (the entry is durable; the follower is late, and says so in the health check).
    Followed {
        /// The longest a batch's receipts wait for the follower.
        patience: Duration,
    },
}

/// Where announcements go: the hub, the connections, the metrics.
#[derive(Debug, Clone)]
pub struct Audience {
    /// How entries reach the hub.
    pub fan_out: FanOut,
    /// The fan-out hub.
    pub hub: Arc<Hub>,
    /// Every authenticated connection, by agent (for pushed events).
    pub agents: Arc<AgentConnections>,
    /// Where pushed events also go, for agents connected elsewhere (a cluster's other
    /// frontends; `None`: this relay's connections are all there is).
    pub pushes: Option<Arc<dyn PushBus>>,
    /// The relay's metrics.
    pub metrics: Arc<Metrics>,
}

/// Carries a frame pushed to an agent (a replica event, PROTOCOL.md 8.5) to the other
/// frontends of a cluster, whose connections of that agent get it too.
pub trait PushBus: Send + Sync + std::fmt::Debug {
    /// Sends `frame` for `agent` to the other frontends (best effort, never blocking).
    fn push(&self, agent: &AgentId, frame: &Frame);
}

impl<A: Acks> Durability<A> {
    /// Starts the durability thread, which waits for tickets with `acks`.
    ///
    /// Errors: `UNAVAILABLE` when the thread cannot be started.
    pub fn start(acks: A, audience: Audience) -> Result<Self> {
        let (announcements, received) = std::sync::mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let flags = Flags {
            failed: failed.clone(),
            reload: reload.clone(),
        };
        let told = audience.clone();
        let thread = std::thread::Builder::new()
            .name("ants-durable".into())
            .spawn(move || run(&received, acks, &told, &flags))
            .map_err(|e| Error::Unavailable(format!("cannot start the durability thread: {e}")))?;
        Ok(Durability {
            announcements: Some(announcements),
            thread: Some(thread),
            failed,
            reload,
            audience,
        })
    }

    /// Hands over a batch, to be announced once `ticket` is durable (`None`: nothing was
    /// appended, e.g. only refusals; announced in its turn without waiting).
    pub fn hand_over(&self, announcement: Announcement, ticket: Option<A::Ticket>) {
        let sent = self
            .announcements
            .as_ref()
            .map(|announcements| announcements.send((announcement, ticket)));
        if let Some(Err(std::sync::mpsc::SendError((announcement, _)))) = sent {
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

    /// Whether a batch was refused since the last call because the store conflicted or was
    /// unavailable: the sequencer's heads may be ahead of the store, reload them. Clears it.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::AcqRel)
    }
}

impl<A: Acks> Drop for Durability<A> {
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

/// What the durability thread raises for the sequencer.
struct Flags {
    failed: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

fn run<A: Acks>(
    received: &Receiver<(Announcement, Option<A::Ticket>)>,
    mut acks: A,
    audience: &Audience,
    flags: &Flags,
) {
    while let Ok(first) = received.recv() {
        let mut group = vec![first];
        group.extend(received.try_iter());
        // One wait per group is timed: with SQLite the first one syncs for the whole group.
        let mut timed = false;
        for (announcement, ticket) in group {
            let refusal = match ticket {
                _ if flags.failed.load(Ordering::Acquire) => Some(unavailable()),
                None => None,
                Some(ticket) => {
                    let started = Instant::now();
                    match acks.wait(&ticket) {
                        Ok(()) => {
                            if !std::mem::replace(&mut timed, true) {
                                audience.metrics.fsync_latency(started.elapsed());
                            }
                            None
                        }
                        Err(AppendError::Broken(reason)) => {
                            tracing::error!(%reason, "storage broken: refusing every publish until restart");
                            flags.failed.store(true, Ordering::Release);
                            Some(unavailable())
                        }
                        Err(error) => {
                            tracing::warn!(?error, "a batch was not stored: refused, heads reload");
                            flags.reload.store(true, Ordering::Release);
                            Some(Error::from(error))
                        }
                    }
                }
            };
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
        match audience.fan_out {
            FanOut::Announce => {
                for (topic, entries, root) in announcement.entries {
                    audience.hub.append(&topic, entries, root);
                }
            }
            FanOut::Followed { patience } => {
                // Every receipted op's entry, new or the original of a retry, first reaches
                // this frontend's hub: per topic, up to the highest receipted seq.
                let mut owed: Vec<(&str, u64)> = Vec::new();
                for answer in &announcement.answers {
                    let Ok((seq, _, _)) = &answer.outcome else {
                        continue;
                    };
                    match owed.iter_mut().find(|(topic, _)| *topic == answer.topic) {
                        Some((_, size)) => *size = (*size).max(seq + 1),
                        None => owed.push((&answer.topic, seq + 1)),
                    }
                }
                let deadline = Instant::now() + patience;
                for (topic, size) in owed {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !audience.hub.wait_for(topic, size, left) {
                        tracing::warn!(
                            topic,
                            size,
                            "the follower has not applied these entries yet; receipts sent anyway"
                        );
                    }
                }
            }
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
                let elapsed = answer.received_at.elapsed();
                if answer.retry {
                    audience.metrics.retried(elapsed);
                } else {
                    audience.metrics.accepted(elapsed);
                }
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
            if let Some(bus) = &audience.pushes {
                bus.push(&agent, &frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::reply::{next_frame, SendBudget};
    use tokio::sync::mpsc;

    /// Acks that report each wait and return only when told to, with the given result.
    struct Gate {
        calls: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<std::result::Result<(), AppendError>>,
    }

    impl Acks for Gate {
        type Ticket = u64;

        fn wait(&mut self, _ticket: &u64) -> std::result::Result<(), AppendError> {
            let _ = self.calls.send(());
            self.release
                .recv()
                .unwrap_or_else(|_| Err(AppendError::Broken("gate dropped".into())))
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
                topic: "t".into(),
                outcome: Ok((seq, OpId([seq as u8; 32]), vec![1])),
                received_at: Instant::now(),
                retry: false,
            }],
            pushes: vec![],
            started: Some(Instant::now()),
        }
    }

    /// A durability thread behind a [`Gate`], with its hub and metrics, and one connection.
    struct Gated {
        durability: Durability<Gate>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        /// One message per sync begun.
        calls: std::sync::mpsc::Receiver<()>,
        /// Ends the sync under way with this result.
        release: std::sync::mpsc::Sender<std::result::Result<(), AppendError>>,
        reply: ReplyTo,
        answers: mpsc::Receiver<Vec<u8>>,
    }

    fn gated() -> Gated {
        gated_with(FanOut::Announce)
    }

    fn gated_with(fan_out: FanOut) -> Gated {
        let (calls_tx, calls) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let hub = Arc::new(Hub::new(16));
        let metrics = Arc::new(Metrics::default());
        let audience = Audience {
            fan_out,
            hub: hub.clone(),
            agents: Arc::default(),
            pushes: None,
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
            reply: ReplyTo::new(frames, Arc::default(), SendBudget::unbounded()),
            answers,
        }
    }

    #[test]
    fn nothing_is_announced_before_the_sync_that_covers_it_returns() {
        let mut g = gated();
        g.durability.hand_over(batch(&g.reply, 1, 0), Some(0));
        g.calls.recv().unwrap();
        // The sync is under way: batch 0 is neither answered nor in the hub, and batch 1,
        // handed over meanwhile, waits for a sync of its own.
        g.durability.hand_over(batch(&g.reply, 2, 1), Some(1));
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
    fn a_followed_batch_is_receipted_once_the_follower_applied_it() {
        let patience = Duration::from_secs(600);
        let mut g = gated_with(FanOut::Followed { patience });
        g.durability.hand_over(batch(&g.reply, 1, 0), Some(0));
        g.calls.recv().unwrap();
        g.release.send(Ok(())).unwrap();
        // Durable, but the hub (fed by the follower only) does not hold it yet: no receipt.
        std::thread::sleep(Duration::from_millis(50));
        assert!(g.answers.try_recv().is_err());
        assert_eq!(g.hub.head("t"), 0, "the durability thread appends nothing");
        g.hub.append(
            "t",
            vec![CachedEntry {
                seq: 0,
                bytes: Arc::from(vec![0]),
                committed_at: None,
            }],
            [0; 32],
        );
        assert!(matches!(
            next_frame(&mut g.answers).body,
            Body::Receipt { seq: 0, .. }
        ));
        assert_eq!(g.hub.head("t"), 1);
    }

    #[test]
    fn a_followed_batch_is_receipted_anyway_once_its_patience_ran_out() {
        let mut g = gated_with(FanOut::Followed {
            patience: Duration::ZERO,
        });
        g.durability.hand_over(batch(&g.reply, 1, 0), Some(0));
        g.calls.recv().unwrap();
        g.release.send(Ok(())).unwrap();
        assert!(matches!(
            next_frame(&mut g.answers).body,
            Body::Receipt { seq: 0, .. }
        ));
        assert_eq!(g.hub.head("t"), 0, "the follower's to append");
    }

    #[test]
    fn a_failed_sync_refuses_its_batches_and_every_later_one() {
        let mut g = gated();
        g.durability.hand_over(batch(&g.reply, 1, 0), Some(0));
        g.calls.recv().unwrap();
        g.release
            .send(Err(AppendError::Broken("disk gone".into())))
            .unwrap();
        let code = |frame: Frame| match frame.body {
            Body::Error { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(next_frame(&mut g.answers)), "UNAVAILABLE");
        // No further sync is even tried: a later batch is refused at once.
        g.durability.hand_over(batch(&g.reply, 2, 1), Some(1));
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
    fn a_conflict_refuses_only_its_batch_and_asks_for_a_reload() {
        let mut g = gated();
        g.durability.hand_over(batch(&g.reply, 1, 0), Some(0));
        g.calls.recv().unwrap();
        let conflict = AppendError::Conflict { topic: "t".into() };
        g.release.send(Err(conflict)).unwrap();
        match next_frame(&mut g.answers).body {
            Body::Error { code, .. } => assert_eq!(code, "UNAVAILABLE"),
            other => panic!("{other:?}"),
        }
        assert!(g.durability.take_reload());
        assert!(!g.durability.take_reload(), "taken once");
        assert!(!g.durability.failed());
        g.durability.hand_over(batch(&g.reply, 2, 0), Some(1));
        g.calls.recv().unwrap();
        g.release.send(Ok(())).unwrap();
        assert!(matches!(
            next_frame(&mut g.answers).body,
            Body::Receipt { seq: 0, .. }
        ));
        assert_eq!(g.hub.head("t"), 1);
    }
}
