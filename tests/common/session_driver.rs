//! The whole of a client's I/O: frames between one WebSocket and a `Session`.

use std::collections::BTreeSet;
use std::time::Duration;

use ants_coord::session::{Phase, Session, SessionEvent};
use ants_coord::wire::{Body, Frame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::relay::PATIENCE;

/// The clock every driven session is given.
pub const T0: u64 = 1_700_000_000_000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One socket and the events its session produced.
pub struct Driver {
    ws: Ws,
    /// Every event taken from the session so far.
    pub events: Vec<SessionEvent>,
    /// Request ids of the checkpoint requests sent and not answered yet.
    unanswered_checkpoints: BTreeSet<u32>,
}

impl Driver {
    /// Connects `session` to `url` and pumps until it is live.
    pub async fn connect(url: &str, session: &mut Session) -> Driver {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        session.connected();
        let mut driver = Driver {
            ws,
            events: Vec::new(),
            unanswered_checkpoints: BTreeSet::new(),
        };
        driver.until(session, |s, _| s.phase() == Phase::Live).await;
        driver
    }

    /// Sends what the session has queued.
    pub async fn flush(&mut self, session: &mut Session) {
        for frame in session.take_outgoing() {
            if let Ok(Frame {
                request_id,
                body: Body::GetCheckpoint { .. },
            }) = Frame::decode(&frame)
            {
                self.unanswered_checkpoints.insert(request_id);
            }
            self.ws.send(Message::Binary(frame.into())).await.unwrap();
        }
    }

    /// Pumps until the relay has answered every checkpoint request sent so far (with a
    /// checkpoint or an error frame), the session has taken the answers, and `done` holds. A
    /// condition, not a quiet period: it holds however slow the machine is.
    pub async fn until_answered(
        &mut self,
        session: &mut Session,
        done: impl Fn(&Session, &[SessionEvent]) -> bool,
    ) {
        self.flush(session).await;
        loop {
            self.flush(session).await;
            if self.unanswered_checkpoints.is_empty() && done(session, &self.events) {
                return;
            }
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no frame within the test's patience");
            self.take(session, message);
        }
    }

    /// Pumps until `done` holds (checked after every received frame); fails after
    /// [`PATIENCE`] without a frame.
    pub async fn until(
        &mut self,
        session: &mut Session,
        done: impl Fn(&Session, &[SessionEvent]) -> bool,
    ) {
        loop {
            self.flush(session).await;
            if done(session, &self.events) {
                return;
            }
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no frame within the test's patience");
            self.take(session, message);
        }
    }

    /// Pumps until no frame arrives for `quiet`. Only for showing that nothing more comes: a
    /// quiet period is not a completion signal on a busy machine (wait with [`Driver::until`]
    /// or [`Driver::until_answered`] for what must happen).
    pub async fn settle(&mut self, session: &mut Session, quiet: Duration) {
        loop {
            self.flush(session).await;
            match tokio::time::timeout(quiet, self.ws.next()).await {
                Ok(message) => self.take(session, message),
                Err(_) => return,
            }
        }
    }

    fn take(
        &mut self,
        session: &mut Session,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                if let Ok(Frame {
                    request_id,
                    body: Body::Checkpoint { .. } | Body::Error { .. },
                }) = Frame::decode(&bytes)
                {
                    self.unanswered_checkpoints.remove(&request_id);
                }
                session.receive(&bytes, T0).unwrap();
                self.events.extend(session.take_events());
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

/// The misbehaviour codes among `events`.
pub fn fault_codes(events: &[SessionEvent]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Misbehaviour { fault, .. } => Some(fault.code()),
            _ => None,
        })
        .collect()
}

/// The seqs of the entries of `topic` among `events`.
pub fn entries_by(events: &[SessionEvent], topic: &str) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Entry { topic: t, entry } if t == topic => Some(entry.seq()),
            _ => None,
        })
        .collect()
}
