//! An owned, editable message.

use std::borrow::Cow;

use crate::Delimiters;
use crate::error::{EditError, ParseError};
use crate::escape::escape;
use crate::message::{Level, Message, Value, resolve_in_field};
use crate::path::{Path, Repetition, valid_segment_id};
use crate::scan::SplitBytes;

/// Upper bound for indexes that an edit may create, so that a hostile or mistyped path
/// (`PID-999999999`) cannot make the message allocate gigabytes.
pub const MAX_CREATED_INDEX: usize = 10_000;

/// One segment of an [`OwnedMessage`]: its id and raw (escaped) fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSegment {
    /// `fields[0]` is the id; for MSH, `fields[1]` is MSH-2 and MSH-n is `fields[n-1]`,
    /// for other segments SEG-n is `fields[n]`. Joining with the field separator thus
    /// writes every segment, MSH included.
    fields: Vec<Vec<u8>>,
}

impl OwnedSegment {
    fn with_id(id: &[u8]) -> Self {
        OwnedSegment {
            fields: vec![id.to_vec()],
        }
    }

    /// The segment id.
    pub fn id(&self) -> &str {
        self.fields
            .first()
            .and_then(|f| std::str::from_utf8(f).ok())
            .unwrap_or("")
    }

    fn is_msh(&self) -> bool {
        self.id() == "MSH"
    }

    /// Number of fields (for MSH, counting MSH-1 and MSH-2).
    pub fn field_count(&self) -> usize {
        let n = self.fields.len().saturating_sub(1);
        if self.is_msh() { n + 1 } else { n }
    }

    fn slot(&self, field: usize) -> usize {
        if self.is_msh() { field - 1 } else { field }
    }

    fn write_to(&self, fs: u8, out: &mut Vec<u8>) {
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(fs);
            }
            out.extend_from_slice(f);
        }
    }
}

/// An owned HL7 message that can be edited and written.
///
/// Values are stored raw (escaped). [`set`](OwnedMessage::set) escapes the text it is
/// given; [`set_raw`](OwnedMessage::set_raw) takes HL7 syntax as is (checked so that it
/// cannot break the structure). Setting a path creates whatever is missing: segments are
/// appended at the end, fields, repetitions and components are padded with empty ones.
///
/// ```
/// use hl7v2::{Message, OwnedMessage};
/// let msg = Message::parse(b"MSH|^~\\&|HIS|H|PACS|R|20250315||ORM^O01|1|P|2.5\rPID|1||123\r").unwrap();
/// let mut owned = OwnedMessage::from(&msg);
/// owned.set("PID-5.1", "O'Brien & Sons").unwrap();
/// owned.set("PID-5.2", "Mary").unwrap();
/// owned.set_raw("PID-3[2]", "456^^^EXT").unwrap();
/// owned.set_null("PID-8").unwrap();
/// owned.set("OBX(2)-5", "late").unwrap(); // creates two OBX segments
/// assert_eq!(owned.get("PID-5.1").unwrap().decoded(), "O'Brien & Sons");
/// assert_eq!(
///     owned.to_bytes(),
///     b"MSH|^~\\&|HIS|H|PACS|R|20250315||ORM^O01|1|P|2.5\r\
///       PID|1||123~456^^^EXT||O'Brien \\T\\ Sons^Mary|||\"\"\rOBX\rOBX|||||late\r"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMessage {
    delims: Delimiters,
    segments: Vec<OwnedSegment>,
}

impl From<&Message<'_>> for OwnedMessage {
    fn from(msg: &Message<'_>) -> Self {
        let fs = msg.delimiters().field();
        let segments = msg
            .segments()
            .map(|s| OwnedSegment {
                fields: SplitBytes::new(s.as_bytes(), fs)
                    .map(<[u8]>::to_vec)
                    .collect(),
            })
            .collect();
        OwnedMessage {
            delims: *msg.delimiters(),
            segments,
        }
    }
}

