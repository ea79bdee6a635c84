//! Error types and the HL7 message error condition codes (table 0357).

use std::fmt;

/// HL7 table 0357 "Message error condition codes", used in ERR-3 (v2.5+) and in the
/// fourth component of ERR-1 (older versions).
///
/// ```
/// use hl7v2::ErrorCode;
/// assert_eq!(ErrorCode::RequiredFieldMissing.code(), 101);
/// assert_eq!(ErrorCode::from_code(207), ErrorCode::ApplicationInternalError);
/// assert_eq!(ErrorCode::SegmentSequenceError.text(), "Segment sequence error");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0 — message accepted.
    MessageAccepted,
    /// 100 — segments out of order or a required segment missing.
    SegmentSequenceError,
    /// 101 — a required field is missing.
    RequiredFieldMissing,
    /// 102 — a field holds data of the wrong data type.
    DataTypeError,
    /// 103 — a coded value is not in its table.
    TableValueNotFound,
    /// 104 — a value is too long (v2.7+).
    ValueTooLong,
    /// 200 — unsupported message type.
    UnsupportedMessageType,
    /// 201 — unsupported event code.
    UnsupportedEventCode,
    /// 202 — unsupported processing id.
    UnsupportedProcessingId,
    /// 203 — unsupported version id.
    UnsupportedVersionId,
    /// 204 — unknown key identifier.
    UnknownKeyIdentifier,
    /// 205 — duplicate key identifier.
    DuplicateKeyIdentifier,
    /// 206 — application record locked.
    ApplicationRecordLocked,
    /// 207 — application internal error (catch-all).
    ApplicationInternalError,
    /// Any other code (e.g. 198/199 from v2.9, or a local code) read from an ACK.
    Other(u16),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::MessageAccepted => 0,
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::ValueTooLong => 104,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::DuplicateKeyIdentifier => 205,
            ErrorCode::ApplicationRecordLocked => 206,
            ErrorCode::ApplicationInternalError => 207,
            ErrorCode::Other(c) => c,
        }
    }

    /// The code for a number; unknown numbers become [`ErrorCode::Other`].
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ErrorCode::MessageAccepted,
            100 => ErrorCode::SegmentSequenceError,
            101 => ErrorCode::RequiredFieldMissing,
            102 => ErrorCode::DataTypeError,
            103 => ErrorCode::TableValueNotFound,
            104 => ErrorCode::ValueTooLong,
            200 => ErrorCode::UnsupportedMessageType,
            201 => ErrorCode::UnsupportedEventCode,
            202 => ErrorCode::UnsupportedProcessingId,
            203 => ErrorCode::UnsupportedVersionId,
            204 => ErrorCode::UnknownKeyIdentifier,
            205 => ErrorCode::DuplicateKeyIdentifier,
            206 => ErrorCode::ApplicationRecordLocked,
            207 => ErrorCode::ApplicationInternalError,
            c => ErrorCode::Other(c),
        }
    }

    /// The description from table 0357.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::MessageAccepted => "Message accepted",
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::ValueTooLong => "Value too long",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::DuplicateKeyIdentifier => "Duplicate key identifier",
            ErrorCode::ApplicationRecordLocked => "Application record locked",
            ErrorCode::ApplicationInternalError => "Application internal error",
            ErrorCode::Other(_) => "Other error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.text())
    }
}

/// Why a byte sequence could not be parsed as an HL7 v2 message.
///
/// Each variant carries what a person needs to find the problem (byte offsets are 0-based
/// into the input, line and segment numbers 1-based). Convert it into an ERR entry for an
/// ACK with [`ErrorDetail::from`](crate::ack::ErrorDetail), or ask [`ParseError::code`]
/// for its table 0357 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("empty message")]
    Empty,
    /// The first segment is not MSH (batch headers FHS/BHS are not messages).
    #[error("message does not start with an MSH segment (starts with {found:?})")]
    NotMsh {
        /// The first bytes of the input, lossily decoded.
        found: String,
    },
    /// The input ends before the field separator (MSH-1).
    #[error("MSH segment too short ({len} bytes): no field separator")]
    MshTooShort {
        /// Length of the input.
        len: usize,
    },
    /// MSH-1 is not a usable separator (letter, digit, control character, non-ASCII).
    #[error("invalid field separator 0x{byte:02X} in MSH-1")]
    InvalidFieldSeparator {
        /// The offending byte.
        byte: u8,
    },
    /// MSH-2 has fewer than the 4 required encoding characters.
    #[error("MSH-2 encoding characters truncated: found {found}, need 4 (or 5 with truncation)")]
    EncodingCharactersTooShort {
        /// Number of characters found.
        found: usize,
    },
    /// MSH-2 runs on for more than 5 characters: the field separator after it is missing.
    #[error("field separator missing after MSH-2 (at byte offset {offset})")]
    FieldSeparatorMissing {
        /// Byte offset where the separator was expected.
        offset: usize,
    },
    /// An encoding character in MSH-2 is not usable as a delimiter.
    #[error("invalid encoding character 0x{byte:02X} at MSH-2 position {position}")]
    InvalidEncodingCharacter {
        /// The offending byte.
        byte: u8,
        /// 1-based position inside MSH-2.
        position: usize,
    },
    /// The same character is used for two delimiters.
    #[error("delimiter {:?} is used twice in MSH-1/MSH-2", char::from(*byte))]
    DuplicateDelimiter {
        /// The duplicated byte.
        byte: u8,
    },
    /// A line that is not a segment: the id must be 3 upper-case letters or digits
    /// followed by the field separator or the end of the segment.
    #[error(
        "line {line} (segment {segment_index}, byte offset {offset}) is not a segment: invalid segment id {found:?}"
    )]
    InvalidSegmentId {
        /// 1-based line number (blank lines count).
        line: usize,
        /// 1-based index the segment would have had.
        segment_index: usize,
        /// Byte offset of the line's start.
        offset: usize,
        /// The start of the line, lossily decoded (at most 16 characters).
        found: String,
    },
    /// A required MSH field is empty (only from [`Message::check_header`](crate::Message::check_header);
    /// [`Message::parse`](crate::Message::parse) itself is lenient).
    #[error("required field MSH-{field} ({name}) is missing")]
    MissingHeaderField {
        /// MSH field number.
        field: usize,
        /// The field's name.
        name: &'static str,
    },
}

