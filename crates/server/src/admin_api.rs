//! The dashboard's operations as an API, for admin tokens: appointments,
//! groups, devices, measurements and the message browser. Every call is
//! confined to the token's organisation.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrelay_store::{AppointmentQuery, Direction, MessageQuery, MessageStatus};
use medrelay_worklist::AppointmentStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AdminAuth, TokenKind, generate};
use crate::error::ApiError;
use crate::views;

const MAX_PAGE: usize = 1000;

fn page(limit: Option<usize>) -> usize {
    limit.unwrap_or(100).clamp(1, MAX_PAGE)
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if medrelay_engine::config::valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            message: format!("{what} must be 1-64 characters of a-z, 0-9 and '-'"),
            details: vec![],
        })
    }
}

// ---- appointments ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentFilter {
    group: Option<String>,
    status: Option<String>,
    integration: Option<String>,
    patient_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub async fn list_appointments(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    q: Result<Query<AppointmentFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = q?;
    let status = match f.status.as_deref() {
        None => None,
        Some(s) => Some(AppointmentStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status must be scheduled, cancelled or completed, not {s:?}"
            ))
        })?),
    };
    let rows = state
        .store
        .list_appointments(AppointmentQuery {
            org: admin.org.clone(),
            group: f.group,
            status,
            integration: f.integration,
            patient_id: f.patient_id,
            scheduled_from: f.from,
            scheduled_to: f.to,
            limit: page(f.limit),
            offset: f.offset.unwrap_or(0),
        })
        .await?;
    let items: Vec<Value> = rows.iter().map(|(a, p)| views::appointment(a, p)).collect();
    Ok(Json(json!({ "appointments": items })))
}

pub async fn get_appointment(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (a, p) = state
        .store
        .get_appointment(&admin.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("appointment {id} not found")))?;
    Ok(Json(views::appointment(&a, &p)))
}

pub async fn delete_appointment(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_appointment(&admin.org, &id)
        .await
        .map_err(|e| match e {
            medrelay_store::StoreError::NotFound => {
                ApiError::NotFound(format!("appointment {id} not found"))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- groups ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    name: String,
}

pub async fn list_groups(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let groups = state.store.list_groups(&admin.org).await?;
    let items: Vec<Value> = groups
        .iter()
        .map(|g| json!({ "name": g.name, "devices": g.devices, "open_appointments": g.open_appointments }))
        .collect();
    Ok(Json(json!({ "groups": items })))
}

pub async fn create_group(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    check_name("group name", &b.name)?;
    let g = state.store.create_group(&admin.org, &b.name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": g.name }))))
}

pub async fn rename_group(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(name): Path<String>,
    body: Result<Json<NameBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    check_name("group name", &b.name)?;
    state.store.rename_group(&admin.org, &name, &b.name).await?;
    Ok(Json(json!({ "name": b.name })))
}

pub async fn delete_group(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_group(&admin.org, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- devices ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    name: String,
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    name: Option<String>,
    group: Option<String>,
}

pub async fn list_devices(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let devices = state.store.list_devices(&admin.org).await?;
    let items: Vec<Value> = devices.iter().map(views::device).collect();
    Ok(Json(json!({ "devices": items })))
}

/// Registers a device; the token is in this response and nowhere else.
pub async fn create_device(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    body: Result<Json<NewDevice>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    check_name("group", &b.group)?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::Invalid {
            message: "name must be 1-200 characters".into(),
            details: vec![],
        });
    }
    let token = generate(TokenKind::Device).map_err(|e| ApiError::Internal(e.to_string()))?;
    let d = state
        .store
        .create_device(&admin.org, b.name.trim(), &b.group, &token.hash)
        .await?;
    let mut v = views::device(&d);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("token".into(), json!(token.token));
    }
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn update_device(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
    body: Result<Json<DevicePatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    if let Some(name) = &b.name {
        state
            .store
            .rename_device(&admin.org, &id, name.trim())
            .await?;
    }
    if let Some(group) = &b.group {
        check_name("group", group)?;
        state.store.move_device(&admin.org, &id, group).await?;
    }
    let d = state
        .store
        .get_device(&admin.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {id} not found")))?;
    Ok(Json(views::device(&d)))
}

pub async fn delete_device(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_device(&admin.org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new token for a device; the old one stops working at once.
pub async fn rotate_device_token(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let token = generate(TokenKind::Device).map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .rotate_device_token(&admin.org, &id, &token.hash)
        .await?;
    Ok(Json(json!({ "id": id, "token": token.token })))
}

// ---- measurements ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementFilter {
    appointment_id: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub async fn list_measurements(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    q: Result<Query<MeasurementFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = q?;
    let rows = state
        .store
        .list_measurements(
            &admin.org,
            f.appointment_id.as_deref(),
            page(f.limit),
            f.offset.unwrap_or(0),
        )
        .await?;
    let items: Vec<Value> = rows.iter().map(|m| views::measurement(m, true)).collect();
    Ok(Json(json!({ "measurements": items })))
}

pub async fn measurement_pdf(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pdf = state
        .store
        .measurement_pdf(&admin.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report for measurement {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (header::CONTENT_DISPOSITION, "inline"),
        ],
        Body::from(pdf),
    )
        .into_response())
}

/// Puts the measurement's result message back on its queue(s).
pub async fn resend_measurement(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let requeued = state
        .results
        .resend(&admin.org, &id)
        .await
        .map_err(|e| match e {
            medrelay_store::StoreError::NotFound => {
                ApiError::NotFound(format!("measurement {id} has nothing to resend"))
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "requeued_deliveries": requeued })),
    ))
}

// ---- messages ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFilter {
    channel: Option<String>,
    control_id: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    status: Option<String>,
    direction: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<usize>,
    before_id: Option<i64>,
}

pub async fn list_messages(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    q: Result<Query<MessageFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = q?;
    let status = f
        .status
        .as_deref()
        .map(|s| {
            s.parse::<MessageStatus>()
                .map_err(|_| ApiError::BadRequest(format!("unknown status {s:?}")))
        })
        .transpose()?;
    let direction = match f.direction.as_deref() {
        None => None,
        Some("in") => Some(Direction::In),
        Some("out") => Some(Direction::Out),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "direction must be in or out, not {other:?}"
            )));
        }
    };
    let rows = state
        .store
        .find_messages(MessageQuery {
            channel: f.channel,
            control_id: f.control_id,
            message_type: f.message_type,
            status,
            direction,
            since: f.since,
            until: f.until,
            limit: page(f.limit),
            before_id: f.before_id,
            ..MessageQuery::new(admin.org.clone())
        })
        .await?;
    let next = rows.last().map(|m| m.id);
    let items: Vec<Value> = rows.iter().map(views::message_summary).collect();
    Ok(Json(json!({ "messages": items, "next_before_id": next })))
}

pub async fn get_message(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let m = state
        .store
        .get_message(&admin.org, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("message {id} not found")))?;
    let deliveries = state.store.deliveries_for_message(id).await?;
    Ok(Json(views::message_detail(&m, &deliveries)))
}
