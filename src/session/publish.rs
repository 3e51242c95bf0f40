//! How a [`Session`] gets its ops to the relay: sending in per-topic counter order, retrying
//! retryable refusals with backoff (same bytes), and giving up after the publish timeout.
//!
//! Why the order matters: the relay refuses an op whose counter is below the author's last
//! sequenced counter in the topic with `COUNTER_STALE` (PROTOCOL.md 8.3). An op refused
//! `UNAVAILABLE` and parked while a later op of the same topic got through could never be
//! published with its bytes again: that is how a refused op used to be lost after a reconnect.
//! So the session sends the ops of one topic in counter order; an op waiting for its retry
//! holds back every later op of its topic; and a topic that had a retryable refusal sends one
//! op at a time until a receipt arrives (ops already on the wire then cannot overtake it).

use super::{Session, SessionEvent, Unacked};
use crate::error::Result;
use crate::op::OpId;
use crate::wire::{Body, Frame};

/// The relay codes after which publishing the same bytes again is safe and may succeed
/// (PROTOCOL.md 8.3): the session retries them with backoff.
pub const RETRYABLE_CODES: [&str; 2] = ["RATE_LIMITED", "UNAVAILABLE"];

/// How long an op may wait for its receipt before the session gives it up, by default.
pub const DEFAULT_PUBLISH_TIMEOUT_MS: u64 = 60_000;

/// The wait before the first retry of a refused op; it doubles with each refusal.
pub const RETRY_MIN_DELAY_MS: u64 = 250;

/// The longest wait between two retries (before jitter of up to half of it).
pub const RETRY_MAX_DELAY_MS: u64 = 8_000;

/// Most ops remembered as given up while on the wire, for a late receipt.
const MAX_ABANDONED: usize = 1024;

/// The wait after the `attempt`th refusal, with up to 50 % jitter taken from the op id, so
/// that clients refused together do not come back together (and the core stays
/// deterministic).
fn backoff_ms(attempt: u32, op_id: &OpId) -> u64 {
    let doublings = attempt.saturating_sub(1).min(16);
    let base = RETRY_MIN_DELAY_MS
        .saturating_mul(1 << doublings)
        .min(RETRY_MAX_DELAY_MS);
    base + base * u64::from(op_id.0[0]) / 512
}

impl Session {
    /// Takes the caller's time: ops taken before any time was known start their timeout now.
    pub(super) fn advance_clock(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        let now = self.clock_ms.max(1);
        for unacked in &mut self.unacked {
            if unacked.since_ms == 0 {
                unacked.since_ms = now;
            }
        }
    }

    /// When the session next has something to do on its own (a retry due on the live
    /// connection, a publish timeout), on the caller's clock: call [`Session::tick`] then.
    /// `None` when nothing is scheduled.
    pub fn next_wake_ms(&self) -> Option<u64> {
        let timeouts = self
            .unacked
            .iter()
            .filter(|u| u.since_ms != 0)
            .map(|u| u.since_ms.saturating_add(self.publish_timeout_ms));
        let retries = self
            .sendable()
            .filter_map(|index| self.unacked[index].retry_at_ms);
        timeouts.chain(retries).min()
    }

