//! Validation of incoming Patient, ServiceRequest, Appointment and ImagingStudy JSON against the
//! FHIR R4 (4.0.1) rules medrelay relies on: resourceType, required elements,
//! required value sets, primitive formats (id, date, dateTime, instant) and
//! reference syntax. Every problem found is returned, each as an OperationOutcome
//! issue whose `expression` is the FHIRPath of the element (`Patient.gender`,
//! `Appointment.participant[0].status`).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resources::{Issue, OperationOutcome};

/// administrative-gender
pub const ADMINISTRATIVE_GENDER: &[&str] = &["male", "female", "other", "unknown"];
/// request-status
pub const REQUEST_STATUS: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];
/// request-intent
pub const REQUEST_INTENT: &[&str] = &[
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];
/// request-priority
pub const REQUEST_PRIORITY: &[&str] = &["routine", "urgent", "asap", "stat"];
/// appointmentstatus
pub const APPOINTMENT_STATUS: &[&str] = &[
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
];
/// participationstatus
pub const PARTICIPATION_STATUS: &[&str] = &["accepted", "declined", "tentative", "needs-action"];
/// participantrequired
pub const PARTICIPANT_REQUIRED: &[&str] = &["required", "optional", "information-only"];
/// identifier-use
pub const IDENTIFIER_USE: &[&str] = &["usual", "official", "temp", "secondary", "old"];
/// name-use
pub const NAME_USE: &[&str] = &[
    "usual",
    "official",
    "temp",
    "nickname",
    "anonymous",
    "old",
    "maiden",
];
/// contact-point-system
pub const CONTACT_POINT_SYSTEM: &[&str] =
    &["phone", "fax", "email", "pager", "url", "sms", "other"];
/// contact-point-use
pub const CONTACT_POINT_USE: &[&str] = &["home", "work", "temp", "old", "mobile"];
/// address-use
pub const ADDRESS_USE: &[&str] = &["home", "work", "temp", "old", "billing"];
/// address-type
pub const ADDRESS_TYPE: &[&str] = &["postal", "physical", "both"];
/// imagingstudy-status
pub const IMAGING_STUDY_STATUS: &[&str] = &[
    "registered",
    "available",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// An incoming resource that failed validation or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FHIR resource ({} issue(s)){}", .0.issue.len(), first_diagnostics(.0))]
pub struct Invalid(pub OperationOutcome);

fn first_diagnostics(o: &OperationOutcome) -> String {
    o.issue
        .first()
        .and_then(|i| i.diagnostics.as_deref())
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// Validates `value` as a resource of type `expected` (`Patient`, `ServiceRequest`,
/// `Appointment`, `ImagingStudy`; other types get only the resourceType and id checks).
pub fn validate(expected: &str, value: &Value) -> Vec<Issue> {
    let mut issues = match expected {
        "Patient" => validate_patient(value),
        "ServiceRequest" => validate_service_request(value),
        "Appointment" => validate_appointment(value),
        "ImagingStudy" => validate_imaging_study(value),
        _ => {
            let mut v = V::default();
            v.header(expected, value);
            v.issues
        }
    };
    oversized_strings(value, expected, &mut issues);
    issues
}

/// FHIR strings "SHALL NOT exceed 1MB in size" (R4 datatypes, string).
pub const MAX_STRING_BYTES: usize = 1024 * 1024;

/// An issue for every string longer than [`MAX_STRING_BYTES`], with its path.
fn oversized_strings(value: &Value, path: &str, issues: &mut Vec<Issue>) {
    match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => issues.push(Issue::error(
            "too-long",
            path,
            format!(
                "a string of {} bytes; FHIR strings are at most 1 MB",
                s.len()
            ),
        )),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                oversized_strings(item, &format!("{path}[{i}]"), issues);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                oversized_strings(v, &format!("{path}.{k}"), issues);
            }
        }
        _ => {}
    }
}

