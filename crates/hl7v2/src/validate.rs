//! Structural validation against v2.5 abstract message structures.
//!
//! [`validate`] checks:
//!
//! * MSH: MSH-9 (type and trigger), MSH-10, MSH-11, MSH-12 present; MSH-11 in table 0103
//!   (`P`, `D`, `T`); MSH-12 a 2.x version; MSH-7 a valid time stamp (missing MSH-7 is a
//!   warning: it is required from v2.4 on but optional before).
//! * For the structures this crate knows — `ADT_A01` (ADT^A01/A04/A08), `ORM_O01`,
//!   `ORU_R01`, `SIU_S12` (SIU^S12–S26) and `ACK` — segment presence, order and grouping,
//!   by greedy matching of the v2.5 grammar.
//! * Required fields of known segments (PID-3, PID-5, PV1-2, ORC-1, OBR-4, OBX-3, MSA-1,
//!   MSA-2, SCH-1 or SCH-2, …) and a few table values (MSA-1, OBX-11, PV1-2).
//!
//! Leniency, on purpose, because real senders commonly deviate:
//!
//! * Z-segments are allowed anywhere and ignored.
//! * Standard segments that are not part of the structure are reported as warnings and
//!   otherwise ignored; only known segments in the wrong place are errors (and only the
//!   first one is reported, with the number of segments that could not be matched).
//! * Some fields and segments that the standard requires but many systems leave out are
//!   warnings, not errors: MSH-7, EVN-2, OBX-11, SCH-6/16/20, the RGS segment of SIU
//!   messages, set ids, the MSH-9.3 structure (never checked).
//! * `SFT` is accepted after MSH in every structure.
//! * A required field that holds the null `""` counts as missing.
//!
//! An unknown message type gets only the MSH checks; [`validate_strict`] reports it as
//! 200 (unsupported message type) or 201 (unsupported event code) instead.

use std::fmt;

use crate::Message;
use crate::ack::{ErrorDetail, ErrorLocation, Severity};
use crate::error::ErrorCode;
use crate::message::{Segment, Value, Version};

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Segment id the problem concerns (the missing one, for a missing segment).
    pub segment: String,
    /// 1-based position of the segment in the message, if it exists.
    pub segment_index: Option<usize>,
    /// 1-based occurrence among segments with the same id (ERR-2.2), if it exists.
    pub sequence: Option<usize>,
    /// Field number, if the problem is in a field.
    pub field: Option<usize>,
    /// Component number, if the problem is in a component.
    pub component: Option<usize>,
    /// Table 0357 code.
    pub code: ErrorCode,
    /// Error or warning.
    pub severity: Severity,
    /// Readable explanation.
    pub reason: String,
}

impl Issue {
    /// True for severities E and F.
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Error | Severity::Fatal)
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code.code(),
            self.reason
        )?;
        if let Some(i) = self.segment_index {
            write!(f, " (segment {i})")?;
        }
        Ok(())
    }
}

impl From<&Issue> for ErrorDetail {
    fn from(i: &Issue) -> Self {
        let location = (!i.segment.is_empty()).then(|| ErrorLocation {
            segment: i.segment.clone(),
            sequence: i.sequence.unwrap_or(1),
            field: i.field,
            repetition: i.field.map(|_| 1),
            component: i.component,
            subcomponent: None,
        });
        ErrorDetail {
            code: i.code,
            severity: i.severity,
            location,
            message: Some(i.reason.clone()),
            diagnostic: None,
        }
    }
}

impl From<Issue> for ErrorDetail {
    fn from(i: Issue) -> Self {
        ErrorDetail::from(&i)
    }
}

/// True if any issue is an error (not just a warning).
pub fn has_errors(issues: &[Issue]) -> bool {
    issues.iter().any(Issue::is_error)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    Required,
    /// Required by the standard, but commonly missing: reported as a warning.
    Expected,
    Optional,
}

#[derive(Debug)]
enum Node {
    Seg(&'static str, Usage, bool),
    Choice(&'static [&'static str], Usage),
    Group(&'static str, &'static [Node], Usage, bool),
}

use Node::{Choice, Group, Seg};
use Usage::{Expected, Optional, Required};

