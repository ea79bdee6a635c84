//! ServiceRequest and Appointment: two views of one worklist appointment
//! (same id). Reads and searches show the orders every intake created;
//! creates go into the worklist of the organisation's `fhir` integration
//! through the same store call the HL7 path uses, with the request body kept
//! as the inbound message; updates merge into the stored order like an HL7
//! update does.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use medrelay_fhir::convert;
use medrelay_fhir::resources::{
    Appointment as FhirAppointment, Issue, Reference, ServiceRequest as FhirServiceRequest,
};
use medrelay_store::{
    AppointmentSearch, InboundOutcome, InboundRecord, MessageStatus, StoreError,
    Versioned as Stored,
};
use medrelay_worklist::{Appointment, AppointmentStatus, OrderKey, Patient, WorklistAction};
use serde_json::Value;

use super::search::{self, SearchQuery, bad_value};
use super::{
    FhirError, Versioned, authorize, base_url, capability, check_body_id, converter, drop_id,
    if_match, json_body, json_body_raw, parse_resource, prefer_return, resource_response,
    with_meta,
};
use crate::AppState;
use crate::error::ApiError;
use crate::oauth::OAuthBearer;

const SERVICE_REQUEST: &str = "ServiceRequest";
const APPOINTMENT: &str = "Appointment";

/// Which view of the appointment row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    ServiceRequest,
    Appointment,
}

impl View {
    fn name(self) -> &'static str {
        match self {
            View::ServiceRequest => SERVICE_REQUEST,
            View::Appointment => APPOINTMENT,
        }
    }
}

fn to_fhir(view: View, a: &Stored<Appointment>) -> Result<Value, FhirError> {
    let patient = Reference::to("Patient", &a.value.patient_id);
    let c = converter();
    let v = Versioned {
        resource_type: view.name(),
        id: &a.value.id,
        version: a.version,
        updated_at: a.updated_at,
    };
    match view {
        View::ServiceRequest => with_meta(&c.service_request(&a.value, &patient), &v),
        View::Appointment => with_meta(&c.appointment(&a.value, &patient), &v),
    }
}

fn answer(
    view: View,
    status: StatusCode,
    a: &Stored<Appointment>,
    headers: &HeaderMap,
    location: bool,
) -> Result<Response, FhirError> {
    let base = base_url(headers);
    Ok(resource_response(
        status,
        to_fhir(view, a)?,
        &Versioned {
            resource_type: view.name(),
            id: &a.value.id,
            version: a.version,
            updated_at: a.updated_at,
        },
        location.then_some(base.as_str()),
        prefer_return(headers),
    ))
}

/// The appointment row, 404 if unknown, 410 if deleted from the worklist.
async fn load(
    state: &AppState,
    org: &str,
    view: View,
    id: &str,
) -> Result<Stored<Appointment>, FhirError> {
    let (a, _) = state
        .store
        .get_appointment_versioned(org, id)
        .await?
        .ok_or_else(|| FhirError::not_found(view.name(), id))?;
    if a.deleted_at.is_some() {
        return Err(FhirError::new(
            StatusCode::GONE,
            "deleted",
            format!("{}/{id} was deleted from the worklist", view.name()),
        ));
    }
    Ok(a)
}

async fn read(
    state: AppState,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    view: View,
    id: String,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, view.name(), false)?;
    let a = load(&state, bearer.org(), view, &id).await?;
    answer(view, StatusCode::OK, &a, &headers, false)
}

/// `GET /ServiceRequest/{id}`.
pub async fn read_service_request(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    read(state, bearer, headers, View::ServiceRequest, id).await
}

/// `GET /Appointment/{id}`.
pub async fn read_appointment(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    read(state, bearer, headers, View::Appointment, id).await
}

/// The worklist statuses a FHIR status code stands for; codes that are valid
/// FHIR but never produced here match nothing (an empty list).
fn statuses(view: View, code: &str) -> Result<Vec<AppointmentStatus>, String> {
    use AppointmentStatus::*;
    Ok(match (view, code) {
        (View::ServiceRequest, "active") => vec![Scheduled],
        (View::ServiceRequest, "revoked") => vec![Cancelled],
        (View::ServiceRequest, "completed") => vec![Completed],
        (View::ServiceRequest, "draft" | "on-hold" | "entered-in-error" | "unknown") => vec![],
        (View::Appointment, "booked") => vec![Scheduled],
        (View::Appointment, "cancelled") => vec![Cancelled],
        (View::Appointment, "fulfilled") => vec![Completed],
        (
            View::Appointment,
            "proposed" | "pending" | "arrived" | "noshow" | "entered-in-error" | "checked-in"
            | "waitlist",
        ) => vec![],
        (_, other) => {
            return Err(format!("{other:?} is not a {} status", view.name()));
        }
    })
}

