//! Native signing and verification throughput, with raw ed25519-dalek as the peer.
//!
//! `cargo bench --bench ed25519`. Prints, after criterion's own report, each ours/peer ratio
//! (above 1 means ants-coord is faster). The peer for single verification is ed25519-dalek's
//! `verify_strict` with no agent-id validation; for batches it is verifying one by one and
//! ed25519-dalek's own `verify_batch`.

use ants_coord::identity::{verify_batch_cached, KeyCache};
use ants_coord::{verify_batch, verify_signature, Identity, OpDraft, SignedOp};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

#[path = "support/ratio.rs"]
mod ratio;

fn signing(c: &mut Criterion) {
    let identity = Identity::from_seed(&[1; 32]).expect("seed");
    let dalek = SigningKey::from_bytes(&[1; 32]);
    let msg = [7u8; 128];
    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ants-coord", |b| b.iter(|| identity.sign(&msg)));
    g.bench_function("ed25519-dalek", |b| b.iter(|| dalek.sign(&msg)));
    g.finish();
}

fn verifying(c: &mut Criterion) {
    let identity = Identity::from_seed(&[1; 32]).expect("seed");
    let msg = [7u8; 128];
    let sig = identity.sign(&msg);
    let key = *identity.agent_id().as_bytes();
    let dalek_key = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let dalek_sig = Signature::from_bytes(&sig);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ants-coord", |b| {
        b.iter(|| verify_signature(&key, &msg, &sig))
    });
    g.bench_function("ed25519-dalek", |b| {
        b.iter(|| dalek_key.verify_strict(&msg, &dalek_sig))
    });
    g.bench_function("ed25519-dalek-lax", |b| {
        b.iter(|| dalek_key.verify(&msg, &dalek_sig))
    });
    g.finish();
}

fn batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    // (signatures, distinct signers): every signer distinct, and a topic's usual shape of a few
    // agents signing many ops.
    for (n, signers) in [(64usize, 64usize), (256, 256), (256, 16)] {
        let ids: Vec<Identity> = (0..n)
            .map(|i| Identity::from_seed(&[(i % signers) as u8 + 1; 32]).expect("seed"))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..n)
            .map(|i| (i as u32).to_be_bytes().repeat(32))
            .collect();
        let sigs: Vec<[u8; 64]> = ids.iter().zip(&msgs).map(|(id, m)| id.sign(m)).collect();
        let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.agent_id().as_bytes()).collect();
        let k: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let m: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let s: Vec<&[u8]> = sigs.iter().map(|s| &s[..]).collect();
        let dalek_keys: Vec<VerifyingKey> = keys
            .iter()
            .map(|k| VerifyingKey::from_bytes(k).expect("key"))
            .collect();
        let dalek_sigs: Vec<Signature> = sigs.iter().map(Signature::from_bytes).collect();
        let id = format!("{n}x{signers}");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ants-coord", &id), &n, |b, _| {
            b.iter(|| verify_batch(&k, &m, &s).expect("valid batch"))
        });
        // Keys decompressed once and kept, as the relay's verifier and the client Session do;
        // dalek's batch below is given decompressed keys too.
        let mut cache = KeyCache::default();
        g.bench_with_input(BenchmarkId::new("ants-coord-cached", &id), &n, |b, _| {
            b.iter(|| verify_batch_cached(&mut cache, &k, &m, &s).expect("valid batch"))
        });
        g.bench_with_input(BenchmarkId::new("ed25519-dalek", &id), &n, |b, _| {
            b.iter(|| ed25519_dalek::verify_batch(&m, &dalek_sigs, &dalek_keys).expect("valid"))
        });
        g.bench_with_input(BenchmarkId::new("one-by-one", &id), &n, |b, _| {
            b.iter(|| {
                for ((k, m), s) in k.iter().zip(&m).zip(&s) {
                    verify_signature(k, m, s).expect("valid");
                }
            })
        });
    }
    g.finish();
}

fn ops(c: &mut Criterion) {
    let identity = Identity::from_seed(&[1; 32]).expect("seed");
    let draft = OpDraft {
        topic: "tasks".into(),
        kind: "claim".into(),
        body: vec![1; 64],
        ..OpDraft::default()
    };
    let op = SignedOp::sign(&identity, draft.clone()).expect("op");
    let mut g = c.benchmark_group("op");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign", |b| {
        b.iter(|| SignedOp::sign(&identity, draft.clone()))
    });
    g.bench_function("decode+verify", |b| {
        b.iter(|| SignedOp::decode(op.as_bytes()))
    });
    g.bench_function("decode-unverified", |b| {
        b.iter(|| SignedOp::decode_unverified(op.as_bytes()))
    });
    g.finish();
}

criterion_group!(benches, signing, verifying, batches, ops);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio::print(&[
        ("sign", "sign/ants-coord", "sign/ed25519-dalek"),
        (
            "verify (strict)",
            "verify/ants-coord",
            "verify/ed25519-dalek",
        ),
        (
            "batch 64 vs one-by-one",
            "batch/ants-coord/64x64",
            "batch/one-by-one/64x64",
        ),
        (
            "batch 256 vs one-by-one",
            "batch/ants-coord/256x256",
            "batch/one-by-one/256x256",
        ),
        (
            "batch 256 vs dalek batch",
            "batch/ants-coord-cached/256x256",
            "batch/ed25519-dalek/256x256",
        ),
        (
            "batch 256 by 16 vs dalek",
            "batch/ants-coord-cached/256x16",
            "batch/ed25519-dalek/256x16",
        ),
    ]);
}
