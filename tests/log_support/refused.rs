//! The negative half of `log-statements.json`: receipts, checkpoints, checkpoint notes and
//! evidence that a reader MUST refuse, each with its code (PROTOCOL.md 5.3–5.6). Cases with
//! several defects pin the check order: the code is the first defect's in that order.

use ants_coord::log::{
    leaf_hash, Checkpoint, Evidence, HeadLeaf, ProvenLeaf, Receipt, SignedCheckpoint,
    SignedReceipt, SignedTreeHead,
};
use ants_coord::op::MAX_OP_LEN;
use ants_coord::{AgentId, Entry};
use serde_json::{json, Value};

use super::{author, Relay};

/// The pieces of the file's positive half the refused cases are made from.
pub struct Valid<'a> {
    /// The relay that signed everything (seed 0x01…), after its two entries.
    pub relay: &'a Relay,
    /// The receipt of entry 0 (version 1).
    pub receipt: &'a SignedReceipt,
    /// Receipt 0 of the version-2 batch of three.
    pub batch_receipt: &'a SignedReceipt,
    /// The checkpoint at size 2.
    pub checkpoint: &'a SignedTreeHead,
    /// Its text form.
    pub note: &'a str,
    /// One piece of evidence of each kind, kind 1 first.
    pub evidence: &'a [Evidence],
}

fn case(structure: &str, name: &str, bytes: &[u8], code: &str) -> Value {
    json!({ "structure": structure, "name": name, "bytes": hex::encode(bytes), "code": code })
}

fn note_case(name: &str, text: &str, code: &str) -> Value {
    json!({ "structure": "checkpoint_note", "name": name, "text": text, "code": code })
}

fn with(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    f(&mut b);
    b
}

fn flip_last(b: &mut [u8]) {
    let n = b.len();
    b[n - 1] ^= 1;
}

