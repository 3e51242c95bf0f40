//! What an owned topic's own log says about authority: the capabilities its writers presented
//! in it and the links revoked in it (PROTOCOL.md sections 10.7 and 10.8).
//!
//! Three op kinds are reserved in owned topics:
//!
//! - `cap.present` ([`Presentation`]), body `0x01 ‖ capability`: the author (the capability's
//!   audience, or the owner on its behalf) shows the topic a capability rooted at the owner that
//!   lets the audience write the topic. Presented once, it stands for every later op of the
//!   audience until it expires or is revoked, so ops need not carry it.
//! - `cap.revoke` ([`Revocation`]), body `0x01 ‖ u8 index ‖ capability`: the author revokes link
//!   `index` of the chain. The owner may revoke any link of a chain rooted at it; any other
//!   agent only a link it signed itself (the chain, whose signatures all verify, proves that it
//!   did, and that the chain is the owner's). From the revocation's seq on, no capability that
//!   contains the link authorizes anything in the topic.
//! - `topic.policy` ([`TopicPolicy`], [`super::topic_policy`]), body `0x01 ‖ u8 read`: the owner
//!   alone chooses who may read the topic from its seq on ([`ReadRule`], private until then).
//!
//! [`Authority`] holds both for one topic and decides, as a pure function of the log before an
//! entry and the entry's relay time, whether the entry's op counts. Every replica runs it, so a
//! relay that sequences an unauthorized op cannot make it count anywhere; an honest relay runs
//! the same decision before it sequences ([`Authority::check`]).
//!
//! Bounded by construction: at most [`MAX_PRESENTED`] presented capabilities per topic and
//! [`MAX_PRESENTED_PER_AGENT`] per agent (a fifth replaces the agent's one that expires first),
//! at most [`MAX_REVOKED`] revoked links per topic of which [`MAX_REVOKED_BY_DELEGATORS`] by
//! agents other than the owner, so a delegator can never use up the owner's room. Entries whose
//! expiry has passed are dropped before each insertion: an expired link or chain can never
//! authorize again, so forgetting it changes no decision.

use std::collections::BTreeMap;

use super::topic_policy::{ReadRule, TopicPolicy};
use super::{Authorization, Capability, Link, Right};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::OpDraft;

/// The op kinds with a meaning in owned topics.
pub mod kind {
    /// Presents a write capability to the topic (body: [`super::Presentation`]).
    pub const PRESENT: &str = "cap.present";
    /// Revokes a link of a capability in the topic (body: [`super::Revocation`]).
    pub const REVOKE: &str = "cap.revoke";
    /// Sets the topic's read rule; the owner's only (body: [`super::TopicPolicy`]).
    pub const POLICY: &str = "topic.policy";
}

/// The version byte the `cap.present` and `cap.revoke` bodies start with.
pub const AUTHORITY_BODY_VERSION: u8 = 1;
/// Most capabilities presented in one topic (unexpired ones; expired ones are dropped).
pub const MAX_PRESENTED: usize = 256;
/// Most capabilities one agent keeps presented in one topic.
pub const MAX_PRESENTED_PER_AGENT: usize = 4;
/// Most links revoked in one topic (unexpired ones; expired ones are dropped).
pub const MAX_REVOKED: usize = 256;
/// Most of [`MAX_REVOKED`] that agents other than the owner may fill.
pub const MAX_REVOKED_BY_DELEGATORS: usize = 128;

/// The body of a `cap.present` op: `0x01 ‖ capability`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    capability: Capability,
}

impl Presentation {
    /// Presents `capability`.
    pub fn new(capability: Capability) -> Self {
        Presentation { capability }
    }

    /// The capability presented.
    pub fn capability(&self) -> &Capability {
        &self.capability
    }

    /// The canonical body bytes.
    pub fn encode(&self) -> Vec<u8> {
        [&[AUTHORITY_BODY_VERSION][..], self.capability.as_bytes()].concat()
    }

