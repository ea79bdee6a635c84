//! `/api/v1/direct/…`: the dashboard's (and scripts') side of Direct
//! messaging, for admins: sending edges (their secret shown once) and Direct
//! addresses with their delivery and notification endpoints. The same
//! operations as `medrelay direct edge|address`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use medrelay_store::{DirectAddress, Endpoint};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AdminAuth;
use crate::error::ApiError;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        message: message.into(),
        details: vec![],
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeBody {
    name: String,
}

/// `GET /api/v1/direct/edges`
pub async fn list_edges(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let edges = state.store.list_direct_edges(&admin.org).await?;
    let items: Vec<Value> = edges
        .iter()
        .map(|e| json!({"name": e.name, "created_at": e.created_at}))
        .collect();
    Ok(Json(json!({ "edges": items })))
}

/// `POST /api/v1/direct/edges {"name"}` → `201 {"name", "secret"}`; the
/// secret (the edge's Basic password) is shown this once.
pub async fn create_edge(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    body: Result<Json<EdgeBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    if !medrelay_engine::config::valid_name(&b.name) {
        return Err(invalid("name must be 1-64 characters of a-z, 0-9 and '-'"));
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness for a secret: {e}")))?;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = medrelay_store::oauth::hash_secret(secret.clone()).await?;
    let edge = state
        .store
        .create_direct_edge(&b.name, &admin.org, &hash)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": edge.name, "secret": secret})),
    ))
}

/// `DELETE /api/v1/direct/edges/{name}`
pub async fn delete_edge(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_direct_edge(&admin.org, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    url: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    address: String,
    #[serde(default)]
    edge: Option<String>,
    #[serde(default)]
    endpoint: Option<EndpointBody>,
    #[serde(default)]
    notify: Option<EndpointBody>,
}

fn endpoint(e: Option<EndpointBody>, field: &str) -> Result<Option<Endpoint>, ApiError> {
    let Some(e) = e else { return Ok(None) };
    let lower = e.url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(invalid(format!(
            "{field}.url must be an http:// or https:// URL"
        )));
    }
    Ok(Some(Endpoint {
        url: e.url,
        user: e.user,
        password: e.password,
    }))
}

/// An address as the API shows it: endpoints without their passwords.
fn view(a: &DirectAddress) -> Value {
    let ep = |e: &Option<Endpoint>| {
        e.as_ref()
            .map(|e| json!({"url": e.url, "user": e.user, "password_set": e.password.is_some()}))
    };
    json!({
        "address": a.address,
        "edge": a.edge,
        "endpoint": ep(&a.endpoint),
        "notify": ep(&a.notify),
        "created_at": a.created_at,
    })
}

/// `GET /api/v1/direct/addresses`
pub async fn list_addresses(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let list = state.store.list_direct_addresses(&admin.org).await?;
    Ok(Json(
        json!({ "addresses": list.iter().map(view).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/v1/direct/addresses` registers or replaces an address.
pub async fn put_address(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    body: Result<Json<AddressBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    if !medrelay_direct::is_direct_address(&b.address) {
        return Err(invalid(
            "address must be a Direct address like someone@clinic.example",
        ));
    }
    let saved = state
        .store
        .put_direct_address(DirectAddress {
            address: b.address,
            org: admin.org.clone(),
            edge: b.edge,
            endpoint: endpoint(b.endpoint, "endpoint")?,
            notify: endpoint(b.notify, "notify")?,
            created_at: 0,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view(&saved))))
}

/// `DELETE /api/v1/direct/addresses/{address}`
pub async fn delete_address(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_direct_address(&admin.org, &address)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
