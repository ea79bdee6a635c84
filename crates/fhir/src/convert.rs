//! Canonical worklist model → FHIR R4 resources, and back for what clients create
//! through the FHIR API: Patient → patient, ServiceRequest and Appointment → order.
//!
//! FHIR `dateTime`s with a time and every `instant` SHALL carry a time zone; the
//! model keeps local times without an offset when the source sent none. The
//! [`Converter`] therefore knows the [`LocalZone`] they were written in (UTC by
//! default) and gives each the offset in force at that time; times that carry
//! an offset are passed through unchanged. Zoned times coming in through FHIR
//! become local times of that zone ([`Converter::local_time`]), so the store
//! holds one kind of time and searches compare like with like.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use medrelay_worklist as model;
use medrelay_worklist::AppointmentStatus;

use crate::resources::*;
use crate::zone::{LocalZone, offset_text};

/// `http://loinc.org`
pub const LOINC: &str = "http://loinc.org";
/// `http://snomed.info/sct`
pub const SNOMED: &str = "http://snomed.info/sct";
/// `http://unitsofmeasure.org`
pub const UCUM: &str = "http://unitsofmeasure.org";
/// HL7 v2 table 0203 (identifier type) as a FHIR code system.
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// HL7 v3 ObservationInterpretation.
pub const V3_INTERPRETATION: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

/// Converts model objects to FHIR resources.
#[derive(Debug, Clone)]
pub struct Converter {
    /// The zone of model times that carry no offset.
    zone: Arc<dyn LocalZone>,
}

impl Default for Converter {
    /// Model times are UTC.
    fn default() -> Self {
        Converter::new(chrono::Utc)
    }
}

/// A coding system name as HL7 v2 writes it (CE-3) → a FHIR system URI. `LN`/`LOINC`
/// and `SCT`/`SNOMED` become their URIs, an OID becomes `urn:oid:…`, anything else is
/// kept as given.
pub fn system_uri(system: &str) -> String {
    match system.to_ascii_uppercase().as_str() {
        "LN" | "LOINC" => LOINC.into(),
        "SCT" | "SNOMED" | "SNOMEDCT" | "SNOMED CT" => SNOMED.into(),
        _ if is_oid(system) => format!("urn:oid:{system}"),
        _ => system.into(),
    }
}

fn is_oid(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn coded(c: &model::Coded) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: non_empty(&c.system).map(|s| system_uri(&s)),
            code: Some(c.code.clone()).filter(|c| !c.is_empty()),
            display: non_empty(&c.display),
            ..Coding::default()
        }],
        text: non_empty(&c.display),
    }
}

fn provider_display(p: &model::Provider) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(p.prefix.as_deref());
    parts.extend(p.given.iter().map(String::as_str));
    parts.extend(p.family.as_deref());
    let text = parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!text.is_empty()).then_some(text)
}

