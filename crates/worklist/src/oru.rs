//! The ORU^R01 sent back to the EHR: the device's values as OBX segments and the PDF
//! report as an encapsulated-data (ED) OBX in Base64 — "raw measurement data in a
//! predetermined HL7 structure along with a Base64 encoded PDF" (catalogue §3.2).
//!
//! Structure (v2.5 `ORU_R01`):
//!
//! ```text
//! MSH|^~\&|MEDRELAY|CLINIC|NEXTGEN|HOSP|<timestamp>||ORU^R01^ORU_R01|<control id>|P|2.5
//! PID|1||<every identifier as CX>||<family^given^middle^suffix^prefix>||<birth date>|<M/F/O/U>|||<XAD>||<XTN>
//! PV1|1|<class>|<location>|…                  (only when the order had a visit)
//! ORC|RE|<placer>|<filler>|…|<ordering provider>
//! OBR|1|<placer>|<filler>|<procedure>|||<performed at>|…|<results at>|||F
//! OBX|1|NM|<code^display^system>||72|/min|60-100|N|||F|||<performed at>
//! OBX|n|ED|PDF^Report^L||^AP^PDF^Base64^JVBERi0xLjQK…||||||F|||<performed at>
//! ```
//!
//! The ED value follows HL7 v2.5 tables 0191 (type of data `AP`, "other application
//! data"), 0291 (subtype `PDF`) and 0299 (encoding `Base64`), which is also what most
//! receiving systems expect. From v2.7 on, ED-2/ED-3 are MIME types (table 0834), so a
//! message built with `version = "2.7"` or later carries `^application^pdf^Base64^…`.
//! [`parse_oru_pdf`] reads both. Standard Base64 (`A–Z a–z 0–9 + / =`) contains no HL7
//! delimiter, so the data goes in unescaped and unwrapped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hl7v2::{Delimiters, Message, MessageBuilder, Version};
use serde::Serialize;

use crate::mapping::OruSettings;
use crate::model::*;
use crate::time;

/// What the ORU's MSH says and when it was built (no clock in this crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OruContext {
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-10.
    pub control_id: String,
    /// MSH-7, also ORC-9 and OBR-22 (results reported): HL7 DTM, e.g. `20250315145530`.
    pub timestamp: String,
    /// MSH-12, `2.5` by default.
    pub version: String,
    /// MSH-11, `P` by default.
    pub processing_id: String,
}

impl Default for OruContext {
    fn default() -> Self {
        OruContext {
            sending_application: "MEDRELAY".into(),
            sending_facility: String::new(),
            receiving_application: String::new(),
            receiving_facility: String::new(),
            control_id: String::new(),
            timestamp: String::new(),
            version: "2.5".into(),
            processing_id: "P".into(),
        }
    }
}

impl OruContext {
    /// A context from a mapping's `[oru]` settings (defaults where they are silent).
    pub fn from_settings(settings: &OruSettings, control_id: &str, timestamp: &str) -> Self {
        let d = OruContext::default();
        let or = |v: &Option<String>, default: String| v.clone().unwrap_or(default);
        OruContext {
            sending_application: or(&settings.sending_application, d.sending_application),
            sending_facility: or(&settings.sending_facility, d.sending_facility),
            receiving_application: or(&settings.receiving_application, d.receiving_application),
            receiving_facility: or(&settings.receiving_facility, d.receiving_facility),
            control_id: control_id.to_string(),
            timestamp: timestamp.to_string(),
            version: or(&settings.version, d.version),
            processing_id: or(&settings.processing_id, d.processing_id),
        }
    }
}

/// Why an ORU could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OruError {
    #[error("{field}: `{value}` is not an ISO 8601 date/time")]
    InvalidTime { field: String, value: String },
    #[error("{0} is required in the ORU context")]
    MissingContext(&'static str),
    #[error("observations[{index}]: {reason}")]
    InvalidObservation { index: usize, reason: String },
    #[error("building the message: {0}")]
    Build(#[from] hl7v2::EditError),
}

/// OBX-3 of the ED segment carrying the PDF.
pub const PDF_OBSERVATION_ID: &str = "PDF^Report^L";

fn esc(s: &str) -> String {
    hl7v2::escape::escape_str(s, &Delimiters::default()).into_owned()
}

/// Escaped components joined by `^`, without trailing empty ones.
fn comps(parts: &[Option<&str>]) -> String {
    let mut out: Vec<String> = parts
        .iter()
        .map(|p| p.map(esc).unwrap_or_default())
        .collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("^")
}

/// A value kept "as sent" (components joined by `^`, sub-components by `&`) back into
/// HL7, each piece escaped.
fn as_sent_raw(s: &str) -> String {
    s.split('^')
        .map(|c| c.split('&').map(esc).collect::<Vec<_>>().join("&"))
        .collect::<Vec<_>>()
        .join("^")
}

fn cx(id: &Identifier) -> String {
    comps(&[
        Some(&id.value),
        None,
        None,
        id.system.as_deref(),
        id.kind.as_deref(),
    ])
}

fn xcn(p: &Provider) -> String {
    let middle = p
        .given
        .get(1..)
        .filter(|r| !r.is_empty())
        .map(|r| r.join(" "));
    comps(&[
        p.id.as_deref(),
        p.family.as_deref(),
        p.given.first().map(String::as_str),
        middle.as_deref(),
        None,
        p.prefix.as_deref(),
    ])
}

fn ce(c: &Coded) -> String {
    comps(&[Some(&c.code), c.display.as_deref(), c.system.as_deref()])
}

/// The model's sex back to HL7 table 0001.
fn sex_code(sex: &str) -> &'static str {
    match sex.to_ascii_lowercase().as_str() {
        "male" | "m" => "M",
        "female" | "f" => "F",
        "other" | "o" | "a" => "O",
        _ => "U",
    }
}