const fn r(id: &'static str) -> Node {
    Seg(id, Required, false)
}
const fn o(id: &'static str) -> Node {
    Seg(id, Optional, false)
}
const fn or(id: &'static str) -> Node {
    Seg(id, Optional, true)
}

static ACK: &[Node] = &[r("MSH"), or("SFT"), r("MSA"), or("ERR")];

static ADT_A01: &[Node] = &[
    r("MSH"),
    or("SFT"),
    r("EVN"),
    r("PID"),
    o("PD1"),
    or("ROL"),
    or("NK1"),
    r("PV1"),
    o("PV2"),
    or("ROL"),
    or("DB1"),
    or("OBX"),
    or("AL1"),
    or("DG1"),
    o("DRG"),
    Group("PROCEDURE", &[r("PR1"), or("ROL")], Optional, true),
    or("GT1"),
    Group(
        "INSURANCE",
        &[r("IN1"), o("IN2"), or("IN3"), or("ROL")],
        Optional,
        true,
    ),
    o("ACC"),
    o("UB1"),
    o("UB2"),
    o("PDA"),
];

static ORM_O01: &[Node] = &[
    r("MSH"),
    or("SFT"),
    or("NTE"),
    Group(
        "PATIENT",
        &[
            r("PID"),
            o("PD1"),
            or("NTE"),
            Group("PATIENT_VISIT", &[r("PV1"), o("PV2")], Optional, false),
            Group("INSURANCE", &[r("IN1"), o("IN2"), o("IN3")], Optional, true),
            o("GT1"),
            or("AL1"),
        ],
        Optional,
        false,
    ),
    Group(
        "ORDER",
        &[
            r("ORC"),
            Group(
                "ORDER_DETAIL",
                &[
                    Choice(&["OBR", "RQD", "RQ1", "RXO", "ODS", "ODT"], Required),
                    or("NTE"),
                    o("CTD"),
                    or("DG1"),
                    Group("OBSERVATION", &[r("OBX"), or("NTE")], Optional, true),
                ],
                Optional,
                false,
            ),
            or("FT1"),
            or("CTI"),
            o("BLG"),
        ],
        Required,
        true,
    ),
];

static ORU_R01: &[Node] = &[
    r("MSH"),
    or("SFT"),
    Group(
        "PATIENT_RESULT",
        &[
            Group(
                "PATIENT",
                &[
                    r("PID"),
                    o("PD1"),
                    or("NTE"),
                    or("NK1"),
                    Group("VISIT", &[r("PV1"), o("PV2")], Optional, false),
                ],
                Optional,
                false,
            ),
            Group(
                "ORDER_OBSERVATION",
                &[
                    o("ORC"),
                    r("OBR"),
                    or("NTE"),
                    Group("TIMING_QTY", &[r("TQ1"), or("TQ2")], Optional, true),
                    o("CTD"),
                    Group("OBSERVATION", &[r("OBX"), or("NTE")], Optional, true),
                    or("FT1"),
                    or("CTI"),
                    Group("SPECIMEN", &[r("SPM"), or("OBX")], Optional, true),
                ],
                Required,
                true,
            ),
        ],
        Required,
        true,
    ),
    o("DSC"),
];

static SIU_S12: &[Node] = &[
    r("MSH"),
    or("SFT"),
    r("SCH"),
    or("TQ1"),
    or("NTE"),
    Group(
        "PATIENT",
        &[r("PID"), o("PD1"), o("PV1"), o("PV2"), or("OBX"), or("DG1")],
        Optional,
        true,
    ),
    Group(
        "RESOURCES",
        &[
            Seg("RGS", Expected, false),
            Group("SERVICE", &[r("AIS"), or("NTE")], Optional, true),
            Group("GENERAL_RESOURCE", &[r("AIG"), or("NTE")], Optional, true),
            Group("LOCATION_RESOURCE", &[r("AIL"), or("NTE")], Optional, true),
            Group("PERSONNEL_RESOURCE", &[r("AIP"), or("NTE")], Optional, true),
        ],
        Expected,
        true,
    ),
];

