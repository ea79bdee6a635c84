//! The statements of the device worklist: patients, appointments, device groups,
//! devices, API tokens and measurements. Like `sql.rs`, every function takes a
//! plain connection; the mutating ones run inside the writer's batch
//! transaction and do all their checks before their first write, so a refusal
//! (`NotFound`, `Conflict`) never fails the neighbours in the batch.
//!
//! Every function takes the organisation and every statement filters by it: ids
//! are global, but an id of another organisation finds nothing.

use medrelay_worklist::{
    Address, Appointment, AppointmentStatus, Coded, Device, DeviceGroup, Identifier, Measurement,
    Order, OrderKey, Patient, Provider, Visit, WorklistAction,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::names::{NameRow, index_names};
use super::sql::{delivery_from_row, insert_deliveries, one_row_changed};
use crate::domain::{
    ApiToken, AppointmentQuery, GroupInfo, MeasurementIds, OutboundMessage, StoredMeasurement,
    WorklistEffect,
};
use crate::error::StoreError;
use crate::types::{Delivery, Millis};

/// `touch_device` / `touch_api_token` write at most once per this interval.
pub(crate) const TOUCH_INTERVAL: Millis = 30_000;

/// The delivery columns without the payload (an ORU carries the PDF again).
const DELIVERY_META_COLS: &str = "id, message_id, org, destination, state, attempts, \
     next_attempt_at, created_at, updated_at, last_error, response, X''";

const DEVICE_COLS: &str = "id, org, name, grp, created_at, last_seen_at";

const TOKEN_COLS: &str = "id, org, role, name, created_at, last_used_at";

/// Appointment columns (prefix `a.`) followed by the patient's JSON.
pub(super) const APPOINTMENT_COLS: &str = "a.id, a.org, a.integration, a.grp, a.status, a.scheduled_at, \
     a.patient_id, a.json, p.json";

/// Measurement metadata columns; `report_pdf` is selected separately.
pub(super) const MEASUREMENT_COLS: &str =
    "id, org, appointment_id, device_id, kind, performed_at, created_at, message_id, json";

// ---------------------------------------------------------------- helpers

/// Ids are the decimal row id; anything else (including `"007"`) names no row.
pub(crate) fn parse_id(id: &str) -> Option<i64> {
    let n: i64 = id.parse().ok()?;
    (n.to_string() == id).then_some(n)
}

pub(super) fn json_error(e: serde_json::Error) -> StoreError {
    StoreError::Sqlite(format!("stored JSON could not be converted: {e}"))
}

pub(super) fn to_json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(json_error)
}

pub(super) fn json_col<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

pub(super) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.is_empty())
}

pub(super) fn limit_offset(limit: usize, offset: usize) -> (i64, i64) {
    (
        i64::try_from(limit).unwrap_or(i64::MAX),
        i64::try_from(offset).unwrap_or(i64::MAX),
    )
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

/// A value that counts as present in new data, so that it overwrites the stored
/// one. The rule is the shallow JSON merge the worklist always had: a field
/// overwrites unless it would be serialized as nothing, null, `""`, `[]` or
/// `{}` (`tests::typed_merge_matches_the_json_merge` holds the two together).
trait Present {
    fn present(&self) -> bool;
}

impl Present for String {
    fn present(&self) -> bool {
        !self.is_empty()
    }
}

/// Always serialized with its `code` / `value`, so never `{}`.
impl Present for Coded {
    fn present(&self) -> bool {
        true
    }
}

impl Present for Identifier {
    fn present(&self) -> bool {
        true
    }
}

/// Every field is skipped when absent: the default serializes as `{}`.
impl Present for Provider {
    fn present(&self) -> bool {
        *self != Provider::default()
    }
}

impl Present for Address {
    fn present(&self) -> bool {
        *self != Address::default()
    }
}

/// `new` overwrites `old` when it is present (see [`Present`]).
trait MergeFrom {
    fn merge_from(&mut self, new: &Self);
}

impl<T: Present + Clone> MergeFrom for Option<T> {
    fn merge_from(&mut self, new: &Self) {
        if let Some(v) = new
            && v.present()
        {
            *self = Some(v.clone());
        }
    }
}

impl MergeFrom for Vec<String> {
    fn merge_from(&mut self, new: &Self) {
        if !new.is_empty() {
            self.clone_from(new);
        }
    }
}

/// Like any JSON object field: a non-empty map replaces the stored one.
impl MergeFrom for std::collections::BTreeMap<String, String> {
    fn merge_from(&mut self, new: &Self) {
        if !new.is_empty() {
            self.clone_from(new);
        }
    }
}

/// Field-by-field merge of a model struct. The destructuring lists every field
/// (no `..`), so a field added to the model fails to compile here until it is
/// given a merge rule.
macro_rules! merge_fields {
    ($old:expr, $new:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        let $ty { $($field),* } = $new;
        $( $old.$field.merge_from($field); )*
    }};
}

/// `new` merged into `old`: present fields overwrite (see [`Present`]).
fn merge_order(old: &Order, new: &Order) -> Order {
    let mut out = old.clone();
    merge_fields!(
        out,
        new,
        Order {
            request_date,
            control,
            placer_order,
            filler_order,
            group_number,
            status,
            response_flag,
            timing,
            transaction_at,
            entered_by,
            verified_by,
            ordering_provider,
            callback_phone,
            effective_at,
            procedure,
            priority,
            requested_at,
            observation_at,
            obr_ordering_provider,
            diagnostic_section,
            timing_block,
            technician,
            scheduled_at,
            procedure_code,
            task_type,
            activity_id,
            received_at,
            extra,
        }
    );
    out
}

fn merge_visit(old: &Visit, new: &Visit) -> Visit {
    let mut out = old.clone();
    merge_fields!(
        out,
        new,
        Visit {
            class,
            location,
            admission_type,
            attending,
            service,
            visit_number,
            admit_at,
            discharge_at,
        }
    );
    out
}

