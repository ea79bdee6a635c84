//! `/fhir/R4`: the worklist's records as FHIR R4 (4.0.1) resources.
//!
//! The same rows every other intake writes: a patient that arrived by HL7 is
//! `Patient/<id>`, an order is both `ServiceRequest/<id>` and
//! `Appointment/<id>` (one appointment row), a measurement is
//! `DiagnosticReport/<id>` with one `Observation/<id>-<n>` per value. What each
//! resource supports lives in one table ([`capability::CAPABILITIES`]): the
//! CapabilityStatement, the routes' 405s and the search parameter checks all
//! read it, so they cannot drift apart.
//!
//! Every request needs a bearer token from `/oauth/token` with a SMART v1
//! system scope (`system/Patient.read`, `system/*.write`, …), except
//! `GET /metadata`. Every error is an OperationOutcome.
//!
//! Where a request goes: [`patient`] (Patient), [`orders`] (ServiceRequest,
//! Appointment), [`results`] (Observation, DiagnosticReport, Device,
//! ImagingStudy); [`search`] turns query strings into store searches and
//! results into Bundles.

pub mod capability;
mod orders;
mod patient;
mod results;
mod search;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use medrelay_fhir::convert::Converter;
use medrelay_fhir::resources::{Issue, OperationOutcome};
use medrelay_fhir::search::Return;
use medrelay_store::{Millis, StoreError};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::oauth::OAuthBearer;

pub use capability::{CAPABILITIES, Capability};

pub(crate) const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// The FHIR routes, to be nested under `/fhir/R4`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(capability::metadata))
        .route(
            "/Patient",
            allowed("Patient", get(patient::search).post(patient::create)),
        )
        .route(
            "/Patient/{id}",
            allowed("Patient", get(patient::read).put(patient::update)),
        )
        .route(
            "/Patient/{id}/_history",
            allowed("Patient", get(patient::history)),
        )
        .route(
            "/Patient/{id}/_history/{vid}",
            allowed("Patient", get(patient::vread)),
        )
        .route(
            "/ServiceRequest",
            allowed(
                "ServiceRequest",
                get(orders::search_service_requests).post(orders::create_service_request),
            ),
        )
        .route(
            "/ServiceRequest/{id}",
            allowed(
                "ServiceRequest",
                get(orders::read_service_request).put(orders::update_service_request),
            ),
        )
        .route(
            "/Appointment",
            allowed(
                "Appointment",
                get(orders::search_appointments).post(orders::create_appointment),
            ),
        )
        .route(
            "/Appointment/{id}",
            allowed(
                "Appointment",
                get(orders::read_appointment).put(orders::update_appointment),
            ),
        )
        .route(
            "/Observation",
            allowed("Observation", get(results::search_observations)),
        )
        .route(
            "/Observation/{id}",
            allowed("Observation", get(results::read_observation)),
        )
        .route(
            "/DiagnosticReport",
            allowed("DiagnosticReport", get(results::search_reports)),
        )
        .route(
            "/DiagnosticReport/{id}",
            allowed("DiagnosticReport", get(results::read_report)),
        )
        .route("/Device", allowed("Device", get(results::search_devices)))
        .route("/Device/{id}", allowed("Device", get(results::read_device)))
        .route(
            "/ImagingStudy",
            allowed(
                "ImagingStudy",
                get(results::search_studies).post(results::create_study),
            ),
        )
        .route(
            "/ImagingStudy/{id}",
            allowed("ImagingStudy", get(results::read_study)),
        )
        .fallback(unknown_path)
        .layer(middleware::from_fn(negotiate))
}

/// A resource's routes, answering other methods with a 405 OperationOutcome
/// that says what the resource does support.
fn allowed(resource: &'static str, router: MethodRouter<AppState>) -> MethodRouter<AppState> {
    router.fallback(move |method: Method| async move {
        let supported = CAPABILITIES
            .iter()
            .find(|c| c.resource == resource)
            .map(|c| c.interactions.join(", "))
            .unwrap_or_default();
        FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{method} is not supported here; {resource} supports: {supported}"),
        )
    })
}

async fn unknown_path(method: Method, uri: axum::http::Uri) -> FhirError {
    let path = uri.path();
    let kind = path
        .trim_start_matches('/')
        .split('/')
        .find(|s| !s.is_empty())
        .unwrap_or("");
    if kind.starts_with(|c: char| c.is_ascii_uppercase())
        && !CAPABILITIES.iter().any(|c| c.resource == kind)
    {
        let known: Vec<&str> = CAPABILITIES.iter().map(|c| c.resource).collect();
        return FhirError::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!(
                "resource type {kind:?} is not served here; this server has {}",
                known.join(", ")
            ),
        );
    }
    FhirError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no FHIR interaction at {method} {path}"),
    )
}

