//! The zero-copy message model: [`Message`], [`Segment`], [`Value`] and [`Header`].

use std::borrow::Cow;
use std::fmt;

use crate::Delimiters;
use crate::error::ParseError;
use crate::escape::{unescape, unescape_latin1, unescape_str};
use crate::path::{Path, Repetition, valid_segment_id};
use crate::scan::{SplitBytes, count_byte, find_byte, nth_piece};

/// Where a segment lies in the input. Only these spans are stored at parse time: fields
/// are found on demand, which keeps parsing at one pass and one allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A parsed HL7 v2 message borrowing its input.
///
/// Parsing finds the delimiters (MSH-1/MSH-2) and the segment boundaries; fields,
/// repetitions and components are located lazily when asked for, and values are returned
/// as slices of the input (raw, i.e. still escaped) or decoded on request.
///
/// Segment terminators: CR is the standard one. If the input contains no CR at all, LF
/// is the terminator; otherwise an LF directly after a CR is dropped (CRLF), and any other
/// LF is data. Blank lines (also trailing whitespace after the last segment) are skipped.
/// A message that needed any of this normalisation is still parsed, but
/// [`to_bytes`](Message::to_bytes) then writes the canonical form (CR after every
/// segment) and [`is_canonical`](Message::is_canonical) is false; a CR-terminated message
/// round-trips byte for byte.
///
/// ```
/// use hl7v2::Message;
/// let raw = b"MSH|^~\\&|HIS|HOSP|PACS|RAD|20250315120000||ORM^O01|MSG001|P|2.5\r\
///             PID|1||1234567890^^^HIS~987^^^EXT||GARCIA^PEDRO^M||19751022|M\r";
/// let msg = Message::parse(raw).unwrap();
/// assert_eq!(msg.header().message_type_string(), "ORM^O01");
/// assert_eq!(msg.get("PID-5.1").unwrap(), "GARCIA");
/// assert_eq!(msg.get("PID-3[2].1").unwrap().as_str(), "987");
/// let ids: Vec<_> = msg.get_all("PID-3.1").map(|v| v.to_string()).collect();
/// assert_eq!(ids, ["1234567890", "987"]);
/// assert_eq!(msg.to_bytes(), raw);
/// ```
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    spans: Vec<Span>,
    canonical: bool,
    /// MSH-18 says ISO-8859-1; read once, because [`Message::text`] runs per value.
    latin1: bool,
}

fn is_blank(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0B | 0x0C | b'\r' | b'\n')
}

fn lossy_prefix(s: &[u8], n: usize) -> String {
    String::from_utf8_lossy(s.get(..s.len().min(n)).unwrap_or(s)).into_owned()
}

impl<'a> Message<'a> {
    /// Parses a message. Only the syntax needed to find segments is checked: missing
    /// MSH-9/10/12 or a wrong segment order are reported by
    /// [`validate`](crate::validate::validate), not here.
    pub fn parse(input: &'a [u8]) -> Result<Self, ParseError> {
        if input.iter().all(is_blank) {
            return Err(ParseError::Empty);
        }
        if !input.starts_with(b"MSH") {
            return Err(ParseError::NotMsh {
                found: lossy_prefix(input, 8),
            });
        }
        let (delims, _) = Delimiters::from_msh(input)?;
        let fs = delims.field();
        let cr_terminated = find_byte(input, b'\r').is_some();
        let term = if cr_terminated { b'\r' } else { b'\n' };
        let mut canonical = cr_terminated;
        let mut spans = Vec::with_capacity(16);
        let mut pos = 0usize;
        let mut line = 0usize;
        while pos < input.len() {
            line += 1;
            let rest = input.get(pos..).unwrap_or(&[]);
            let (len, skip) = match find_byte(rest, term) {
                Some(i) => {
                    if cr_terminated && rest.get(i + 1) == Some(&b'\n') {
                        canonical = false;
                        (i, 2)
                    } else {
                        (i, 1)
                    }
                }
                None => {
                    canonical = false;
                    (rest.len(), 0)
                }
            };
            let seg = rest.get(..len).unwrap_or(&[]);
            if seg.iter().all(is_blank) {
                canonical = false;
            } else {
                let id_ok = seg.get(..3).is_some_and(valid_segment_id)
                    && seg.get(3).is_none_or(|&b| b == fs);
                if !id_ok {
                    return Err(ParseError::InvalidSegmentId {
                        line,
                        segment_index: spans.len() + 1,
                        offset: pos,
                        found: lossy_prefix(seg, 16),
                    });
                }
                spans.push(Span {
                    start: pos,
                    end: pos + len,
                });
            }
            pos += len + skip;
        }
        let mut msg = Message {
            raw: input,
            delims,
            spans,
            canonical,
            latin1: false,
        };
        msg.latin1 = msg.header().is_latin1();
        Ok(msg)
    }

