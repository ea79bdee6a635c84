//! The store's types for the device worklist: what its methods take and return
//! beside the model types of `medrelay_worklist` (Patient, Appointment,
//! Measurement, Device, DeviceGroup …).

use medrelay_worklist::{AppointmentStatus, Measurement};

use crate::types::{DEFAULT_ORG, Delivery, Millis, NewDelivery};

/// What one [`WorklistAction`](medrelay_worklist::WorklistAction) of an
/// [`InboundRecord`](crate::InboundRecord) did, in the same order as the actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorklistEffect {
    /// The patient created or updated (for a cancel: the appointment's patient).
    pub patient_id: Option<String>,
    /// The appointment created, updated or cancelled.
    pub appointment_id: Option<String>,
    /// An update or cancel whose order key matched no (undeleted) appointment of
    /// the organisation. Nothing was changed for this action (not even its
    /// patient: both ids are `None`); the message and the other actions are
    /// still committed.
    pub not_found: bool,
}

/// A device group with what it holds, for the groups view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    /// Devices in the group.
    pub devices: u64,
    /// Scheduled, not deleted appointments in the group's worklist.
    pub open_appointments: u64,
}

/// An admin (or other role) API token. The token itself is never stored, only
/// its hash, computed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub org: String,
    pub role: String,
    pub name: String,
    pub created_at: Millis,
    /// Last recorded use (see [`Store::touch_api_token`](crate::Store::touch_api_token)).
    pub last_used_at: Option<Millis>,
}

/// A search over appointments. Soft-deleted appointments never match; every
/// filter left `None` matches everything; `org` is always applied. Results are
/// ordered by `scheduled_at` (appointments without one first), then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentQuery {
    pub org: String,
    pub group: Option<String>,
    pub status: Option<AppointmentStatus>,
    pub integration: Option<String>,
    pub patient_id: Option<String>,
    /// Inclusive lower bound on `scheduled_at` (ISO 8601 strings compare
    /// lexicographically, so use the same form as the stored values).
    pub scheduled_from: Option<String>,
    /// Exclusive upper bound on `scheduled_at`.
    pub scheduled_to: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl AppointmentQuery {
    /// Every appointment of `org`, 100 per page.
    pub fn new(org: impl Into<String>) -> Self {
        AppointmentQuery {
            org: org.into(),
            group: None,
            status: None,
            integration: None,
            patient_id: None,
            scheduled_from: None,
            scheduled_to: None,
            limit: 100,
            offset: 0,
        }
    }
}

impl Default for AppointmentQuery {
    fn default() -> Self {
        AppointmentQuery::new(DEFAULT_ORG)
    }
}

/// A message medrelay built and sends (e.g. the ORU^R01 of a measurement),
/// stored with direction `out` and status `accepted`, with its queue entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Must be the measurement's organisation.
    pub org: String,
    pub channel: String,
    /// MSH-10 of the built message.
    pub control_id: Option<String>,
    /// `"ORU^R01"`.
    pub message_type: Option<String>,
    pub raw: Vec<u8>,
    /// Stored as the message's `received_at` and the deliveries' `created_at`.
    pub created_at: Millis,
    pub deliveries: Vec<NewDelivery>,
}

/// The ids [`Store::record_measurement`](crate::Store::record_measurement) assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementIds {
    pub measurement_id: String,
    /// The outbound message, when one was given.
    pub message_id: Option<i64>,
    /// In the order of `OutboundMessage::deliveries`.
    pub delivery_ids: Vec<i64>,
}

/// A measurement as stored, with the delivery state of its outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMeasurement {
    /// `id`, `org`, `appointment_id` and `device_id` as stored; `report_pdf`
    /// is filled by [`Store::get_measurement`](crate::Store::get_measurement)
    /// only, lists leave it empty.
    pub measurement: Measurement,
    pub created_at: Millis,
    /// The outbound message; `None` when there was none or retention removed it.
    pub message_id: Option<i64>,
    /// The outbound message's deliveries in creation order. Their `payload` is
    /// left empty here (it carries the PDF again); read one with
    /// [`Store::get_delivery`](crate::Store::get_delivery) if needed.
    pub deliveries: Vec<Delivery>,
}