fn hl7_time(field: &str, iso: &str) -> Result<String, OruError> {
    time::iso_to_hl7(iso).ok_or_else(|| OruError::InvalidTime {
        field: field.to_string(),
        value: iso.chars().take(40).collect(),
    })
}

fn opt_time(field: &str, iso: &Option<String>) -> Result<String, OruError> {
    iso.as_deref()
        .map(|t| hl7_time(field, t))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// OBX-2 and OBX-5 for an observation's value.
fn obx_value(index: usize, v: &serde_json::Value) -> Result<(&'static str, String), OruError> {
    let bad = |reason: &str| OruError::InvalidObservation {
        index,
        reason: reason.to_string(),
    };
    match v {
        serde_json::Value::Number(n) => {
            let text = if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                // f64's Display never uses an exponent, which NM does not allow.
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| bad("value is not a finite number"))?;
                f.to_string()
            };
            Ok(("NM", text))
        }
        serde_json::Value::String(s) => Ok(("ST", esc(s))),
        serde_json::Value::Object(o) => {
            let text = |k: &str| o.get(k).and_then(|v| v.as_str());
            let code = text("code")
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| bad("a coded value needs a `code`"))?;
            Ok(("CE", comps(&[Some(code), text("display"), text("system")])))
        }
        _ => Err(bad(
            "value must be a number, a string or {code, display, system}",
        )),
    }
}

