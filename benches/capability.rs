//! What capabilities cost the relay (issue 24), against what every publish already costs.
//!
//! `cargo bench --bench capability`. The relay decodes a connection's capabilities once, at the
//! WebSocket upgrade (every link's signature verified), and then checks each publish and each
//! read of an owned topic against the decoded chains: no signature, a few comparisons. The peer
//! is the one ed25519 verification the relay does for every publish anyway (the op's
//! signature, `verify_signature`), measured in the same run; the printed ratio is peer time /
//! check time (above 1: the check is cheaper than that verification).

use ants_coord::capability::{may_read, may_write, Capability, Grant, Rights, RoomProof, Scope};
use ants_coord::{verify_signature, Identity};
use criterion::{criterion_group, Criterion, Throughput};

#[path = "support/ratio.rs"]
mod ratio;

const NOW_MS: u64 = 1_700_000_000_000;
const LATER_MS: u64 = NOW_MS + 3_600_000;

fn chains() -> (Identity, Identity, String, Vec<Capability>, Capability) {
    let owner = Identity::from_seed(&[1; 32]).expect("seed");
    let friend = Identity::from_seed(&[2; 32]).expect("seed");
    let writer = Identity::from_seed(&[3; 32]).expect("seed");
    let topic = format!("@{}/notes", owner.agent_id());
    let root = Capability::grant(
        &owner,
        friend.agent_id(),
        Scope::Prefix(format!("@{}/", owner.agent_id())),
        Rights::ALL,
        LATER_MS,
    )
    .expect("grant");
    let second = root
        .delegate(
            &friend,
            Grant {
                audience: writer.agent_id(),
                scope: Scope::Topic(topic.clone()),
                rights: Rights::from_bits(Rights::READ.bits() | Rights::WRITE.bits())
                    .expect("rights"),
                not_before_ms: 0,
                expires_ms: LATER_MS,
            },
        )
        .expect("delegate");
    // A connection holding 16 capabilities (the most the relay takes), the matching one last.
    let mut held: Vec<Capability> = (0..15u8)
        .map(|i| {
            Capability::grant(
                &owner,
                writer.agent_id(),
                Scope::Topic(format!("@{}/other-{i}", owner.agent_id())),
                Rights::READ,
                LATER_MS,
            )
            .expect("grant")
        })
        .collect();
    held.push(second.clone());
    (owner, writer, topic, held, second)
}

fn checks(c: &mut Criterion) {
    let (owner, writer, topic, held, second) = chains();
    let op = [7u8; 200];
    let sig = writer.sign(&op);
    let key = *writer.agent_id().as_bytes();
    let mut g = c.benchmark_group("capability");
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish-open-topic", |b| {
        b.iter(|| may_write("chat", &writer.agent_id(), &held, NOW_MS))
    });
    g.bench_function("publish-by-owner", |b| {
        b.iter(|| may_write(&topic, &owner.agent_id(), &[], NOW_MS))
    });
    g.bench_function("publish-2-link-chain-of-16", |b| {
        b.iter(|| may_write(&topic, &writer.agent_id(), &held, NOW_MS).expect("allowed"))
    });
    g.bench_function("subscribe-2-link-chain-of-16", |b| {
        b.iter(|| may_read(&topic, &writer.agent_id(), &held, NOW_MS).expect("allowed"))
    });
    g.bench_function("decode-2-link-chain", |b| {
        b.iter(|| Capability::decode(second.as_bytes()).expect("valid"))
    });
    // A private Yjs room's join: the room proof's signature (PROTOCOL.md 8.7.1), once per
    // connection, like the chains' at the upgrade.
    let proof = RoomProof::sign(&writer, &topic, LATER_MS).encode();
    g.bench_function("room-proof-verify", |b| {
        b.iter(|| {
            RoomProof::decode(&proof)
                .expect("decodes")
                .verify(&topic, NOW_MS)
                .copied()
                .expect("valid")
        })
    });
    g.bench_function("peer-verify-op-signature", |b| {
        b.iter(|| verify_signature(&key, &op, &sig))
    });
    g.finish();
}

criterion_group!(benches, checks);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let peer = "capability/peer-verify-op-signature";
    ratio::print(&[
        ("publish, open topic", "capability/publish-open-topic", peer),
        ("publish, owner", "capability/publish-by-owner", peer),
        (
            "publish, chain (16 held)",
            "capability/publish-2-link-chain-of-16",
            peer,
        ),
        (
            "subscribe, chain (16 held)",
            "capability/subscribe-2-link-chain-of-16",
            peer,
        ),
        (
            "decode at upgrade (2 links)",
            "capability/decode-2-link-chain",
            peer,
        ),
        (
            "room proof at a Yjs join",
            "capability/room-proof-verify",
            peer,
        ),
    ]);
}