impl From<Message<'_>> for OwnedMessage {
    fn from(msg: Message<'_>) -> Self {
        OwnedMessage::from(&msg)
    }
}

/// Target level of an edit, used to refuse raw values that would shift the structure.
fn forbidden_in_raw(path: &Path, d: &Delimiters, raw: &[u8]) -> Option<&'static str> {
    let level = match (path.repetition(), path.component(), path.subcomponent()) {
        (_, Some(_), Some(_)) => 3,
        (_, Some(_), None) => 2,
        (Some(_), None, _) => 1,
        (None, None, _) => 0,
    };
    raw.iter().find_map(|&b| match b {
        b'\r' | b'\n' => Some("a line break"),
        b if b == d.field() => Some("the field separator"),
        b if level >= 1 && b == d.repetition() => Some("the repetition separator"),
        b if level >= 2 && b == d.component() => Some("the component separator"),
        b if level >= 3 && b == d.subcomponent() => Some("the sub-component separator"),
        _ => None,
    })
}

/// Replaces piece `idx` (0-based) of `bytes` split by `sep`, padding with empty pieces.
fn replace_part(bytes: &[u8], sep: u8, idx: usize, f: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = SplitBytes::new(bytes, sep).collect();
    while parts.len() <= idx {
        parts.push(&[]);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut replacement = Some(f);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        if i == idx {
            if let Some(f) = replacement.take() {
                out.extend_from_slice(&f(p));
            }
        } else {
            out.extend_from_slice(p);
        }
    }
    out
}

impl OwnedMessage {
    /// A message with an MSH segment holding only MSH-1 and MSH-2.
    pub fn new(delims: Delimiters) -> Self {
        OwnedMessage {
            delims,
            segments: vec![OwnedSegment {
                fields: vec![b"MSH".to_vec(), delims.encoding_characters().to_vec()],
            }],
        }
    }