    /// Decodes a body. `MALFORMED` when empty, `UNSUPPORTED_VERSION`, then the codes of
    /// [`Capability::decode`].
    pub fn decode(body: &[u8]) -> Result<Self> {
        let rest = version(body)?;
        Ok(Presentation {
            capability: Capability::decode(rest)?,
        })
    }

    /// An unsigned op draft (kind `cap.present`) for `topic`; counter, time and deps are the
    /// caller's.
    pub fn draft(&self, topic: &str) -> OpDraft {
        OpDraft {
            topic: topic.to_owned(),
            kind: kind::PRESENT.to_owned(),
            body: self.encode(),
            ..OpDraft::default()
        }
    }
}

/// The body of a `cap.revoke` op: `0x01 ‖ u8 index ‖ capability`; it revokes link `index` of
/// the chain (0: the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    capability: Capability,
    index: u8,
}

impl Revocation {
    /// Revokes link `index` (0: the root) of `capability`. `BAD_INPUT` when the chain has no
    /// such link.
    pub fn new(capability: Capability, index: usize) -> Result<Self> {
        if index >= capability.links().len() {
            return Err(Error::BadInput(format!(
                "link {index} of a chain of {} links",
                capability.links().len()
            )));
        }
        Ok(Revocation {
            capability,
            index: index as u8,
        })
    }

    /// The chain that proves the revoked link's place.
    pub fn capability(&self) -> &Capability {
        &self.capability
    }
    /// Which link is revoked (0: the root).
    pub fn index(&self) -> usize {
        usize::from(self.index)
    }
    /// The revoked link.
    pub fn link(&self) -> &Link {
        &self.capability.links()[self.index()]
    }
    /// [`Link::hash`] of the revoked link: what the topic remembers.
    pub fn link_hash(&self) -> [u8; 32] {
        self.capability.link_hashes()[self.index()]
    }

    /// The canonical body bytes.
    pub fn encode(&self) -> Vec<u8> {
        [
            &[AUTHORITY_BODY_VERSION, self.index][..],
            self.capability.as_bytes(),
        ]
        .concat()
    }

    /// Decodes a body: `MALFORMED` when cut short, `UNSUPPORTED_VERSION`, the codes of
    /// [`Capability::decode`], then `MALFORMED` for an index past the chain's last link.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let rest = version(body)?;
        let (&index, chain) = rest
            .split_first()
            .ok_or_else(|| Error::malformed("revocation", "no link index"))?;
        let capability = Capability::decode(chain)?;
        if usize::from(index) >= capability.links().len() {
            return Err(Error::malformed(
                "revocation",
                format!(
                    "link {index} of a chain of {} links",
                    capability.links().len()
                ),
            ));
        }
        Ok(Revocation { capability, index })
    }

    /// An unsigned op draft (kind `cap.revoke`) for `topic`; counter, time and deps are the
    /// caller's.
    pub fn draft(&self, topic: &str) -> OpDraft {
        OpDraft {
            topic: topic.to_owned(),
            kind: kind::REVOKE.to_owned(),
            body: self.encode(),
            ..OpDraft::default()
        }
    }
}

fn version(body: &[u8]) -> Result<&[u8]> {
    let (&version, rest) = body
        .split_first()
        .ok_or_else(|| Error::malformed("authority op body", "empty body"))?;
    if version != AUTHORITY_BODY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "authority op body",
            version,
        });
    }
    Ok(rest)
}

/// A link revoked in a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedLink {
    /// The seq of the `cap.revoke` entry: from the next entry on, the link authorizes nothing.
    pub seq: u64,
    /// The link's own expiry: after it the link authorizes nothing anyway, and is forgotten.
    pub expires_ms: u64,
    /// Whether the topic's owner revoked it (else the link's issuer, a delegator).
    pub by_owner: bool,
}

/// The links revoked in one topic, by [`Link::hash`]. At most [`MAX_REVOKED`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedLinks(BTreeMap<[u8; 32], RevokedLink>);