/// Validates, then reads the resource into its struct.
pub fn parse<T: DeserializeOwned>(expected: &str, value: &Value) -> Result<T, Invalid> {
    let issues = validate(expected, value);
    if !issues.is_empty() {
        return Err(Invalid(OperationOutcome::new(issues)));
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        Invalid(OperationOutcome::new(vec![Issue::error(
            "structure",
            expected,
            e.to_string(),
        )]))
    })
}

/// Patient: identifier, name, telecom, gender, birthDate, address, references.
pub fn validate_patient(value: &Value) -> Vec<Issue> {
    let mut v = V::default();
    let Some(obj) = v.header("Patient", value) else {
        return v.issues;
    };
    let p = "Patient";
    v.boolean(obj, p, "active", false);
    v.array_of(obj, p, "identifier", |v, o, path| v.identifier(o, path));
    v.array_of(obj, p, "name", |v, o, path| {
        v.code(o, path, "use", NAME_USE, false);
        v.string(o, path, "family", false);
        v.string(o, path, "text", false);
        for k in ["given", "prefix", "suffix"] {
            v.string_array(o, path, k);
        }
    });
    v.array_of(obj, p, "telecom", |v, o, path| {
        v.code(o, path, "system", CONTACT_POINT_SYSTEM, false);
        v.code(o, path, "use", CONTACT_POINT_USE, false);
        v.string(o, path, "value", false);
        if o.contains_key("value") && !o.contains_key("system") {
            v.push(
                "required",
                &format!("{path}.system"),
                "a telecom with a value needs a system (cpt-2)",
            );
        }
    });
    v.code(obj, p, "gender", ADMINISTRATIVE_GENDER, false);
    v.primitive(
        obj,
        p,
        "birthDate",
        is_date,
        "a date (YYYY, YYYY-MM or YYYY-MM-DD)",
    );
    v.primitive(obj, p, "deceasedDateTime", is_date_time, DATE_TIME_HELP);
    v.boolean(obj, p, "deceasedBoolean", false);
    v.array_of(obj, p, "address", |v, o, path| {
        v.code(o, path, "use", ADDRESS_USE, false);
        v.code(o, path, "type", ADDRESS_TYPE, false);
        v.string_array(o, path, "line");
        for k in ["text", "city", "district", "state", "postalCode", "country"] {
            v.string(o, path, k, false);
        }
    });
    v.array_of(obj, p, "generalPractitioner", |v, o, path| {
        v.reference_obj(o, path)
    });
    v.reference(obj, p, "managingOrganization", false);
    v.issues
}

/// ServiceRequest: status, intent (required, required bindings), subject
/// (required reference), priority, authoredOn, occurrenceDateTime, references.
pub fn validate_service_request(value: &Value) -> Vec<Issue> {
    let mut v = V::default();
    let Some(obj) = v.header("ServiceRequest", value) else {
        return v.issues;
    };
    let p = "ServiceRequest";
    v.array_of(obj, p, "identifier", |v, o, path| v.identifier(o, path));
    v.code(obj, p, "status", REQUEST_STATUS, true);
    v.code(obj, p, "intent", REQUEST_INTENT, true);
    v.code(obj, p, "priority", REQUEST_PRIORITY, false);
    v.codeable_concept(obj, p, "code");
    v.reference(obj, p, "subject", true);
    v.reference(obj, p, "encounter", false);
    v.reference(obj, p, "requester", false);
    v.array_of(obj, p, "performer", |v, o, path| v.reference_obj(o, path));
    v.array_of(obj, p, "basedOn", |v, o, path| v.reference_obj(o, path));
    v.primitive(obj, p, "authoredOn", is_date_time, DATE_TIME_HELP);
    v.primitive(obj, p, "occurrenceDateTime", is_date_time, DATE_TIME_HELP);
    v.issues
}