pub(super) fn system_key(ident: &Identifier) -> &str {
    ident.system.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------- patients

/// Identifiers with a value, the ones that can match.
pub(super) fn usable_identifiers(patient: &Patient) -> impl Iterator<Item = &Identifier> {
    patient.identifiers.iter().filter(|i| !i.value.is_empty())
}

fn patient_is_empty(patient: &Patient) -> bool {
    let blank = Patient {
        id: patient.id.clone(),
        ..Patient::default()
    };
    *patient == blank
}

fn load_patient(conn: &Connection, org: &str, id: i64) -> Result<Option<Patient>, StoreError> {
    let found = conn
        .prepare_cached("SELECT json FROM patients WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |row| json_col::<Patient>(row, 0))
        .optional()?;
    Ok(found.map(|mut p| {
        p.id = id.to_string();
        p
    }))
}

pub(super) fn same_identifier(a: &Identifier, b: &Identifier) -> bool {
    a.value == b.value && system_key(a) == system_key(b)
}

/// `new` merged into `old`: present fields overwrite, absent ones keep the old
/// value, identifiers are the union (a matching one takes the new type). The
/// result has no id.
fn merge_patient(old: &Patient, new: &Patient) -> Patient {
    let mut out = old.clone();
    out.id = String::new();
    let Patient {
        id: _,
        identifiers: _,
        family,
        given,
        suffix,
        prefix,
        birth_date,
        sex,
        race,
        race_code,
        language,
        address,
        phone,
        email,
    } = new;
    out.family.merge_from(family);
    out.given.merge_from(given);
    out.suffix.merge_from(suffix);
    out.prefix.merge_from(prefix);
    out.birth_date.merge_from(birth_date);
    out.sex.merge_from(sex);
    out.race.merge_from(race);
    out.race_code.merge_from(race_code);
    out.language.merge_from(language);
    out.address.merge_from(address);
    out.phone.merge_from(phone);
    out.email.merge_from(email);
    for ident in usable_identifiers(new) {
        let full = out.identifiers.len() >= MAX_PATIENT_IDENTIFIERS;
        match out
            .identifiers
            .iter_mut()
            .find(|o| same_identifier(o, ident))
        {
            Some(existing) if ident.kind.is_some() => existing.kind = ident.kind.clone(),
            Some(_) => {}
            // Bounded: a sender that gives every order another identifier for
            // the same patient must not grow one row without limit.
            None if !full => out.identifiers.push(ident.clone()),
            None => {}
        }
    }
    out
}

/// The most identifiers one patient keeps.
pub(crate) const MAX_PATIENT_IDENTIFIERS: usize = 64;

/// The patient as a new row stores it: no id, its usable identifiers once each
/// (the first of duplicates).
pub(super) fn new_patient_row(patient: &Patient) -> Patient {
    let mut new = patient.clone();
    new.id = String::new();
    new.identifiers = Vec::new();
    for ident in usable_identifiers(patient) {
        if new.identifiers.len() < MAX_PATIENT_IDENTIFIERS
            && !new.identifiers.iter().any(|o| same_identifier(o, ident))
        {
            new.identifiers.push(ident.clone());
        }
    }
    new
}

/// The JSON work of a patient upsert, done by the async caller before the op
/// is queued, so the writer thread (the bottleneck) only compares text in the
/// common case.
pub(crate) struct PreparedPatient {
    /// The JSON of [`new_patient_row`]: what a new row stores.
    row_json: String,
    /// Merging the incoming data into a stored patient whose JSON is exactly
    /// `row_json` changes nothing (false only for odd input such as one
    /// identifier given twice with different types).
    unchanged_if_equal: bool,
    empty: bool,
    /// The `patient_names` row of a new patient.
    names: NameRow,
}

impl PreparedPatient {
    fn new(patient: &Patient) -> Result<Self, StoreError> {
        let row = new_patient_row(patient);
        Ok(PreparedPatient {
            row_json: to_json_text(&row)?,
            unchanged_if_equal: merge_patient(&row, patient) == row,
            empty: patient_is_empty(patient),
            names: NameRow::of(&row),
        })
    }
}

/// Creates the patient or merges it into the one of `org` sharing an identifier
/// (the first of `patient.identifiers` that matches wins). Without any
/// identifier, `fallback` (the patient an existing appointment already points
/// at) is updated instead, or a new patient is created when there is none.
/// Identifiers already owned by another patient stay with that patient.
///
/// A non-empty `patient.id` naming a patient of `org` wins over all of that:
/// a ServiceRequest created through FHIR references `Patient/<id>` and must
/// attach to exactly that patient, identifiers or not. The mappers of the
/// inbound formats leave `id` empty.
///
/// Every identifier in a stored patient's JSON has its `patient_identifiers`
/// row (owned by that patient, or by the one that had it first): both are
/// written in the same transaction, and a row is only deleted by a FHIR update
/// of its owner that drops the identifier (`fhir::update_patient`). So only
/// the identifiers new to the patient need an `INSERT OR IGNORE`.
fn upsert_patient(
    conn: &Connection,
    org: &str,
    patient: &Patient,
    prepared: &PreparedPatient,
    at: Millis,
    fallback: Option<i64>,
) -> Result<i64, StoreError> {
    let mut found = match parse_id(&patient.id) {
        Some(id) => conn
            .prepare_cached("SELECT id FROM patients WHERE id = ?1 AND org = ?2")?
            .query_row(params![id, org], |row| row.get::<_, i64>(0))
            .optional()?,
        None => None,
    };
    if found.is_none() {
        let mut lookup = conn.prepare_cached(
            "SELECT patient_id FROM patient_identifiers \
             WHERE org = ?1 AND system = ?2 AND value = ?3",
        )?;
        for ident in usable_identifiers(patient) {
            found = lookup
                .query_row(params![org, system_key(ident), ident.value], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()?;
            if found.is_some() {
                break;
            }
        }
    }
    if found.is_none() && usable_identifiers(patient).next().is_none() {
        found = fallback;
    }
    let stored = match found {
        Some(id) => conn
            .prepare_cached("SELECT json FROM patients WHERE id = ?1 AND org = ?2")?
            .query_row(params![id, org], |row| row.get::<_, String>(0))
            .optional()?
            .map(|json| (id, json)),
        None => None,
    };
    let mut own = conn.prepare_cached(
        "INSERT OR IGNORE INTO patient_identifiers (org, system, value, patient_id) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    match stored {
        Some((id, json)) => {
            // Nothing to merge, or the stored patient is exactly the incoming one
            // (a repeated order): no parse, no merge, no write.
            if prepared.empty || (prepared.unchanged_if_equal && json == prepared.row_json) {
                return Ok(id);
            }
            let mut old: Patient = serde_json::from_str(&json).map_err(json_error)?;
            old.id = String::new();
            let new = merge_patient(&old, patient);
            if new != old {
                conn.prepare_cached(
                    "UPDATE patients SET json = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id, to_json_text(&new)?, at])?;
                index_names(conn, org, id, &NameRow::of(&new))?;
            }
            for ident in &new.identifiers {
                if !old.identifiers.iter().any(|o| same_identifier(o, ident)) {
                    own.execute(params![org, system_key(ident), ident.value, id])?;
                }
            }
            Ok(id)
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO patients (org, created_at, updated_at, json) VALUES (?1, ?2, ?2, ?3)",
            )?
            .execute(params![org, at, prepared.row_json])?;
            let id = conn.last_insert_rowid();
            index_names(conn, org, id, &prepared.names)?;
            for ident in usable_identifiers(patient) {
                own.execute(params![org, system_key(ident), ident.value, id])?;
            }
            Ok(id)
        }
    }
}

pub(crate) fn get_patient(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<Patient>, StoreError> {
    match parse_id(id) {
        Some(id) => load_patient(conn, org, id),
        None => Ok(None),
    }
}

pub(crate) fn list_patients(
    conn: &Connection,
    org: &str,
    limit: usize,
    offset: usize,
) -> Result<Vec<Patient>, StoreError> {
    let (limit, offset) = limit_offset(limit, offset);
    let mut stmt = conn.prepare_cached(
        "SELECT id, json FROM patients WHERE org = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt
        .query_map(params![org, limit, offset], |row| {
            let mut p: Patient = json_col(row, 1)?;
            p.id = row.get::<_, i64>(0)?.to_string();
            Ok(p)
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------- appointments

/// `appointments.json`: the order and visit (the columns hold the rest).
#[derive(serde::Serialize)]
struct AppointmentDocRef<'a> {
    order: &'a Order,
    visit: &'a Visit,
}

#[derive(serde::Deserialize)]
struct AppointmentDoc {
    order: Order,
    visit: Visit,
}

pub(super) fn appointment_doc(order: &Order, visit: &Visit) -> Result<String, StoreError> {
    to_json_text(&AppointmentDocRef { order, visit })
}

/// The appointment from the first 8 columns of [`APPOINTMENT_COLS`].
pub(super) fn appointment_only_from_row(row: &Row<'_>) -> rusqlite::Result<Appointment> {
    let id: i64 = row.get(0)?;
    let status_text: String = row.get(4)?;
    let status = AppointmentStatus::parse(&status_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            Type::Text,
            format!("unknown appointment status {status_text:?}").into(),
        )
    })?;
    let patient_id: i64 = row.get(6)?;
    let AppointmentDoc { order, visit } = json_col(row, 7)?;
    Ok(Appointment {
        id: id.to_string(),
        org: row.get(1)?,
        integration: row.get(2)?,
        group: row.get(3)?,
        status,
        scheduled_at: row.get(5)?,
        order,
        visit,
        patient_id: patient_id.to_string(),
    })
}

fn appointment_from_row(row: &Row<'_>) -> rusqlite::Result<(Appointment, Patient)> {
    let appointment = appointment_only_from_row(row)?;
    let mut patient: Patient = json_col(row, 8)?;
    patient.id.clone_from(&appointment.patient_id);
    Ok((appointment, patient))
}

/// The undeleted appointment of `org` with this order key: by placer number
/// first, then by filler number; the newest if several match.
fn find_appointment_id(
    conn: &Connection,
    org: &str,
    key: &OrderKey,
) -> Result<Option<i64>, StoreError> {
    if let Some(placer) = non_empty(key.placer_order.as_deref()) {
        let found = conn
            .prepare_cached(
                "SELECT id FROM appointments INDEXED BY appointments_placer \
                 WHERE org = ?1 AND integration = ?2 AND placer_order = ?3 \
                   AND deleted_at IS NULL ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![org, key.integration, placer], |row| row.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(filler) = non_empty(key.filler_order.as_deref()) {
        return Ok(conn
            .prepare_cached(
                "SELECT id FROM appointments INDEXED BY appointments_filler \
                 WHERE org = ?1 AND integration = ?2 AND filler_order = ?3 \
                   AND deleted_at IS NULL ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![org, key.integration, filler], |row| row.get(0))
            .optional()?);
    }
    Ok(None)
}

fn load_appointment(
    conn: &Connection,
    org: &str,
    id: i64,
) -> Result<Option<(Appointment, Patient)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {APPOINTMENT_COLS} FROM appointments a JOIN patients p ON p.id = a.patient_id \
             WHERE a.id = ?1 AND a.org = ?2 AND a.deleted_at IS NULL"
        ))?
        .query_row(params![id, org], appointment_from_row)
        .optional()?)
}

/// [`load_appointment`] without its patient (no join, no patient JSON).
fn load_appointment_only(
    conn: &Connection,
    org: &str,
    id: i64,
) -> Result<Option<Appointment>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT a.id, a.org, a.integration, a.grp, a.status, a.scheduled_at, \
             a.patient_id, a.json FROM appointments a \
             WHERE a.id = ?1 AND a.org = ?2 AND a.deleted_at IS NULL",
        )?
        .query_row(params![id, org], appointment_only_from_row)
        .optional()?)
}

