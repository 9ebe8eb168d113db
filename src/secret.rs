//! Secret values: no `Display`, a redacting `Debug`, wiped from memory on drop.
//!
//! Every [`SecretString`] made in this process is also remembered by the redactor, so that any
//! text that leaves the process (error messages, server bodies, log lines) can be scrubbed of it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret string (access token, refresh token, proxy client key).
///
/// It has no `Display`; its `Debug` prints `SecretString([REDACTED])`. Call [`expose`](Self::expose)
/// at the one place where the value must leave the type (an HTTP header, stdout of `token`).
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps `value`, and remembers it so that it is scrubbed from any text that leaves the
    /// process.
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

/// Constant-time comparison of two byte strings (only the lengths are not hidden).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
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
        // The String is moved into the wrapper, not copied.
        let value = String::deserialize(deserializer)?;
        Ok(SecretString::new(value))
    }
}

/// A secret byte buffer (key material, decrypted vault plaintext): wiped on drop, and its
/// `Debug` prints only the length.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `bytes`; they are wiped when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The bytes. Every caller is a place where the secret leaves the type.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Lets `f` fill the buffer in place (reading a file into it).
    pub(crate) fn with_vec<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        f(&mut self.0)
    }
}

/// Serializes `value` as JSON into a buffer of exactly the right size (measured by a first pass
/// that keeps nothing), so that no reallocation leaves a partial copy of the secrets behind; the
/// buffer is wiped on drop.
pub(crate) fn json_zeroizing<T: Serialize + ?Sized>(value: &T) -> Zeroizing<Vec<u8>> {
    let mut counter = CountingSink(0);
    serde_json::to_writer(&mut counter, value).expect("the value serializes");
    let mut buf = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *buf, value).expect("the value serializes");
    buf
}

/// Counts bytes written, keeps none.
struct CountingSink(usize);

impl std::io::Write for CountingSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0 += data.len();
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = SecretString::from("canary-secret-value-123456");
        assert_eq!(format!("{s:?}"), "SecretString([REDACTED])");
        assert!(!format!("{:?}", Some(&s)).contains("canary"));
        let b = SecretBytes::new(b"canary-bytes".to_vec());
        assert_eq!(format!("{b:?}"), "SecretBytes([REDACTED; 12 bytes])");
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
