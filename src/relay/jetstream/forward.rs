//! Publishes go to their topic's owner: each frontend of a cluster sequences the topics it owns
//! and forwards the others' publishes, so two frontends rarely append to one topic at once.
//!
//! - **Who is live.** Every frontend writes its heartbeat (its [`FrontendId`] → the subject it
//!   takes forwarded publishes on) into the frontends bucket every third of the heartbeat TTL
//!   and reads the live set back ([`Frontends::live`]). A stopping frontend deletes its
//!   heartbeat.
//! - **Who owns a topic.** [`owner_among`] the live set and this frontend (hash priority,
//!   PROTOCOL.md 6.3): every frontend that sees the same live set picks the same owner.
//! - **Forwarding.** A publish for a topic another frontend owns goes to that frontend over core
//!   NATS (`<base>.forward.<owner id>`, outside the stream's subjects) with a reply subject of
//!   this frontend's. The owner decodes the op, queues it on its own sequencer (which verifies
//!   its signature like any publish) and sends back the answer frame (receipt or refusal); this
//!   frontend hands it to the client once its own follower holds the entry, as for its own
//!   publishes. A forwarded publish is never forwarded again, so frontends with different live
//!   sets cannot bounce one between them.
//! - **Falling back.** When the owner has no subscription (it died: the servers answer "no
//!   responders" at once), does not answer within the cluster timeout, or the forwarding queue
//!   is full, the publish is sequenced here. That is always safe: appends are fenced by the
//!   stream ([`super::JetStreamLog::append_after`]), and an op the owner did sequence is
//!   recognised by the op index and answered with its original receipt.
//!
//! Forwarding only moves work; it decides nothing. The forward subjects must be protected like
//! the stream (NATS accounts/permissions): a frontend sequences whatever arrives on them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Notify};

use super::frontends::{owner_among, FrontendId, Frontends};
use super::{connect_client, sibling_subject, unavailable, JetStreamConfig};
use crate::error::{Error, Result};
use crate::op::SignedOp;
use crate::relay::hub::Hub;
use crate::relay::reply::{ReplyTo, SendBudget};
use crate::relay::sequencer::{PublishRequest, SequencerQueue};
use crate::wire::{Body, Frame};

/// Publishes waiting to be sent to their owners; past that they are sequenced here.
const OUTBOX: usize = 8192;
/// Answers of forwarded publishes the owner side holds before sending them back.
const ANSWERS: usize = 65_536;
/// Bytes of ops sent to their owners and not answered yet: past it (owners slow or silent, so
/// answers lag), a publish is sequenced here instead, which is always safe (the stream's fence).
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// Counts for `/metrics`.
#[derive(Debug, Default)]
struct Counts {
    forwarded: AtomicU64,
    served: AtomicU64,
    fallbacks: AtomicU64,
    live: AtomicU64,
}

/// A publish sent to its owner, until its answer comes back.
struct Pending {
    request: PublishRequest,
    deadline: Instant,
}

/// The publishes sent to their owners and not answered yet, by token, bounded by the bytes of
/// their ops ([`MAX_PENDING_BYTES`]; an empty set takes any one).
struct PendingForwards {
    by_token: HashMap<u64, Pending>,
    bytes: usize,
    max_bytes: usize,
}