/// The store search for a checked query; `None` when a filter can match
/// nothing (a status never used here).
async fn store_search(
    state: &AppState,
    org: &str,
    view: View,
    q: &SearchQuery,
) -> Result<Option<AppointmentSearch>, FhirError> {
    let mut s = AppointmentSearch::new(org);
    for p in &q.params {
        match p.name.as_str() {
            "_id" => s.ids.extend(p.values.iter().cloned()),
            "patient" | "subject" => s.patient_ids.extend(search::references(p, "Patient")?),
            "actor" => {
                for v in &p.values {
                    if let Ok(id) = medrelay_fhir::search::parse_reference(v, "Device") {
                        let device = state.store.get_device(org, &id).await?;
                        match device {
                            Some(d) => s.groups.push(d.group),
                            None => return Ok(None),
                        }
                    } else {
                        s.patient_ids.push(
                            medrelay_fhir::search::parse_reference(v, "Patient")
                                .map_err(|e| bad_value("actor", e))?,
                        );
                    }
                }
            }
            "status" => {
                let mut any = Vec::new();
                for v in &p.values {
                    any.extend(statuses(view, v).map_err(|e| bad_value("status", e))?);
                }
                if any.is_empty() {
                    return Ok(None);
                }
                // Repeated status parameters are AND: keep only common ones.
                if s.statuses.is_empty() {
                    s.statuses = any;
                } else {
                    s.statuses.retain(|x| any.contains(x));
                    if s.statuses.is_empty() {
                        return Ok(None);
                    }
                }
            }
            "identifier" => s.order_number.push(search::tokens(p)?),
            "code" => s.code.push(search::tokens(p)?),
            "authored" => s.authored.push(search::dates(p)?),
            "date" => s.scheduled.push(search::dates(p)?),
            _ => {}
        }
    }
    s.sort = q.store_sort();
    s.limit = q.limit();
    s.offset = q.offset;
    Ok(Some(s))
}

async fn search(
    state: AppState,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    raw: Option<String>,
    view: View,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, view.name(), false)?;
    let cap = capability::of(view.name()).ok_or_else(|| FhirError::not_found(view.name(), ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let (rows, total) = match store_search(&state, bearer.org(), view, &q).await? {
        Some(s) => state.store.search_appointments(s).await?,
        None => (Vec::new(), 0),
    };
    let mut matches = Vec::with_capacity(rows.len());
    for (a, _) in &rows {
        matches.push((format!("{}/{}", view.name(), a.value.id), to_fhir(view, a)?));
    }
    let mut included = Vec::new();
    if !q.include.is_empty() {
        // Each patient once, in first-seen order.
        let mut seen = BTreeMap::new();
        for (a, _) in &rows {
            let next = seen.len();
            seen.entry(a.value.patient_id.clone()).or_insert(next);
        }
        let mut ids: Vec<(usize, String)> = seen.into_iter().map(|(id, n)| (n, id)).collect();
        ids.sort();
        for (_, id) in ids {
            if let Some(p) = state.store.get_patient_versioned(bearer.org(), &id).await? {
                included.push((format!("Patient/{id}"), super::patient::to_fhir(&p)?));
            }
        }
    }
    let bundle = search::bundle(&base_url(&headers), &q, total, matches, included);
    Ok(super::fhir_json(StatusCode::OK, &bundle))
}

/// `GET /ServiceRequest?…`.
pub async fn search_service_requests(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    search(state, bearer, headers, raw, View::ServiceRequest).await
}

/// `GET /Appointment?…`.
pub async fn search_appointments(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    search(state, bearer, headers, raw, View::Appointment).await
}

/// An order received through FHIR, before it is stored.
struct NewOrder {
    patient_id: String,
    appointment: Appointment,
}

/// A placer order number for an order the client gave none: the key later
/// updates and results find it by.
fn generated_placer() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the time alone still keeps numbers apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                & u128::from(u64::MAX),
        )
        .unwrap_or(0)
        .to_be_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("fhir-{hex}")
}