/// Appointment: status (required binding), participant (1..*, each with a
/// required status and an actor or type), start/end instants (app-3, app-4).
pub fn validate_appointment(value: &Value) -> Vec<Issue> {
    let mut v = V::default();
    let Some(obj) = v.header("Appointment", value) else {
        return v.issues;
    };
    let p = "Appointment";
    v.array_of(obj, p, "identifier", |v, o, path| v.identifier(o, path));
    v.code(obj, p, "status", APPOINTMENT_STATUS, true);
    v.primitive(obj, p, "start", is_instant, INSTANT_HELP);
    v.primitive(obj, p, "end", is_instant, INSTANT_HELP);
    v.primitive(obj, p, "created", is_date_time, DATE_TIME_HELP);
    v.array_of(obj, p, "basedOn", |v, o, path| v.reference_obj(o, path));
    match obj.get("participant") {
        None => v.push(
            "required",
            "Appointment.participant",
            "Appointment.participant is required (1..*)",
        ),
        Some(Value::Array(a)) if a.is_empty() => v.push(
            "required",
            "Appointment.participant",
            "Appointment.participant needs at least one entry",
        ),
        _ => {}
    }
    v.array_of(obj, p, "participant", |v, o, path| {
        v.code(o, path, "status", PARTICIPATION_STATUS, true);
        v.code(o, path, "required", PARTICIPANT_REQUIRED, false);
        v.reference(o, path, "actor", false);
        if !o.contains_key("actor") && !o.contains_key("type") {
            v.push(
                "required",
                path,
                "a participant needs an actor or a type (app-1)",
            );
        }
    });
    let has = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    if has("start") != has("end") {
        v.push(
            "invariant",
            "Appointment",
            "either start and end are both specified, or neither (app-2)",
        );
    }
    if let Some(status) = obj.get("status").and_then(Value::as_str)
        && !matches!(status, "proposed" | "cancelled" | "waitlist")
        && APPOINTMENT_STATUS.contains(&status)
        && !(has("start") && has("end"))
    {
        v.push(
            "invariant",
            "Appointment",
            format!("only proposed, cancelled or waitlisted appointments may lack start and end (app-3); status is {status:?}"),
        );
    }
    v.issues
}

/// ImagingStudy: status (required binding), subject (required, `Patient/<id>`:
/// medrelay files studies under patients only, although R4 also allows Device and
/// Group), started, counts, modality codings, and each series' uid (a DICOM UID),
/// modality (a coding with a code) and endpoints.
pub fn validate_imaging_study(value: &Value) -> Vec<Issue> {
    let mut v = V::default();
    let Some(obj) = v.header("ImagingStudy", value) else {
        return v.issues;
    };
    let p = "ImagingStudy";
    v.array_of(obj, p, "identifier", |v, o, path| v.identifier(o, path));
    v.code(obj, p, "status", IMAGING_STUDY_STATUS, true);
    v.array_of(obj, p, "modality", |v, o, path| v.coding(o, path));
    if let Some(subject) = v.object(obj, p, "subject", true) {
        let path = "ImagingStudy.subject";
        v.reference_obj(subject, path);
        match subject.get("reference") {
            Some(Value::String(r)) if !is_patient_reference(r) && is_reference(r) => v.push(
                "value",
                &format!("{path}.reference"),
                format!("{r:?} is not a Patient reference (Patient/<id>)"),
            ),
            None | Some(Value::Null) => v.push(
                "required",
                &format!("{path}.reference"),
                "the subject must be given as a literal reference Patient/<id>",
            ),
            _ => {}
        }
    }
    v.primitive(obj, p, "started", is_date_time, DATE_TIME_HELP);
    v.unsigned(obj, p, "numberOfSeries");
    v.unsigned(obj, p, "numberOfInstances");
    v.string(obj, p, "description", false);
    v.array_of(obj, p, "basedOn", |v, o, path| v.reference_obj(o, path));
    v.array_of(obj, p, "endpoint", |v, o, path| v.reference_obj(o, path));
    v.array_of(obj, p, "series", |v, o, path| {
        if let Some(uid) = v.string(o, path, "uid", true)
            && !(is_dicom_uid(&uid) && is_id(&uid))
        {
            v.push(
                "value",
                &format!("{path}.uid"),
                format!("{uid:?} is not a DICOM UID (digits and dots like 1.2.840.10008, at most 64 characters)"),
            );
        }
        v.unsigned(o, path, "number");
        if let Some(modality) = v.object(o, path, "modality", true) {
            let mp = format!("{path}.modality");
            v.coding(modality, &mp);
            v.string(modality, &mp, "code", true);
        }
        v.string(o, path, "description", false);
        v.unsigned(o, path, "numberOfInstances");
        v.array_of(o, path, "endpoint", |v, e, ep| v.reference_obj(e, ep));
        if let Some(site) = v.object(o, path, "bodySite", false) {
            v.coding(site, &format!("{path}.bodySite"));
        }
    });
    v.issues
}

