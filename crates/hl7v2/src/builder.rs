//! A builder for new messages.

use crate::Delimiters;
use crate::error::EditError;
use crate::message::Version;
use crate::owned::OwnedMessage;
use crate::path::Path;

#[derive(Debug, Clone)]
enum Op {
    Raw(usize, Option<usize>, String),
    Text(usize, Option<usize>, String),
    Null(usize),
}

/// Fields of one segment being built; see [`MessageBuilder::segment`].
///
/// Field numbers are 1-based. [`field`](SegmentBuilder::field) takes HL7 syntax (the
/// message's separators split it into components and repetitions), the other setters
/// take plain text and escape it.
#[derive(Debug, Clone)]
pub struct SegmentBuilder {
    id: String,
    ops: Vec<Op>,
}

impl SegmentBuilder {
    /// Sets a field from raw HL7 syntax, e.g. `field(3, "123^^^HIS~456^^^EXT")`.
    pub fn field(mut self, n: usize, raw: &str) -> Self {
        self.ops.push(Op::Raw(n, None, raw.to_string()));
        self
    }

    /// Sets several consecutive fields from raw HL7 syntax, starting at field 1.
    pub fn fields<'s>(mut self, raws: impl IntoIterator<Item = &'s str>) -> Self {
        for (i, raw) in raws.into_iter().enumerate() {
            self.ops.push(Op::Raw(i + 1, None, raw.to_string()));
        }
        self
    }

    /// Sets a field to text, escaping delimiters (`text(5, "a^b")` writes `a\S\b`).
    pub fn text(mut self, n: usize, text: &str) -> Self {
        self.ops.push(Op::Text(n, None, text.to_string()));
        self
    }

    /// Sets one component of a field (first repetition) to text.
    pub fn component(mut self, n: usize, component: usize, text: &str) -> Self {
        self.ops
            .push(Op::Text(n, Some(component), text.to_string()));
        self
    }

    /// Sets one component of a field from raw HL7 syntax (may contain sub-components).
    pub fn component_raw(mut self, n: usize, component: usize, raw: &str) -> Self {
        self.ops.push(Op::Raw(n, Some(component), raw.to_string()));
        self
    }

    /// Sets a field to the HL7 null `""`.
    pub fn null(mut self, n: usize) -> Self {
        self.ops.push(Op::Null(n));
        self
    }
}

/// Builds a new message with a complete MSH.
///
/// Defaults: delimiters `|^~\&`, version 2.5, processing id `P`, MSH-9.3 filled in from
/// the type and trigger for v2.3.1+ when the structure is known (e.g. `ADT^A04` →
/// `ADT_A01`). There is no clock in this crate: pass the time stamp (MSH-7) and control
/// id (MSH-10) yourself.
///
/// ```
/// use hl7v2::{Message, MessageBuilder};
/// let msg = MessageBuilder::new("ORU", "R01")
///     .version("2.5")
///     .control_id("RPT001")
///     .sending("MEDRELAY", "CLINIC")
///     .receiving("HIS", "HOSPITAL_A")
///     .timestamp("20250315145530")
///     .segment("PID", |s| s.field(1, "1").field(3, "1234567890^^^HIS").field(5, "GARCIA^PEDRO"))
///     .segment("OBR", |s| s.field(1, "1").field(4, "ECG^Electrocardiogram^LN"))
///     .segment("OBX", |s| {
///         s.field(1, "1").field(2, "TX").field(3, "X^Interpretation").text(5, "Sinus rhythm | normal").field(11, "F")
///     })
///     .build()
///     .unwrap();
/// let bytes = msg.to_bytes();
/// let parsed = Message::parse(&bytes).unwrap();
/// assert_eq!(parsed.header().message_type_string(), "ORU^R01");
/// assert_eq!(parsed.get("MSH-9").unwrap(), "ORU^R01^ORU_R01");
/// assert_eq!(parsed.get("OBX-5").unwrap(), "Sinus rhythm \\F\\ normal");
/// assert_eq!(parsed.get_decoded("OBX-5").unwrap(), "Sinus rhythm | normal");
/// assert!(hl7v2::validate::validate(&parsed).iter().all(|i| !i.is_error()));
/// ```
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    delims: Delimiters,
    message_type: String,
    trigger: String,
    structure: Option<String>,
    version: String,
    control_id: String,
    processing_id: String,
    sending: (String, String),
    receiving: (String, String),
    timestamp: String,
    charset: Option<String>,
    header_raw: Vec<(usize, String)>,
    segments: Vec<SegmentBuilder>,
}

