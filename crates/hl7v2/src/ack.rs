//! Building acknowledgements (ACK) and reading them.
//!
//! [`AckBuilder`] answers a message: it swaps sender and receiver, keeps the original's
//! delimiters, version (MSH-12) and processing id (MSH-11), and writes MSA plus, for
//! errors, ERR segments in the layout of the message's version:
//!
//! * v2.5 and later: one `ERR` per error with ERR-2 location
//!   (`segment^sequence^field^repetition^component^sub-component`), ERR-3
//!   `code^text^HL70357`, ERR-4 severity, ERR-7 diagnostics and ERR-8 user message.
//! * before v2.5: one `ERR` whose repeating ERR-1 holds
//!   `segment^sequence^field^code&text&HL70357` per error, and the first error's text in
//!   MSA-3 (the field old receivers show).
//!
//! MSA-3 (text message) is written for versions before 2.7, where it was withdrawn; for
//! 2.7+ a text without any error becomes an ERR with code 207.
//!
//! [`parse_ack`] reads an ACK back: code, acknowledged control id, text and errors.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::Delimiters;
use crate::delims::is_valid_delimiter;
use crate::error::{ErrorCode, ParseError};
use crate::escape::escape_into;
use crate::message::{Message, Value, Version};
use crate::path::Path;
use crate::scan::SplitBytes;
use crate::validate::Issue;

/// Acknowledgment code (table 0008), MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Original mode: application accept.
    AA,
    /// Original mode: application error.
    AE,
    /// Original mode: application reject.
    AR,
    /// Enhanced mode: commit accept.
    CA,
    /// Enhanced mode: commit error.
    CE,
    /// Enhanced mode: commit reject.
    CR,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }
    /// AA or CA: the receiver took the message.
    pub fn is_accept(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
    /// AE or CE: the message had errors (a resend will likely fail the same way).
    pub fn is_error(self) -> bool {
        matches!(self, AckCode::AE | AckCode::CE)
    }
    /// AR or CR: rejected (often transient or unsupported).
    pub fn is_reject(self) -> bool {
        matches!(self, AckCode::AR | AckCode::CR)
    }
    /// CA, CE or CR (enhanced acknowledgment mode).
    pub fn is_enhanced(self) -> bool {
        matches!(self, AckCode::CA | AckCode::CE | AckCode::CR)
    }
}

impl fmt::Display for AckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AckCode {
    type Err = AckParseError;
    fn from_str(s: &str) -> Result<Self, AckParseError> {
        Ok(match s.trim() {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            other => return Err(AckParseError::UnknownCode(other.to_string())),
        })
    }
}

/// Error severity (table 0516), ERR-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// E — the message (or part of it) was not processed.
    Error,
    /// W — processed, but something should be looked at.
    Warning,
    /// I — information only.
    Information,
    /// F — fatal, processing stopped.
    Fatal,
}

impl Severity {
    /// The code as written in ERR-4.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
            Severity::Fatal => "F",
        }
    }
    /// Reads `E`, `W`, `I` or `F`.
    pub fn from_code(s: &str) -> Option<Severity> {
        match s.trim() {
            "E" => Some(Severity::Error),
            "W" => Some(Severity::Warning),
            "I" => Some(Severity::Information),
            "F" => Some(Severity::Fatal),
            _ => None,
        }
    }
}

/// Where an error is (ERR-2, data type ERL): all indexes 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorLocation {
    /// Segment id.
    pub segment: String,
    /// Occurrence of that segment in the message (1 for the first).
    pub sequence: usize,
    /// Field position.
    pub field: Option<usize>,
    /// Field repetition.
    pub repetition: Option<usize>,
    /// Component number.
    pub component: Option<usize>,
    /// Sub-component number.
    pub subcomponent: Option<usize>,
}

impl ErrorLocation {
    /// The `sequence`th segment with this id.
    pub fn segment(id: &str, sequence: usize) -> Self {
        ErrorLocation {
            segment: id.to_string(),
            sequence: sequence.max(1),
            field: None,
            repetition: None,
            component: None,
            subcomponent: None,
        }
    }
    /// With a field position (repetition 1).
    pub fn with_field(mut self, field: usize) -> Self {
        self.field = Some(field);
        self.repetition = Some(1);
        self
    }
    /// With a repetition.
    pub fn with_repetition(mut self, repetition: usize) -> Self {
        self.repetition = Some(repetition);
        self
    }
    /// With a component.
    pub fn with_component(mut self, component: usize) -> Self {
        self.component = Some(component);
        self
    }
    /// With a sub-component.
    pub fn with_subcomponent(mut self, subcomponent: usize) -> Self {
        self.subcomponent = Some(subcomponent);
        self
    }
}

impl From<&Path> for ErrorLocation {
    fn from(p: &Path) -> Self {
        ErrorLocation {
            segment: p.segment().to_string(),
            sequence: p.segment_index(),
            field: Some(p.field()),
            repetition: Some(match p.repetition() {
                Some(crate::path::Repetition::Nth(n)) => n,
                _ => 1,
            }),
            component: p.component(),
            subcomponent: p.subcomponent(),
        }
    }
}