/// The FHIR Patient for a model patient: `id`, every PID-3 identifier (its
/// authority as `system`, its type as a v2-0203 `type`), one official name, gender,
/// birthDate, address, phone and email.
pub fn patient(p: &model::Patient) -> Patient {
    let identifier = p
        .identifiers
        .iter()
        .filter(|i| !i.value.is_empty())
        .map(|i| Identifier {
            type_: non_empty(&i.kind).map(|k| CodeableConcept {
                coding: vec![Coding {
                    system: Some(V2_0203.into()),
                    code: Some(k),
                    ..Coding::default()
                }],
                text: None,
            }),
            system: non_empty(&i.system).map(|s| system_uri(&s)),
            value: Some(i.value.clone()),
            ..Identifier::default()
        })
        .collect();
    let given: Vec<String> = p.given.iter().filter(|g| !g.is_empty()).cloned().collect();
    let name = HumanName {
        use_: Some("official".into()),
        family: non_empty(&p.family),
        given,
        prefix: non_empty(&p.prefix).into_iter().collect(),
        suffix: non_empty(&p.suffix).into_iter().collect(),
        ..HumanName::default()
    };
    let has_name = name.family.is_some()
        || !name.given.is_empty()
        || !name.prefix.is_empty()
        || !name.suffix.is_empty();
    let gender = p.sex.as_deref().map(|s| {
        match s.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => "male",
            "female" | "f" => "female",
            "other" | "o" | "a" | "n" | "x" | "d" => "other",
            _ => "unknown",
        }
        .to_string()
    });
    let address = p
        .address
        .as_ref()
        .map(|a| Address {
            line: [&a.street, &a.other]
                .into_iter()
                .filter_map(non_empty)
                .collect(),
            city: non_empty(&a.city),
            state: non_empty(&a.state),
            postal_code: non_empty(&a.postal_code),
            country: non_empty(&a.country),
            ..Address::default()
        })
        .filter(|a| *a != Address::default());
    let mut telecom = Vec::new();
    if let Some(phone) = non_empty(&p.phone) {
        telecom.push(ContactPoint {
            system: Some("phone".into()),
            value: Some(phone),
            use_: None,
        });
    }
    if let Some(email) = non_empty(&p.email) {
        telecom.push(ContactPoint {
            system: Some("email".into()),
            value: Some(email),
            use_: None,
        });
    }
    Patient {
        id: Some(p.id.clone()).filter(|s| !s.is_empty()),
        identifier,
        name: if has_name { vec![name] } else { Vec::new() },
        telecom,
        gender,
        birth_date: non_empty(&p.birth_date),
        address: address.into_iter().collect(),
        ..Patient::default()
    }
}

/// The FHIR Device for a registered device: `id`, status `active`, its name as the
/// user-friendly name.
pub fn device(d: &model::Device) -> Device {
    Device {
        id: Some(d.id.clone()).filter(|s| !s.is_empty()),
        status: Some("active".into()),
        device_name: if d.name.is_empty() {
            Vec::new()
        } else {
            vec![DeviceName {
                name: d.name.clone(),
                type_: "user-friendly-name".into(),
            }]
        },
        ..Device::default()
    }
}

fn typed_identifier(code: &str, display: &str, value: &str) -> Identifier {
    Identifier {
        type_: Some(CodeableConcept {
            coding: vec![Coding {
                system: Some(V2_0203.into()),
                code: Some(code.into()),
                display: Some(display.into()),
                ..Coding::default()
            }],
            text: None,
        }),
        value: Some(value.into()),
        ..Identifier::default()
    }
}

/// HL7 table 0078 abnormal flag → v3 ObservationInterpretation (code, display).
pub fn interpretation(flag: &str) -> Option<(&'static str, &'static str)> {
    Some(match flag.trim() {
        "N" => ("N", "Normal"),
        "L" => ("L", "Low"),
        "H" => ("H", "High"),
        "LL" => ("LL", "Critical low"),
        "HH" => ("HH", "Critical high"),
        "LU" => ("LU", "Significantly low"),
        "HU" => ("HU", "Significantly high"),
        "A" => ("A", "Abnormal"),
        "AA" => ("AA", "Critical abnormal"),
        "<" => ("<", "Off scale low"),
        ">" => (">", "Off scale high"),
        "U" => ("U", "Significant change up"),
        "D" => ("D", "Significant change down"),
        "B" => ("B", "Better"),
        "W" => ("W", "Worse"),
        "S" => ("S", "Susceptible"),
        "R" => ("R", "Resistant"),
        "I" => ("I", "Intermediate"),
        "NEG" => ("NEG", "Negative"),
        "POS" => ("POS", "Positive"),
        "IND" => ("IND", "Indeterminate"),
        "DET" => ("DET", "Detected"),
        "ND" => ("ND", "Not detected"),
        "E" => ("E", "Equivocal"),
        "NR" => ("NR", "Non-reactive"),
        "RR" => ("RR", "Reactive"),
        _ => return None,
    })
}

impl Converter {
    /// A converter for model times written in `zone` (`chrono::Local`, a
    /// `FixedOffset` …).
    pub fn new(zone: impl LocalZone + 'static) -> Converter {
        Converter {
            zone: Arc::new(zone),
        }
    }

    /// The zone of model times.
    pub fn zone(&self) -> &dyn LocalZone {
        self.zone.as_ref()
    }

