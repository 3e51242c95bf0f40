//! Receipt signing beside the sequencer: one long-lived thread signs each batch's receipts
//! while the sequencer writes and commits the batch (receipts are not stored, see
//! [`super::store::SCHEMA`], so the rows do not wait for them). A thread that lives as long as
//! the sequencer, rather than one started per batch, keeps thread creation off the path of
//! every batch.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::log::{Receipt, SignedReceipt};

/// The signed receipts of one batch, in order, and how long signing them took.
type Signed = (Result<Vec<Vec<u8>>>, Duration);

/// The signing thread's handle: [`ReceiptSigner::begin`] a batch, then
/// [`ReceiptSigner::finish`] it, one batch at a time.
#[derive(Debug)]
pub struct ReceiptSigner {
    jobs: Option<Sender<Vec<Receipt>>>,
    results: Receiver<Signed>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReceiptSigner {
    /// Starts the signing thread, signing with `identity`.
    ///
    /// Errors: `UNAVAILABLE` when the thread cannot be started.
    pub fn start(identity: Arc<Identity>) -> Result<Self> {
        let (jobs, received) = std::sync::mpsc::channel::<Vec<Receipt>>();
        let (done, results) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ants-signer".into())
            .spawn(move || {
                for receipts in received {
                    let started = Instant::now();
                    let signed = sign_receipts(&identity, receipts);
                    if done.send((signed, started.elapsed())).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot start the signing thread: {e}")))?;
        Ok(ReceiptSigner {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        })
    }

    /// Hands a batch's receipts to the signing thread.
    ///
    /// Errors: `UNAVAILABLE` when the thread is gone.
    pub fn begin(&self, receipts: Vec<Receipt>) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(receipts).ok())
            .ok_or_else(gone)
    }

    /// Waits for the batch handed over by the last [`ReceiptSigner::begin`]: its signed
    /// receipts, in order, and the time signing took.
    ///
    /// Errors: `UNAVAILABLE` when the thread is gone; a receipt's own encoding error.
    pub fn finish(&self) -> Result<(Vec<Vec<u8>>, Duration)> {
        let (signed, took) = self.results.recv().map_err(|_| gone())?;
        Ok((signed?, took))
    }
}

impl Drop for ReceiptSigner {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn gone() -> Error {
    Error::Unavailable("the receipt-signing thread stopped".into())
}

/// Signs every receipt, in order, with one signature per batch (version 2, see
/// [`SignedReceipt::sign_batch`]): ed25519 signing was the largest CPU cost per op in the relay.
fn sign_receipts(identity: &Identity, receipts: Vec<Receipt>) -> Result<Vec<Vec<u8>>> {
    Ok(SignedReceipt::sign_batch(identity, receipts)?
        .into_iter()
        .map(|signed| signed.as_bytes().to_vec())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpId;

    fn receipt(seq: u64) -> Receipt {
        Receipt {
            topic: "t".into(),
            seq,
            op_id: OpId([seq as u8; 32]),
            relay_time_ms: 1_700_000_000_000 + seq,
            tree_size: seq + 1,
            root: [7; 32],
        }
    }

    #[test]
    fn batches_small_and_large_come_back_signed_in_order() {
        let identity = Arc::new(Identity::from_seed(&[3; 32]).unwrap());
        let relay = identity.agent_id();
        let signer = ReceiptSigner::start(identity).unwrap();
        for size in [0, 1, 101] {
            signer.begin((0..size).map(receipt).collect()).unwrap();
            let (signed, _) = signer.finish().unwrap();
            assert_eq!(signed.len(), size as usize);
            for (seq, bytes) in (0..).zip(&signed) {
                let decoded = SignedReceipt::decode(bytes, &relay).unwrap();
                assert_eq!(decoded.receipt(), &receipt(seq));
                assert_eq!(decoded.version(), 2);
            }
        }
    }
}
