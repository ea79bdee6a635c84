//! OAuth 2.0 client credentials (RFC 6749 §4.4): registered clients and the
//! access tokens issued to them.
//!
//! This part is backend-neutral: it makes the random identifiers and secrets,
//! hashes and verifies client secrets with argon2id, and checks scopes. The
//! backends store and find rows by hash only; no secret ever reaches them.
//!
//! - A **client id** is `mrc_` + 32 hex digits (128 random bits). It is not a
//!   secret.
//! - A **client secret** is 32 random bytes, Base64url without padding. It is
//!   shown once; the store keeps its argon2id PHC string (`$argon2id$v=19$…`,
//!   the crate's defaults: 19 MiB, 2 passes, 1 lane). Hashing and verifying run
//!   on tokio's blocking threads, at most [`MAX_CONCURRENT_HASHES`] at a time,
//!   never on the writer thread or an async worker: argon2 is slow by design.
//! - An **access token** is `mro_` + 32 random bytes, Base64url. The store keeps
//!   its SHA-256 (hex), like the device and admin tokens: a random 256-bit token
//!   needs no slow hash, and every authenticated request looks one up.

use std::fmt;
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::StoreError;
use crate::types::Millis;

/// Every client id starts with this.
pub const CLIENT_ID_PREFIX: &str = "mrc_";
/// Every access token starts with this.
pub const ACCESS_TOKEN_PREFIX: &str = "mro_";
/// Argon2 computations running at once (each holds 19 MiB for tens of ms); more
/// wait their turn, so a burst of token requests cannot exhaust memory or the
/// blocking thread pool.
pub const MAX_CONCURRENT_HASHES: usize = 4;

static HASHING: Semaphore = Semaphore::const_new(MAX_CONCURRENT_HASHES);

/// A registered OAuth 2.0 client. Its secret is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub id: String,
    pub org: String,
    /// A label to recognise the client by (not unique).
    pub name: String,
    /// The scopes the client may ask for, in registration order.
    pub scopes: Vec<String>,
    pub created_at: Millis,
    /// A disabled client gets no new tokens and its tokens are refused.
    pub disabled: bool,
}

impl OAuthClient {
    /// The scopes as the space-separated `scope` parameter of RFC 6749 §3.3.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// A client just registered, with its secret: shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewOAuthClient {
    pub client: OAuthClient,
    pub client_secret: String,
}

impl fmt::Debug for NewOAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewOAuthClient")
            .field("client", &self.client)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// What an access token grants, as stored (found by the token's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    pub client_id: String,
    /// The client's organisation: everything the token does is confined to it.
    pub org: String,
    /// The granted scopes.
    pub scopes: Vec<String>,
    pub created_at: Millis,
    /// From this instant (epoch ms) on the token is expired.
    pub expires_at: Millis,
}

impl OAuthToken {
    /// Whether the token is expired at `now` (epoch ms).
    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.expires_at
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The scopes as the space-separated `scope` parameter of RFC 6749 §3.3.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// An access token just issued: the token itself (shown once, never stored)
/// and what it grants.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedOAuthToken {
    pub access_token: String,
    pub token: OAuthToken,
}

impl fmt::Debug for IssuedOAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedOAuthToken")
            .field("access_token", &"<redacted>")
            .field("token", &self.token)
            .finish()
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, i.e. printable
/// ASCII without space, `"` and `\`.
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Splits a space-separated `scope` parameter into its scope tokens, in order,
/// without repeats. Empty text gives no scopes. `Err` names the first invalid
/// token.
pub fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    normalize_scopes(text.split(' ').filter(|s| !s.is_empty()))
}

/// Checks scope tokens and drops repeats, keeping the first occurrence.
pub fn normalize_scopes<I, S>(scopes: I) -> Result<Vec<String>, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for s in scopes {
        let s = s.as_ref();
        if !valid_scope_token(s) {
            return Err(format!(
                "{s:?} is not a valid scope (printable ASCII without space, '\"' or '\\')"
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// SHA-256 of the whole access token, lower-case hex: the key it is stored
/// under (the same hash as the device and admin tokens).
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    hex
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
    Ok(bytes)
}

pub(crate) fn new_client_id() -> Result<String, StoreError> {
    let bytes: [u8; 16] = random()?;
    let mut id = String::with_capacity(CLIENT_ID_PREFIX.len() + 32);
    id.push_str(CLIENT_ID_PREFIX);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

pub(crate) fn new_client_secret() -> Result<String, StoreError> {
    Ok(URL_SAFE_NO_PAD.encode(random::<32>()?))
}

pub(crate) fn new_access_token() -> Result<String, StoreError> {
    Ok(format!(
        "{ACCESS_TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random::<32>()?)
    ))
}

/// `ttl` in milliseconds, saturating.
pub(crate) fn ttl_millis(ttl: Duration) -> Millis {
    Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX)
}

/// Runs argon2 work on a blocking thread, at most [`MAX_CONCURRENT_HASHES`] at once.
async fn hashing<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _permit = HASHING.acquire().await.map_err(|_| StoreError::Closed)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Sqlite(format!("hashing task failed: {e}")))
}

/// The argon2id PHC string of `secret`, with a fresh random salt.
pub async fn hash_secret(secret: String) -> Result<String, StoreError> {
    let salt: [u8; 16] = random()?;
    hashing(move || {
        Argon2::default()
            .hash_password_with_salt(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Sqlite(format!("hashing the client secret: {e}")))
    })
    .await?
}

/// Whether `secret` matches the stored PHC string (the parameters come from
/// the string, so hashes made with other parameters keep working). A stored
/// string that does not parse matches nothing.
pub async fn verify_secret(secret: String, phc: String) -> Result<bool, StoreError> {
    hashing(move || {
        Argon2::default()
            .verify_password(secret.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(valid_scope_token("appointments:write"));
        assert!(valid_scope_token("a!#[]~"));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!valid_scope_token(bad), "{bad:?}");
        }
        assert_eq!(
            parse_scope(" a  b a c").unwrap(),
            vec!["a".to_string(), "b".into(), "c".into()]
        );
        assert_eq!(parse_scope("").unwrap(), Vec::<String>::new());
        assert!(
            parse_scope("a \"b\"")
                .unwrap_err()
                .contains("\"\\\"b\\\"\"")
        );
    }

    #[test]
    fn identifiers_and_secrets_are_random_and_well_formed() {
        let (a, b) = (new_client_id().unwrap(), new_client_id().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("mrc_") && a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        let s = new_client_secret().unwrap();
        assert_eq!(s.len(), 43);
        assert!(URL_SAFE_NO_PAD.decode(&s).unwrap().len() == 32);
        let t = new_access_token().unwrap();
        assert!(t.starts_with("mro_") && t.len() == 47);
        assert_ne!(t, new_access_token().unwrap());
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_hash_to_argon2id_and_verify() {
        let phc = hash_secret("s3cret".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_ne!(phc, hash_secret("s3cret".into()).await.unwrap(), "salted");
        assert!(verify_secret("s3cret".into(), phc.clone()).await.unwrap());
        assert!(!verify_secret("s3cret!".into(), phc).await.unwrap());
        assert!(
            !verify_secret("s3cret".into(), "garbage".into())
                .await
                .unwrap()
        );
    }
}
