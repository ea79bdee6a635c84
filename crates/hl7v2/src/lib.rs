//! Zero-copy HL7 v2.x: parser, writer, field paths, escaping, ACK builder and structural
//! validation. No I/O, no clock, no global state: bytes in, bytes out.
//!
//! # Reading
//!
//! [`Message::parse`] borrows the input and only records where segments are; fields,
//! repetitions, components and sub-components are found when asked for. Values are
//! slices of the input ([`Value`]), raw (escaped) by default and decoded on request.
//! HL7 is often not UTF-8 (ISO-8859-1 is common), so everything is bytes underneath;
//! text accessors replace invalid UTF-8, and [`Message::text`] honours MSH-18 `8859/1`.
//!
//! ```
//! use hl7v2::Message;
//!
//! let raw = b"MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIO|20250315120000||ORM^O01|MSG001|P|2.5\r\
//! PID|1||1234567890^^^HIS~X-77^^^EXT||GARCIA^PEDRO^M||19751022|M\r\
//! ORC|NW|ORD-2025-001\r\
//! OBR|1|ORD-2025-001||ECG^Electrocardiogram^L\r\
//! NTE|1||Fish \\T\\ Chips\r";
//! let msg = Message::parse(raw)?;
//!
//! let h = msg.header();
//! assert_eq!(h.message_type_string(), "ORM^O01");
//! assert_eq!(h.control_id().as_deref(), Some("MSG001"));
//!
//! assert_eq!(msg.get("PID-5.1").unwrap(), "GARCIA");           // raw value
//! assert_eq!(msg.get("PID-3[2].1").unwrap(), "X-77");          // 2nd repetition
//! assert_eq!(msg.get_decoded("NTE-3").unwrap(), "Fish & Chips"); // escapes decoded
//! let ids: Vec<String> = msg.get_all("PID-3.1").map(|v| v.to_string()).collect();
//! assert_eq!(ids, ["1234567890", "X-77"]);
//! assert_eq!(msg.segments_named("OBR").count(), 1);
//! assert_eq!(msg.to_bytes(), raw); // CR-terminated input round-trips byte for byte
//! # Ok::<(), hl7v2::ParseError>(())
//! ```
//!
//! # Paths
//!
//! [`Path`] is `SEG[(n)]-FIELD[[rep]][.COMP[.SUB]]`, 1-based as the standard writes it:
//! `PID-5.1`, `OBX(3)-5`, `PID-11[2].3`, `PID-3.4.1`, `PID-3[*]`. For MSH, MSH-1 is the
//! field separator and MSH-2 the encoding characters. Parse a path once with
//! [`str::parse`] and use [`Message::get_path`] in loops.
//!
//! # Empty, null, absent
//!
//! `None` from [`Message::get`] means the position does not exist. An existing value
//! is [`ValueKind::Empty`] (nothing between the separators: "no information"),
//! [`ValueKind::Null`] (`""`: "delete the stored value") or [`ValueKind::Present`].
//!
//! # Writing and editing
//!
//! [`OwnedMessage`] is the editable form ([`OwnedMessage::set`] escapes,
//! [`OwnedMessage::set_raw`] takes HL7 syntax, missing segments/fields/components are
//! created); [`MessageBuilder`] creates new messages with a complete MSH.
//!
//! ```
//! use hl7v2::{MessageBuilder, Message};
//! let bytes = MessageBuilder::new("ORU", "R01")
//!     .control_id("RPT001")
//!     .sending("MEDRELAY", "CLINIC")
//!     .receiving("HIS", "HOSPITAL_A")
//!     .timestamp("20250315145530")
//!     .segment("PID", |s| s.field(3, "1234567890^^^HIS").field(5, "GARCIA^PEDRO"))
//!     .segment("OBR", |s| s.field(1, "1").field(4, "ECG^Electrocardiogram^L"))
//!     .segment("OBX", |s| s.field(1, "1").field(2, "TX").field(3, "INT^Interpretation^L")
//!         .text(5, "Sinus rhythm, 72/min").field(11, "F"))
//!     .build_bytes()?;
//! assert!(Message::parse(&bytes).is_ok());
//! # Ok::<(), hl7v2::EditError>(())
//! ```
//!
//! # Acknowledgements and validation
//!
//! [`ack::AckBuilder`] answers a message (or unparseable bytes, salvaging what it can) in
//! the ERR layout of the message's version; [`ack::parse_ack`] reads an ACK.
//! [`validate::validate`] checks v2.5 abstract message structures and required fields;
//! its issues and [`ParseError`]s convert into [`ack::ErrorDetail`]s with table 0357
//! codes.
//!
//! ```
//! use hl7v2::{Message, ack::{AckBuilder, AckCode, parse_ack}, validate::validate};
//! let raw = b"MSH|^~\\&|HIS|H|ME|X|20250315||ORM^O01|MSG9|P|2.5\rPID|1\r";
//! let ack = match Message::parse(raw) {
//!     Ok(msg) => {
//!         let issues = validate(&msg);
//!         AckBuilder::for_message(&msg).issues(issues.iter().filter(|i| i.is_error()))
//!     }
//!     Err(e) => AckBuilder::for_raw(raw).code(AckCode::AR).parse_error(&e),
//! }
//! .timestamp("20250315120001")
//! .control_id("ACK-1")
//! .build();
//! let ack = Message::parse(&ack).unwrap();
//! let view = parse_ack(&ack).unwrap();
//! assert_eq!(view.code, AckCode::AE); // PID-3, PID-5 and the ORC segment are missing
//! assert_eq!(view.acknowledged_control_id, "MSG9");
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![warn(missing_docs)]

pub mod ack;
pub mod builder;
pub mod delims;
pub mod error;
pub mod escape;
pub mod message;
pub mod owned;
pub mod path;
mod scan;
pub mod validate;

pub use builder::MessageBuilder;
pub use delims::Delimiters;
pub use error::{EditError, ErrorCode, ParseError, PathError};
pub use message::{Header, Message, Segment, Value, ValueKind, Version};
pub use owned::OwnedMessage;
pub use path::Path;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