/// One error to report in an ACK.
///
/// ```
/// use hl7v2::ErrorCode;
/// use hl7v2::ack::{ErrorDetail, ErrorLocation, Severity};
/// let e = ErrorDetail::new(ErrorCode::RequiredFieldMissing, "patient id missing")
///     .at(ErrorLocation::segment("PID", 1).with_field(3))
///     .with_severity(Severity::Error);
/// assert_eq!(e.code.code(), 101);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Table 0357 code (ERR-3).
    pub code: ErrorCode,
    /// ERR-4.
    pub severity: Severity,
    /// ERR-2.
    pub location: Option<ErrorLocation>,
    /// Readable text for people (ERR-8 user message; MSA-3 for old versions).
    pub message: Option<String>,
    /// Technical details (ERR-7 diagnostic information).
    pub diagnostic: Option<String>,
}

impl ErrorDetail {
    /// An error (severity E) with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorDetail {
            code,
            severity: Severity::Error,
            location: None,
            message: Some(message.into()),
            diagnostic: None,
        }
    }
    /// With a location.
    pub fn at(mut self, location: ErrorLocation) -> Self {
        self.location = Some(location);
        self
    }
    /// With a severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    /// With diagnostic information (ERR-7, v2.5+ only).
    pub fn with_diagnostic(mut self, diagnostic: impl Into<String>) -> Self {
        self.diagnostic = Some(diagnostic.into());
        self
    }
}

impl From<&ParseError> for ErrorDetail {
    fn from(e: &ParseError) -> Self {
        let mut d = ErrorDetail::new(e.code(), e.to_string());
        if let Some(f) = e.msh_field() {
            d.location = Some(ErrorLocation::segment("MSH", 1).with_field(f));
        }
        d
    }
}

impl From<ParseError> for ErrorDetail {
    fn from(e: ParseError) -> Self {
        ErrorDetail::from(&e)
    }
}

/// Longest value salvaged from a broken message (ST fields are at most 199 in v2.5+).
const SALVAGE_MAX: usize = 199;

/// Builds an ACK for a message (or for bytes that could not be parsed).
///
/// The caller supplies MSH-7 and MSH-10 (no clock here). Without
/// [`control_id`](AckBuilder::control_id), MSH-10 is `ACK` followed by the original
/// control id. The code defaults to AA, or AE when an error of severity E/F was added.
///
/// ```
/// use hl7v2::{Message, ErrorCode, ack::{AckBuilder, AckCode, ErrorDetail, ErrorLocation}};
/// let msg = Message::parse(b"MSH|^~\\&|HIS|HOSP|PACS|RAD|20250315120000||ORM^O01|MSG001|P|2.5\r").unwrap();
/// let ack = AckBuilder::for_message(&msg)
///     .code(AckCode::AE)
///     .timestamp("20250315120001")
///     .control_id("ACK0001")
///     .error(ErrorDetail::new(ErrorCode::RequiredFieldMissing, "PID segment missing")
///         .at(ErrorLocation::segment("PID", 1)))
///     .build();
/// assert_eq!(
///     ack,
///     b"MSH|^~\\&|PACS|RAD|HIS|HOSP|20250315120001||ACK^O01^ACK|ACK0001|P|2.5\r\
///       MSA|AE|MSG001\r\
///       ERR||PID^1|101^Required field missing^HL70357|E||||PID segment missing\r"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct AckBuilder {
    delims: Delimiters,
    /// Raw (already escaped in `delims`) values taken from the original.
    orig_sending_app: Vec<u8>,
    orig_sending_fac: Vec<u8>,
    orig_receiving_app: Vec<u8>,
    orig_receiving_fac: Vec<u8>,
    orig_control_id: Vec<u8>,
    orig_processing_id: Vec<u8>,
    orig_version: Vec<u8>,
    orig_trigger: Vec<u8>,
    orig_charset: Vec<u8>,
    sending: Option<(String, String)>,
    code: Option<AckCode>,
    text: Option<String>,
    errors: Vec<ErrorDetail>,
    timestamp: String,
    control_id: Option<String>,
}

/// Longest value echoed from the original. HL7 limits these fields to a few hundred
/// bytes at most; a hostile message must not make its ACK megabytes long.
const ECHO_MAX: usize = 256;

fn raw_of(v: Option<Value<'_>>) -> Vec<u8> {
    let Some(v) = v else {
        return Vec::new();
    };
    let raw = v.as_bytes();
    if raw.len() <= ECHO_MAX {
        return raw.to_vec();
    }
    let mut cut = raw.get(..ECHO_MAX).unwrap_or(raw);
    // Do not end inside an escape sequence or a UTF-8 character.
    let esc = v.escape_char();
    if cut.iter().filter(|&&b| b == esc).count() % 2 == 1
        && let Some(i) = cut.iter().rposition(|&b| b == esc)
    {
        cut = cut.get(..i).unwrap_or(&[]);
    }
    while let Some((&last, rest)) = cut.split_last() {
        if last < 0x80 {
            break;
        }
        cut = rest;
    }
    cut.to_vec()
}

