//! `POST /api/v1/integrations/{name}/appointments`: an EHR pushes appointments
//! as JSON (Join, ZipLaneRx). Who may push: a client holding an OAuth 2.0 token
//! medrelay issued (`/oauth/token`) with the integration's scope, or the API key
//! or Basic credentials configured for the integration. Every accepted body is
//! stored raw and committed with its worklist changes before the 201.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use medrelay_engine::Pushed;
use medrelay_engine::json_intake::IntakeError;
use serde_json::json;

use crate::AppState;
use crate::auth::same_secret;
use crate::error::ApiError;
use crate::oauth::{OAuthBearer, RateLimiter};

/// One push endpoint: the engine's intake and this endpoint's per-client limit.
#[derive(Clone)]
pub struct PushEndpoint {
    pub pushed: Pushed,
    pub limiter: RateLimiter,
}

/// The push endpoints by integration name.
pub fn endpoints(pushes: HashMap<String, Pushed>) -> Arc<HashMap<String, PushEndpoint>> {
    Arc::new(
        pushes
            .into_iter()
            .map(|(name, pushed)| {
                let limiter = RateLimiter::new(
                    f64::from(pushed.config.rate_per_second.max(1)),
                    pushed.config.burst.max(1),
                );
                (name, PushEndpoint { pushed, limiter })
            })
            .collect(),
    )
}

pub async fn push_appointments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let endpoint = state.pushes.get(&name).cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "no integration {name:?} accepts pushed appointments"
        ))
    })?;
    let (mut parts, body) = request.into_parts();
    let client = authenticate(&mut parts, &state, &endpoint).await?;
    endpoint.limiter.check(&client)?;
    let json_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
    if !json_type {
        return Err(ApiError::UnsupportedMediaType(
            "send the appointments as Content-Type: application/json".into(),
        ));
    }
    let limit = endpoint.pushed.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!(
            "the body is larger than {limit} bytes (inbound.push.max_body_bytes)"
        ))
    })?;
    let peer = format!("http client {client}");
    match endpoint.pushed.intake.submit(bytes.to_vec(), peer).await {
        Ok(outcome) => {
            let status = if outcome.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((
                status,
                Json(json!({
                    "message_id": outcome.message_id.to_string(),
                    "duplicate": outcome.duplicate,
                    "appointments": outcome.appointments,
                })),
            )
                .into_response())
        }
        Err(IntakeError::BadJson(m)) => Err(ApiError::BadRequest(m)),
        Err(IntakeError::Invalid(m)) => Err(ApiError::Invalid {
            message: m,
            details: Vec::new(),
        }),
        Err(IntakeError::Unavailable(m)) => Err(ApiError::Internal(format!(
            "the appointments could not be stored ({m}); please retry"
        ))),
    }
}

/// Who is pushing: an OAuth 2.0 client of the integration's organisation with
/// its scope, or the configured API key or Basic credentials.
async fn authenticate(
    parts: &mut axum::http::request::Parts,
    state: &AppState,
    endpoint: &PushEndpoint,
) -> Result<String, ApiError> {
    let cfg = &endpoint.pushed.config;
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(value) = &auth {
        let scheme = value.split(' ').next().unwrap_or("").to_ascii_lowercase();
        if scheme == "bearer" {
            let bearer = OAuthBearer::from_request_parts(parts, state).await?;
            if bearer.org() != endpoint.pushed.intake.org() {
                return Err(ApiError::InvalidToken("unknown or revoked access token"));
            }
            bearer.require_scope(&cfg.scope)?;
            return Ok(bearer.client_id().to_string());
        }
        if scheme == "basic"
            && let Some(expected) = &cfg.basic
        {
            let given = value
                .get(6..)
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok());
            let wanted = format!("{}:{}", expected.user, expected.password);
            if given.as_deref().is_some_and(|g| same_secret(g, &wanted)) {
                return Ok(format!("basic:{}", expected.user));
            }
            return Err(ApiError::Unauthorized("wrong user or password"));
        }
    }
    if let Some(key) = &cfg.api_key
        && let Some(given) = header_text(&parts.headers, &cfg.header)
    {
        if same_secret(&given, key) {
            return Ok("api-key".into());
        }
        return Err(ApiError::Unauthorized("wrong API key"));
    }
    Err(ApiError::Unauthorized(
        "authenticate with a bearer token from /oauth/token (or the configured API key or Basic credentials)",
    ))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