fn ensure_group(conn: &Connection, org: &str, name: &str, at: Millis) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO device_groups (org, name, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![org, name, at])?;
    Ok(())
}

fn insert_appointment(
    conn: &Connection,
    org: &str,
    appointment: &Appointment,
    doc: &str,
    patient_id: i64,
    message_id: i64,
    at: Millis,
) -> Result<i64, StoreError> {
    if !appointment.group.is_empty() {
        ensure_group(conn, org, &appointment.group, at)?;
    }
    conn.prepare_cached(
        "INSERT INTO appointments (org, integration, placer_order, filler_order, grp, status, \
         scheduled_at, patient_id, source_message_id, created_at, updated_at, json) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'scheduled', ?6, ?7, ?8, ?9, ?9, ?10)",
    )?
    .execute(params![
        org,
        appointment.integration,
        non_empty(appointment.order.placer_order.as_deref()),
        non_empty(appointment.order.filler_order.as_deref()),
        appointment.group,
        appointment.scheduled_at,
        patient_id,
        message_id,
        at,
        doc,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// What every appointment update keeps of `new`: its order and visit merged
/// field by field into `old`'s, and its group when it names one (created if
/// new).
pub(crate) fn merge_appointment(
    conn: &Connection,
    org: &str,
    old: &Appointment,
    new: &Appointment,
    at: Millis,
) -> Result<(Order, Visit, String), StoreError> {
    let group = if new.group.is_empty() {
        old.group.clone()
    } else {
        new.group.clone()
    };
    if !group.is_empty() {
        ensure_group(conn, org, &group, at)?;
    }
    Ok((
        merge_order(&old.order, &new.order),
        merge_visit(&old.visit, &new.visit),
        group,
    ))
}

/// Merges `new` into the stored appointment `old`: present fields overwrite.
/// `reopen` turns a cancelled appointment back into a scheduled one.
#[allow(clippy::too_many_arguments)]
fn update_appointment(
    conn: &Connection,
    org: &str,
    id: i64,
    old: &Appointment,
    new: &Appointment,
    patient_id: i64,
    message_id: i64,
    at: Millis,
    reopen: bool,
) -> Result<(), StoreError> {
    let (order, visit, group) = merge_appointment(conn, org, old, new, at)?;
    let scheduled_at = new.scheduled_at.as_ref().or(old.scheduled_at.as_ref());
    let status = if reopen && old.status == AppointmentStatus::Cancelled {
        AppointmentStatus::Scheduled
    } else {
        old.status
    };
    let reopened = status != old.status;
    conn.prepare_cached(
        "UPDATE appointments SET placer_order = ?2, filler_order = ?3, grp = ?4, status = ?5, \
         scheduled_at = ?6, patient_id = ?7, source_message_id = ?8, updated_at = ?9, \
         json = ?10, \
         cancelled_at = CASE WHEN ?11 THEN NULL ELSE cancelled_at END, \
         cancel_reason = CASE WHEN ?11 THEN NULL ELSE cancel_reason END \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        non_empty(order.placer_order.as_deref()),
        non_empty(order.filler_order.as_deref()),
        group,
        status.as_str(),
        scheduled_at,
        patient_id,
        message_id,
        at,
        appointment_doc(&order, &visit)?,
        reopened,
    ])?;
    Ok(())
}

/// The undeleted appointment with this key: (id, patient id, appointment).
fn appointment_by_key(
    conn: &Connection,
    org: &str,
    key: &OrderKey,
) -> Result<Option<(i64, i64, Appointment)>, StoreError> {
    let Some(id) = find_appointment_id(conn, org, key)? else {
        return Ok(None);
    };
    let Some(appointment) = load_appointment_only(conn, org, id)? else {
        return Ok(None);
    };
    let patient_id = parse_id(&appointment.patient_id).ok_or_else(|| {
        StoreError::Sqlite(format!(
            "appointment {id} has patient id {:?}",
            appointment.patient_id
        ))
    })?;
    Ok(Some((id, patient_id, appointment)))
}

fn key_of(appointment: &Appointment) -> OrderKey {
    OrderKey {
        integration: appointment.integration.clone(),
        placer_order: appointment.order.placer_order.clone(),
        filler_order: appointment.order.filler_order.clone(),
    }
}

/// The JSON work of one [`WorklistAction`] that does not need the database:
/// computed by the async caller (on a tokio worker) before the op is queued,
/// because the writer thread is what limits the order path.
pub(crate) struct PreparedAction {
    patient: Option<PreparedPatient>,
    /// `appointments.json` of a new appointment (`CreateAppointment`).
    new_doc: Option<String>,
}

/// One [`PreparedAction`] per action, in order.
pub(crate) fn prepare_actions(
    actions: &[WorklistAction],
) -> Result<Vec<PreparedAction>, StoreError> {
    actions
        .iter()
        .map(|action| {
            Ok(match action {
                WorklistAction::UpsertPatient { patient }
                | WorklistAction::UpdateAppointment { patient, .. } => PreparedAction {
                    patient: Some(PreparedPatient::new(patient)?),
                    new_doc: None,
                },
                WorklistAction::CreateAppointment {
                    patient,
                    appointment,
                } => PreparedAction {
                    patient: Some(PreparedPatient::new(patient)?),
                    new_doc: Some(appointment_doc(&appointment.order, &appointment.visit)?),
                },
                WorklistAction::CancelAppointment { .. } => PreparedAction {
                    patient: None,
                    new_doc: None,
                },
            })
        })
        .collect()
}

/// Applies the worklist actions of a message just inserted as `message_id`.
/// `prepared` is [`prepare_actions`] of `actions`.
pub(crate) fn apply_actions(
    conn: &Connection,
    org: &str,
    message_id: i64,
    at: Millis,
    actions: &[WorklistAction],
    prepared: &[PreparedAction],
) -> Result<Vec<crate::domain::WorklistEffect>, StoreError> {
    if prepared.len() != actions.len() {
        return Err(StoreError::Sqlite(
            "worklist actions were not prepared".into(),
        ));
    }
    let mut effects = Vec::with_capacity(actions.len());
    for (action, prep) in actions.iter().zip(prepared) {
        let prepared_patient = || {
            prep.patient
                .as_ref()
                .ok_or_else(|| StoreError::Sqlite("worklist patient was not prepared".into()))
        };
        let effect = match action {
            WorklistAction::UpsertPatient { patient } => WorklistEffect {
                patient_id: Some(
                    upsert_patient(conn, org, patient, prepared_patient()?, at, None)?.to_string(),
                ),
                ..WorklistEffect::default()
            },
            WorklistAction::CreateAppointment {
                patient,
                appointment,
            } => {
                let existing = appointment_by_key(conn, org, &key_of(appointment))?;
                let fallback = existing.as_ref().map(|(_, pid, _)| *pid);
                let patient_id =
                    upsert_patient(conn, org, patient, prepared_patient()?, at, fallback)?;
                let appointment_id = match existing {
                    Some((id, _, old)) => {
                        update_appointment(
                            conn,
                            org,
                            id,
                            &old,
                            appointment,
                            patient_id,
                            message_id,
                            at,
                            true,
                        )?;
                        old.id
                    }
                    None => {
                        let doc = match &prep.new_doc {
                            Some(doc) => doc,
                            None => {
                                return Err(StoreError::Sqlite(
                                    "appointment document was not prepared".into(),
                                ));
                            }
                        };
                        insert_appointment(conn, org, appointment, doc, patient_id, message_id, at)?
                            .to_string()
                    }
                };
                WorklistEffect {
                    patient_id: Some(patient_id.to_string()),
                    appointment_id: Some(appointment_id),
                    not_found: false,
                }
            }
            WorklistAction::UpdateAppointment {
                key,
                patient,
                appointment,
            } => match appointment_by_key(conn, org, key)? {
                Some((id, old_patient, old)) => {
                    let patient_id = upsert_patient(
                        conn,
                        org,
                        patient,
                        prepared_patient()?,
                        at,
                        Some(old_patient),
                    )?;
                    update_appointment(
                        conn,
                        org,
                        id,
                        &old,
                        appointment,
                        patient_id,
                        message_id,
                        at,
                        false,
                    )?;
                    WorklistEffect {
                        patient_id: Some(patient_id.to_string()),
                        appointment_id: Some(old.id),
                        not_found: false,
                    }
                }
                None => WorklistEffect {
                    not_found: true,
                    ..WorklistEffect::default()
                },
            },
            WorklistAction::CancelAppointment { key, reason } => {
                match find_appointment_id(conn, org, key)? {
                    Some(id) => {
                        let patient_id: i64 = conn
                            .prepare_cached(
                                "UPDATE appointments SET status = 'cancelled', \
                                 cancel_reason = ?2, cancelled_at = ?3, updated_at = ?3, \
                                 source_message_id = ?4 WHERE id = ?1 RETURNING patient_id",
                            )?
                            .query_row(params![id, reason, at, message_id], |row| row.get(0))?;
                        WorklistEffect {
                            patient_id: Some(patient_id.to_string()),
                            appointment_id: Some(id.to_string()),
                            not_found: false,
                        }
                    }
                    None => WorklistEffect {
                        not_found: true,
                        ..WorklistEffect::default()
                    },
                }
            }
        };
        effects.push(effect);
    }
    Ok(effects)
}

pub(crate) fn find_appointment(
    conn: &Connection,
    org: &str,
    key: &OrderKey,
) -> Result<Option<Appointment>, StoreError> {
    Ok(match find_appointment_id(conn, org, key)? {
        Some(id) => load_appointment_only(conn, org, id)?,
        None => None,
    })
}

pub(crate) fn get_appointment(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<(Appointment, Patient)>, StoreError> {
    match parse_id(id) {
        Some(id) => load_appointment(conn, org, id),
        None => Ok(None),
    }
}

pub(crate) fn worklist(
    conn: &Connection,
    org: &str,
    group: &str,
    limit: usize,
) -> Result<Vec<(Appointment, Patient)>, StoreError> {
    // The WHERE fixes the index's prefix (org, grp, status, deleted_at), so the
    // open rows come out of it in display order.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {APPOINTMENT_COLS} FROM appointments a INDEXED BY appointments_worklist \
         JOIN patients p ON p.id = a.patient_id \
         WHERE a.org = ?1 AND a.grp = ?2 AND a.status = 'scheduled' AND a.deleted_at IS NULL \
         ORDER BY a.scheduled_at, a.id LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![org, group, limit], appointment_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn list_appointments(
    conn: &Connection,
    q: &AppointmentQuery,
) -> Result<Vec<(Appointment, Patient)>, StoreError> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let patient_id = match q.patient_id.as_deref().map(parse_id) {
        Some(None) => return Ok(Vec::new()),
        Some(Some(id)) => Some(id),
        None => None,
    };
    let status = q.status.map(AppointmentStatus::as_str);
    let (limit, offset) = limit_offset(q.limit, q.offset);
    let mut sql = format!(
        "SELECT {APPOINTMENT_COLS} FROM appointments a JOIN patients p ON p.id = a.patient_id \
         WHERE a.org = ? AND a.deleted_at IS NULL"
    );
    let mut args: Vec<&dyn ToSql> = vec![&q.org];
    let filters: [(&str, Option<&dyn ToSql>); 6] = [
        (" AND a.grp = ?", q.group.as_ref().map(|v| v as &dyn ToSql)),
        (
            " AND a.status = ?",
            status.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND a.integration = ?",
            q.integration.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND a.patient_id = ?",
            patient_id.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND a.scheduled_at >= ?",
            q.scheduled_from.as_ref().map(|v| v as &dyn ToSql),
        ),
        (
            " AND a.scheduled_at < ?",
            q.scheduled_to.as_ref().map(|v| v as &dyn ToSql),
        ),
    ];
    for (clause, value) in filters {
        if let Some(value) = value {
            sql.push_str(clause);
            args.push(value);
        }
    }
    sql.push_str(" ORDER BY a.scheduled_at, a.id LIMIT ? OFFSET ?");
    args.push(&limit);
    args.push(&offset);
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(args.as_slice(), appointment_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn delete_appointment(
    conn: &Connection,
    org: &str,
    id: &str,
    at: Millis,
) -> Result<(), StoreError> {
    let Some(id) = parse_id(id) else {
        return Err(StoreError::NotFound);
    };
    let changed = conn
        .prepare_cached(
            "UPDATE appointments SET deleted_at = ?3, updated_at = ?3 \
             WHERE id = ?1 AND org = ?2 AND deleted_at IS NULL",
        )?
        .execute(params![id, org, at])?;
    one_row_changed(changed)
}

// ---------------------------------------------------------------- groups

fn group_exists(conn: &Connection, org: &str, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM device_groups WHERE org = ?1 AND name = ?2")?
        .query_row(params![org, name], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn create_group(
    conn: &Connection,
    org: &str,
    name: &str,
    at: Millis,
) -> Result<DeviceGroup, StoreError> {
    if group_exists(conn, org, name)? {
        return Err(StoreError::Conflict(format!(
            "device group {name:?} already exists"
        )));
    }
    ensure_group(conn, org, name, at)?;
    Ok(DeviceGroup {
        org: org.to_owned(),
        name: name.to_owned(),
    })
}

pub(crate) fn list_groups(conn: &Connection, org: &str) -> Result<Vec<GroupInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.name, \
           (SELECT COUNT(*) FROM devices d WHERE d.org = g.org AND d.grp = g.name), \
           (SELECT COUNT(*) FROM appointments a INDEXED BY appointments_worklist \
              WHERE a.org = g.org AND a.grp = g.name \
                AND a.status = 'scheduled' AND a.deleted_at IS NULL) \
         FROM device_groups g WHERE g.org = ?1 ORDER BY g.name",
    )?;
    let rows = stmt
        .query_map([org], |row| {
            Ok(GroupInfo {
                name: row.get(0)?,
                devices: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                open_appointments: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn rename_group(
    conn: &Connection,
    org: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    if !group_exists(conn, org, from)? {
        return Err(StoreError::NotFound);
    }
    if from == to {
        return Ok(());
    }
    if group_exists(conn, org, to)? {
        return Err(StoreError::Conflict(format!(
            "device group {to:?} already exists"
        )));
    }
    // The devices follow through their foreign key (ON UPDATE CASCADE).
    conn.prepare_cached("UPDATE device_groups SET name = ?3 WHERE org = ?1 AND name = ?2")?
        .execute(params![org, from, to])?;
    conn.prepare_cached(
        "UPDATE appointments INDEXED BY appointments_worklist SET grp = ?3 \
         WHERE org = ?1 AND grp = ?2",
    )?
    .execute(params![org, from, to])?;
    Ok(())
}

pub(crate) fn delete_group(conn: &Connection, org: &str, name: &str) -> Result<(), StoreError> {
    if !group_exists(conn, org, name)? {
        return Err(StoreError::NotFound);
    }
    let devices: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM devices WHERE org = ?1 AND grp = ?2")?
        .query_row(params![org, name], |row| row.get(0))?;
    if devices > 0 {
        return Err(StoreError::Conflict(format!(
            "device group {name:?} still has {devices} device(s)"
        )));
    }
    conn.prepare_cached("DELETE FROM device_groups WHERE org = ?1 AND name = ?2")?
        .execute(params![org, name])?;
    Ok(())
}

// ---------------------------------------------------------------- devices

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get::<_, i64>(0)?.to_string(),
        org: row.get(1)?,
        name: row.get(2)?,
        group: row.get(3)?,
        created_at: row.get(4)?,
        last_seen_at: row.get(5)?,
    })
}

fn token_in_use(conn: &Connection, table: &str, token_hash: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT 1 FROM {table} WHERE token_hash = ?1"))?
        .query_row([token_hash], |_| Ok(()))
        .optional()?
        .is_some())
}

fn token_conflict() -> StoreError {
    StoreError::Conflict("token hash already in use".into())
}

pub(crate) fn create_device(
    conn: &Connection,
    org: &str,
    name: &str,
    group: &str,
    token_hash: &str,
    at: Millis,
) -> Result<Device, StoreError> {
    if token_in_use(conn, "devices", token_hash)? {
        return Err(token_conflict());
    }
    ensure_group(conn, org, group, at)?;
    conn.prepare_cached(
        "INSERT INTO devices (org, name, grp, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, name, group, token_hash, at])?;
    Ok(Device {
        id: conn.last_insert_rowid().to_string(),
        org: org.to_owned(),
        name: name.to_owned(),
        group: group.to_owned(),
        last_seen_at: None,
        created_at: at,
    })
}

pub(crate) fn list_devices(conn: &Connection, org: &str) -> Result<Vec<Device>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLS} FROM devices WHERE org = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([org], device_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn get_device(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<Device>, StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE id = ?1 AND org = ?2"
        ))?
        .query_row(params![id, org], device_from_row)
        .optional()?)
}

pub(crate) fn device_by_token_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<Device>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], device_from_row)
        .optional()?)
}

