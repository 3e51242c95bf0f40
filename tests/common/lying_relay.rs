//! A relay built in the test tree from the core's relay-side code (`wire::RelayConnection`,
//! `log::MerkleLog`, signed receipts and checkpoints) that serves real WebSockets on
//! 127.0.0.1:0 and tells one deliberate lie.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ants_coord::log::{Checkpoint, MerkleLog, Receipt, SignedCheckpoint, SignedReceipt};
use ants_coord::wire::{Action, Body, Frame, RelayConnection};
use ants_coord::{AgentId, Entry, Identity, OpDraft, SignedOp};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The relay's lie. Each is triggered by an op body, so a test says exactly which op it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// None: an honest relay.
    None,
    /// An op with body `drop me` is acknowledged (receipt signed over a tree that holds it) but
    /// never logged.
    DropAcknowledged,
    /// An op with body `first` is held back and logged after the author's next op.
    ReorderAuthor,
    /// Ops with bodies starting `pair` are logged with one relay time for even-numbered
    /// connections and another for odd-numbered ones: two histories, each valid alone.
    Fork,
    /// An op with body `forge me` is logged with its body changed to `forged` (the author's
    /// signature no longer holds).
    Forge,
}

#[derive(Default)]
struct View {
    entries: Vec<Vec<u8>>,
    log: MerkleLog,
}

struct State {
    identity: Identity,
    lie: Lie,
    /// Two views of every topic; without `Fork` both are the same.
    views: [BTreeMap<String, View>; 2],
    /// Ops held back, with the request id of their publish.
    held: Vec<(u32, SignedOp)>,
    time: u64,
    connections: usize,
}

impl State {
    fn view_of(&self, connection: usize) -> usize {
        if self.lie == Lie::Fork {
            connection % 2
        } else {
            0
        }
    }

    /// Logs `op` in view `v` at relay time `time` and signs a receipt over the resulting tree.
    fn append(&mut self, v: usize, op: &SignedOp, time: u64) -> (u64, Vec<u8>) {
        let view = self.views[v].entry(op.topic().to_owned()).or_default();
        let seq = view.entries.len() as u64;
        let entry = Entry::new(seq, time, op.clone());
        view.entries.push(entry.as_bytes().to_vec());
        view.log.append(entry.as_bytes()).unwrap();
        let (tree_size, root) = (view.log.size(), view.log.root());
        (seq, self.receipt(op, seq, time, tree_size, root))
    }