/// `Patient/<id>`
fn is_patient_reference(r: &str) -> bool {
    matches!(r.split_once('/'), Some(("Patient", id)) if is_id(id))
}

/// A DICOM UID as FHIR's `oid` type has it without `urn:oid:`:
/// `[0-2](\.(0|[1-9][0-9]*))+`.
pub fn is_dicom_uid(s: &str) -> bool {
    let mut parts = s.split('.');
    let first_ok = matches!(parts.next(), Some("0" | "1" | "2"));
    let mut rest = 0;
    let rest_ok = parts.all(|p| {
        rest += 1;
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    });
    first_ok && rest_ok && rest > 0
}

const DATE_TIME_HELP: &str =
    "a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff] with Z or ±hh:mm)";
const INSTANT_HELP: &str = "an instant (YYYY-MM-DDThh:mm:ss[.fff] with Z or ±hh:mm)";

#[derive(Default)]
struct V {
    issues: Vec<Issue>,
}

type Obj = serde_json::Map<String, Value>;

impl V {
    fn push(&mut self, code: &str, path: &str, diagnostics: impl Into<String>) {
        self.issues.push(Issue::error(code, path, diagnostics));
    }

    /// A JSON object with the right resourceType and a well-formed id.
    fn header<'a>(&mut self, expected: &str, value: &'a Value) -> Option<&'a Obj> {
        let Some(obj) = value.as_object() else {
            self.push(
                "structure",
                expected,
                format!("a {expected} must be a JSON object"),
            );
            return None;
        };
        match obj.get("resourceType") {
            None => self.push(
                "required",
                &format!("{expected}.resourceType"),
                format!("resourceType is missing (expected {expected:?})"),
            ),
            Some(Value::String(s)) if s == expected => {}
            Some(other) => self.push(
                "invalid",
                &format!("{expected}.resourceType"),
                format!("resourceType is {other}, expected {expected:?}"),
            ),
        }
        self.primitive(
            obj,
            expected,
            "id",
            is_id,
            "an id (1-64 of A-Z a-z 0-9 - .)",
        );
        Some(obj)
    }

    fn string(&mut self, o: &Obj, path: &str, key: &str, required: bool) -> Option<String> {
        match o.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.push(
                        "required",
                        &format!("{path}.{key}"),
                        format!("{path}.{key} is required"),
                    );
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.push(
                    "value",
                    &format!("{path}.{key}"),
                    format!("{path}.{key} is empty"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.push(
                    "structure",
                    &format!("{path}.{key}"),
                    format!("{path}.{key} must be a string, not {other}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, o: &Obj, path: &str, key: &str, required: bool) {
        match o.get(key) {
            Some(Value::Bool(_)) => {}
            None if !required => {}
            None => self.push(
                "required",
                &format!("{path}.{key}"),
                format!("{path}.{key} is required"),
            ),
            Some(other) => self.push(
                "structure",
                &format!("{path}.{key}"),
                format!("{path}.{key} must be true or false, not {other}"),
            ),
        }
    }

    fn string_array(&mut self, o: &Obj, path: &str, key: &str) {
        match o.get(key) {
            None => {}
            Some(Value::Array(a)) => {
                for (i, item) in a.iter().enumerate() {
                    if !item.is_string() {
                        self.push(
                            "structure",
                            &format!("{path}.{key}[{i}]"),
                            format!("{path}.{key}[{i}] must be a string"),
                        );
                    }
                }
            }
            Some(_) => self.push(
                "structure",
                &format!("{path}.{key}"),
                format!("{path}.{key} must be an array"),
            ),
        }
    }

    fn code(&mut self, o: &Obj, path: &str, key: &str, allowed: &[&str], required: bool) {
        if let Some(s) = self.string(o, path, key, required)
            && !allowed.contains(&s.as_str())
        {
            self.push(
                "code-invalid",
                &format!("{path}.{key}"),
                format!(
                    "{s:?} is not a valid {path}.{key}; expected one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn primitive(&mut self, o: &Obj, path: &str, key: &str, ok: fn(&str) -> bool, what: &str) {
        if let Some(s) = self.string(o, path, key, false)
            && !ok(&s)
        {
            self.push(
                "value",
                &format!("{path}.{key}"),
                format!("{s:?} is not {what}"),
            );
        }
    }

    /// Each element of the array `key` (which must be an array of objects).
    fn array_of(
        &mut self,
        o: &Obj,
        path: &str,
        key: &str,
        mut each: impl FnMut(&mut V, &Obj, &str),
    ) {
        match o.get(key) {
            None => {}
            Some(Value::Array(a)) => {
                for (i, item) in a.iter().enumerate() {
                    let p = format!("{path}.{key}[{i}]");
                    match item.as_object() {
                        Some(obj) => each(self, obj, &p),
                        None => self.push("structure", &p, format!("{p} must be an object")),
                    }
                }
            }
            Some(_) => self.push(
                "structure",
                &format!("{path}.{key}"),
                format!("{path}.{key} must be an array"),
            ),
        }
    }

    fn object<'a>(&mut self, o: &'a Obj, path: &str, key: &str, required: bool) -> Option<&'a Obj> {
        match o.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.push(
                        "required",
                        &format!("{path}.{key}"),
                        format!("{path}.{key} is required"),
                    );
                }
                None
            }
            Some(Value::Object(obj)) => Some(obj),
            Some(_) => {
                self.push(
                    "structure",
                    &format!("{path}.{key}"),
                    format!("{path}.{key} must be an object"),
                );
                None
            }
        }
    }

    /// unsignedInt: a JSON integer from 0 to 2^31-1.
    fn unsigned(&mut self, o: &Obj, path: &str, key: &str) {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= i32::MAX as u64) => {}
            Some(other) => self.push(
                "value",
                &format!("{path}.{key}"),
                format!("{path}.{key} must be an unsignedInt (0 to 2147483647), not {other}"),
            ),
        }
    }

    fn coding(&mut self, c: &Obj, path: &str) {
        for k in ["system", "code", "display", "version"] {
            self.string(c, path, k, false);
        }
    }

    fn identifier(&mut self, o: &Obj, path: &str) {
        self.code(o, path, "use", IDENTIFIER_USE, false);
        self.string(o, path, "system", false);
        self.string(o, path, "value", false);
        self.codeable_concept(o, path, "type");
    }

    fn codeable_concept(&mut self, o: &Obj, path: &str, key: &str) {
        if let Some(cc) = self.object(o, path, key, false) {
            let p = format!("{path}.{key}");
            self.string(cc, &p, "text", false);
            self.array_of(cc, &p, "coding", |v, c, cp| v.coding(c, cp));
        }
    }

    fn reference(&mut self, o: &Obj, path: &str, key: &str, required: bool) {
        if let Some(r) = self.object(o, path, key, required) {
            self.reference_obj(r, &format!("{path}.{key}"));
        }
    }

    fn reference_obj(&mut self, r: &Obj, path: &str) {
        let literal = self.string(r, path, "reference", false);
        if let Some(s) = &literal
            && !is_reference(s)
        {
            self.push(
                "value",
                &format!("{path}.reference"),
                format!("{s:?} is not a reference of the form Type/id"),
            );
        }
        self.string(r, path, "display", false);
        let has_identifier = self.object(r, path, "identifier", false).is_some();
        if literal.is_none() && !has_identifier && !r.contains_key("display") {
            self.push(
                "required",
                path,
                format!("{path} needs a reference, an identifier or a display"),
            );
        }
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A resource type name as references use it: an upper-case letter, then letters.
fn is_type_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A literal reference: `Type/id`, `Type/id/_history/vid`, an absolute URL ending
/// in one of those, `urn:uuid:…`/`urn:oid:…`, or `#contained`.
pub fn is_reference(s: &str) -> bool {
    if s.starts_with("urn:uuid:") || s.starts_with("urn:oid:") {
        return s.len() > 9;
    }
    if let Some(local) = s.strip_prefix('#') {
        return local.is_empty() || is_id(local);
    }
    let rel = if s.starts_with("http://") || s.starts_with("https://") {
        let parts: Vec<&str> = s.rsplitn(5, '/').collect();
        match parts.as_slice() {
            [vid, "_history", id, ty, ..] if is_id(vid) => return is_type_name(ty) && is_id(id),
            [id, ty, ..] => return is_type_name(ty) && is_id(id),
            _ => return false,
        }
    } else {
        s
    };
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        [ty, id] => is_type_name(ty) && is_id(id),
        [ty, id, "_history", vid] => is_type_name(ty) && is_id(id) && is_id(vid),
        _ => false,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, with real months and days.
pub fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(year) = parts.next().and_then(|y| digits(y, 4)) else {
        return false;
    };
    let month = match parts.next() {
        None => return true,
        Some(m) => match digits(m, 2) {
            Some(m @ 1..=12) => m,
            _ => return false,
        },
    };
    let ok = match parts.next() {
        None => true,
        Some(d) => matches!(digits(d, 2), Some(d) if d >= 1 && d <= days_in_month(year, month)),
    };
    ok && parts.next().is_none()
}

/// The time part `hh:mm:ss[.f+](Z|±hh:mm)`, the zone required.
fn is_time_with_zone(t: &str) -> bool {
    let (time, zone) = if let Some(t) = t.strip_suffix('Z') {
        (t, None)
    } else if t.len() > 6 && matches!(&t.as_bytes()[t.len() - 6], b'+' | b'-') {
        (&t[..t.len() - 6], Some(&t[t.len() - 5..]))
    } else {
        return false;
    };
    if let Some(z) = zone {
        let ok = match z.split_once(':') {
            Some((h, m)) => {
                matches!((digits(h, 2), digits(m, 2)), (Some(h), Some(m)) if (h <= 13 && m <= 59) || (h == 14 && m == 0))
            }
            None => false,
        };
        if !ok {
            return false;
        }
    }
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let p: Vec<&str> = hms.split(':').collect();
    matches!(p.as_slice(), [h, m, s]
        if matches!(digits(h, 2), Some(0..=23))
        && matches!(digits(m, 2), Some(0..=59))
        && matches!(digits(s, 2), Some(0..=60)))
}

/// FHIR `dateTime`: a date, or a full date and time with seconds and a zone.
pub fn is_date_time(s: &str) -> bool {
    match s.split_once('T') {
        None => is_date(s),
        Some((d, t)) => d.len() == 10 && is_date(d) && is_time_with_zone(t),
    }
}

/// FHIR `instant`: a full date and time with seconds and a zone.
pub fn is_instant(s: &str) -> bool {
    s.contains('T') && is_date_time(s)
}