/// The v2.5 message structure id for a type and trigger, if this crate knows it:
/// `ADT_A01` for ADT^A01/A04/A08, `ORM_O01`, `ORU_R01`, `SIU_S12` for SIU^S12–S26, `ACK`.
pub fn structure_for(message_type: &str, trigger: &str) -> Option<&'static str> {
    match (message_type, trigger) {
        ("ADT", "A01" | "A04" | "A08") => Some("ADT_A01"),
        ("ORM", "O01") => Some("ORM_O01"),
        ("ORU", "R01") => Some("ORU_R01"),
        ("SIU", t) if is_siu_trigger(t) => Some("SIU_S12"),
        ("ACK", _) => Some("ACK"),
        _ => None,
    }
}

fn is_siu_trigger(t: &str) -> bool {
    t.strip_prefix('S')
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (12..=26).contains(&n))
        && t.len() == 3
}

fn grammar(structure: &str) -> Option<&'static [Node]> {
    match structure {
        "ADT_A01" => Some(ADT_A01),
        "ORM_O01" => Some(ORM_O01),
        "ORU_R01" => Some(ORU_R01),
        "SIU_S12" => Some(SIU_S12),
        "ACK" => Some(ACK),
        _ => None,
    }
}

fn known_type(t: &str) -> bool {
    matches!(t, "ADT" | "ORM" | "ORU" | "SIU" | "ACK")
}

/// Validates a message leniently (see the module docs).
///
/// ```
/// use hl7v2::{Message, ErrorCode, validate::validate};
/// let msg = Message::parse(b"MSH|^~\\&|A|B|C|D|20250315||ORM^O01|1|P|2.5\rPID|1\rORC|NW\r").unwrap();
/// let issues = validate(&msg);
/// let missing: Vec<_> = issues.iter().filter(|i| i.is_error()).map(|i| (i.segment.as_str(), i.field, i.code)).collect();
/// assert_eq!(missing, [
///     ("PID", Some(3), ErrorCode::RequiredFieldMissing),
///     ("PID", Some(5), ErrorCode::RequiredFieldMissing),
/// ]);
/// ```
pub fn validate(msg: &Message<'_>) -> Vec<Issue> {
    run(msg, false)
}

/// Like [`validate`], but an unknown message type (200) or trigger event (201) is an
/// error instead of being accepted with MSH checks only.
pub fn validate_strict(msg: &Message<'_>) -> Vec<Issue> {
    run(msg, true)
}

struct Ctx {
    issues: Vec<Issue>,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        seg: Option<(&Segment<'_>, usize)>,
        id: &str,
        field: Option<usize>,
        component: Option<usize>,
        code: ErrorCode,
        severity: Severity,
        reason: String,
    ) {
        self.issues.push(Issue {
            segment: id.to_string(),
            segment_index: seg.map(|(s, _)| s.position()),
            sequence: seg.map(|(_, q)| q),
            field,
            component,
            code,
            severity,
            reason,
        });
    }
}

fn present(v: Option<Value<'_>>) -> bool {
    v.is_some_and(|v| v.is_present())
}

