//! JSON into the worklist and back, for the cloud EHRs (Best Practice through HALO,
//! Join, Vena and Webdoc through Leyr, ZipLaneRx): an appointment document — pushed
//! to medrelay or polled from the EHR — becomes worklist actions, and a measurement
//! becomes the JSON document POSTed back.
//!
//! Like the HL7 and GDT mappings, what comes from where is data: a preset file
//! (`presets/<name>.toml`) names a JSON Pointer (RFC 6901) for each canonical field
//! (a list: the first present wins), value tables translate codes, and an
//! integration overrides any key. The outbound document is a JSON template whose
//! string values may hold `{{placeholders}}` ([`PLACEHOLDERS`]).
//!
//! ```toml
//! items = "/data"                                   # where a page holds its appointments
//! keep = ["/care_unit_id"]                          # copied verbatim into Order.extra
//!
//! [transport]
//! inbound = "poll"                                  # or "push"
//! poll_on_worklist = true
//! next_page = "/next"
//!
//! [patient]
//! identifier = "/patient/id"
//! given = ["/patient/first_name", "/patient/given"] # the first present wins
//! sex = { pointer = "/patient/gender", table = "sex" }
//!
//! [appointment]
//! id = "/id"
//! status = { pointer = "/status", table = "status" }
//!
//! [result]
//! template = '''{"appointment_id": "{{appointment.placer_order}}",
//!                "observations": "{{measurement.observations}}"}'''
//! ```
//!
//! Nothing here does I/O: the engine fetches or receives the document, calls
//! [`map_document`], applies the actions, and sends what [`build_result`] returns.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mapping::MapError;
use crate::model::{
    Address, Appointment, AppointmentStatus, Coded, Identifier, Measurement, Order, OrderKey,
    Patient, Provider, Visit, WorklistAction,
};
use crate::time;

/// At most this many appointments in one document (a pushed body or a polled page).
pub const MAX_ITEMS: usize = 500;
/// At most this deep: objects and arrays nested in the document, the document
/// itself being level 0.
pub const MAX_DEPTH: usize = 32;
/// At most this many JSON values (objects, arrays, scalars) in one document.
pub const MAX_VALUES: usize = 250_000;
/// At most this many bytes in one field's value (or a kept object, as JSON).
pub const MAX_VALUE_LEN: usize = 32 * 1024;
/// At most this many bytes in a next-page URL or cursor.
pub const MAX_NEXT_PAGE_LEN: usize = 8 * 1024;
/// At most this many entries in a list read as several values (given names).
const MAX_LIST: usize = 20;
/// The longest JSON Pointer a mapping may name.
const MAX_POINTER_LEN: usize = 1024;

/// The placeholders a result template may use, with what they stand for. A string
/// that is exactly one placeholder becomes the value itself (text, `null` when
/// absent, the observations array, the Base64 report); inside a longer string a
/// placeholder is replaced by its text (nothing when absent). `extra.<key>` reads
/// [`Order::extra`], where `keep` puts values under their pointer
/// (`{{extra./care_unit_id}}`) and the patient status is `patient_status`.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("appointment.id", "medrelay's appointment id"),
    (
        "appointment.placer_order",
        "the EHR's appointment id (`appointment.id` of the mapping): the order key",
    ),
    ("appointment.visit_number", "the visit id"),
    ("appointment.group", "the device group"),
    ("appointment.integration", "the integration's name"),
    (
        "appointment.scheduled_at",
        "the scheduled time, as received",
    ),
    (
        "appointment.procedure.code",
        "the measurement to perform (code)",
    ),
    (
        "appointment.procedure.display",
        "the measurement to perform (text)",
    ),
    ("appointment.practitioner.id", "the practitioner's id"),
    (
        "appointment.practitioner.family",
        "the practitioner's surname",
    ),
    (
        "appointment.practitioner.given",
        "the practitioner's given names, space-separated",
    ),
    ("extra.<key>", "a value kept in `Order.extra`"),
    ("patient.id", "medrelay's patient id"),
    (
        "patient.identifier",
        "the EHR's patient id (the identifier of this integration's system, else the first)",
    ),
    ("patient.identifier_system", "that identifier's system"),
    ("patient.family", "surname"),
    ("patient.given", "given names, space-separated"),
    ("patient.birth_date", "`YYYY-MM-DD`"),
    ("patient.sex", "`male`, `female`, `other` or `unknown`"),
    ("patient.email", "e-mail address"),
    ("patient.phone", "phone number"),
    ("measurement.id", "medrelay's measurement id"),
    ("measurement.type", "what was measured (`ECG`, `ABI` …)"),
    (
        "measurement.performed_at",
        "ISO 8601, as the device sent it",
    ),
    ("measurement.device_id", "the device that measured"),
    ("device.id", "the same as `measurement.device_id`"),
    (
        "measurement.observations",
        "the observations array as the device posted it (`code`, `system`, `display`, `value`, `unit`, `reference_range`, `abnormal_flag`)",
    ),
    (
        "measurement.report_pdf",
        "the PDF report, standard Base64 (`null` when there is none)",
    ),
];

// ---------------------------------------------------------------------------------
// The mapping

/// Where one canonical field comes from: JSON Pointers tried in order, and an
/// optional value table. In TOML: `"/patient/id"`, `["/a", "/b"]` or
/// `{ pointer = "/patient/gender", table = "sex" }`; `""` switches the field off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JsonSource {
    #[serde(rename = "pointer")]
    pub pointers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl JsonSource {
    /// A source reading `pointer`.
    pub fn pointer(pointer: &str) -> Self {
        JsonSource {
            pointers: one(pointer),
            table: None,
        }
    }

    /// The pointers joined for messages (`/a | /b`).
    pub fn describe(&self) -> String {
        self.pointers.join(" | ")
    }
}