    fn receipt(
        &self,
        op: &SignedOp,
        seq: u64,
        time: u64,
        tree_size: u64,
        root: [u8; 32],
    ) -> Vec<u8> {
        let receipt = Receipt {
            topic: op.topic().to_owned(),
            seq,
            op_id: op.id(),
            relay_time_ms: time,
            tree_size,
            root,
        };
        SignedReceipt::sign(&self.identity, receipt)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// Logs `op` in both views, `skew` ms later in the second; the receipt frame of view `v`
    /// (request `id`).
    fn append_everywhere(&mut self, v: usize, id: u32, op: &SignedOp, skew: u64) -> Frame {
        self.time += 1;
        let mut owed = None;
        for view in 0..2 {
            let time = self.time + if view == 1 { skew } else { 0 };
            let (seq, receipt) = self.append(view, op, time);
            if view == v {
                owed = Some(receipt_frame(id, op, seq, receipt));
            }
        }
        owed.expect("two views")
    }

    /// Sequences a publish (request `id`) from connection `c`; returns the receipt frames owed
    /// to that connection.
    fn publish(&mut self, c: usize, id: u32, op: SignedOp) -> Vec<Frame> {
        let mine = self.view_of(c);
        let mut out = Vec::new();
        match (self.lie, op.body()) {
            (Lie::DropAcknowledged, b"drop me") => {
                self.time += 1;
                let view = self.views[mine].entry(op.topic().to_owned()).or_default();
                let seq = view.entries.len() as u64;
                let entry = Entry::new(seq, self.time, op.clone());
                let mut fake = view.log.clone();
                fake.append(entry.as_bytes()).unwrap();
                let receipt = self.receipt(&op, seq, self.time, fake.size(), fake.root());
                out.push(receipt_frame(id, &op, seq, receipt));
            }
            (Lie::ReorderAuthor, b"first") => self.held.push((id, op)),
            (Lie::Forge, b"forge me") => {
                let forged = forge(&op, &self.identity);
                self.append_everywhere(mine, id, &forged, 0);
                // The publisher is told its op was logged; what was logged is the forgery.
                let view = &self.views[mine][op.topic()];
                let seq = view.entries.len() as u64 - 1;
                let receipt = self.receipt(&op, seq, self.time, view.log.size(), view.log.root());
                out.push(receipt_frame(id, &op, seq, receipt));
            }
            (Lie::Fork, body) if body.starts_with(b"pair") => {
                // The same op at the same seq, with another relay time in the second view.
                out.push(self.append_everywhere(mine, id, &op, 1_000));
            }
            _ => {
                out.push(self.append_everywhere(mine, id, &op, 0));
                if let Some(i) = self
                    .held
                    .iter()
                    .position(|(_, h)| h.author() == op.author())
                {
                    let (held_id, held) = self.held.remove(i);
                    out.push(self.append_everywhere(mine, held_id, &held, 0));
                }
            }
        }
        out
    }

    fn checkpoint(&self, c: usize, topic: &str) -> Vec<u8> {
        let empty = View::default();
        let view = self.views[self.view_of(c)].get(topic).unwrap_or(&empty);
        let checkpoint = Checkpoint {
            topic: topic.to_owned(),
            tree_size: view.log.size(),
            root: view.log.root(),
            time_ms: self.time,
        };
        SignedCheckpoint::sign(&self.identity, checkpoint)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// The inclusion proof of leaf `seq` in the tree of `size` of the view of connection `c`,
    /// or an error frame when that view has no such tree.
    fn inclusion_proof(&self, c: usize, id: u32, topic: &str, seq: u64, size: u64) -> Frame {
        let view = self.views[self.view_of(c)].get(topic);
        match view.map(|v| v.log.inclusion_proof(seq, size)) {
            Some(Ok(proof)) => Frame::new(
                id,
                Body::InclusionProof {
                    proof: proof.encode(),
                },
            ),
            _ => Frame::new(
                id,
                Body::Error {
                    code: "BAD_INPUT".into(),
                    message: "no tree of that size".into(),
                },
            ),
        }
    }

    /// Entries owed to `conn` on every topic it follows.
    fn deliver(&self, c: usize, conn: &mut RelayConnection) -> Vec<Frame> {
        let view = &self.views[self.view_of(c)];
        let topics: Vec<(String, u64)> = conn.cursors().map(|(t, s)| (t.to_owned(), s)).collect();
        let mut frames = Vec::new();
        for (topic, mut cursor) in topics {
            let Some(v) = view.get(&topic) else { continue };
            while let Some(bytes) = v.entries.get(cursor as usize) {
                frames.extend(conn.deliver(&topic, cursor, bytes));
                cursor += 1;
            }
        }
        frames
    }
}

/// The same op with its body replaced: its signature no longer holds.
fn forge(op: &SignedOp, relay: &Identity) -> SignedOp {
    let draft = OpDraft {
        topic: op.topic().to_owned(),
        kind: op.kind().to_owned(),
        counter: op.counter(),
        time_ms: op.time_ms(),
        deps: op.deps().to_vec(),
        body: b"forged".to_vec(),
    };
    // Signed by the relay, then given the author's key: the bytes name the author, the
    // signature is the relay's.
    let by_relay = SignedOp::sign(relay, draft).unwrap();
    let mut bytes = by_relay.as_bytes().to_vec();
    let relay_key = relay.agent_id();
    let at = bytes
        .windows(32)
        .position(|w| w == relay_key.as_bytes())
        .expect("the author key is in the op bytes");
    bytes[at..at + 32].copy_from_slice(op.author().as_bytes());
    SignedOp::decode_unverified(&bytes).unwrap()
}

/// A running lying relay.
pub struct LyingRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its key.
    pub id: AgentId,
    stop: watch::Sender<bool>,
}

impl LyingRelay {
    /// Starts one on 127.0.0.1:0.
    pub async fn start(lie: Lie) -> LyingRelay {
        let identity = Identity::from_seed(&[77; 32]).unwrap();
        let id = identity.agent_id();
        let state = Arc::new(Mutex::new(State {
            identity,
            lie,
            views: [BTreeMap::new(), BTreeMap::new()],
            held: Vec::new(),
            time: 1_700_000_000_000,
            connections: 0,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let (appended, _) = watch::channel(0u64);
        let appended = Arc::new(appended);
        tokio::spawn(async move {
            let mut stopped_accept = stopped.clone();
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    _ = stopped_accept.changed() => return,
                };
                let (state, appended, mut stopped) =
                    (state.clone(), appended.clone(), stopped.clone());
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let (c, mut conn) = {
                        let mut s = state.lock().unwrap();
                        s.connections += 1;
                        (
                            s.connections - 1,
                            RelayConnection::new(
                                s.identity.agent_id(),
                                [c_nonce(s.connections); 32],
                            ),
                        )
                    };
                    let mut woken = appended.subscribe();
                    let send = |frames: Vec<Frame>| {
                        frames
                            .into_iter()
                            .map(|f| Message::Binary(f.encode().unwrap().into()))
                            .collect::<Vec<_>>()
                    };
                    if ws
                        .send(send(vec![conn.challenge()]).remove(0))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    loop {
                        let frames = tokio::select! {
                            message = ws.next() => {
                                let Some(Ok(Message::Binary(bytes))) = message else { return };
                                let mut s = state.lock().unwrap();
                                let mut out = Vec::new();
                                match conn.receive(&bytes) {
                                    Action::Send(frame) => out.push(frame),
                                    Action::Publish { request_id, op } => {
                                        out.extend(s.publish(c, request_id, op));
                                        appended.send_modify(|n| *n += 1);
                                    }
                                    Action::Subscribe { request_id, topic, .. } => {
                                        let head = s.views[s.view_of(c)].get(&topic).map_or(0, |v| v.entries.len() as u64);
                                        out.extend(conn.subscribed(&topic, request_id, head));
                                    }
                                    Action::Checkpoint { request_id, topic } => {
                                        out.push(Frame::new(request_id, Body::Checkpoint { checkpoint: s.checkpoint(c, &topic) }));
                                    }
                                    Action::InclusionProof { request_id, topic, seq, tree_size } => {
                                        out.push(s.inclusion_proof(c, request_id, &topic, seq, tree_size));
                                    }
                                    _ => {}
                                }
                                out.extend(s.deliver(c, &mut conn));
                                out
                            }
                            _ = woken.changed() => state.lock().unwrap().deliver(c, &mut conn),
                            _ = stopped.changed() => return,
                        };
                        for message in send(frames) {
                            if ws.send(message).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        LyingRelay { addr, id, stop }
    }

    /// The WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

fn receipt_frame(id: u32, op: &SignedOp, seq: u64, receipt: Vec<u8>) -> Frame {
    Frame::new(
        id,
        Body::Receipt {
            seq,
            op_id: op.id(),
            receipt,
        },
    )
}

fn c_nonce(n: usize) -> u8 {
    (n % 251) as u8
}
