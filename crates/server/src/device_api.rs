//! The device API (DESIGN.md contract): a tablet pulls its group's worklist and
//! posts measurements with their PDF report.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use medrelay_engine::results::SubmitError;
use medrelay_worklist::Measurement;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AnyAuth, Caller, DeviceAuth};
use crate::error::{ApiError, FieldProblem};
use crate::views;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorklistQuery {
    limit: Option<usize>,
}

/// How long a worklist request waits for a cloud EHR's appointments.
const POLL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most open appointments one worklist request returns.
const WORKLIST_MAX: usize = 5000;

/// `GET /api/v1/worklist[?limit=N]`: open appointments of the device's group,
/// earliest first, at most `limit` (default 500, at most 5000); `truncated`
/// says whether there were more.
pub async fn worklist(
    State(state): State<AppState>,
    DeviceAuth(device): DeviceAuth,
    q: Result<Query<WorklistQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(500).clamp(1, WORKLIST_MAX);
    // Cloud EHRs polled "on each device invocation": fetch first (cached
    // briefly); if the EHR is slow or down, the device still gets what is stored.
    for poller in state.pollers.iter().filter(|p| p.org() == device.org) {
        match tokio::time::timeout(POLL_WAIT, poller.refresh()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "polling the EHR for the worklist failed"),
            Err(_) => tracing::warn!("polling the EHR for the worklist took too long"),
        }
    }
    let mut items = state
        .store
        .worklist(&device.org, &device.group, limit + 1)
        .await?;
    let truncated = items.len() > limit;
    items.truncate(limit);
    let appointments: Vec<Value> = items
        .iter()
        .map(|(a, p)| views::appointment(a, p))
        .collect();
    Ok(Json(
        json!({ "appointments": appointments, "truncated": truncated }),
    ))
}

/// `POST /api/v1/measurements`: validated, stored with its outbound result
/// message in one commit, then `201 {"id", "status"}`.
pub async fn post_measurement(
    State(state): State<AppState>,
    DeviceAuth(device): DeviceAuth,
    body: Result<Json<Measurement>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(measurement) = body?;
    match state.results.submit(&device, measurement).await {
        Ok(done) => Ok((
            StatusCode::CREATED,
            Json(json!({ "id": done.id, "status": done.status })),
        )),
        Err(SubmitError::Invalid(problems)) => Err(ApiError::Invalid {
            message: "the measurement is not valid".into(),
            details: problems
                .into_iter()
                .map(|(field, reason)| FieldProblem { field, reason })
                .collect(),
        }),
        Err(SubmitError::TooLarge(m)) => Err(ApiError::TooLarge(m)),
        Err(SubmitError::UnknownAppointment(id)) => Err(ApiError::Invalid {
            message: format!("appointment {id:?} does not exist"),
            details: vec![FieldProblem {
                field: "appointment_id".into(),
                reason: "no such appointment for this device".into(),
            }],
        }),
        Err(SubmitError::Store(e)) => Err(e.into()),
        Err(SubmitError::Build(m)) => Err(ApiError::Internal(m)),
    }
}

/// `GET /api/v1/measurements/{id}`: the result and its delivery state per
/// destination; for the device that posted it (same organisation) or an admin.
pub async fn get_measurement(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = state
        .store
        .get_measurement(caller.org(), &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("measurement {id} not found")))?;
    if let Caller::Device(d) = &caller
        && !stored.measurement.device_id.is_empty()
        && stored.measurement.device_id != d.id
    {
        return Err(ApiError::NotFound(format!("measurement {id} not found")));
    }
    Ok(Json(views::measurement(&stored, false)))
}
