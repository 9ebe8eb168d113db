//! The `vault.enc` envelope: AES-256-GCM with a versioned, authenticated header.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "KVLT"
//! 4       1     format version (1)
//! 5       8     key id: first 8 bytes of SHA-256("kimi-vault key id v1" || key)
//! 13      12    nonce, fresh and random for every write
//! 25      n+16  AES-256-GCM ciphertext and tag; AAD = bytes 0..25
//! ```
//!
//! The key id tells "encrypted with another key" (other machine, other user, replaced key file)
//! apart from "changed or damaged" (the tag does not verify).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Result, random_fill};
use crate::secret::SecretBytes;

/// File magic.
pub(crate) const MAGIC: &[u8; 4] = b"KVLT";
/// Current format version.
pub const VERSION: u8 = 1;
/// Header length (magic, version, key id, nonce).
pub(crate) const HEADER_LEN: usize = 4 + 1 + 8 + 12;
const TAG_LEN: usize = 16;

/// An AES-256 key with its public identifier. Wiped on drop.
pub struct VaultKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; 8],
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey")
            .field("key", &"[REDACTED]")
            .field("id", &hex(&self.id))
            .finish()
    }
}

impl VaultKey {
    /// Wraps a raw 32-byte key and computes its id.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        let digest = Sha256::new()
            .chain_update(b"kimi-vault key id v1")
            .chain_update(key.as_slice())
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        VaultKey { key, id }
    }
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Too short to hold a header and a tag.
    Truncated,
    /// Does not start with the magic.
    NotAVault,
    /// A format version this build does not know.
    UnsupportedVersion(u8),
    /// Sealed under another key.
    WrongKey,
    /// The key matches but the tag does not verify.
    Tampered,
}

/// Hex of a byte string (for key ids in messages).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &VaultKey, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    random_fill(&mut nonce)?;
    Ok(seal_with_nonce(key, nonce, plaintext))
}

/// Seals with a given nonce (for tests and fuzzing; production uses [`seal`]).
pub fn seal_with_nonce(key: &VaultKey, nonce: [u8; 12], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&nonce);
    let cipher = Aes256Gcm::new_from_slice(key.key.as_slice()).expect("32-byte key");
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &out[..HEADER_LEN],
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&ct);
    out
}

/// Opens an envelope. Distinguishes wrong key from tampering.
pub fn open(key: &VaultKey, data: &[u8]) -> Result<SecretBytes, EnvelopeError> {
    if data.len() < MAGIC.len() || &data[..4] != MAGIC {
        return Err(if data.len() < MAGIC.len() && MAGIC.starts_with(data) {
            EnvelopeError::Truncated
        } else {
            EnvelopeError::NotAVault
        });
    }
    if data.len() < 5 {
        return Err(EnvelopeError::Truncated);
    }
    if data[4] != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(data[4]));
    }
    if data.len() < HEADER_LEN + TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    if data[5..13] != key.id {
        return Err(EnvelopeError::WrongKey);
    }
    let cipher = Aes256Gcm::new_from_slice(key.key.as_slice()).expect("32-byte key");
    cipher
        .decrypt(
            Nonce::from_slice(&data[13..HEADER_LEN]),
            Payload {
                msg: &data[HEADER_LEN..],
                aad: &data[..HEADER_LEN],
            },
        )
        .map(SecretBytes::new)
        .map_err(|_| EnvelopeError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let key = VaultKey::from_bytes([7u8; 32]);
        let other = VaultKey::from_bytes([8u8; 32]);
        let sealed = seal(&key, b"hello").unwrap();
        assert_eq!(open(&key, &sealed).unwrap().expose(), b"hello");
        assert_eq!(open(&other, &sealed).unwrap_err(), EnvelopeError::WrongKey);
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, &bad).unwrap_err(), EnvelopeError::Tampered);
        assert_eq!(
            open(&key, &sealed[..20]).unwrap_err(),
            EnvelopeError::Truncated
        );
        assert_eq!(open(&key, b"{}").unwrap_err(), EnvelopeError::NotAVault);
        assert_ne!(
            seal(&key, b"x").unwrap(),
            seal(&key, b"x").unwrap(),
            "nonce must be fresh"
        );
    }

    #[test]
    fn every_bit_flip_fails() {
        let key = VaultKey::from_bytes([1u8; 32]);
        let sealed = seal(&key, b"some plaintext").unwrap();
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(open(&key, &bad).is_err(), "bit {i}");
        }
    }
}
