//! One link of a capability chain: its canonical bytes, its signature and the narrowing rules
//! between a link and its parent (PROTOCOL.md section 10.1–10.3).

use sha2::{Digest, Sha256};

use super::scope::{Right, Rights, Scope};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity, SIGNATURE_LEN};
use crate::op::{validate_topic, MAX_TOPIC_LEN};

/// Domain-separation prefix of every capability link signature.
pub const CAPABILITY_DOMAIN: &[u8] = b"ants-coord/capability/v1\x00";

/// Largest encoded link, in bytes: every field at its limit.
pub const MAX_LINK_LEN: usize = 32 + 32 + 1 + 1 + MAX_TOPIC_LEN + 1 + 8 + 8 + SIGNATURE_LEN;

/// What the signer of a link grants, before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The agent that receives the rights.
    pub audience: AgentId,
    /// The topics the rights are over.
    pub scope: Scope,
    /// The rights granted (not empty).
    pub rights: Rights,
    /// The first millisecond (since the Unix epoch) at which the grant holds; `0` for no lower
    /// bound.
    pub not_before_ms: u64,
    /// The first millisecond at which the grant no longer holds: it is valid while
    /// `not_before_ms <= now < expires_ms`.
    pub expires_ms: u64,
}

/// A signed link: `issuer` grants [`Grant`] to its audience, signed over the parent link's
/// digest so a link cannot be moved onto another chain.
///
/// Invariant (once it is part of a [`super::Capability`]): its own rules and the narrowing rules
/// against its parent hold, and its signature verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub(super) issuer: AgentId,
    pub(super) grant: Grant,
    pub(super) signature: [u8; SIGNATURE_LEN],
}

impl Link {
    /// The agent that signed this link.
    pub fn issuer(&self) -> &AgentId {
        &self.issuer
    }
    /// What it grants.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// Signs `grant` as `issuer`, under the parent link `parent` (`None` for the root).
    pub(super) fn sign(issuer: &Identity, grant: Grant, parent: Option<&Link>) -> Self {
        let mut link = Link {
            issuer: issuer.agent_id(),
            grant,
            signature: [0; SIGNATURE_LEN],
        };
        link.signature = issuer.sign_in_domain(CAPABILITY_DOMAIN, &link.signed_body(parent));
        link
    }

    /// The encoding without the signature.
    fn unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_LINK_LEN);
        out.put(self.issuer.as_bytes());
        out.put(self.grant.audience.as_bytes());
        out.put_u8(self.grant.scope.kind_byte());
        let name = self.grant.scope.name().as_bytes();
        out.put_u8(name.len() as u8);
        out.put(name);
        out.put_u8(self.grant.rights.bits());
        out.put_u64(self.grant.not_before_ms);
        out.put_u64(self.grant.expires_ms);
        out
    }

    /// The canonical bytes of the link, signature included.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.put(&self.unsigned());
        out.put(&self.signature);
    }

    /// SHA-256 of the link's canonical bytes, signature included: what a child link signs
    /// over, and what a revocation names (PROTOCOL.md 10.7).
    pub fn hash(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(MAX_LINK_LEN);
        self.encode(&mut bytes);
        Sha256::digest(bytes).into()
    }

    /// What the signature covers after the domain: the parent's digest (32 zero bytes for the
    /// root) followed by the link without its signature.
    pub(super) fn signed_body(&self, parent: Option<&Link>) -> Vec<u8> {
        let parent = parent.map_or([0; 32], Link::hash);
        [&parent[..], &self.unsigned()].concat()
    }

    /// Verifies the signature under `parent`.
    pub(super) fn verify(&self, parent: Option<&Link>) -> Result<()> {
        let message = [CAPABILITY_DOMAIN, &self.signed_body(parent)].concat();
        self.issuer.verify(&message, &self.signature)
    }
}

