//! Secrets at rest: sealed with ChaCha20-Poly1305 (the `chacha20poly1305`
//! crate) under a key from the environment (`STEWARD_SECRET_KEY`, 32 bytes
//! as base64), a random nonce each, and the tenant and the secret's name as
//! associated data, so a sealed value opens only in its own place: copied
//! to another tenant's row or name, it does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct Sealer(ChaCha20Poly1305);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("STEWARD_SECRET_KEY is not set: secrets need a key to be kept (32 random bytes as base64: `openssl rand -base64 32`)")]
    NoKey,
    #[error("STEWARD_SECRET_KEY is not 32 bytes of base64")]
    BadKey,
    #[error("no randomness for a nonce: {0}")]
    Random(String),
    #[error("a sealed secret does not open with this key (a different STEWARD_SECRET_KEY, or a row copied from elsewhere)")]
    Open,
}

impl Sealer {
    /// The key from `STEWARD_SECRET_KEY`.
    pub fn from_env() -> Result<Sealer, SealError> {
        let text = std::env::var("STEWARD_SECRET_KEY").map_err(|_| SealError::NoKey)?;
        Sealer::from_base64(&text)
    }

    pub fn from_base64(text: &str) -> Result<Sealer, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        Ok(Sealer(ChaCha20Poly1305::new(Key::from_slice(&bytes))))
    }

    fn context(tenant: &str, name: &str) -> Vec<u8> {
        format!("steward-secret\u{0}{tenant}\u{0}{name}").into_bytes()
    }

    /// `value` sealed for `tenant`'s secret `name`: base64 of nonce and
    /// ciphertext.
    pub fn seal(&self, tenant: &str, name: &str, value: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let aad = Sealer::context(tenant, name);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// The value a sealed text holds, if it is `tenant`'s `name`.
    pub fn open(&self, tenant: &str, name: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| SealError::Open)?;
        let (nonce, body) = bytes.split_at_checked(12).ok_or(SealError::Open)?;
        let aad = Sealer::context(tenant, name);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

    #[test]
    fn a_secret_opens_only_in_its_own_place() {
        let s = Sealer::from_base64(KEY).unwrap();
        let sealed = s.seal("acme", "pms_token", "Bearer abc").unwrap();
        assert!(!sealed.contains("abc"));
        assert_eq!(s.open("acme", "pms_token", &sealed).unwrap(), "Bearer abc");
        assert_eq!(s.open("beta", "pms_token", &sealed), Err(SealError::Open));
        assert_eq!(s.open("acme", "other", &sealed), Err(SealError::Open));
        // Each sealing has its own nonce.
        assert_ne!(sealed, s.seal("acme", "pms_token", "Bearer abc").unwrap());
        let other = Sealer::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        assert_eq!(
            other.open("acme", "pms_token", &sealed),
            Err(SealError::Open)
        );
        assert_eq!(s.open("acme", "pms_token", "short"), Err(SealError::Open));
        assert_eq!(
            Sealer::from_base64("dG9vIHNob3J0").err(),
            Some(SealError::BadKey)
        );
    }
}
