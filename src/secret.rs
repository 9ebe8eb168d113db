//! Secret values: no `Display`, a redacting `Debug`, wiped from memory on drop.
//!
//! Every [`SecretString`] made in this process is also remembered by [`crate::redact`], so that
//! any text that leaves the process (error messages, server bodies) can be scrubbed of it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret string (access token, refresh token, proxy client key).
///
/// It has no `Display`; its `Debug` prints `SecretString([REDACTED])`. Call [`expose`](Self::expose)
/// at the one place where the value must leave the type (an HTTP header, stdout of `token`).
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps `value`, and remembers it for [`crate::redact::scrub`].
    pub fn new(value: String) -> Self {
        crate::redact::remember(&value);
        SecretString(Zeroizing::new(value))
    }

    /// The secret itself. Every caller is a place where the secret leaves the type.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string (a revoked or missing token).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets in time that depends only on their lengths.
    pub fn ct_eq(&self, other: &SecretString) -> bool {
        ct_eq(self.expose().as_bytes(), other.expose().as_bytes())
    }
}

/// Constant-time comparison of two byte strings (the length is not hidden).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([REDACTED])")
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString::new(value.to_owned())
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(SecretString::new(value))
    }
}

/// A secret byte buffer (key material, decrypted vault plaintext), wiped on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = SecretString::from("canary-secret-value-123456");
        assert_eq!(format!("{s:?}"), "SecretString([REDACTED])");
        assert!(!format!("{:?}", Some(&s)).contains("canary"));
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