/// A link as read from bytes, before any rule but the keys' validity is checked.
pub(super) struct RawLink {
    pub(super) issuer: AgentId,
    pub(super) audience: AgentId,
    pub(super) scope_kind: u8,
    pub(super) name: Vec<u8>,
    pub(super) rights: u8,
    pub(super) not_before_ms: u64,
    pub(super) expires_ms: u64,
    pub(super) signature: [u8; SIGNATURE_LEN],
}

impl RawLink {
    /// Reads one link's fields in layout order, validating the two keys as they are read.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let issuer = AgentId::from_bytes(&r.array::<32>("issuer")?)?;
        let audience = AgentId::from_bytes(&r.array::<32>("audience")?)?;
        let scope_kind = r.u8("scope kind")?;
        let name_len = r.u8("scope length")? as usize;
        let name = r.take(name_len, "scope")?.to_vec();
        let rights = r.u8("rights")?;
        let not_before_ms = r.u64("not before")?;
        let expires_ms = r.u64("expires")?;
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        Ok(RawLink {
            issuer,
            audience,
            scope_kind,
            name,
            rights,
            not_before_ms,
            expires_ms,
            signature,
        })
    }

    /// Applies the link's own rules (10.2 step 4): the scope's name (`BAD_TOPIC`), its kind,
    /// the rights and the time window (`BAD_CAPABILITY`).
    pub(super) fn into_link(self) -> Result<Link> {
        let name = String::from_utf8(self.name).map_err(|_| Error::BadTopic("not UTF-8".into()))?;
        // The scope's topic rules come first (10.2 step 4), whatever its kind.
        validate_topic(&name)?;
        let scope = match self.scope_kind {
            0 => Scope::Topic(name),
            1 => Scope::Prefix(name),
            other => {
                return Err(Error::BadCapability(format!(
                    "scope kind {other} is neither 0 (topic) nor 1 (prefix)"
                )))
            }
        };
        let link = Link {
            issuer: self.issuer,
            grant: Grant {
                audience: self.audience,
                scope,
                rights: Rights::from_bits(self.rights)?,
                not_before_ms: self.not_before_ms,
                expires_ms: self.expires_ms,
            },
            signature: self.signature,
        };
        check_own_rules(&link.grant)?;
        Ok(link)
    }
}

/// A link's own rules: a valid scope name (`BAD_TOPIC`), at least one right and a time window
/// that is not empty (`BAD_CAPABILITY`).
pub(super) fn check_own_rules(grant: &Grant) -> Result<()> {
    grant.scope.validate()?;
    if grant.rights.is_empty() {
        return Err(Error::BadCapability("a link grants no right".into()));
    }
    if grant.expires_ms <= grant.not_before_ms {
        return Err(Error::BadCapability(format!(
            "expires at {} ms, not after its start {} ms",
            grant.expires_ms, grant.not_before_ms
        )));
    }
    Ok(())
}

/// The narrowing rules of a link against its parent (`BAD_CAPABILITY`): issued by the parent's
/// audience, who holds `delegate`; rights within the parent's, scope within the parent's, time
/// window within the parent's.
pub(super) fn check_narrows(link: &Link, parent: &Link) -> Result<()> {
    let (child, outer) = (&link.grant, &parent.grant);
    let refuse = |reason: String| Err(Error::BadCapability(reason));
    if link.issuer != outer.audience {
        return refuse(format!(
            "link signed by {} but its parent grants {}",
            link.issuer.short(),
            outer.audience.short()
        ));
    }
    if !outer.rights.contains(Right::Delegate) {
        return refuse("the parent link does not grant delegate".into());
    }
    if !child.rights.is_subset_of(outer.rights) {
        return refuse("a link grants a right its parent does not".into());
    }
    if !child.scope.is_within(&outer.scope) {
        return refuse(format!(
            "{} is not within the parent's {}",
            child.scope, outer.scope
        ));
    }
    if child.not_before_ms < outer.not_before_ms {
        return refuse("a link starts before its parent".into());
    }
    if child.expires_ms > outer.expires_ms {
        return refuse("a link expires after its parent".into());
    }
    Ok(())
}
