//! medrelay's device domain, free of I/O: the canonical model (patients,
//! appointments, measurements), the data-driven mapping of HL7 v2 orders into
//! it, and the ORU^R01 built from a measurement. GDT files ([`gdt_map`]) and the
//! cloud EHRs' JSON ([`json_map`]) map the same way, from data.
//!
//! Where an order goes: [`mapping::map_message`] turns a parsed HL7 message into
//! [`WorklistAction`]s (using a preset's [`mapping::Mapping`] from [`presets`],
//! possibly overridden per integration); the store applies them; a device posts a
//! [`Measurement`] (checked by [`oru::validate_measurement`]); [`oru::build_oru`]
//! builds the result message for the EHR. Dates move between HL7 DTM and ISO 8601
//! through [`time`].
//!
//! ```
//! use medrelay_worklist::{mapping::{map_message, MapContext}, presets, WorklistAction};
//! let raw = b"MSH|^~\\&|HIS|HOSP|MEDRELAY|CLINIC|20250315120000||ORM^O01|MSG001|P|2.5\r\
//! PID|1||1234567890^^^HIS^MR||GARCIA^PEDRO^M||19751022|M\r\
//! ORC|NW|ORD-2025-001\r\
//! OBR|1|ORD-2025-001||ECG^Electrocardiogram^L\r";
//! let msg = hl7v2::Message::parse(raw).unwrap();
//! let mapping = presets::get("nextgen").unwrap().mapping;
//! let ctx = MapContext { integration: "cardio".into(), group: "cardiology".into(), org: "default".into() };
//! let actions = map_message(&msg, &mapping, &ctx).unwrap();
//! let WorklistAction::CreateAppointment { patient, appointment } = &actions[0] else { panic!() };
//! assert_eq!(patient.family.as_deref(), Some("GARCIA"));
//! assert_eq!(patient.sex.as_deref(), Some("male"));
//! assert_eq!(appointment.order.procedure.as_ref().unwrap().code, "ECG");
//! assert_eq!(appointment.scheduled_at.as_deref(), Some("2025-03-15T12:00:00"));
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod gdt_map;
pub mod json_map;
pub mod mapping;
pub mod model;
pub mod oru;
pub mod presets;
pub mod time;

pub use mapping::{MapContext, MapError, Mapping, MappingError, map_message};
pub use model::*;
pub use oru::{FieldError, OruContext, OruError, build_oru, parse_oru_pdf, validate_measurement};
pub use presets::Preset;
