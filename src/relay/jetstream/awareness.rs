//! [`NatsAwareness`]: the [`AwarenessBus`] of a cluster's frontends, on core NATS.
//!
//! Awareness (who is in a room, their cursors) is not part of any log: it goes over plain NATS
//! subjects, not the stream. A room kept in topic `t` uses the subject
//! `<awareness prefix>.<token of t>`, where the prefix is the stream's subject prefix with its
//! last token `log` replaced by `awareness` (`ants.awareness`, `ants.<namespace>.awareness`),
//! outside the stream's `<subject prefix>.*`. Every message carries an `Ants-Origin` header
//! naming the frontend that sent it, so that a frontend skips its own.
//!
//! When a frontend starts following a room it asks the others for their states (a y-protocols
//! query-awareness message, sent after its subscription is in place), so a newcomer sees who is
//! there without waiting for their renewals.

use std::sync::Arc;

use axum::body::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::subject::token_of_topic;
use super::{connect_client, sibling_subject, JetStreamConfig};
use crate::doc::ProtocolMessage;
use crate::error::Result;
use crate::relay::yjs::AwarenessBus;

/// The header naming the frontend that sent an awareness message.
const ORIGIN_HEADER: &str = "Ants-Origin";
/// Messages waiting to be sent, and per followed room to be handed over; past that they are
/// dropped (awareness is renewed every 15 s by its clients).
const QUEUE: usize = 1024;

/// The awareness bus of one frontend. See the module docs.
#[derive(Debug)]
pub struct NatsAwareness {
    client: async_nats::Client,
    prefix: String,
    /// This frontend's name on the bus (unique per connection).
    origin: String,
    outbox: mpsc::Sender<(String, Bytes)>,
}

impl NatsAwareness {
    /// Connects to the cluster's servers (a connection of its own, on the caller's runtime).
    ///
    /// Errors: `UNAVAILABLE` when no server answers.
    pub async fn connect(config: &JetStreamConfig) -> Result<Arc<Self>> {
        let client = connect_client(config, "awareness").await?;
        let origin = client.new_inbox();
        let (outbox, mut queued) = mpsc::channel::<(String, Bytes)>(QUEUE);
        let (publisher, from) = (client.clone(), origin.clone());
        tokio::spawn(async move {
            while let Some((subject, message)) = queued.recv().await {
                if let Err(error) = publisher
                    .publish_with_headers(subject, origin_header(&from), message)
                    .await
                {
                    tracing::debug!(%error, "awareness message not sent");
                }
            }
        });
        Ok(Arc::new(NatsAwareness {
            client,
            prefix: sibling_subject(&config.subject_prefix, "awareness"),
            origin,
            outbox,
        }))
    }

    fn subject(&self, topic: &str) -> Option<String> {
        let token = token_of_topic(topic).ok()?;
        Some(format!("{}.{token}", self.prefix))
    }
}

fn origin_header(origin: &str) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(ORIGIN_HEADER, origin);
    headers
}

impl AwarenessBus for NatsAwareness {
    fn send(&self, topic: &str, message: Bytes) {
        if let Some(subject) = self.subject(topic) {
            // A full queue drops the message: the client's renewal sends its state again.
            let _ = self.outbox.try_send((subject, message));
        }
    }

    fn follow(&self, topic: &str) -> mpsc::Receiver<Bytes> {
        let (heard, receiver) = mpsc::channel(QUEUE);
        let Some(subject) = self.subject(topic) else {
            return receiver; // closed at once: nothing to follow
        };
        let (client, origin) = (self.client.clone(), self.origin.clone());
        tokio::spawn(async move {
            let mut subscriber = match client.subscribe(subject.clone()).await {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    tracing::warn!(%error, subject, "room awareness not followed");
                    return;
                }
            };
            // The query goes out on the same connection after the subscription, so every
            // answer finds it in place.
            let query = Bytes::from(ProtocolMessage::QueryAwareness.encode());
            let _ = client
                .publish_with_headers(subject, origin_header(&origin), query)
                .await;
            loop {
                tokio::select! {
                    message = subscriber.next() => {
                        let Some(message) = message else { break };
                        let mine = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(ORIGIN_HEADER))
                            .is_some_and(|value| value.as_str() == origin);
                        if !mine && heard.try_send(message.payload).is_err() && heard.is_closed() {
                            break;
                        }
                    }
                    () = heard.closed() => break,
                }
            }
            let _ = subscriber.unsubscribe().await;
        });
        receiver
    }
}