/// The device's id if it exists in `org`.
fn device_id_in(conn: &Connection, org: &str, id: &str) -> Result<i64, StoreError> {
    let id = parse_id(id).ok_or(StoreError::NotFound)?;
    conn.prepare_cached("SELECT id FROM devices WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

pub(crate) fn rename_device(
    conn: &Connection,
    org: &str,
    id: &str,
    name: &str,
) -> Result<(), StoreError> {
    let id = device_id_in(conn, org, id)?;
    conn.prepare_cached("UPDATE devices SET name = ?2 WHERE id = ?1")?
        .execute(params![id, name])?;
    Ok(())
}

pub(crate) fn move_device(
    conn: &Connection,
    org: &str,
    id: &str,
    group: &str,
    at: Millis,
) -> Result<(), StoreError> {
    let id = device_id_in(conn, org, id)?;
    ensure_group(conn, org, group, at)?;
    conn.prepare_cached("UPDATE devices SET grp = ?2 WHERE id = ?1")?
        .execute(params![id, group])?;
    Ok(())
}

pub(crate) fn delete_device(conn: &Connection, org: &str, id: &str) -> Result<(), StoreError> {
    let id = device_id_in(conn, org, id)?;
    conn.prepare_cached("DELETE FROM devices WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub(crate) fn rotate_device_token(
    conn: &Connection,
    org: &str,
    id: &str,
    new_hash: &str,
) -> Result<(), StoreError> {
    let id = device_id_in(conn, org, id)?;
    if token_in_use(conn, "devices", new_hash)? {
        return Err(token_conflict());
    }
    conn.prepare_cached("UPDATE devices SET token_hash = ?2 WHERE id = ?1")?
        .execute(params![id, new_hash])
        .map_err(|e| {
            if is_unique_violation(&e) {
                token_conflict()
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// Rows whose last-use time is kept, written at most every [`TOUCH_INTERVAL`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seen {
    Device,
    ApiToken,
}

impl Seen {
    fn read_sql(self) -> &'static str {
        match self {
            Seen::Device => "SELECT last_seen_at FROM devices WHERE id = ?1",
            Seen::ApiToken => "SELECT last_used_at FROM api_tokens WHERE id = ?1",
        }
    }

    fn touch_sql(self) -> &'static str {
        match self {
            Seen::Device => {
                "UPDATE devices SET last_seen_at = ?2 \
                 WHERE id = ?1 AND (last_seen_at IS NULL OR last_seen_at <= ?2 - ?3)"
            }
            Seen::ApiToken => {
                "UPDATE api_tokens SET last_used_at = ?2 \
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)"
            }
        }
    }
}

/// The last-use time of a row, or `NotFound`. Read before deciding to write.
pub(crate) fn last_seen(
    conn: &Connection,
    kind: Seen,
    id: i64,
) -> Result<Option<Millis>, StoreError> {
    conn.prepare_cached(kind.read_sql())?
        .query_row([id], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Sets the last-use time to `at` unless it is already less than
/// [`TOUCH_INTERVAL`] old (or newer). Returns whether it wrote.
pub(crate) fn touch(
    conn: &Connection,
    kind: Seen,
    id: i64,
    at: Millis,
) -> Result<bool, StoreError> {
    let changed =
        conn.prepare_cached(kind.touch_sql())?
            .execute(params![id, at, TOUCH_INTERVAL])?;
    Ok(changed > 0)
}

/// True when a stored `last` time is old enough for a new touch at `at`.
pub(crate) fn touch_due(last: Option<Millis>, at: Millis) -> bool {
    last.is_none_or(|last| last <= at.saturating_sub(TOUCH_INTERVAL))
}

// ---------------------------------------------------------------- API tokens

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: row.get::<_, i64>(0)?.to_string(),
        org: row.get(1)?,
        role: row.get(2)?,
        name: row.get(3)?,
        created_at: row.get(4)?,
        last_used_at: row.get(5)?,
    })
}

pub(crate) fn create_api_token(
    conn: &Connection,
    org: &str,
    role: &str,
    name: &str,
    token_hash: &str,
    at: Millis,
) -> Result<ApiToken, StoreError> {
    if token_in_use(conn, "api_tokens", token_hash)? {
        return Err(token_conflict());
    }
    conn.prepare_cached(
        "INSERT INTO api_tokens (org, role, name, token_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![org, role, name, token_hash, at])?;
    Ok(ApiToken {
        id: conn.last_insert_rowid().to_string(),
        org: org.to_owned(),
        role: role.to_owned(),
        name: name.to_owned(),
        created_at: at,
        last_used_at: None,
    })
}

pub(crate) fn api_token_by_hash(
    conn: &Connection,
    token_hash: &str,
) -> Result<Option<ApiToken>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], token_from_row)
        .optional()?)
}

