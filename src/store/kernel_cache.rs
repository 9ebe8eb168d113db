//! A cache of the access token in the Linux kernel keyring, in front of the Secret Service.
//!
//! A warm keyring `token` spends its time waiting for gnome-keyring (five D-Bus round trips
//! and two thread hand-offs); this cache answers it with a handful of `keyctl` system calls.
//! It is only an optimisation: every failure is a miss (reported through `tracing` at debug
//! level only), and the Secret Service stays the one place the credential lives.
//!
//! - **What is cached**: what `token` needs to answer without a refresh (the access token, its
//!   expiry, its type and the login's region), never the refresh token, the proxy's client key
//!   or the account. The payload also names the entry it mirrors (a SHA-256 of the service, the
//!   profile and the session bus) and the generation it was read under.
//! - **Where**: a `user` key in the user keyring (`@u`), described
//!   `kimi-vault:v1:<profile>:<hash>`, with permissions for its possessor and its owning user
//!   only (no group, no other), and a timeout no longer than the access token's remaining life
//!   (at most [`MAX_TTL`]), set before the key enters the user keyring. SECURITY.md ("The kernel keyring cache") says why `@u` and not the
//!   session keyring.
//! - **Filled** only by a read the Secret Service answered (so a keyring that is locked or
//!   gone fills nothing), in [`KeyringBackend::load`](crate::store::keyring), and only in a
//!   process that asked the cache for a token and missed ([`FILL`]).
//! - **Invalidated** by every write and delete of the entry (login, refresh, logout, migrate,
//!   a rejected refresh), before and after the Secret Service call, by any process of the user:
//!   the entry's *generation* key (`…:gen`) gets a new random value and the cached key is
//!   invalidated. A reader takes the generation *before* its Secret Service read and writes it
//!   into what it caches; a hit must carry the current generation. So a reader that read the
//!   old credential while another process replaced or deleted it can cache it, but never serve
//!   it: whatever the interleaving, a stale token is not handed out after a write.
//! - **Served** only to [`Session::token`](crate::session::Session::token), when the keyring is
//!   the backend that would be read (`keyring` mode, or `auto` with the index naming the
//!   keyring) and the token is valid for longer than the caller needs.
//!
//! Not on Linux: no cache (every function is a no-op). Where `keyctl`/`add_key` are refused
//! (seccomp in containers: ENOSYS, EPERM, EACCES) the first refusal turns the cache off for the
//! rest of the process.

use crate::store::record::Credential;

/// The longest a cached token lives in the kernel, whatever its expiry: it bounds how long a
/// change made behind kimi-vault's back (an item deleted with seahorse, a keyring locked, a
/// logout by a process that cannot use `keyctl`) can go unnoticed.
pub(crate) const MAX_TTL: i64 = 600;

/// The version line every payload starts with.
const MAGIC: &str = "kimi-vault kernel cache v1";

/// What identifies one keyring entry: its service and user (profile) and the session bus its
/// Secret Service answers on. The vault directory is not part of it: the keyring entry is the
/// same for every `KIMI_VAULT_HOME` (SECURITY.md).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// Description of the cached key.
    desc: String,
    /// Description of the generation key: by service and profile only, not by bus, so that a
    /// write made on any bus (or with no bus address at all: zbus then falls back to
    /// `$XDG_RUNTIME_DIR/bus`, the same Secret Service) changes the generation every cached
    /// copy is checked against.
    gen_desc: String,
    /// SHA-256 of the identity, hex: written in the payload and compared on a hit.
    digest: String,
    /// False without a bus address: nothing to tell two Secret Services apart by, so nothing is
    /// cached or served, but writes still change the generation.
    cacheable: bool,
}