impl PendingForwards {
    fn new(max_bytes: usize) -> Self {
        PendingForwards {
            by_token: HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Holds `pending` under `token`, or gives it back (`Some`) when it does not fit the bound.
    fn hold(&mut self, token: u64, pending: Pending) -> Option<Pending> {
        let len = pending.request.op.as_bytes().len();
        if !self.by_token.is_empty() && self.bytes + len > self.max_bytes {
            return Some(pending);
        }
        self.bytes += len;
        self.by_token.insert(token, pending);
        None
    }

    fn remove(&mut self, token: u64) -> Option<Pending> {
        let pending = self.by_token.remove(&token)?;
        self.bytes -= pending.request.op.as_bytes().len();
        Some(pending)
    }

    /// Takes out every publish whose deadline is past.
    fn expired(&mut self, now: Instant) -> Vec<PublishRequest> {
        let tokens: Vec<u64> = self
            .by_token
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        tokens
            .into_iter()
            .filter_map(|t| self.remove(t))
            .map(|p| p.request)
            .collect()
    }
}

/// One frontend's forwarding: its heartbeat, its view of the live set, the publishes it sent
/// to owners, and the forwarded publishes it serves. See the module docs.
pub struct Forwarding {
    me: FrontendId,
    live: RwLock<Vec<FrontendId>>,
    outbox: mpsc::Sender<PublishRequest>,
    counts: Counts,
    /// Flipped to `true` by [`Forwarding::stop`]: every task of this frontend's forwarding ends.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("me", &self.me.to_hex())
            .finish_non_exhaustive()
    }
}

impl Forwarding {
    /// Connects (a NATS connection of its own, on the caller's runtime), starts serving
    /// publishes forwarded to this frontend, beats its heartbeat and follows the live set.
    ///
    /// Errors: `UNAVAILABLE` when the cluster does not answer.
    pub async fn start(
        config: &JetStreamConfig,
        sequencer: SequencerQueue,
        hub: Arc<Hub>,
    ) -> Result<Arc<Self>> {
        let client = connect_client(config, "forwarding").await?;
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .build(client.clone());
        let frontends = Frontends::open(&js, config).await?;
        let me = FrontendId::random()?;
        let prefix = sibling_subject(&config.subject_prefix, "forward");
        let mine = format!("{prefix}.{}", me.to_hex());
        let requests = client
            .subscribe(mine.clone())
            .await
            .map_err(|e| unavailable("subscribe (forwarding)", e))?;
        let inbox = client.new_inbox();
        let answers = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| unavailable("subscribe (forwarding answers)", e))?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let forwarding = Arc::new(Forwarding {
            me,
            live: RwLock::new(Vec::new()),
            outbox,
            counts: Counts::default(),
            stop: watch::channel(false).0,
        });
        let pending = Arc::new(Mutex::new(PendingForwards::new(MAX_PENDING_BYTES)));
        let local = Local {
            sequencer: sequencer.clone(),
            forwarding: forwarding.clone(),
        };
        let sender = Sender {
            client: client.clone(),
            prefix,
            inbox,
            pending: pending.clone(),
            timeout: config.timeout,
            local: local.clone(),
        };
        tokio::spawn(sender.run(queued));
        tokio::spawn(receive_answers(
            answers,
            pending.clone(),
            local.clone(),
            hub,
        ));
        tokio::spawn(sweep(pending, local, config.timeout));
        tokio::spawn(serve(client, requests, sequencer, forwarding.clone()));
        tokio::spawn(heartbeat(frontends, mine, forwarding.clone()));
        Ok(forwarding)
    }

    /// The other live frontend that owns `topic`, if one does (`None`: this frontend owns it,
    /// or the live set is not known yet). On every publish: reads the candidates in place.
    fn other_owner(&self, topic: &str) -> Option<FrontendId> {
        let candidates = self.live.read().unwrap_or_else(|p| p.into_inner());
        if candidates.is_empty() {
            return None;
        }
        owner_among(topic, &candidates)
            .ok()
            .filter(|owner| *owner != self.me)
    }

    /// Takes `request` to forward it when another live frontend owns its topic (`None`); gives
    /// it back to be sequenced here otherwise (this frontend owns the topic, the live set is not
    /// known yet, forwarding stopped, or the forwarding queue is full).
    pub fn route(&self, request: PublishRequest) -> Option<PublishRequest> {
        if *self.stop.borrow() || self.other_owner(request.op.topic()).is_none() {
            return Some(request);
        }
        match self.outbox.try_send(request) {
            Ok(()) => None,
            Err(full) => {
                self.counts.fallbacks.fetch_add(1, Ordering::Relaxed);
                Some(full.into_inner())
            }
        }
    }

