//! medrelay's HTTP surface. The route table in [`router`] is the map of the API:
//! liveness and metrics, the device API ([`device_api`]) and the dashboard's
//! operations for admins ([`admin_api`]), and the OAuth 2.0 token endpoint for
//! clinical systems ([`oauth`]). Authentication is an extractor ([`auth`],
//! [`oauth::OAuthBearer`]); errors are JSON ([`error`]); resources render in
//! [`views`].

pub mod admin_api;
pub mod auth;
pub mod dashboard;
pub mod device_api;
pub mod direct_admin;
pub mod direct_api;
pub mod error;
pub mod fhir_api;
pub mod integration_api;
pub mod oauth;
pub mod views;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use medrelay_engine::results::Results;
use medrelay_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub store: Store,
    pub results: Results,
    /// Largest request body accepted (a measurement with its Base64 PDF).
    pub max_body: usize,
    /// Lifetime of the access tokens `/oauth/token` issues
    /// ([`oauth::DEFAULT_TOKEN_TTL`] unless configured).
    pub oauth_token_ttl: Duration,
    /// Per-client limit on `/oauth/token`, checked before the secret.
    pub oauth_token_limiter: oauth::RateLimiter,
    /// Cloud EHRs polled when a device asks for its worklist.
    pub pollers: std::sync::Arc<Vec<std::sync::Arc<medrelay_engine::json_poller::JsonPoller>>>,
    /// The integrations EHRs push JSON appointments to, by name.
    pub pushes: std::sync::Arc<std::collections::HashMap<String, integration_api::PushEndpoint>>,
    /// Where orders created through the FHIR API go, by organisation.
    pub fhir: std::sync::Arc<std::collections::HashMap<String, medrelay_engine::FhirTarget>>,
    /// The HL7 pipelines by channel name, for reprocessing stored messages.
    pub pipelines:
        std::sync::Arc<std::collections::HashMap<String, std::sync::Arc<medrelay_engine::Channel>>>,
    /// The configured channels and integrations, for the dashboard's overview.
    pub components: std::sync::Arc<Vec<medrelay_engine::Component>>,
    /// The Direct HISP behind `/MessagingAPI`; `None` answers 404 there.
    pub direct: Option<direct_api::DirectState>,
}

pub fn router(state: AppState) -> Router {
    use admin_api as admin;
    use device_api as device;
    let limit = DefaultBodyLimit::max(state.max_body);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // Device API
        .route("/api/v1/worklist", get(device::worklist))
        .route(
            "/api/v1/measurements",
            post(device::post_measurement).get(admin::list_measurements),
        )
        .route("/api/v1/measurements/{id}", get(device::get_measurement))
        // Admin API
        .route(
            "/api/v1/measurements/{id}/resend",
            post(admin::resend_measurement),
        )
        .route(
            "/api/v1/measurements/{id}/report.pdf",
            get(admin::measurement_pdf),
        )
        .route("/api/v1/appointments", get(admin::list_appointments))
        .route(
            "/api/v1/appointments/{id}",
            get(admin::get_appointment).delete(admin::delete_appointment),
        )
        .route(
            "/api/v1/groups",
            get(admin::list_groups).post(admin::create_group),
        )
        .route(
            "/api/v1/groups/{name}",
            axum::routing::patch(admin::rename_group).delete(admin::delete_group),
        )
        .route(
            "/api/v1/devices",
            get(admin::list_devices).post(admin::create_device),
        )
        .route(
            "/api/v1/devices/{id}",
            axum::routing::patch(admin::update_device).delete(admin::delete_device),
        )
        .route(
            "/api/v1/devices/{id}/token",
            post(admin::rotate_device_token),
        )
        .route("/api/v1/messages", get(admin::list_messages))
        .route("/api/v1/messages/{id}", get(admin::get_message))
        // OAuth 2.0 client credentials (RFC 6749 §4.4) for pushing EHRs
        .route("/oauth/token", post(oauth::token))
        // FHIR R4: every resource, interaction and search parameter is in
        // fhir_api::CAPABILITIES.
        .nest("/fhir/R4", fhir_api::routes())
        // Direct secure messaging (the MedAllies-style Messaging API).
        .route(
            "/MessagingAPI/dirmsg/send_ccda",
            post(direct_api::send_ccda),
        )
        .route("/MessagingAPI/dirmsg/status", get(direct_api::status))
        .route(
            "/api/v1/direct/edges",
            get(direct_admin::list_edges).post(direct_admin::create_edge),
        )
        .route(
            "/api/v1/direct/edges/{name}",
            axum::routing::delete(direct_admin::delete_edge),
        )
        .route(
            "/api/v1/direct/addresses",
            get(direct_admin::list_addresses).post(direct_admin::put_address),
        )
        .route(
            "/api/v1/direct/addresses/{address}",
            axum::routing::delete(direct_admin::delete_address),
        )
        .route(
            "/MessagingAPI/dirmsg/notification",
            post(direct_api::notification),
        )
        // Pushed JSON appointments; each integration sets its own body limit.
        .route(
            "/api/v1/integrations/{name}/appointments",
            post(integration_api::push_appointments).layer(DefaultBodyLimit::disable()),
        )
        // The web dashboard: pages for people, signed in with a session.
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(limit)
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("no such endpoint".into())
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    (StatusCode::OK, axum::Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Serves `router` on `listener` until `shutdown` resolves; requests in flight
/// are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