/// A `u64` field at `at`.
fn set_u64(b: &mut [u8], at: usize, value: u64) {
    b[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

const OVER_2_63: u64 = (1 << 63) + 1;

// Offsets of a version-1 statement of topic "tasks/ü" (8 bytes): version, topic length, topic.
const TOPIC_AT: usize = 2;
const AFTER_TOPIC: usize = TOPIC_AT + 8;

fn receipts(v: &Valid<'_>) -> Vec<Value> {
    let r = v.receipt.as_bytes();
    let (seq_at, size_at) = (AFTER_TOPIC, AFTER_TOPIC + 8 + 32 + 8);
    let fields = r.len() - 64;
    let bad_utf8 = |b: &mut Vec<u8>| b[TOPIC_AT + 6] = 0xff;
    let other = SignedReceipt::sign(&author(0xee), v.receipt.receipt().clone()).unwrap();
    let b2 = v.batch_receipt.as_bytes();
    // Version 2: the batch place follows the fields (index, size, count, path).
    let place = |b: &mut Vec<u8>, index: u16, size: u16| {
        b[fields..fields + 2].copy_from_slice(&index.to_be_bytes());
        b[fields + 2..fields + 4].copy_from_slice(&size.to_be_bytes());
    };
    let count_at = fields + 4;
    let s = "receipt";
    vec![
        case(s, "truncated", &r[..r.len() - 1], "MALFORMED"),
        case(
            s,
            "no signature (every receipt is signed)",
            &r[..fields],
            "MALFORMED",
        ),
        case(
            s,
            "trailing byte",
            &with(r, |b| b.push(0)),
            "TRAILING_BYTES",
        ),
        case(
            s,
            "version 3",
            &with(r, |b| b[0] = 3),
            "UNSUPPORTED_VERSION",
        ),
        case(s, "topic not UTF-8", &with(r, bad_utf8), "BAD_TOPIC"),
        case(
            s,
            "control character in topic",
            &with(r, |b| b[TOPIC_AT] = b'\n'),
            "BAD_TOPIC",
        ),
        case(
            s,
            "tree size over 2^63",
            &with(r, |b| set_u64(b, size_at, OVER_2_63)),
            "BAD_INPUT",
        ),
        case(
            s,
            "seq not below tree size",
            &with(r, |b| set_u64(b, seq_at, 1)),
            "MALFORMED",
        ),
        case(
            s,
            "flipped signature bit",
            &with(r, |b| flip_last(b)),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "flipped root bit",
            &with(r, |b| b[fields - 1] ^= 1),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "signed by another key",
            other.as_bytes(),
            "BAD_SIGNATURE",
        ),
        // Several defects: fields, trailing bytes, field rules in field order, signature.
        case(s, "version 3 and truncated", &[3], "UNSUPPORTED_VERSION"),
        case(
            s,
            "topic not UTF-8 and no signature",
            &with(&r[..fields], bad_utf8),
            "MALFORMED",
        ),
        case(
            s,
            "topic not UTF-8 and trailing byte",
            &with(r, |b| {
                bad_utf8(b);
                b.push(0)
            }),
            "TRAILING_BYTES",
        ),
        case(
            s,
            "control character in topic and tree size over 2^63",
            &with(r, |b| {
                b[TOPIC_AT] = b'\n';
                set_u64(b, size_at, OVER_2_63)
            }),
            "BAD_TOPIC",
        ),
        case(
            s,
            "tree size over 2^63 and seq not below it",
            &with(r, |b| {
                set_u64(b, size_at, OVER_2_63);
                set_u64(b, seq_at, u64::MAX)
            }),
            "BAD_INPUT",
        ),
        case(
            s,
            "seq not below tree size and flipped signature bit",
            &with(r, |b| {
                set_u64(b, seq_at, 1);
                flip_last(b)
            }),
            "MALFORMED",
        ),
        // Version 2 (a batch of three: receipt 0's path has two hashes).
        case(
            s,
            "v2: batch index not below batch size",
            &with(b2, |b| place(b, 3, 3)),
            "MALFORMED",
        ),
        case(
            s,
            "v2: batch size 0",
            &with(b2, |b| place(b, 0, 0)),
            "MALFORMED",
        ),
        case(
            s,
            "v2: batch size over 4096",
            &with(b2, |b| place(b, 0, 4097)),
            "MALFORMED",
        ),
        case(
            s,
            "v2: path count over 12",
            &with(b2, |b| b[count_at] = 13),
            "MALFORMED",
        ),
        case(
            s,
            "v2: path one hash short",
            &with(b2, |b| {
                b[count_at] = 1;
                b.drain(count_at + 1..count_at + 33);
            }),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "v2: flipped path bit",
            &with(b2, |b| b[count_at + 1] ^= 1),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "v2: another batch size",
            &with(b2, |b| place(b, 0, 4)),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "v2: batch index not below size and topic not UTF-8",
            &with(b2, |b| {
                place(b, 3, 3);
                bad_utf8(b)
            }),
            "MALFORMED",
        ),
    ]
}

fn checkpoints(v: &Valid<'_>) -> Vec<Value> {
    let c = v.checkpoint.as_bytes();
    let size_at = AFTER_TOPIC;
    let fields = c.len() - 64;
    let bad_utf8 = |b: &mut Vec<u8>| b[TOPIC_AT + 6] = 0xff;
    let s = "checkpoint";
    vec![
        case(s, "truncated", &c[..c.len() - 1], "MALFORMED"),
        case(s, "no signature", &c[..fields], "MALFORMED"),
        case(
            s,
            "trailing byte",
            &with(c, |b| b.push(0)),
            "TRAILING_BYTES",
        ),
        case(
            s,
            "version 2 (checkpoints have only version 1)",
            &with(c, |b| b[0] = 2),
            "UNSUPPORTED_VERSION",
        ),
        case(s, "topic not UTF-8", &with(c, bad_utf8), "BAD_TOPIC"),
        case(
            s,
            "empty topic",
            &with(c, |b| {
                b[1] = 0;
                b.drain(TOPIC_AT..AFTER_TOPIC);
            }),
            "BAD_TOPIC",
        ),
        case(
            s,
            "tree size over 2^63",
            &with(c, |b| set_u64(b, size_at, OVER_2_63)),
            "BAD_INPUT",
        ),
        case(
            s,
            "flipped signature bit",
            &with(c, |b| flip_last(b)),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "another time",
            &with(c, |b| b[fields - 1] ^= 1),
            "BAD_SIGNATURE",
        ),
        case(
            s,
            "topic not UTF-8 and trailing byte",
            &with(c, |b| {
                bad_utf8(b);
                b.push(0)
            }),
            "TRAILING_BYTES",
        ),
        case(
            s,
            "topic not UTF-8 and tree size over 2^63",
            &with(c, |b| {
                bad_utf8(b);
                set_u64(b, size_at, OVER_2_63)
            }),
            "BAD_TOPIC",
        ),
        case(
            s,
            "tree size over 2^63 and flipped signature bit",
            &with(c, |b| {
                set_u64(b, size_at, OVER_2_63);
                flip_last(b)
            }),
            "BAD_INPUT",
        ),
    ]
}

fn notes(v: &Valid<'_>) -> Vec<Value> {
    let n = v.note;
    let relay = v.relay.identity.agent_id().to_string();
    let stranger = author(0xee).agent_id().to_string();
    let (text, signatures) = n.split_at(n.find("\n\n").unwrap() + 2);
    let sig_line = signatures.trim_end_matches('\n');
    let (line_name, sig) = sig_line.rsplit_once(' ').unwrap();
    // Another base64 character in the middle of the signature: still 68 bytes, another value.
    let mut flipped_sig: Vec<char> = sig.chars().collect();
    flipped_sig[20] = if flipped_sig[20] == 'A' { 'B' } else { 'A' };
    let flipped_sig: String = flipped_sig.into_iter().collect();
    let witness = format!("\u{2014} ants-coord/{stranger} {sig}\n");
    let leading_zero = n.replacen("\n2\n", "\n02\n", 1);
    let empty_topic = n.replacen("/tasks/ü\n", "/\n", 1);
    vec![
        note_case(
            "no blank line after the text",
            &n.replacen("\n\n", "\n", 1),
            "MALFORMED",
        ),
        note_case(
            "control character in the text",
            &n.replacen("tasks/", "tasks\t/", 1),
            "MALFORMED",
        ),
        note_case(
            "a fourth text line",
            &n.replacen("\n\n", "\nextension\n\n", 1),
            "MALFORMED",
        ),
        note_case(
            "another relay's origin",
            &n.replacen(&relay, &stranger, 1),
            "MALFORMED",
        ),
        note_case("empty topic", &empty_topic, "BAD_TOPIC"),
        note_case("size with a leading zero", &leading_zero, "MALFORMED"),
        note_case(
            "size over 2^63",
            &n.replacen("\n2\n", &format!("\n{OVER_2_63}\n"), 1),
            "MALFORMED",
        ),
        note_case(
            "root without its padding",
            &n.replacen("=\n\n", "\n\n", 1),
            "MALFORMED",
        ),
        note_case(
            "signature block without its final newline",
            n.trim_end_matches('\n'),
            "MALFORMED",
        ),
        note_case(
            "a malformed line before the relay's",
            &format!("{text}garbage\n{signatures}"),
            "MALFORMED",
        ),
        note_case(
            "another tree size",
            &n.replacen("\n2\n", "\n3\n", 1),
            "BAD_SIGNATURE",
        ),
        note_case(
            "another signature",
            &format!("{text}{line_name} {flipped_sig}\n"),
            "BAD_SIGNATURE",
        ),
        note_case(
            "only another key's line",
            &format!("{text}{witness}"),
            "BAD_SIGNATURE",
        ),
        // Several defects, in the order of PROTOCOL.md 5.4.
        note_case(
            "another relay's origin and empty topic",
            &empty_topic.replacen(&relay, &stranger, 1),
            "MALFORMED",
        ),
        note_case(
            "empty topic and size with a leading zero",
            &leading_zero.replacen("/tasks/ü\n", "/\n", 1),
            "BAD_TOPIC",
        ),
        note_case(
            "size with a leading zero and another signature",
            &format!(
                "{}{line_name} {flipped_sig}\n",
                &leading_zero[..text.len() + 1]
            ),
            "MALFORMED",
        ),
    ]
}

/// A proven leaf of `relay` at `seq` in its current tree.
fn proven(relay: &Relay, seq: u64) -> ProvenLeaf {
    ProvenLeaf {
        leaf: relay.entries[seq as usize].clone(),
        proof: relay.log.inclusion_proof(seq, relay.log.size()).unwrap(),
    }
}

fn evidence(v: &Valid<'_>) -> Vec<Value> {
    let relay = v.relay;
    let head = v.checkpoint.clone();
    let encoded: Vec<Vec<u8>> = v.evidence.iter().map(Evidence::encode).collect();
    let [conflicting, _, _, counter, _, invalid] = v.evidence else {
        panic!("one piece of evidence of each kind")
    };
    let Evidence::ConflictingHeads { a, b } = conflicting.clone() else {
        panic!("kind 1 first")
    };
    let swapped = Evidence::ConflictingHeads { a: b, b: a }.encode();
    let stranger = author(0xee);
    let signed_by = |identity: &ants_coord::Identity, topic: &str, root| -> SignedTreeHead {
        SignedCheckpoint::sign(
            identity,
            Checkpoint {
                topic: topic.into(),
                tree_size: 2,
                root,
                time_ms: relay.time,
            },
        )
        .unwrap()
        .into()
    };
    let foreign = Evidence::conflicting_heads(
        head.clone(),
        signed_by(&stranger, "tasks/ü", leaf_hash(b"fork")),
    );
    let two_topics = Evidence::conflicting_heads(
        head.clone(),
        signed_by(&relay.identity, "tasks/other", leaf_hash(b"fork")),
    );
    // Split view with the second head's topic altered after signing: its signature fails
    // first, whatever the topics say.
    let split_bytes = &encoded[1];
    let second_topic = split_bytes
        .windows(6)
        .enumerate()
        .filter(|(_, w)| *w == b"tasks/")
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let altered_topic = with(split_bytes, |b| b[second_topic] = b'u');
    let under_head = |seq: u64| HeadLeaf {
        head: head.clone(),
        leaf_hash: relay.log.leaf_hash_at(seq).unwrap(),
        proof: relay.log.inclusion_proof(seq, 2).unwrap(),
    };
    let other_index = Evidence::SplitView {
        a: under_head(1),
        b: under_head(0),
    };
    let entry1 = Entry::decode(&relay.entries[1]).unwrap();
    let receipt = |topic: &str, op_id, relay_time_ms| {
        SignedReceipt::sign(
            &relay.identity,
            Receipt {
                topic: topic.into(),
                seq: 1,
                op_id,
                relay_time_ms,
                tree_size: 2,
                root: relay.log.root(),
            },
        )
        .unwrap()
    };
    let mut tampered = proven(relay, 1);
    tampered.proof.hashes[0][0] ^= 1;
    let other_topic_tampered = Evidence::ReceiptContradicted {
        receipt: receipt(
            "tasks/other",
            ants_coord::OpId([7; 32]),
            entry1.relay_time_ms(),
        ),
        head: head.clone(),
        entry: tampered.clone(),
    };
    let matching = Evidence::ReceiptContradicted {
        receipt: receipt("tasks/ü", entry1.op().id(), entry1.relay_time_ms()),
        head: head.clone(),
        entry: proven(relay, 1),
    };
    let in_order = Evidence::CounterOrder {
        head: head.clone(),
        earlier: proven(relay, 0),
        later: proven(relay, 1),
    };
    let reversed = Evidence::CounterOrder {
        head: head.clone(),
        earlier: proven(relay, 1),
        later: proven(relay, 0),
    };
    let Evidence::CounterOrder {
        head: counter_head,
        earlier,
        later,
    } = counter.clone()
    else {
        panic!("kind 4 fourth")
    };
    let mut bad_proof = earlier.clone();
    bad_proof.proof.hashes[0][0] ^= 1;
    let tampered_counter = Evidence::CounterOrder {
        head: counter_head,
        earlier: bad_proof,
        later,
    };
    let valid_entry = Evidence::InvalidEntry {
        head: head.clone(),
        entry: proven(relay, 0),
    };
    let Evidence::InvalidEntry {
        head: invalid_head,
        entry: invalid_entry,
    } = invalid.clone()
    else {
        panic!("kind 6 last")
    };
    let mut resized = invalid_entry;
    resized.proof.tree_size += 1;
    let other_size = Evidence::InvalidEntry {
        head: invalid_head,
        entry: resized,
    };
    let foreign_head_bad_proof = Evidence::InvalidEntry {
        head: signed_by(&stranger, "tasks/ü", *head.root()),
        entry: tampered,
    };
    // Kind 6 by hand: the head, then a leaf length over the largest entry (nothing after it), or
    // a proof of 65 hashes.
    let mut kind6 = vec![1, 6];
    let head_bytes = head.as_bytes();
    kind6.push(2);
    kind6.extend_from_slice(&(head_bytes.len() as u16).to_be_bytes());
    kind6.extend_from_slice(head_bytes);
    let long_leaf = with(&kind6, |b| {
        // The largest entry: a 21-byte entry header around the largest op (PROTOCOL.md 5.6).
        b.extend_from_slice(&((21 + MAX_OP_LEN + 1) as u32).to_be_bytes())
    });
    let long_proof = with(&kind6, |b| {
        let leaf = &relay.entries[0];
        b.extend_from_slice(&(leaf.len() as u32).to_be_bytes());
        b.extend_from_slice(leaf);
        b.extend_from_slice(&0u64.to_be_bytes());
        b.extend_from_slice(&2u64.to_be_bytes());
        b.push(65);
        b.extend_from_slice(&[0u8; 65 * 32]);
    });
    let s = "evidence";
    vec![
        case(s, "version 2", &with(&encoded[0], |b| b[0] = 2), "UNSUPPORTED_VERSION"),
        case(s, "unknown kind 7", &with(&encoded[0], |b| b[1] = 7), "MALFORMED"),
        case(s, "unknown head kind 3", &with(&encoded[0], |b| b[2] = 3), "MALFORMED"),
        case(s, "truncated", &encoded[0][..encoded[0].len() - 1], "MALFORMED"),
        case(s, "trailing byte", &with(&encoded[0], |b| b.push(0)), "TRAILING_BYTES"),
        case(s, "entry length over the largest entry", &long_leaf, "LIMIT_EXCEEDED"),
        case(s, "proof of 65 hashes", &long_proof, "LIMIT_EXCEEDED"),
        case(s, "conflicting heads out of byte order", &swapped, "NON_CANONICAL"),
        case(s, "conflicting heads: one signed by another key", &foreign.encode(), "BAD_SIGNATURE"),
        case(s, "conflicting heads: the same head twice", &Evidence::ConflictingHeads { a: head.clone(), b: head.clone() }.encode(), "NOT_EVIDENCE"),
        case(s, "conflicting heads: two topics", &two_topics.encode(), "NOT_EVIDENCE"),
        case(s, "split view: proofs for different indices", &other_index.encode(), "NOT_EVIDENCE"),
        case(s, "receipt contradicted: the entry matches the receipt", &matching.encode(), "NOT_EVIDENCE"),
        case(s, "counter order: two authors' counters", &in_order.encode(), "NOT_EVIDENCE"),
        case(s, "counter order: earlier leaf at the higher index", &reversed.encode(), "NOT_EVIDENCE"),
        case(s, "counter order: flipped proof bit", &tampered_counter.encode(), "BAD_PROOF"),
        case(s, "invalid leaf: the leaf is a valid entry", &valid_entry.encode(), "NOT_EVIDENCE"),
        case(s, "invalid leaf: proof for another tree size", &other_size.encode(), "NOT_EVIDENCE"),
        // Several defects: decoding, trailing bytes, canonical order; then signatures, proofs,
        // the rule.
        case(s, "heads out of byte order and trailing byte", &with(&swapped, |b| b.push(0)), "TRAILING_BYTES"),
        case(s, "split view: second head's topic altered (signature before topics)", &altered_topic, "BAD_SIGNATURE"),
        case(s, "receipt contradicted: receipt of another topic and a flipped proof bit (proof before topics)", &other_topic_tampered.encode(), "BAD_PROOF"),
        case(s, "invalid leaf: head signed by another key and a flipped proof bit", &foreign_head_bad_proof.encode(), "BAD_SIGNATURE"),
    ]
}

/// Every refused case of the file, in structure order.
pub fn refused(v: &Valid<'_>) -> Value {
    let mut all = receipts(v);
    all.extend(checkpoints(v));
    all.extend(notes(v));
    all.extend(evidence(v));
    Value::Array(all)
}

/// The code a reader gives one refused case, with the relay key `relay`.
pub fn code_of(case: &Value, relay: &AgentId) -> &'static str {
    let bytes = || hex::decode(case["bytes"].as_str().unwrap()).unwrap();
    let result = match case["structure"].as_str().unwrap() {
        "receipt" => SignedReceipt::decode(&bytes(), relay).map(|_| ()),
        "checkpoint" => SignedCheckpoint::decode(&bytes(), relay).map(|_| ()),
        "checkpoint_note" => {
            ants_coord::log::verify_checkpoint_note(case["text"].as_str().unwrap(), relay)
                .map(|_| ())
        }
        "evidence" => Evidence::decode(&bytes()).and_then(|e| e.verify(relay).map(|_| ())),
        other => panic!("unknown structure {other}"),
    };
    match result {
        Ok(()) => "",
        Err(error) => error.code(),
    }
}