    /// Parses and copies a message.
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        Ok(OwnedMessage::from(&Message::parse(input)?))
    }

    /// The delimiters.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    /// The segments in order.
    pub fn segments(&self) -> &[OwnedSegment] {
        &self.segments
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn find_segment(&self, id: &str, occurrence: usize) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.id() == id)
            .nth(occurrence.checked_sub(1)?)
            .map(|(i, _)| i)
    }

    fn field_value<'s>(&'s self, seg: &'s OwnedSegment, field: usize) -> Option<Value<'s>> {
        if seg.is_msh() {
            match field {
                0 => return None,
                1 => {
                    return Some(Value::new(
                        self.delims.field_slice(),
                        self.delims,
                        Level::Atomic,
                    ));
                }
                2 => {
                    let enc = seg.fields.get(1)?;
                    return Some(Value::new(enc, self.delims, Level::Atomic));
                }
                _ => {}
            }
        } else if field == 0 {
            return None;
        }
        let f = seg.fields.get(seg.slot(field))?;
        Some(Value::new(f, self.delims, Level::Field))
    }

    /// The raw value at a path (see [`Message::get`]).
    pub fn get(&self, path: &str) -> Option<Value<'_>> {
        self.get_path(&path.parse().ok()?)
    }

    /// The raw value at a pre-parsed path.
    pub fn get_path(&self, path: &Path) -> Option<Value<'_>> {
        let seg = self
            .segments
            .get(self.find_segment(path.segment(), path.segment_index())?)?;
        resolve_in_field(self.field_value(seg, path.field())?, path)
    }

    /// The decoded text at a path.
    pub fn get_decoded(&self, path: &str) -> Option<Cow<'_, str>> {
        self.get(path).map(|v| v.decoded())
    }

    /// Sets the value at a path, escaping it.
    pub fn set(&mut self, path: &str, value: &str) -> Result<(), EditError> {
        self.set_path(&path.parse()?, value)
    }

    /// [`set`](OwnedMessage::set) with a pre-parsed path.
    pub fn set_path(&mut self, path: &Path, value: &str) -> Result<(), EditError> {
        self.set_bytes_path(path, value.as_bytes())
    }

    /// Sets bytes (e.g. ISO-8859-1 text) at a path, escaping them.
    pub fn set_bytes_path(&mut self, path: &Path, value: &[u8]) -> Result<(), EditError> {
        let escaped = escape(value, &self.delims).into_owned();
        self.put(path, escaped)
    }

    /// Sets a raw HL7 value (already escaped; may contain the separators *below* the
    /// path's level, e.g. components when setting a whole field).
    pub fn set_raw(&mut self, path: &str, raw: &str) -> Result<(), EditError> {
        self.set_raw_path(&path.parse()?, raw.as_bytes())
    }

    /// [`set_raw`](OwnedMessage::set_raw) with a pre-parsed path and bytes.
    pub fn set_raw_path(&mut self, path: &Path, raw: &[u8]) -> Result<(), EditError> {
        if let Some(what) = forbidden_in_raw(path, &self.delims, raw) {
            return Err(EditError::InvalidRawValue {
                path: path.to_string(),
                what,
            });
        }
        self.put(path, raw.to_vec())
    }

    /// Sets the HL7 null `""` (explicit delete) at a path.
    pub fn set_null(&mut self, path: &str) -> Result<(), EditError> {
        self.put(&path.parse()?, b"\"\"".to_vec())
    }

    /// Empties the value at a path if it exists; returns whether it existed.
    pub fn remove(&mut self, path: &str) -> Result<bool, EditError> {
        let path: Path = path.parse()?;
        if self.get_path(&path).is_none() {
            return Ok(false);
        }
        self.put(&path, Vec::new())?;
        Ok(true)
    }

    fn check_index(n: usize) -> Result<(), EditError> {
        if n > MAX_CREATED_INDEX {
            Err(EditError::OutOfRange(n))
        } else {
            Ok(())
        }
    }

    fn put(&mut self, path: &Path, raw: Vec<u8>) -> Result<(), EditError> {
        if path.repetition() == Some(Repetition::All) {
            return Err(EditError::AllRepetitions(path.to_string()));
        }
        for n in [
            Some(path.segment_index()),
            Some(path.field()),
            match path.repetition() {
                Some(Repetition::Nth(n)) => Some(n),
                _ => None,
            },
            path.component(),
            path.subcomponent(),
        ]
        .into_iter()
        .flatten()
        {
            Self::check_index(n)?;
        }
        let is_msh = path.segment() == "MSH";
        if is_msh && path.field() <= 2 {
            return Err(EditError::ReadOnlyDelimiters);
        }
        let seg_idx = self.ensure_segment(path.segment(), path.segment_index())?;
        let d = self.delims;
        let Some(seg) = self.segments.get_mut(seg_idx) else {
            return Err(EditError::OutOfRange(seg_idx));
        };
        let slot = seg.slot(path.field());
        while seg.fields.len() <= slot {
            seg.fields.push(Vec::new());
        }
        let Some(field) = seg.fields.get_mut(slot) else {
            return Err(EditError::OutOfRange(slot));
        };
        let (rep, comp, sub) = (path.repetition(), path.component(), path.subcomponent());
        if rep.is_none() && comp.is_none() {
            *field = raw;
            return Ok(());
        }
        let r = match rep {
            Some(Repetition::Nth(n)) => n,
            _ => 1,
        };
        *field = replace_part(field, d.repetition(), r - 1, |rep_bytes| match comp {
            None => raw,
            Some(c) => replace_part(rep_bytes, d.component(), c - 1, |comp_bytes| match sub {
                None => raw,
                Some(s) => replace_part(comp_bytes, d.subcomponent(), s - 1, |_| raw),
            }),
        });
        Ok(())
    }

    fn ensure_segment(&mut self, id: &str, occurrence: usize) -> Result<usize, EditError> {
        if let Some(i) = self.find_segment(id, occurrence) {
            return Ok(i);
        }
        if id == "MSH" {
            return Err(EditError::MshFixed);
        }
        let existing = self.segments.iter().filter(|s| s.id() == id).count();
        for _ in existing..occurrence {
            self.segments.push(OwnedSegment::with_id(id.as_bytes()));
        }
        Ok(self.segments.len() - 1)
    }

    fn check_id(id: &str) -> Result<(), EditError> {
        if !valid_segment_id(id.as_bytes()) {
            return Err(EditError::InvalidSegmentId(id.to_string()));
        }
        if id == "MSH" {
            return Err(EditError::MshFixed);
        }
        Ok(())
    }

    /// Appends an empty segment; returns its occurrence number among segments with the
    /// same id (1-based), ready for paths like `OBX(n)-5`.
    pub fn push_segment(&mut self, id: &str) -> Result<usize, EditError> {
        Self::check_id(id)?;
        self.segments.push(OwnedSegment::with_id(id.as_bytes()));
        Ok(self.segments.iter().filter(|s| s.id() == id).count())
    }

    /// Appends a segment given in HL7 syntax with this message's delimiters
    /// (`"NTE|1||comment"`); returns its occurrence number.
    pub fn push_segment_raw(&mut self, raw: &str) -> Result<usize, EditError> {
        let bytes = raw.as_bytes();
        let id = raw.get(..3).unwrap_or(raw);
        Self::check_id(id)?;
        if bytes.get(3).is_some_and(|&b| b != self.delims.field()) {
            return Err(EditError::InvalidSegmentId(raw.chars().take(8).collect()));
        }
        if bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(EditError::InvalidRawValue {
                path: id.to_string(),
                what: "a line break",
            });
        }
        let fields = SplitBytes::new(bytes, self.delims.field())
            .map(<[u8]>::to_vec)
            .collect();
        self.segments.push(OwnedSegment { fields });
        Ok(self.segments.iter().filter(|s| s.id() == id).count())
    }

    /// Inserts an empty segment at a 0-based position (1 ..= segment count; 0 is MSH).
    pub fn insert_segment(&mut self, position: usize, id: &str) -> Result<(), EditError> {
        Self::check_id(id)?;
        if position == 0 || position > self.segments.len() {
            return Err(EditError::OutOfRange(position));
        }
        self.segments
            .insert(position, OwnedSegment::with_id(id.as_bytes()));
        Ok(())
    }

    /// Removes the `occurrence`th (1-based) segment with this id; MSH cannot be removed.
    pub fn remove_segment(&mut self, id: &str, occurrence: usize) -> bool {
        if id == "MSH" {
            return false;
        }
        match self.find_segment(id, occurrence) {
            Some(i) => {
                self.segments.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes every segment with this id (not MSH); returns how many were removed.
    pub fn remove_segments(&mut self, id: &str) -> usize {
        if id == "MSH" {
            return 0;
        }
        let before = self.segments.len();
        self.segments.retain(|s| s.id() != id);
        before - self.segments.len()
    }

    /// The message with CR after every segment.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.segments
                .iter()
                .map(|s| s.fields.iter().map(|f| f.len() + 1).sum::<usize>())
                .sum(),
        );
        self.write_to(&mut out);
        out
    }

    /// Appends the message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for s in &self.segments {
            s.write_to(self.delims.field(), out);
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> OwnedMessage {
        OwnedMessage::parse(b"MSH|^~\\&|A|B|C|D|20250101||ADT^A01|1|P|2.5\rPID|1||X\r").unwrap()
    }

    #[test]
    fn round_trip() {
        let raw = b"MSH|^~\\&|A|B|C|D|20250101||ADT^A01|1|P|2.5\rPID|1||X~Y^^^Z\r";
        assert_eq!(OwnedMessage::parse(raw).unwrap().to_bytes(), raw);
    }

    #[test]
    fn set_creates_structure() {
        let mut m = base();
        m.set("PID-11[2].3", "Madrid").unwrap();
        assert_eq!(m.get("PID-11").unwrap(), "~^^Madrid");
        m.set("PID-5.2.2", "x&y").unwrap();
        assert_eq!(m.get("PID-5").unwrap(), "^&x\\T\\y");
        assert_eq!(m.get_decoded("PID-5.2.2").unwrap(), "x&y");
        m.set("MSH-10", "42").unwrap();
        assert_eq!(m.get("MSH-10").unwrap(), "42");
        m.set("MSH-21", "PROFILE").unwrap();
        assert_eq!(m.get("MSH-21").unwrap(), "PROFILE");
        assert_eq!(m.get("MSH-1").unwrap(), "|");
        assert_eq!(m.get("MSH-2").unwrap(), "^~\\&");
    }

    #[test]
    fn errors() {
        let mut m = base();
        assert_eq!(m.set("MSH-1", "x"), Err(EditError::ReadOnlyDelimiters));
        assert_eq!(m.set("MSH-2", "x"), Err(EditError::ReadOnlyDelimiters));
        assert_eq!(m.set("MSH(2)-3", "x"), Err(EditError::MshFixed));
        assert!(matches!(
            m.set("PID-3[*]", "x"),
            Err(EditError::AllRepetitions(_))
        ));
        assert!(matches!(m.set("bad", "x"), Err(EditError::Path(_))));
        assert!(matches!(
            m.set("PID-999999", "x"),
            Err(EditError::OutOfRange(_))
        ));
        assert!(matches!(
            m.set_raw("PID-5.1", "a^b"),
            Err(EditError::InvalidRawValue { .. })
        ));
        assert!(matches!(
            m.set_raw("PID-5", "a|b"),
            Err(EditError::InvalidRawValue { .. })
        ));
        assert!(matches!(
            m.set_raw("PID-5", "a\rb"),
            Err(EditError::InvalidRawValue { .. })
        ));
        m.set_raw("PID-5", "a^b~c").unwrap();
        assert_eq!(
            m.push_segment("msh"),
            Err(EditError::InvalidSegmentId("msh".into()))
        );
        assert_eq!(m.push_segment("MSH"), Err(EditError::MshFixed));
        assert!(!m.remove_segment("MSH", 1));
    }

    #[test]
    fn segments_ops() {
        let mut m = base();
        assert_eq!(m.push_segment("OBX").unwrap(), 1);
        assert_eq!(m.push_segment_raw("OBX|2|TX|||hello").unwrap(), 2);
        m.set("OBX(1)-5", "first").unwrap();
        m.insert_segment(2, "PV1").unwrap();
        assert!(m.insert_segment(0, "PV1").is_err());
        m.set("PV1-2", "O").unwrap();
        assert_eq!(
            m.to_bytes(),
            b"MSH|^~\\&|A|B|C|D|20250101||ADT^A01|1|P|2.5\rPID|1||X\rPV1||O\rOBX|||||first\rOBX|2|TX|||hello\r"
        );
        assert!(m.remove_segment("OBX", 2));
        assert_eq!(m.remove_segments("OBX"), 1);
        assert!(m.remove("PV1-2").unwrap());
        assert!(!m.remove("PV1-9").unwrap());
        assert_eq!(m.get("PV1-2").unwrap(), "");
        assert!(m.push_segment_raw("OBX^1").is_err());
        assert_eq!(m.segment_count(), 3);
        assert_eq!(m.segments()[2].field_count(), 2);
        assert_eq!(m.segments()[0].field_count(), 12);
    }

    #[test]
    fn null_and_custom_delims() {
        let d = Delimiters::new(b'#', b'$', b'%', b'!', b'@').unwrap();
        let mut m = OwnedMessage::new(d);
        m.set("MSH-3", "A#B").unwrap();
        m.set_null("PID-8").unwrap();
        assert_eq!(m.to_bytes(), b"MSH#$%!@#A!F!B\rPID########\"\"\r");
        let back = Message::parse(&m.to_bytes())
            .unwrap()
            .get_decoded("MSH-3")
            .unwrap()
            .into_owned();
        assert_eq!(back, "A#B");
        assert!(m.get("PID-8").unwrap().is_null());
    }
}