    /// Stops forwarding (every later publish is sequenced here) and the heartbeat, which is
    /// deleted so that the others stop forwarding here.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The forwarding counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "ants_relay_forwarded_total",
                "counter",
                "Publishes sent to the frontend owning their topic.",
                load(&self.counts.forwarded),
            ),
            (
                "ants_relay_forwards_served_total",
                "counter",
                "Publishes other frontends forwarded here and this frontend sequenced.",
                load(&self.counts.served),
            ),
            (
                "ants_relay_forward_fallbacks_total",
                "counter",
                "Publishes for another frontend's topic sequenced here instead (owner gone or \
                 silent, queue full).",
                load(&self.counts.fallbacks),
            ),
            (
                "ants_relay_frontends_live",
                "gauge",
                "Frontends of the cluster this one saw live at its last heartbeat.",
                load(&self.counts.live),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}

/// Where a publish goes when it is not forwarded after all: this frontend's sequencer.
#[derive(Clone)]
struct Local {
    sequencer: SequencerQueue,
    forwarding: Arc<Forwarding>,
}

impl Local {
    fn sequence(&self, request: PublishRequest) {
        self.forwarding
            .counts
            .fallbacks
            .fetch_add(1, Ordering::Relaxed);
        let (request_id, reply) = (request.request_id, request.reply.clone());
        if let Err(error) = self.sequencer.submit(request) {
            reply.send(&Frame::error(request_id, &error));
        }
    }
}

/// Sends queued publishes to their owners, in order (one task, one connection: the owner
/// receives a connection's publishes in the order they were made).
struct Sender {
    client: async_nats::Client,
    prefix: String,
    inbox: String,
    pending: Arc<Mutex<PendingForwards>>,
    timeout: Duration,
    local: Local,
}

impl Sender {
    async fn run(self, mut queued: mpsc::Receiver<PublishRequest>) {
        let forwarding = self.local.forwarding.clone();
        let mut token: u64 = 0;
        let mut stopped = forwarding.stop.subscribe();
        loop {
            let Some(request) = unless_stopped(queued.recv(), &mut stopped).await else {
                break;
            };
            // The live set may have changed since the publish was routed.
            let Some(owner) = forwarding.other_owner(request.op.topic()) else {
                self.local.sequence(request);
                continue;
            };
            token += 1;
            let payload = Bytes::copy_from_slice(request.op.as_bytes());
            let subject = format!("{}.{}", self.prefix, owner.to_hex());
            let reply = format!("{}.{token}", self.inbox);
            let pending = Pending {
                request,
                deadline: Instant::now() + self.timeout,
            };
            if let Some(Pending { request, .. }) = lock(&self.pending).hold(token, pending) {
                self.local.sequence(request);
                continue;
            }
            // A publish that fails to go out stays pending: the sweep sequences it here.
            match self
                .client
                .publish_with_reply(subject, reply, payload)
                .await
            {
                Ok(()) => {
                    forwarding.counts.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::debug!(%error, "forwarded publish not sent"),
            }
        }
    }
}

/// `next`'s item, or `None` once this frontend's forwarding is stopped.
async fn unless_stopped<T>(
    next: impl std::future::Future<Output = Option<T>>,
    stopped: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        item = next => item,
        _ = stopped.wait_for(|stop| *stop) => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands the owners' answers to the clients; sequences here what found no owner.
async fn receive_answers(
    mut answers: async_nats::Subscriber,
    pending: Arc<Mutex<PendingForwards>>,
    local: Local,
    hub: Arc<Hub>,
) {
    let mut stopped = local.forwarding.stop.subscribe();
    loop {
        let Some(message) = unless_stopped(answers.next(), &mut stopped).await else {
            break;
        };
        let token = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        let Some(Pending { request, .. }) = token.and_then(|t| lock(&pending).remove(t)) else {
            continue; // swept already
        };
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            // The owner is gone (its subscription with it): ours until the live set says so.
            local.sequence(request);
            continue;
        }
        let frame = match Frame::decode(&message.payload) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "a forwarded publish's answer does not decode");
                local.sequence(request);
                continue;
            }
        };
        let frame = Frame::new(request.request_id, frame.body);
        let (hub, reply) = (hub.clone(), request.reply);
        let topic = request.op.topic().to_owned();
        tokio::spawn(async move {
            // As for this frontend's own publishes: the receipt once the follower has the entry.
            if let Body::Receipt { seq, .. } = &frame.body {
                wait_for_entry(&hub, &topic, seq + 1, super::frontend::RECEIPT_PATIENCE).await;
            }
            reply.send(&frame);
        });
    }
}