impl<'de> Deserialize<'de> for JsonSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a JSON Pointer (\"/patient/id\"), a list of them, or { pointer = …, table = … }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonSource, E> {
                Ok(JsonSource::pointer(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonSource, A::Error> {
                let mut pointers = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    pointers.extend(one(&p));
                }
                Ok(JsonSource {
                    pointers,
                    table: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonSource, A::Error> {
                let mut out = JsonSource::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "pointer" => {
                            out.pointers = match map.next_value::<OneOrMany>()? {
                                OneOrMany::One(p) => one(&p),
                                OneOrMany::Many(ps) => ps.iter().flat_map(|p| one(p)).collect(),
                            }
                        }
                        "table" => {
                            let t: String = map.next_value()?;
                            out.table = (!t.trim().is_empty()).then_some(t);
                        }
                        other => {
                            return Err(de::Error::unknown_field(other, &["pointer", "table"]));
                        }
                    }
                }
                Ok(out)
            }
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        d.deserialize_any(V)
    }
}

fn one(p: &str) -> Vec<String> {
    let p = p.trim();
    if p.is_empty() {
        Vec::new()
    } else {
        vec![p.to_string()]
    }
}

/// `""` in TOML means "none" (so an override can switch a setting off).
fn empty_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.trim().is_empty()))
}

/// `[patient]`: where the patient's fields are in one appointment object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonPatientFields {
    /// The EHR's patient id: how the patient is matched (required).
    pub identifier: Option<JsonSource>,
    /// The identifier's system (assigning authority); default: the integration's name.
    #[serde(
        deserialize_with = "empty_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub identifier_system: Option<String>,
    pub family: Option<JsonSource>,
    /// A text, or an array of texts (several given names).
    pub given: Option<JsonSource>,
    /// `YYYY-MM-DD` or an ISO 8601 date-time (its date is kept).
    pub birth_date: Option<JsonSource>,
    pub sex: Option<JsonSource>,
    pub email: Option<JsonSource>,
    pub phone: Option<JsonSource>,
    pub street: Option<JsonSource>,
    pub city: Option<JsonSource>,
    pub postal_code: Option<JsonSource>,
    pub country: Option<JsonSource>,
    /// The patient's status in the EHR (Best Practice: active, inactive …): kept in
    /// `Order.extra["patient_status"]`.
    pub status: Option<JsonSource>,
}

/// `[appointment]`: where the appointment's fields are in one appointment object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonAppointmentFields {
    /// The EHR's appointment id (required): `Order.placer_order`, the order key, and
    /// [`JsonItem::key`].
    pub id: Option<JsonSource>,
    /// Through its table to `create`, `update`, `cancel` or `ignore`; absent: `create`.
    pub status: Option<JsonSource>,
    /// `CancelAppointment.reason`.
    pub cancel_reason: Option<JsonSource>,
    /// ISO 8601: `Appointment.scheduled_at`.
    pub scheduled_at: Option<JsonSource>,
    /// `Visit.visit_number`.
    pub visit_id: Option<JsonSource>,
    /// The device (tablet) group: `Appointment.group`; absent: the integration's group.
    pub group: Option<JsonSource>,
    /// The measurement to perform: `Order.procedure.code` …
    pub procedure: Option<JsonSource>,
    /// … and `Order.procedure.display`.
    pub procedure_display: Option<JsonSource>,
    /// `Order.ordering_provider`: id, surname, given names.
    pub practitioner_id: Option<JsonSource>,
    pub practitioner_family: Option<JsonSource>,
    pub practitioner_given: Option<JsonSource>,
}

/// How appointments arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonInbound {
    /// The EHR POSTs them to `/api/v1/integrations/{name}/appointments`.
    #[default]
    Push,
    /// medrelay fetches them from the EHR (`[integration.inbound] poll = { url, every }`).
    Poll,
}

/// A result the EHR accepts with `202 Accepted` and confirms later: the 202's body
/// holds a status URL, and the status document there says when it is done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsyncResult {
    /// Pointer to the status URL in the 202's body (`""` switches asynchronous
    /// results off).
    pub status_url: String,
    /// Pointer to the state in the status document.
    pub status: String,
    /// The state that confirms the result (compared ignoring ASCII case).
    pub done: String,
    /// States meaning the EHR rejected it (compared ignoring ASCII case); any other
    /// state is "still pending".
    pub failed: Vec<String>,
}

/// Where an asynchronous result stands, read from its status document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncState {
    Done,
    /// Rejected, with the state as the EHR wrote it.
    Failed(String),
    /// Not yet: the state as written, if there was one.
    Pending(Option<String>),
}

impl AsyncResult {
    /// The status URL in the body of the 202 answering the POST.
    pub fn status_url(&self, accepted: &Value) -> Option<String> {
        text_at(accepted, &self.status_url, MAX_NEXT_PAGE_LEN)
    }

    /// What the status document says.
    pub fn state(&self, status: &Value) -> AsyncState {
        match text_at(status, &self.status, MAX_VALUE_LEN) {
            Some(s) if s.eq_ignore_ascii_case(&self.done) => AsyncState::Done,
            Some(s) if self.failed.iter().any(|f| f.eq_ignore_ascii_case(&s)) => {
                AsyncState::Failed(s)
            }
            other => AsyncState::Pending(other),
        }
    }
}