/// Keeps salvaged bytes printable and short, so that garbage cannot break the ACK.
fn sanitize(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .filter(|&b| b >= 0x20 && b != 0x7F)
        .take(SALVAGE_MAX)
        .collect()
}

impl AckBuilder {
    fn empty(delims: Delimiters) -> Self {
        AckBuilder {
            delims,
            orig_sending_app: Vec::new(),
            orig_sending_fac: Vec::new(),
            orig_receiving_app: Vec::new(),
            orig_receiving_fac: Vec::new(),
            orig_control_id: Vec::new(),
            orig_processing_id: Vec::new(),
            orig_version: Vec::new(),
            orig_trigger: Vec::new(),
            orig_charset: Vec::new(),
            sending: None,
            code: None,
            text: None,
            errors: Vec::new(),
            timestamp: String::new(),
            control_id: None,
        }
    }

    /// An ACK answering a parsed message.
    pub fn for_message(msg: &Message<'_>) -> Self {
        let msh = msg.msh();
        let mut b = AckBuilder::empty(*msg.delimiters());
        b.orig_sending_app = raw_of(msh.field(3));
        b.orig_sending_fac = raw_of(msh.field(4));
        b.orig_receiving_app = raw_of(msh.field(5));
        b.orig_receiving_fac = raw_of(msh.field(6));
        b.orig_trigger = raw_of(msh.field(9).and_then(|f| f.component(2)));
        b.orig_control_id = raw_of(msh.field(10));
        b.orig_processing_id = raw_of(msh.field(11));
        b.orig_version = raw_of(msh.field(12));
        b.orig_charset = raw_of(msh.field(18));
        b
    }

    /// An ACK for bytes that may not parse: uses [`for_message`](AckBuilder::for_message)
    /// if they do; otherwise salvages the delimiters, MSH-3..6, MSH-9.2, MSH-10, MSH-11
    /// and MSH-12 from the first `MSH` line found in the first 4 KiB; if even the
    /// delimiters are unusable, `|^~\&` is used and the salvaged values are escaped; with
    /// no MSH at all, everything is defaulted (version 2.5, processing id P).
    ///
    /// The parse error is not added automatically: add it with
    /// [`parse_error`](AckBuilder::parse_error).
    ///
    /// ```
    /// use hl7v2::{Message, ack::{AckBuilder, AckCode}};
    /// let raw = b"MSH|^~\\&|HIS|HOSP|PACS|RAD|20250315||ORM^O01|M17|P|2.3\rPID|1\r!!junk\r";
    /// let err = Message::parse(raw).unwrap_err();
    /// let ack = AckBuilder::for_raw(raw).code(AckCode::AR).parse_error(&err).timestamp("20250315").control_id("A1").build();
    /// let ack = Message::parse(&ack).unwrap();
    /// assert_eq!(ack.get("MSA-2").unwrap(), "M17");
    /// assert_eq!(ack.get("MSH-12").unwrap(), "2.3");
    /// assert_eq!(ack.get("ERR-1.4.1").unwrap(), "100");
    /// ```
    pub fn for_raw(input: &[u8]) -> Self {
        match Message::parse(input) {
            Ok(m) => AckBuilder::for_message(&m),
            Err(_) => AckBuilder::salvage(input),
        }
    }

    fn salvage(input: &[u8]) -> Self {
        let window = input.get(..input.len().min(4096)).unwrap_or(input);
        let Some(start) = window.windows(3).position(|w| w == b"MSH") else {
            return AckBuilder::empty(Delimiters::default());
        };
        let from = input.get(start..).unwrap_or(&[]);
        let line_end = from
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(from.len());
        let line = from.get(..line_end).unwrap_or(&[]);
        let (delims, trusted) = match Delimiters::from_msh(line) {
            Ok((d, _)) => (d, true),
            Err(_) => (Delimiters::default(), false),
        };
        let mut b = AckBuilder::empty(delims);
        let fs = if trusted {
            delims.field()
        } else {
            match line.get(3) {
                Some(&fs) if is_valid_delimiter(fs) => fs,
                _ => return b,
            }
        };
        let fields: Vec<&[u8]> = SplitBytes::new(line, fs).take(13).collect();
        // Values read with untrusted delimiters are plain text to us: escape them.
        let take = |i: usize| -> Vec<u8> {
            let v = sanitize(fields.get(i).copied().unwrap_or(&[]));
            if trusted {
                v
            } else {
                let mut out = Vec::new();
                escape_into(&v, &delims, &mut out);
                out
            }
        };
        b.orig_sending_app = take(2);
        b.orig_sending_fac = take(3);
        b.orig_receiving_app = take(4);
        b.orig_receiving_fac = take(5);
        b.orig_control_id = take(9);
        b.orig_processing_id = take(10);
        b.orig_version = take(11);
        let comp = if trusted { delims.component() } else { b'^' };
        let msh9 = fields.get(8).copied().unwrap_or(&[]);
        let trigger = SplitBytes::new(msh9, comp).nth(1).unwrap_or(&[]);
        b.orig_trigger = sanitize(trigger);
        if !trusted {
            b.orig_trigger.retain(|&x| x.is_ascii_alphanumeric());
        }
        b
    }