    /// The input this message was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The message's delimiters.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    /// True if [`to_bytes`](Message::to_bytes) reproduces the input byte for byte (CR
    /// terminators only, a final CR, no blank lines).
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.spans.len()
    }

    fn segment_from(&self, i: usize, span: &Span) -> Segment<'a> {
        Segment {
            raw: self.raw.get(span.start..span.end).unwrap_or(&[]),
            delims: self.delims,
            position: i + 1,
        }
    }

    /// All segments in order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = Segment<'a>> + '_ {
        self.spans
            .iter()
            .enumerate()
            .map(|(i, s)| self.segment_from(i, s))
    }

    /// The segment at a 0-based position (`0` is MSH).
    pub fn segment_at(&self, index: usize) -> Option<Segment<'a>> {
        self.spans.get(index).map(|s| self.segment_from(index, s))
    }

    /// The segments with this id, in order (`msg.segments_named("OBX")`).
    pub fn segments_named<'s>(&'s self, id: &'s str) -> impl Iterator<Item = Segment<'a>> + 's {
        let id = id.as_bytes();
        self.segments().filter(move |s| s.id_bytes() == id)
    }

    /// The `occurrence`th (1-based) segment with this id.
    pub fn segment(&self, id: &str, occurrence: usize) -> Option<Segment<'a>> {
        self.segments_named(id).nth(occurrence.checked_sub(1)?)
    }

    /// The MSH segment.
    pub fn msh(&self) -> Segment<'a> {
        match self.spans.first() {
            Some(s) => self.segment_from(0, s),
            // parse() guarantees an MSH span; this arm only keeps the code panic-free.
            None => Segment {
                raw: b"MSH",
                delims: self.delims,
                position: 1,
            },
        }
    }

    /// Typed access to the MSH fields.
    pub fn header(&self) -> Header<'a> {
        Header { msh: self.msh() }
    }

    /// The raw (still escaped) value at a path such as `"PID-5.1"`.
    ///
    /// `None` if the path is invalid or points past the end of the message (missing
    /// segment, field, repetition or component). An existing but empty position is
    /// `Some` with [`Value::is_empty`]; `""` is [`Value::is_null`].
    pub fn get(&self, path: &str) -> Option<Value<'a>> {
        self.get_path(&path.parse().ok()?)
    }

    /// [`get`](Message::get) with a pre-parsed [`Path`] (faster in loops).
    pub fn get_path(&self, path: &Path) -> Option<Value<'a>> {
        let seg = self.segment_by_path(path)?;
        resolve_in_segment(&seg, path)
    }

    /// The decoded (unescaped) text at a path; invalid UTF-8 is replaced (see
    /// [`Message::text`] for ISO-8859-1 messages).
    pub fn get_decoded(&self, path: &str) -> Option<Cow<'a, str>> {
        self.get(path).map(|v| v.decoded())
    }

    /// Every repetition of the field a path names (`"PID-3"`, `"PID-3[*].1"`): for each
    /// repetition, the component/sub-component the path selects (repetitions that lack
    /// it are skipped). A path with `[n]` yields just that repetition. An invalid path
    /// yields nothing.
    pub fn get_all(&self, path: &str) -> AllValues<'a> {
        match path.parse::<Path>() {
            Ok(p) => self.get_all_path(&p),
            Err(_) => AllValues::empty(),
        }
    }

    /// [`get_all`](Message::get_all) with a pre-parsed [`Path`].
    pub fn get_all_path(&self, path: &Path) -> AllValues<'a> {
        let field = self
            .segment_by_path(path)
            .and_then(|s| s.field(path.field()));
        AllValues {
            reps: field.map(|f| f.repetitions()),
            seen: 0,
            only: match path.repetition() {
                Some(Repetition::Nth(n)) => Some(n),
                _ => None,
            },
            component: path.component(),
            subcomponent: path.subcomponent(),
        }
    }

    fn segment_by_path(&self, path: &Path) -> Option<Segment<'a>> {
        let id = path.segment_bytes();
        self.segments()
            .filter(|s| s.id_bytes() == id)
            .nth(path.segment_index().checked_sub(1)?)
    }

    /// Decodes a value as text using the message's character set (MSH-18): ISO-8859-1
    /// (`8859/1`) is decoded exactly, anything else as UTF-8 (lossy).
    pub fn text(&self, value: &Value<'a>) -> Cow<'a, str> {
        if self.latin1 {
            // ASCII reads the same in Latin-1 and UTF-8: most values need no copy.
            if value.raw.is_ascii()
                && let Cow::Borrowed(b) = crate::escape::unescape(value.raw, &self.delims)
                && let Ok(s) = std::str::from_utf8(b)
            {
                return Cow::Borrowed(s);
            }
            Cow::Owned(unescape_latin1(value.raw, &self.delims))
        } else {
            value.decoded()
        }
    }

    /// Checks the MSH fields the standard requires for any processing (MSH-9 message
    /// type, MSH-10 control id, MSH-12 version). [`Message::parse`] does not, so that a
    /// receiver can still answer such a message with an ACK.
    pub fn check_header(&self) -> Result<(), ParseError> {
        let h = self.header();
        let checks = [
            (9, "message type", h.message_type().is_some()),
            (10, "message control id", h.control_id().is_some()),
            (12, "version id", h.version().is_some()),
        ];
        for (field, name, ok) in checks {
            if !ok {
                return Err(ParseError::MissingHeaderField { field, name });
            }
        }
        Ok(())
    }

    /// The message in canonical form: every segment followed by CR.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len: usize = self.spans.iter().map(|s| s.end - s.start + 1).sum();
        let mut out = Vec::with_capacity(len);
        self.write_to(&mut out);
        out
    }

    /// Appends the canonical form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for s in &self.spans {
            out.extend_from_slice(self.raw.get(s.start..s.end).unwrap_or(&[]));
            out.push(b'\r');
        }
    }
}