/// Waits (at most `patience`) until the hub holds `size` entries of `topic`.
async fn wait_for_entry(hub: &Hub, topic: &str, size: u64, patience: Duration) {
    if hub.head(topic) >= size {
        return;
    }
    let grown = Arc::new(Notify::new());
    let deadline = tokio::time::Instant::now() + patience;
    while hub.watch(topic, &grown) < size {
        if tokio::time::timeout_at(deadline, grown.notified())
            .await
            .is_err()
        {
            tracing::warn!(
                topic,
                size,
                "the follower has not applied a forwarded entry yet; receipt sent anyway"
            );
            break;
        }
    }
    hub.unwatch(topic, &grown);
}

/// Sequences here every forwarded publish whose owner did not answer in time (an op the owner
/// did sequence is then answered with its original receipt).
async fn sweep(pending: Arc<Mutex<PendingForwards>>, local: Local, timeout: Duration) {
    let mut tick = tokio::time::interval(timeout.min(Duration::from_secs(1)));
    let mut stopped = local.forwarding.stop.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let now = Instant::now();
        let late = lock(&pending).expired(now);
        for request in late {
            local.sequence(request);
        }
    }
}

/// Serves publishes other frontends forwarded here: queued on this sequencer in arrival order,
/// each answer sent back to its reply subject.
async fn serve(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    sequencer: SequencerQueue,
    forwarding: Arc<Forwarding>,
) {
    let (frames, mut answered) = mpsc::channel::<Vec<u8>>(ANSWERS);
    let reply = ReplyTo::new(frames, Arc::default(), SendBudget::unbounded());
    let waiting: Arc<Mutex<HashMap<u32, async_nats::Subject>>> = Arc::default();
    let (answer_client, answer_waiting) = (client.clone(), waiting.clone());
    tokio::spawn(async move {
        while let Some(bytes) = answered.recv().await {
            // Every frame starts version (1), type (1), request id (4): PROTOCOL.md 7.1.
            let Some(id) = bytes.get(2..6).and_then(|b| b.try_into().ok()) else {
                continue;
            };
            let Some(to) = lock(&answer_waiting).remove(&u32::from_be_bytes(id)) else {
                continue;
            };
            let _ = answer_client.publish(to, Bytes::from(bytes)).await;
        }
    });
    let mut next_id: u32 = 0;
    let mut stopped = forwarding.stop.subscribe();
    loop {
        // Stopped: unsubscribed, so the others' forwards find no responder and fall back.
        let Some(message) = unless_stopped(requests.next(), &mut stopped).await else {
            break;
        };
        let Some(to) = message.reply else { continue };
        next_id = next_id.wrapping_add(1).max(1);
        let answer = |error: &Error| Frame::error(0, error).encode().ok().map(Bytes::from);
        let op = match SignedOp::decode_unverified(&message.payload) {
            Ok(op) => op,
            Err(error) => {
                if let Some(bytes) = answer(&error) {
                    let _ = client.publish(to, bytes).await;
                }
                continue;
            }
        };
        lock(&waiting).insert(next_id, to.clone());
        let request = PublishRequest {
            op,
            request_id: next_id,
            reply: reply.clone(),
            received_at: std::time::Instant::now(),
        };
        match sequencer.submit(request) {
            Ok(()) => {
                forwarding.counts.served.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                lock(&waiting).remove(&next_id);
                if let Some(bytes) = answer(&error) {
                    let _ = client.publish(to, bytes).await;
                }
            }
        }
    }
    let _ = requests.unsubscribe().await;
}