/// Content negotiation for every FHIR request: only JSON is spoken.
/// `_format` and `Accept` that rule JSON out get 406; a body that is not
/// (FHIR) JSON gets 415.
async fn negotiate(request: Request, next: Next) -> Response {
    if let Some(format) = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "_format")
            .map(|(_, v)| v.into_owned())
    }) && !is_json_type(&format, true)
    {
        return FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            format!("_format={format} is not supported; this server speaks application/fhir+json"),
        )
        .into_response();
    }
    if let Some(accept) = header_text(request.headers(), header::ACCEPT)
        && !accept.split(',').any(|part| {
            let t = part.split(';').next().unwrap_or("").trim();
            t.is_empty() || t == "*/*" || t == "application/*" || is_json_type(t, false)
        })
    {
        return FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            format!("Accept: {accept} cannot be met; this server speaks application/fhir+json"),
        )
        .into_response();
    }
    if matches!(*request.method(), Method::POST | Method::PUT) {
        let content_type = header_text(request.headers(), header::CONTENT_TYPE);
        let ok = content_type
            .as_deref()
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| is_json_type(t.trim(), false));
        if !ok {
            return FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!(
                    "send the resource as Content-Type: application/fhir+json (got {})",
                    content_type.as_deref().unwrap_or("no Content-Type")
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

fn is_json_type(t: &str, format_param: bool) -> bool {
    let t = t.trim().to_ascii_lowercase();
    t == "application/fhir+json"
        || t == "application/json"
        || t == "application/json+fhir"
        || (format_param && t == "json")
}

pub(crate) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------- errors

/// An error as FHIR wants it: an OperationOutcome with the right status.
#[derive(Debug)]
pub struct FhirError(pub StatusCode, pub OperationOutcome);

impl FhirError {
    pub(crate) fn new(status: StatusCode, code: &str, text: impl Into<String>) -> Self {
        FhirError(
            status,
            OperationOutcome::new(vec![Issue::error(code, "", text)]),
        )
    }

    pub(crate) fn issues(status: StatusCode, issues: Vec<Issue>) -> Self {
        FhirError(status, OperationOutcome::new(issues))
    }

    pub(crate) fn not_found(resource: &str, id: &str) -> Self {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{resource}/{id} is not known"),
        )
    }

    pub(crate) fn bad_request(text: impl Into<String>) -> Self {
        FhirError::new(StatusCode::BAD_REQUEST, "invalid", text)
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut response = (
            self.0,
            [(header::CONTENT_TYPE, FHIR_JSON)],
            axum::Json(&self.1),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"medrelay\""),
            );
        }
        response
    }
}

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        let status = e.into_response().status();
        let code = match status {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
            s if s.is_server_error() => "exception",
            _ => "invalid",
        };
        FhirError::new(status, code, text)
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => FhirError::new(StatusCode::NOT_FOUND, "not-found", "not found"),
            StoreError::Conflict(m) => FhirError::new(StatusCode::CONFLICT, "duplicate", m),
            StoreError::VersionConflict { current } => FhirError::new(
                StatusCode::PRECONDITION_FAILED,
                "conflict",
                format!(
                    "If-Match names an old version; the current version is {current}: read it again and reapply the change"
                ),
            ),
            StoreError::Invalid(m) => {
                FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", m)
            }
            other => FhirError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                other.to_string(),
            ),
        }
    }
}

// ---------------------------------------------------------------- access

