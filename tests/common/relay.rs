//! An in-process relay on 127.0.0.1:0 and a small WebSocket client speaking the
//! wire protocol.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use ants_coord::relay::{self, Config, RelayHandle};
use ants_coord::wire::{sign_hello, Body, Frame};
use ants_coord::{Identity, OpDraft, SignedOp};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected frame may take before a test fails (a hang guard, not a
/// performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh, empty data directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("ants-relay-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The configuration tests start a relay over `data` with: [`Config::ephemeral`] on the
/// embedded store, or, with `ANTS_TEST_STORE=nats` (and feature `nats`), as a frontend on a
/// JetStream cluster shared by the test binary, in a namespace of the data directory's own
/// (`scripts/test.sh` runs the relay suites both ways).
pub fn test_config(data: PathBuf) -> Config {
    #[allow(unused_mut)]
    let mut config = Config::ephemeral(data);
    #[cfg(feature = "nats")]
    if on_nats() {
        config.store = Some(super::nats::shared_store_url(&config.data));
    }
    config
}

/// Whether this run puts the relays of the suites on the JetStream store (`ANTS_TEST_STORE`
/// is `nats`; anything else but unset or `sqlite` is refused).
pub fn on_nats() -> bool {
    match std::env::var("ANTS_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "sqlite") => false,
        Ok("nats") if cfg!(feature = "nats") => true,
        Ok(other) => {
            panic!("ANTS_TEST_STORE={other:?}: expected sqlite, or nats with feature nats")
        }
    }
}

/// Starts a relay over `data` ([`test_config`]).
pub async fn start_relay(data: PathBuf) -> RelayHandle {
    relay::start(test_config(data)).await.unwrap()
}

/// Starts a relay over `data` with `tweak` applied to its config ([`test_config`]).
pub async fn start_relay_with(data: PathBuf, tweak: impl FnOnce(&mut Config)) -> RelayHandle {
    let mut config = test_config(data);
    tweak(&mut config);
    relay::start(config).await.unwrap()
}

pub fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32]).unwrap()
}

pub fn op(author: &Identity, topic: &str, counter: u64, body: &[u8]) -> SignedOp {
    SignedOp::sign(
        author,
        OpDraft {
            topic: topic.into(),
            kind: "post".into(),
            counter,
            time_ms: 1_700_000_000_000 + counter,
            deps: vec![],
            body: body.to_vec(),
        },
    )
    .unwrap()
}

/// A wire-protocol client. It hands out an `entries` frame as that many `entry` frames, as the
/// protocol defines it, and counts how many it received.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub challenge: Option<(ants_coord::AgentId, [u8; 32])>,
    next_id: u32,
    /// Entry frames split from an `entries` frame, not yet handed out.
    pending: VecDeque<Frame>,
    /// How many `entries` frames arrived.
    pub entries_frames: usize,
}

