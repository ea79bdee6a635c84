//! `/fhir/R4`: the worklist's records as FHIR R4 resources. The first part of
//! the FHIR API: the CapabilityStatement, and Patient read and search (paged).
//! Access needs a bearer token from `/oauth/token` with a SMART v1 system scope
//! (`system/Patient.read`, `system/Patient.*`, `system/*.read` or `system/*.*`).
//! Every error is an OperationOutcome.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_fhir::convert;
use medrelay_fhir::resources::{Bundle, Issue, OperationOutcome, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::oauth::OAuthBearer;

/// What the server supports for one resource type.
pub struct Capability {
    pub resource: &'static str,
    pub interactions: &'static [&'static str],
    /// Search parameters: name and FHIR search type.
    pub search: &'static [(&'static str, &'static str)],
}

/// What this server supports; the CapabilityStatement is generated from it.
pub const CAPABILITIES: &[Capability] = &[Capability {
    resource: "Patient",
    interactions: &["read", "search-type"],
    search: &[("_count", "number"), ("_offset", "number")],
}];

const FHIR_JSON: &str = "application/fhir+json";
/// Largest page a search returns.
const MAX_COUNT: usize = 500;

/// An error as FHIR wants it: an OperationOutcome with the right status.
pub struct FhirError(StatusCode, OperationOutcome);

impl FhirError {
    fn new(status: StatusCode, code: &str, text: impl Into<String>) -> Self {
        FhirError(
            status,
            OperationOutcome::new(vec![Issue::error(code, "", text)]),
        )
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        fhir_json(self.0, &self.1)
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        let response = e.into_response();
        let status = response.status();
        let code = match status {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            s if s.is_server_error() => "exception",
            _ => "invalid",
        };
        FhirError::new(status, code, text)
    }
}

fn fhir_json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], Json(body)).into_response()
}

/// The caller's token, with a SMART system scope that covers reading `resource`.
fn require_read(
    bearer: Result<OAuthBearer, ApiError>,
    resource: &str,
) -> Result<OAuthBearer, FhirError> {
    let bearer = bearer?;
    let allowed = [
        format!("system/{resource}.read"),
        format!("system/{resource}.*"),
        "system/*.read".into(),
        "system/*.*".into(),
    ];
    if allowed.iter().any(|s| bearer.has_scope(s)) {
        Ok(bearer)
    } else {
        Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("reading {resource} needs the scope system/{resource}.read"),
        ))
    }
}

/// `GET /fhir/R4/metadata`: no token needed (the spec lets clients discover
/// what the server does and how to authenticate).
pub async fn metadata() -> Response {
    let resources: Vec<Value> = CAPABILITIES
        .iter()
        .map(|c| {
            json!({
                "type": c.resource,
                "interaction": c.interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "searchParam": c.search.iter().map(|(name, t)| json!({"name": name, "type": t})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "kind": "instance",
        "software": {"name": "medrelay", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "medrelay FHIR R4 API"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}],
                "description": "OAuth 2.0 client credentials from /oauth/token with SMART v1 system scopes"
            },
            "resource": resources,
        }],
    });
    fhir_json(StatusCode::OK, &statement)
}

/// `GET /fhir/R4/Patient/{id}`.
pub async fn read_patient(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = require_read(bearer, "Patient")?;
    let patient = state
        .store
        .get_patient(bearer.org(), &id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            FhirError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("Patient/{id} is not known"),
            )
        })?;
    Ok(fhir_json(StatusCode::OK, &convert::patient(&patient)))
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(rename = "_count")]
    count: Option<usize>,
    #[serde(rename = "_offset")]
    offset: Option<usize>,
}

/// `GET /fhir/R4/Patient[?_count=N]`: every patient of the caller's
/// organisation, a page at a time, with a `next` link while there are more.
pub async fn search_patients(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, FhirError> {
    let bearer = require_read(bearer, "Patient")?;
    let Query(q) =
        query.map_err(|e| FhirError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let count = q.count.unwrap_or(50).clamp(1, MAX_COUNT);
    let offset = q.offset.unwrap_or(0);
    let mut patients = state
        .store
        .list_patients(bearer.org(), count + 1, offset)
        .await
        .map_err(ApiError::from)?;
    let more = patients.len() > count;
    patients.truncate(count);
    let page = |offset: usize| format!("/fhir/R4/Patient?_count={count}&_offset={offset}");
    let next = more.then(|| page(offset + count));
    let entries = patients
        .iter()
        .map(|p| {
            (
                format!("Patient/{}", p.id),
                Resource::Patient(Box::new(convert::patient(p))),
            )
        })
        .collect();
    let mut bundle = Bundle::searchset(0, &page(offset), next.as_deref(), entries);
    // Counting every match would cost a scan per page; `total` is optional.
    bundle.total = None;
    Ok(fhir_json(StatusCode::OK, &bundle))
}
