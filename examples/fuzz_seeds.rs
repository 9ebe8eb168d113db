//! Writes the fuzz seed corpora under `fuzz/seeds/` (run from the repository root):
//! `cargo run --example fuzz_seeds`. The outputs are committed; rerun after a format change.

use std::fs;
use std::path::Path;

use kimi_vault::internals::{CONTENTS_VERSION, VaultContents};
use kimi_vault::internals::{VaultKey, seal_with_nonce};
use kimi_vault::secret::SecretString;
use kimi_vault::store::Credential;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/seeds").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    // decrypt: 32 bytes of key material, then a vault sealed with the key derived the way the
    // fuzz target derives it (the material used directly as the AES key).
    let material = [0x11u8; 32];
    let key = VaultKey::from_bytes(material);
    let mut contents = VaultContents {
        version: CONTENTS_VERSION,
        profiles: Default::default(),
    };
    contents.profiles.insert(
        "default".into(),
        Credential::new(
            SecretString::from("seed-access-token-0123456789"),
            SecretString::from("seed-refresh-token-0123456789"),
            1_900_000_000,
        ),
    );
    let plain = serde_json::to_vec(&contents).unwrap();
    let sealed = seal_with_nonce(&key, [3u8; 12], &plain);
    write(
        "decrypt",
        "vault-one-profile",
        &[&material[..], &sealed].concat(),
    );
    let empty = serde_json::to_vec(&VaultContents {
        version: CONTENTS_VERSION,
        profiles: Default::default(),
    })
    .unwrap();
    write(
        "decrypt",
        "vault-empty",
        &[&material[..], &seal_with_nonce(&key, [4u8; 12], &empty)].concat(),
    );

    // redact: a selector byte (which held secret, which of its forms, which keyed shape), then
    // the text around them.
    let redact: &[(&str, u8, &[u8])] = &[
        ("oauth-error", 0, br#"{"error":"invalid_grant","error_description":"refresh token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln revoked"}"#),
        ("tokens", 1, br#"{"access_token":"abc","refresh_token":"def","nested":[{"device_code":"x"}]}"#),
        ("html", 2, b"<html><body>502 Bad Gateway nginx/1.25.3 Bearer abcdef0123456789abcdef0123</body></html>"),
        ("truncated-json", 3, br#"{"access_token":"lettersonly","refresh_token":"a:b:c","expires_in":-5"#),
        ("form-echo", 9, b"you sent: grant_type=refresh_token&refresh_token=abc%3Adef%2Fghi&client_id=17e5f671"),
        ("headers", 14, b"HTTP/1.1 500\r\nSet-Cookie: sid=abc; Path=/\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"),
        ("escaped-json", 21, br#"{"error":"{\"refresh_token\":\"inner\"}","code":400}"#),
        ("unicode-key", 27, br#"{"refresh\u005ftoken":"x","\u0074oken":"y"}"#),
        ("long", 5, &[b'x'; 400]),
        ("base64", 11, b"payload=eyJyZWZyZXNoX3Rva2VuIjoiaGVsZDpjb2xvbjpzZXBhcmF0ZWQ6c2VjcmV0In0="),
    ];
    for (name, selector, text) in redact {
        write("redact", name, &[&[*selector][..], text].concat());
    }

    // token_response
    write("token_response", "grant", br#"{"access_token":"a","refresh_token":"r","expires_in":900,"scope":"kimi-code","token_type":"Bearer"}"#);
    write(
        "token_response",
        "grant-strings",
        br#"{"access_token":"a","expires_in":"900.0"}"#,
    );
    write(
        "token_response",
        "pending",
        br#"{"error":"authorization_pending"}"#,
    );
    write("token_response", "device", br#"{"device_code":"d","user_code":"ABCD-1234","verification_uri":"https://www.kimi.com/code/authorize_device","verification_uri_complete":"https://www.kimi.com/code/authorize_device?user_code=ABCD-1234","expires_in":600,"interval":5}"#);

    // migrate_sources
    write("migrate_sources", "kimi-cli", br#"{"access_token":"a","refresh_token":"r","expires_at":1700000000.25,"scope":"kimi-code","token_type":"Bearer","expires_in":900}"#);
    write(
        "migrate_sources",
        "kimi-code-tombstone",
        br#"{"access_token":"","refresh_token":"","expires_at":0}"#,
    );
    write("migrate_sources", "roder", br#"{"type":"oauth","access":"a","refresh":"r","expires":1700000000000,"scope":"kimi-code"}"#);
    write("migrate_sources", "cliproxy", br#"{"type":"kimi","access_token":"a","refresh_token":"r","token_type":"Bearer","expired":"2023-11-14T22:13:20Z"}"#);
    write(
        "migrate_sources",
        "opencode-encrypted",
        br#"{"encrypted":"JCQkJCQkJCQkJCQkJCQkJAAAAAAAAAAAAAAAAAAAAAA="}"#,
    );

    // proxy_head: the path after /v1/, then `name: value` lines.
    write(
        "proxy_head",
        "claude",
        b"messages\nx-api-key: kvp-fuzz-client-key-0123456789\nanthropic-version: 2023-06-01\ncontent-type: application/json\nconnection: keep-alive, x-hop\nx-hop: 1",
    );
    write(
        "proxy_head",
        "openai",
        b"chat/completions\nauthorization: Bearer kvp-fuzz-client-key-0123456789\ncookie: a=b\nproxy-authorization: Basic eA==",
    );
    write("proxy_head", "climb", b"a/%2e%2e/admin\nx-api-key: wrong");
    write(
        "proxy_head",
        "cross-site",
        b"messages\nhost: [::1]evil\norigin: NULL\norigin: http://localhost\nsec-fetch-site: Cross-Site",
    );
    write(
        "proxy_head",
        "reflect",
        b"messages\nhost: 127.0.0.1:18462\nlocation: https://evil.example/?t=at-fuzz-token-0123456789abcdef\nx-b64: YXQtZnV6ei10b2tlbi0wMTIzNDU2Nzg5YWJjZGVm",
    );

    // api_response
    write("api_response", "usages", br#"{"usage":{"limit":"100","remaining":"74","resetTime":"2026-02-11T17:32:50.757941Z"},"limits":[{"window":{"duration":300,"timeUnit":"TIME_UNIT_MINUTE"},"detail":{"limit":"100","remaining":"85","resetTime":"2026-02-07T12:32:50.757941Z"}}],"user":{"membership":{"level":"LEVEL_INTERMEDIATE"}}}"#);
    write("api_response", "usages-missing", br#"{"usage":{},"limits":[{"window":{"duration":"1","timeUnit":"TIME_UNIT_DAY"},"detail":{"used":1.5,"limit":"NaN","resetTime":1770831170000}}]}"#);
    write("api_response", "models", br#"{"data":[{"id":"kimi-for-coding","display_name":"Kimi For Coding","context_length":"262144","supports_reasoning":true,"supports_image_in":"false","supports_video_in":false}]}"#);
    write(
        "api_response",
        "error-with-token",
        br#"{"error":{"message":"bad token"},"access_token":"FUZZ-SECRET-0123456789abcdef"}"#,
    );
}
