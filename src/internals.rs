//! Low-level pieces exposed only to the fuzz targets (`--cfg fuzzing`) and to property tests
//! and benchmarks (the test-only `testing` feature). Not part of the library's API.

pub use crate::migrate::parse::{Tool, parse, sniff};
pub use crate::oauth::response::{classify_token, parse_device_authorization, parse_grant};
pub use crate::redact::{REDACTED, redact_body, redact_text, scrub};
pub use crate::store::crypto::{EnvelopeError, VaultKey, open, seal, seal_with_nonce};
pub use crate::store::file::decode;
pub use crate::store::key::parse_material;
pub use crate::store::record::{CONTENTS_VERSION, VaultContents, credential_json};
