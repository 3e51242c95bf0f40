//! A cluster frontend's follower: the one task that brings every topic's entries, whoever
//! sequenced them, to this frontend's read mirror and fan-out hub.
//!
//! It reads the log stream in stream order with an ordered consumer (ephemeral, no acks, from
//! the message after the mirror's position, [`Mirror::resume`]: the first message after a
//! rebuild; the client recreates it from the last delivered sequence after a lost connection or
//! a gap), hands each run of messages to the [`Mirror`] (valid chain per
//! topic, one SQLite transaction) and then appends the new entries to the [`Hub`] with their
//! root. In cluster mode the hub has no other source: a frontend's own sequencer does not
//! append to it (`FanOut::Followed` in [`crate::relay::durable`]), it waits until the follower
//! applied its entries before it sends their receipts. So every frontend's subscribers see one
//! order, the stream's, and a client holding a receipt finds its entry on the frontend that
//! gave it.
//!
//! The follower runs on its own thread with its own small tokio runtime (the mirror's writes
//! are blocking). [`Follower::start`] returns once the mirror holds every message the stream
//! held when it began, so a frontend never serves an older log than it did.
//!
//! It also watches the cluster for the health check ([`ClusterStatus`]): the connection's
//! state, and once a second a stream-info request, which only the stream's leader answers (no
//! leader without a quorum).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::{FutureExt, StreamExt};

use super::mirror::{Mirror, StreamExtent, StreamIdentity, StreamMessage};
use super::{predecessor_of, subject, JetStreamConfig, JetStreamLog};
use crate::error::{Error, Result};
use crate::relay::hub::Hub;

/// Most messages applied in one mirror transaction.
const MAX_RUN: usize = 1024;
/// How often the cluster's health is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe waits for the stream leader.
const PROBE_PATIENCE: Duration = Duration::from_secs(2);
/// How long a failed mirror write waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the health check and `/metrics` need to know of the cluster.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    connected: AtomicBool,
    /// Why the stream cannot take appends now (no leader, no answer), if so.
    stream: Mutex<Option<String>>,
    /// Why the follower is not applying the stream, if so.
    follower: Mutex<Option<String>>,
    /// The stream sequence of the last message the follower applied (valid or void).
    applied: AtomicU64,
    /// The stream sequence the follower started reading at: 1 after a rebuild of the mirror,
    /// the one after the mirror's position when it resumed.
    started_at: AtomicU64,
}

