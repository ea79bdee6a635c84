//! Bearer tokens for devices and administrators.
//!
//! A token is 32 random bytes, Base64url, behind a prefix that says what it is
//! (`mrd_` device, `mra_` admin). Only its SHA-256 is stored: the tokens are
//! random and long, so a fast hash is as safe as a slow one here, and it keeps
//! authentication off the CPU budget of every request (argon2 is for passwords).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medrelay_store::ApiToken;
use medrelay_worklist::Device;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

const DEVICE_PREFIX: &str = "mrd_";
const ADMIN_PREFIX: &str = "mra_";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Device,
    Admin,
}

/// A new token and the hash to store. The token is shown once and never kept.
pub struct NewToken {
    pub token: String,
    pub hash: String,
}

pub fn generate(kind: TokenKind) -> Result<NewToken, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let prefix = match kind {
        TokenKind::Device => DEVICE_PREFIX,
        TokenKind::Admin => ADMIN_PREFIX,
    };
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    Ok(NewToken { token, hash })
}

/// SHA-256 of the whole token, hex.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value =
        parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization: Bearer token",
            ))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("expected a Bearer token"));
    }
    Ok(token.trim())
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    Device(Device),
    Admin(ApiToken),
}

impl Caller {
    pub fn org(&self) -> &str {
        match self {
            Caller::Device(d) => &d.org,
            Caller::Admin(t) => &t.org,
        }
    }
}

async fn resolve(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let token = bearer(parts)?;
    let h = hash(token);
    if token.starts_with(DEVICE_PREFIX) {
        let device = state
            .store
            .device_by_token_hash(&h)
            .await?
            .ok_or(ApiError::Unauthorized("unknown or revoked token"))?;
        // Last seen is advisory; a failed write must not fail the request.
        let _ = state
            .store
            .touch_device(&device.id, medrelay_engine::clock::now_ms())
            .await;
        Ok(Caller::Device(device))
    } else if token.starts_with(ADMIN_PREFIX) {
        let admin = state
            .store
            .api_token_by_hash(&h)
            .await?
            .ok_or(ApiError::Unauthorized("unknown or revoked token"))?;
        let _ = state
            .store
            .touch_api_token(&admin.id, medrelay_engine::clock::now_ms())
            .await;
        Ok(Caller::Admin(admin))
    } else {
        Err(ApiError::Unauthorized("unknown or revoked token"))
    }
}

/// A request authenticated by a device token.
pub struct DeviceAuth(pub Device);

/// A request authenticated by an admin token.
pub struct AdminAuth(pub ApiToken);

/// A request authenticated by either.
pub struct AnyAuth(pub Caller);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match resolve(state, parts).await? {
            Caller::Device(d) => Ok(DeviceAuth(d)),
            Caller::Admin(_) => Err(ApiError::Forbidden("this endpoint is for devices")),
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match resolve(state, parts).await? {
            Caller::Admin(t) if t.role == "admin" => Ok(AdminAuth(t)),
            Caller::Admin(_) => Err(ApiError::Forbidden("this endpoint needs the admin role")),
            Caller::Device(_) => Err(ApiError::Forbidden("this endpoint needs an admin token")),
        }
    }
}

impl FromRequestParts<AppState> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve(state, parts).await.map(AnyAuth)
    }
}

/// Compares digests, so the time taken says nothing about the secret.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = generate(TokenKind::Device).unwrap();
        let b = generate(TokenKind::Device).unwrap();
        assert!(a.token.starts_with("mrd_"));
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, hash(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(
            generate(TokenKind::Admin)
                .unwrap()
                .token
                .starts_with("mra_")
        );
    }
}