/// `[transport]`: how documents travel (the engine reads it; URLs, schedules and
/// credentials are in the integration's `inbound` / `outbound` configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonTransport {
    pub inbound: JsonInbound,
    /// `GET` or `POST` (polling).
    pub poll_method: String,
    /// The request body of a `POST` poll, sent as is (a JSON document; Best
    /// Practice's SQL passthrough `{"sql": "SELECT …"}`).
    #[serde(
        deserialize_with = "empty_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub poll_body: Option<String>,
    /// Fetch when a device asks for its worklist (besides any schedule).
    pub poll_on_worklist: bool,
    /// Pointer to the next page's URL or cursor in a polled page.
    #[serde(
        deserialize_with = "empty_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_page: Option<String>,
    /// Results are accepted with 202 and confirmed later (Best Practice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_async: Option<AsyncResult>,
}

impl Default for JsonTransport {
    fn default() -> Self {
        JsonTransport {
            inbound: JsonInbound::Push,
            poll_method: "GET".into(),
            poll_body: None,
            poll_on_worklist: false,
            next_page: None,
            result_async: None,
        }
    }
}

/// `[result]`: the document POSTed for a measurement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonResultSettings {
    /// A JSON document (as a TOML string) whose string values may hold
    /// [`PLACEHOLDERS`].
    pub template: String,
}

/// A complete JSON mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonMapping {
    /// Pointer to the appointments in an object document (an array, or one
    /// appointment object). A document without it is one appointment.
    #[serde(
        deserialize_with = "empty_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub items: Option<String>,
    /// Pointers (into each appointment) copied verbatim into `Order.extra`, keyed by
    /// the pointer: what a result must echo and no canonical field covers.
    pub keep: Vec<String>,
    pub transport: JsonTransport,
    pub patient: JsonPatientFields,
    pub appointment: JsonAppointmentFields,
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    pub result: JsonResultSettings,
}

/// A problem with a JSON mapping, worded for the configuration's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonMappingError(pub String);

/// What `appointment.status` may map to.
pub const STATUS_ACTIONS: [&str; 4] = ["create", "update", "cancel", "ignore"];

impl JsonMapping {
    /// Parses a mapping (a preset file without its `[preset]` table, with any
    /// overrides merged in) and checks it.
    pub fn from_table(t: &toml::Table) -> Result<Self, JsonMappingError> {
        let mut m: JsonMapping = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| JsonMappingError(e.message().to_string()))?;
        m.transport.poll_method = m.transport.poll_method.trim().to_ascii_uppercase();
        if m.transport
            .result_async
            .as_ref()
            .is_some_and(|a| a.status_url.trim().is_empty())
        {
            m.transport.result_async = None;
        }
        m.check()?;
        Ok(m)
    }

    /// Every pointer is a JSON Pointer, every table a field names exists, the
    /// appointment id and patient identifier are mapped, the status table maps to
    /// actions, the transport is consistent and the result template is JSON with
    /// known placeholders.
    pub fn check(&self) -> Result<(), JsonMappingError> {
        let mut problems = Vec::new();
        for (key, src) in self.sources() {
            let Some(src) = src else { continue };
            for p in &src.pointers {
                if let Err(e) = check_pointer(p) {
                    problems.push(format!("{key}: {e}"));
                }
            }
            if let Some(t) = &src.table
                && !self.tables.contains_key(t)
            {
                problems.push(format!("{key}: table {t:?} is not defined under [tables]"));
            }
        }
        for (key, src) in [
            ("appointment.id", self.appointment.id.as_ref()),
            ("patient.identifier", self.patient.identifier.as_ref()),
        ] {
            if src.is_none_or(|s| s.pointers.is_empty()) {
                problems.push(format!(
                    "{key} must be mapped: nothing can be matched without it"
                ));
            }
        }
        if let Some(t) = self
            .appointment
            .status
            .as_ref()
            .and_then(|s| s.table.as_ref())
            && let Some(table) = self.tables.get(t)
        {
            for (k, v) in table {
                if !STATUS_ACTIONS.contains(&v.as_str()) {
                    problems.push(format!(
                        "tables.{t}.{k:?} = {v:?}: a status maps to one of {}",
                        STATUS_ACTIONS.join(", ")
                    ));
                }
            }
        }
        for p in &self.keep {
            if let Err(e) = check_pointer(p) {
                problems.push(format!("keep: {e}"));
            }
        }
        if let Some(p) = &self.items
            && let Err(e) = check_pointer(p)
        {
            problems.push(format!("items: {e}"));
        }
        let t = &self.transport;
        if let Some(p) = &t.next_page
            && let Err(e) = check_pointer(p)
        {
            problems.push(format!("transport.next_page: {e}"));
        }
        if !["GET", "POST"].contains(&t.poll_method.as_str()) {
            problems.push(format!(
                "transport.poll_method: {:?} is neither GET nor POST",
                t.poll_method
            ));
        }
        if let Some(body) = &t.poll_body {
            if t.poll_method != "POST" {
                problems.push("transport.poll_body needs poll_method = \"POST\"".into());
            }
            if let Err(e) = serde_json::from_str::<Value>(body) {
                problems.push(format!("transport.poll_body is not JSON: {e}"));
            }
        }
        if t.inbound == JsonInbound::Push && t.poll_on_worklist {
            problems.push("transport.poll_on_worklist needs inbound = \"poll\"".into());
        }
        if let Some(a) = &t.result_async {
            for (k, p) in [("status_url", &a.status_url), ("status", &a.status)] {
                if let Err(e) = check_pointer(p) {
                    problems.push(format!("transport.result_async.{k}: {e}"));
                }
            }
            if a.done.trim().is_empty() {
                problems.push("transport.result_async.done: the confirming state is empty".into());
            }
        }
        if let Err(e) = check_template(&self.result.template) {
            problems.push(format!("result.template: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(JsonMappingError(problems.join("; ")))
        }
    }

    /// `(key, source)` of every mapped field, for checks and documentation.
    pub fn sources(&self) -> Vec<(&'static str, Option<&JsonSource>)> {
        let p = &self.patient;
        let a = &self.appointment;
        vec![
            ("patient.identifier", p.identifier.as_ref()),
            ("patient.family", p.family.as_ref()),
            ("patient.given", p.given.as_ref()),
            ("patient.birth_date", p.birth_date.as_ref()),
            ("patient.sex", p.sex.as_ref()),
            ("patient.email", p.email.as_ref()),
            ("patient.phone", p.phone.as_ref()),
            ("patient.street", p.street.as_ref()),
            ("patient.city", p.city.as_ref()),
            ("patient.postal_code", p.postal_code.as_ref()),
            ("patient.country", p.country.as_ref()),
            ("patient.status", p.status.as_ref()),
            ("appointment.id", a.id.as_ref()),
            ("appointment.status", a.status.as_ref()),
            ("appointment.cancel_reason", a.cancel_reason.as_ref()),
            ("appointment.scheduled_at", a.scheduled_at.as_ref()),
            ("appointment.visit_id", a.visit_id.as_ref()),
            ("appointment.group", a.group.as_ref()),
            ("appointment.procedure", a.procedure.as_ref()),
            (
                "appointment.procedure_display",
                a.procedure_display.as_ref(),
            ),
            ("appointment.practitioner_id", a.practitioner_id.as_ref()),
            (
                "appointment.practitioner_family",
                a.practitioner_family.as_ref(),
            ),
            (
                "appointment.practitioner_given",
                a.practitioner_given.as_ref(),
            ),
        ]
    }

    /// A value through a table: exact key, then ignoring ASCII case, then `"*"`; an
    /// empty mapped value means "no value".
    pub fn lookup(&self, table: &str, value: &str) -> Option<String> {
        let t = self.tables.get(table)?;
        let hit = t
            .get(value)
            .or_else(|| {
                t.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(value))
                    .map(|(_, v)| v)
            })
            .or_else(|| t.get("*"))?;
        (!hit.is_empty()).then(|| hit.clone())
    }
}

