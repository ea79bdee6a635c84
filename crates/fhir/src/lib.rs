//! FHIR R4 (4.0.1) for medrelay, without I/O: the resources and datatypes served
//! ([`resources`]), conversion from the canonical worklist model ([`convert`]) and
//! validation of incoming resources into OperationOutcome issues ([`validate`]).

pub mod convert;
pub mod resources;
pub mod validate;

pub use convert::{Converter, device, patient, service_request_to_order};
pub use resources::*;
pub use validate::{validate, validate_appointment, validate_patient, validate_service_request};
