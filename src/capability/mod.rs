//! Capabilities: signed, delegable, expiring statements of who may read or write which topics.
//!
//! A [`Capability`] is a chain of 1..=[`MAX_CHAIN_LINKS`] signed [`Link`]s. The root link is
//! signed by the **issuer**, who grants an audience agent a set of [`Rights`] (`read`, `write`,
//! `delegate`) over a [`Scope`] (one topic or a topic prefix) for a time window. Each further link
//! is signed by the previous link's audience, who must hold `delegate`, and may only narrow: its
//! rights are a subset, its scope lies within, its window inside the parent's. Each signature
//! covers [`CAPABILITY_DOMAIN`], the SHA-256 of the parent link and the link's own bytes, so a
//! link belongs to one chain only.
//!
//! Decoding verifies every signature and every rule, so a `Capability` value is always a valid
//! chain; whether it grants something *now* to *someone* for *some topic* is
//! [`Capability::authorizes`]. Who must be at the root for a topic to count is the owned-topic
//! rule of [`owned`]: the topic `@<agent id>/…` belongs to that agent.
//!
//! Layout (PROTOCOL.md section 10.1), integers big-endian:
//!
//! | field | size | rule |
//! |---|---|---|
//! | version | 1 | `0x01` |
//! | links | 1 | 1..=4 |
//! | per link: issuer, audience | 32 + 32 | valid agent public keys |
//! | scope kind | 1 | `0` topic, `1` prefix |
//! | scope length, scope | 1 + S | 1..=128 bytes of UTF-8, no control characters |
//! | rights | 1 | bit 0 read, bit 1 write, bit 2 delegate; not 0, no other bit |
//! | not before, expires | 8 + 8 | ms since the Unix epoch; `not_before < expires` |
//! | signature | 64 | Ed25519 by issuer over `CAPABILITY_DOMAIN ‖ H(parent link) ‖ link` |
//!
//! Nothing here holds a secret: signing borrows an [`Identity`], whose key is zeroized on drop.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};

pub mod authority;
mod link;
pub mod owned;
pub mod room_proof;
mod scope;
pub mod topic_policy;

pub use authority::{Authority, Presentation, Revocation, RevokedLink, RevokedLinks};
pub use link::{Grant, Link, CAPABILITY_DOMAIN, MAX_LINK_LEN};
pub use owned::{may_read, may_use, may_use_rooted_at, may_write, revoked_since, topic_owner};
pub use room_proof::RoomProof;
pub use scope::{Right, Rights, Scope};
pub use topic_policy::{ReadRule, TopicPolicy};

/// The version of capabilities this build writes and reads.
pub const CAPABILITY_VERSION: u8 = 1;
/// Most links in one chain: the root and three delegations.
pub const MAX_CHAIN_LINKS: usize = 4;
/// Largest encoded capability, in bytes: every link at its limit.
pub const MAX_CAPABILITY_LEN: usize = 2 + MAX_CHAIN_LINKS * MAX_LINK_LEN;

/// [`Capability::authorization`]'s answer: [`Capability::authorizes`] without the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// `Ok(())`.
    Granted,
    /// `CAPABILITY_EXPIRED`: everything but the time holds.
    Expired,
    /// `NOT_AUTHORIZED`.
    Refused,
}

/// A verified capability chain.
///
/// Invariant: 1..=[`MAX_CHAIN_LINKS`] links; each link keeps its own rules and narrows its parent
/// (PROTOCOL.md 10.3); every signature verifies; `bytes` is the one canonical encoding. Only
/// [`Capability::grant`], [`Capability::grant_with`], [`Capability::delegate`] and
/// [`Capability::decode`] build one, and each checks all of this.
#[derive(Clone, PartialEq, Eq)]
pub struct Capability {
    links: Vec<Link>,
    bytes: Vec<u8>,
    /// [`Link::hash`] of each link, in link order: what revocations name (a cache of `links`).
    link_hashes: Vec<[u8; 32]>,
}

