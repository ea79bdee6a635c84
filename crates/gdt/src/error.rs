//! The one error type of the crate.

use crate::charset::Charset;
use crate::field::FieldId;

/// Why bytes could not be read as a GDT record, a record could not be written, or a
/// typed value could not be read from a field.
///
/// Messages are written for the person who has to fix the sending system: they name
/// the 1-based line number (lines counted from the start of the input, blank lines
/// included) and what was expected there. Match on the variant to react in code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing but whitespace (or nothing at all).
    #[error("empty input: no GDT record")]
    Empty,

    /// The input is larger than [`ParseOptions::max_size`](crate::ParseOptions::max_size).
    #[error("input is {size} bytes, more than the configured maximum of {max} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The configured limit.
        max: usize,
    },

    /// The input ends inside a line: the last line has no CR LF (it was cut off, or the
    /// file was still being written when it was read).
    #[error("line {line}: the input ends without CR LF; the record is truncated")]
    Truncated {
        /// The unfinished line.
        line: usize,
    },

    /// After the last complete line there are only bytes a GDT record never has there
    /// (whitespace, extra line ends, NUL, the DOS end-of-file mark 0x1A).
    #[error(
        "line {line}: {len} bytes of whitespace, NUL or end-of-file mark (0x1A) after the last line; the sender appends them, lenient line endings ignore them"
    )]
    TrailingBytes {
        /// The line where they start.
        line: usize,
        /// How many bytes.
        len: usize,
    },

    /// A line (without its line end) is shorter than the 7 bytes of length and field id.
    #[error(
        "line {line}: only {len} bytes before the line end, a GDT line needs at least 7 (3-digit length + 4-digit field id)"
    )]
    LineTooShort {
        /// The line.
        line: usize,
        /// Bytes before the line end.
        len: usize,
    },

    /// The first three bytes of a line are not a decimal length.
    #[error("line {line}: the line does not start with a 3-digit length (found {found:?})")]
    BadLength {
        /// The line.
        line: usize,
        /// The first three bytes, lossily decoded.
        found: String,
    },

    /// The stated line length differs from the real one (in encoded bytes, CR LF
    /// included).
    #[error(
        "line {line}: stated length {stated:03} but the line is {actual} bytes (length digits, field id, content and CR LF counted in encoded bytes)"
    )]
    LineLength {
        /// The line.
        line: usize,
        /// The length written in the line.
        stated: usize,
        /// The bytes the line really has.
        actual: usize,
    },

    /// A line ends with a bare LF although CR LF is required (see
    /// [`ParseOptions::lenient_line_endings`](crate::ParseOptions::lenient_line_endings)).
    #[error("line {line}: the line ends with LF alone, GDT requires CR LF")]
    BadLineEnding {
        /// The line.
        line: usize,
    },

    /// A CR in the middle of a line: it would make the content ambiguous.
    #[error("line {line}: carriage return (CR) inside the field content")]
    StrayCr {
        /// The line.
        line: usize,
    },

    /// Bytes 4–7 of a line are not a 4-digit field id.
    #[error("line {line}: invalid field id {found:?}, expected 4 digits")]
    BadFieldId {
        /// The line.
        line: usize,
        /// The four bytes, lossily decoded.
        found: String,
    },

    /// The record does not start with field 8000 (record type).
    #[error("line {line}: a record must start with field 8000 (record type), found field {found}")]
    MissingRecordType {
        /// The line where 8000 was expected.
        line: usize,
        /// The field found instead.
        found: FieldId,
    },

    /// The record is empty, or a record to write has no fields.
    #[error("the record has no fields")]
    NoFields,

    /// Field 8000 is not a 4-digit record type.
    #[error("line {line}: record type (8000) {value:?} is not 4 digits")]
    InvalidRecordType {
        /// The line (1 when writing).
        line: usize,
        /// The content.
        value: String,
    },

    /// [`parse`](crate::parse) found a second record (another 8000 line).
    #[error(
        "line {line}: a second record starts here (field 8000); use gdt::parse_all for files with several records"
    )]
    MultipleRecords {
        /// The line of the second 8000.
        line: usize,
    },

    /// Field 8100 is not a decimal number.
    #[error("line {line}: record length (8100) {value:?} is not a number")]
    InvalidRecordLength {
        /// The line.
        line: usize,
        /// The content.
        value: String,
    },

    /// Field 8100 states another length than the record has.
    #[error(
        "record length (8100) says {stated} bytes but the record is {actual} bytes (all lines, CR LF included)"
    )]
    RecordLength {
        /// The length written in 8100.
        stated: u64,
        /// The real byte length of the record.
        actual: u64,
    },

    /// The record is too long for the number of digits of its 8100 field (5 digits
    /// in GDT 2.1, so at most 99 999 bytes).
    #[error(
        "the record is {length} bytes, which does not fit the {digits}-digit record length field (8100)"
    )]
    RecordTooLong {
        /// The record's byte length.
        length: u64,
        /// Digits available in 8100.
        digits: usize,
    },

    /// Field 9206 holds a value that is not a known character set code.
    #[error(
        "unknown character set (9206) {value:?}: expected 1 (7-bit), 2 (IBM CP437) or 3 (ANSI/ISO 8859)"
    )]
    UnknownCharset {
        /// The content of 9206.
        value: String,
    },

    /// A record declared as 7-bit (9206 = 1) contains a byte above 0x7F.
    #[error("line {line}: byte 0x{byte:02X} in a record declared as 7-bit (9206 = 1)")]
    NotSevenBit {
        /// The line.
        line: usize,
        /// The offending byte.
        byte: u8,
    },

    /// A value to write contains a character the target character set cannot
    /// represent (see [`WriteOptions::unencodable`](crate::WriteOptions::unencodable)).
    #[error("field {field}: character {ch:?} (U+{code:04X}) cannot be written in {charset}", code = u32::from(*ch))]
    Unencodable {
        /// The field.
        field: FieldId,
        /// The character.
        ch: char,
        /// The target character set.
        charset: Charset,
    },

    /// A value to write contains CR or LF, which would end the line early. Split the
    /// text into several fields instead (see [`split_text`](crate::split_text)).
    #[error(
        "field {field}: the value contains a line break (CR or LF); split it into several fields"
    )]
    LineBreakInValue {
        /// The field.
        field: FieldId,
    },

    /// A value to write is too long for one line (at most 999 bytes including the
    /// 3-digit length, the field id and CR LF, so 990 content bytes).
    #[error(
        "field {field}: the line would be {length} bytes, more than 999; split the text into several fields"
    )]
    LineTooLong {
        /// The field.
        field: FieldId,
        /// The line length it would have.
        length: usize,
    },

    /// A field holds no valid date (`DDMMYYYY`).
    #[error("field {field}: {value:?} is not a valid date (DDMMYYYY)")]
    InvalidDate {
        /// The field.
        field: FieldId,
        /// The content.
        value: String,
    },

    /// A field holds no valid time (`HHMMSS` or `HHMM`).
    #[error("field {field}: {value:?} is not a valid time (HHMMSS)")]
    InvalidTime {
        /// The field.
        field: FieldId,
        /// The content.
        value: String,
    },

    /// Field 3110 holds no known sex code.
    #[error("field 3110: {value:?} is not a sex code (1/2 in GDT 2.1, M/W/D/X in GDT 3.x)")]
    InvalidSex {
        /// The content.
        value: String,
    },

    /// A field holds no valid decimal number.
    #[error("field {field}: {value:?} is not a number")]
    InvalidNumber {
        /// The field.
        field: FieldId,
        /// The content.
        value: String,
    },

    /// A typed view was asked of a record of another type.
    #[error("expected a record of type {expected}, found {found}")]
    WrongRecordType {
        /// The type the view needs.
        expected: u16,
        /// The type of the record (or 0 when it has none).
        found: u16,
    },
}