/// The caller's token, with a SMART v1 system scope that covers reading
/// (`write == false`) or writing `resource`.
pub(crate) fn authorize(
    bearer: Result<OAuthBearer, ApiError>,
    resource: &str,
    write: bool,
) -> Result<OAuthBearer, FhirError> {
    let bearer = bearer?;
    let access = if write { "write" } else { "read" };
    let allowed = [
        format!("system/{resource}.{access}"),
        format!("system/{resource}.*"),
        format!("system/*.{access}"),
        "system/*.*".into(),
    ];
    if allowed.iter().any(|s| bearer.has_scope(s)) {
        Ok(bearer)
    } else {
        Err(FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{access} access to {resource} needs the scope system/{resource}.{access} (or system/*.{access})"
            ),
        ))
    }
}

// ---------------------------------------------------------------- requests

/// The JSON body of a create or update, checked to be one `resource_type`.
pub(crate) fn json_body(
    body: Result<Bytes, BytesRejection>,
    resource_type: &str,
) -> Result<Value, FhirError> {
    json_body_raw(body, resource_type).map(|(value, _)| value)
}

/// [`json_body`] with the bytes as received, for what is kept as a message.
pub(crate) fn json_body_raw(
    body: Result<Bytes, BytesRejection>,
    resource_type: &str,
) -> Result<(Value, Bytes), FhirError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        FhirError::new(
            status,
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-costly"
            } else {
                "structure"
            },
            e.body_text(),
        )
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "structure",
            format!("the body is not JSON: {e}"),
        )
    })?;
    match value.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => Ok((value, bytes)),
        Some(t) => Err(FhirError::issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                "invalid",
                "resourceType",
                format!("this endpoint takes a {resource_type}, not a {t}"),
            )],
        )),
        None => Err(FhirError::issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                "required",
                "resourceType",
                format!("the body must be a FHIR {resource_type} with \"resourceType\""),
            )],
        )),
    }
}

/// Checks `value` against the FHIR rules medrelay enforces and parses it:
/// every problem comes back as an issue with its path, status 422.
pub(crate) fn parse_resource<T: serde::de::DeserializeOwned>(
    resource_type: &str,
    value: &Value,
) -> Result<T, FhirError> {
    medrelay_fhir::validate::parse(resource_type, value)
        .map_err(|invalid| FhirError(StatusCode::UNPROCESSABLE_ENTITY, invalid.0))
}

/// `If-Match: W/"3"` (or `"3"`, or `3`) as a version; absent is `None`.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, FhirError> {
    let Some(text) = header_text(headers, header::IF_MATCH) else {
        return Ok(None);
    };
    let t = text.trim();
    let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
    t.parse::<i64>().map(Some).map_err(|_| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("If-Match must be a version ETag like W/\"3\", not {text:?}"),
        )
    })
}

/// For an update: the body's `id` must be the URL's.
pub(crate) fn check_body_id(value: &Value, id: &str) -> Result<(), FhirError> {
    match value.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id => Ok(()),
        Some(body_id) => Err(FhirError::issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                "invalid",
                "id",
                format!("the body's id {body_id:?} is not the URL's {id:?}"),
            )],
        )),
        None => Err(FhirError::issues(
            StatusCode::BAD_REQUEST,
            vec![Issue::error(
                "required",
                "id",
                "an update must carry the resource's id (the URL's)",
            )],
        )),
    }
}

/// For a create: ids and meta are the server's to assign. R4 (http.html,
/// create) says a server SHALL ignore an id given on create, so it is dropped
/// rather than refused.
pub(crate) fn drop_id(value: &mut Value) {
    if let Value::Object(map) = value {
        map.remove("id");
        map.remove("meta");
    }
}

/// The `Prefer: return=` of the request.
pub(crate) fn prefer_return(headers: &HeaderMap) -> Return {
    medrelay_fhir::search::return_preference(
        header_text(headers, header::HeaderName::from_static("prefer")).as_deref(),
    )
}

/// The converter for model times without an offset: the server's local one.
/// Model times are wall-clock times of this machine's zone (`TZ`, else
/// `/etc/localtime`): the zone HL7 and GDT senders on site write theirs in.
pub(crate) fn converter() -> Converter {
    static LOCAL: std::sync::LazyLock<Converter> =
        std::sync::LazyLock::new(|| Converter::new(chrono::Local));
    LOCAL.clone()
}

/// `http://host/fhir/R4`, for `fullUrl`, links and `Location`.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = header_text(headers, header::HOST).unwrap_or_else(|| "localhost".into());
    let proto = header_text(
        headers,
        header::HeaderName::from_static("x-forwarded-proto"),
    )
    .filter(|p| p == "https" || p == "http")
    .unwrap_or_else(|| "http".into());
    format!("{proto}://{host}/fhir/R4")
}

// ---------------------------------------------------------------- responses

/// A resource with its version, as a read, create or update answers it.
pub(crate) struct Versioned<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    pub version: i64,
    pub updated_at: Millis,
}

/// Serializes `resource` with `meta.versionId`/`lastUpdated` set.
pub(crate) fn with_meta<T: serde::Serialize>(
    resource: &T,
    v: &Versioned<'_>,
) -> Result<Value, FhirError> {
    let mut value = serde_json::to_value(resource).map_err(|e| {
        FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("the resource could not be written: {e}"),
        )
    })?;
    if let Value::Object(map) = &mut value {
        let meta = medrelay_fhir::search::meta(v.version, v.updated_at);
        map.insert(
            "meta".into(),
            serde_json::to_value(meta).unwrap_or(Value::Null),
        );
    }
    Ok(value)
}

pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        axum::Json(body),
    )
        .into_response()
}

/// A read, create or update answer: ETag, Last-Modified, Location on create,
/// and the body per `Prefer: return`.
pub(crate) fn resource_response(
    status: StatusCode,
    body: Value,
    v: &Versioned<'_>,
    location_base: Option<&str>,
    prefer: Return,
) -> Response {
    let mut response = match prefer {
        Return::Representation => fhir_json(status, &body),
        Return::Minimal => status.into_response(),
        Return::OperationOutcome => {
            let outcome = OperationOutcome::new(vec![Issue {
                severity: "information".into(),
                code: "informational".into(),
                diagnostics: Some(format!(
                    "{}/{} version {}",
                    v.resource_type, v.id, v.version
                )),
                ..Issue::default()
            }]);
            fhir_json(
                status,
                &serde_json::to_value(outcome).unwrap_or(Value::Null),
            )
        }
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", v.version)) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(date) = http_date(v.updated_at)
        && let Ok(value) = HeaderValue::from_str(&date)
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    if let Some(base) = location_base {
        let url = format!("{base}/{}/{}/_history/{}", v.resource_type, v.id, v.version);
        if let Ok(value) = HeaderValue::from_str(&url) {
            headers.insert(header::LOCATION, value.clone());
            headers.insert(header::CONTENT_LOCATION, value);
        }
    }
    response
}

/// RFC 7231 IMF-fixdate.
fn http_date(ms: Millis) -> Option<String> {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)?;
    Some(t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}
