//! The canonical model every inbound format maps into and every outbound format
//! is built from. Field names follow the device API's JSON (DESIGN.md); each field
//! documents where the HL7 presets take it from.
//!
//! Dates are ISO 8601 strings (`1975-10-22`, `2025-03-15T12:00:00`, with an offset
//! when the source carried one), converted from HL7 DTM by [`crate::time`].

use serde::{Deserialize, Serialize};

/// An identifier with the authority that issued it (HL7 CX: value^^^authority^type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    pub value: String,
    /// Assigning authority (CX-4), e.g. `HIS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Identifier type (CX-5), e.g. `MR`, `VN`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A code with its display text and coding system (HL7 CE/CWE: code^text^system).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coded {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// A postal address (HL7 XAD: street^other^city^state^zip^country^type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A person acting in the care process (HL7 XCN: id^family^given^middle^suffix^prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A patient as the worklist knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// medrelay's stable id, assigned by the store (empty until stored).
    #[serde(default)]
    pub id: String,
    /// PID-3, every repetition.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// PID-5.1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// PID-5.2 then PID-5.3 (given, then middle names).
    #[serde(default)]
    pub given: Vec<String>,
    /// PID-5.4
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// PID-5.5
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// PID-7, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// PID-8 through the `sex` value table: `male`, `female`, `other`, `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// PID-10 as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race: Option<Coded>,
    /// PID-10.1 through the `race_code` value table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub race_code: Option<String>,
    /// PID-15.1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// PID-11, first repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// PID-13.1 (or the number in XTN-6/7 when .1 is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// PID-13.4
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The encounter an order belongs to (PV1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// PV1-2 patient class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// PV1-3 assigned location, components joined with `^` as sent (point of
    /// care^room^bed^facility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// PV1-4 admission type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_type: Option<String>,
    /// PV1-7 attending doctor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attending: Option<Provider>,
    /// PV1-10 hospital service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// PV1-19 visit number with assigning authority and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_number: Option<Identifier>,
    /// PV1-44 admit date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admit_at: Option<String>,
    /// PV1-45 discharge date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_at: Option<String>,
}

/// The order behind an appointment (ORC + OBR, or SCH + AIS for SIU).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// MSH-7: when the EHR sent the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_date: Option<String>,
    /// ORC-1 order control (NW, XO, SC, CA …) of the last message applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// ORC-2 placer order number (SIU: SCH-1 placer appointment id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placer_order: Option<String>,
    /// ORC-3 filler order number (SIU: SCH-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_order: Option<String>,
    /// ORC-4 placer group number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_number: Option<String>,
    /// ORC-5 order status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// ORC-6 response flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_flag: Option<String>,
    /// ORC-7 quantity/timing, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<String>,
    /// ORC-9 date/time of transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_at: Option<String>,
    /// ORC-10 entered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered_by: Option<Provider>,
    /// ORC-11 verified by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<Provider>,
    /// ORC-12 ordering provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_provider: Option<Provider>,
    /// ORC-14 call back phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_phone: Option<String>,
    /// ORC-15 order effective date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
    /// OBR-4 universal service id (e.g. `ECG`); SIU: AIS-3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<Coded>,
    /// OBR-5 priority (or ORC-7.6 / TQ1-9 when OBR-5 is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// OBR-6 requested date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// OBR-7 observation date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_at: Option<String>,
    /// OBR-16 ordering provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obr_ordering_provider: Option<Provider>,
    /// OBR-24 diagnostic service section (e.g. `CT`, `EC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_section: Option<String>,
    /// OBR-27 quantity/timing, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing_block: Option<String>,
    /// OBR-34 technician, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician: Option<String>,
    /// OBR-36 scheduled date/time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// OBR-44 procedure code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure_code: Option<Coded>,
    /// A task type derived from the order (WEDA: ORC-2.1 before its `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// An activity id derived from the order (WEDA: ORC-2.1 after its `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    /// When medrelay received the order (ISO 8601, UTC): stamped on every order,
    /// whatever the sender's clock said (WEDA's `requestedDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// Fields of the source format kept verbatim, keyed by their name there (GDT:
    /// the field id, `"8316"` sender id, `"9218"` version …): what a result
    /// must echo and what no canonical field covers.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppointmentStatus {
    #[default]
    Scheduled,
    Cancelled,
    Completed,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Scheduled => "scheduled",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(AppointmentStatus::Scheduled),
            "cancelled" => Some(AppointmentStatus::Cancelled),
            "completed" => Some(AppointmentStatus::Completed),
            _ => None,
        }
    }
}

/// A worklist item: what a device of `group` should do for `patient`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// medrelay's stable id, assigned by the store (empty until stored).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub org: String,
    /// The integration the order came from (its results go back there).
    #[serde(default)]
    pub integration: String,
    /// The device group whose worklist shows it.
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub status: AppointmentStatus,
    /// When it is planned: OBR-36, else OBR-6/OBR-7/ORC-9/MSH-7 (first present);
    /// SIU: SCH-11.4 / AIS-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub visit: Visit,
    /// The patient's medrelay id.
    #[serde(default)]
    pub patient_id: String,
}

/// How a device reports a value: one row of the measurement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// A number (OBX NM), a string (ST), or an object `{code, display, system}` (CE).
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// e.g. `60-100`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_range: Option<String>,
    /// HL7 table 0078: `N`, `L`, `H`, `LL`, `HH`, `A` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abnormal_flag: Option<String>,
}

/// A result posted by a device for an appointment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub org: String,
    pub appointment_id: String,
    #[serde(default)]
    pub device_id: String,
    /// What was measured, e.g. `ECG`, `ABI`, `spirometry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// ISO 8601.
    pub performed_at: String,
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// The PDF report's bytes (Base64 in JSON).
    #[serde(default, with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub report_pdf: Vec<u8>,
}

/// Serde helper: bytes as standard Base64 strings.
pub mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("report_pdf is not valid Base64: {e}")))
    }
}

/// What one inbound message asks the worklist to do. Produced by the mappers,
/// applied by the store in the same transaction as the message itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorklistAction {
    /// ADT: create the patient, or update the one with a matching identifier.
    UpsertPatient { patient: Patient },
    /// ORM NW / SIU S12: a new appointment (the patient is upserted first; an
    /// appointment with the same order key is updated instead of duplicated).
    CreateAppointment {
        patient: Patient,
        appointment: Appointment,
    },
    /// ORM XO/SC, SIU S13/S14: update the appointment found by `key`.
    UpdateAppointment {
        key: OrderKey,
        patient: Patient,
        appointment: Appointment,
    },
    /// ORM CA/OC/DC, SIU S15: cancel the appointment found by `key`.
    CancelAppointment {
        key: OrderKey,
        reason: Option<String>,
    },
}

/// How an order is found again: by the integration plus placer or filler number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    pub integration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placer_order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler_order: Option<String>,
}

/// A named set of devices; an integration's orders land in one group's worklist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceGroup {
    pub org: String,
    pub name: String,
}

/// A registered device (a tablet running exams). Its token is stored hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub org: String,
    pub name: String,
    pub group: String,
    /// Epoch milliseconds of the last authenticated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
}