/// Stores a FHIR-created order in the worklist of the organisation's `fhir`
/// integration: the body is kept as the inbound message and the appointment
/// created in the same transaction, as for an HL7 ORM.
async fn create_order(
    state: &AppState,
    bearer: &OAuthBearer,
    headers: &HeaderMap,
    view: View,
    raw: Bytes,
    order: Result<NewOrder, Vec<Issue>>,
) -> Result<Response, FhirError> {
    let org = bearer.org();
    let target = state.fhir.get(org).cloned().ok_or_else(|| {
        FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule",
            format!(
                "organisation {org:?} has no integration with preset \"fhir\", so orders cannot be created through FHIR; add one to the configuration ([[integration]] preset = \"fhir\", group = \"…\")"
            ),
        )
    })?;
    let mut rec = InboundRecord {
        org: org.to_string(),
        channel: target.integration.clone(),
        received_at: medrelay_engine::clock::now_ms(),
        peer: Some(format!("FHIR client {}", bearer.client_id())),
        message_type: Some(format!("FHIR {}", view.name())),
        raw: raw.to_vec(),
        ..InboundRecord::default()
    };
    let order = match order {
        Ok(o) => o,
        Err(issues) => return Err(reject(state, rec, issues).await),
    };
    let Some(patient) = state.store.get_patient(org, &order.patient_id).await? else {
        let issue = Issue::error(
            "not-found",
            if view == View::ServiceRequest {
                "ServiceRequest.subject"
            } else {
                "Appointment.participant.actor"
            },
            format!("Patient/{} does not exist", order.patient_id),
        );
        return Err(reject(state, rec, vec![issue]).await);
    };
    let mut appointment = order.appointment;
    appointment.id = String::new();
    appointment.org = org.to_string();
    appointment.integration = target.integration.clone();
    appointment.group = target.group.clone();
    appointment.patient_id = patient.id.clone();
    if appointment.order.placer_order.is_none() && appointment.order.filler_order.is_none() {
        appointment.order.placer_order = Some(generated_placer());
    }
    let key = OrderKey {
        integration: target.integration.clone(),
        placer_order: appointment.order.placer_order.clone(),
        filler_order: appointment.order.filler_order.clone(),
    };
    if let Some(existing) = state.store.find_appointment(org, &key).await? {
        return Err(FhirError::new(
            StatusCode::CONFLICT,
            "duplicate",
            format!(
                "an order with this identifier exists as {}/{}; update it with PUT",
                view.name(),
                existing.id
            ),
        ));
    }
    rec.status = MessageStatus::Accepted;
    rec.ack = Some(format!("201 Created {}", view.name()).into_bytes());
    rec.worklist = vec![WorklistAction::CreateAppointment {
        patient: Patient {
            id: patient.id.clone(),
            ..patient
        },
        appointment,
    }];
    let id = match state.store.record_inbound(rec).await? {
        InboundOutcome::Stored { worklist, .. } => worklist
            .into_iter()
            .next()
            .and_then(|e| e.appointment_id)
            .ok_or_else(|| {
                FhirError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "the order was stored without an appointment",
                )
            })?,
        InboundOutcome::Duplicate { .. } => {
            return Err(FhirError::new(
                StatusCode::CONFLICT,
                "duplicate",
                "the same order was just received",
            ));
        }
    };
    let a = load(state, org, view, &id).await?;
    answer(view, StatusCode::CREATED, &a, headers, true)
}

/// Keeps a refused create as a rejected message (the raw input is never
/// lost) and answers 422 with the issues.
async fn reject(state: &AppState, mut rec: InboundRecord, issues: Vec<Issue>) -> FhirError {
    rec.status = MessageStatus::Rejected;
    rec.error = Some(
        issues
            .iter()
            .filter_map(|i| i.diagnostics.clone())
            .collect::<Vec<_>>()
            .join("; "),
    );
    if let Err(e) = state.store.record_inbound(rec).await {
        tracing::warn!(error = %e, "a refused FHIR order could not be kept");
    }
    FhirError::issues(StatusCode::UNPROCESSABLE_ENTITY, issues)
}

/// `If-None-Exist` for orders: an existing match is the answer (200).
async fn existing_match(
    state: &AppState,
    org: &str,
    view: View,
    headers: &HeaderMap,
) -> Result<Option<Stored<Appointment>>, FhirError> {
    let cap = capability::of(view.name()).ok_or_else(|| FhirError::not_found(view.name(), ""))?;
    let Some(q) = SearchQuery::if_none_exist(headers, cap)? else {
        return Ok(None);
    };
    let Some(s) = store_search(state, org, view, &q).await? else {
        return Ok(None);
    };
    let (rows, total) = state.store.search_appointments(s).await?;
    match total {
        0 => Ok(None),
        1 => Ok(rows.into_iter().next().map(|(a, _)| a)),
        n => Err(FhirError::new(
            StatusCode::PRECONDITION_FAILED,
            "multiple-matches",
            format!("If-None-Exist matches {n} orders; make it more selective"),
        )),
    }
}