    /// A model date/time as a FHIR `dateTime`: dates pass through, times get the
    /// offset the zone had at that time when they have none.
    pub fn date_time(&self, s: &str) -> Option<String> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let Some((day, time)) = s.split_once('T') else {
            return Some(s.to_string());
        };
        if time.ends_with('Z') || time.contains('+') || time.contains('-') {
            return Some(s.to_string());
        }
        // The offset at that time; a time this cannot read takes its day's noon.
        let at = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(12, 0, 0))
            });
        let offset = match at {
            Some(at) => offset_text(self.zone.offset_at_local(at)),
            None => "Z".into(),
        };
        Some(format!("{s}{offset}"))
    }

    /// A FHIR dateTime or instant as a model time: with a time and a zone,
    /// the local time of this converter's zone (`2025-03-15T08:00:00Z` →
    /// `2025-03-15T09:00:00` at `+01:00`); anything else as given.
    pub fn local_time(&self, s: &str) -> String {
        match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => {
                let local = self.zone.local_of_utc(t.naive_utc());
                if local.and_utc().timestamp_subsec_nanos() == 0 {
                    local.format("%Y-%m-%dT%H:%M:%S").to_string()
                } else {
                    local.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
                }
            }
            Err(_) => s.to_string(),
        }
    }

    /// A model date/time as a FHIR `instant` (needs a time): `None` for a bare date.
    pub fn instant(&self, s: &str) -> Option<String> {
        self.date_time(s).filter(|d| d.contains('T'))
    }

    fn opt_date_time(&self, s: &Option<String>) -> Option<String> {
        s.as_deref().and_then(|s| self.date_time(s))
    }

    /// The ServiceRequest behind an appointment (same `id`): placer/filler order
    /// numbers as PLAC/FILL identifiers, status active/revoked/completed, intent
    /// `order`, code from the ordered procedure, authoredOn from the request date,
    /// occurrence from the scheduled time, requester from the ordering provider.
    pub fn service_request(
        &self,
        a: &model::Appointment,
        patient_ref: &Reference,
    ) -> ServiceRequest {
        let o = &a.order;
        let mut identifier = Vec::new();
        if let Some(p) = non_empty(&o.placer_order) {
            identifier.push(typed_identifier("PLAC", "Placer Identifier", &p));
        }
        if let Some(f) = non_empty(&o.filler_order) {
            identifier.push(typed_identifier("FILL", "Filler Identifier", &f));
        }
        let status = match a.status {
            AppointmentStatus::Scheduled => "active",
            AppointmentStatus::Cancelled => "revoked",
            AppointmentStatus::Completed => "completed",
        };
        let requester = o
            .ordering_provider
            .as_ref()
            .or(o.obr_ordering_provider.as_ref())
            .and_then(|p| {
                let r = Reference {
                    display: provider_display(p),
                    identifier: non_empty(&p.id).map(|id| Identifier {
                        value: Some(id),
                        ..Identifier::default()
                    }),
                    ..Reference::default()
                };
                (r != Reference::default()).then_some(r)
            });
        ServiceRequest {
            id: Some(a.id.clone()).filter(|s| !s.is_empty()),
            identifier,
            status: status.into(),
            intent: "order".into(),
            code: o
                .procedure
                .as_ref()
                .or(o.procedure_code.as_ref())
                .map(coded),
            subject: patient_ref.clone(),
            occurrence_date_time: self.opt_date_time(&a.scheduled_at),
            authored_on: self.opt_date_time(&o.request_date),
            requester,
            ..ServiceRequest::default()
        }
    }

    /// The Appointment (same `id` as the model's): status booked/cancelled/fulfilled,
    /// the patient as an accepted participant, basedOn its ServiceRequest.
    ///
    /// The model has no end time, but R4 invariant app-2 wants start and end both or
    /// neither: `end` is set to `start` (duration unknown) when there is a start.
    pub fn appointment(&self, a: &model::Appointment, patient_ref: &Reference) -> Appointment {
        let status = match a.status {
            AppointmentStatus::Scheduled => "booked",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Completed => "fulfilled",
        };
        let start = a.scheduled_at.as_deref().and_then(|s| self.instant(s));
        Appointment {
            id: Some(a.id.clone()).filter(|s| !s.is_empty()),
            status: status.into(),
            service_type: a.order.procedure.as_ref().map(coded).into_iter().collect(),
            end: start.clone(),
            start,
            based_on: if a.id.is_empty() {
                Vec::new()
            } else {
                vec![Reference::to("ServiceRequest", &a.id)]
            },
            participant: vec![AppointmentParticipant {
                actor: Some(patient_ref.clone()),
                required: Some("required".into()),
                status: "accepted".into(),
                ..AppointmentParticipant::default()
            }],
            ..Appointment::default()
        }
    }

    /// One final Observation per measured value (ids `<measurement id>-<n>` from 1).
    pub fn observations(
        &self,
        m: &model::Measurement,
        patient_ref: &Reference,
    ) -> Vec<Observation> {
        m.observations
            .iter()
            .enumerate()
            .map(|(i, o)| self.observation(m, i, o, patient_ref))
            .collect()
    }

    fn observation(
        &self,
        m: &model::Measurement,
        index: usize,
        o: &model::Observation,
        patient_ref: &Reference,
    ) -> Observation {
        let system = o.system.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let code = CodeableConcept {
            coding: vec![Coding {
                system: system.map(system_uri),
                code: Some(o.code.clone()),
                display: non_empty(&o.display),
                ..Coding::default()
            }],
            text: non_empty(&o.display),
        };
        let unit = non_empty(&o.unit);
        let mut obs = Observation {
            id: (!m.id.is_empty()).then(|| format!("{}-{}", m.id, index + 1)),
            based_on: if m.appointment_id.is_empty() {
                Vec::new()
            } else {
                vec![Reference::to("ServiceRequest", &m.appointment_id)]
            },
            status: "final".into(),
            code,
            subject: Some(patient_ref.clone()),
            effective_date_time: self.date_time(&m.performed_at),
            device: (!m.device_id.is_empty()).then(|| Reference::to("Device", &m.device_id)),
            reference_range: non_empty(&o.reference_range)
                .map(|text| ObservationReferenceRange {
                    text: Some(text),
                    ..ObservationReferenceRange::default()
                })
                .into_iter()
                .collect(),
            interpretation: non_empty(&o.abnormal_flag)
                .map(|flag| match interpretation(&flag) {
                    Some((code, display)) => CodeableConcept {
                        coding: vec![Coding {
                            system: Some(V3_INTERPRETATION.into()),
                            code: Some(code.into()),
                            display: Some(display.into()),
                            ..Coding::default()
                        }],
                        text: None,
                    },
                    None => CodeableConcept {
                        coding: Vec::new(),
                        text: Some(flag),
                    },
                })
                .into_iter()
                .collect(),
            ..Observation::default()
        };
        match &o.value {
            serde_json::Value::Number(n) => {
                obs.value_quantity = Some(Quantity {
                    value: Some(n.clone()),
                    system: unit.as_ref().map(|_| UCUM.to_string()),
                    code: unit.clone(),
                    unit,
                    ..Quantity::default()
                })
            }
            serde_json::Value::String(s) => {
                if !s.is_empty() {
                    obs.value_string = Some(s.clone());
                }
            }
            serde_json::Value::Object(map) => {
                let get = |k: &str| {
                    map.get(k)
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                        .filter(|s| !s.is_empty())
                };
                obs.value_codeable_concept = Some(CodeableConcept {
                    coding: vec![Coding {
                        system: get("system").map(|s| system_uri(&s)),
                        code: get("code"),
                        display: get("display"),
                        ..Coding::default()
                    }],
                    text: get("display"),
                });
            }
            serde_json::Value::Null => {}
            other => obs.value_string = Some(other.to_string()),
        }
        obs
    }

    /// The final DiagnosticReport of a measurement (same `id`): code from its type,
    /// the given observation references as `result`, the PDF as `presentedForm`.
    pub fn diagnostic_report(
        &self,
        m: &model::Measurement,
        patient_ref: &Reference,
        results: Vec<Reference>,
    ) -> DiagnosticReport {
        DiagnosticReport {
            id: Some(m.id.clone()).filter(|s| !s.is_empty()),
            based_on: if m.appointment_id.is_empty() {
                Vec::new()
            } else {
                vec![Reference::to("ServiceRequest", &m.appointment_id)]
            },
            status: "final".into(),
            code: CodeableConcept {
                coding: Vec::new(),
                text: Some(m.kind.clone()),
            },
            subject: Some(patient_ref.clone()),
            effective_date_time: self.date_time(&m.performed_at),
            result: results,
            presented_form: if m.report_pdf.is_empty() {
                Vec::new()
            } else {
                vec![Attachment {
                    content_type: Some("application/pdf".into()),
                    data: Some(STANDARD.encode(&m.report_pdf)),
                    size: Some(m.report_pdf.len() as u64),
                    title: Some(format!("{} report", m.kind)),
                    ..Attachment::default()
                }]
            },
            ..DiagnosticReport::default()
        }
    }
}