impl Client {
    /// A client on a fresh WebSocket, before the challenge is read.
    fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            challenge: None,
            next_id: 1,
            pending: VecDeque::new(),
            entries_frames: 0,
        }
    }

    /// Asks the inclusion proof of entry `seq` in the tree of `tree_size` entries of `topic`
    /// and decodes it (panics on any other answer).
    pub async fn inclusion_proof(
        &mut self,
        topic: &str,
        seq: u64,
        tree_size: u64,
    ) -> ants_coord::log::InclusionProof {
        self.request(Body::GetInclusionProof {
            topic: topic.into(),
            seq,
            tree_size,
        })
        .await;
        let Body::InclusionProof { proof } = self.recv().await.body else {
            panic!("no inclusion proof of {topic:?} seq {seq}");
        };
        ants_coord::log::InclusionProof::decode(&proof).unwrap()
    }

    /// Connects and reads the challenge.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut client = Client::over(ws);
        match client.recv().await.body {
            Body::Challenge { relay, nonce } => client.challenge = Some((relay, nonce)),
            other => panic!("expected a challenge, got {other:?}"),
        }
        client
    }

    /// Connects and completes the hello as `identity`.
    pub async fn connect_as(url: &str, identity: &Identity) -> Client {
        let mut client = Client::connect(url).await;
        let (relay, nonce) = client.challenge.unwrap();
        let id = client.request(sign_hello(identity, &nonce, &relay)).await;
        let answer = client.recv().await;
        assert_eq!(answer.request_id, id);
        assert!(
            matches!(answer.body, Body::Welcome { .. }),
            "hello refused: {answer:?}"
        );
        client
    }

    /// Connects and completes the hello as `identity`, or says why not (the relay is down,
    /// going down, or refused the hello): for clients that fail over to another relay.
    pub async fn try_connect_as(url: &str, identity: &Identity) -> Result<Client, String> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let mut client = Client::over(ws);
        let (relay, nonce) = match client.try_recv().await {
            Ok(Frame {
                body: Body::Challenge { relay, nonce },
                ..
            }) => (relay, nonce),
            other => return Err(format!("no challenge from {url}: {other:?}")),
        };
        client.challenge = Some((relay, nonce));
        let hello = Frame::new(client.next_id, sign_hello(identity, &nonce, &relay));
        client.next_id += 1;
        let bytes = hello.encode().map_err(|e| e.to_string())?;
        client
            .try_send_raw(bytes)
            .await
            .map_err(|e| e.to_string())?;
        match client.try_recv().await {
            Ok(Frame {
                body: Body::Welcome { .. },
                ..
            }) => Ok(client),
            other => Err(format!("hello refused by {url}: {other:?}")),
        }
    }

    /// Publishes `op` and returns the answer, or `None` when the connection ended first (the
    /// relay went away): a publish that may or may not have landed, to retry with the same bytes.
    pub async fn try_publish(&mut self, op: &SignedOp) -> Option<Frame> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = Frame::new(
            id,
            Body::Publish {
                op: op.as_bytes().to_vec(),
            },
        );
        self.try_send_raw(frame.encode().ok()?).await.ok()?;
        loop {
            let answer = self.try_recv().await.ok()?;
            if answer.request_id == id {
                return Some(answer);
            }
        }
    }

    /// Sends a request with a fresh request id; returns the id.
    pub async fn request(&mut self, body: Body) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&Frame::new(id, body)).await;
        id
    }

    pub async fn send_frame(&mut self, frame: &Frame) {
        self.send_raw(frame.encode().unwrap()).await;
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// Sends raw bytes and returns the transport's error instead of panicking: a relay that
    /// refuses a message may close the connection before the client has finished writing it,
    /// and the client then sees a reset (or a broken pipe) while still sending.
    pub async fn try_send_raw(
        &mut self,
        bytes: Vec<u8>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(Message::Binary(bytes.into())).await
    }

    /// Reads until the connection ends and says how it ended; panics if a frame arrives first
    /// (pings and pongs are skipped) or if it does not end within the test's patience.
    pub async fn ending(&mut self) -> Ending {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the connection did not end within the test's patience");
            match message {
                Some(Ok(Message::Close(frame))) => {
                    return Ending::Closed(frame.map(|f| f.reason.to_string()))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("expected the connection to end, got {other:?}"),
                Some(Err(error)) => return Ending::Broken(error.to_string()),
                None => return Ending::Broken("end of stream without a close frame".into()),
            }
        }
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next frame (pings and pongs skipped).
    pub async fn recv(&mut self) -> Frame {
        match self.try_recv().await {
            Ok(frame) => frame,
            Err(close) => panic!("connection ended: {close:?}"),
        }
    }

    /// The next frame, or the close reason (`None` when the connection just ended).
    pub async fn try_recv(&mut self) -> Result<Frame, Option<String>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("no frame within the test's patience");
            match message {
                Some(Ok(Message::Binary(bytes))) => match Frame::decode(&bytes).unwrap() {
                    Frame {
                        request_id,
                        body: Body::Entries { entries },
                    } => {
                        self.entries_frames += 1;
                        self.pending.extend(
                            entries
                                .into_iter()
                                .map(|entry| Frame::new(request_id, Body::Entry { entry })),
                        );
                        if let Some(frame) = self.pending.pop_front() {
                            return Ok(frame);
                        }
                    }
                    frame => return Ok(frame),
                },
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.reason.to_string())),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Publishes `op` and waits for its answer.
    pub async fn publish(&mut self, op: &SignedOp) -> Frame {
        let id = self
            .request(Body::Publish {
                op: op.as_bytes().to_vec(),
            })
            .await;
        let answer = self.recv().await;
        assert_eq!(answer.request_id, id, "{answer:?}");
        answer
    }

    /// Publishes and expects a receipt; returns its seq.
    pub async fn publish_ok(&mut self, op: &SignedOp) -> u64 {
        match self.publish(op).await.body {
            Body::Receipt { seq, op_id, .. } => {
                assert_eq!(op_id, op.id());
                seq
            }
            other => panic!("expected a receipt, got {other:?}"),
        }
    }

    /// Subscribes and returns the Subscribed frame's head.
    pub async fn subscribe(&mut self, topic: &str, from_seq: u64) -> u64 {
        let id = self
            .request(Body::Subscribe {
                topic: topic.into(),
                from_seq,
            })
            .await;
        let answer = self.recv().await;
        assert_eq!(answer.request_id, id);
        match answer.body {
            Body::Subscribed { head, .. } => head,
            other => panic!("expected subscribed, got {other:?}"),
        }
    }

    /// The next entry frame, decoded.
    pub async fn next_entry(&mut self) -> ants_coord::Entry {
        match self.recv().await.body {
            Body::Entry { entry } => ants_coord::Entry::decode(&entry).unwrap(),
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    /// The underlying WebSocket, after the handshake (for pipelining tests).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// How a connection ended, as its client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The peer sent a close frame with this reason (`None`: a close frame without one).
    Closed(Option<String>),
    /// The transport ended without a close frame: a reset, a broken pipe, or an end of stream.
    Broken(String),
}

/// Whether a transport error is the peer's side of the connection going away under a writer
/// (a TCP reset, a broken pipe, an aborted connection), as opposed to a protocol error.
pub fn is_reset(error: &tokio_tungstenite::tungstenite::Error) -> bool {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

/// The error code of an error frame (panics on anything else).
pub fn code_of(frame: &Frame) -> &str {
    match &frame.body {
        Body::Error { code, .. } => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// GETs `path` from the relay's HTTP side and returns the whole response (status 200 asserted).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let response = http_get_any(addr, path).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// The whole HTTP response to `GET path`, whatever its status.
pub async fn http_get_any(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