impl RevokedLinks {
    /// The seq of the earliest revocation of a link of `capability`, if any.
    pub fn revoked_at(&self, capability: &Capability) -> Option<u64> {
        capability
            .link_hashes()
            .iter()
            .filter_map(|hash| self.0.get(hash).map(|r| r.seq))
            .min()
    }
    /// The revocation of the link with this hash.
    pub fn get(&self, link_hash: &[u8; 32]) -> Option<&RevokedLink> {
        self.0.get(link_hash)
    }
    /// Every revoked link, ascending by hash.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 32], &RevokedLink)> {
        self.0.iter()
    }
    /// How many links are revoked.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds the revocations of `other` that this set lacks; of a link revoked in both, the
    /// earlier revocation stays. (The union of two prefixes of one topic's revocations is the
    /// longer prefix.)
    pub fn absorb(&mut self, other: &RevokedLinks) {
        for (hash, link) in &other.0 {
            self.0
                .entry(*hash)
                .and_modify(|kept| {
                    if link.seq < kept.seq {
                        *kept = *link;
                    }
                })
                .or_insert(*link);
        }
    }

    /// Records the revocation of the link `link_hash` at relay time `now_ms`, after forgetting
    /// the links expired by then (which changes no decision); a link revoked already keeps its
    /// first revocation. The caller has checked the bounds ([`Authority::check`]).
    pub fn record(&mut self, link_hash: [u8; 32], revoked: RevokedLink, now_ms: u64) {
        self.0.retain(|_, r| r.expires_ms > now_ms);
        self.0.entry(link_hash).or_insert(revoked);
    }
}

/// What an op does to a topic's authority once it is admitted ([`Authority::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary op its author may write: nothing changes.
    Write,
    /// A `cap.present`: the capability is remembered for its audience.
    Present(Capability),
    /// A `cap.revoke`: the link is remembered as revoked.
    Revoke {
        /// [`Link::hash`] of the link.
        link_hash: [u8; 32],
        /// The link's expiry.
        expires_ms: u64,
        /// Whether the owner revoked it.
        by_owner: bool,
    },
    /// A `topic.policy` by the owner: the topic's read rule from now on.
    Policy(TopicPolicy),
}

/// The authority state of one owned topic: the capabilities presented and the links revoked in
/// its log so far.
///
/// Invariants: every presented capability is rooted at `owner` and grants `write`; at most
/// [`MAX_PRESENTED_PER_AGENT`] per audience and [`MAX_PRESENTED`] in all; at most
/// [`MAX_REVOKED`] revoked links, of which at most [`MAX_REVOKED_BY_DELEGATORS`] not by the owner;
/// `read` is what the owner's last `topic.policy` said (private before any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    owner: AgentId,
    /// By `(audience, capability id)`.
    presented: BTreeMap<([u8; 32], [u8; 32]), Capability>,
    revoked: RevokedLinks,
    read: ReadRule,
}

impl Authority {
    /// The empty authority of a topic owned by `owner`.
    pub fn new(owner: AgentId) -> Self {
        Authority {
            owner,
            presented: BTreeMap::new(),
            revoked: RevokedLinks::default(),
            read: ReadRule::Private,
        }
    }

    /// The topic's owner.
    pub fn owner(&self) -> &AgentId {
        &self.owner
    }
    /// The presented capabilities, ascending by (audience, capability id).
    pub fn presented(&self) -> impl Iterator<Item = &Capability> {
        self.presented.values()
    }
    /// The revoked links.
    pub fn revoked(&self) -> &RevokedLinks {
        &self.revoked
    }
    /// Who may read the topic, by the owner's last `topic.policy` (private before any).
    pub fn read_rule(&self) -> ReadRule {
        self.read
    }