fn run(msg: &Message<'_>, strict: bool) -> Vec<Issue> {
    let mut ctx = Ctx { issues: Vec::new() };
    let h = msg.header();
    let msh = msg.msh();
    let at = Some((&msh, 1));
    let mtype = h.message_type();
    let trigger = h.trigger_event();
    let version = h.version_number();

    // MSH
    if mtype.is_none() {
        ctx.push(
            at,
            "MSH",
            Some(9),
            Some(1),
            ErrorCode::RequiredFieldMissing,
            Severity::Error,
            "MSH-9.1 (message type) is required".into(),
        );
    }
    if trigger.is_none() && mtype.as_deref() != Some("ACK") && mtype.is_some() {
        ctx.push(
            at,
            "MSH",
            Some(9),
            Some(2),
            ErrorCode::RequiredFieldMissing,
            Severity::Error,
            "MSH-9.2 (trigger event) is required".into(),
        );
    }
    for (f, name) in [
        (10, "message control id"),
        (11, "processing id"),
        (12, "version id"),
    ] {
        if !present(msh.field(f)) {
            ctx.push(
                at,
                "MSH",
                Some(f),
                None,
                ErrorCode::RequiredFieldMissing,
                Severity::Error,
                format!("MSH-{f} ({name}) is required"),
            );
        }
    }
    match msh
        .field(7)
        .and_then(|f| f.component(1))
        .filter(Value::is_present)
    {
        None => ctx.push(
            at,
            "MSH",
            Some(7),
            None,
            ErrorCode::RequiredFieldMissing,
            Severity::Warning,
            "MSH-7 (date/time of message) is missing".into(),
        ),
        Some(ts) if !valid_ts(ts.as_bytes()) => ctx.push(
            at,
            "MSH",
            Some(7),
            None,
            ErrorCode::DataTypeError,
            Severity::Error,
            format!(
                "MSH-7 {:?} is not a valid time stamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])",
                ts.as_str()
            ),
        ),
        Some(_) => {}
    }
    if let Some(p) = h.processing_id()
        && !matches!(&*p, "P" | "D" | "T")
    {
        ctx.push(
            at,
            "MSH",
            Some(11),
            Some(1),
            ErrorCode::TableValueNotFound,
            Severity::Error,
            format!("MSH-11 processing id {p:?} is not in table 0103 (P, D, T)"),
        );
    }
    if let Some(v) = h.version() {
        match version {
            Some(ver) if ver.major == 2 => {}
            _ => ctx.push(
                at,
                "MSH",
                Some(12),
                Some(1),
                ErrorCode::UnsupportedVersionId,
                Severity::Error,
                format!("MSH-12 version {v:?} is not an HL7 v2.x version"),
            ),
        }
    }

    // Structure
    let structure = match (&mtype, &trigger) {
        (Some(t), tr) => structure_for(t, tr.as_deref().unwrap_or("")),
        _ => None,
    };
    match (structure.and_then(grammar), &mtype) {
        (Some(g), _) => match_structure(msg, g, structure.unwrap_or(""), &mut ctx),
        (None, Some(t)) if strict => {
            let (code, f, reason) = if known_type(t) {
                (
                    ErrorCode::UnsupportedEventCode,
                    2,
                    format!(
                        "event {:?} of message type {t} is not supported",
                        trigger.as_deref().unwrap_or("")
                    ),
                )
            } else {
                (
                    ErrorCode::UnsupportedMessageType,
                    1,
                    format!("message type {t:?} is not supported"),
                )
            };
            ctx.push(at, "MSH", Some(9), Some(f), code, Severity::Error, reason);
        }
        _ => {}
    }

    // Fields
    let mut seen: Vec<([u8; 3], usize)> = Vec::new();
    for seg in msg.segments().skip(1) {
        let id = seg.id();
        let mut key = [0u8; 3];
        for (k, b) in key.iter_mut().zip(id.bytes()) {
            *k = b;
        }
        let seq = match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                seen.push((key, 1));
                1
            }
        };
        check_fields(&seg, seq, version, &mut ctx);
    }
    ctx.issues
}

const FIELD_RULES: &[(&str, usize, Severity, &str)] = &[
    ("EVN", 2, Severity::Warning, "recorded date/time"),
    ("PID", 3, Severity::Error, "patient identifier list"),
    ("PID", 5, Severity::Error, "patient name"),
    ("PV1", 2, Severity::Error, "patient class"),
    ("ORC", 1, Severity::Error, "order control"),
    ("OBR", 4, Severity::Error, "universal service identifier"),
    ("OBX", 3, Severity::Error, "observation identifier"),
    ("OBX", 11, Severity::Warning, "observation result status"),
    ("MSA", 1, Severity::Error, "acknowledgment code"),
    ("MSA", 2, Severity::Error, "message control id"),
    ("SCH", 6, Severity::Warning, "event reason"),
    ("SCH", 16, Severity::Warning, "filler contact person"),
    ("SCH", 20, Severity::Warning, "entered by person"),
    ("RGS", 1, Severity::Warning, "set id"),
    ("AIS", 1, Severity::Warning, "set id"),
    ("AIS", 3, Severity::Warning, "universal service identifier"),
    ("AIG", 1, Severity::Warning, "set id"),
    ("AIG", 3, Severity::Warning, "resource id"),
    ("AIL", 1, Severity::Warning, "set id"),
    ("AIP", 1, Severity::Warning, "set id"),
    ("NK1", 1, Severity::Warning, "set id"),
    ("AL1", 1, Severity::Warning, "set id"),
    ("AL1", 3, Severity::Warning, "allergen code"),
    ("DG1", 1, Severity::Warning, "set id"),
    ("IN1", 1, Severity::Warning, "set id"),
    ("IN1", 2, Severity::Warning, "insurance plan id"),
    ("IN1", 3, Severity::Warning, "insurance company id"),
    ("GT1", 1, Severity::Warning, "set id"),
    ("GT1", 3, Severity::Warning, "guarantor name"),
    ("SPM", 4, Severity::Warning, "specimen type"),
];