impl Identity {
    /// The identity of `service`/`user` on the session bus `bus` (empty when there is no bus
    /// address: then only invalidated, never cached); `None` for an empty user.
    pub(crate) fn new(service: &str, user: &str, bus: &str) -> Option<Self> {
        use sha2::Digest;
        if user.is_empty() {
            return None;
        }
        let hash = |parts: &[&str]| {
            let mut h = sha2::Sha256::new();
            for part in parts {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            crate::store::crypto::hex(&h.finalize())
        };
        let digest = hash(&["kimi-vault kernel cache", service, user, bus]);
        let generation = hash(&["kimi-vault kernel cache generation", service, user]);
        // Profile names are short and plain (`check_profile_name`); anything else (another
        // tool's user name) appears only through the hash.
        let shown = if crate::store::check_profile_name(user).is_ok() {
            user
        } else {
            "-"
        };
        Some(Identity {
            desc: format!("kimi-vault:v1:{shown}:{}", &digest[..16]),
            gen_desc: format!("kimi-vault:v1:{shown}:{}:gen", &generation[..16]),
            digest,
            cacheable: !bus.is_empty(),
        })
    }
}

#[cfg(any(fuzzing, feature = "testing"))]
impl Identity {
    /// The cached key's and the generation key's descriptions (`internals`, for the tests).
    pub(crate) fn descriptions(&self) -> (String, String) {
        (self.desc.clone(), self.gen_desc.clone())
    }
}

/// Taken before a Secret Service read: the generation the read is made under.
#[derive(Debug)]
pub(crate) struct Ticket {
    id: Identity,
    generation: String,
}

/// The payload for `cred` under `ticket`, or `None` when the credential is not to be cached
/// (needs a login, has no token, holds a line break where a field ends).
fn payload(ticket: &Ticket, cred: &Credential) -> Option<zeroize::Zeroizing<String>> {
    let token = cred.access_token.expose();
    let plain = |s: &str| !s.contains(['\n', '\r', '\0']);
    if cred.needs_login
        || token.is_empty()
        || !plain(token)
        || !plain(&cred.token_type)
        || !plain(&cred.region)
    {
        return None;
    }
    let head = format!(
        "{MAGIC}\nid {}\ngen {}\nexp {}\ntype {}\nregion {}\ntoken ",
        ticket.id.digest, ticket.generation, cred.expires_at, cred.token_type, cred.region
    );
    let mut out = zeroize::Zeroizing::new(String::with_capacity(head.len() + token.len()));
    out.push_str(&head);
    out.push_str(token);
    Some(out)
}

/// What a payload holds (the token stays borrowed from the wiped buffer it was read into).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The identity digest.
    pub(crate) id: &'a str,
    /// The generation it was read under.
    pub(crate) generation: &'a str,
    /// The access token's expiry, Unix seconds.
    pub(crate) expires_at: i64,
    /// The token type.
    pub(crate) token_type: &'a str,
    /// The login's region.
    pub(crate) region: &'a str,
    /// The access token.
    pub(crate) token: &'a str,
}

/// Reads a payload; `None` for anything that is not exactly one this module writes (a key of
/// the same name planted by someone else, an older version).
pub(crate) fn parse(bytes: &[u8]) -> Option<Parsed<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let mut field = |name: &str| -> Option<&str> {
        let after = rest.strip_prefix(name)?.strip_prefix(' ')?;
        if name == "token" {
            rest = "";
            return Some(after);
        }
        let (value, next) = after.split_once('\n')?;
        rest = next;
        Some(value)
    };
    let id = field("id")?;
    let generation = field("gen")?;
    let expires_at = field("exp")?.parse().ok()?;
    let token_type = field("type")?;
    let region = field("region")?;
    let token = field("token")?;
    let ok = id.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && !generation.is_empty()
        && !token.is_empty()
        && !token.contains(['\n', '\r', '\0']);
    ok.then_some(Parsed {
        id,
        generation,
        expires_at,
        token_type,
        region,
        token,
    })
}

#[cfg(target_os = "linux")]
mod sys {
    //! The `keyctl` side, through `linux-keyutils` (plain system calls, no C library).

    use std::sync::atomic::{AtomicBool, Ordering};

    use linux_keyutils::{Key, KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier};
    use linux_keyutils::{KeyPermissions, Permission};

    /// Set at the first refusal that says the facility is not usable here.
    static OFF: AtomicBool = AtomicBool::new(false);

    /// The largest payload read (an access token is about a kilobyte).
    const MAX_PAYLOAD: usize = 16 * 1024;

    /// The first read's buffer.
    const FIRST_READ: usize = 2048;

    /// Seconds a generation key outlives the last use (longer than any cached key it tags).
    const GEN_TTL: usize = (super::MAX_TTL as usize) * 2;

    /// Possessor and owning user: view, read, write (update), search, set attributes (the
    /// timeout). Nothing for the group or others; no link (nobody needs to link it elsewhere).
    fn perms() -> KeyPermissions {
        let p = || {
            Permission::VIEW
                | Permission::READ
                | Permission::WRITE
                | Permission::SEARCH
                | Permission::SETATTR
        };
        KeyPermissionsBuilder::builder()
            .posessor(p())
            .user(p())
            .build()
    }

    /// Names a failure for the debug log (never a payload: `KeyError` carries none).
    pub(super) fn note(what: &str, e: KeyError) {
        tracing::debug!("kernel keyring cache: {what}: {e:?}");
    }