    /// MSH-10 of the original as the builder found it (unescaped, lossy UTF-8), if any.
    /// With [`for_raw`](AckBuilder::for_raw) this is what could be salvaged from a
    /// message that did not parse, which is worth recording beside it.
    pub fn original_control_id(&self) -> Option<String> {
        self.first_component(&self.orig_control_id)
    }

    /// MSH-3.1 of the original (unescaped, lossy UTF-8), if any. When the
    /// original's delimiters were unusable, the whole field.
    pub fn original_sending_application(&self) -> Option<String> {
        self.first_component(&self.orig_sending_app)
    }

    /// MSH-4.1 of the original (unescaped, lossy UTF-8), if any; as above.
    pub fn original_sending_facility(&self) -> Option<String> {
        self.first_component(&self.orig_sending_fac)
    }

    fn first_component(&self, raw: &[u8]) -> Option<String> {
        let first = raw
            .split(|&b| b == self.delims.component())
            .next()
            .unwrap_or(&[]);
        (!first.is_empty()).then(|| {
            String::from_utf8_lossy(&crate::escape::unescape(first, &self.delims)).into_owned()
        })
    }

    /// The delimiters the ACK will use.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    /// The version the ACK will carry (the original's MSH-12.1, default 2.5).
    pub fn version(&self) -> Version {
        let v = self.version_component();
        std::str::from_utf8(v)
            .ok()
            .and_then(Version::parse)
            .unwrap_or(Version::V2_5)
    }

    fn version_component(&self) -> &[u8] {
        SplitBytes::new(&self.orig_version, self.delims.component())
            .next()
            .unwrap_or(&[])
    }