const TABLE_RULES: &[(&str, usize, Severity, &str, &[&str])] = &[
    (
        "MSA",
        1,
        Severity::Error,
        "0008",
        &["AA", "AE", "AR", "CA", "CE", "CR"],
    ),
    (
        "OBX",
        11,
        Severity::Warning,
        "0085",
        &["C", "D", "F", "I", "N", "O", "P", "R", "S", "U", "W", "X"],
    ),
    (
        "PV1",
        2,
        Severity::Warning,
        "0004",
        &["B", "C", "E", "I", "N", "O", "P", "R", "U"],
    ),
];

fn check_fields(seg: &Segment<'_>, seq: usize, version: Option<Version>, ctx: &mut Ctx) {
    let id = seg.id();
    let at = Some((seg, seq));
    for &(sid, f, sev, name) in FIELD_RULES {
        if sid == id && !present(seg.field(f)) {
            ctx.push(
                at,
                id,
                Some(f),
                None,
                ErrorCode::RequiredFieldMissing,
                sev,
                format!("{id}-{f} ({name}) is required"),
            );
        }
    }
    for &(sid, f, sev, table, values) in TABLE_RULES {
        if sid != id {
            continue;
        }
        if let Some(v) = seg
            .field(f)
            .and_then(|v| v.component(1))
            .filter(Value::is_present)
            && !values.iter().any(|x| v == *x)
        {
            ctx.push(
                at,
                id,
                Some(f),
                None,
                ErrorCode::TableValueNotFound,
                sev,
                format!("{id}-{f} value {:?} is not in table {table}", v.as_str()),
            );
        }
    }
    match id {
        "SCH" if !present(seg.field(1)) && !present(seg.field(2)) => {
            ctx.push(
                at,
                id,
                Some(1),
                None,
                ErrorCode::RequiredFieldMissing,
                Severity::Error,
                "SCH-1 (placer appointment id) or SCH-2 (filler appointment id) is required".into(),
            );
        }
        "OBX" if present(seg.field(5)) && !present(seg.field(2)) => {
            ctx.push(
                at,
                id,
                Some(2),
                None,
                ErrorCode::RequiredFieldMissing,
                Severity::Error,
                "OBX-2 (value type) is required when OBX-5 is valued".into(),
            );
        }
        "ERR" => {
            let new_style = version.is_none_or(|v| v >= Version::V2_5);
            let rules: &[(usize, &str)] = if new_style {
                &[(3, "HL7 error code"), (4, "severity")]
            } else {
                &[(1, "error code and location")]
            };
            for &(f, name) in rules {
                if !present(seg.field(f)) {
                    ctx.push(
                        at,
                        id,
                        Some(f),
                        None,
                        ErrorCode::RequiredFieldMissing,
                        Severity::Warning,
                        format!("ERR-{f} ({name}) is required"),
                    );
                }
            }
        }
        _ => {}
    }
}

/// `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`
fn valid_ts(ts: &[u8]) -> bool {
    let (main, zone) = match ts.iter().position(|&b| b == b'+' || b == b'-') {
        Some(i) => (ts.get(..i).unwrap_or(&[]), ts.get(i + 1..)),
        None => (ts, None),
    };
    if let Some(z) = zone
        && (z.len() != 4 || !z.iter().all(u8::is_ascii_digit))
    {
        return false;
    }
    let (digits, frac) = match main.iter().position(|&b| b == b'.') {
        Some(i) => (main.get(..i).unwrap_or(&[]), main.get(i + 1..)),
        None => (main, None),
    };
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return false;
    }
    match frac {
        None => true,
        Some(f) => {
            digits.len() == 14 && (1..=4).contains(&f.len()) && f.iter().all(u8::is_ascii_digit)
        }
    }
}

struct Matcher<'s> {
    segs: Vec<(&'s str, usize, usize)>,
    pos: usize,
    issues: Vec<Issue>,
}