/// `POST /ServiceRequest`: a new order in the worklist.
pub async fn create_service_request(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, SERVICE_REQUEST, true)?;
    let (mut value, raw) = json_body_raw(body, SERVICE_REQUEST)?;
    drop_id(&mut value);
    if let Some(a) = existing_match(&state, bearer.org(), View::ServiceRequest, &headers).await? {
        return answer(View::ServiceRequest, StatusCode::OK, &a, &headers, false);
    }
    let order = service_request_order(&value);
    create_order(&state, &bearer, &headers, View::ServiceRequest, raw, order).await
}

fn service_request_order(value: &Value) -> Result<NewOrder, Vec<Issue>> {
    let sr: FhirServiceRequest = parse_resource(SERVICE_REQUEST, value).map_err(|e| e.1.issue)?;
    let (patient_id, mut appointment) = convert::service_request_to_order(&sr)?;
    local_times(&mut appointment);
    Ok(NewOrder {
        patient_id,
        appointment,
    })
}

/// The store keeps local times, as HL7 brings them (see `super::converter`).
fn local_times(a: &mut medrelay_worklist::Appointment) {
    let c = super::converter();
    for t in [&mut a.scheduled_at, &mut a.order.request_date] {
        if let Some(v) = t.as_mut() {
            *v = c.local_time(v);
        }
    }
}

fn appointment_order(value: &Value) -> Result<(NewOrder, Option<String>), Vec<Issue>> {
    let a: FhirAppointment = parse_resource(APPOINTMENT, value).map_err(|e| e.1.issue)?;
    let mut incoming = convert::appointment_to_model(&a)?;
    local_times(&mut incoming.appointment);
    Ok((
        NewOrder {
            patient_id: incoming.patient_id,
            appointment: incoming.appointment,
        },
        incoming.based_on,
    ))
}

/// `POST /Appointment`: a new worklist appointment. An Appointment `basedOn`
/// an existing ServiceRequest is that order's own appointment already (one
/// row): 409, update it instead.
pub async fn create_appointment(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, APPOINTMENT, true)?;
    let (mut value, raw) = json_body_raw(body, APPOINTMENT)?;
    drop_id(&mut value);
    let order = match appointment_order(&value) {
        Ok((order, Some(based_on))) => {
            if state
                .store
                .get_appointment(bearer.org(), &based_on)
                .await?
                .is_some()
            {
                return Err(FhirError::new(
                    StatusCode::CONFLICT,
                    "duplicate",
                    format!(
                        "ServiceRequest/{based_on} already has its appointment, Appointment/{based_on}: update that one with PUT"
                    ),
                ));
            }
            Ok(order)
        }
        Ok((order, None)) => Ok(order),
        Err(issues) => Err(issues),
    };
    create_order(&state, &bearer, &headers, View::Appointment, raw, order).await
}

async fn update(
    state: AppState,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    view: View,
    id: String,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, view.name(), true)?;
    let value = json_body(body, view.name())?;
    check_body_id(&value, &id)?;
    let expected = if_match(&headers)?;
    let order = match view {
        View::ServiceRequest => service_request_order(&value),
        View::Appointment => appointment_order(&value).map(|(o, _)| o),
    }
    .map_err(|issues| FhirError::issues(StatusCode::UNPROCESSABLE_ENTITY, issues))?;
    match state
        .store
        .get_appointment_versioned(bearer.org(), &id)
        .await?
    {
        None => {
            return Err(FhirError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                format!(
                    "{}/{id} does not exist and this server assigns ids itself: create it with POST /{}",
                    view.name(),
                    view.name()
                ),
            ));
        }
        Some((a, _)) if a.deleted_at.is_some() => {
            return Err(FhirError::new(
                StatusCode::GONE,
                "deleted",
                format!("{}/{id} was deleted from the worklist", view.name()),
            ));
        }
        Some(_) => {}
    }
    if state
        .store
        .get_patient(bearer.org(), &order.patient_id)
        .await?
        .is_none()
    {
        return Err(FhirError::issues(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![Issue::error(
                "not-found",
                "subject",
                format!("Patient/{} does not exist", order.patient_id),
            )],
        ));
    }
    let updated = state
        .store
        .update_appointment_fhir(
            bearer.org(),
            &id,
            &order.patient_id,
            order.appointment,
            expected,
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound => FhirError::not_found(view.name(), &id),
            other => other.into(),
        })?;
    answer(view, StatusCode::OK, &updated, &headers, true)
}

/// `PUT /ServiceRequest/{id}`.
pub async fn update_service_request(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    update(state, bearer, headers, View::ServiceRequest, id, body).await
}

/// `PUT /Appointment/{id}`.
pub async fn update_appointment(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    update(state, bearer, headers, View::Appointment, id, body).await
}
