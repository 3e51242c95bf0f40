//! The verifier thread: checks op signatures in batches in front of the sequencer.
//!
//! It takes every publish queued while it was busy (across all connections, up to
//! [`VERIFY_BATCH_MAX`]), checks them with one batch equation ([`crate::op::verify_ops`]) and
//! hands them on in arrival order. When a batch fails, each op of it is checked alone, so only
//! the forged ones are refused, with `BAD_SIGNATURE`. The verifier and the sequencer form a
//! pipeline: one batch is verified while the previous one is sequenced and committed.

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use super::metrics::Metrics;
use super::sequencer::{Command, PublishRequest};
use crate::wire::Frame;

/// Most publishes whose signatures are checked in one batch equation.
pub const VERIFY_BATCH_MAX: usize = 256;

/// The verifier thread: batches of publishes in, verified publishes out, in arrival order.
/// Ends after forwarding a stop (or when every sender is gone); the sequencer then stops too.
pub(crate) fn run_verifier(rx: &Receiver<Command>, out: &SyncSender<Command>, metrics: &Metrics) {
    let mut batch: Vec<PublishRequest> = Vec::with_capacity(VERIFY_BATCH_MAX);
    let mut keys = crate::identity::KeyCache::default();
    loop {
        // A command other than a publish ends the batch and is forwarded right behind it.
        let mut after = None;
        match rx.recv() {
            Ok(Command::Publish(first)) => batch.push(first),
            Ok(other) => after = Some(other),
            Err(_) => return,
        }
        // No waiting: whatever queued up while the previous batch was checked is the batch.
        while after.is_none() && batch.len() < VERIFY_BATCH_MAX {
            match rx.try_recv() {
                Ok(Command::Publish(request)) => batch.push(request),
                Ok(other) => after = Some(other),
                Err(TryRecvError::Disconnected) => after = Some(Command::Stop),
                Err(TryRecvError::Empty) => break,
            }
        }
        for request in verify_batch(&mut keys, std::mem::take(&mut batch), metrics) {
            if out.send(Command::Publish(request)).is_err() {
                return;
            }
        }
        if let Some(command) = after {
            let stop = matches!(command, Command::Stop);
            if out.send(command).is_err() || stop {
                return;
            }
        }
    }
}

/// Checks the signatures of `batch` with one batch equation; on failure checks each alone and
/// refuses the forged ones (`BAD_SIGNATURE` to their connection). Returns the genuine ones in
/// their original order.
fn verify_batch(
    keys: &mut crate::identity::KeyCache,
    batch: Vec<PublishRequest>,
    metrics: &Metrics,
) -> Vec<PublishRequest> {
    if batch.is_empty() {
        return batch;
    }
    metrics.verify_batch(batch.len());
    if crate::op::verify_ops_cached(keys, batch.iter().map(|r| &r.op)).is_ok() {
        return batch;
    }
    batch
        .into_iter()
        .filter(|request| {
            let op = &request.op;
            match op.author().verify(&op.signed_message(), op.signature()) {
                Ok(()) => true,
                Err(error) => {
                    metrics.refused(error.code());
                    request
                        .reply
                        .send(&Frame::error(request.request_id, &error));
                    false
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::Identity;
    use crate::op::{OpDraft, SignedOp};
    use crate::relay::reply::reply_channel;
    use crate::wire::Body;

    #[test]
    fn a_failed_batch_refuses_only_its_forged_ops_and_keeps_the_order() {
        let (reply, mut answers) = reply_channel(16);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let requests: Vec<PublishRequest> = (0..6u32)
            .map(|i| {
                let op = SignedOp::sign(
                    &alice,
                    OpDraft {
                        topic: "t".into(),
                        kind: "post".into(),
                        counter: u64::from(i),
                        time_ms: 0,
                        deps: vec![],
                        body: vec![1, 2, 3],
                    },
                )
                .unwrap();
                let op = if i % 3 == 1 {
                    let mut bytes = op.as_bytes().to_vec();
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                    SignedOp::decode_unverified(&bytes).unwrap()
                } else {
                    op
                };
                PublishRequest {
                    op,
                    request_id: i,
                    reply: reply.clone(),
                    received_at: Instant::now(),
                }
            })
            .collect();
        let metrics = Metrics::default();
        let mut keys = crate::identity::KeyCache::default();
        let kept = verify_batch(&mut keys, requests, &metrics);
        let ids: Vec<u32> = kept.iter().map(|r| r.request_id).collect();
        assert_eq!(ids, [0, 2, 3, 5]);
        for expected in [1, 4] {
            let frame = Frame::decode(&answers.try_recv().unwrap()).unwrap();
            assert_eq!(frame.request_id, expected);
            assert!(
                matches!(&frame.body, Body::Error { code, .. } if code == "BAD_SIGNATURE"),
                "{frame:?}"
            );
        }
        assert!(answers.try_recv().is_err());
        // A genuine batch passes whole.
        assert_eq!(verify_batch(&mut keys, kept, &metrics).len(), 4);
        assert!(metrics
            .render()
            .contains("ants_relay_verify_batch_ops_total 10"));
    }
}