    /// MSA-1 (default AA, or AE if an error of severity E/F was added).
    pub fn code(mut self, code: AckCode) -> Self {
        self.code = Some(code);
        self
    }
    /// Adds an error.
    pub fn error(mut self, error: ErrorDetail) -> Self {
        self.errors.push(error);
        self
    }
    /// Adds several errors.
    pub fn errors(mut self, errors: impl IntoIterator<Item = ErrorDetail>) -> Self {
        self.errors.extend(errors);
        self
    }
    /// Adds a parse error.
    pub fn parse_error(self, e: &ParseError) -> Self {
        self.error(ErrorDetail::from(e))
    }
    /// Adds validation issues.
    pub fn issues<'i>(self, issues: impl IntoIterator<Item = &'i Issue>) -> Self {
        self.errors(issues.into_iter().map(ErrorDetail::from))
    }
    /// MSA-3 text message.
    pub fn text(mut self, text: &str) -> Self {
        self.text = Some(text.to_string());
        self
    }
    /// MSH-7 of the ACK.
    pub fn timestamp(mut self, ts: &str) -> Self {
        self.timestamp = ts.to_string();
        self
    }
    /// MSH-10 of the ACK.
    pub fn control_id(mut self, id: &str) -> Self {
        self.control_id = Some(id.to_string());
        self
    }
    /// MSH-3/MSH-4 of the ACK, instead of the original's MSH-5/MSH-6.
    pub fn sending(mut self, application: &str, facility: &str) -> Self {
        self.sending = Some((application.to_string(), facility.to_string()));
        self
    }

    fn push_text(&self, out: &mut Vec<u8>, text: &str) {
        escape_into(text.as_bytes(), &self.delims, out);
    }

    /// Writes the ACK (CR after every segment).
    pub fn build(&self) -> Vec<u8> {
        let d = self.delims;
        let fs = d.field();
        let cs = d.component();
        let version = self.version();
        let mut out = Vec::with_capacity(256);

        out.extend_from_slice(b"MSH");
        out.push(fs);
        out.extend_from_slice(d.encoding_characters());
        out.push(fs);
        match &self.sending {
            Some((app, fac)) => {
                self.push_text(&mut out, app);
                out.push(fs);
                self.push_text(&mut out, fac);
            }
            None => {
                out.extend_from_slice(&self.orig_receiving_app);
                out.push(fs);
                out.extend_from_slice(&self.orig_receiving_fac);
            }
        }
        out.push(fs);
        out.extend_from_slice(&self.orig_sending_app);
        out.push(fs);
        out.extend_from_slice(&self.orig_sending_fac);
        out.push(fs);
        self.push_text(&mut out, &self.timestamp);
        out.push(fs);
        out.push(fs);
        out.extend_from_slice(b"ACK");
        if version >= Version::new(2, 3, 1) {
            out.push(cs);
            out.extend_from_slice(&self.orig_trigger);
            out.push(cs);
            out.extend_from_slice(b"ACK");
        } else if !self.orig_trigger.is_empty() {
            out.push(cs);
            out.extend_from_slice(&self.orig_trigger);
        }
        out.push(fs);
        match &self.control_id {
            Some(id) => self.push_text(&mut out, id),
            None => {
                out.extend_from_slice(b"ACK");
                out.extend_from_slice(&self.orig_control_id);
            }
        }
        out.push(fs);
        if self.orig_processing_id.is_empty() {
            out.push(b'P');
        } else {
            out.extend_from_slice(&self.orig_processing_id);
        }
        out.push(fs);
        if self.version_component().is_empty() {
            out.extend_from_slice(b"2.5");
        } else {
            out.extend_from_slice(&self.orig_version);
        }
        if !self.orig_charset.is_empty() {
            for _ in 13..=18 {
                out.push(fs);
            }
            out.extend_from_slice(&self.orig_charset);
        }
        out.push(b'\r');

        let code = self.code.unwrap_or_else(|| {
            if self
                .errors
                .iter()
                .any(|e| matches!(e.severity, Severity::Error | Severity::Fatal))
            {
                AckCode::AE
            } else {
                AckCode::AA
            }
        });
        out.extend_from_slice(b"MSA");
        out.push(fs);
        out.extend_from_slice(code.as_str().as_bytes());
        out.push(fs);
        out.extend_from_slice(&self.orig_control_id);
        let msa3 = if version < Version::new(2, 7, 0) {
            self.text.clone().or_else(|| {
                if version < Version::V2_5 {
                    self.errors.iter().find_map(|e| e.message.clone())
                } else {
                    None
                }
            })
        } else {
            None
        };
        if let Some(t) = msa3 {
            out.push(fs);
            self.push_text(&mut out, &t);
        }
        out.push(b'\r');

        if version >= Version::V2_5 {
            for e in &self.errors {
                self.write_err(&mut out, e);
            }
            if self.errors.is_empty()
                && version >= Version::new(2, 7, 0)
                && !code.is_accept()
                && let Some(t) = &self.text
            {
                self.write_err(
                    &mut out,
                    &ErrorDetail::new(ErrorCode::ApplicationInternalError, t.clone()),
                );
            }
        } else if !self.errors.is_empty() {
            out.extend_from_slice(b"ERR");
            out.push(fs);
            for (i, e) in self.errors.iter().enumerate() {
                if i > 0 {
                    out.push(d.repetition());
                }
                self.write_legacy_location(&mut out, e);
            }
            out.push(b'\r');
        }
        out
    }

    fn write_location(&self, out: &mut Vec<u8>, loc: &ErrorLocation, full: bool) {
        let cs = self.delims.component();
        self.push_text(out, &loc.segment);
        out.push(cs);
        out.extend_from_slice(loc.sequence.to_string().as_bytes());
        let rest: &[Option<usize>] = if full {
            &[loc.field, loc.repetition, loc.component, loc.subcomponent]
        } else {
            &[loc.field]
        };
        let last = rest.iter().rposition(Option::is_some);
        if let Some(last) = last {
            for n in rest.iter().take(last + 1) {
                out.push(cs);
                if let Some(n) = n {
                    out.extend_from_slice(n.to_string().as_bytes());
                }
            }
        }
    }

    fn write_err(&self, out: &mut Vec<u8>, e: &ErrorDetail) {
        let d = self.delims;
        let fs = d.field();
        let cs = d.component();
        out.extend_from_slice(b"ERR");
        out.push(fs); // ERR-1 (backward compatibility only)
        out.push(fs);
        if let Some(loc) = &e.location {
            self.write_location(out, loc, true);
        }
        out.push(fs);
        out.extend_from_slice(e.code.code().to_string().as_bytes());
        out.push(cs);
        self.push_text(out, e.code.text());
        out.push(cs);
        out.extend_from_slice(b"HL70357");
        out.push(fs);
        out.extend_from_slice(e.severity.as_str().as_bytes());
        if e.diagnostic.is_some() || e.message.is_some() {
            out.extend_from_slice(&[fs, fs, fs]); // ERR-5, ERR-6
            if let Some(diag) = &e.diagnostic {
                self.push_text(out, diag);
            }
            if let Some(msg) = &e.message {
                out.push(fs);
                self.push_text(out, msg);
            }
        }
        out.push(b'\r');
    }

    fn write_legacy_location(&self, out: &mut Vec<u8>, e: &ErrorDetail) {
        let cs = self.delims.component();
        let ss = self.delims.subcomponent();
        match &e.location {
            Some(loc) => {
                self.push_text(out, &loc.segment);
                out.push(cs);
                out.extend_from_slice(loc.sequence.to_string().as_bytes());
                out.push(cs);
                if let Some(f) = loc.field {
                    out.extend_from_slice(f.to_string().as_bytes());
                }
            }
            None => out.extend_from_slice(&[cs, cs]),
        }
        out.push(cs);
        out.extend_from_slice(e.code.code().to_string().as_bytes());
        out.push(ss);
        self.push_text(out, e.code.text());
        out.push(ss);
        out.extend_from_slice(b"HL70357");
    }
}

/// Why a message could not be read as an ACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckParseError {
    /// There is no MSA segment.
    #[error("not an acknowledgment: no MSA segment")]
    MissingMsa,
    /// MSA-1 is not one of AA, AE, AR, CA, CE, CR.
    #[error("unknown acknowledgment code {0:?} in MSA-1")]
    UnknownCode(String),
}