    /// The user keyring, unless the facility is off or refused here.
    pub(super) fn ring() -> Option<KeyRing> {
        if OFF.load(Ordering::Relaxed) {
            return None;
        }
        let result = if crate::fault::active("keyctl-unavailable") {
            // Test hook: as in a container whose seccomp profile denies keyctl.
            Err(KeyError::Unknown(libc::ENOSYS))
        } else {
            KeyRing::from_special_id(KeyRingIdentifier::User, true)
        };
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                if matches!(
                    e,
                    KeyError::PermissionDenied | KeyError::AccessDenied | KeyError::Unknown(_)
                ) {
                    OFF.store(true, Ordering::Relaxed);
                }
                note("the user keyring cannot be used", e);
                None
            }
        }
    }

    /// The key `desc` in `ring`, when there is one (a miss otherwise).
    pub(super) fn find(ring: KeyRing, desc: &str) -> Option<Key> {
        match ring.search(desc) {
            Ok(k) => Some(k),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => None,
            Err(e) => {
                note("search", e);
                None
            }
        }
    }

    /// Reads a key's payload into a buffer wiped on drop: a small one first (an access token
    /// is about a kilobyte; the buffer is zeroed and wiped, so its size is paid twice), the
    /// payload's own size when it is larger.
    pub(super) fn read(key: Key) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut size = FIRST_READ;
        loop {
            let mut buf = zeroize::Zeroizing::new(vec![0u8; size]);
            match key.read(&mut *buf) {
                Ok(n) if n <= size => {
                    buf.truncate(n);
                    return Some(buf);
                }
                Ok(n) if size == FIRST_READ && n <= MAX_PAYLOAD => size = n,
                Ok(_) => return None,
                Err(e) => {
                    note("read", e);
                    return None;
                }
            }
        }
    }

    /// Creates the key `desc` in `ring` holding `data`, private to the user, expiring after
    /// `ttl` seconds, in place of any older key of that name. The kernel resets a `user` key's
    /// expiry when its payload is updated, so no key is ever updated: each is made in this
    /// process's own keyring (gone with the process), given its timeout there, then linked into
    /// `ring` (which displaces the older key) and given its permissions. A token is thus never
    /// in the user keyring without its timeout, even if the process dies half-way.
    pub(super) fn put(ring: KeyRing, desc: &str, data: &[u8], ttl: usize) -> Option<Key> {
        let step = || -> Result<Key, KeyError> {
            let own = KeyRing::from_special_id(KeyRingIdentifier::Process, true)?;
            let key = own.add_key(desc, data)?;
            let placed = key
                .set_timeout(ttl)
                .and_then(|()| ring.link_key(key))
                .and_then(|()| key.set_perms(perms()));
            let _ = own.unlink_key(key);
            if placed.is_err() {
                let _ = key.invalidate();
            }
            placed.map(|()| key)
        };
        match step() {
            Ok(k) => Some(k),
            Err(e) => {
                note("write", e);
                None
            }
        }
    }

    /// Invalidates the key `desc`, if there is one (the kernel frees it at once).
    pub(super) fn invalidate(ring: KeyRing, desc: &str) {
        if let Some(key) = find(ring, desc)
            && let Err(e) = key.invalidate()
        {
            note("invalidate", e);
        }
    }

    /// Extends a generation key's life (it must outlive the key it tags).
    pub(super) fn keep(key: Key) {
        if let Err(e) = key.set_timeout(GEN_TTL) {
            note("timeout", e);
        }
    }

    /// A fresh random generation value.
    pub(super) fn fresh_generation() -> Option<String> {
        let mut raw = [0u8; 16];
        crate::error::random_fill(&mut raw).ok()?;
        Some(crate::store::crypto::hex(&raw))
    }

    /// Sets the generation key of `gen_desc` to a fresh value.
    pub(super) fn bump(ring: KeyRing, gen_desc: &str) -> Option<String> {
        let value = fresh_generation()?;
        put(ring, gen_desc, value.as_bytes(), GEN_TTL).map(|_| value)
    }

    pub(super) const GEN_MAX: usize = 64;
}