fn first_set_contains(nodes: &[Node], id: &str) -> bool {
    for n in nodes {
        let (hit, usage) = match n {
            Seg(s, u, _) => (*s == id, *u),
            Choice(ids, u) => (ids.contains(&id), *u),
            Group(_, c, u, _) => (first_set_contains(c, id), *u),
        };
        if hit {
            return true;
        }
        if usage == Required {
            return false;
        }
    }
    false
}

fn first_required(nodes: &[Node]) -> String {
    for n in nodes {
        match n {
            Seg(s, Required, _) => return (*s).to_string(),
            Choice(ids, Required) => return ids.join("/"),
            Group(_, c, Required, _) => return first_required(c),
            _ => {}
        }
    }
    nodes
        .first()
        .map(|n| match n {
            Seg(s, _, _) => (*s).to_string(),
            Choice(ids, _) => ids.join("/"),
            Group(_, c, _, _) => first_required(c),
        })
        .unwrap_or_default()
}

fn alphabet(nodes: &[Node], out: &mut Vec<&'static str>) {
    for n in nodes {
        match n {
            Seg(s, _, _) => out.push(s),
            Choice(ids, _) => out.extend_from_slice(ids),
            Group(_, c, _, _) => alphabet(c, out),
        }
    }
}

impl<'s> Matcher<'s> {
    fn peek(&self) -> Option<&'s str> {
        self.segs.get(self.pos).map(|s| s.0)
    }

    fn missing(&mut self, usage: Usage, what: String, group: &str) {
        let severity = match usage {
            Required => Severity::Error,
            Expected => Severity::Warning,
            Optional => return,
        };
        let within = if group.is_empty() {
            String::new()
        } else {
            format!(" (group {group})")
        };
        let segment = what.split('/').next().unwrap_or("").to_string();
        self.issues.push(Issue {
            segment,
            segment_index: None,
            sequence: None,
            field: None,
            component: None,
            code: ErrorCode::SegmentSequenceError,
            severity,
            reason: format!("required segment {what} is missing{within}"),
        });
    }

    fn run(&mut self, nodes: &[Node], group: &str) {
        for n in nodes {
            self.node(n, group);
        }
    }

    fn node(&mut self, n: &Node, group: &str) {
        match n {
            Seg(id, usage, rep) => {
                if self.peek() == Some(id) {
                    self.pos += 1;
                    while *rep && self.peek() == Some(id) {
                        self.pos += 1;
                    }
                } else {
                    self.missing(*usage, (*id).to_string(), group);
                }
            }
            Choice(ids, usage) => match self.peek() {
                Some(p) if ids.contains(&p) => self.pos += 1,
                _ => self.missing(*usage, ids.join("/"), group),
            },
            Group(name, children, usage, rep) => {
                if self.peek().is_some_and(|p| first_set_contains(children, p)) {
                    loop {
                        let before = self.pos;
                        self.run(children, name);
                        let again = self.peek().is_some_and(|p| first_set_contains(children, p));
                        if !*rep || self.pos == before || !again {
                            break;
                        }
                    }
                } else {
                    self.missing(*usage, first_required(children), name);
                }
            }
        }
    }
}