    /// The indices of the ops that may go to the relay, ignoring their retry times: the first
    /// op of each topic not on the wire, and the ones after it until one that waits for its
    /// retry (one op at a time in a careful topic). Empty unless live.
    fn sendable(&self) -> impl Iterator<Item = usize> + '_ {
        let live = self.phase == super::Phase::Live;
        let mut blocked: Vec<&str> = Vec::new();
        (0..self.unacked.len()).filter(move |&index| {
            let unacked = &self.unacked[index];
            let topic = unacked.op.topic();
            if !live || blocked.contains(&topic) {
                return false;
            }
            let careful = self.careful.contains(topic);
            if unacked.request_id != 0 {
                if careful {
                    blocked.push(topic);
                }
                return false;
            }
            if careful || unacked.retry_at_ms.is_some() {
                blocked.push(topic);
            }
            true
        })
    }

    /// Sends every op that may go now: not on the wire yet, its retry time (if any) reached,
    /// and nothing earlier of its topic held back (see the module docs).
    pub(super) fn send_due(&mut self) -> Result<()> {
        let now = self.clock_ms;
        let due: Vec<usize> = self
            .sendable()
            .filter(|&index| !matches!(self.unacked[index].retry_at_ms, Some(at) if at > now))
            .collect();
        for index in due {
            let id = self.request_id();
            let unacked = &mut self.unacked[index];
            unacked.request_id = id;
            unacked.retry_at_ms = None;
            let op = unacked.op.as_bytes().to_vec();
            self.send(Frame::new(id, Body::Publish { op }))?;
        }
        Ok(())
    }

    /// Gives up every op older than the publish timeout ([`SessionEvent::TimedOut`]).
    pub(super) fn expire_unacked(&mut self, now_ms: u64) {
        let timeout = self.publish_timeout_ms;
        let (expired, kept): (Vec<Unacked>, Vec<Unacked>) = std::mem::take(&mut self.unacked)
            .into_iter()
            .partition(|u| u.since_ms != 0 && now_ms.saturating_sub(u.since_ms) >= timeout);
        self.unacked = kept;
        for unacked in expired {
            let op_id = unacked.op.id();
            if unacked.request_id != 0 && self.abandoned.len() < MAX_ABANDONED {
                let topic = unacked.op.topic().to_owned();
                self.abandoned.insert(unacked.request_id, (topic, op_id));
            }
            let (code, message) = match unacked.last_refusal {
                Some((code, message)) => (
                    code,
                    format!(
                        "no receipt within {timeout} ms; refused {} times, last: {message}",
                        unacked.attempts
                    ),
                ),
                None => (
                    "UNAVAILABLE".to_owned(),
                    format!("no receipt from the relay within {timeout} ms"),
                ),
            };
            self.events.push_back(SessionEvent::TimedOut {
                topic: unacked.op.topic().to_owned(),
                op_id,
                code,
                message,
                op: unacked.op.as_bytes().to_vec(),
            });
        }
    }

    /// The receipt of an op given up while on the wire: late, but the op is in the log.
    pub(super) fn take_abandoned(&mut self, request_id: u32) -> Option<(String, OpId)> {
        self.abandoned.remove(&request_id)
    }

    pub(super) fn on_error(
        &mut self,
        request_id: u32,
        code: String,
        message: String,
        now_ms: u64,
    ) -> Result<()> {
        if self.checkpoint_requests.remove(&request_id).is_some() {
            return Ok(());
        }
        if self.on_audit_error(request_id, &code, &message) {
            return Ok(());
        }
        // A refused subscribe, or a subscription the relay ended (a capability expired): the
        // topic stays followed, and the next connection (e.g. with a fresh capability) asks
        // again from the cursor.
        let subscription = (request_id != 0)
            .then(|| {
                self.topics
                    .iter_mut()
                    .find(|(_, t)| t.request_id == request_id)
            })
            .flatten();
        if let Some((name, topic)) = subscription {
            topic.request_id = 0;
            self.events.push_back(SessionEvent::SubscriptionEnded {
                topic: name.clone(),
                code,
                message,
            });
            return Ok(());
        }
        let index = (request_id != 0)
            .then(|| self.unacked.iter().position(|u| u.request_id == request_id))
            .flatten();
        let Some(index) = index else {
            self.events.push_back(SessionEvent::RelayError {
                request_id,
                code,
                message,
            });
            return Ok(());
        };
        if !RETRYABLE_CODES.contains(&code.as_str()) {
            let unacked = self.unacked.remove(index);
            self.events.push_back(SessionEvent::Refused {
                topic: unacked.op.topic().to_owned(),
                op_id: unacked.op.id(),
                code,
                message,
            });
            // Later ops of the topic no longer wait for it.
            return self.send_due();
        }
        let unacked = &mut self.unacked[index];
        unacked.request_id = 0;
        unacked.attempts = unacked.attempts.saturating_add(1);
        let op_id = unacked.op.id();
        let retry_at_ms = now_ms.saturating_add(backoff_ms(unacked.attempts, &op_id));
        unacked.retry_at_ms = Some(retry_at_ms);
        unacked.last_refusal = Some((code.clone(), message.clone()));
        let topic = unacked.op.topic().to_owned();
        let attempt = unacked.attempts;
        self.careful.insert(topic.clone());
        self.events.push_back(SessionEvent::Retrying {
            topic,
            op_id,
            code,
            message,
            attempt,
            retry_at_ms,
        });
        Ok(())
    }
}