fn lock(slot: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClusterStatus {
    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Why this frontend cannot acknowledge publishes or serve the latest log now, if so.
    pub fn problem(&self) -> Option<String> {
        if !self.connected() {
            return Some("the NATS connection is down".into());
        }
        if let Some(why) = lock(&self.follower).clone() {
            return Some(format!("the log follower is stuck: {why}"));
        }
        lock(&self.stream)
            .clone()
            .map(|why| format!("the log stream cannot take appends: {why}"))
    }

    /// The stream sequence of the last message the follower applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The stream sequence the follower started reading at (1: the mirror was rebuilt from
    /// the whole stream; more: it resumed).
    pub fn started_at(&self) -> u64 {
        self.started_at.load(Ordering::Acquire)
    }
}

/// The running follower. Stop it with [`Follower::stop`] (or by dropping it).
#[derive(Debug)]
pub struct Follower {
    status: Arc<ClusterStatus>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Follower {
    /// Connects to the cluster, brings `mirror` up to the stream's last message (from where it
    /// stopped, or from the first message when it starts over, [`Mirror::resume`]), restores
    /// `hub` to the mirror's heads and appends what follows to it, and keeps following. Blocks
    /// until the mirror caught up; call it off any async runtime.
    ///
    /// Errors: `UNAVAILABLE` when the cluster does not answer or catching up fails; `BAD_INPUT`
    /// for a bad configuration.
    pub fn start(config: JetStreamConfig, mirror: Mirror, hub: Arc<Hub>) -> Result<Follower> {
        let status = Arc::new(ClusterStatus::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let shared = status.clone();
        let thread = std::thread::Builder::new()
            .name("ants-follower".into())
            .spawn(move || {
                let body = || run(config, mirror, &hub, &shared, stopped, ready_tx);
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
                    *lock(&shared.follower) = Some("the follower panicked (see the log)".into());
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot start the follower: {e}")))?;
        let follower = Follower {
            status,
            stop,
            thread: Mutex::new(Some(thread)),
        };
        match ready.recv() {
            Ok(Ok(())) => Ok(follower),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Unavailable(
                "the follower ended before the mirror was rebuilt".into(),
            )),
        }
    }

    /// The cluster's health as this frontend sees it.
    pub fn status(&self) -> Arc<ClusterStatus> {
        self.status.clone()
    }

    /// Stops following and waits for the thread to end.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The follower thread: connect, rebuild, follow, until `stopped`.
fn run(
    config: JetStreamConfig,
    mut mirror: Mirror,
    hub: &Hub,
    status: &Arc<ClusterStatus>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ants-follower-io")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(Error::Unavailable(format!(
                "cannot start the follower's runtime: {error}"
            ))));
            return;
        }
    };
    // Everything below (the consumer, the connection) is dropped in this runtime's context.
    let _entered = runtime.enter();
    let opened = runtime.block_on(async {
        let log = JetStreamLog::connect(config).await?;
        let mut stream = log.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| super::unavailable("stream info", e))?;
        let identity = StreamIdentity {
            name: info.config.name.clone(),
            created_ns: info.created.unix_timestamp_nanos(),
        };
        let extent = StreamExtent {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
        };
        let from = mirror.resume(&identity, extent)?;
        status.started_at.store(from, Ordering::Release);
        status.applied.store(mirror.applied(), Ordering::Release);
        // A resumed mirror's topics: the hub serves them from their heads on.
        for (topic, size, root) in mirror.heads() {
            hub.restore(&topic, size, root);
        }
        let messages = log
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.*", log.config().subject_prefix),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| super::unavailable("follower consumer", e))?
            .messages()
            .await
            .map_err(|e| super::unavailable("follower messages", e))?;
        Ok::<_, Error>((log, extent.last, messages))
    });
    let (log, target, mut messages) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    status.connected.store(true, Ordering::Release);
    runtime.spawn(probe(log.clone(), status.clone(), stopped.clone()));
    let mut ready = Some(ready);
    if target <= mirror.applied() {
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
    }
    let prefix = format!("{}.", log.config().subject_prefix);
    loop {
        // The next run: one message (waiting for it), then what has already arrived.
        let run = runtime.block_on(async {
            let first = tokio::select! {
                next = messages.next() => next,
                _ = stopped.wait_for(|stop| *stop) => return None,
            };
            let mut run = vec![first];
            while run.len() < MAX_RUN {
                match messages.next().now_or_never() {
                    Some(next) => run.push(next),
                    None => break,
                }
            }
            Some(run)
        });
        let Some(run) = run else { break };
        let mut received = Vec::with_capacity(run.len());
        for next in run {
            match next.map(|m| m.map(|m| stream_message(&m, &prefix))) {
                Some(Ok(Ok(message))) => received.push(message),
                Some(Ok(Err(error))) => {
                    // Not one of our subjects, or no stream sequence: nothing can be skipped.
                    fail(status, &mut ready, error);
                    return;
                }
                Some(Err(error)) => {
                    // The client recreates the consumer; say so meanwhile.
                    tracing::warn!(%error, "follower: stream read failed; resuming");
                }
                None => {
                    fail(
                        status,
                        &mut ready,
                        Error::Unavailable("the log stream ended".into()),
                    );
                    return;
                }
            }
        }
        let Some(last) = received.last().map(|m| m.seq) else {
            // Only errors: give the client a moment to recreate the consumer, never spin.
            let stop = runtime.block_on(async {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => false,
                    _ = stopped.wait_for(|stop| *stop) => true,
                }
            });
            if stop {
                return;
            }
            continue;
        };
        // Apply, retrying while the mirror cannot be written (a full disk clears by itself).
        loop {
            match mirror.apply(&received) {
                Ok(applied) => {
                    for (topic, entries, root) in applied {
                        hub.append(&topic, entries, root);
                    }
                    *lock(&status.follower) = None;
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "follower: mirror not written; retrying");
                    *lock(&status.follower) = Some(error.to_string());
                    if ready.is_some() && !matches!(error, Error::Unavailable(_)) {
                        fail(status, &mut ready, error);
                        return;
                    }
                    let wait = runtime.block_on(async {
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY_AFTER) => false,
                            _ = stopped.wait_for(|stop| *stop) => true,
                        }
                    });
                    if wait {
                        return;
                    }
                }
            }
        }
        status.applied.store(last, Ordering::Release);
        if last >= target {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
    }
}

/// Records a failure that stops the follower (and the start, while it is waited for).
fn fail(
    status: &ClusterStatus,
    ready: &mut Option<std::sync::mpsc::Sender<Result<()>>>,
    error: Error,
) {
    tracing::error!(%error, "follower stopped: this frontend no longer sees new entries");
    *lock(&status.follower) = Some(error.to_string());
    if let Some(ready) = ready.take() {
        let _ = ready.send(Err(error));
    }
}

/// A delivered message as the mirror takes it.
fn stream_message(message: &async_nats::jetstream::Message, prefix: &str) -> Result<StreamMessage> {
    let seq = message
        .info()
        .map_err(|e| super::unavailable("follower message info", e))?
        .stream_sequence;
    let subject = message.subject.as_str();
    let token = subject
        .strip_prefix(prefix)
        .ok_or_else(|| Error::Malformed {
            what: "log stream subject",
            reason: format!("{subject:?} is not under {prefix:?}"),
        })?;
    Ok(StreamMessage {
        seq,
        topic: subject::topic_of_token(token)?,
        predecessor: predecessor_of(message.headers.as_ref()),
        payload: message.payload.to_vec(),
    })
}

/// Once a second: is the connection up, and does the stream's leader answer?
async fn probe(
    log: JetStreamLog,
    status: Arc<ClusterStatus>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let client = log.context().client();
    loop {
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        status.connected.store(connected, Ordering::Release);
        let mut stream = log.stream.clone();
        let problem = match tokio::time::timeout(PROBE_PATIENCE, stream.info()).await {
            Ok(Ok(info)) => match info.cluster.as_ref() {
                Some(cluster) if cluster.leader.is_none() => Some("no stream leader".to_string()),
                _ => None,
            },
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {PROBE_PATIENCE:?}")),
        };
        *lock(&status.stream) = problem;
        tokio::select! {
            _ = tokio::time::sleep(PROBE_EVERY) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