    fn presented_by<'a>(&'a self, agent: &AgentId) -> impl Iterator<Item = &'a Capability> + 'a {
        let key = *agent.as_bytes();
        self.presented
            .range((key, [0; 32])..=(key, [0xff; 32]))
            .map(|(_, c)| c)
    }

    /// Whether the op `kind`/`body`, signed for `who`, counts in `topic` at relay time `now_ms`,
    /// and what it changes (PROTOCOL.md 10.7, 10.8). Nothing changes until [`Authority::admit`].
    ///
    /// - `cap.present`: the body decodes (its codes); `who` is the capability's audience or the
    ///   owner, the capability is rooted at the owner and authorizes its audience to write
    ///   `topic` at `now_ms` (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`), no link of it is revoked
    ///   (`CAPABILITY_REVOKED`), and there is room (`LIMIT_EXCEEDED`).
    /// - `cap.revoke`: the body decodes; the chain is rooted at the owner and `who` is the
    ///   owner or signed the revoked link (`NOT_AUTHORIZED`); there is room (`LIMIT_EXCEEDED`).
    ///   No write right is needed: revoking what one granted is always allowed.
    /// - `topic.policy`: the body decodes ([`TopicPolicy::decode`]'s codes); `who` is the owner
    ///   (`NOT_AUTHORIZED`: no capability lets anyone else set it).
    /// - any other kind: `who` is the owner, or a capability it presented authorizes it to
    ///   write `topic` at `now_ms` and has no revoked link (`NOT_AUTHORIZED`,
    ///   `CAPABILITY_EXPIRED`, `CAPABILITY_REVOKED`: revoked before expired before neither, as
    ///   [`super::may_use`] reports).
    pub fn check(
        &self,
        topic: &str,
        who: &AgentId,
        kind: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Admission> {
        match kind {
            kind::PRESENT => {
                let capability = Presentation::decode(body)?.capability;
                if capability.issuer() != &self.owner {
                    return Err(Error::NotAuthorized(format!(
                        "the capability is rooted at {}, not at the owner {}",
                        capability.issuer().short(),
                        self.owner.short()
                    )));
                }
                // The holder presents its capability, or the owner presents one it granted
                // (so that the holder's first write counts without a step of its own).
                let holder = *capability.audience();
                if who != &holder && who != &self.owner {
                    return Err(Error::NotAuthorized(format!(
                        "{} may not present a capability of {}",
                        who.short(),
                        holder.short()
                    )));
                }
                capability.authorizes(&holder, topic, Right::Write, now_ms)?;
                if let Some(seq) = self.revoked.revoked_at(&capability) {
                    return Err(revoked(seq));
                }
                self.room_to_present(&holder, &capability, now_ms)?;
                Ok(Admission::Present(capability))
            }
            kind::REVOKE => {
                let revocation = Revocation::decode(body)?;
                if revocation.capability.issuer() != &self.owner {
                    return Err(Error::NotAuthorized(
                        "the revoked chain is not rooted at the topic's owner".into(),
                    ));
                }
                let by_owner = who == &self.owner;
                if !by_owner && revocation.link().issuer() != who {
                    return Err(Error::NotAuthorized(format!(
                        "{} neither owns the topic nor signed the link",
                        who.short()
                    )));
                }
                let link_hash = revocation.link_hash();
                self.room_to_revoke(&link_hash, by_owner, now_ms)?;
                Ok(Admission::Revoke {
                    link_hash,
                    expires_ms: revocation.link().grant().expires_ms,
                    by_owner,
                })
            }
            kind::POLICY => {
                let policy = TopicPolicy::decode(body)?;
                if who != &self.owner {
                    return Err(Error::NotAuthorized(format!(
                        "only the owner {} sets the topic's policy, not {}",
                        self.owner.short(),
                        who.short()
                    )));
                }
                Ok(Admission::Policy(policy))
            }
            _ => self
                .check_write(topic, who, now_ms)
                .map(|()| Admission::Write),
        }
    }

    /// Whether `who` may write `topic` at `now_ms` by what the topic's log holds.
    pub fn check_write(&self, topic: &str, who: &AgentId, now_ms: u64) -> Result<()> {
        if who == &self.owner {
            return Ok(());
        }
        let (mut revoked_error, mut expired) = (None, None);
        for capability in self.presented_by(who) {
            match capability.authorization(who, topic, Right::Write, now_ms) {
                Authorization::Granted => match self.revoked.revoked_at(capability) {
                    None => return Ok(()),
                    Some(seq) => revoked_error = Some(revoked(seq)),
                },
                Authorization::Expired => {
                    expired = Some(Error::CapabilityExpired {
                        expires_ms: capability.expires_ms(),
                        now_ms,
                    })
                }
                Authorization::Refused => {}
            }
        }
        Err(revoked_error.or(expired).unwrap_or_else(|| {
            Error::NotAuthorized(format!(
                "{} presented no capability of the owner {} to write {topic:?}",
                who.short(),
                self.owner.short()
            ))
        }))
    }

    fn room_to_present(&self, who: &AgentId, capability: &Capability, now_ms: u64) -> Result<()> {
        let key = (*who.as_bytes(), capability.id());
        if self.presented.contains_key(&key) {
            return Ok(());
        }
        let live_of_agent = self
            .presented_by(who)
            .filter(|c| c.expires_ms() > now_ms)
            .count();
        if live_of_agent >= MAX_PRESENTED_PER_AGENT {
            // The agent's own presentation that expires first makes room.
            return Ok(());
        }
        let live = self
            .presented
            .values()
            .filter(|c| c.expires_ms() > now_ms)
            .count();
        full("presented capabilities", MAX_PRESENTED, live)
    }

    fn room_to_revoke(&self, link_hash: &[u8; 32], by_owner: bool, now_ms: u64) -> Result<()> {
        if self.revoked.0.contains_key(link_hash) {
            return Ok(());
        }
        let live = self.revoked.0.values().filter(|r| r.expires_ms > now_ms);
        let (total, delegated) = live.fold((0, 0), |(total, delegated), r| {
            (total + 1, delegated + usize::from(!r.by_owner))
        });
        full("revoked links", MAX_REVOKED, total)?;
        if !by_owner {
            full(
                "links revoked by delegators",
                MAX_REVOKED_BY_DELEGATORS,
                delegated,
            )?;
        }
        Ok(())
    }

    /// Applies what [`Authority::check`] admitted at entry `seq`, relay time `now_ms`: first
    /// forgets what has expired, then remembers the presentation or revocation. A presentation
    /// already held or a link already revoked changes nothing.
    pub fn admit(&mut self, admission: Admission, seq: u64, now_ms: u64) {
        match admission {
            Admission::Write => {}
            Admission::Present(capability) => {
                self.presented.retain(|_, c| c.expires_ms() > now_ms);
                let audience = *capability.audience().as_bytes();
                let key = (audience, capability.id());
                if self.presented.contains_key(&key) {
                    return;
                }
                let own: Vec<_> = self
                    .presented
                    .range((audience, [0; 32])..=(audience, [0xff; 32]))
                    .map(|(k, c)| (c.expires_ms(), *k))
                    .collect();
                if own.len() >= MAX_PRESENTED_PER_AGENT {
                    if let Some((_, first)) = own.into_iter().min() {
                        self.presented.remove(&first);
                    }
                }
                self.presented.insert(key, capability);
            }
            Admission::Revoke {
                link_hash,
                expires_ms,
                by_owner,
            } => {
                let revoked = RevokedLink {
                    seq,
                    expires_ms,
                    by_owner,
                };
                self.revoked.record(link_hash, revoked, now_ms);
            }
            Admission::Policy(policy) => self.read = policy.read,
        }
    }

    /// Appends the canonical bytes (PROTOCOL.md 6.6, owned topics):
    /// `u32 n ‖ n × (u16 len ‖ capability)` ascending by (audience, capability id), then
    /// `u32 n ‖ n × (link hash 32 ‖ u64 seq ‖ u64 expires_ms ‖ u8 by_owner)` ascending by hash,
    /// then, from snapshot version 2 on (`with_policy`), `u8 read` ([`ReadRule::to_byte`]).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, with_policy: bool) {
        out.put_u32(self.presented.len() as u32);
        for capability in self.presented.values() {
            out.put_u16(capability.as_bytes().len() as u16);
            out.put(capability.as_bytes());
        }
        out.put_u32(self.revoked.0.len() as u32);
        for (hash, revoked) in &self.revoked.0 {
            out.put(hash);
            out.put_u64(revoked.seq);
            out.put_u64(revoked.expires_ms);
            out.put_u8(u8::from(revoked.by_owner));
        }
        if with_policy {
            out.put_u8(self.read.to_byte());
        }
    }

    /// Reads what [`Authority::encode`] wrote, for a topic owned by `owner`, with the read rule
    /// when `with_policy` (else private: a version-1 snapshot predates policies). Checks the
    /// bounds and that every capability is a valid chain rooted at `owner` granting `write`
    /// (`LIMIT_EXCEEDED`, [`Capability::decode`]'s codes, `NON_CANONICAL`, `MALFORMED` for an
    /// unknown read rule); the order is checked by the caller, which compares the re-encoded
    /// state with the bytes.
    pub(crate) fn decode(r: &mut Reader<'_>, owner: AgentId, with_policy: bool) -> Result<Self> {
        let mut authority = Authority::new(owner);
        let presented = bounded(r.u32("presented count")?, MAX_PRESENTED, "presented")?;
        for _ in 0..presented {
            let len = usize::from(r.u16("capability length")?);
            let capability = Capability::decode(r.take(len, "capability")?)?;
            if capability.issuer() != &owner || !capability.rights().contains(Right::Write) {
                return Err(non_canonical(
                    "a presented capability not rooted at the owner",
                ));
            }
            let key = (*capability.audience().as_bytes(), capability.id());
            authority.presented.insert(key, capability);
        }
        let mut per_agent: BTreeMap<[u8; 32], usize> = BTreeMap::new();
        for (audience, _) in authority.presented.keys() {
            let count = per_agent.entry(*audience).or_default();
            *count += 1;
            if *count > MAX_PRESENTED_PER_AGENT {
                return Err(non_canonical("too many capabilities of one agent"));
            }
        }
        let revoked = bounded(r.u32("revoked count")?, MAX_REVOKED, "revoked links")?;
        for _ in 0..revoked {
            let hash = r.array::<32>("link hash")?;
            let seq = r.u64("revocation seq")?;
            let expires_ms = r.u64("link expiry")?;
            let by_owner = match r.u8("by owner")? {
                0 => false,
                1 => true,
                other => {
                    return Err(Error::malformed(
                        "replica snapshot",
                        format!("by-owner flag {other}"),
                    ))
                }
            };
            authority.revoked.0.insert(
                hash,
                RevokedLink {
                    seq,
                    expires_ms,
                    by_owner,
                },
            );
        }
        let delegated = authority.revoked.0.values().filter(|r| !r.by_owner).count();
        if delegated > MAX_REVOKED_BY_DELEGATORS {
            return Err(non_canonical("too many links revoked by delegators"));
        }
        if with_policy {
            let byte = r.u8("read rule")?;
            authority.read = ReadRule::from_byte(byte)
                .ok_or_else(|| Error::malformed("replica snapshot", format!("read rule {byte}")))?;
        }
        Ok(authority)
    }
}

fn revoked(seq: u64) -> Error {
    Error::CapabilityRevoked(format!("a link of the capability was revoked at seq {seq}"))
}

fn full(what: &'static str, limit: usize, got: usize) -> Result<()> {
    if got >= limit {
        return Err(Error::LimitExceeded {
            what,
            limit,
            got: got + 1,
        });
    }
    Ok(())
}

fn bounded(count: u32, limit: usize, what: &'static str) -> Result<usize> {
    let count = count as usize;
    if count > limit {
        return Err(Error::LimitExceeded {
            what,
            limit,
            got: count,
        });
    }
    Ok(count)
}

fn non_canonical(reason: &str) -> Error {
    Error::NonCanonical {
        what: "replica snapshot",
        reason: reason.into(),
    }
}