/// Set by [`serve`] on a miss: this process asked for a token the cache could have served, so
/// its keyring reads fill the cache. Other commands (`login`, `status`, `doctor`, …) never
/// fill it: a token is cached only after the keyring handed it to `token` (or `exec`, `usage`,
/// `models`), so a keyring locked before any of them ran answers them "locked" at once.
static FILL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The current generation of `id` (creating one when there is none): taken before a Secret
/// Service read, handed to [`fill`] after it.
pub(crate) fn ticket(id: Option<Identity>) -> Option<Ticket> {
    if !FILL.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let id = id.filter(|id| id.cacheable)?;
    #[cfg(target_os = "linux")]
    {
        let ring = sys::ring()?;
        let current = sys::find(ring, &id.gen_desc).and_then(|key| {
            let value = sys::read(key)?;
            let text = std::str::from_utf8(&value).ok()?;
            (!text.is_empty() && text.len() <= sys::GEN_MAX).then(|| {
                sys::keep(key);
                text.to_owned()
            })
        });
        let generation = match current {
            Some(g) => g,
            None => sys::bump(ring, &id.gen_desc)?,
        };
        Some(Ticket { id, generation })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = id;
        None
    }
}

/// Caches what `token` needs of `cred`, read from the Secret Service under `ticket`, for no
/// longer than the access token's remaining life (and [`MAX_TTL`]).
pub(crate) fn fill(ticket: Option<Ticket>, cred: &Credential) {
    let Some(ticket) = ticket else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        // The kernel's timeout runs on the real clock.
        let left = cred.expires_at - crate::clock::real_now_unix_ms().div_euclid(1000);
        if left <= 0 {
            return;
        }
        let Some(data) = payload(&ticket, cred) else {
            return;
        };
        let Some(ring) = sys::ring() else {
            return;
        };
        let ttl = usize::try_from(left.min(MAX_TTL)).unwrap_or(1);
        if sys::put(ring, &ticket.id.desc, data.as_bytes(), ttl).is_some() {
            tracing::debug!("kernel keyring cache: filled for {ttl} s");
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (ticket, cred);
    }
}

/// Called around every write and delete of the entry: no cached copy made before this call is
/// ever served again (a new generation), and the cached key is freed.
pub(crate) fn invalidate(id: Option<Identity>) {
    let Some(id) = id else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        let Some(ring) = sys::ring() else {
            return;
        };
        if sys::bump(ring, &id.gen_desc).is_none() {
            // Cannot change the generation: remove it, so that no cached copy matches one
            // (a lookup without a generation key misses), and take the cached copy away.
            tracing::debug!("kernel keyring cache: the generation could not be changed");
            sys::invalidate(ring, &id.gen_desc);
        }
        sys::invalidate(ring, &id.desc);
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = id;
    }
}

/// The cached credential of `id` when its access token is valid for more than `min_valid`
/// seconds and it was cached under the current generation. Its refresh token is empty.
pub(crate) fn lookup(id: &Identity, min_valid: i64) -> Option<Credential> {
    if !id.cacheable {
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        let ring = sys::ring()?;
        let data = sys::read(sys::find(ring, &id.desc)?)?;
        let cached = parse(&data)?;
        if !crate::secret::ct_eq(cached.id.as_bytes(), id.digest.as_bytes()) {
            return None;
        }
        let generation = sys::read(sys::find(ring, &id.gen_desc)?)?;
        if generation.as_slice() != cached.generation.as_bytes() {
            tracing::debug!("kernel keyring cache: written under an older generation");
            return None;
        }
        if cached.expires_at - crate::clock::now_unix() <= min_valid {
            return None;
        }
        let mut cred = Credential::new(
            crate::secret::SecretString::from(cached.token),
            crate::secret::SecretString::default(),
            cached.expires_at,
        );
        cred.token_type = cached.token_type.to_owned();
        cred.region = cached.region.to_owned();
        Some(cred)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (id, min_valid);
        None
    }
}