impl ParseError {
    /// The table 0357 code that best describes the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Empty | ParseError::NotMsh { .. } | ParseError::InvalidSegmentId { .. } => {
                ErrorCode::SegmentSequenceError
            }
            ParseError::MissingHeaderField { .. } => ErrorCode::RequiredFieldMissing,
            ParseError::MshTooShort { .. }
            | ParseError::InvalidFieldSeparator { .. }
            | ParseError::EncodingCharactersTooShort { .. }
            | ParseError::FieldSeparatorMissing { .. }
            | ParseError::InvalidEncodingCharacter { .. }
            | ParseError::DuplicateDelimiter { .. } => ErrorCode::DataTypeError,
        }
    }

    /// Byte offset in the input where the problem was found, if it has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            ParseError::Empty | ParseError::NotMsh { .. } => Some(0),
            ParseError::MshTooShort { len } => Some(*len),
            ParseError::InvalidFieldSeparator { .. } => Some(3),
            ParseError::EncodingCharactersTooShort { found } => Some(4 + found),
            ParseError::FieldSeparatorMissing { offset } => Some(*offset),
            ParseError::InvalidEncodingCharacter { position, .. } => Some(3 + position),
            ParseError::DuplicateDelimiter { .. } => Some(3),
            ParseError::InvalidSegmentId { offset, .. } => Some(*offset),
            ParseError::MissingHeaderField { .. } => None,
        }
    }

    /// `(segment id, field)` of the problem where it is in MSH.
    pub(crate) fn msh_field(&self) -> Option<usize> {
        match self {
            ParseError::NotMsh { .. } | ParseError::Empty => None,
            ParseError::MshTooShort { .. } | ParseError::InvalidFieldSeparator { .. } => Some(1),
            ParseError::EncodingCharactersTooShort { .. }
            | ParseError::FieldSeparatorMissing { .. }
            | ParseError::InvalidEncodingCharacter { .. }
            | ParseError::DuplicateDelimiter { .. } => Some(2),
            ParseError::MissingHeaderField { field, .. } => Some(*field),
            ParseError::InvalidSegmentId { .. } => None,
        }
    }
}

/// A field path that could not be parsed (see [`Path`](crate::Path)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The segment id is not 3 upper-case letters or digits.
    #[error("invalid segment id in path {0:?}")]
    InvalidSegment(String),
    /// An index is 0, missing or not a number.
    #[error("invalid {what} in path {path:?}: indexes are 1-based numbers")]
    InvalidIndex {
        /// Which index ("field", "component", …).
        what: &'static str,
        /// The whole path.
        path: String,
    },
    /// Anything else that does not fit `SEG(n)-F[r].C.S`.
    #[error("invalid path {0:?}: expected SEG[(n)]-FIELD[[rep]][.COMP[.SUB]]")]
    Syntax(String),
}

/// An edit of an [`OwnedMessage`](crate::OwnedMessage) that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// The path string is invalid.
    #[error(transparent)]
    Path(#[from] PathError),
    /// MSH-1 and MSH-2 are the delimiters themselves.
    #[error("MSH-1 and MSH-2 hold the delimiters and cannot be set")]
    ReadOnlyDelimiters,
    /// A segment id that is not 3 upper-case letters or digits.
    #[error("invalid segment id {0:?}")]
    InvalidSegmentId(String),
    /// A raw value contains a separator of its own level or above (or a line break),
    /// which would shift the message structure.
    #[error("raw value for {path} contains {what}")]
    InvalidRawValue {
        /// The path being set.
        path: String,
        /// What was found.
        what: &'static str,
    },
    /// A repeating `[*]` path cannot be set.
    #[error("cannot set all repetitions at once ({0}); set the whole field or one repetition")]
    AllRepetitions(String),
    /// A MSH segment cannot be added, removed or moved: a message has exactly one, first.
    #[error("the MSH segment cannot be added, removed or moved")]
    MshFixed,
    /// Index out of range when inserting a segment.
    #[error("segment position {0} is out of range")]
    OutOfRange(usize),
    /// Invalid delimiters for a new message.
    #[error(transparent)]
    Delimiters(#[from] ParseError),
}
