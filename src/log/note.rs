//! The checkpoint text form: a C2SP `tlog-checkpoint` in a C2SP `signed-note`, so standard
//! transparency-log tooling can read a relay's checkpoints (PROTOCOL.md section 5.4).
//!
//! ```text
//! ants-coord/<relay agent id>/<topic>
//! <tree size, decimal>
//! <root, base64>
//!
//! — ants-coord/<relay agent id> <base64(key id (4) ‖ Ed25519 signature (64))>
//! ```
//!
//! The signature is over the note text (the first three lines with their newlines), without an
//! ants-coord domain tag, as `signed-note` prescribes. It cannot collide with any ants-coord binary
//! signature: note text never contains NUL and every ants-coord signed message starts with a
//! NUL-terminated tag.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::op::validate_topic;

use super::merkle::{Hash, MAX_TREE_SIZE};

/// What a verified checkpoint note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteCheckpoint {
    /// The topic (from the origin line).
    pub topic: String,
    /// The tree size.
    pub tree_size: u64,
    /// The root.
    pub root: Hash,
}

/// The signed-note key name of a relay: `ants-coord/<agent id>`.
pub fn note_key_name(relay: &AgentId) -> String {
    format!("ants-coord/{relay}")
}

fn key_id(name: &str, relay: &AgentId) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0x0a, 0x01]);
    hasher.update(relay.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn note_text(relay: &AgentId, topic: &str, tree_size: u64, root: &Hash) -> String {
    format!(
        "{}/{topic}\n{tree_size}\n{}\n",
        note_key_name(relay),
        base64_encode(root)
    )
}

/// Writes the checkpoint `(topic, tree_size, root)` as a note signed by the relay `identity`.
///
/// Errors: `BAD_TOPIC`, `BAD_INPUT` (tree size over 2^63).
pub fn checkpoint_note(
    identity: &Identity,
    topic: &str,
    tree_size: u64,
    root: &Hash,
) -> Result<String> {
    validate_topic(topic)?;
    if tree_size > MAX_TREE_SIZE {
        return Err(Error::BadInput("tree size over 2^63".into()));
    }
    let relay = identity.agent_id();
    let text = note_text(&relay, topic, tree_size, root);
    let name = note_key_name(&relay);
    let mut signed = key_id(&name, &relay).to_vec();
    signed.extend_from_slice(&identity.sign(text.as_bytes()));
    Ok(format!(
        "{text}\n\u{2014} {name} {}\n",
        base64_encode(&signed)
    ))
}

fn malformed(reason: &str) -> Error {
    Error::malformed("checkpoint note", reason)
}

/// Reads a checkpoint note and verifies the relay's signature on it. Signature lines of other
/// keys (witness cosignatures) are ignored.
///
/// Errors: `MALFORMED` (not a checkpoint note of this relay, extension lines, a non-canonical
/// size or root), `BAD_TOPIC`, `BAD_SIGNATURE` (no valid signature by `relay`).
pub fn verify_checkpoint_note(note: &str, relay: &AgentId) -> Result<NoteCheckpoint> {
    let split = note
        .find("\n\n")
        .ok_or_else(|| malformed("no signature block"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed("control character in the note text"));
    }
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    let [origin, size, root] = lines[..] else {
        return Err(malformed("expected exactly origin, size and root lines"));
    };
    let name = note_key_name(relay);
    let topic = origin
        .strip_prefix(&name)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| malformed("origin is not this relay's"))?;
    validate_topic(topic)?;
    let tree_size: u64 = size
        .parse()
        .ok()
        .filter(|n: &u64| n.to_string() == size && *n <= MAX_TREE_SIZE)
        .ok_or_else(|| malformed("tree size is not a canonical decimal"))?;
    let root: Hash = base64_decode(root)
        .filter(|bytes| base64_encode(bytes) == root)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| malformed("root is not 32 bytes of base64"))?;
    if !signatures.ends_with('\n') {
        return Err(malformed("signature block must end in a newline"));
    }
    let id = key_id(&name, relay);
    for line in signatures.trim_end_matches('\n').split('\n') {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(malformed("signature line must start with an em dash"));
        };
        let Some((line_name, sig)) = rest.split_once(' ') else {
            return Err(malformed("signature line needs a name and a signature"));
        };
        let Some(sig) = base64_decode(sig) else {
            return Err(malformed("signature is not base64"));
        };
        if line_name == name && sig.len() == 68 && sig[..4] == id {
            relay.verify(text.as_bytes(), &sig[4..])?;
            return Ok(NoteCheckpoint {
                topic: topic.to_owned(),
                tree_size,
                root,
            });
        }
    }
    Err(Error::BadSignature)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; `None` for anything else. (Callers re-encode to insist on the
/// canonical spelling.)
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("Zm9v=").is_none());
        assert!(base64_decode("Zg==Zg==").is_none());
    }

    #[test]
    fn notes_round_trip_and_refuse_tampering() {
        let relay = Identity::from_seed(&[1; 32]).unwrap();
        let key = relay.agent_id();
        let root = [7u8; 32];
        let note = checkpoint_note(&relay, "tasks with spaces/ü", 42, &root).unwrap();
        let read = verify_checkpoint_note(&note, &key).unwrap();
        assert_eq!(read.tree_size, 42);
        assert_eq!(read.root, root);
        assert_eq!(read.topic, "tasks with spaces/ü");
        // A cosignature by someone else is ignored.
        let witnessed = format!("{note}\u{2014} witness AAAAAAAA\n");
        assert!(verify_checkpoint_note(&witnessed, &key).is_ok());
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            verify_checkpoint_note(&tampered, &key).unwrap_err().code(),
            "BAD_SIGNATURE"
        );
        let padded = note.replacen("\n42\n", "\n042\n", 1);
        assert_eq!(
            verify_checkpoint_note(&padded, &key).unwrap_err().code(),
            "MALFORMED"
        );
        let stranger = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        assert_eq!(
            verify_checkpoint_note(&note, &stranger).unwrap_err().code(),
            "MALFORMED"
        );
    }
}
