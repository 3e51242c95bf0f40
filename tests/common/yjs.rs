//! A plain Yjs client over raw frames, for the room tests (`relay_yjs`, `relay_yjs_access`).

use ants_coord::doc::{Doc, DocSync, ProtocolMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::relay::PATIENCE;

/// The root text every test edits.
pub const TEXT: &str = "body";

/// A plain Yjs client: a document, its y-protocols state, a socket.
pub struct YClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub doc: Doc,
    pub sync: DocSync,
}

/// How a connection ended: the close code and reason (`None`: no close frame).
pub type Closed = Option<(u16, String)>;

impl YClient {
    pub async fn connect(base: &str, room: &str) -> YClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{base}/{room}"))
            .await
            .unwrap();
        let doc = Doc::new();
        let sync = DocSync::new(&doc);
        YClient { ws, doc, sync }
    }

    /// Connects and completes the sync both ways (the relay's step 1 answered, ours answered).
    pub async fn joined(base: &str, room: &str) -> YClient {
        match YClient::try_joined(base, room).await {
            Ok(client) => client,
            Err(closed) => panic!("closed before the sync: {closed:?}"),
        }
    }

    /// As [`YClient::joined`], or how the connection ended before the sync was complete.
    pub async fn try_joined(base: &str, room: &str) -> Result<YClient, Closed> {
        let mut client = YClient::connect(base, room).await;
        for message in client.sync.start().unwrap() {
            client.send(message).await;
        }
        while !client.sync.is_synced() {
            client.step().await?;
        }
        Ok(client)
    }

    pub async fn send(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// The next binary message, or how the connection ended.
    pub async fn next(&mut self) -> Result<Vec<u8>, Closed> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no message within the test's patience");
            match message {
                Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Handles one incoming message through `DocSync`, answering as a y-websocket client does.
    pub async fn step(&mut self) -> Result<ProtocolMessage, Closed> {
        let bytes = self.next().await?;
        let message = ProtocolMessage::decode(&bytes).unwrap();
        let outcome = self.sync.receive(&bytes, now_ms()).unwrap();
        for reply in outcome.replies {
            self.send(reply).await;
        }
        Ok(message)
    }

    /// Edits the text locally and sends the update.
    pub async fn insert(&mut self, index: u32, text: &str) {
        let before = self.doc.state_vector().unwrap();
        self.doc.insert_text(TEXT, index, text).unwrap();
        let update = self.doc.encode_update(Some(&before)).unwrap();
        self.send(DocSync::update_message(&update)).await;
    }

    pub async fn until_text(&mut self, expected: &str) {
        while self.text() != expected {
            self.step().await.unwrap();
        }
    }

    pub fn text(&self) -> String {
        self.doc.text(TEXT).unwrap()
    }

    /// Sends `bytes` (or a text message) and expects the relay to close with `code`; returns the
    /// reason.
    pub async fn expect_closed_after(&mut self, message: Message, code: u16) -> String {
        self.ws.send(message).await.unwrap();
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(Some((got, reason))) => {
                    assert_eq!(got, code, "closed with {got} {reason:?}");
                    return reason;
                }
                Err(None) => panic!("connection ended without a close frame"),
            }
        }
    }
}

/// The wall clock, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl YClient {
    /// Expects the relay to refuse the connection as a private room does: a y-protocols
    /// permission-denied message, then close 4401 (`NOT_AUTHENTICATED`) or 4403 (the rest);
    /// both reasons start with `code`.
    pub async fn expect_denied(&mut self, code: &str) {
        loop {
            match self.next().await {
                Ok(bytes) => {
                    if let ProtocolMessage::PermissionDenied(reason) =
                        ProtocolMessage::decode(&bytes).unwrap()
                    {
                        assert!(reason.starts_with(code), "{reason} is not {code}");
                        break;
                    }
                }
                Err(closed) => panic!("closed without a permission-denied message: {closed:?}"),
            }
        }
        let expected = if code == "NOT_AUTHENTICATED" {
            4401
        } else {
            4403
        };
        match self.next().await {
            Err(Some((got, reason))) if got == expected => {
                assert!(reason.starts_with(code), "{reason}")
            }
            other => panic!("expected close {expected} {code}, got {other:?}"),
        }
    }
}

impl YClient {
    /// Expects the relay to close the connection with 1008 and a `BAD_INPUT` reason.
    pub async fn expect_closed_bad_input(&mut self) {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(Some((1008, reason))) if reason.starts_with("BAD_INPUT") => return,
                Err(other) => panic!("expected close 1008 BAD_INPUT, got {other:?}"),
            }
        }
    }
}