impl MessageBuilder {
    /// A message of this type and trigger event (`"ORU"`, `"R01"`).
    pub fn new(message_type: &str, trigger: &str) -> Self {
        MessageBuilder {
            delims: Delimiters::default(),
            message_type: message_type.to_string(),
            trigger: trigger.to_string(),
            structure: None,
            version: "2.5".to_string(),
            control_id: String::new(),
            processing_id: "P".to_string(),
            sending: Default::default(),
            receiving: Default::default(),
            timestamp: String::new(),
            charset: None,
            header_raw: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Uses other delimiters.
    pub fn delimiters(mut self, delims: Delimiters) -> Self {
        self.delims = delims;
        self
    }
    /// MSH-12 version (default `2.5`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }
    /// MSH-9.3 message structure (default: derived, see the type docs).
    pub fn structure(mut self, structure: &str) -> Self {
        self.structure = Some(structure.to_string());
        self
    }
    /// MSH-10 message control id.
    pub fn control_id(mut self, id: &str) -> Self {
        self.control_id = id.to_string();
        self
    }
    /// MSH-11 processing id (default `P`).
    pub fn processing_id(mut self, id: &str) -> Self {
        self.processing_id = id.to_string();
        self
    }
    /// MSH-3 sending application and MSH-4 facility (text, escaped).
    pub fn sending(mut self, application: &str, facility: &str) -> Self {
        self.sending = (application.to_string(), facility.to_string());
        self
    }
    /// MSH-5 receiving application and MSH-6 facility (text, escaped).
    pub fn receiving(mut self, application: &str, facility: &str) -> Self {
        self.receiving = (application.to_string(), facility.to_string());
        self
    }
    /// MSH-7 time stamp, e.g. `20250315120000` or `20250315120000+0100`.
    pub fn timestamp(mut self, ts: &str) -> Self {
        self.timestamp = ts.to_string();
        self
    }
    /// MSH-18 character set, e.g. `UNICODE UTF-8`.
    pub fn charset(mut self, charset: &str) -> Self {
        self.charset = Some(charset.to_string());
        self
    }
    /// Any other MSH field (3 ..), raw HL7 syntax; applied after the named setters.
    pub fn header_field(mut self, n: usize, raw: &str) -> Self {
        self.header_raw.push((n, raw.to_string()));
        self
    }

    /// Appends a segment, filled in by `f`.
    pub fn segment(mut self, id: &str, f: impl FnOnce(SegmentBuilder) -> SegmentBuilder) -> Self {
        let s = f(SegmentBuilder {
            id: id.to_string(),
            ops: Vec::new(),
        });
        self.segments.push(s);
        self
    }

    /// Builds the message.
    ///
    /// Fails on an invalid segment id, an MSH segment among the added ones, a field
    /// number 0, or a raw value that contains the field separator or a line break.
    pub fn build(self) -> Result<OwnedMessage, EditError> {
        let mut m = OwnedMessage::new(self.delims);
        let text = [
            (3, &self.sending.0),
            (4, &self.sending.1),
            (5, &self.receiving.0),
            (6, &self.receiving.1),
            (7, &self.timestamp),
            (10, &self.control_id),
            (11, &self.processing_id),
            (12, &self.version),
        ];
        for (n, v) in text {
            if !v.is_empty() {
                m.set_path(&Path::new("MSH", n)?, v)?;
            }
        }
        let structure = self.structure.clone().or_else(|| {
            let v = Version::parse(&self.version)?;
            if v < Version::new(2, 3, 1) {
                return None;
            }
            crate::validate::structure_for(&self.message_type, &self.trigger).map(str::to_string)
        });
        let msh9 = Path::new("MSH", 9)?;
        m.set_path(&msh9.clone().with_component(1), &self.message_type)?;
        if !self.trigger.is_empty() {
            m.set_path(&msh9.clone().with_component(2), &self.trigger)?;
        }
        if let Some(s) = structure {
            m.set_path(&msh9.with_component(3), &s)?;
        }
        if let Some(cs) = &self.charset {
            m.set_path(&Path::new("MSH", 18)?, cs)?;
        }
        for (n, raw) in &self.header_raw {
            m.set_raw_path(&Path::new("MSH", *n)?, raw.as_bytes())?;
        }
        for seg in &self.segments {
            let occ = m.push_segment(&seg.id)?;
            for op in &seg.ops {
                let (n, comp) = match op {
                    Op::Raw(n, c, _) | Op::Text(n, c, _) => (*n, *c),
                    Op::Null(n) => (*n, None),
                };
                let mut path = Path::new(&seg.id, n)?.with_segment_index(occ);
                if let Some(c) = comp {
                    path = path.with_component(c);
                }
                match op {
                    Op::Raw(_, _, raw) => m.set_raw_path(&path, raw.as_bytes())?,
                    Op::Text(_, _, t) => m.set_path(&path, t)?,
                    Op::Null(_) => m.set_raw_path(&path, b"\"\"")?,
                }
            }
        }
        Ok(m)
    }

    /// Builds and writes the message (CR-terminated segments).
    pub fn build_bytes(self) -> Result<Vec<u8>, EditError> {
        Ok(self.build()?.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn builds_header() {
        let b = MessageBuilder::new("ADT", "A04")
            .control_id("C1")
            .sending("APP", "FAC")
            .receiving("R^X", "RF")
            .timestamp("20250101120000")
            .charset("UNICODE UTF-8")
            .header_field(15, "AL")
            .segment("EVN", |s| s.field(2, "20250101120000"))
            .segment("PID", |s| {
                s.null(8).component(5, 2, "Ann").component(5, 1, "Smith")
            })
            .build_bytes()
            .unwrap();
        assert_eq!(
            b,
            b"MSH|^~\\&|APP|FAC|R\\S\\X|RF|20250101120000||ADT^A04^ADT_A01|C1|P|2.5|||AL|||UNICODE UTF-8\r\
EVN||20250101120000\rPID|||||Smith^Ann|||\"\"\r"
        );
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.header().receiving_application().as_deref(), Some("R^X"));
    }

    #[test]
    fn old_version_and_errors() {
        let b = MessageBuilder::new("ORM", "O01")
            .version("2.3")
            .build_bytes()
            .unwrap();
        assert_eq!(b, b"MSH|^~\\&|||||||ORM^O01||P|2.3\r");
        assert!(
            MessageBuilder::new("ORM", "O01")
                .segment("pid", |s| s)
                .build()
                .is_err()
        );
        assert!(
            MessageBuilder::new("ORM", "O01")
                .segment("MSH", |s| s)
                .build()
                .is_err()
        );
        assert!(
            MessageBuilder::new("ORM", "O01")
                .segment("PID", |s| s.field(0, "x"))
                .build()
                .is_err()
        );
        assert!(
            MessageBuilder::new("ORM", "O01")
                .segment("PID", |s| s.field(1, "a|b"))
                .build()
                .is_err()
        );
        let custom = Delimiters::new(b'#', b'$', b'%', b'!', b'@').unwrap();
        let b = MessageBuilder::new("ORM", "O01")
            .delimiters(custom)
            .segment("PID", |s| s.fields(["1", "", "X$Y"]))
            .build_bytes()
            .unwrap();
        assert_eq!(b, b"MSH#$%!@#######ORM$O01$ORM_O01##P#2.5\rPID#1##X$Y\r");
    }
}
