//! GDT (Gerätedatentransfer, the German device data transfer standard of the QMS,
//! versions 2.1 and 3.0): parser, writer, character sets and typed views. No I/O, no
//! clock, no global state — bytes in, bytes out.
//!
//! A GDT record (Satz) is a sequence of lines `LLLFFFFcontent` CR LF: a 3-digit
//! length of the whole line in encoded bytes (CR LF included), a 4-digit field id
//! (Feldkennung) and the content. The first line is 8000, the record type (6302 =
//! request an examination, 6310 = examination result, …); 8100 holds the byte length
//! of the whole record; 9206 names the character set (1 = 7-bit, 2 = IBM CP437, the
//! default, 3 = ANSI).
//!
//! # Reading
//!
//! [`parse`] checks every line's length, field id and CR LF, that 8000 comes first and
//! that 8100 matches, and decodes each content with the charset of 9206. Errors name
//! the line ([`Error`]).
//!
//! ```
//! let bytes = include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt");
//! let record = gdt::parse(bytes)?;
//! assert_eq!(record.record_type(), Some(gdt::RecordType::ExaminationRequest));
//! let patient = record.patient();
//! assert_eq!(patient.surname(), Some("Müller"));          // CP437 0x81 decoded
//! assert_eq!(patient.residence(), Some("50667 Köln"));
//! assert_eq!(patient.sex()?, Some(gdt::Sex::Male));
//! assert_eq!(record.to_bytes()?, bytes);                 // byte-exact round trip
//! # Ok::<(), gdt::Error>(())
//! ```
//!
//! # Writing
//!
//! [`write()`] encodes each field in the record's charset and computes every line
//! length and 8100 from the encoded bytes. [`ResultRecordBuilder`] builds a 6310 result,
//! [`split_text`] splits long texts into lines.
//!
//! ```
//! use gdt::{ResultRecordBuilder, TestEntry, WriteOptions};
//! let request = gdt::parse(include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt"))?;
//! let result = ResultRecordBuilder::answering(&request)
//!     .findings("Sinusrhythmus 72/min, Indifferenztyp, unauffällige Erregungsrückbildung.")
//!     .test(TestEntry::new("HF").name("Herzfrequenz").value("72").unit("/min"))
//!     .build()?;
//! let bytes = gdt::write(&result, &WriteOptions::default())?;
//! let back = gdt::parse(&bytes)?;
//! assert_eq!(back.as_result().unwrap().findings().count(), 2);
//! assert_eq!(back.receiver_id(), request.sender_id());
//! # Ok::<(), gdt::Error>(())
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

mod builder;
mod charset;
mod error;
mod field;
mod parse;
mod record;
mod types;
mod view;
mod write;

pub use builder::{DEFAULT_TEXT_WIDTH, FileEntry, ResultRecordBuilder, TestEntry, split_text};
pub use charset::Charset;
pub use error::Error;
pub use field::{Field, FieldId, field_name, ids};
pub use parse::{DEFAULT_MAX_SIZE, ParseOptions, parse, parse_all, parse_all_with, parse_with};
pub use record::Record;
pub use types::{Date, GdtVersion, RecordType, Sex, Time, parse_decimal};
pub use view::{
    FileReference, FileReferences, PatientView, RequestView, ResultView, TestResult, Tests,
};
pub use write::{MAX_CONTENT_BYTES, Unencodable, WriteOptions, write, write_into};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
