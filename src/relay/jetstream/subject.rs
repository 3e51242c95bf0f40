//! How a topic's name becomes one NATS subject token (and a KV key), and back.
//!
//! A topic is 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8 without control characters
//! ([`crate::op::validate_topic`]); it may contain `.`, `*`, `>`, spaces and any other character,
//! none of which a subject token may hold (`.` separates tokens, `*` and `>` are wildcards,
//! whitespace ends the subject in the protocol line). The mapping:
//!
//! - the bytes `A`–`Z`, `a`–`z`, `0`–`9` and `-` stand for themselves;
//! - every other byte `b` (including `_` itself and each byte of a multi-byte UTF-8 character)
//!   becomes `_` followed by two upper-case hex digits of `b`.
//!
//! `chat.room 1` → `chat_2Eroom_201`, `_` → `_5F`, `é` → `_C3_A9`.
//!
//! **Injective**: `_` appears in a token only as the start of an escape, so a token decodes in
//! one way ([`topic_of_token`] is the inverse and refuses every string that is not an output).
//! **Valid everywhere we use it**: the alphabet `[A-Za-z0-9_-]` is a valid subject token, stream
//! and consumer name character set, and a valid NATS KV key (`[-/_=.a-zA-Z0-9]+`).
//! **Bounded**: a token is at most three times the topic's length, [`MAX_TOKEN_LEN`] bytes.

use crate::error::{Error, Result};
use crate::op::{validate_topic, MAX_TOPIC_LEN};

/// The longest token [`token_of_topic`] returns: every byte of a longest topic escaped.
pub const MAX_TOKEN_LEN: usize = 3 * MAX_TOPIC_LEN;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

/// The subject token (and KV key) of `topic`. `BAD_TOPIC` for a topic the protocol refuses.
pub fn token_of_topic(topic: &str) -> Result<String> {
    validate_topic(topic)?;
    let mut token = String::with_capacity(topic.len() * 3);
    for &byte in topic.as_bytes() {
        if is_plain(byte) {
            token.push(char::from(byte));
        } else {
            token.push('_');
            token.push(char::from(HEX[usize::from(byte >> 4)]));
            token.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    Ok(token)
}

/// The topic a token stands for: the inverse of [`token_of_topic`]. `MALFORMED` for any string
/// that [`token_of_topic`] never returns (a bad escape, lower-case hex, a plain byte escaped,
/// bytes that are not UTF-8, or a topic the protocol refuses).
pub fn topic_of_token(token: &str) -> Result<String> {
    let malformed = |reason: String| Error::Malformed {
        what: "topic subject token",
        reason,
    };
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if is_plain(first) {
            bytes.push(first);
            rest = tail;
            continue;
        }
        if first != b'_' {
            return Err(malformed(format!(
                "byte 0x{first:02x} is not in [A-Za-z0-9_-]"
            )));
        }
        let [high, low, after @ ..] = tail else {
            return Err(malformed("escape cut short".into()));
        };
        let digit = |d: u8| HEX.iter().position(|&h| h == d);
        let (Some(high), Some(low)) = (digit(*high), digit(*low)) else {
            return Err(malformed("escape is not two upper-case hex digits".into()));
        };
        let byte =
            u8::try_from(high * 16 + low).map_err(|_| malformed("escape out of range".into()))?;
        if is_plain(byte) {
            return Err(malformed(format!("byte 0x{byte:02x} must not be escaped")));
        }
        bytes.push(byte);
        rest = after;
    }
    let topic = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
    validate_topic(&topic).map_err(|e| malformed(e.to_string()))?;
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_token(token: &str) -> bool {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    #[test]
    fn plain_topics_read_as_themselves_and_others_escape() {
        let cases = [
            ("tasks", "tasks"),
            ("Room-42", "Room-42"),
            ("chat.room 1", "chat_2Eroom_201"),
            ("a*b>c", "a_2Ab_3Ec"),
            ("_", "_5F"),
            ("_5F", "_5F5F"),
            ("é", "_C3_A9"),
            ("a/b=c", "a_2Fb_3Dc"),
            ("🐜", "_F0_9F_90_9C"),
        ];
        for (topic, token) in cases {
            assert_eq!(token_of_topic(topic).unwrap(), token, "{topic:?}");
            assert_eq!(topic_of_token(token).unwrap(), topic, "{token:?}");
        }
    }

    #[test]
    fn awkward_topics_round_trip_into_valid_tokens() {
        let longest_escaped = ".".repeat(MAX_TOPIC_LEN);
        let longest_unicode = "é".repeat(MAX_TOPIC_LEN / 2);
        let topics = [
            ".",
            "..",
            "a.b.c",
            "*",
            ">",
            "a.>",
            " leading and trailing ",
            "tab\u{a0}nbsp",
            "日本語のトピック",
            "$JS.API.STREAM.INFO",
            longest_escaped.as_str(),
            longest_unicode.as_str(),
        ];
        for topic in topics {
            let token = token_of_topic(topic).unwrap();
            assert!(valid_token(&token), "{topic:?} -> {token:?}");
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(topic_of_token(&token).unwrap(), topic);
        }
        assert_eq!(
            token_of_topic(&longest_escaped).unwrap().len(),
            MAX_TOKEN_LEN
        );
    }

    #[test]
    fn distinct_topics_get_distinct_tokens() {
        // Pairs a naive escaping would merge.
        let topics = ["a_2E", "a.", "a_", "a_5F", "_2E", ".", "A", "a", "-", "_2D"];
        let tokens: std::collections::HashSet<_> =
            topics.iter().map(|t| token_of_topic(t).unwrap()).collect();
        assert_eq!(tokens.len(), topics.len());
    }

    #[test]
    fn every_single_byte_and_char_round_trips() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let topic = format!("t{c}");
            match token_of_topic(&topic) {
                Ok(token) => {
                    assert!(valid_token(&token));
                    assert_eq!(topic_of_token(&token).unwrap(), topic);
                }
                Err(e) => assert_eq!(e.code(), "BAD_TOPIC", "{c:?}"),
            }
        }
    }

    #[test]
    fn topics_the_protocol_refuses_are_bad_topic() {
        for topic in ["", "line\nbreak", &"x".repeat(MAX_TOPIC_LEN + 1)] {
            assert_eq!(token_of_topic(topic).unwrap_err().code(), "BAD_TOPIC");
        }
    }

    #[test]
    fn strings_that_are_no_token_are_malformed() {
        for token in [
            "", "a.b", "a*", "a b", "_", "_2", "_2e", "_GG", "_41", "_2D", "_C3", "_0A",
        ] {
            assert_eq!(
                topic_of_token(token).unwrap_err().code(),
                "MALFORMED",
                "{token:?}"
            );
        }
    }
}