/// An error reported in an ACK's ERR segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedError {
    /// The table 0357 code (ERR-3.1, or ERR-1.4.1 for old versions).
    pub code: Option<ErrorCode>,
    /// The code's text (ERR-3.2).
    pub code_text: Option<String>,
    /// ERR-4.
    pub severity: Option<Severity>,
    /// The location as written (ERR-2, or ERR-1.1–3), decoded.
    pub location: Option<String>,
    /// ERR-8 user message.
    pub message: Option<String>,
}

/// The parts of an ACK a sender needs to decide what happened to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckView<'a> {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-2: the control id of the message being acknowledged.
    pub acknowledged_control_id: Cow<'a, str>,
    /// MSA-3, or else the first error's user message or code text.
    pub text: Option<Cow<'a, str>>,
    /// The ACK's own MSH-10.
    pub control_id: Option<Cow<'a, str>>,
    /// The ERR segments.
    pub errors: Vec<ReportedError>,
}

impl AckView<'_> {
    /// AA or CA.
    pub fn is_accept(&self) -> bool {
        self.code.is_accept()
    }
}

fn owned_text(v: Option<Value<'_>>) -> Option<String> {
    v.filter(Value::is_present)
        .map(|v| v.decoded().into_owned())
}

fn code_of(v: Option<Value<'_>>) -> Option<ErrorCode> {
    v.and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok())
        .map(ErrorCode::from_code)
}

