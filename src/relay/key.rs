//! The relay's own identity, kept in a key file (the 32-byte seed as 64 hex characters).

use std::io::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::identity::Identity;

/// Loads the relay key from `path`, or creates one there (mode 0600, parent directories as
/// needed) on first start. The seed is never logged.
pub fn load_or_create(path: &Path) -> Result<Identity> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed = decode_hex(text.trim()).ok_or_else(|| {
                Error::BadInput(format!(
                    "relay key file {} must hold 64 hex characters",
                    path.display()
                ))
            })?;
            Identity::from_seed(&seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = Identity::generate()?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(|e| io_error(path, e))?;
            let seed = identity.export_seed();
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            let hex = zeroize::Zeroizing::new(hex);
            file.write_all(hex.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(path, e))?;
            tracing::info!(relay = %identity.agent_id(), path = %path.display(), "created relay key");
            Ok(identity)
        }
        Err(e) => Err(io_error(path, e)),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Unavailable(format!("relay key file {}: {e}", path.display()))
}

fn decode_hex(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(32));
    for pair in text.as_bytes().chunks(2) {
        let pair = std::str::from_utf8(pair).ok()?;
        out.push(u8::from_str_radix(pair, 16).ok()?);
    }
    Some(out)
}