/// Builds the ORU^R01 for a measurement of an appointment (see the module docs).
///
/// `ctx.control_id` must be set and `ctx.timestamp` be an HL7 DTM; the measurement's
/// `performed_at` and the patient's/visit's dates must be valid ISO 8601, and every
/// observation value a number, string or `{code, display, system}` (what
/// [`validate_measurement`] checks).
pub fn build_oru(
    ctx: &OruContext,
    appointment: &Appointment,
    patient: &Patient,
    m: &Measurement,
) -> Result<Vec<u8>, OruError> {
    if ctx.control_id.trim().is_empty() {
        return Err(OruError::MissingContext("control_id"));
    }
    if time::hl7_to_iso(&ctx.timestamp).is_none() {
        return Err(OruError::InvalidTime {
            field: "timestamp".into(),
            value: ctx.timestamp.chars().take(40).collect(),
        });
    }
    let performed = hl7_time("performed_at", &m.performed_at)?;
    let order = &appointment.order;
    let visit = &appointment.visit;

    let mut identifiers: Vec<String> = patient.identifiers.iter().map(cx).collect();
    if identifiers.is_empty() && !patient.id.is_empty() {
        identifiers.push(comps(&[Some(&patient.id), None, None, Some("MEDRELAY")]));
    }
    let middle = patient
        .given
        .get(1..)
        .filter(|r| !r.is_empty())
        .map(|r| r.join(" "));
    let name = comps(&[
        patient.family.as_deref(),
        patient.given.first().map(String::as_str),
        middle.as_deref(),
        patient.suffix.as_deref(),
        patient.prefix.as_deref(),
    ]);
    let birth = opt_time("birth_date", &patient.birth_date)?;
    let address = patient
        .address
        .as_ref()
        .map(|a| {
            comps(&[
                a.street.as_deref(),
                a.other.as_deref(),
                a.city.as_deref(),
                a.state.as_deref(),
                a.postal_code.as_deref(),
                a.country.as_deref(),
                a.kind.as_deref(),
            ])
        })
        .unwrap_or_default();
    let mut telecom = Vec::new();
    if let Some(p) = &patient.phone {
        telecom.push(esc(p));
    }
    if let Some(e) = &patient.email {
        telecom.push(comps(&[None, Some("NET"), Some("Internet"), Some(e)]));
    }

    let mut b = MessageBuilder::new("ORU", "R01")
        .version(&ctx.version)
        .processing_id(&ctx.processing_id)
        .control_id(&ctx.control_id)
        .sending(&ctx.sending_application, &ctx.sending_facility)
        .receiving(&ctx.receiving_application, &ctx.receiving_facility)
        .timestamp(&ctx.timestamp);

    b = b.segment("PID", |s| {
        s.field(1, "1")
            .field(3, &identifiers.join("~"))
            .field(5, &name)
            .field(7, &birth)
            .field(8, patient.sex.as_deref().map(sex_code).unwrap_or(""))
            .field(10, &patient.race.as_ref().map(ce).unwrap_or_default())
            .field(11, &address)
            .field(13, &telecom.join("~"))
            .field(
                15,
                &patient.language.as_deref().map(esc).unwrap_or_default(),
            )
    });

    if *visit != Visit::default() {
        let admit = opt_time("visit.admit_at", &visit.admit_at)?;
        let discharge = opt_time("visit.discharge_at", &visit.discharge_at)?;
        b = b.segment("PV1", |s| {
            // PV1-2 is required; table 0004 `U` (unknown) when the order had none.
            s.field(1, "1")
                .field(2, &esc(visit.class.as_deref().unwrap_or("U")))
                .field(
                    3,
                    &visit
                        .location
                        .as_deref()
                        .map(as_sent_raw)
                        .unwrap_or_default(),
                )
                .field(
                    4,
                    &visit.admission_type.as_deref().map(esc).unwrap_or_default(),
                )
                .field(7, &visit.attending.as_ref().map(xcn).unwrap_or_default())
                .field(10, &visit.service.as_deref().map(esc).unwrap_or_default())
                .field(19, &visit.visit_number.as_ref().map(cx).unwrap_or_default())
                .field(44, &admit)
                .field(45, &discharge)
        });
    }

    let placer = order.placer_order.as_deref().map(esc).unwrap_or_default();
    let filler = order.filler_order.as_deref().map(esc).unwrap_or_default();
    let ordering = order
        .ordering_provider
        .as_ref()
        .or(order.obr_ordering_provider.as_ref())
        .map(xcn)
        .unwrap_or_default();
    b = b.segment("ORC", |s| {
        s.field(1, "RE")
            .field(2, &placer)
            .field(3, &filler)
            .field(
                4,
                &order.group_number.as_deref().map(esc).unwrap_or_default(),
            )
            .field(5, "CM")
            .field(9, &ctx.timestamp)
            .field(12, &ordering)
    });

    // OBR-4 is required: the order's procedure, else what the device measured.
    let procedure = order
        .procedure
        .as_ref()
        .map(ce)
        .unwrap_or_else(|| comps(&[Some(&m.kind), Some(&m.kind), Some("L")]));
    let obr_provider = order
        .obr_ordering_provider
        .as_ref()
        .or(order.ordering_provider.as_ref())
        .map(xcn)
        .unwrap_or_default();
    b = b.segment("OBR", |s| {
        s.field(1, "1")
            .field(2, &placer)
            .field(3, &filler)
            .field(4, &procedure)
            .field(7, &performed)
            .field(16, &obr_provider)
            .field(22, &ctx.timestamp)
            .field(
                24,
                &order
                    .diagnostic_section
                    .as_deref()
                    .map(esc)
                    .unwrap_or_default(),
            )
            .field(25, "F")
    });

    let mut set_id = 0usize;
    for (i, o) in m.observations.iter().enumerate() {
        if o.code.trim().is_empty() {
            return Err(OruError::InvalidObservation {
                index: i,
                reason: "code is empty".into(),
            });
        }
        let (kind, value) = obx_value(i, &o.value)?;
        let id = comps(&[Some(&o.code), o.display.as_deref(), o.system.as_deref()]);
        set_id += 1;
        let n = set_id.to_string();
        b = b.segment("OBX", |s| {
            s.field(1, &n)
                .field(2, kind)
                .field(3, &id)
                .field(5, &value)
                .field(6, &o.unit.as_deref().map(esc).unwrap_or_default())
                .field(
                    7,
                    &o.reference_range.as_deref().map(esc).unwrap_or_default(),
                )
                .field(8, &o.abnormal_flag.as_deref().map(esc).unwrap_or_default())
                .field(11, "F")
                .field(14, &performed)
        });
    }

    if !m.report_pdf.is_empty() {
        let mime = Version::parse(&ctx.version).is_some_and(|v| v >= Version::new(2, 7, 0));
        let (kind, subtype) = if mime {
            ("application", "pdf")
        } else {
            ("AP", "PDF")
        };
        let ed = format!(
            "^{kind}^{subtype}^Base64^{}",
            STANDARD.encode(&m.report_pdf)
        );
        set_id += 1;
        let n = set_id.to_string();
        b = b.segment("OBX", |s| {
            s.field(1, &n)
                .field(2, "ED")
                .field(3, PDF_OBSERVATION_ID)
                .field(5, &ed)
                .field(11, "F")
                .field(14, &performed)
        });
    }

    Ok(b.build_bytes()?)
}