/// Reads a ServiceRequest created through the FHIR API into the model: the
/// patient's id (from `subject`, which must be `Patient/<id>`) and an appointment
/// with its order filled in. The placer/filler numbers come from identifiers typed
/// PLAC/FILL (v2-0203); without a PLAC identifier `placer_order` is `None` and the
/// caller generates one. A PLAC/FILL identifier without a value is an error.
/// Problems come back as OperationOutcome issues.
pub fn service_request_to_order(
    sr: &ServiceRequest,
) -> Result<(String, model::Appointment), Vec<Issue>> {
    let mut issues = Vec::new();
    let patient_id = match sr.subject.reference.as_deref().map(|r| r.split_once('/')) {
        Some(Some(("Patient", id))) if !id.is_empty() && !id.contains('/') => id.to_string(),
        _ => {
            issues.push(Issue::error(
                "value",
                "ServiceRequest.subject",
                "subject must reference a Patient as Patient/<id>",
            ));
            String::new()
        }
    };
    let status = match sr.status.as_str() {
        "draft" | "active" | "on-hold" => AppointmentStatus::Scheduled,
        "revoked" => AppointmentStatus::Cancelled,
        "completed" => AppointmentStatus::Completed,
        other => {
            issues.push(Issue::error(
                "business-rule",
                "ServiceRequest.status",
                format!("a ServiceRequest with status {other:?} cannot be taken as an order"),
            ));
            AppointmentStatus::Scheduled
        }
    };
    if !matches!(
        sr.intent.as_str(),
        "order" | "original-order" | "reflex-order" | "filler-order" | "instance-order"
    ) {
        issues.push(Issue::error(
            "business-rule",
            "ServiceRequest.intent",
            format!("intent {:?} is not an order", sr.intent),
        ));
    }
    let mut order = model::Order::default();
    for (i, id) in sr.identifier.iter().enumerate() {
        let kind = id
            .type_
            .as_ref()
            .and_then(|t| {
                t.coding
                    .iter()
                    .find(|c| c.system.as_deref() == Some(V2_0203))
            })
            .and_then(|c| c.code.as_deref());
        match (kind, &id.value) {
            (Some("PLAC"), Some(v)) => order.placer_order = Some(v.clone()),
            (Some("FILL"), Some(v)) => order.filler_order = Some(v.clone()),
            (Some("PLAC" | "FILL"), None) => issues.push(Issue::error(
                "required",
                &format!("ServiceRequest.identifier[{i}].value"),
                "a placer/filler identifier needs a value",
            )),
            _ => {}
        }
    }
    order.procedure = sr.code.as_ref().and_then(procedure);
    order.request_date = sr.authored_on.clone();
    order.priority = sr.priority.as_deref().and_then(|p| match p {
        "stat" => Some("S".to_string()),
        "asap" => Some("A".to_string()),
        "routine" => Some("R".to_string()),
        _ => None,
    });
    order.ordering_provider = sr.requester.as_ref().and_then(|r| {
        let id = r.identifier.as_ref().and_then(|i| i.value.clone());
        (id.is_some() || r.display.is_some()).then(|| model::Provider {
            id,
            family: r.display.clone(),
            ..model::Provider::default()
        })
    });
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok((
        patient_id.clone(),
        model::Appointment {
            id: sr.id.clone().unwrap_or_default(),
            status,
            scheduled_at: sr.occurrence_date_time.clone(),
            order,
            patient_id,
            ..model::Appointment::default()
        },
    ))
}