fn match_structure(msg: &Message<'_>, grammar: &[Node], name: &str, ctx: &mut Ctx) {
    let mut known = Vec::new();
    alphabet(grammar, &mut known);
    let mut segs = Vec::with_capacity(msg.segment_count());
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for seg in msg.segments() {
        let id = seg.id();
        let seq = match counts.iter_mut().find(|(k, _)| *k == id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                counts.push((id, 1));
                1
            }
        };
        if id.starts_with('Z') {
            continue;
        }
        if !known.contains(&id) {
            ctx.push(
                Some((&seg, seq)),
                id,
                None,
                None,
                ErrorCode::SegmentSequenceError,
                Severity::Warning,
                format!("segment {id} is not part of the {name} structure; ignored"),
            );
            continue;
        }
        segs.push((id, seg.position(), seq));
    }
    let mut m = Matcher {
        segs,
        pos: 0,
        issues: Vec::new(),
    };
    m.run(grammar, "");
    ctx.issues.append(&mut m.issues);
    if let Some(&(id, position, seq)) = m.segs.get(m.pos) {
        let rest = m.segs.len() - m.pos - 1;
        let more = if rest > 0 {
            format!(" ({rest} following segment(s) not checked)")
        } else {
            String::new()
        };
        ctx.issues.push(Issue {
            segment: id.to_string(),
            segment_index: Some(position),
            sequence: Some(seq),
            field: None,
            component: None,
            code: ErrorCode::SegmentSequenceError,
            severity: Severity::Error,
            reason: format!("segment {id} is not expected at this position in {name}{more}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(raw: &str) -> Vec<Issue> {
        validate(&Message::parse(raw.as_bytes()).unwrap())
    }
    fn errors(raw: &str) -> Vec<(String, Option<usize>, u16)> {
        issues(raw)
            .into_iter()
            .filter(Issue::is_error)
            .map(|i| (i.segment, i.field, i.code.code()))
            .collect()
    }
    const MSH: &str = "MSH|^~\\&|A|B|C|D|20250315120000||";

    #[test]
    fn ts_format() {
        for ok in [
            "2025",
            "202503",
            "20250315",
            "2025031512",
            "202503151200",
            "20250315120000",
            "20250315120000.1234",
            "20250315120000+0100",
            "20250315-0500",
        ] {
            assert!(valid_ts(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "202",
            "2025-03-15",
            "20250315120000.",
            "2025031512000",
            "20250315+01",
            "20250315.12",
            "abcd",
        ] {
            assert!(!valid_ts(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn seed_messages_are_valid() {
        let orm = format!(
            "{MSH}ORM^O01|MSG001|P|2.5\rPID|1||1234567890^^^HIS||GARCIA^PEDRO^M||19751022|M\rPV1|1|O|RADIOLOGY\rORC|NW|ORD-2025-001\rOBR|1|ORD-2025-001||72193^TC^LN\r"
        );
        assert_eq!(errors(&orm), []);
        let oru = format!(
            "{MSH}ORU^R01|RPT001|P|2.5\rPID|1||1^^^HIS||G^P\rOBR|1|ORD||72193^TC^LN\rOBX|1|TX|59380-7^Imp^LN||text||||||F\r"
        );
        assert!(issues(&oru).is_empty(), "{:?}", issues(&oru));
    }

    #[test]
    fn msh_problems() {
        let e = errors("MSH|^~\\&|A|B|C|D|2025-03-15||ORM||X|3.0\r");
        assert_eq!(
            e,
            [
                ("MSH".into(), Some(9), 101),
                ("MSH".into(), Some(10), 101),
                ("MSH".into(), Some(7), 102),
                ("MSH".into(), Some(11), 103),
                ("MSH".into(), Some(12), 203),
            ]
        );
        let w = issues("MSH|^~\\&|A|B|C|D|||ZZZ^Z01|1|P|2.5\r");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].severity, Severity::Warning);
        assert_eq!(w[0].field, Some(7));
    }

    #[test]
    fn strict_mode() {
        let m = Message::parse(b"MSH|^~\\&|A|B|C|D|20250101||ZZZ^Z01|1|P|2.5\r").unwrap();
        assert!(validate(&m).is_empty());
        let s = validate_strict(&m);
        assert_eq!(s[0].code, ErrorCode::UnsupportedMessageType);
        let m = Message::parse(b"MSH|^~\\&|A|B|C|D|20250101||ADT^A03|1|P|2.5\r").unwrap();
        assert_eq!(validate_strict(&m)[0].code, ErrorCode::UnsupportedEventCode);
    }

    #[test]
    fn structure_problems() {
        // ADT without EVN, PV1 missing.
        let e = errors(&format!("{MSH}ADT^A04|1|P|2.5\rPID|1||1||N\r"));
        assert_eq!(e, [("EVN".into(), None, 100), ("PV1".into(), None, 100)]);
        // ORM without ORC: OBR out of place.
        let e = errors(&format!("{MSH}ORM^O01|1|P|2.5\rPID|1||1||N\rOBR|1|||X\r"));
        assert_eq!(e, [("ORC".into(), None, 100), ("OBR".into(), None, 100)]);
        // ORU: OBX before OBR.
        let is = issues(&format!(
            "{MSH}ORU^R01|1|P|2.5\rPID|1||1||N\rOBX|1|TX|C||v||||||F\rOBR|1|||X\r"
        ));
        let seq: Vec<_> = is
            .iter()
            .map(|i| (i.segment.as_str(), i.segment_index))
            .collect();
        assert_eq!(seq, [("OBR", None), ("OBX", Some(3))]);
        assert!(is[1].reason.contains("1 following"), "{}", is[1].reason);
        // Z segments ignored, foreign standard segments warned.
        let is = issues(&format!(
            "{MSH}ORU^R01|1|P|2.5\rZPI|x\rPID|1||1||N\rIN1|1|A|B\rOBR|1|||X\rOBX|1|TX|C||v||||||F\rZDS|1\r"
        ));
        assert_eq!(is.len(), 1);
        assert_eq!(
            (is[0].severity, is[0].segment.as_str()),
            (Severity::Warning, "IN1")
        );
        // ORU with two patient results and repeating order observations.
        let ok = format!(
            "{MSH}ORU^R01|1|P|2.5\rPID|1||1||N\rPV1|1|O\rORC|RE\rOBR|1|||X\rNTE|1\rOBX|1|NM|C||1||||||F\rNTE|2\rOBR|2|||Y\rPID|2||2||M\rOBR|1|||Z\rSPM|1|||BLD\rOBX|1|NM|C||1||||||F\r"
        );
        assert!(issues(&ok).is_empty(), "{:?}", issues(&ok));
    }

    #[test]
    fn siu_and_ack() {
        let siu = format!(
            "{MSH}SIU^S12|1|P|2.5\rSCH|A1|||||R^Routine||||||||||DR^X||||ENT^Y\rPID|1||1||N\rRGS|1\rAIS|1||US^Ultrasound\r"
        );
        assert!(issues(&siu).is_empty(), "{:?}", issues(&siu));
        // No RGS (common) only warns; missing SCH ids is an error.
        let siu = format!("{MSH}SIU^S13|1|P|2.5\rSCH|||||||R|||||||||DR||||ENT\rAIS|1||US\r");
        let is = issues(&siu);
        assert_eq!(errors(&siu), [("SCH".into(), Some(1), 101)]);
        assert!(
            is.iter()
                .any(|i| i.segment == "RGS" && i.severity == Severity::Warning)
        );
        let e = errors(&format!("{MSH}ACK^O01^ACK|1|P|2.5\rMSA|XX\r"));
        assert_eq!(
            e,
            [("MSA".into(), Some(2), 101), ("MSA".into(), Some(1), 103)]
        );
        let e = errors(&format!("{MSH}ACK|1|P|2.3\rERR|x\r"));
        assert_eq!(e, [("MSA".into(), None, 100)]);
    }

    #[test]
    fn field_rules() {
        let e = errors(&format!(
            "{MSH}ORU^R01|1|P|2.5\rPID|1||\"\"||N\rOBR|1\rOBX|1||||value\r"
        ));
        assert_eq!(
            e,
            [
                ("PID".into(), Some(3), 101),
                ("OBR".into(), Some(4), 101),
                ("OBX".into(), Some(3), 101),
                ("OBX".into(), Some(2), 101),
            ]
        );
        let is = issues(&format!(
            "{MSH}ORU^R01|1|P|2.5\rPID|1||1||N\rPID|2||2||N\rOBR|1|||X\rOBX|1|NM|X||1||||||Q\r"
        ));
        let q = is
            .iter()
            .find(|i| i.code == ErrorCode::TableValueNotFound)
            .unwrap();
        assert_eq!(
            (q.segment_index, q.sequence, q.severity),
            (Some(5), Some(1), Severity::Warning)
        );
    }

    #[test]
    fn issue_to_error_detail() {
        let is = issues(&format!("{MSH}ORM^O01|1|P|2.5\rPID|1||1\rORC|NW\r"));
        let d = ErrorDetail::from(&is[0]);
        assert_eq!(d.code, ErrorCode::RequiredFieldMissing);
        let loc = d.location.unwrap();
        assert_eq!(
            (loc.segment.as_str(), loc.sequence, loc.field),
            ("PID", 1, Some(5))
        );
        assert!(has_errors(&is));
        assert!(is[0].to_string().contains("PID-5"));
    }

    #[test]
    fn structures() {
        assert_eq!(structure_for("ADT", "A08"), Some("ADT_A01"));
        assert_eq!(structure_for("SIU", "S15"), Some("SIU_S12"));
        assert_eq!(structure_for("SIU", "S99"), None);
        assert_eq!(structure_for("SIU", "S012"), None);
        assert_eq!(structure_for("ORU", "R30"), None);
    }
}