fn select_component<'a>(
    rep: Value<'a>,
    component: Option<usize>,
    subcomponent: Option<usize>,
) -> Option<Value<'a>> {
    let Some(c) = component else {
        return Some(rep);
    };
    let comp = rep.component(c)?;
    match subcomponent {
        Some(s) => comp.subcomponent(s),
        None => Some(comp),
    }
}

/// Iterator returned by [`Message::get_all`].
#[derive(Debug, Clone)]
pub struct AllValues<'a> {
    reps: Option<Parts<'a>>,
    seen: usize,
    only: Option<usize>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

impl AllValues<'_> {
    fn empty() -> Self {
        AllValues {
            reps: None,
            seen: 0,
            only: None,
            component: None,
            subcomponent: None,
        }
    }
}

impl<'a> Iterator for AllValues<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        loop {
            let rep = self.reps.as_mut()?.next()?;
            self.seen += 1;
            if self.only.is_some_and(|n| n != self.seen) {
                continue;
            }
            if let Some(v) = select_component(rep, self.component, self.subcomponent) {
                return Some(v);
            }
        }
    }
}

pub(crate) fn resolve_in_segment<'a>(seg: &Segment<'a>, path: &Path) -> Option<Value<'a>> {
    resolve_in_field(seg.field(path.field())?, path)
}

/// Applies the repetition/component/sub-component part of a path to a field.
pub(crate) fn resolve_in_field<'a>(field: Value<'a>, path: &Path) -> Option<Value<'a>> {
    let rep = match (path.repetition(), path.component()) {
        (Some(Repetition::Nth(n)), _) => field.repetition(n)?,
        (_, None) => return Some(field),
        (_, Some(_)) => field.repetition(1)?,
    };
    select_component(rep, path.component(), path.subcomponent())
}

/// One segment of a [`Message`].
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    position: usize,
}

