//! Approval links, minted in one place for the worker (the mail an
//! approval asked sends to its role's holders) and the API (`POST
//! /v1/approvals/{id}/links`): a single-use token `TENANT.SECRET` (32
//! random bytes, URL-safe base64) of which only the SHA-256 is kept, valid
//! until the approval's deadline. The page that takes it
//! (`GET`/`POST /approve/{token}`) looks it up by the same hash.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::api::Api;
use crate::control::ControlError;

/// Why a link could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the system has no randomness to give: {0}")]
    NoRandomness(String),
    #[error(transparent)]
    Store(#[from] ControlError),
}

/// The hash a link's token is kept and found by.
pub fn token_hash(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Makes a link deciding `approval` of `tenant` until `expires_at`, at
/// `base` (`http://host:port` of `steward serve`): keeps its hash, and
/// gives the URL (the token is in it, and nowhere else).
pub fn mint<S: Api + ?Sized>(
    store: &S,
    tenant: &str,
    approval: &str,
    expires_at: &str,
    base: &str,
) -> Result<String, LinkError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LinkError::NoRandomness(e.to_string()))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let token = format!("{tenant}.{secret}");
    store.create_link(tenant, &token_hash(&token), approval, expires_at)?;
    Ok(format!("{}/approve/{token}", base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::token_hash;

    #[test]
    fn a_token_is_kept_as_its_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