impl Capability {
    /// `issuer` grants `audience` the `rights` over `scope` until `expires_ms` (exclusive), with
    /// no start time.
    ///
    /// Errors: `BAD_TOPIC` (a scope name breaking the topic rules), `BAD_CAPABILITY` (no rights,
    /// `expires_ms` of 0).
    pub fn grant(
        issuer: &Identity,
        audience: AgentId,
        scope: Scope,
        rights: Rights,
        expires_ms: u64,
    ) -> Result<Self> {
        Self::grant_with(
            issuer,
            Grant {
                audience,
                scope,
                rights,
                not_before_ms: 0,
                expires_ms,
            },
        )
    }

    /// `issuer` grants `grant`: a root link with every field chosen.
    ///
    /// Errors: as [`Capability::grant`], and `BAD_CAPABILITY` when `expires_ms <= not_before_ms`.
    pub fn grant_with(issuer: &Identity, grant: Grant) -> Result<Self> {
        link::check_own_rules(&grant)?;
        Ok(Self::from_links(vec![Link::sign(issuer, grant, None)]))
    }

    /// `holder`, the audience of this capability, passes on (part of) it: a new chain with one
    /// more link.
    ///
    /// Errors: `LIMIT_EXCEEDED` when the chain already has [`MAX_CHAIN_LINKS`] links;
    /// `BAD_TOPIC`; `BAD_CAPABILITY` when `holder` is not the audience, this capability does not
    /// grant `delegate`, or `grant` widens it (rights, scope or time window).
    pub fn delegate(&self, holder: &Identity, grant: Grant) -> Result<Self> {
        check_depth(self.links.len() + 1)?;
        link::check_own_rules(&grant)?;
        let parent = self.leaf();
        let next = Link::sign(holder, grant, Some(parent));
        link::check_narrows(&next, parent)?;
        let mut links = self.links.clone();
        links.push(next);
        Ok(Self::from_links(links))
    }