/// Reads an acknowledgment (any message with an MSA segment: ACK, ORR, …).
///
/// ```
/// use hl7v2::{Message, ack::{parse_ack, AckCode}};
/// let ack = Message::parse(b"MSH|^~\\&|PACS|RAD|HIS|HOSP|20250315||ACK^O01^ACK|A1|P|2.5\r\
///     MSA|AE|MSG001\rERR||PID^1^3|101^Required field missing^HL70357|E||||patient id missing\r").unwrap();
/// let view = parse_ack(&ack).unwrap();
/// assert_eq!(view.code, AckCode::AE);
/// assert_eq!(view.acknowledged_control_id, "MSG001");
/// assert_eq!(view.text.as_deref(), Some("patient id missing"));
/// assert_eq!(view.errors[0].code.map(|c| c.code()), Some(101));
/// ```
pub fn parse_ack<'a>(msg: &Message<'a>) -> Result<AckView<'a>, AckParseError> {
    let msa = msg.segment("MSA", 1).ok_or(AckParseError::MissingMsa)?;
    let code_raw = msa.field(1).map(|v| v.decoded()).unwrap_or_default();
    let code: AckCode = code_raw.parse()?;
    let mut errors = Vec::new();
    for err in msg.segments_named("ERR") {
        let err3 = err.field(3).filter(Value::is_present);
        if let Some(e3) = err3 {
            errors.push(ReportedError {
                code: code_of(e3.component(1)),
                code_text: owned_text(e3.component(2)),
                severity: err.field(4).and_then(|v| Severity::from_code(&v.decoded())),
                location: owned_text(err.field(2)),
                message: owned_text(err.field(8)),
            });
        } else if let Some(e1) = err.field(1) {
            for rep in e1.repetitions().filter(Value::is_present) {
                let c4 = rep.component(4);
                let loc = rep.as_bytes();
                let cs = msg.delimiters().component();
                // Location = the first three components as written.
                let cut = loc
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == cs)
                    .nth(2)
                    .map_or(loc.len(), |(i, _)| i);
                let location = String::from_utf8_lossy(loc.get(..cut).unwrap_or(loc));
                errors.push(ReportedError {
                    code: code_of(c4.and_then(|c| c.subcomponent(1))),
                    code_text: owned_text(c4.and_then(|c| c.subcomponent(2))),
                    severity: None,
                    location: (!location.trim_matches(char::from(cs)).is_empty())
                        .then(|| location.into_owned()),
                    message: None,
                });
            }
        }
    }
    let text = msa
        .field(3)
        .filter(Value::is_present)
        .map(|v| v.decoded())
        .or_else(|| {
            errors
                .iter()
                .find_map(|e| e.message.clone().or_else(|| e.code_text.clone()))
                .map(Cow::Owned)
        });
    Ok(AckView {
        code,
        acknowledged_control_id: msa.field(2).map(|v| v.decoded()).unwrap_or_default(),
        text,
        control_id: msg.header().control_id(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).replace('\r', "\n")
    }

    const ORIG25: &[u8] = b"MSH|^~\\&|HIS^1.2^ISO|HOSP|PACS|RAD|20250315120000||ORM^O01^ORM_O01|MSG\\F\\1|T|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1\r";
    const ORIG23: &[u8] =
        b"MSH|^~\\&|HIS|HOSP|PACS|RAD|20250315120000||ADT^A08|C9|P|2.3\rEVN|A08\r";

    #[test]
    fn salvaged_header_fields_are_readable() {
        let broken = b"MSH|^^\\&|HIS^X|HOSP|PACS|RAD|2025||ORM^O01|M77|P|2.5\r";
        let b = AckBuilder::for_raw(broken);
        assert_eq!(b.original_control_id().as_deref(), Some("M77"));
        // MSH-2 is unusable, so MSH-3 cannot be split into components.
        assert_eq!(b.original_sending_application().as_deref(), Some("HIS^X"));
        assert_eq!(b.original_sending_facility().as_deref(), Some("HOSP"));
        let parsed = AckBuilder::for_raw(b"MSH|^~\\&|HIS^X|HOSP|P|R|2025||ADT^A08|C\\F\\1|P|2.5\r");
        assert_eq!(
            parsed.original_sending_application().as_deref(),
            Some("HIS")
        );
        assert_eq!(parsed.original_control_id().as_deref(), Some("C|1"));
        let none = AckBuilder::for_raw(b"garbage");
        assert_eq!(none.original_control_id(), None);
    }

    #[test]
    fn ack_v25_multiple_errors_escaped() {
        let m = Message::parse(ORIG25).unwrap();
        let ack = AckBuilder::for_message(&m)
            .timestamp("20250315120001")
            .control_id("A|1")
            .error(
                ErrorDetail::new(
                    ErrorCode::RequiredFieldMissing,
                    "PID-3 missing: a|b^c~d\\e&f",
                )
                .at(ErrorLocation::segment("PID", 1)
                    .with_field(3)
                    .with_component(1))
                .with_diagnostic("line 2\nmore"),
            )
            .error(
                ErrorDetail::new(ErrorCode::TableValueNotFound, "odd")
                    .with_severity(Severity::Warning),
            )
            .build();
        assert_eq!(
            s(&ack),
            "MSH|^~\\&|PACS|RAD|HIS^1.2^ISO|HOSP|20250315120001||ACK^O01^ACK|A\\F\\1|T|2.5.1||||||UNICODE UTF-8\n\
             MSA|AE|MSG\\F\\1\n\
             ERR||PID^1^3^1^1|101^Required field missing^HL70357|E|||line 2\\.br\\more|PID-3 missing: a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\n\
             ERR|||103^Table value not found^HL70357|W||||odd\n"
        );
        let parsed = Message::parse(&ack).unwrap();
        assert!(
            crate::validate::validate(&parsed).is_empty(),
            "{:?}",
            crate::validate::validate(&parsed)
        );
        let view = parse_ack(&parsed).unwrap();
        assert_eq!(view.code, AckCode::AE);
        assert_eq!(view.acknowledged_control_id, "MSG|1");
        assert_eq!(view.control_id.as_deref(), Some("A|1"));
        assert_eq!(view.text.as_deref(), Some("PID-3 missing: a|b^c~d\\e&f"));
        assert_eq!(view.errors.len(), 2);
        assert_eq!(view.errors[1].severity, Some(Severity::Warning));
        assert_eq!(view.errors[0].location.as_deref(), Some("PID^1^3^1^1"));
    }

    #[test]
    fn ack_v23_legacy_err() {
        let m = Message::parse(ORIG23).unwrap();
        let ack = AckBuilder::for_message(&m)
            .timestamp("20250315")
            .error(
                ErrorDetail::new(ErrorCode::RequiredFieldMissing, "no PID")
                    .at(ErrorLocation::segment("PID", 1)),
            )
            .error(
                ErrorDetail::new(ErrorCode::DataTypeError, "bad date")
                    .at(ErrorLocation::segment("EVN", 1).with_field(2)),
            )
            .build();
        assert_eq!(
            s(&ack),
            "MSH|^~\\&|PACS|RAD|HIS|HOSP|20250315||ACK^A08|ACKC9|P|2.3\n\
             MSA|AE|C9|no PID\n\
             ERR|PID^1^^101&Required field missing&HL70357~EVN^1^2^102&Data type error&HL70357\n"
        );
        let view = parse_ack(&Message::parse(&ack).unwrap()).unwrap();
        assert_eq!(view.text.as_deref(), Some("no PID"));
        assert_eq!(view.errors.len(), 2);
        assert_eq!(view.errors[1].code, Some(ErrorCode::DataTypeError));
        assert_eq!(view.errors[1].location.as_deref(), Some("EVN^1^2"));
        assert_eq!(
            view.errors[0].code_text.as_deref(),
            Some("Required field missing")
        );
    }

    #[test]
    fn ack_aa_and_enhanced_and_text() {
        let m = Message::parse(ORIG23).unwrap();
        let ack = AckBuilder::for_message(&m)
            .control_id("X")
            .text("ok")
            .build();
        assert!(s(&ack).ends_with("MSA|AA|C9|ok\n"));
        let ack = AckBuilder::for_message(&m)
            .code(AckCode::CA)
            .sending("ME", "HERE")
            .build();
        assert!(
            s(&ack).starts_with("MSH|^~\\&|ME|HERE|HIS|HOSP|"),
            "{}",
            s(&ack)
        );
        assert!(s(&ack).ends_with("MSA|CA|C9\n"));
        let v27 = b"MSH|^~\\&|A|B|C|D|20250101||ORU^R01^ORU_R01|Z1|P|2.7\r";
        let ack = AckBuilder::for_message(&Message::parse(v27).unwrap())
            .code(AckCode::AR)
            .text("queue full")
            .build();
        assert!(
            s(&ack).ends_with(
                "MSA|AR|Z1\nERR|||207^Application internal error^HL70357|E||||queue full\n"
            ),
            "{}",
            s(&ack)
        );
        let view = parse_ack(&Message::parse(&ack).unwrap()).unwrap();
        assert!(view.code.is_reject());
        assert_eq!(view.text.as_deref(), Some("queue full"));
    }

    #[test]
    fn ack_custom_delimiters() {
        let raw = b"MSH#$%!@#APP#FAC#ME#HERE#20250101##ORM$O01#ID!F!1#P#2.5\r";
        let m = Message::parse(raw).unwrap();
        let ack = AckBuilder::for_message(&m)
            .error(ErrorDetail::new(
                ErrorCode::ApplicationInternalError,
                "a#b$c",
            ))
            .build();
        assert_eq!(
            s(&ack),
            "MSH#$%!@#ME#HERE#APP#FAC###ACK$O01$ACK#ACKID!F!1#P#2.5\n\
             MSA#AE#ID!F!1\n\
             ERR###207$Application internal error$HL70357#E####a!F!b!S!c\n"
        );
        let view = parse_ack(&Message::parse(&ack).unwrap()).unwrap();
        assert_eq!(view.acknowledged_control_id, "ID#1");
        assert_eq!(view.text.as_deref(), Some("a#b$c"));
    }

    #[test]
    fn ack_for_garbage() {
        for garbage in [
            &b""[..],
            b"\x00\x01\x02",
            b"hello world",
            b"MSH",
            b"MSH|",
            b"MSH|^~",
            b"\x0bMSH|^~\\&|A|B|C|D|2025||ORU^R01|Q7|P|2.4\rjunk\r\x1c\r",
        ] {
            let e = Message::parse(garbage).unwrap_err();
            let ack = AckBuilder::for_raw(garbage)
                .code(AckCode::AR)
                .parse_error(&e)
                .timestamp("20250101")
                .control_id("N1")
                .build();
            let parsed = Message::parse(&ack).unwrap_or_else(|e| panic!("{e}: {}", s(&ack)));
            let view = parse_ack(&parsed).unwrap();
            assert_eq!(view.code, AckCode::AR);
            assert!(view.text.is_some());
        }
        let ack = AckBuilder::for_raw(b"garbage").build();
        assert_eq!(s(&ack), "MSH|^~\\&|||||||ACK^^ACK|ACK|P|2.5\nMSA|AA|\n");
        let ack = AckBuilder::for_raw(b"\x0bMSH|^~\\&|A|B|C|D|2025||ORU^R01|Q7|P|2.4\rjunk\r")
            .code(AckCode::AE)
            .build();
        assert_eq!(
            s(&ack),
            "MSH|^~\\&|C|D|A|B|||ACK^R01^ACK|ACKQ7|P|2.4\nMSA|AE|Q7\n"
        );
        // Broken encoding characters but a usable field separator: values are escaped.
        let ack = AckBuilder::for_raw(b"MSH|^~|A^x|B\x00|C|D|2025||ORU^R01|Q\\8|P|2.3\r").build();
        assert_eq!(
            s(&ack),
            "MSH|^~\\&|C|D|A\\S\\x|B|||ACK^R01|ACKQ\\E\\8|P|2.3\nMSA|AA|Q\\E\\8\n"
        );
    }

    #[test]
    fn parse_error_details() {
        let e = Message::parse(b"MSH|^^\\&|").unwrap_err();
        let d = ErrorDetail::from(&e);
        assert_eq!(d.code, ErrorCode::DataTypeError);
        assert_eq!(
            d.location,
            Some(ErrorLocation::segment("MSH", 1).with_field(2))
        );
        let e = Message::parse(b"MSH|^~\\&|A\rxx\r").unwrap_err();
        let d = ErrorDetail::from(e);
        assert_eq!(d.code, ErrorCode::SegmentSequenceError);
        assert!(d.location.is_none());
        assert!(d.message.unwrap().contains("line 2"));
        let d = ErrorDetail::from(&ParseError::MissingHeaderField {
            field: 10,
            name: "x",
        });
        assert_eq!(d.code, ErrorCode::RequiredFieldMissing);
    }

    #[test]
    fn parse_ack_errors() {
        let m = Message::parse(b"MSH|^~\\&|A\rPID|1\r").unwrap();
        assert_eq!(parse_ack(&m), Err(AckParseError::MissingMsa));
        let m = Message::parse(b"MSH|^~\\&|A\rMSA|ZZ|1\r").unwrap();
        assert_eq!(parse_ack(&m), Err(AckParseError::UnknownCode("ZZ".into())));
        assert_eq!("CE".parse::<AckCode>().unwrap(), AckCode::CE);
        assert!(AckCode::CE.is_error() && AckCode::CE.is_enhanced() && !AckCode::AE.is_enhanced());
        let loc = ErrorLocation::from(&"OBX(2)-5[3].1".parse::<Path>().unwrap());
        assert_eq!(
            (loc.sequence, loc.field, loc.repetition, loc.component),
            (2, Some(5), Some(3), Some(1))
        );
    }
}