/// The cached credential of `id` for a process that asks for a token to hand out (`token`,
/// `exec`, `usage`, `models`: [`Vault::cached_token`](crate::store::Vault)); a miss makes this
/// process's Secret Service reads fill the cache. Its refresh token is empty.
pub(crate) fn serve(id: Option<Identity>, min_valid: i64) -> Option<Credential> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let id = id?;
    let cred = lookup(&id, min_valid);
    if cred.is_none() {
        FILL.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    cred
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    fn sample_ticket() -> Ticket {
        Ticket {
            id: Identity::new("kimi-vault", "work", "unix:path=/run/user/1/bus").unwrap(),
            generation: "00ff".into(),
        }
    }

    #[test]
    fn a_payload_reads_back_and_holds_no_refresh_token() {
        let mut cred = Credential::new(
            SecretString::from("at-0123456789"),
            SecretString::from("rt-CANARY-0123456789"),
            1_900_000_000,
        );
        cred.region = "cn".into();
        cred.proxy_client_key = Some(SecretString::from("ck-CANARY-0123456789"));
        let t = sample_ticket();
        let data = payload(&t, &cred).unwrap();
        assert!(!data.contains("rt-CANARY"), "never the refresh token");
        assert!(!data.contains("ck-CANARY"), "never the client key");
        let p = parse(data.as_bytes()).unwrap();
        assert_eq!(p.token, "at-0123456789");
        assert_eq!(p.generation, "00ff");
        assert_eq!(p.expires_at, 1_900_000_000);
        assert_eq!(p.region, "cn");
        assert_eq!(p.token_type, "Bearer");
        assert_eq!(p.id, t.id.digest);
    }

    #[test]
    fn what_is_not_cached_and_what_does_not_parse() {
        let t = sample_ticket();
        let mut cred = Credential::new(SecretString::from("a\nb"), SecretString::default(), 5);
        assert!(payload(&t, &cred).is_none(), "a line break in the token");
        cred.access_token = SecretString::from("ok");
        cred.needs_login = true;
        assert!(payload(&t, &cred).is_none(), "needs a login");
        for bad in [
            "",
            "-",
            MAGIC,
            "kimi-vault kernel cache v0\nid x",
            &format!("{MAGIC}\nid abc\ngen 1\nexp 5\ntype B\nregion \ntoken t"),
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    /// The generation protocol against the real kernel keyring: a reader whose Secret Service
    /// read is older than a write may fill the cache, but is never served. (Where keyctl is
    /// refused there is nothing to check: the integration tests check that case.)
    #[cfg(target_os = "linux")]
    #[test]
    #[allow(clippy::print_stderr, reason = "a test saying what it could not check")]
    fn a_read_older_than_a_write_is_cached_but_never_served() {
        let bus = format!("test-bus-{}", std::process::id());
        let id = || Identity::new("kimi-vault-unit-test", "race", &bus);
        if sys::ring().is_none() {
            eprintln!("keyctl is refused here: the generation protocol was not exercised");
            return;
        }
        FILL.store(true, std::sync::atomic::Ordering::Relaxed);
        let cred = Credential::new(
            SecretString::from("at-race-0123456789"),
            SecretString::from("rt-CANARY-0123456789"),
            crate::clock::now_unix() + 3600,
        );
        // In order: read, fill, hit (and `min_valid` is respected).
        fill(ticket(id()), &cred);
        let hit = lookup(&id().unwrap(), 60).expect("a hit");
        assert_eq!(hit.access_token.expose(), "at-race-0123456789");
        assert!(hit.refresh_token.is_empty());
        assert!(
            lookup(&id().unwrap(), 7200).is_none(),
            "not valid for that long"
        );
        // Interleaved: the reader's ticket, then a write, then the reader's fill.
        let stale = ticket(id());
        invalidate(id());
        fill(stale, &cred);
        assert!(
            lookup(&id().unwrap(), 0).is_none(),
            "a read older than a write was served"
        );
        // An expired token is not cached at all.
        let mut old = cred.clone();
        old.expires_at = crate::clock::now_unix() - 1;
        fill(ticket(id()), &old);
        assert!(lookup(&id().unwrap(), 0).is_none());
        // A token longer than the first read's buffer.
        let long = "at-".repeat(1500);
        let mut big = cred.clone();
        big.access_token = SecretString::from(long.as_str());
        fill(ticket(id()), &big);
        let hit = lookup(&id().unwrap(), 0).expect("a long token is served");
        assert_eq!(hit.access_token.expose(), long);
        invalidate(id());
    }

    #[test]
    fn identities_differ_by_bus_service_and_profile() {
        let a = Identity::new("kimi-vault", "work", "unix:path=/a").unwrap();
        let b = Identity::new("kimi-vault", "work", "unix:path=/b").unwrap();
        let c = Identity::new("kimi-vault", "home", "unix:path=/a").unwrap();
        assert_ne!(a.desc, b.desc);
        assert_ne!(a.desc, c.desc);
        assert!(a.desc.starts_with("kimi-vault:v1:work:"));
        // The generation is shared by every bus (a write on one invalidates copies made on
        // another, or with no bus address at all); without a bus nothing is cached.
        assert_eq!(a.gen_desc, b.gen_desc);
        assert_ne!(a.gen_desc, c.gen_desc);
        let busless = Identity::new("kimi-vault", "work", "").unwrap();
        assert_eq!(busless.gen_desc, a.gen_desc);
        assert!(!busless.cacheable && a.cacheable);
        assert!(lookup(&busless, 0).is_none());
        let other = Identity::new("x", "we:ird\nname", "unix:path=/a").unwrap();
        assert!(other.desc.starts_with("kimi-vault:v1:-:"));
    }
}
