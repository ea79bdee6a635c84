//! Direct secure messaging for medrelay, without I/O, over the MedAllies-style
//! "Messaging API": the `send_ccda` JSON and its validation ([`api`]), the
//! delivery statuses and the asynchronous MDN notifications ([`status`]), the
//! JSON posted to a receiving edge ([`inbound`]) and IHE XDM (ITI-32) zip
//! packages ([`xdm`]).

pub mod api;
pub mod inbound;
pub mod status;
pub mod xdm;

pub use api::{
    Attachment, FieldError, MAX_MESSAGE_ID_CHARS, MAX_RECIPIENTS, Notification, SendRequest,
    SendResponse, StatusResponse, decode_attachments, domain_of, is_direct_address, parse_send,
    recipients,
};
pub use inbound::inbound_payload;
pub use status::{Status, notification, send_time};
pub use xdm::{XdmError, package, xdm_file_name};
