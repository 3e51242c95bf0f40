//! Who is waiting for what: each connection's answer queue ([`ReplyTo`]), where the receipt or
//! refusal of its publishes goes, and the queues of every authenticated connection by agent
//! ([`AgentConnections`]), where replica events for an agent (a compensation for a lost claim)
//! are pushed.
//!
//! The sequencer and the durability thread only ever queue frames here without waiting: a
//! connection that lets its queue fill up is a slow consumer, flagged and woken, and closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::Notify;

use crate::identity::AgentId;
use crate::wire::Frame;

/// Where the relay sends a connection its answers: a bounded queue of encoded frames. A
/// connection that lets it fill up is a slow consumer: it is flagged and woken, and closes.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// The connection's outbound queue.
    pub frames: mpsc::Sender<Vec<u8>>,
    /// Set when a frame could not be queued.
    pub overflowed: Arc<AtomicBool>,
    /// Wakes the connection.
    pub wake: Arc<Notify>,
}

impl ReplyTo {
    /// Queues `frame` without waiting; flags the connection as a slow consumer if it is full.
    pub fn send(&self, frame: &Frame) {
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "could not encode an answer");
                return;
            }
        };
        match self.frames.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Release);
                self.wake.notify_one();
            }
            Err(TrySendError::Closed(_)) => {}
        }
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
    let reply = ReplyTo {
        frames,
        overflowed: Arc::default(),
        wake: Arc::default(),
    };
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