pub(crate) fn list_api_tokens(conn: &Connection, org: &str) -> Result<Vec<ApiToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens WHERE org = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([org], token_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn delete_api_token(conn: &Connection, org: &str, id: &str) -> Result<(), StoreError> {
    let Some(id) = parse_id(id) else {
        return Err(StoreError::NotFound);
    };
    let changed = conn
        .prepare_cached("DELETE FROM api_tokens WHERE id = ?1 AND org = ?2")?
        .execute(params![id, org])?;
    one_row_changed(changed)
}

// ---------------------------------------------------------------- measurements

pub(super) fn measurement_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<(Measurement, Millis, Option<i64>)> {
    let mut m: Measurement = json_col(row, 8)?;
    m.id = row.get::<_, i64>(0)?.to_string();
    m.org = row.get(1)?;
    m.appointment_id = row.get::<_, i64>(2)?.to_string();
    m.device_id = row.get::<_, Option<String>>(3)?.unwrap_or_default();
    m.kind = row.get(4)?;
    m.performed_at = row.get(5)?;
    m.report_pdf = Vec::new();
    Ok((m, row.get(6)?, row.get(7)?))
}

fn deliveries_meta(conn: &Connection, message_id: i64) -> Result<Vec<Delivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_META_COLS} FROM deliveries WHERE message_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([message_id], delivery_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn stored_measurement(
    conn: &Connection,
    (measurement, created_at, message_id): (Measurement, Millis, Option<i64>),
) -> Result<StoredMeasurement, StoreError> {
    let deliveries = match message_id {
        Some(id) => deliveries_meta(conn, id)?,
        None => Vec::new(),
    };
    Ok(StoredMeasurement {
        measurement,
        created_at,
        message_id,
        deliveries,
    })
}

pub(crate) fn record_measurement(
    conn: &Connection,
    m: &Measurement,
    at: Millis,
    outbound: Option<&OutboundMessage>,
) -> Result<MeasurementIds, StoreError> {
    // Every check first: a refusal must not have written anything.
    let appointment_id = parse_id(&m.appointment_id).ok_or(StoreError::NotFound)?;
    let open = conn
        .prepare_cached(
            "SELECT 1 FROM appointments WHERE id = ?1 AND org = ?2 AND deleted_at IS NULL",
        )?
        .query_row(params![appointment_id, m.org], |_| Ok(()))
        .optional()?;
    if open.is_none() {
        return Err(StoreError::NotFound);
    }
    if let Some(out) = outbound
        && out.org != m.org
    {
        return Err(StoreError::Conflict(format!(
            "outbound message of organisation {:?} for a measurement of {:?}",
            out.org, m.org
        )));
    }

    let (message_id, delivery_ids) = match outbound {
        Some(out) => {
            conn.prepare_cached(
                "INSERT INTO messages (org, channel, direction, received_at, control_id, \
                 message_type, status, raw) VALUES (?1, ?2, 'out', ?3, ?4, ?5, 'accepted', ?6)",
            )?
            .execute(params![
                out.org,
                out.channel,
                out.created_at,
                out.control_id,
                out.message_type,
                out.raw,
            ])?;
            let message_id = conn.last_insert_rowid();
            let ids =
                insert_deliveries(conn, message_id, &out.org, out.created_at, &out.deliveries)?;
            (Some(message_id), ids)
        }
        None => (None, Vec::new()),
    };

    let mut doc = m.clone();
    doc.id = String::new();
    doc.report_pdf = Vec::new();
    let pdf = (!m.report_pdf.is_empty()).then_some(m.report_pdf.as_slice());
    conn.prepare_cached(
        "INSERT INTO measurements (org, appointment_id, device_id, kind, performed_at, \
         created_at, message_id, json, report_pdf) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.org,
        appointment_id,
        non_empty(Some(m.device_id.as_str())),
        m.kind,
        m.performed_at,
        at,
        message_id,
        to_json_text(&doc)?,
        pdf,
    ])?;
    let measurement_id = conn.last_insert_rowid();
    conn.prepare_cached(
        "UPDATE appointments SET status = 'completed', updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![appointment_id, at])?;
    Ok(MeasurementIds {
        measurement_id: measurement_id.to_string(),
        message_id,
        delivery_ids,
    })
}

pub(crate) fn get_measurement(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<StoredMeasurement>, StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    // One read transaction: the row and its deliveries from the same snapshot.
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = (|| {
        let row = conn
            .prepare_cached(&format!(
                "SELECT {MEASUREMENT_COLS}, report_pdf FROM measurements \
                 WHERE id = ?1 AND org = ?2"
            ))?
            .query_row(params![id, org], |row| {
                let parts = measurement_from_row(row)?;
                let pdf: Option<Vec<u8>> = row.get(9)?;
                Ok((parts, pdf))
            })
            .optional()?;
        match row {
            Some((parts, pdf)) => {
                let mut stored = stored_measurement(conn, parts)?;
                stored.measurement.report_pdf = pdf.unwrap_or_default();
                Ok(Some(stored))
            }
            None => Ok(None),
        }
    })();
    conn.prepare_cached("COMMIT")?.execute([])?;
    result
}

pub(crate) fn list_measurements(
    conn: &Connection,
    org: &str,
    appointment_id: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<StoredMeasurement>, StoreError> {
    let appointment_id = match appointment_id.map(parse_id) {
        Some(None) => return Ok(Vec::new()),
        Some(Some(id)) => Some(id),
        None => None,
    };
    let (limit, offset) = limit_offset(limit, offset);
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = (|| {
        let rows: Vec<_> = match appointment_id {
            Some(aid) => conn
                .prepare_cached(&format!(
                    "SELECT {MEASUREMENT_COLS} FROM measurements \
                     WHERE org = ?1 AND appointment_id = ?2 ORDER BY id DESC LIMIT ?3 OFFSET ?4"
                ))?
                .query_map(params![org, aid, limit, offset], measurement_from_row)?
                .collect::<Result<_, _>>()?,
            None => conn
                .prepare_cached(&format!(
                    "SELECT {MEASUREMENT_COLS} FROM measurements \
                     WHERE org = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(params![org, limit, offset], measurement_from_row)?
                .collect::<Result<_, _>>()?,
        };
        rows.into_iter()
            .map(|parts| stored_measurement(conn, parts))
            .collect::<Result<Vec<_>, _>>()
    })();
    conn.prepare_cached("COMMIT")?.execute([])?;
    result
}

pub(crate) fn measurement_pdf(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT report_pdf FROM measurements WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |row| row.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

pub(crate) fn pdf_for_message(
    conn: &Connection,
    message_id: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT report_pdf FROM measurements WHERE message_id = ?1")?
        .query_row(params![message_id], |row| row.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

pub(crate) fn resend_measurement(
    conn: &Connection,
    org: &str,
    id: &str,
    at: Millis,
) -> Result<Vec<i64>, StoreError> {
    let id = parse_id(id).ok_or(StoreError::NotFound)?;
    let message_id: i64 = conn
        .prepare_cached("SELECT message_id FROM measurements WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .ok_or(StoreError::NotFound)?;
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM deliveries WHERE message_id = ?1 ORDER BY id")?
        .query_map([message_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Err(StoreError::NotFound);
    }
    for &d in &ids {
        super::sql::requeue_delivery(conn, d, at)?;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    /// The shallow JSON merge the typed one replaced: every key of `new` that
    /// carries a value (not null, not an empty string, list or object)
    /// overwrites the same key of `old`.
    fn json_merged<T>(old: &T, new: &T) -> T
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut base = serde_json::to_value(old).unwrap();
        let Value::Object(new) = serde_json::to_value(new).unwrap() else {
            panic!("not an object")
        };
        let Value::Object(out) = &mut base else {
            panic!("not an object")
        };
        for (key, value) in new {
            let empty = match &value {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            if !empty {
                out.insert(key, value);
            }
        }
        serde_json::from_value(base).unwrap()
    }

    /// Variants of a model struct built from `full` (every field set): empty,
    /// full, "blank" (every field present but empty: `""`, `[]`, `{}`, a code or
    /// value of `""`), and mixes of those field by field.
    fn variants<T>(full: Value, full2: Value) -> Vec<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let Value::Object(full) = full else { panic!() };
        let Value::Object(full2) = full2 else {
            panic!()
        };
        let blank_of = |v: &Value| match v {
            Value::String(_) => json!(""),
            Value::Array(_) => json!([]),
            Value::Object(o) if o.contains_key("code") => json!({ "code": "" }),
            Value::Object(o) if o.contains_key("value") => json!({ "value": "" }),
            Value::Object(_) => json!({}),
            other => other.clone(),
        };
        let pick = |f: &dyn Fn(usize, &String, &Value) -> Option<Value>| -> T {
            let mut m = Map::new();
            for (i, (k, v)) in full.iter().enumerate() {
                if let Some(v) = f(i, k, v) {
                    m.insert(k.clone(), v);
                }
            }
            let t: T = serde_json::from_value(Value::Object(m.clone())).unwrap();
            t
        };
        let all: T = pick(&|_, _, v| Some(v.clone()));
        // Every key of `full` is a field of T (a misspelt one would be dropped).
        let Value::Object(round) = serde_json::to_value(&all).unwrap() else {
            panic!()
        };
        for (k, v) in &full {
            assert_eq!(round.get(k), Some(v), "{k}");
        }
        vec![
            pick(&|_, _, _| None),
            all,
            pick(&|_, k, _| full2.get(k).cloned()),
            pick(&|_, _, v| Some(blank_of(v))),
            pick(&|i, _, v| (i % 2 == 0).then(|| v.clone())),
            pick(&|i, k, v| {
                if i % 3 == 0 {
                    Some(blank_of(v))
                } else {
                    full2.get(k).cloned()
                }
            }),
            pick(&|i, _, v| (i % 3 == 1).then(|| v.clone())),
        ]
    }

    fn provider(n: &str) -> Value {
        json!({ "id": format!("{n}1"), "family": format!("F{n}"), "given": [n], "prefix": "DR" })
    }

    fn order(n: &str) -> Value {
        let mut m = Map::new();
        for f in [
            "request_date",
            "control",
            "placer_order",
            "filler_order",
            "group_number",
            "status",
            "response_flag",
            "timing",
            "transaction_at",
            "callback_phone",
            "effective_at",
            "priority",
            "requested_at",
            "observation_at",
            "diagnostic_section",
            "timing_block",
            "technician",
            "scheduled_at",
        ] {
            m.insert(f.into(), json!(format!("{f}-{n}")));
        }
        for f in [
            "entered_by",
            "verified_by",
            "ordering_provider",
            "obr_ordering_provider",
        ] {
            m.insert(f.into(), provider(n));
        }
        for f in ["procedure", "procedure_code"] {
            m.insert(
                f.into(),
                json!({ "code": format!("C{n}"), "display": "d", "system": "s" }),
            );
        }
        Value::Object(m)
    }

    fn visit(n: &str) -> Value {
        json!({
            "class": format!("O{n}"), "location": format!("L{n}"), "admission_type": "R",
            "attending": provider(n), "service": "CAR",
            "visit_number": { "value": format!("VN{n}"), "system": "HIS", "type": "VN" },
            "admit_at": "2025", "discharge_at": "2026",
        })
    }

    fn patient(n: &str) -> Value {
        json!({
            "family": format!("F{n}"), "given": [n, "M"], "suffix": "JR", "prefix": "DR",
            "birth_date": "1975-10-22", "sex": "male",
            "race": { "code": format!("R{n}"), "display": "White" }, "race_code": "white",
            "language": "es",
            "address": { "street": format!("S{n}"), "city": "Madrid", "type": "H" },
            "phone": "+34", "email": format!("{n}@example.org"),
        })
    }

    #[test]
    fn typed_merge_matches_the_json_merge() {
        let orders: Vec<Order> = variants(order("a"), order("b"));
        for old in &orders {
            for new in &orders {
                assert_eq!(
                    merge_order(old, new),
                    json_merged(old, new),
                    "{old:?} <- {new:?}"
                );
            }
        }
        let visits: Vec<Visit> = variants(visit("a"), visit("b"));
        for old in &visits {
            for new in &visits {
                assert_eq!(
                    merge_visit(old, new),
                    json_merged(old, new),
                    "{old:?} <- {new:?}"
                );
            }
        }
        let idents = [
            vec![],
            vec![Identifier {
                value: "1".into(),
                system: Some("HIS".into()),
                kind: Some("MR".into()),
            }],
            vec![
                Identifier {
                    value: "1".into(),
                    system: Some("HIS".into()),
                    kind: None,
                },
                Identifier {
                    value: "2".into(),
                    system: None,
                    kind: Some("SS".into()),
                },
                Identifier {
                    value: String::new(),
                    system: None,
                    kind: None,
                },
            ],
        ];
        let mut patients: Vec<Patient> = variants(patient("a"), patient("b"));
        patients.push(Patient {
            address: Some(Address::default()),
            race: Some(Coded::default()),
            ..Patient::default()
        });
        for (i, old) in patients.iter().enumerate() {
            for (j, new) in patients.iter().enumerate() {
                let old = Patient {
                    identifiers: idents[i % 3]
                        .iter()
                        .filter(|x| !x.value.is_empty())
                        .cloned()
                        .collect(),
                    ..old.clone()
                };
                let new = Patient {
                    id: "7".into(),
                    identifiers: idents[j % 3].clone(),
                    ..new.clone()
                };
                // The former merge: fields through JSON, then the identifiers.
                let mut expected = json_merged(
                    &old,
                    &Patient {
                        id: String::new(),
                        identifiers: Vec::new(),
                        ..new.clone()
                    },
                );
                for ident in usable_identifiers(&new) {
                    match expected
                        .identifiers
                        .iter_mut()
                        .find(|o| same_identifier(o, ident))
                    {
                        Some(e) => {
                            if ident.kind.is_some() {
                                e.kind = ident.kind.clone();
                            }
                        }
                        None => expected.identifiers.push(ident.clone()),
                    }
                }
                assert_eq!(merge_patient(&old, &new), expected, "{old:?} <- {new:?}");
            }
        }
    }

    #[test]
    fn a_stored_copy_of_the_incoming_patient_needs_no_merge() {
        let p: Patient = serde_json::from_value(patient("a")).unwrap();
        let p = Patient {
            identifiers: vec![Identifier {
                value: "1".into(),
                system: None,
                kind: Some("MR".into()),
            }],
            ..p
        };
        let prepared = PreparedPatient::new(&p).unwrap();
        assert!(prepared.unchanged_if_equal && !prepared.empty);
        let stored: Patient = serde_json::from_str(&prepared.row_json).unwrap();
        assert_eq!(merge_patient(&stored, &p), stored);
        // The same identifier twice with different types: the merge keeps the
        // last type, the new row the first, so the shortcut must not apply.
        let twice = Patient {
            identifiers: vec![
                p.identifiers[0].clone(),
                Identifier {
                    kind: Some("SS".into()),
                    ..p.identifiers[0].clone()
                },
            ],
            ..p.clone()
        };
        assert!(!PreparedPatient::new(&twice).unwrap().unchanged_if_equal);
        assert!(PreparedPatient::new(&Patient::default()).unwrap().empty);
    }

    #[test]
    fn the_appointment_document_reads_back() {
        let order: Order = serde_json::from_value(order("a")).unwrap();
        let visit: Visit = serde_json::from_value(visit("a")).unwrap();
        let doc = appointment_doc(&order, &visit).unwrap();
        let back: AppointmentDoc = serde_json::from_str(&doc).unwrap();
        assert_eq!((back.order, back.visit), (order.clone(), visit.clone()));
        // Documents written before (through serde_json::Value: sorted keys).
        let old = serde_json::to_string(&json!({ "order": order, "visit": visit })).unwrap();
        let back: AppointmentDoc = serde_json::from_str(&old).unwrap();
        assert_eq!((back.order, back.visit), (order, visit));
    }
}
