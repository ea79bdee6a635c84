//! FHIR R4 (4.0.1) for medrelay, without I/O: the resources and datatypes served
//! ([`resources`]), conversion between the canonical worklist model and FHIR
//! ([`convert`]), validation of incoming resources into OperationOutcome issues
//! ([`validate`]) and parsing of search parameter values and `Prefer` headers
//! ([`search`]).

pub mod convert;
pub mod resources;
pub mod search;
pub mod validate;
pub mod zone;

pub use convert::{
    AppointmentIn, Converter, appointment_to_model, device, patient, patient_to_model,
    service_request_to_order,
};
pub use resources::*;
pub use validate::{
    validate, validate_appointment, validate_imaging_study, validate_patient,
    validate_service_request,
};