impl<'a> Segment<'a> {
    /// The segment id (`"PID"`).
    pub fn id(&self) -> &'a str {
        std::str::from_utf8(self.id_bytes()).unwrap_or("")
    }

    pub(crate) fn id_bytes(&self) -> &'a [u8] {
        self.raw.get(..3).unwrap_or(self.raw)
    }

    /// 1-based position of the segment in the message (MSH is 1).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The segment's bytes without terminator.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    fn is_msh(&self) -> bool {
        self.id_bytes() == b"MSH"
    }

    /// Field `n` (1-based). For MSH, field 1 is the field separator and field 2 the
    /// encoding characters, both returned whole (never split into components).
    /// `None` if the segment has fewer fields.
    pub fn field(&self, n: usize) -> Option<Value<'a>> {
        let fs = self.delims.field();
        let piece = if self.is_msh() {
            match n {
                0 => return None,
                1 => return Some(Value::new(self.raw.get(3..4)?, self.delims, Level::Atomic)),
                2 => {
                    let enc = SplitBytes::new(self.raw, fs).nth(1)?;
                    return Some(Value::new(enc, self.delims, Level::Atomic));
                }
                _ => nth_piece(self.raw, fs, n - 1)?,
            }
        } else {
            if n == 0 {
                return None;
            }
            nth_piece(self.raw, fs, n)?
        };
        Some(Value::new(piece, self.delims, Level::Field))
    }

    /// Number of fields present (trailing empty fields written with separators count).
    pub fn field_count(&self) -> usize {
        let seps = count_byte(self.raw, self.delims.field());
        if self.is_msh() { seps + 1 } else { seps }
    }

    /// The fields in order, starting with field 1.
    pub fn fields(&self) -> Fields<'a> {
        let mut split = SplitBytes::new(self.raw, self.delims.field());
        split.next(); // the segment id
        Fields {
            split,
            delims: self.delims,
            msh_sep: if self.is_msh() {
                self.raw.get(3..4)
            } else {
                None
            },
            msh_enc_pending: self.is_msh(),
        }
    }

    /// The raw value at a path relative to this segment (the path's segment id and
    /// index are ignored).
    pub fn get_path(&self, path: &Path) -> Option<Value<'a>> {
        resolve_in_segment(self, path)
    }
}

/// Iterator over the fields of a [`Segment`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    split: SplitBytes<'a>,
    delims: Delimiters,
    msh_sep: Option<&'a [u8]>,
    msh_enc_pending: bool,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if let Some(sep) = self.msh_sep.take() {
            return Some(Value::new(sep, self.delims, Level::Atomic));
        }
        let piece = self.split.next()?;
        let level = if std::mem::take(&mut self.msh_enc_pending) {
            Level::Atomic
        } else {
            Level::Field
        };
        Some(Value::new(piece, self.delims, level))
    }
}

/// Which separators still apply inside a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Field,
    Repetition,
    Component,
    Subcomponent,
    /// MSH-1 and MSH-2: never split.
    Atomic,
}

/// Whether a value is empty, the HL7 null `""`, or has data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Nothing between the separators: "no information, leave as is".
    Empty,
    /// `""`: the explicit null, "delete the stored value".
    Null,
    /// Anything else.
    Present,
}

/// A field, repetition, component or sub-component of a message: a slice of the input
/// (still escaped) plus the delimiters needed to split and decode it.
///
/// Splitting methods are 1-based and lenient: asking a component of a plain value
/// returns the value itself for component 1. On a whole field, [`component`](Value::component)
/// looks at the first repetition, and [`subcomponent`](Value::subcomponent) at the first
/// component.
///
/// ```
/// use hl7v2::{Message, ValueKind};
/// let msg = Message::parse(b"MSH|^~\\&|A\rPID|1|\"\"|||DOE^JOHN&J\r").unwrap();
/// assert!(msg.get("PID-2").unwrap().is_null());
/// assert_eq!(msg.get("PID-3").unwrap().kind(), ValueKind::Empty);
/// assert!(msg.get("PID-9").is_none());
/// let name = msg.get("PID-5").unwrap();
/// assert_eq!(name.component(2).unwrap().subcomponent(2).unwrap(), "J");
/// ```
#[derive(Clone, Copy)]
pub struct Value<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    level: Level,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Value").field(&self.as_str()).finish()
    }
}

/// Shows the raw (escaped) value, lossily decoded as UTF-8.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl PartialEq<str> for Value<'_> {
    fn eq(&self, other: &str) -> bool {
        self.raw == other.as_bytes()
    }
}
impl PartialEq<&str> for Value<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.raw == other.as_bytes()
    }
}
impl PartialEq<[u8]> for Value<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.raw == other
    }
}

/// Iterator over repetitions, components or sub-components of a [`Value`].
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    split: Option<SplitBytes<'a>>,
    once: Option<&'a [u8]>,
    delims: Delimiters,
    level: Level,
}

impl<'a> Iterator for Parts<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        let raw = match &mut self.split {
            Some(s) => s.next()?,
            None => self.once.take()?,
        };
        Some(Value::new(raw, self.delims, self.level))
    }
}

impl<'a> Value<'a> {
    pub(crate) fn new(raw: &'a [u8], delims: Delimiters, level: Level) -> Self {
        Value { raw, delims, level }
    }