/// The PDF carried by the first ED OBX in Base64 (either ED convention), if any.
pub fn parse_oru_pdf(msg: &Message<'_>) -> Option<Vec<u8>> {
    msg.segments_named("OBX").find_map(|obx| {
        if !obx.field(2)?.as_str().trim().eq_ignore_ascii_case("ED") {
            return None;
        }
        let ed = obx.field(5)?;
        let encoding = ed.component(4)?.decoded();
        if !encoding.trim().eq_ignore_ascii_case("Base64") {
            return None;
        }
        let data = ed.component(5)?.decoded();
        let clean: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = STANDARD.decode(clean).ok()?;
        let subtype = ed.component(3).map(|v| v.decoded().to_ascii_lowercase());
        let says_pdf = subtype.as_deref() == Some("pdf");
        (says_pdf || bytes.starts_with(b"%PDF-")).then_some(bytes)
    })
}

/// One problem found in a posted measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// JSON path of the field, e.g. `observations[2].value`.
    pub field: String,
    pub reason: String,
}

fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How far from the end `%%EOF` may be (writers append a newline or a few bytes).
const EOF_WINDOW: usize = 1024;

/// True if the bytes look like a complete PDF: `%PDF-` header and a `%%EOF` marker
/// near the end.
pub fn is_pdf(bytes: &[u8]) -> bool {
    let tail = bytes
        .get(bytes.len().saturating_sub(EOF_WINDOW)..)
        .unwrap_or(bytes);
    bytes.starts_with(b"%PDF-") && tail.windows(5).any(|w| w == b"%%EOF")
}

/// Checks a posted measurement before it is stored: `type`, `appointment_id` and
/// `performed_at` (ISO 8601 date-time) present, every observation with a code and a
/// number / string / `{code, display, system}` value, and the report a real PDF of at
/// most `max_pdf` bytes. Returns every problem found.
pub fn validate_measurement(m: &Measurement, max_pdf: usize) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if m.appointment_id.trim().is_empty() {
        errors.push(field_error("appointment_id", "is empty"));
    }
    if m.kind.trim().is_empty() {
        errors.push(field_error("type", "is empty"));
    }
    if !time::is_iso_datetime(&m.performed_at) {
        errors.push(field_error(
            "performed_at",
            "must be an ISO 8601 date-time, e.g. 2025-03-15T12:05:00+01:00",
        ));
    }
    for (i, o) in m.observations.iter().enumerate() {
        let at = |f: &str| format!("observations[{i}].{f}");
        if o.code.trim().is_empty() {
            errors.push(field_error(at("code"), "is empty"));
        }
        match &o.value {
            serde_json::Value::Number(n) => {
                if !n.as_f64().is_some_and(f64::is_finite) {
                    errors.push(field_error(at("value"), "is not a finite number"));
                }
            }
            serde_json::Value::String(_) => {}
            serde_json::Value::Object(obj) => {
                let code_ok = obj
                    .get("code")
                    .and_then(|c| c.as_str())
                    .is_some_and(|c| !c.trim().is_empty());
                if !code_ok {
                    errors.push(field_error(
                        at("value.code"),
                        "a coded value needs a non-empty string `code`",
                    ));
                }
                for (k, v) in obj {
                    match k.as_str() {
                        "code" => {}
                        "display" | "system" if v.is_string() || v.is_null() => {}
                        "display" | "system" => {
                            errors.push(field_error(at(&format!("value.{k}")), "must be a string"))
                        }
                        other => errors.push(field_error(
                            at(&format!("value.{other}")),
                            "unknown key (a coded value has code, display, system)",
                        )),
                    }
                }
            }
            _ => errors.push(field_error(
                at("value"),
                "must be a number, a string or {code, display, system}",
            )),
        }
    }
    if !m.report_pdf.is_empty() {
        if m.report_pdf.len() > max_pdf {
            errors.push(field_error(
                "report_pdf",
                format!(
                    "is {} bytes, more than the limit of {max_pdf}",
                    m.report_pdf.len()
                ),
            ));
        } else if !is_pdf(&m.report_pdf) {
            errors.push(field_error(
                "report_pdf",
                "is not a PDF (expected %PDF- at the start and %%EOF at the end)",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