/// Beats this frontend's heartbeat and reads the live set back, every third of the TTL, until
/// stopped; then deletes the heartbeat.
async fn heartbeat(frontends: Frontends, address: String, forwarding: Arc<Forwarding>) {
    let every = frontends.ttl() / 3;
    loop {
        let beat = async {
            frontends.beat(&forwarding.me, address.as_bytes()).await?;
            frontends.live().await
        };
        match beat.await {
            Ok(live) => {
                let mut ids: Vec<FrontendId> = live.into_iter().map(|h| h.id).collect();
                forwarding
                    .counts
                    .live
                    .store(ids.len() as u64, Ordering::Relaxed);
                // The candidates always include this frontend, also before its own heartbeat
                // is listed.
                if !ids.contains(&forwarding.me) {
                    ids.push(forwarding.me);
                }
                *forwarding.live.write().unwrap_or_else(|p| p.into_inner()) = ids;
            }
            // Keep the last live set: forwards to a frontend that is gone fall back here.
            Err(error) => tracing::warn!(%error, "frontend heartbeat"),
        }
        let mut stopped = forwarding.stop.subscribe();
        if tokio::select! {
            () = tokio::time::sleep(every) => false,
            _ = stopped.wait_for(|stop| *stop) => true,
        } {
            let _ = frontends.leave(&forwarding.me).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::op::{OpDraft, SignedOp};
    use crate::relay::reply::reply_channel;

    fn pending(body_len: usize, deadline: Instant) -> Pending {
        let author = Identity::from_seed(&[9; 32]).unwrap();
        let op = SignedOp::sign(
            &author,
            OpDraft {
                topic: "t".into(),
                kind: "blob".into(),
                body: vec![0; body_len],
                ..Default::default()
            },
        )
        .unwrap();
        Pending {
            request: PublishRequest {
                op,
                request_id: 1,
                reply: reply_channel(1).0,
                received_at: Instant::now(),
            },
            deadline,
        }
    }

    #[test]
    fn unanswered_forwards_are_bounded_in_bytes_and_give_them_back() {
        let later = Instant::now() + Duration::from_secs(3600);
        let mut forwards = PendingForwards::new(3_000);
        let big = 1_000 - 200; // an op is its body and about 150 bytes more
                               // An empty set takes any one; then ops up to the bound.
        assert!(forwards.hold(1, pending(5_000, later)).is_none());
        assert!(forwards.hold(2, pending(1, later)).is_some());
        assert!(forwards.remove(1).is_some());
        assert_eq!(forwards.bytes, 0);
        for token in 10..12 {
            assert!(forwards.hold(token, pending(big, later)).is_none());
        }
        assert!(forwards.bytes > 1_800 && forwards.bytes <= 2_000);
        let refused = forwards.hold(12, pending(big + 300, later));
        assert!(
            refused.is_some(),
            "past the bound the publish is given back"
        );
        assert_eq!(forwards.by_token.len(), 2);
        // Expired ones leave with their bytes.
        let soon = Instant::now();
        assert!(forwards.hold(13, pending(10, soon)).is_none());
        let late = forwards.expired(soon + Duration::from_millis(1));
        assert_eq!(late.len(), 1);
        assert!(forwards.remove(13).is_none());
        assert!(forwards.remove(10).is_some() && forwards.remove(11).is_some());
        assert_eq!(forwards.bytes, 0);
    }
}