/// An RFC 6901 pointer to something inside the document: `/` then reference tokens,
/// `~` only as `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} is not a JSON Pointer (it starts with `/`)"));
    }
    if p.len() > MAX_POINTER_LEN {
        return Err(format!(
            "a pointer of {} bytes (at most {MAX_POINTER_LEN})",
            p.len()
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("{p:?}: `~` must be written `~0` (and `/` as `~1`)"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Documents into actions

/// Who the mapped appointments belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonContext {
    pub integration: String,
    /// The device group for appointments that do not name one.
    pub group: String,
    pub org: String,
}

/// One appointment found in a document: its own id (for de-duplication of polled items) and what it asks of the worklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonItem {
    /// The EHR's appointment id (`appointment.id`), also the order key's placer order.
    pub key: String,
    pub action: WorklistAction,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where the whole document is, in error paths.
const DOCUMENT: &str = "document";

/// Depth and size limits, checked without recursion.
fn check_shape(doc: &Value) -> Result<(), MapError> {
    let mut stack = vec![(doc, 0usize)];
    let mut seen = 0usize;
    while let Some((v, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_VALUES {
            return Err(MapError::invalid(
                DOCUMENT,
                format!("more than {MAX_VALUES} JSON values in one document"),
            ));
        }
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if depth >= MAX_DEPTH {
            return Err(MapError::invalid(
                DOCUMENT,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// A pushed request body or a polled page → the appointments in it. `doc` may be one appointment object, an array of them, or an object holding them at the `items` JSON Pointer.
///
/// Errors name the pointer in the document (`/data/2/patient/birth_date`): a
/// missing appointment id or patient id is [`MapError::Missing`], a bad date, an
/// item that is not an object or a document over the limits ([`MAX_ITEMS`],
/// [`MAX_DEPTH`], [`MAX_VALUES`], [`MAX_VALUE_LEN`]) [`MapError::Invalid`], a status
/// the status table does not know [`MapError::UnknownCode`], and a document that is
/// not an object or an array [`MapError::Unsupported`]. One bad appointment fails
/// the whole document. Appointments whose status maps to `ignore` are left out.
pub fn map_document(
    doc: &Value,
    m: &JsonMapping,
    ctx: &JsonContext,
) -> Result<Vec<JsonItem>, MapError> {
    match doc {
        Value::Array(_) | Value::Object(_) => {}
        other => {
            return Err(MapError::Unsupported(format!(
                "a JSON {} is not an appointment document (expected an object or an array)",
                kind_of(other)
            )));
        }
    }
    check_shape(doc)?;
    let (items, base): (Vec<&Value>, &str) = match doc {
        Value::Array(a) => (a.iter().collect(), ""),
        _ => match m
            .items
            .as_deref()
            .and_then(|p| doc.pointer(p).map(|v| (p, v)))
        {
            Some((p, Value::Array(a))) => (a.iter().collect(), p),
            Some((p, v @ Value::Object(_))) => {
                return map_one(v, p.to_string(), m, ctx).map(|i| i.into_iter().collect());
            }
            Some((_, Value::Null)) => (Vec::new(), ""),
            Some((p, v)) => {
                return Err(MapError::invalid(
                    p,
                    format!("a {} where the appointments should be", kind_of(v)),
                ));
            }
            None => {
                return map_one(doc, String::new(), m, ctx).map(|i| i.into_iter().collect());
            }
        },
    };
    if items.len() > MAX_ITEMS {
        return Err(MapError::invalid(
            if base.is_empty() { DOCUMENT } else { base },
            format!(
                "{} appointments in one document (at most {MAX_ITEMS})",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        if let Some(item) = map_one(v, format!("{base}/{i}"), m, ctx)? {
            out.push(item);
        }
    }
    Ok(out)
}

/// The next page's URL or cursor for polling (the `transport.next_page` pointer), if any.
pub fn next_page(doc: &Value, m: &JsonMapping) -> Option<String> {
    text_at(doc, m.transport.next_page.as_deref()?, MAX_NEXT_PAGE_LEN)
}

/// A non-empty text or number at `pointer`, at most `max` bytes.
fn text_at(doc: &Value, pointer: &str, max: usize) -> Option<String> {
    let s = match doc.pointer(pointer)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= max).then_some(s)
}

/// One appointment object, located at `base` in the document.
struct Reader<'a> {
    v: &'a Value,
    base: String,
    m: &'a JsonMapping,
}

impl<'a> Reader<'a> {
    /// The pointer in the whole document, for errors.
    fn at(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    fn scalar(&self, p: &str, v: &Value) -> Result<Option<String>, MapError> {
        let s = match v {
            Value::Null => return Ok(None),
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(MapError::invalid(
                    self.at(p),
                    format!(
                        "an {} where a text, number or boolean was expected",
                        kind_of(other)
                    ),
                ));
            }
        };
        if s.len() > MAX_VALUE_LEN {
            return Err(MapError::invalid(
                self.at(p),
                format!("a value of {} bytes (at most {MAX_VALUE_LEN})", s.len()),
            ));
        }
        Ok((!s.is_empty()).then_some(s))
    }

    /// The first listed pointer with a value, and the pointer.
    fn raw(&self, src: Option<&'a JsonSource>) -> Result<Option<(&'a str, String)>, MapError> {
        let Some(src) = src else { return Ok(None) };
        for p in &src.pointers {
            if let Some(v) = self.v.pointer(p)
                && let Some(s) = self.scalar(p, v)?
            {
                return Ok(Some((p.as_str(), s)));
            }
        }
        Ok(None)
    }

    fn table(&self, src: Option<&JsonSource>, v: String) -> Option<String> {
        match src.and_then(|s| s.table.as_deref()) {
            Some(t) => self.m.lookup(t, &v),
            None => Some(v),
        }
    }

    fn text(&self, src: Option<&'a JsonSource>) -> Result<Option<String>, MapError> {
        Ok(self.raw(src)?.and_then(|(_, v)| self.table(src, v)))
    }

    /// Several values: the first pointer with a text or an array of texts.
    fn list(&self, src: Option<&'a JsonSource>) -> Result<Vec<String>, MapError> {
        let Some(s) = src else {
            return Ok(Vec::new());
        };
        for p in &s.pointers {
            let Some(v) = self.v.pointer(p) else { continue };
            let values = match v {
                Value::Array(a) => {
                    if a.len() > MAX_LIST {
                        return Err(MapError::invalid(
                            self.at(p),
                            format!("{} values (at most {MAX_LIST})", a.len()),
                        ));
                    }
                    let mut out = Vec::new();
                    for (i, x) in a.iter().enumerate() {
                        if let Some(t) = self.scalar(&format!("{p}/{i}"), x)? {
                            out.extend(self.table(src, t));
                        }
                    }
                    out
                }
                other => self
                    .scalar(p, other)?
                    .and_then(|t| self.table(src, t))
                    .into_iter()
                    .collect(),
            };
            if !values.is_empty() {
                return Ok(values);
            }
        }
        Ok(Vec::new())
    }

    /// A date: `YYYY-MM-DD` (or a shorter ISO precision), or an ISO 8601 date-time
    /// whose date part is kept.
    fn date(&self, src: Option<&'a JsonSource>) -> Result<Option<String>, MapError> {
        let Some((p, v)) = self.raw(src)? else {
            return Ok(None);
        };
        if time::is_iso(&v) {
            let date = v.split(['T', ' ']).next().unwrap_or_default();
            if time::is_iso(date) {
                return Ok(Some(date.to_string()));
            }
        }
        Err(MapError::invalid(
            self.at(p),
            format!(
                "`{}` is not a date (YYYY-MM-DD or an ISO 8601 date-time)",
                v.chars().take(40).collect::<String>()
            ),
        ))
    }

    /// An ISO 8601 date or date-time, kept as sent.
    fn date_time(&self, src: Option<&'a JsonSource>) -> Result<Option<String>, MapError> {
        let Some((p, v)) = self.raw(src)? else {
            return Ok(None);
        };
        if time::is_iso(&v) {
            return Ok(Some(v));
        }
        Err(MapError::invalid(
            self.at(p),
            format!(
                "`{}` is not an ISO 8601 date-time",
                v.chars().take(40).collect::<String>()
            ),
        ))
    }

    /// Where a missing required field was looked for.
    fn missing(&self, key: &str, src: Option<&JsonSource>, reason: &str) -> MapError {
        let where_ = src
            .filter(|s| !s.pointers.is_empty())
            .map(|s| {
                s.pointers
                    .iter()
                    .map(|p| self.at(p))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .unwrap_or_else(|| key.to_string());
        MapError::missing(where_, reason)
    }

    fn action(&self) -> Result<String, MapError> {
        let src = self.m.appointment.status.as_ref();
        let Some((p, v)) = self.raw(src)? else {
            return Ok("create".into());
        };
        let table = src.and_then(|s| s.table.as_deref());
        let action = match table {
            Some(t) => self.m.lookup(t, &v),
            None => Some(v.to_ascii_lowercase()),
        };
        match action {
            Some(a) if STATUS_ACTIONS.contains(&a.as_str()) => Ok(a),
            _ => Err(MapError::UnknownCode {
                path: Some(self.at(p)),
                reason: format!(
                    "status `{}` is not known{}: map it to create, update, cancel or ignore",
                    v.chars().take(40).collect::<String>(),
                    table.map(|t| format!(" (tables.{t})")).unwrap_or_default()
                ),
            }),
        }
    }

    fn patient(&self, system: &str) -> Result<Patient, MapError> {
        let p = &self.m.patient;
        let identifier = self.text(p.identifier.as_ref())?.ok_or_else(|| {
            self.missing(
                "patient.identifier",
                p.identifier.as_ref(),
                "patient id missing: the patient cannot be matched",
            )
        })?;
        let address = Address {
            street: self.text(p.street.as_ref())?,
            city: self.text(p.city.as_ref())?,
            postal_code: self.text(p.postal_code.as_ref())?,
            country: self.text(p.country.as_ref())?,
            ..Address::default()
        };
        Ok(Patient {
            identifiers: vec![Identifier {
                value: identifier,
                system: Some(system.to_string()),
                kind: Some("PI".into()),
            }],
            family: self.text(p.family.as_ref())?,
            given: self.list(p.given.as_ref())?,
            birth_date: self.date(p.birth_date.as_ref())?,
            sex: self.text(p.sex.as_ref())?,
            address: (address != Address::default()).then_some(address),
            email: self.text(p.email.as_ref())?,
            phone: self.text(p.phone.as_ref())?,
            ..Patient::default()
        })
    }

    fn appointment(
        &self,
        key: &str,
        system: &str,
        ctx: &JsonContext,
    ) -> Result<Appointment, MapError> {
        let a = &self.m.appointment;
        let mut extra = BTreeMap::new();
        for p in &self.m.keep {
            let Some(v) = self.v.pointer(p) else { continue };
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => serde_json::to_string(other)
                    .map_err(|e| MapError::invalid(self.at(p), e.to_string()))?,
            };
            if text.len() > MAX_VALUE_LEN {
                return Err(MapError::invalid(
                    self.at(p),
                    format!("a value of {} bytes (at most {MAX_VALUE_LEN})", text.len()),
                ));
            }
            if !text.is_empty() {
                extra.insert(p.clone(), text);
            }
        }
        if let Some(s) = self.text(self.m.patient.status.as_ref())? {
            extra.insert("patient_status".into(), s);
        }
        let code = self.text(a.procedure.as_ref())?;
        let display = self.text(a.procedure_display.as_ref())?;
        let procedure = match (code, display) {
            (Some(code), display) => Some(Coded {
                code,
                display,
                system: None,
            }),
            (None, Some(display)) => Some(Coded {
                code: display.clone(),
                display: Some(display),
                system: None,
            }),
            (None, None) => None,
        };
        let practitioner = Provider {
            id: self.text(a.practitioner_id.as_ref())?,
            family: self.text(a.practitioner_family.as_ref())?,
            given: self.list(a.practitioner_given.as_ref())?,
            prefix: None,
        };
        let visit_number = self.text(a.visit_id.as_ref())?.map(|value| Identifier {
            value,
            system: Some(system.to_string()),
            kind: Some("VN".into()),
        });
        Ok(Appointment {
            org: ctx.org.clone(),
            integration: ctx.integration.clone(),
            group: self
                .text(a.group.as_ref())?
                .unwrap_or_else(|| ctx.group.clone()),
            status: AppointmentStatus::Scheduled,
            scheduled_at: self.date_time(a.scheduled_at.as_ref())?,
            order: Order {
                placer_order: Some(key.to_string()),
                procedure,
                ordering_provider: (practitioner != Provider::default()).then_some(practitioner),
                extra,
                ..Order::default()
            },
            visit: Visit {
                visit_number,
                ..Visit::default()
            },
            ..Appointment::default()
        })
    }
}

fn map_one(
    v: &Value,
    base: String,
    m: &JsonMapping,
    ctx: &JsonContext,
) -> Result<Option<JsonItem>, MapError> {
    if !v.is_object() {
        return Err(MapError::invalid(
            if base.is_empty() {
                DOCUMENT.to_string()
            } else {
                base
            },
            format!("a {} is not an appointment object", kind_of(v)),
        ));
    }
    let r = Reader { v, base, m };
    let id = m.appointment.id.as_ref();
    let key = r.text(id)?.ok_or_else(|| {
        r.missing(
            "appointment.id",
            id,
            "appointment id missing: the appointment cannot be found again",
        )
    })?;
    let order_key = OrderKey {
        integration: ctx.integration.clone(),
        placer_order: Some(key.clone()),
        filler_order: None,
    };
    let action = match r.action()?.as_str() {
        "ignore" => return Ok(None),
        "cancel" => WorklistAction::CancelAppointment {
            key: order_key,
            reason: r.text(m.appointment.cancel_reason.as_ref())?,
        },
        verb => {
            let system = m
                .patient
                .identifier_system
                .as_deref()
                .unwrap_or(&ctx.integration);
            let patient = r.patient(system)?;
            let appointment = r.appointment(&key, system, ctx)?;
            if verb == "update" {
                WorklistAction::UpdateAppointment {
                    key: order_key,
                    patient,
                    appointment,
                }
            } else {
                WorklistAction::CreateAppointment {
                    patient,
                    appointment,
                }
            }
        }
    };
    Ok(Some(JsonItem { key, action }))
}

// ---------------------------------------------------------------------------------
// Results

enum Part<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template string into text and `{{placeholders}}`.
fn parts(s: &str) -> Result<Vec<Part<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Part::Text(&rest[..i]));
        }
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in {s:?}"))?;
        let name = after[..j].trim();
        if name.is_empty() {
            return Err(format!("an empty placeholder in {s:?}"));
        }
        out.push(Part::Placeholder(name));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(Part::Text(rest));
    }
    Ok(out)
}

fn known_placeholder(name: &str) -> bool {
    match name.strip_prefix("extra.") {
        Some(key) => !key.is_empty(),
        None => PLACEHOLDERS.iter().any(|(n, _)| *n == name),
    }
}

/// Every string of `v`, depth first.
fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn check_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("empty: the result needs a JSON template".into());
    }
    let v: Value =
        serde_json::from_str(template).map_err(|e| format!("not a JSON document: {e}"))?;
    let mut all = Vec::new();
    strings(&v, &mut all);
    let mut unknown = Vec::new();
    for s in all {
        for part in parts(s)? {
            if let Part::Placeholder(name) = part
                && !known_placeholder(name)
            {
                unknown.push(format!("{{{{{name}}}}}"));
            }
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown placeholder(s) {} (see PLACEHOLDERS in the README)",
            unknown.join(", ")
        ))
    }
}

struct Resolver<'a> {
    appointment: &'a Appointment,
    patient: &'a Patient,
    measurement: &'a Measurement,
    system: &'a str,
}

fn text(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => Value::String(s.to_string()),
        _ => Value::Null,
    }
}

fn joined(v: &[String]) -> Value {
    text(Some(&v.join(" ")))
}

impl Resolver<'_> {
    /// The patient's identifier from this integration's system, else a `PI`, else
    /// the first.
    fn identifier(&self) -> Option<&Identifier> {
        let ids = &self.patient.identifiers;
        ids.iter()
            .find(|i| i.system.as_deref() == Some(self.system))
            .or_else(|| ids.iter().find(|i| i.kind.as_deref() == Some("PI")))
            .or(ids.first())
    }

    fn value(&self, name: &str) -> Result<Value, String> {
        let a = self.appointment;
        let o = &a.order;
        let p = self.patient;
        let m = self.measurement;
        let doc = o.ordering_provider.as_ref();
        Ok(match name {
            "appointment.id" => text(Some(&a.id)),
            "appointment.placer_order" => text(o.placer_order.as_deref()),
            "appointment.visit_number" => {
                text(a.visit.visit_number.as_ref().map(|v| v.value.as_str()))
            }
            "appointment.group" => text(Some(&a.group)),
            "appointment.integration" => text(Some(&a.integration)),
            "appointment.scheduled_at" => text(a.scheduled_at.as_deref()),
            "appointment.procedure.code" => text(o.procedure.as_ref().map(|c| c.code.as_str())),
            "appointment.procedure.display" => {
                text(o.procedure.as_ref().and_then(|c| c.display.as_deref()))
            }
            "appointment.practitioner.id" => text(doc.and_then(|d| d.id.as_deref())),
            "appointment.practitioner.family" => text(doc.and_then(|d| d.family.as_deref())),
            "appointment.practitioner.given" => doc.map(|d| joined(&d.given)).unwrap_or_default(),
            "patient.id" => text(Some(&p.id)),
            "patient.identifier" => text(self.identifier().map(|i| i.value.as_str())),
            "patient.identifier_system" => {
                text(self.identifier().and_then(|i| i.system.as_deref()))
            }
            "patient.family" => text(p.family.as_deref()),
            "patient.given" => joined(&p.given),
            "patient.birth_date" => text(p.birth_date.as_deref()),
            "patient.sex" => text(p.sex.as_deref()),
            "patient.email" => text(p.email.as_deref()),
            "patient.phone" => text(p.phone.as_deref()),
            "measurement.id" => text(Some(&m.id)),
            "measurement.type" => text(Some(&m.kind)),
            "measurement.performed_at" => text(Some(&m.performed_at)),
            "measurement.device_id" | "device.id" => text(Some(&m.device_id)),
            "measurement.observations" => {
                serde_json::to_value(&m.observations).map_err(|e| e.to_string())?
            }
            "measurement.report_pdf" => {
                if m.report_pdf.is_empty() {
                    Value::Null
                } else {
                    Value::String(STANDARD.encode(&m.report_pdf))
                }
            }
            other => match other.strip_prefix("extra.") {
                Some(k) if !k.is_empty() => text(o.extra.get(k).map(String::as_str)),
                _ => return Err(format!("unknown placeholder `{{{{{other}}}}}`")),
            },
        })
    }

    fn render(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) => self.render_str(s)?,
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.render(x)).collect::<Result<_, _>>()?)
            }
            Value::Object(o) => {
                let mut out = serde_json::Map::new();
                for (k, x) in o {
                    out.insert(k.clone(), self.render(x)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn render_str(&self, s: &str) -> Result<Value, String> {
        let parts = parts(s)?;
        if let [Part::Placeholder(name)] = parts.as_slice() {
            return self.value(name);
        }
        let mut out = String::with_capacity(s.len());
        for part in parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(name) => match self.value(name)? {
                    Value::Null => {}
                    Value::String(t) => out.push_str(&t),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }
}

/// The outbound JSON document for a measurement of an appointment that came from this integration.
///
/// The mapping's `result.template` with its [`PLACEHOLDERS`] filled in. Fails when
/// the template is broken (which [`JsonMapping::check`] reports first) or the
/// appointment has no EHR appointment id to answer.
pub fn build_result(
    appointment: &Appointment,
    patient: &Patient,
    m: &Measurement,
    mapping: &JsonMapping,
) -> Result<serde_json::Value, String> {
    if appointment
        .order
        .placer_order
        .as_deref()
        .is_none_or(str::is_empty)
    {
        return Err(format!(
            "appointment {:?} has no EHR appointment id (placer order) to answer",
            appointment.id
        ));
    }
    let template: Value = serde_json::from_str(&mapping.result.template)
        .map_err(|e| format!("result.template is not a JSON document: {e}"))?;
    let system = mapping
        .patient
        .identifier_system
        .as_deref()
        .unwrap_or(&appointment.integration);
    Resolver {
        appointment,
        patient,
        measurement: m,
        system,
    }
    .render(&template)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> JsonMapping {
        JsonMapping::from_table(
            &toml::from_str(
                r#"
                [patient]
                identifier = "/pid"
                [appointment]
                id = "/id"
                [result]
                template = '{"id": "{{appointment.placer_order}}"}'
                "#,
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn pointers_are_checked() {
        assert!(check_pointer("/a/b~0c~1d").is_ok());
        assert!(check_pointer("a/b").is_err());
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
        assert!(check_pointer(&format!("/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn template_parts() {
        assert!(parts("{{a}} and {{ b }}").is_ok());
        assert!(parts("{{a").is_err());
        assert!(parts("{{ }}").is_err());
        assert!(parts("just }} text").is_ok());
        assert!(check_template("{\"a\": \"{{patient.family}}\"}").is_ok());
        assert!(check_template("{\"a\": \"{{extra./x}}\"}").is_ok());
        assert!(check_template("{\"a\": \"{{extra.}}\"}").is_err());
        assert!(check_template("{\"a\": \"{{extra.<key>}}\"}").is_ok());
        assert!(check_template("{\"a\": [\"{{nope}}\"]}").is_err());
        assert!(check_template("{").is_err());
        assert!(check_template("").is_err());
    }

    #[test]
    fn every_placeholder_resolves() {
        let a = Appointment::default();
        let p = Patient::default();
        let m = Measurement::default();
        let r = Resolver {
            appointment: &a,
            patient: &p,
            measurement: &m,
            system: "x",
        };
        for (name, _) in PLACEHOLDERS {
            assert!(r.value(name).is_ok(), "{name}");
            assert!(known_placeholder(name), "{name}");
        }
        assert!(r.value("nope").is_err());
    }

    #[test]
    fn shape_limits_without_recursion() {
        let mut deep = String::new();
        for _ in 0..100 {
            deep.push('[');
        }
        for _ in 0..100 {
            deep.push(']');
        }
        let v: Value = serde_json::from_str(&deep).unwrap();
        assert!(check_shape(&v).is_err());
        let ok: Value = serde_json::from_str("[[[1]]]").unwrap();
        assert!(check_shape(&ok).is_ok());
    }

    #[test]
    fn status_without_table_is_the_action() {
        let mut m = minimal();
        m.appointment.status = Some(JsonSource::pointer("/s"));
        let ctx = JsonContext::default();
        let doc = serde_json::json!({"id": 1, "pid": 2, "s": "Cancel"});
        let items = map_document(&doc, &m, &ctx).unwrap();
        assert!(matches!(
            items[0].action,
            WorklistAction::CancelAppointment { .. }
        ));
        let doc = serde_json::json!({"id": 1, "pid": 2, "s": "booked"});
        assert!(matches!(
            map_document(&doc, &m, &ctx),
            Err(MapError::UnknownCode { .. })
        ));
    }

    #[test]
    fn async_states() {
        let a = AsyncResult {
            status_url: "/links/status".into(),
            status: "/state".into(),
            done: "Completed".into(),
            failed: vec!["Failed".into()],
        };
        let accepted = serde_json::json!({"links": {"status": " https://x/1 "}});
        assert_eq!(a.status_url(&accepted).as_deref(), Some("https://x/1"));
        assert_eq!(a.status_url(&serde_json::json!({})), None);
        assert_eq!(
            a.state(&serde_json::json!({"state": "completed"})),
            AsyncState::Done
        );
        assert_eq!(
            a.state(&serde_json::json!({"state": "FAILED"})),
            AsyncState::Failed("FAILED".into())
        );
        assert_eq!(
            a.state(&serde_json::json!({"state": "Queued"})),
            AsyncState::Pending(Some("Queued".into()))
        );
        assert_eq!(a.state(&serde_json::json!([])), AsyncState::Pending(None));
    }
}
