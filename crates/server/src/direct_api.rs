//! `/MessagingAPI/dirmsg/…`: the Direct Messaging API for edge systems
//! (the MedAllies-style contract of DESIGN.md's seed 003), in front of the
//! engine's [`Hisp`]. Edges authenticate with HTTP Basic (`medrelay direct
//! edge add`); each is rate limited on its own; errors use the seed's codes
//! with a `result` that says what was wrong.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_direct::Status;
use medrelay_engine::direct::{DirectError, Hisp};
use medrelay_store::DirectEdge;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::oauth::RateLimiter;

/// The HISP and its per-edge limit.
#[derive(Clone)]
pub struct DirectState {
    pub hisp: Arc<Hisp>,
    pub limiter: RateLimiter,
}

impl DirectState {
    pub fn new(hisp: Arc<Hisp>) -> DirectState {
        let cfg = hisp.config();
        let limiter = RateLimiter::new(f64::from(cfg.rate_per_second.max(1)), cfg.burst.max(1));
        DirectState { hisp, limiter }
    }
}

/// A refused call: the seed's status codes, a JSON body in the shape of the
/// send answer with `status: "FAILED"` and the reason in `result`.
pub struct DirectReply {
    status: StatusCode,
    message_id: String,
    result: String,
    retry_after: Option<u64>,
}

impl DirectReply {
    fn from_error(e: DirectError, message_id: &str) -> DirectReply {
        let (status, result) = match e {
            DirectError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            DirectError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            DirectError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            DirectError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            DirectError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            DirectError::Internal(m) => {
                tracing::error!(error = %m, "direct: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "There was an issue on our end. Try your request again.".to_string(),
                )
            }
        };
        DirectReply {
            status,
            message_id: message_id.to_string(),
            result,
            retry_after: None,
        }
    }
}

/// A body that could not be read (too large, cut off).
impl From<BytesRejection> for DirectReply {
    fn from(e: BytesRejection) -> Self {
        DirectReply {
            status: e.status(),
            message_id: String::new(),
            result: e.body_text(),
            retry_after: None,
        }
    }
}

impl IntoResponse for DirectReply {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({
                "messageId": self.message_id,
                "status": "FAILED",
                "result": self.result,
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"medrelay Direct\""),
            );
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The Direct state, or 404 when this server has no HISP configured.
fn hisp(state: &AppState) -> Result<DirectState, DirectReply> {
    state.direct.clone().ok_or_else(|| {
        DirectReply::from_error(
            DirectError::NotFound("Direct messaging is not enabled on this server".into()),
            "",
        )
    })
}

/// Maintenance first (503 whoever asks), then the edge, then its rate.
async fn edge(
    d: &DirectState,
    headers: &HeaderMap,
    message_id: &str,
) -> Result<DirectEdge, DirectReply> {
    if d.hisp.config().maintenance {
        return Err(DirectReply::from_error(
            DirectError::Unavailable("The API is offline for maintenance. Try again later.".into()),
            message_id,
        ));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let edge = d
        .hisp
        .authenticate(auth)
        .await
        .map_err(|e| DirectReply::from_error(e, message_id))?;
    if let Err(limited) = d.limiter.check(&edge.name) {
        return Err(DirectReply {
            status: StatusCode::TOO_MANY_REQUESTS,
            message_id: message_id.to_string(),
            result: "You've made too many API requests in a short time.".into(),
            retry_after: Some(limited.retry_after_secs()),
        });
    }
    Ok(edge)
}

/// The messageId of a body, if it has one, for error answers.
fn message_id_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("messageId")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// `POST /MessagingAPI/dirmsg/send_ccda`.
pub async fn send_ccda(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, DirectReply> {
    let d = hisp(&state)?;
    let body = body?;
    let message_id = message_id_of(&body);
    let edge = edge(&d, &headers, &message_id).await?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(DirectReply::from_error(
            DirectError::BadRequest("Content-Type: send the message as application/json".into()),
            &message_id,
        ));
    }
    let answer = d
        .hisp
        .submit(&edge, &body)
        .await
        .map_err(|e| DirectReply::from_error(e, &message_id))?;
    Ok((StatusCode::OK, Json(answer)).into_response())
}

#[derive(Deserialize)]
pub struct StatusQuery {
    #[serde(rename = "xdMsgId")]
    xd_msg_id: Option<String>,
    #[serde(rename = "fromDirectAddress")]
    from_direct_address: Option<String>,
}

/// `GET /MessagingAPI/dirmsg/status?xdMsgId=…&fromDirectAddress=…`: the
/// seed's object for a single recipient, an array of them for several.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DirectReply> {
    let d = hisp(&state)?;
    let Query(q) =
        query.map_err(|e| DirectReply::from_error(DirectError::BadRequest(e.body_text()), ""))?;
    let id = q.xd_msg_id.unwrap_or_default();
    let edge = edge(&d, &headers, &id).await?;
    let list = d
        .hisp
        .status(&edge, &id, q.from_direct_address.as_deref().unwrap_or(""))
        .await
        .map_err(|e| DirectReply::from_error(e, &id))?;
    Ok(if list.len() == 1 {
        Json(json!(list[0])).into_response()
    } else {
        Json(json!(list)).into_response()
    })
}

/// A receiving edge's disposition of a message it got: the seed's
/// notification fields plus the two addresses that name the delivery.
#[derive(Deserialize)]
pub struct Disposition {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "Description", default)]
    description: Option<String>,
    #[serde(rename = "Disposition", default)]
    disposition: Option<String>,
    #[serde(rename = "fromDirectAddress")]
    from_direct_address: String,
    #[serde(rename = "toDirectAddress")]
    to_direct_address: String,
}

/// `POST /MessagingAPI/dirmsg/notification`: a read receipt (`displayed`)
/// or a failure (`Status: "Error"`) from the edge that received a message,
/// or the upstream HISP's disposition (`dispatched` too) for the recipients
/// handed to it.
pub async fn notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, DirectReply> {
    let d = hisp(&state)?;
    let body = body?;
    let message_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("Id").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_default();
    let edge = edge(&d, &headers, &message_id).await?;
    let n: Disposition = serde_json::from_slice(&body).map_err(|e| {
        DirectReply::from_error(
            DirectError::BadRequest(format!(
                "body: a notification needs Id, fromDirectAddress and toDirectAddress: {e}"
            )),
            &message_id,
        )
    })?;
    let text = |s: &Option<String>| s.as_deref().unwrap_or("").to_ascii_lowercase();
    let what = text(&n.disposition)
        .rsplit(';')
        .next()
        .map(str::to_string)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| text(&n.description));
    let status = if text(&n.status) == "error" || what == "failed" {
        Status::Failed
    } else {
        match what.as_str() {
            "displayed" => Status::Displayed,
            "dispatched" => Status::Dispatched,
            _ => {
                return Err(DirectReply::from_error(
                    DirectError::BadRequest(format!(
                        "Disposition: {what:?} is not a final disposition (dispatched, displayed or failed)"
                    )),
                    &n.id,
                ));
            }
        }
    };
    d.hisp
        .receipt(
            &edge,
            &n.from_direct_address,
            &n.id,
            &n.to_direct_address,
            status,
            n.description
                .as_deref()
                .filter(|_| status == Status::Failed),
        )
        .await
        .map_err(|e| DirectReply::from_error(e, &n.id))?;
    Ok((
        StatusCode::OK,
        Json(json!({"messageId": n.id, "status": "SUCCESS", "result": "notification accepted"})),
    )
        .into_response())
}