    /// Decodes and verifies canonical capability bytes.
    ///
    /// Check order (PROTOCOL.md 10.2), the first defect's code is reported: the size
    /// (`LIMIT_EXCEEDED`); the fields as read (`MALFORMED` when cut short, `UNSUPPORTED_VERSION`,
    /// `MALFORMED` for 0 links, `LIMIT_EXCEEDED` for more than 4, `BAD_PUBLIC_KEY`); trailing
    /// bytes (`TRAILING_BYTES`); each link's own rules then its narrowing of its parent
    /// (`BAD_TOPIC`, `BAD_CAPABILITY`), link by link; the signatures in link order
    /// (`BAD_SIGNATURE`).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CAPABILITY_LEN {
            return Err(Error::LimitExceeded {
                what: "capability size",
                limit: MAX_CAPABILITY_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new("capability", bytes);
        let version = r.u8("version")?;
        if version != CAPABILITY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "capability",
                version,
            });
        }
        let count = r.u8("link count")? as usize;
        if count == 0 {
            return Err(Error::malformed(
                "capability",
                "a chain has at least one link",
            ));
        }
        check_depth(count)?;
        let mut raw = Vec::with_capacity(count);
        for _ in 0..count {
            raw.push(link::RawLink::read(&mut r)?);
        }
        r.finish()?;
        let mut links: Vec<Link> = Vec::with_capacity(count);
        for raw in raw {
            let next = raw.into_link()?;
            if let Some(parent) = links.last() {
                link::check_narrows(&next, parent)?;
            }
            links.push(next);
        }
        for (index, link) in links.iter().enumerate() {
            let parent = index.checked_sub(1).map(|i| &links[i]);
            link.verify(parent)?;
        }
        let link_hashes = links.iter().map(Link::hash).collect();
        Ok(Capability {
            links,
            bytes: bytes.to_vec(),
            link_hashes,
        })
    }

    fn from_links(links: Vec<Link>) -> Self {
        let mut bytes = Vec::with_capacity(2 + links.len() * MAX_LINK_LEN);
        bytes.put_u8(CAPABILITY_VERSION);
        bytes.put_u8(links.len() as u8);
        for link in &links {
            link.encode(&mut bytes);
        }
        let link_hashes = links.iter().map(Link::hash).collect();
        Capability {
            links,
            bytes,
            link_hashes,
        }
    }

    /// Whether this capability lets `agent` use `right` on `topic` at `now_ms`.
    ///
    /// Checks, in this order: `agent` is the audience of the last link, the topic is in its
    /// scope, the right is in its rights, `now_ms` is not before its start (`NOT_AUTHORIZED`
    /// for each); `now_ms` is before its expiry (`CAPABILITY_EXPIRED`). It does not say who
    /// must have issued it: see [`owned`] for the owned-topic rule.
    pub fn authorizes(
        &self,
        agent: &AgentId,
        topic: &str,
        right: Right,
        now_ms: u64,
    ) -> Result<()> {
        let grant = &self.leaf().grant;
        let refuse = |reason: String| Err(Error::NotAuthorized(reason));
        if &grant.audience != agent {
            return refuse(format!("the capability is for {}", grant.audience.short()));
        }
        if !grant.scope.covers(topic) {
            return refuse(format!("{topic:?} is outside {}", grant.scope));
        }
        if !grant.rights.contains(right) {
            return refuse(format!("the capability does not grant {right}"));
        }
        if now_ms < grant.not_before_ms {
            return refuse(format!("not valid before {} ms", grant.not_before_ms));
        }
        if now_ms >= grant.expires_ms {
            return Err(Error::CapabilityExpired {
                expires_ms: grant.expires_ms,
                now_ms,
            });
        }
        Ok(())
    }

    /// What [`Capability::authorizes`] decides, without the words of a refusal: the checks of
    /// every publish and read weigh each chain a connection holds and report one refusal at
    /// most, so they must not format one per chain that does not match.
    pub(crate) fn authorization(
        &self,
        agent: &AgentId,
        topic: &str,
        right: Right,
        now_ms: u64,
    ) -> Authorization {
        let grant = &self.leaf().grant;
        if &grant.audience != agent
            || !grant.scope.covers(topic)
            || !grant.rights.contains(right)
            || now_ms < grant.not_before_ms
        {
            Authorization::Refused
        } else if now_ms >= grant.expires_ms {
            Authorization::Expired
        } else {
            Authorization::Granted
        }
    }

    /// The agent that signed the root link: whose authority this is.
    pub fn issuer(&self) -> &AgentId {
        &self.links[0].issuer
    }
    /// The agent the chain finally grants to (the last link's audience).
    pub fn audience(&self) -> &AgentId {
        &self.leaf().grant.audience
    }
    /// The topics the chain finally covers.
    pub fn scope(&self) -> &Scope {
        &self.leaf().grant.scope
    }
    /// The rights the chain finally grants.
    pub fn rights(&self) -> Rights {
        self.leaf().grant.rights
    }
    /// The start of the chain's window (0: none), ms since the Unix epoch.
    pub fn not_before_ms(&self) -> u64 {
        self.leaf().grant.not_before_ms
    }
    /// The end of the chain's window (exclusive), ms since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.leaf().grant.expires_ms
    }
    /// The links, root first.
    pub fn links(&self) -> &[Link] {
        &self.links
    }
    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The canonical bytes, copied.
    pub fn encode(&self) -> Vec<u8> {
        self.bytes.clone()
    }
    /// SHA-256 of the canonical bytes: names this chain.
    pub fn id(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }
    /// [`Link::hash`] of each link, root first: a revocation of any of them (PROTOCOL.md 10.7)
    /// revokes this chain.
    pub fn link_hashes(&self) -> &[[u8; 32]] {
        &self.link_hashes
    }

    fn leaf(&self) -> &Link {
        // The invariant guarantees at least one link.
        &self.links[self.links.len() - 1]
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capability")
            .field("issuer", self.issuer())
            .field("audience", self.audience())
            .field("scope", self.scope())
            .field("rights", &self.rights())
            .field("expires_ms", &self.expires_ms())
            .field("links", &self.links.len())
            .finish()
    }
}

fn check_depth(count: usize) -> Result<()> {
    if count > MAX_CHAIN_LINKS {
        return Err(Error::LimitExceeded {
            what: "capability links",
            limit: MAX_CHAIN_LINKS,
            got: count,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
