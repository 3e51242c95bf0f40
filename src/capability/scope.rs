//! What a capability grants: a set of [`Rights`] over a [`Scope`] of topics.

use core::fmt;
use core::ops::BitOr;

use crate::error::{Error, Result};
use crate::op::validate_topic;

/// One right a capability can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Right {
    /// Subscribe to, replay, and ask proofs and checkpoints of the topic.
    Read,
    /// Publish ops to the topic.
    Write,
    /// Grant (a narrower part of) one's own capability to another agent.
    Delegate,
}

impl Right {
    /// Every right, in bit order.
    pub const ALL: [Right; 3] = [Right::Read, Right::Write, Right::Delegate];

    /// The right's name: `read`, `write` or `delegate`.
    pub fn name(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Write => "write",
            Right::Delegate => "delegate",
        }
    }

    /// The right named `name`; `BAD_INPUT` for any other text.
    pub fn from_name(name: &str) -> Result<Self> {
        Right::ALL
            .into_iter()
            .find(|right| right.name() == name)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "unknown right {name:?}; rights are read, write, delegate"
                ))
            })
    }

    /// The right's bit in the encoded rights byte (PROTOCOL.md section 10.1).
    pub const fn bit(self) -> u8 {
        match self {
            Right::Read => 0x01,
            Right::Write => 0x02,
            Right::Delegate => 0x04,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Right`]s, encoded as one byte: bit 0 `read`, bit 1 `write`, bit 2 `delegate`.
///
/// Invariant: no other bit is set (a decoder refuses one with `BAD_CAPABILITY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// `read` only.
    pub const READ: Rights = Rights(Right::Read.bit());
    /// `write` only.
    pub const WRITE: Rights = Rights(Right::Write.bit());
    /// `delegate` only.
    pub const DELEGATE: Rights = Rights(Right::Delegate.bit());
    /// Every right.
    pub const ALL: Rights = Rights(0x07);

    /// The set encoded as `byte`; `BAD_CAPABILITY` when a bit outside the three rights is set.
    pub fn from_bits(byte: u8) -> Result<Self> {
        if byte & !Rights::ALL.0 != 0 {
            return Err(Error::BadCapability(format!(
                "rights byte 0x{byte:02x} sets a bit that names no right"
            )));
        }
        Ok(Rights(byte))
    }

    /// The encoded byte.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether `right` is in the set.
    pub fn contains(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    /// Whether every right of `self` is in `other`.
    pub fn is_subset_of(self, other: Rights) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rights in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl From<Right> for Rights {
    fn from(right: Right) -> Self {
        Rights(right.bit())
    }
}

impl BitOr for Rights {
    type Output = Rights;
    fn bitor(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }
}

impl BitOr<Right> for Rights {
    type Output = Rights;
    fn bitor(self, other: Right) -> Rights {
        Rights(self.0 | other.bit())
    }
}

impl FromIterator<Right> for Rights {
    fn from_iter<I: IntoIterator<Item = Right>>(rights: I) -> Self {
        rights
            .into_iter()
            .fold(Rights::NONE, |set, right| set | right)
    }
}

/// Which topics a capability covers: one topic, or every topic whose name starts with a prefix.
///
/// The kind is an explicit byte of the encoding (`0` topic, `1` prefix), never a spelling inside
/// the name, so any topic name can be granted exactly. A prefix matches byte for byte: grant
/// `@<id>/docs/` (with the slash) to mean "everything under docs", since `@<id>/docs` also covers
/// `@<id>/docs-private`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Exactly this topic.
    Topic(String),
    /// Every topic whose name starts with these bytes (the prefix itself included).
    Prefix(String),
}

impl Scope {
    /// The encoded kind byte: `0` for a topic, `1` for a prefix.
    pub fn kind_byte(&self) -> u8 {
        match self {
            Scope::Topic(_) => 0,
            Scope::Prefix(_) => 1,
        }
    }

    /// The topic name or prefix.
    pub fn name(&self) -> &str {
        match self {
            Scope::Topic(name) | Scope::Prefix(name) => name,
        }
    }

    /// Whether `topic` is in this scope.
    pub fn covers(&self, topic: &str) -> bool {
        match self {
            Scope::Topic(name) => name == topic,
            Scope::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }

    /// Whether every topic of `self` is in `parent`: a topic covered by the parent, or a prefix
    /// that extends a parent prefix. (A prefix is never within a single topic.)
    pub fn is_within(&self, parent: &Scope) -> bool {
        match (self, parent) {
            (Scope::Topic(topic), _) => parent.covers(topic),
            (Scope::Prefix(prefix), Scope::Prefix(outer)) => prefix.starts_with(outer.as_str()),
            (Scope::Prefix(_), Scope::Topic(_)) => false,
        }
    }

    /// Checks the name against the topic rules (`BAD_TOPIC`): 1..=128 bytes, no control
    /// characters. A prefix follows the same rules.
    pub fn validate(&self) -> Result<()> {
        validate_topic(self.name())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Topic(name) => write!(f, "topic {name:?}"),
            Scope::Prefix(prefix) => write!(f, "topics starting with {prefix:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_a_bit_set() {
        let rw = Rights::READ | Right::Write;
        assert!(rw.contains(Right::Read) && rw.contains(Right::Write));
        assert!(!rw.contains(Right::Delegate));
        assert!(Rights::READ.is_subset_of(rw));
        assert!(!Rights::ALL.is_subset_of(rw));
        assert_eq!(rw.iter().collect::<Vec<_>>(), [Right::Read, Right::Write]);
        assert_eq!(
            Rights::from_bits(0x08).unwrap_err().code(),
            "BAD_CAPABILITY"
        );
        assert_eq!(Right::from_name("admin").unwrap_err().code(), "BAD_INPUT");
        for right in Right::ALL {
            assert_eq!(Right::from_name(right.name()).unwrap(), right);
        }
    }

    #[test]
    fn scopes_nest_by_prefix() {
        let docs = Scope::Prefix("@a/docs/".into());
        assert!(docs.covers("@a/docs/x"));
        assert!(docs.covers("@a/docs/"));
        assert!(!docs.covers("@a/docs"));
        assert!(Scope::Topic("@a/docs/x".into()).is_within(&docs));
        assert!(Scope::Prefix("@a/docs/x/".into()).is_within(&docs));
        assert!(!Scope::Prefix("@a/".into()).is_within(&docs));
        assert!(!docs.is_within(&Scope::Topic("@a/docs/".into())));
        assert!(Scope::Topic("t".into()).is_within(&Scope::Topic("t".into())));
        assert!(!Scope::Topic("u".into()).is_within(&Scope::Topic("t".into())));
    }
}
