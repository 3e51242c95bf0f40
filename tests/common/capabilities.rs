//! Capabilities for the owned-topic tests (`relay_access`, `relay_revocation`).

use ants_coord::capability::{Rights, Scope};
use ants_coord::{Capability, Identity};

/// An hour from the first call, ms since the Unix epoch: the expiry of the valid capabilities
/// (the relay checks against its clock; no test waits on time). One value for the whole run,
/// so that a delegated link given "the same" expiry as its parent never lands a millisecond
/// later, which would widen the chain.
pub fn in_an_hour() -> u64 {
    static HOUR: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HOUR.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        now + 3_600_000
    })
}

/// The topic `@<owner's id>/<rest>`.
pub fn owned(owner: &Identity, rest: &str) -> String {
    format!("@{}/{rest}", owner.agent_id())
}

/// `issuer` grants `audience` `rights` on the topic, until `expires_ms`.
pub fn cap_until(
    issuer: &Identity,
    audience: &Identity,
    topic: &str,
    rights: Rights,
    expires_ms: u64,
) -> Capability {
    Capability::grant(
        issuer,
        audience.agent_id(),
        Scope::Topic(topic.into()),
        rights,
        expires_ms,
    )
    .unwrap()
}

/// The relay's `/ws` URL with these capabilities.
pub fn url_with(url: &str, caps: &[&Capability]) -> String {
    let params: Vec<String> = caps
        .iter()
        .map(|c| format!("cap={}", hex::encode(c.as_bytes())))
        .collect();
    format!("{url}?{}", params.join("&"))
}