    fn parts(self, sep: Option<u8>, level: Level) -> Parts<'a> {
        Parts {
            split: sep.map(|s| SplitBytes::new(self.raw, s)),
            once: Some(self.raw),
            delims: self.delims,
            level,
        }
    }

    fn parts_with(self, split: SplitBytes<'a>, level: Level) -> Parts<'a> {
        Parts {
            split: Some(split),
            once: None,
            delims: self.delims,
            level,
        }
    }

    /// The raw bytes (escape sequences not decoded).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The raw value as text (escape sequences not decoded; invalid UTF-8 replaced).
    pub fn as_str(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.raw)
    }

    /// The value with escape sequences decoded, as text (invalid UTF-8 replaced).
    pub fn decoded(&self) -> Cow<'a, str> {
        unescape_str(self.raw, &self.delims)
    }

    /// The value with escape sequences decoded, as bytes.
    pub fn decoded_bytes(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, &self.delims)
    }

    /// The value decoded, reading bytes as ISO-8859-1.
    pub fn decoded_latin1(&self) -> String {
        unescape_latin1(self.raw, &self.delims)
    }

    pub(crate) fn escape_char(&self) -> u8 {
        self.delims.escape()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// True for the HL7 null `""`.
    pub fn is_null(&self) -> bool {
        self.raw == b"\"\""
    }

    /// True if the value is neither empty nor null.
    pub fn is_present(&self) -> bool {
        self.kind() == ValueKind::Present
    }

    /// Empty, null or present.
    pub fn kind(&self) -> ValueKind {
        if self.is_empty() {
            ValueKind::Empty
        } else if self.is_null() {
            ValueKind::Null
        } else {
            ValueKind::Present
        }
    }

    /// The repetitions of a field (a single item for anything else).
    pub fn repetitions(&self) -> Parts<'a> {
        match self.level {
            Level::Field => self.parts(Some(self.delims.repetition()), Level::Repetition),
            _ => self.parts(None, self.level),
        }
    }

    /// Repetition `n` (1-based).
    pub fn repetition(&self, n: usize) -> Option<Value<'a>> {
        self.repetitions().nth(n.checked_sub(1)?)
    }

    /// The components (of the first repetition, for a field).
    pub fn components(&self) -> Parts<'a> {
        let d = &self.delims;
        match self.level {
            Level::Field => self.parts_with(
                SplitBytes::until(self.raw, d.component(), d.repetition()),
                Level::Component,
            ),
            Level::Repetition => self.parts(Some(d.component()), Level::Component),
            _ => self.parts(None, self.level),
        }
    }

    /// Component `n` (1-based).
    pub fn component(&self, n: usize) -> Option<Value<'a>> {
        self.components().nth(n.checked_sub(1)?)
    }

    /// The sub-components (of the first component, for a field or repetition).
    pub fn subcomponents(&self) -> Parts<'a> {
        let d = &self.delims;
        match self.level {
            Level::Field => self.parts_with(
                SplitBytes::until2(self.raw, d.subcomponent(), d.component(), d.repetition()),
                Level::Subcomponent,
            ),
            Level::Repetition => self.parts_with(
                SplitBytes::until(self.raw, d.subcomponent(), d.component()),
                Level::Subcomponent,
            ),
            Level::Component => self.parts(Some(self.delims.subcomponent()), Level::Subcomponent),
            _ => self.parts(None, self.level),
        }
    }

    /// Sub-component `n` (1-based).
    pub fn subcomponent(&self, n: usize) -> Option<Value<'a>> {
        self.subcomponents().nth(n.checked_sub(1)?)
    }
}

/// An HL7 version number such as `2.5.1`, ordered numerically.
///
/// ```
/// use hl7v2::Version;
/// let v = Version::parse("2.5.1").unwrap();
/// assert!(v >= Version::V2_5 && v < Version::new(2, 6, 0));
/// assert!(Version::parse("2.3") < Version::parse("2.3.1"));
/// assert_eq!(Version::parse("x"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number (2 for HL7 v2).
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Patch number (0 if absent).
    pub patch: u16,
}

impl Version {
    /// v2.5, where the ERR segment got its current layout.
    pub const V2_5: Version = Version::new(2, 5, 0);

