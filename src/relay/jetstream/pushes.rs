//! [`NatsPushes`]: the [`PushBus`] of a cluster's frontends, on core NATS.
//!
//! The frontend that sequences an op pushes the replica events it produces (a compensation for
//! a losing claimant, PROTOCOL.md 8.5) to the agent's connections, but the agent may be
//! connected to another frontend (always so for a publish forwarded to its topic's owner,
//! [`super::forward`]). So every pushed frame also goes to the subject `<base>.pushes`
//! (`ants.pushes`, outside the stream's subjects) as the agent's 32-byte key followed by the
//! frame; every other frontend hands it to its own connections of that agent. An `Ants-Origin`
//! header names the sending frontend, which skips its own. Only `event` frames are carried.

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{connect_client, sibling_subject, unavailable, JetStreamConfig};
use crate::error::Result;
use crate::identity::AgentId;
use crate::relay::durable::PushBus;
use crate::relay::reply::AgentConnections;
use crate::wire::{Body, Frame};

/// The header naming the frontend that sent a pushed frame.
const ORIGIN_HEADER: &str = "Ants-Origin";
/// Pushed frames waiting to be sent; past that they are dropped (a client following the topic
/// learns the event from its own replica).
const QUEUE: usize = 1024;

/// The push bus of one frontend. See the module docs.
#[derive(Debug)]
pub struct NatsPushes {
    outbox: mpsc::Sender<Bytes>,
}

impl NatsPushes {
    /// Connects to the cluster's servers (a connection of its own, on the caller's runtime)
    /// and hands the frames other frontends push to `agents`' connections.
    ///
    /// Errors: `UNAVAILABLE` when no server answers.
    pub async fn connect(
        config: &JetStreamConfig,
        agents: Arc<AgentConnections>,
    ) -> Result<Arc<Self>> {
        let client = connect_client(config, "pushes").await?;
        let subject = sibling_subject(&config.subject_prefix, "pushes");
        let origin = client.new_inbox();
        let mut heard = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| unavailable("subscribe (pushes)", e))?;
        let mine = origin.clone();
        tokio::spawn(async move {
            while let Some(message) = heard.next().await {
                let from_here = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(ORIGIN_HEADER))
                    .is_some_and(|value| value.as_str() == mine);
                if !from_here {
                    deliver(&agents, &message.payload);
                }
            }
        });
        let (outbox, mut queued) = mpsc::channel::<Bytes>(QUEUE);
        tokio::spawn(async move {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(ORIGIN_HEADER, origin.as_str());
            while let Some(payload) = queued.recv().await {
                if let Err(error) = client
                    .publish_with_headers(subject.clone(), headers.clone(), payload)
                    .await
                {
                    tracing::debug!(%error, "pushed event not sent to the other frontends");
                }
            }
        });
        Ok(Arc::new(NatsPushes { outbox }))
    }
}

/// Hands a pushed frame from another frontend to this one's connections of its agent. Anything
/// else than an agent key and an `event` frame is dropped.
fn deliver(agents: &AgentConnections, payload: &[u8]) {
    let Some((key, frame)) = payload.split_first_chunk::<32>() else {
        return;
    };
    let (Ok(agent), Ok(frame)) = (AgentId::from_bytes(key), Frame::decode(frame)) else {
        return;
    };
    if matches!(frame.body, Body::Event { .. }) {
        agents.send(&agent, &frame);
    }
}

impl PushBus for NatsPushes {
    fn push(&self, agent: &AgentId, frame: &Frame) {
        let Ok(encoded) = frame.encode() else { return };
        let mut payload = Vec::with_capacity(32 + encoded.len());
        payload.extend_from_slice(agent.as_bytes());
        payload.extend_from_slice(&encoded);
        // A full queue drops it: the event is also in the log, for every replica to see.
        let _ = self.outbox.try_send(Bytes::from(payload));
    }
}
