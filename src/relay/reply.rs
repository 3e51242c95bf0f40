//! Who is waiting for what: each connection's answer queue ([`ReplyTo`]), where the receipt or
//! refusal of its publishes goes, and the queues of every authenticated connection by agent
//! ([`AgentConnections`]), where replica events for an agent (a compensation for a lost claim)
//! are pushed.
//!
//! The sequencer and the durability thread only ever queue frames here without waiting: a
//! connection that lets its queue fill up, in frames or in bytes, is a slow consumer, flagged
//! and woken, and closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

use crate::identity::AgentId;
use crate::wire::Frame;

/// Where the relay sends a connection its answers: a queue of encoded frames bounded in frames
/// (the channel's capacity) and in bytes ([`SendBudget`]). A connection that lets it fill up
/// is a slow consumer: it is flagged and woken, and closes.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// The connection's outbound queue.
    pub frames: mpsc::Sender<Vec<u8>>,
    /// Set when a frame could not be queued.
    pub overflowed: Arc<AtomicBool>,
    /// Wakes the connection.
    pub wake: Arc<Notify>,
    /// Bytes queued and not yet taken by the connection, against its budget.
    pub budget: Arc<SendBudget>,
}

/// The bytes of answers queued for one connection and not yet taken from its queue, and how
/// many it may hold (`[limits] send_queue_bytes` for a WebSocket connection). An empty queue
/// takes any one frame, so a frame larger than the budget is not refused for its size alone.
#[derive(Debug)]
pub struct SendBudget {
    queued: AtomicUsize,
    max: usize,
}

impl SendBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        SendBudget {
            queued: AtomicUsize::new(0),
            max,
        }
    }

    /// No bound in bytes: the queue's capacity in frames is the only one (the relay's own
    /// internal queues, whose readers never stall on a peer).
    pub fn unbounded() -> Arc<Self> {
        Arc::new(SendBudget::new(usize::MAX))
    }

    /// Reserves `len` bytes; false (nothing reserved) when they do not fit next to what is
    /// queued.
    fn reserve(&self, len: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued.saturating_add(len) <= self.max)
                    .then(|| queued.saturating_add(len))
            })
            .is_ok()
    }

    /// Gives back `len` bytes: a frame of that length left the queue.
    pub fn taken(&self, len: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(len))
            });
    }

    /// Bytes queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl ReplyTo {
    /// A reply side over `frames` with `budget`, waking `wake`.
    pub fn new(frames: mpsc::Sender<Vec<u8>>, wake: Arc<Notify>, budget: Arc<SendBudget>) -> Self {
        ReplyTo {
            frames,
            overflowed: Arc::new(AtomicBool::new(false)),
            wake,
            budget,
        }
    }

    /// Queues `frame` without waiting; flags the connection as a slow consumer if its queue is
    /// full, in frames or in bytes.
    pub fn send(&self, frame: &Frame) {
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "could not encode an answer");
                return;
            }
        };
        let len = bytes.len();
        if !self.budget.reserve(len) {
            return self.overflow();
        }
        match self.frames.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.budget.taken(len);
                self.overflow();
            }
            Err(TrySendError::Closed(_)) => self.budget.taken(len),
        }
    }

    fn overflow(&self) {
        self.overflowed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The answer queues of every authenticated connection, by agent: where replica events for an
/// agent (a compensation for a lost claim) are pushed.
#[derive(Debug, Default)]
pub struct AgentConnections(Mutex<HashMap<AgentId, Vec<ReplyTo>>>);

impl AgentConnections {
    /// Registers a connection authenticated as `agent`.
    pub fn register(&self, agent: AgentId, reply: ReplyTo) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(agent).or_default().push(reply);
        }
    }

    /// Forgets a connection (identified by its queue).
    pub fn unregister(&self, agent: &AgentId, reply: &ReplyTo) {
        if let Ok(mut map) = self.0.lock() {
            if let Some(list) = map.get_mut(agent) {
                list.retain(|r| !Arc::ptr_eq(&r.overflowed, &reply.overflowed));
                if list.is_empty() {
                    map.remove(agent);
                }
            }
        }
    }

    /// Queues `frame` on every connection authenticated as `agent`.
    pub(crate) fn send(&self, agent: &AgentId, frame: &Frame) {
        let targets: Vec<ReplyTo> = self
            .0
            .lock()
            .map(|map| map.get(agent).cloned().unwrap_or_default())
            .unwrap_or_default();
        for reply in targets {
            reply.send(frame);
        }
    }
}

/// A connection's reply side for the tests, and the frames it receives.
#[cfg(test)]
pub(crate) fn reply_channel(capacity: usize) -> (ReplyTo, mpsc::Receiver<Vec<u8>>) {
    let (frames, answers) = mpsc::channel(capacity);
    let reply = ReplyTo::new(frames, Arc::default(), SendBudget::unbounded());
    (reply, answers)
}

/// The next frame queued for a connection, waiting up to 10 s for it (tests only: answers
/// come from the durability thread).
#[cfg(test)]
pub(crate) fn next_frame(answers: &mut mpsc::Receiver<Vec<u8>>) -> Frame {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(bytes) = answers.try_recv() {
            return Frame::decode(&bytes).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no frame within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    /// An answer frame of about `len` bytes (an error frame whose message is that long).
    fn answer(len: usize) -> Frame {
        Frame::error(7, &Error::BadInput("x".repeat(len)))
    }

    #[test]
    fn a_queue_over_its_byte_budget_flags_a_slow_consumer_and_keeps_what_fit() {
        let (frames, mut answers) = mpsc::channel(64);
        let reply = ReplyTo::new(frames, Arc::default(), Arc::new(SendBudget::new(3_000)));
        let len = answer(1_000).encode().unwrap().len();
        reply.send(&answer(1_000));
        reply.send(&answer(1_000));
        assert_eq!(reply.budget.queued(), 2 * len);
        assert!(!reply.overflowed.load(Ordering::Acquire));
        reply.send(&answer(1_000));
        assert!(
            reply.overflowed.load(Ordering::Acquire),
            "the third frame is over 3,000 bytes"
        );
        assert_eq!(
            reply.budget.queued(),
            2 * len,
            "the refused frame reserved nothing"
        );
        let mut queued = 0;
        while let Ok(bytes) = answers.try_recv() {
            reply.budget.taken(bytes.len());
            queued += 1;
        }
        assert_eq!(queued, 2);
        assert_eq!(reply.budget.queued(), 0);
    }

    #[test]
    fn an_empty_queue_takes_one_frame_larger_than_the_budget() {
        let (frames, mut answers) = mpsc::channel(64);
        let reply = ReplyTo::new(frames, Arc::default(), Arc::new(SendBudget::new(100)));
        reply.send(&answer(1_000));
        assert!(!reply.overflowed.load(Ordering::Acquire));
        reply.send(&answer(10));
        assert!(reply.overflowed.load(Ordering::Acquire));
        assert!(answers.try_recv().is_ok());
    }

    #[test]
    fn a_queue_full_in_frames_gives_its_bytes_back() {
        let (frames, _answers) = mpsc::channel(1);
        let reply = ReplyTo::new(frames, Arc::default(), Arc::new(SendBudget::new(1 << 20)));
        reply.send(&answer(10));
        let one = reply.budget.queued();
        reply.send(&answer(10));
        assert!(reply.overflowed.load(Ordering::Acquire));
        assert_eq!(reply.budget.queued(), one);
    }
}