    /// A version from its numbers.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses `"2.5"`, `"2.5.1"`, `"2.3.1"`…
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = match it.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if it.next().is_some() {
            return None;
        }
        Some(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

/// The MSH fields of a message, decoded.
///
/// Every accessor returns `Option<Cow<'a, str>>`: `None` when the field (component) is
/// empty, null or absent, otherwise the first component's text with escape sequences
/// decoded (invalid UTF-8 replaced; borrowed from the input when nothing needed
/// decoding). The `*_raw` accessors give the whole field as a [`Value`].
///
/// ```
/// use hl7v2::Message;
/// let msg = Message::parse(
///     b"MSH|^~\\&|HIS^1.2.3^ISO|HOSPITAL_A|PACS|RAD|20250315120000||ORM^O01^ORM_O01|MSG001|P|2.5||||||8859/1\r",
/// ).unwrap();
/// let h = msg.header();
/// assert_eq!(h.message_type().as_deref(), Some("ORM"));
/// assert_eq!(h.trigger_event().as_deref(), Some("O01"));
/// assert_eq!(h.structure().as_deref(), Some("ORM_O01"));
/// assert_eq!(h.control_id().as_deref(), Some("MSG001"));
/// assert_eq!(h.sending_application().as_deref(), Some("HIS"));
/// assert_eq!(h.sending_application_raw().unwrap(), "HIS^1.2.3^ISO");
/// assert_eq!(h.version().as_deref(), Some("2.5"));
/// assert_eq!(h.charset().as_deref(), Some("8859/1"));
/// assert_eq!(h.message_type_string(), "ORM^O01");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    msh: Segment<'a>,
}

fn text_of(v: Option<Value<'_>>) -> Option<Cow<'_, str>> {
    v.filter(Value::is_present).map(|v| v.decoded())
}

impl<'a> Header<'a> {
    /// The MSH segment.
    pub fn segment(&self) -> Segment<'a> {
        self.msh
    }

    fn comp(&self, field: usize, comp: usize) -> Option<Cow<'a, str>> {
        text_of(self.msh.field(field).and_then(|f| f.component(comp)))
    }