/// A CodeableConcept as the ordered procedure: the first coding with a code (its
/// system back in HL7 v2 naming: `LN`, `SCT`, a bare OID), else the text as code.
fn procedure(c: &CodeableConcept) -> Option<model::Coded> {
    let coding = c.coding.iter().find(|c| c.code.is_some());
    let code = coding
        .and_then(|c| c.code.clone())
        .or_else(|| c.text.clone())?;
    Some(model::Coded {
        code,
        display: coding
            .and_then(|c| c.display.clone())
            .or_else(|| c.text.clone()),
        system: coding.and_then(|c| c.system.as_deref()).map(|s| match s {
            LOINC => "LN".to_string(),
            SNOMED => "SCT".to_string(),
            s => s.strip_prefix("urn:oid:").unwrap_or(s).to_string(),
        }),
    })
}

/// The id in a literal `Patient/<id>` reference.
fn patient_id(r: &Reference) -> Option<&str> {
    match r.reference.as_deref()?.split_once('/') {
        Some(("Patient", id)) if crate::validate::is_id(id) => Some(id),
        _ => None,
    }
}

/// A Patient received through the FHIR API as the model's patient (its `id` is
/// ignored: the store assigns ids). The inverse of [`patient`]: the `official` name
/// (else the first) gives family, all given names, the first prefix and suffix;
/// gender → sex; birthDate; the first address (line[0] → street, the further lines
/// joined with ", " → other, city, state, postalCode, country); the first phone and
/// the first email; every identifier (system `urn:oid:X` → `X`, other systems as
/// they are; a v2-0203 type coding → kind). An identifier without a value, or a
/// gender outside administrative-gender, is an issue.
pub fn patient_to_model(p: &Patient) -> Result<model::Patient, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut identifiers = Vec::new();
    for (i, id) in p.identifier.iter().enumerate() {
        let Some(value) = non_empty(&id.value) else {
            issues.push(Issue::error(
                "required",
                &format!("Patient.identifier[{i}].value"),
                "an identifier needs a value",
            ));
            continue;
        };
        identifiers.push(model::Identifier {
            value,
            system: non_empty(&id.system)
                .map(|s| s.strip_prefix("urn:oid:").map(str::to_string).unwrap_or(s)),
            kind: id
                .type_
                .as_ref()
                .and_then(|t| {
                    t.coding
                        .iter()
                        .find(|c| c.system.as_deref() == Some(V2_0203))
                })
                .and_then(|c| non_empty(&c.code)),
        });
    }
    let sex = match p.gender.as_deref() {
        None => None,
        Some(g @ ("male" | "female" | "other" | "unknown")) => Some(g.to_string()),
        Some(other) => {
            issues.push(Issue::error(
                "code-invalid",
                "Patient.gender",
                format!(
                    "{other:?} is not an administrative-gender code (male, female, other, unknown)"
                ),
            ));
            None
        }
    };
    let name = p
        .name
        .iter()
        .find(|n| n.use_.as_deref() == Some("official"))
        .or(p.name.first());
    let address = p.address.first().map(|a| {
        let mut lines = a.line.iter().map(|l| l.trim()).filter(|l| !l.is_empty());
        let street = lines.next().map(str::to_string);
        let other = lines.collect::<Vec<_>>().join(", ");
        model::Address {
            street,
            other: (!other.is_empty()).then_some(other),
            city: non_empty(&a.city),
            state: non_empty(&a.state),
            postal_code: non_empty(&a.postal_code),
            country: non_empty(&a.country),
            kind: None,
        }
    });
    let telecom = |system: &str| {
        p.telecom
            .iter()
            .filter(|t| t.system.as_deref() == Some(system))
            .find_map(|t| non_empty(&t.value))
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(model::Patient {
        identifiers,
        family: name.and_then(|n| non_empty(&n.family)),
        given: name
            .map(|n| {
                n.given
                    .iter()
                    .map(|g| g.trim())
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        prefix: name.and_then(|n| non_empty(&n.prefix.first().cloned())),
        suffix: name.and_then(|n| non_empty(&n.suffix.first().cloned())),
        birth_date: non_empty(&p.birth_date),
        sex,
        address: address.filter(|a| *a != model::Address::default()),
        phone: telecom("phone"),
        email: telecom("email"),
        ..model::Patient::default()
    })
}

/// An Appointment received through the FHIR API, read by [`appointment_to_model`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentIn {
    /// The patient participant's id.
    pub patient_id: String,
    /// The id of the first `basedOn` reference of the form `ServiceRequest/<id>`.
    pub based_on: Option<String>,
    pub appointment: model::Appointment,
}

/// Reads an Appointment received through the FHIR API: the patient is the one
/// participant whose actor is `Patient/<id>` (none, or several different ones, is
/// an issue); status proposed | pending | booked | arrived | checked-in | waitlist →
/// scheduled, cancelled | noshow | entered-in-error → cancelled, fulfilled →
/// completed; `scheduled_at` is `start`; the ordered procedure comes from
/// serviceType[0] (as [`service_request_to_order`] reads `code`); the placer order
/// number is the first identifier with a value (`None` without one: the caller
/// generates it); `based_on` is the id of the first `ServiceRequest/<id>` in
/// basedOn. The appointment's `id` is the resource's, if any.
pub fn appointment_to_model(a: &Appointment) -> Result<AppointmentIn, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut patients: Vec<&str> = Vec::new();
    for (i, part) in a.participant.iter().enumerate() {
        let Some(actor) = &part.actor else { continue };
        if let Some(id) = patient_id(actor) {
            if !patients.contains(&id) {
                patients.push(id);
            }
        } else if actor
            .reference
            .as_deref()
            .is_some_and(|r| r.starts_with("Patient/"))
        {
            issues.push(Issue::error(
                "value",
                &format!("Appointment.participant[{i}].actor.reference"),
                "a Patient participant must be referenced as Patient/<id>",
            ));
        }
    }
    let patient_id = match patients.as_slice() {
        [id] => id.to_string(),
        [] => {
            if issues.is_empty() {
                issues.push(Issue::error(
                    "required",
                    "Appointment.participant",
                    "one participant's actor must reference the patient as Patient/<id>",
                ));
            }
            String::new()
        }
        _ => {
            issues.push(Issue::error(
                "business-rule",
                "Appointment.participant",
                format!(
                    "the appointment has {} different patient participants; exactly one is supported",
                    patients.len()
                ),
            ));
            String::new()
        }
    };
    let status = match a.status.as_str() {
        "proposed" | "pending" | "booked" | "arrived" | "checked-in" | "waitlist" => {
            AppointmentStatus::Scheduled
        }
        "cancelled" | "noshow" | "entered-in-error" => AppointmentStatus::Cancelled,
        "fulfilled" => AppointmentStatus::Completed,
        other => {
            issues.push(Issue::error(
                "code-invalid",
                "Appointment.status",
                format!("{other:?} is not an appointmentstatus code"),
            ));
            AppointmentStatus::Scheduled
        }
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    let based_on = a
        .based_on
        .iter()
        .find_map(|r| match r.reference.as_deref()?.split_once('/') {
            Some(("ServiceRequest", id)) if crate::validate::is_id(id) => Some(id.to_string()),
            _ => None,
        });
    let order = model::Order {
        placer_order: a.identifier.iter().find_map(|i| non_empty(&i.value)),
        procedure: a.service_type.first().and_then(procedure),
        ..model::Order::default()
    };
    Ok(AppointmentIn {
        patient_id: patient_id.clone(),
        based_on,
        appointment: model::Appointment {
            id: a.id.clone().unwrap_or_default(),
            status,
            scheduled_at: non_empty(&a.start),
            order,
            patient_id,
            ..model::Appointment::default()
        },
    })
}
