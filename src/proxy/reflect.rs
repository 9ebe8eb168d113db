//! A reflecting upstream must not hand the injected Kimi token to the client (SPEC §7): a
//! response header whose value carries the token, raw, percent-encoded or base64-encoded
//! (standard or URL-safe alphabet, at any byte offset), is dropped, `Location` included.
//!
//! The encoded forms are computed once per token (the token changes every ~15 minutes), each
//! with a precomputed substring finder; per response, a header value shorter than the shortest
//! form is passed without a search, and nothing is allocated.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use hyper::header::HeaderValue;
use memchr::memmem::Finder;
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The forms of one token that must not reach a client, and the header values that carry it
/// upstream (made once per token, shared by every request meanwhile: no per-request copy of
/// the token is made and left in freed memory).
pub(crate) struct TokenForms {
    token: SecretString,
    /// `Authorization: Bearer <token>` and `x-api-key: <token>`, marked sensitive; `None` when
    /// the token holds bytes a header cannot carry.
    headers: Option<(HeaderValue, HeaderValue)>,
    /// One finder per form (the forms themselves were zeroized once the finders were made).
    finders: Vec<Finder<'static>>,
    shortest: usize,
}

impl std::fmt::Debug for TokenForms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenForms")
            .field("forms", &self.finders.len())
            .finish_non_exhaustive()
    }
}

/// The middle of a base64 text: characters that depend on the token's bytes only, whatever
/// surrounds them (the first and last 4 characters may mix in neighbouring bytes or padding).
fn middle(encoded: &str) -> Option<&str> {
    (encoded.len() > 16).then(|| &encoded[4..encoded.len() - 4])
}

impl TokenForms {
    pub(crate) fn new(token: &SecretString) -> Self {
        let raw = token.expose().as_bytes();
        let mut forms: Vec<Zeroizing<Vec<u8>>> = vec![Zeroizing::new(raw.to_vec())];
        // Percent-encoded: every byte but letters and digits (the widest encoder), hex digits in
        // both cases; and the form-encoding of a query string (`+`, `/`, `=` in a token).
        let percent = Zeroizing::new(
            percent_encoding::percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string(),
        );
        if percent.as_bytes() != raw {
            let lower = Zeroizing::new(lower_hex(&percent));
            forms.push(Zeroizing::new(percent.as_bytes().to_vec()));
            if lower.as_bytes() != percent.as_bytes() {
                forms.push(Zeroizing::new(lower.as_bytes().to_vec()));
            }
        }
        // base64 at each of the three byte offsets, both alphabets.
        for offset in 0..3 {
            let mut input = Zeroizing::new(vec![0u8; offset]);
            input.extend_from_slice(raw);
            for engine in [&STANDARD, &URL_SAFE] {
                let encoded = Zeroizing::new(engine.encode(&*input));
                if let Some(m) = middle(&encoded) {
                    let form = m.as_bytes();
                    if !forms.iter().any(|f| f.as_slice() == form) {
                        forms.push(Zeroizing::new(form.to_vec()));
                    }
                }
            }
        }
        let shortest = forms.iter().map(|f| f.len()).min().unwrap_or(0).max(1);
        let finders = forms
            .iter()
            .filter(|f| !f.is_empty())
            .map(|f| Finder::new(f.as_slice()).into_owned())
            .collect();
        TokenForms {
            token: token.clone(),
            headers: token_headers(token),
            finders,
            shortest,
        }
    }

    /// The token these are the forms of.
    pub(crate) fn token(&self) -> &SecretString {
        &self.token
    }

    /// The values of `Authorization` and `x-api-key` that carry the token upstream.
    pub(crate) fn headers(&self) -> Option<&(HeaderValue, HeaderValue)> {
        self.headers.as_ref()
    }

    /// True when these are the forms of `token`. A plain comparison: both tokens are the
    /// proxy's own (the one it holds and the one it just read), never a client's input, so its
    /// timing tells a client nothing; the constant-time compare of a 1 kB token on every request
    /// was a tenth of the proxy's CPU (callgrind, issue 15).
    pub(crate) fn is_for(&self, token: &SecretString) -> bool {
        self.token.expose() == token.expose()
    }

    /// True when `value` carries the token in one of its forms.
    pub(crate) fn carried_by(&self, value: &[u8]) -> bool {
        value.len() >= self.shortest && self.finders.iter().any(|f| f.find(value).is_some())
    }
}

/// `Bearer <token>` and `<token>` as sensitive header values (the text is built in a buffer
/// wiped on drop).
fn token_headers(token: &SecretString) -> Option<(HeaderValue, HeaderValue)> {
    let mut text = Zeroizing::new(String::with_capacity(token.expose().len() + 7));
    text.push_str("Bearer ");
    text.push_str(token.expose());
    let mut bearer = HeaderValue::from_str(&text).ok()?;
    bearer.set_sensitive(true);
    let mut key = HeaderValue::from_str(token.expose()).ok()?;
    key.set_sensitive(true);
    Some((bearer, key))
}

/// `%2F` → `%2f` (the rest unchanged).
fn lower_hex(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut after_percent = 0;
    for c in percent.chars() {
        if c == '%' {
            after_percent = 2;
            out.push(c);
        } else if after_percent > 0 {
            after_percent -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ";

    #[test]
    fn every_form_is_seen_and_plain_values_are_not() {
        let forms = TokenForms::new(&SecretString::from(TOKEN));
        let b64 = |prefix: &str, e: &base64::engine::GeneralPurpose| {
            e.encode(format!("{prefix}{TOKEN}&x=1"))
        };
        let carried = [
            TOKEN.to_owned(),
            format!("https://evil.example/cb?t={TOKEN}"),
            format!(
                "https://evil.example/?t={}",
                percent_encoding::percent_encode(
                    TOKEN.as_bytes(),
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
            format!(
                "x={}",
                lower_hex(
                    &percent_encoding::percent_encode(
                        TOKEN.as_bytes(),
                        percent_encoding::NON_ALPHANUMERIC
                    )
                    .to_string()
                )
            ),
            b64("", &STANDARD),
            b64("a", &STANDARD),
            b64("Bearer ", &STANDARD),
            b64("ab", &URL_SAFE),
            format!("Basic {}", b64("user:", &STANDARD)),
        ];
        for v in &carried {
            assert!(forms.carried_by(v.as_bytes()), "{v}");
        }
        for v in [
            "application/json",
            "req-0123456789",
            "https://api.kimi.com/coding/v1/messages",
            "eyJhbGciOiJIUzI1NiJ9",
        ] {
            assert!(!forms.carried_by(v.as_bytes()), "{v}");
        }
        assert!(forms.is_for(&SecretString::from(TOKEN)));
        assert!(!forms.is_for(&SecretString::from("other")));
    }
}