    /// MSH-9.1, e.g. `ORM`.
    pub fn message_type(&self) -> Option<Cow<'a, str>> {
        self.comp(9, 1)
    }
    /// MSH-9.2, e.g. `O01`.
    pub fn trigger_event(&self) -> Option<Cow<'a, str>> {
        self.comp(9, 2)
    }
    /// MSH-9.3, e.g. `ORM_O01` (v2.3.1+).
    pub fn structure(&self) -> Option<Cow<'a, str>> {
        self.comp(9, 3)
    }
    /// MSH-10.
    pub fn control_id(&self) -> Option<Cow<'a, str>> {
        self.comp(10, 1)
    }
    /// MSH-11.1 (`P`, `T` or `D`).
    pub fn processing_id(&self) -> Option<Cow<'a, str>> {
        self.comp(11, 1)
    }
    /// MSH-12.1, e.g. `2.5`.
    pub fn version(&self) -> Option<Cow<'a, str>> {
        self.comp(12, 1)
    }
    /// MSH-12.1 parsed.
    pub fn version_number(&self) -> Option<Version> {
        self.version().and_then(|v| Version::parse(&v))
    }
    /// MSH-3.1.
    pub fn sending_application(&self) -> Option<Cow<'a, str>> {
        self.comp(3, 1)
    }
    /// MSH-4.1.
    pub fn sending_facility(&self) -> Option<Cow<'a, str>> {
        self.comp(4, 1)
    }
    /// MSH-5.1.
    pub fn receiving_application(&self) -> Option<Cow<'a, str>> {
        self.comp(5, 1)
    }
    /// MSH-6.1.
    pub fn receiving_facility(&self) -> Option<Cow<'a, str>> {
        self.comp(6, 1)
    }
    /// MSH-3 whole (namespace^universal id^type).
    pub fn sending_application_raw(&self) -> Option<Value<'a>> {
        self.msh.field(3)
    }
    /// MSH-4 whole.
    pub fn sending_facility_raw(&self) -> Option<Value<'a>> {
        self.msh.field(4)
    }
    /// MSH-5 whole.
    pub fn receiving_application_raw(&self) -> Option<Value<'a>> {
        self.msh.field(5)
    }
    /// MSH-6 whole.
    pub fn receiving_facility_raw(&self) -> Option<Value<'a>> {
        self.msh.field(6)
    }
    /// MSH-7.1, the message time stamp as written (`YYYYMMDDHHMMSS[.S][+ZZZZ]`).
    pub fn timestamp(&self) -> Option<Cow<'a, str>> {
        self.comp(7, 1)
    }
    /// MSH-18 first repetition, e.g. `UNICODE UTF-8` or `8859/1`.
    pub fn charset(&self) -> Option<Cow<'a, str>> {
        text_of(self.msh.field(18).and_then(|f| f.repetition(1)))
    }
    /// MSH-15 accept acknowledgment type (`AL`, `NE`, `ER`, `SU`).
    pub fn accept_ack_type(&self) -> Option<Cow<'a, str>> {
        self.comp(15, 1)
    }
    /// MSH-16 application acknowledgment type.
    pub fn application_ack_type(&self) -> Option<Cow<'a, str>> {
        self.comp(16, 1)
    }

    /// True when MSH-18 declares ISO-8859-1.
    pub fn is_latin1(&self) -> bool {
        self.charset().is_some_and(|c| {
            c.eq_ignore_ascii_case("8859/1") || c.eq_ignore_ascii_case("ISO-8859-1")
        })
    }

    /// `"TYPE^TRIGGER"` (e.g. `"ORM^O01"`), just `"TYPE"` without trigger, `""` without
    /// type. Always uses `^`, whatever the message's component separator, so the result
    /// can be compared with configuration strings.
    pub fn message_type_string(&self) -> String {
        match (self.message_type(), self.trigger_event()) {
            (Some(t), Some(e)) => format!("{t}^{e}"),
            (Some(t), None) => t.into_owned(),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORM: &[u8] = b"MSH|^~\\&|HIS|HOSPITAL_A|MEDISFERA|PACS|20250315120000||ORM^O01|MSG001|P|2.5\r\
PID|1||1234567890^^^HIS||GARCIA^PEDRO^M||19751022|M|||C/ MAYOR 1^MADRID^^28001\r\
PV1|1|O|RADIOLOGY||||12345^DR LOPEZ^ANA|\r\
ORC|NW|ORD-2025-001|||SC||||20250315120000|||12345^DR LOPEZ^ANA\r\
OBR|1|ORD-2025-001||72193^TC ABDOMEN SIN CONTRASTE^LN|||20250315||||||||||||12345^DR LOPEZ^ANA||||||CT|||^^MEDISFERA_MWL^MEDISFERA|||SC\r";

    #[test]
    fn seed_orm() {
        let m = Message::parse(ORM).unwrap();
        assert!(m.is_canonical());
        assert_eq!(m.segment_count(), 5);
        let h = m.header();
        assert_eq!(h.message_type_string(), "ORM^O01");
        assert_eq!(h.control_id().as_deref(), Some("MSG001"));
        assert_eq!(h.receiving_application().as_deref(), Some("MEDISFERA"));
        assert_eq!(h.timestamp().as_deref(), Some("20250315120000"));
        assert_eq!(h.structure(), None);
        assert_eq!(m.get("PID-3.1").unwrap(), "1234567890");
        assert_eq!(m.get("PID-3.4").unwrap(), "HIS");
        assert_eq!(m.get("PID-11.2").unwrap(), "MADRID");
        assert_eq!(m.get("ORC-1").unwrap(), "NW");
        assert_eq!(m.get("OBR-4.2").unwrap(), "TC ABDOMEN SIN CONTRASTE");
        // The seed's OBR (joined from its wrapped lines) puts the ordering provider in
        // OBR-19 and the modality in OBR-25; we read it as written.
        assert_eq!(m.get("OBR-19.2").unwrap(), "DR LOPEZ");
        assert_eq!(m.get("OBR-25").unwrap(), "CT");
        assert_eq!(m.get("OBR-28.3").unwrap(), "MEDISFERA_MWL");
        assert_eq!(m.get("OBR-31").unwrap(), "SC");
        assert_eq!(m.get("PV1-7.2").unwrap(), "DR LOPEZ");
        assert_eq!(m.get("PV1-8").unwrap().kind(), ValueKind::Empty);
        assert!(m.get("PV1-9").is_none());
        assert_eq!(m.to_bytes(), ORM);
    }

    #[test]
    fn msh_fields() {
        let m = Message::parse(ORM).unwrap();
        assert_eq!(m.get("MSH-1").unwrap(), "|");
        assert_eq!(m.get("MSH-2").unwrap(), "^~\\&");
        assert_eq!(m.get("MSH-2.1").unwrap(), "^~\\&");
        assert!(m.get("MSH-2.2").is_none());
        assert_eq!(m.get("MSH-3").unwrap(), "HIS");
        assert_eq!(m.get("MSH-9.2").unwrap(), "O01");
        assert_eq!(m.get("MSH-12").unwrap(), "2.5");
        assert_eq!(m.msh().field_count(), 12);
        let f: Vec<String> = m.msh().fields().map(|v| v.to_string()).take(4).collect();
        assert_eq!(f, ["|", "^~\\&", "HIS", "HOSPITAL_A"]);
        assert_eq!(m.segment_at(1).unwrap().field_count(), 11);
        assert!(m.msh().field(0).is_none());
    }

    #[test]
    fn line_endings() {
        let lf: Vec<u8> = ORM
            .iter()
            .map(|&b| if b == b'\r' { b'\n' } else { b })
            .collect();
        let m = Message::parse(&lf).unwrap();
        assert!(!m.is_canonical());
        assert_eq!(m.to_bytes(), ORM);
        let crlf = String::from_utf8_lossy(ORM).replace('\r', "\r\n");
        let m = Message::parse(crlf.as_bytes()).unwrap();
        assert_eq!(m.segment_count(), 5);
        assert_eq!(m.to_bytes(), ORM);
        let mut trailing = ORM.to_vec();
        trailing.extend_from_slice(b"\r\n  \n\r\t");
        let m = Message::parse(&trailing).unwrap();
        assert_eq!(m.to_bytes(), ORM);
        let no_final = &ORM[..ORM.len() - 1];
        let m = Message::parse(no_final).unwrap();
        assert!(!m.is_canonical());
        assert_eq!(m.to_bytes(), ORM);
    }

    #[test]
    fn lf_inside_cr_message_is_data() {
        let m = Message::parse(b"MSH|^~\\&|A\rOBX|1|TX|X||line1\nline2|\r").unwrap();
        assert_eq!(m.segment_count(), 2);
        assert_eq!(m.get("OBX-5").unwrap(), "line1\nline2");
    }

    #[test]
    fn segments_named_and_index() {
        let m = Message::parse(b"MSH|^~\\&|A\rOBX|1|a\rNTE|x\rOBX|2|b\rOBX|3|c\r").unwrap();
        assert_eq!(m.segments_named("OBX").count(), 3);
        assert_eq!(m.get("OBX(3)-2").unwrap(), "c");
        assert_eq!(m.get("OBX(2)-1").unwrap(), "2");
        assert!(m.get("OBX(4)-1").is_none());
        assert_eq!(m.segment("OBX", 2).unwrap().position(), 4);
        assert!(m.segment("OBX", 0).is_none());
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Message::parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(Message::parse(b" \r\n").unwrap_err(), ParseError::Empty);
        assert!(matches!(
            Message::parse(b"PID|1").unwrap_err(),
            ParseError::NotMsh { .. }
        ));
        assert!(matches!(
            Message::parse(b"MSH").unwrap_err(),
            ParseError::MshTooShort { .. }
        ));
        assert!(matches!(
            Message::parse(b"MSH|").unwrap_err(),
            ParseError::EncodingCharactersTooShort { found: 0 }
        ));
        let e = Message::parse(b"MSH|^~\\&|A\rPID|1\rjunk line\rPV1|1\r").unwrap_err();
        assert_eq!(
            e,
            ParseError::InvalidSegmentId {
                line: 3,
                segment_index: 3,
                offset: 17,
                found: "junk line".into()
            }
        );
        assert!(matches!(
            Message::parse(b"MSH|^~\\&|A\rPID^1\r").unwrap_err(),
            ParseError::InvalidSegmentId { .. }
        ));
        assert!(matches!(
            Message::parse(b"MSH|^~\\&|A\rpid|1\r").unwrap_err(),
            ParseError::InvalidSegmentId { .. }
        ));
    }

    #[test]
    fn check_header_reports_missing() {
        let m = Message::parse(b"MSH|^~\\&|A|B|C|D|20250101||ORM^O01||P|2.5\r").unwrap();
        assert_eq!(
            m.check_header().unwrap_err(),
            ParseError::MissingHeaderField {
                field: 10,
                name: "message control id"
            }
        );
        assert!(Message::parse(ORM).unwrap().check_header().is_ok());
    }

    #[test]
    fn latin1_text() {
        let m = Message::parse(b"MSH|^~\\&|A|||||||||2.5||||||8859/1\rOBX|1|TX|X||Impresi\xf3n\r")
            .unwrap();
        let v = m.get("OBX-5").unwrap();
        assert_eq!(m.text(&v), "Impresión");
        assert_eq!(v.decoded(), "Impresi\u{FFFD}n");
        assert_eq!(v.as_bytes(), b"Impresi\xf3n");
    }
}
