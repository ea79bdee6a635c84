//! Data-driven mapping of HL7 v2 orders (ORM^O01), schedules (SIU^S12–S17) and
//! patient updates (ADT^A01/A04/A08/A28/A31) into [`WorklistAction`]s.
//!
//! A [`Mapping`] says, for every canonical field, which HL7 path(s) feed it, and holds
//! the value tables (sex, race code, order control → action …) and the routing rules
//! into device groups. Presets ship mappings as TOML files ([`crate::presets`]); an
//! integration overrides any part of one with [`Mapping::merge`]. Nothing about
//! *which* field comes from *where* is written in code: the code only knows how to
//! read each HL7 data type ([`FieldKind`]).
//!
//! # Key scheme
//!
//! `section.field`, where the section is the model struct the value lands in:
//!
//! ```toml
//! [patient]
//! family = "PID-5.1"                          # one path
//! sex = { path = "PID-8", table = "sex" }     # through a value table
//!
//! [order]
//! placer_order = ["ORC-2", "OBR-2", "SCH-1"]  # fallbacks: the first present wins
//!
//! [appointment]
//! scheduled_at = ["OBR-36", "OBR-6", "OBR-7", "ORC-9", "SCH-11.4", "AIS-4", "TQ1-7", "MSH-7"]
//!
//! [tables.sex]
//! M = "male"
//! F = "female"
//! "*" = "unknown"                             # any other value
//!
//! [[route]]
//! path = "PV1-3.1"
//! one_of = ["CARDIO", "ECG-LAB"]
//! group = "cardiology"
//! ```
//!
//! A path is a [`hl7v2::Path`]. `ORC` and `OBR` paths are read from the order group
//! being mapped (an ORM^O01 carries one ORC + OBR pair per order), every other segment
//! from its first occurrence in the message (or the `(n)`th with `SEG(n)-…`). A path to
//! a segment that a message type does not have resolves to nothing, so one fallback
//! list serves ORM and SIU alike. An empty string or list switches a field off.
//!
//! Composite fields point at the whole field; the component layout follows the HL7 data
//! type of the canonical field (see [`FieldKind`]): CX `value^^^authority^type`, CE/CWE
//! `code^text^system[^alt code^alt text^alt system]`, XCN
//! `id^family^given^middle^suffix^prefix`, XAD
//! `street^other^city^state^zip^country^type`, XTN `number^use^equipment^email^country^area^local^ext^…^unformatted`.

use std::collections::BTreeMap;
use std::fmt;

use hl7v2::ack::{ErrorDetail, ErrorLocation};
use hl7v2::{ErrorCode, Message, Path, Segment, Value};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::model::*;
use crate::time;

/// The most repetitions read from one field (PID-3 …): a message with more is rejected
/// rather than stored, as no real sender needs that many and it bloats every worklist.
pub const MAX_REPETITIONS: usize = 100;
/// The most orders (ORC groups) accepted in one ORM^O01.
pub const MAX_ORDERS: usize = 500;
/// The longest single value kept (bytes, decoded).
pub const MAX_VALUE_LEN: usize = 32 * 1024;

// ---------------------------------------------------------------------------------
// Sources and field kinds

/// Where one canonical field comes from: HL7 paths tried in order (the first that
/// yields a value wins) and an optional value table the text goes through.
///
/// In TOML: `"PID-5.1"`, `["OBR-5", "ORC-7.6"]`, or `{ path = "PID-8", table = "sex" }`
/// (`path` may be a list there too). `""` or `[]` switches the field off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub paths: Vec<String>,
    pub table: Option<String>,
    /// Only a part of the text: `{ path = "ORC-2.1", split = "-", part = "first" }`.
    pub split: Option<Split>,
    /// `paths` parsed once, not for every message (`None`: invalid, reported by
    /// [`Mapping::check`]).
    parsed: Vec<Option<Path>>,
}

impl Source {
    fn new(paths: Vec<String>, table: Option<String>) -> Self {
        let parsed = paths.iter().map(|p| p.parse().ok()).collect();
        Source {
            paths,
            table,
            split: None,
            parsed,
        }
    }

    /// A source reading these paths, no table.
    pub fn paths<I: IntoIterator<Item = S>, S: Into<String>>(paths: I) -> Self {
        Source::new(paths.into_iter().map(Into::into).collect(), None)
    }

    /// Each path with its parsed form (parsed here if `paths` was changed since).
    fn each_path(&self) -> impl Iterator<Item = (&str, Option<Path>)> {
        let fresh = self.parsed.len() == self.paths.len();
        self.paths.iter().enumerate().map(move |(i, raw)| {
            let parsed = if fresh {
                self.parsed[i].clone()
            } else {
                raw.parse().ok()
            };
            (raw.as_str(), parsed)
        })
    }

    /// The same, through a value table.
    pub fn with_table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }

    /// The paths joined for people: `OBR-5, ORC-7.6`.
    pub fn describe(&self) -> String {
        let mut s = self.paths.join(", ");
        if let Some(sp) = &self.split {
            s.push_str(&format!(
                " ({} part split at `{}`)",
                sp.part.as_str(),
                sp.separator
            ));
        }
        if let Some(t) = &self.table {
            s.push_str(&format!(" (table `{t}`)"));
        }
        s
    }
}

/// A part of a value cut at a separator (WEDA derives a task type and an activity
/// id from the two halves of its placer order number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub separator: String,
    pub part: SplitPart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPart {
    /// Before the first separator; nothing when the value has none.
    First,
    /// After the first separator; the whole value when it has none.
    Rest,
}

impl SplitPart {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitPart::First => "first",
            SplitPart::Rest => "rest",
        }
    }
}

impl Split {
    /// The part of `value` this split selects, `None` when it is empty.
    pub fn apply(&self, value: &str) -> Option<String> {
        let part = match (value.split_once(self.separator.as_str()), self.part) {
            (Some((first, _)), SplitPart::First) => first,
            (Some((_, rest)), SplitPart::Rest) => rest,
            (None, SplitPart::First) => "",
            (None, SplitPart::Rest) => value,
        };
        let part = part.trim();
        (!part.is_empty()).then(|| part.to_string())
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match (&self.table, &self.split, self.paths.as_slice()) {
            (None, None, [one]) => s.serialize_str(one),
            (None, None, many) => many.serialize(s),
            (table, split, paths) => {
                let mut m = s.serialize_map(None)?;
                match paths {
                    [one] => m.serialize_entry("path", one)?,
                    many => m.serialize_entry("path", many)?,
                }
                if let Some(sp) = split {
                    m.serialize_entry("split", &sp.separator)?;
                    m.serialize_entry("part", sp.part.as_str())?;
                }
                if let Some(t) = table {
                    m.serialize_entry("table", t)?;
                }
                m.end()
            }
        }
    }
}

fn one_path(p: String) -> Vec<String> {
    if p.trim().is_empty() {
        Vec::new()
    } else {
        vec![p]
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an HL7 path (\"PID-5.1\"), a list of paths, or { path = …, table = \"…\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Source, E> {
                Ok(Source::new(one_path(v.to_string()), None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Source, A::Error> {
                let mut paths = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    paths.extend(one_path(p));
                }
                Ok(Source::new(paths, None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum OneOrMany {
                    One(String),
                    Many(Vec<String>),
                }
                let (mut paths, mut table) = (Vec::new(), None);
                let (mut separator, mut part): (Option<String>, Option<String>) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "path" => {
                            paths = match map.next_value::<OneOrMany>()? {
                                OneOrMany::One(p) => one_path(p),
                                OneOrMany::Many(ps) => ps.into_iter().flat_map(one_path).collect(),
                            }
                        }
                        "table" => {
                            let t: String = map.next_value()?;
                            table = (!t.trim().is_empty()).then_some(t);
                        }
                        "split" => separator = Some(map.next_value()?),
                        "part" => part = Some(map.next_value()?),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["path", "table", "split", "part"],
                            ));
                        }
                    }
                }
                let mut src = Source::new(paths, table);
                src.split = match (separator, part) {
                    (None, None) => None,
                    (Some(sep), part) if !sep.is_empty() => Some(Split {
                        separator: sep,
                        part: match part.as_deref() {
                            None | Some("first") => SplitPart::First,
                            Some("rest") => SplitPart::Rest,
                            Some(other) => {
                                return Err(de::Error::custom(format!(
                                    "part must be \"first\" or \"rest\", not {other:?}"
                                )));
                            }
                        },
                    }),
                    _ => {
                        return Err(de::Error::custom(
                            "`part` needs a non-empty `split` separator",
                        ));
                    }
                };
                Ok(src)
            }
        }
        d.deserialize_any(V)
    }
}

/// How a field's value is read: the HL7 data type of the canonical field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// ST/ID/IS (or the first component/sub-component of anything): decoded text.
    Text,
    /// The first repetition as sent, components still joined by `^` (decoded).
    AsSent,
    /// DT/DTM (first component of TS) → ISO 8601 date.
    Date,
    /// DTM (first component of TS) → ISO 8601 date-time.
    DateTime,
    /// CE/CWE → [`Coded`].
    Coded,
    /// CX, first repetition with a value → [`Identifier`].
    Identifier,
    /// CX, every repetition → `Vec<Identifier>`.
    Identifiers,
    /// XCN, first repetition → [`Provider`].
    Provider,
    /// XAD, first repetition → [`Address`].
    Address,
    /// XTN: the first repetition with a telephone number.
    Phone,
    /// XTN: the first repetition with an e-mail address.
    Email,
}

impl FieldKind {
    /// The HL7 data type name(s), for documentation.
    pub fn hl7_type(self) -> &'static str {
        match self {
            FieldKind::Text => "ST/ID/IS",
            FieldKind::AsSent => "as sent",
            FieldKind::Date => "DT/DTM",
            FieldKind::DateTime => "DTM/TS",
            FieldKind::Coded => "CE/CWE",
            FieldKind::Identifier => "CX",
            FieldKind::Identifiers => "CX (all repetitions)",
            FieldKind::Provider => "XCN",
            FieldKind::Address => "XAD",
            FieldKind::Phone => "XTN (phone)",
            FieldKind::Email => "XTN (e-mail)",
        }
    }
}

macro_rules! section {
    ($(#[$meta:meta])* $name:ident, $section:literal { $( $(#[$fmeta:meta])* $field:ident : $kind:ident ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* #[serde(skip_serializing_if = "Option::is_none")] pub $field: Option<Source>, )*
        }

        impl $name {
            /// The section name in TOML.
            pub const SECTION: &'static str = $section;
            /// Every key of the section with the data type it is read as.
            pub const FIELDS: &'static [(&'static str, FieldKind)] =
                &[ $( (stringify!($field), FieldKind::$kind) ),* ];

            fn merge(&mut self, o: &Self) {
                $( if o.$field.is_some() { self.$field = o.$field.clone(); } )*
            }

            /// `(key, kind, source)` for every key, in declaration order.
            pub fn entries(&self) -> Vec<(&'static str, FieldKind, Option<&Source>)> {
                vec![ $( (stringify!($field), FieldKind::$kind, self.$field.as_ref()) ),* ]
            }
        }
    };
}

section!(
    /// `[patient]`: PID into [`Patient`].
    PatientFields, "patient" {
        identifiers: Identifiers,
        family: Text,
        given: Text,
        middle: Text,
        suffix: Text,
        prefix: Text,
        birth_date: Date,
        sex: Text,
        race: Coded,
        race_code: Text,
        language: Text,
        address: Address,
        phone: Phone,
        email: Email,
    }
);

section!(
    /// `[visit]`: PV1 into [`Visit`].
    VisitFields, "visit" {
        class: Text,
        location: AsSent,
        admission_type: Text,
        attending: Provider,
        service: Text,
        visit_number: Identifier,
        admit_at: DateTime,
        discharge_at: DateTime,
    }
);

section!(
    /// `[order]`: MSH/ORC/OBR (ORM) or SCH/AIS/TQ1 (SIU) into [`Order`].
    OrderFields, "order" {
        request_date: DateTime,
        control: Text,
        placer_order: Text,
        filler_order: Text,
        group_number: Text,
        status: Text,
        response_flag: Text,
        timing: AsSent,
        transaction_at: DateTime,
        entered_by: Provider,
        verified_by: Provider,
        ordering_provider: Provider,
        callback_phone: Phone,
        effective_at: DateTime,
        procedure: Coded,
        priority: Text,
        requested_at: DateTime,
        observation_at: DateTime,
        obr_ordering_provider: Provider,
        diagnostic_section: Text,
        timing_block: AsSent,
        technician: AsSent,
        scheduled_at: DateTime,
        procedure_code: Coded,
        task_type: Text,
        activity_id: Text,
    }
);

section!(
    /// `[appointment]`: the worklist item's own fields.
    AppointmentFields, "appointment" {
        scheduled_at: DateTime,
        cancel_reason: Text,
    }
);

/// `[oru]`: defaults for the ORU^R01 sent back (MSH-3..6, MSH-11, MSH-12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OruSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending_facility: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiving_facility: Option<String>,
    /// MSH-12, default `2.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// MSH-11, default `P`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_id: Option<String>,
}

impl OruSettings {
    const KEYS: &'static [&'static str] = &[
        "sending_application",
        "sending_facility",
        "receiving_application",
        "receiving_facility",
        "version",
        "processing_id",
    ];

    fn merge(&mut self, o: &Self) {
        let pairs = [
            (&mut self.sending_application, &o.sending_application),
            (&mut self.sending_facility, &o.sending_facility),
            (&mut self.receiving_application, &o.receiving_application),
            (&mut self.receiving_facility, &o.receiving_facility),
            (&mut self.version, &o.version),
            (&mut self.processing_id, &o.processing_id),
        ];
        for (mine, theirs) in pairs {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
    }
}

/// A `[[route]]` rule: when the text at `path` equals `equals` (or one of `one_of`),
/// ignoring ASCII case, the order goes to `group`. The first matching rule wins; with
/// none, the integration's group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
    pub group: String,
}

impl Route {
    fn matches(&self, value: &str) -> bool {
        self.equals
            .iter()
            .chain(self.one_of.iter())
            .any(|v| v.eq_ignore_ascii_case(value))
    }
}

/// Table names the mapper itself consults (besides those named by a field's `table`).
pub mod tables {
    /// ORC-1 → `create` | `update` | `cancel` | `ignore`.
    pub const ORDER_CONTROL: &str = "order_control";
    /// SIU trigger (MSH-9.2) → `create` | `update` | `cancel` | `ignore`.
    pub const SIU_EVENT: &str = "siu_event";
    /// ADT trigger (MSH-9.2) → `upsert` | `ignore`.
    pub const ADT_EVENT: &str = "adt_event";
    /// Key matching any value not listed in a table.
    pub const ANY: &str = "*";
}

/// A whole mapping: what every canonical field is read from, value tables, routes and
/// the ORU defaults. A preset's mapping is complete; an integration's override sets only
/// what it changes (every part is optional).
///
/// Deserializes from a TOML table with every key checked: an unknown section or key is
/// an error naming it (`patient.famly`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct Mapping {
    pub patient: PatientFields,
    pub visit: VisitFields,
    pub order: OrderFields,
    pub appointment: AppointmentFields,
    /// `[tables.<name>]`: value → mapped value. `"*"` matches anything else; an empty
    /// mapped value means "no value".
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    /// `[[route]]` rules, tried in order.
    #[serde(rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(skip_serializing_if = "is_default")]
    pub oru: OruSettings,
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// A problem in a mapping (preset file or integration override).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "unknown mapping section `{0}` (known: patient, visit, order, appointment, tables, route, oru)"
    )]
    UnknownSection(String),
    #[error("unknown mapping key `{key}` (known in [{section}]: {known})")]
    UnknownKey {
        key: String,
        section: String,
        known: String,
    },
    #[error("mapping `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error("mapping `{key}`: `{path}` is not a valid HL7 path: {reason}")]
    BadPath {
        key: String,
        path: String,
        reason: String,
    },
    #[error("mapping `{key}`: table `{table}` is not defined")]
    UnknownTable { key: String, table: String },
}

fn section_keys<T>(fields: &[(&'static str, T)]) -> Vec<&'static str> {
    fields.iter().map(|(k, _)| *k).collect()
}

fn check_keys(section: &str, table: &toml::Table, known: &[&str]) -> Result<(), MappingError> {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            return Err(MappingError::UnknownKey {
                key: format!("{section}.{key}"),
                section: section.to_string(),
                known: known.join(", "),
            });
        }
    }
    Ok(())
}

fn as_table<'t>(key: &str, v: &'t toml::Value) -> Result<&'t toml::Table, MappingError> {
    v.as_table().ok_or_else(|| MappingError::Invalid {
        key: key.to_string(),
        reason: format!("expected a table, found {}", v.type_str()),
    })
}

fn parse_section<T: serde::de::DeserializeOwned>(
    section: &str,
    v: &toml::Value,
    known: &[&str],
) -> Result<T, MappingError> {
    let t = as_table(section, v)?;
    check_keys(section, t, known)?;
    // Each value on its own first, so a bad one is reported with its full key.
    if section != "oru" {
        for (k, val) in t {
            Source::deserialize(val.clone()).map_err(|e| MappingError::Invalid {
                key: format!("{section}.{k}"),
                reason: e.to_string(),
            })?;
        }
    }
    T::deserialize(toml::Value::Table(t.clone())).map_err(|e| MappingError::Invalid {
        key: section.to_string(),
        reason: e.to_string(),
    })
}

impl TryFrom<toml::Table> for Mapping {
    type Error = MappingError;
    fn try_from(t: toml::Table) -> Result<Self, MappingError> {
        Mapping::from_table(&t)
    }
}

impl Mapping {
    /// Reads a mapping (complete or partial) from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Mapping, MappingError> {
        let t: toml::Table = toml::from_str(text).map_err(|e| MappingError::Invalid {
            key: "(toml)".into(),
            reason: e.to_string(),
        })?;
        Mapping::from_table(&t)
    }

    /// Reads a mapping (complete or partial) from a TOML table, e.g. an integration's
    /// `[integration.mapping]`. Unknown sections and keys are errors.
    pub fn from_table(t: &toml::Table) -> Result<Mapping, MappingError> {
        let mut m = Mapping::default();
        for (section, v) in t {
            match section.as_str() {
                "patient" => {
                    m.patient = parse_section(section, v, &section_keys(PatientFields::FIELDS))?
                }
                "visit" => m.visit = parse_section(section, v, &section_keys(VisitFields::FIELDS))?,
                "order" => m.order = parse_section(section, v, &section_keys(OrderFields::FIELDS))?,
                "appointment" => {
                    m.appointment =
                        parse_section(section, v, &section_keys(AppointmentFields::FIELDS))?
                }
                "oru" => m.oru = parse_section(section, v, OruSettings::KEYS)?,
                "tables" => {
                    for (name, tv) in as_table("tables", v)? {
                        let key = format!("tables.{name}");
                        let mut entries = BTreeMap::new();
                        for (from, to) in as_table(&key, tv)? {
                            let to = to.as_str().ok_or_else(|| MappingError::Invalid {
                                key: format!("{key}.{from}"),
                                reason: format!("expected a string, found {}", to.type_str()),
                            })?;
                            entries.insert(from.clone(), to.to_string());
                        }
                        m.tables.insert(name.clone(), entries);
                    }
                }
                "route" => {
                    let list = v.as_array().ok_or_else(|| MappingError::Invalid {
                        key: "route".into(),
                        reason: "expected [[route]] entries".into(),
                    })?;
                    for (i, r) in list.iter().enumerate() {
                        let route =
                            Route::deserialize(r.clone()).map_err(|e| MappingError::Invalid {
                                key: format!("route[{}]", i + 1),
                                reason: e.to_string(),
                            })?;
                        m.routes.push(route);
                    }
                }
                other => return Err(MappingError::UnknownSection(other.to_string())),
            }
        }
        Ok(m)
    }

    /// Applies an override: every field, table entry and ORU setting it sets replaces
    /// this one's; its `[[route]]` list, when not empty, replaces this one's.
    pub fn merge(&mut self, o: &Mapping) {
        self.patient.merge(&o.patient);
        self.visit.merge(&o.visit);
        self.order.merge(&o.order);
        self.appointment.merge(&o.appointment);
        for (name, entries) in &o.tables {
            let mine = self.tables.entry(name.clone()).or_default();
            for (k, v) in entries {
                mine.insert(k.clone(), v.clone());
            }
        }
        if !o.routes.is_empty() {
            self.routes.clone_from(&o.routes);
        }
        self.oru.merge(&o.oru);
    }

    /// [`merge`](Mapping::merge) of an override given as TOML (an integration's
    /// `[integration.mapping]` table).
    pub fn merge_table(&mut self, overrides: &toml::Table) -> Result<(), MappingError> {
        self.merge(&Mapping::from_table(overrides)?);
        Ok(())
    }

    /// Every field key (`patient.family` …) with its kind and source, in the
    /// documented order.
    pub fn entries(&self) -> Vec<(String, FieldKind, Option<&Source>)> {
        let mut out = Vec::new();
        let sections = [
            (PatientFields::SECTION, self.patient.entries()),
            (VisitFields::SECTION, self.visit.entries()),
            (OrderFields::SECTION, self.order.entries()),
            (AppointmentFields::SECTION, self.appointment.entries()),
        ];
        for (section, entries) in sections {
            for (k, kind, src) in entries {
                out.push((format!("{section}.{k}"), kind, src));
            }
        }
        out
    }

    /// Checks that every path parses, every table a field names exists, the action
    /// tables hold known actions and every route is complete. Returns all problems.
    pub fn check(&self) -> Result<(), Vec<MappingError>> {
        let mut errors = Vec::new();
        let bad_path = |key: &str, p: &str| -> Option<MappingError> {
            p.parse::<Path>().err().map(|e| MappingError::BadPath {
                key: key.to_string(),
                path: p.to_string(),
                reason: e.to_string(),
            })
        };
        for (key, _, src) in self.entries() {
            let Some(src) = src else { continue };
            errors.extend(src.paths.iter().filter_map(|p| bad_path(&key, p)));
            if let Some(t) = &src.table
                && !self.tables.contains_key(t)
            {
                errors.push(MappingError::UnknownTable {
                    key: key.clone(),
                    table: t.clone(),
                });
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("route[{}]", i + 1);
            errors.extend(bad_path(&key, &r.path));
            if r.equals.is_none() && r.one_of.is_empty() {
                errors.push(MappingError::Invalid {
                    key: key.clone(),
                    reason: "needs `equals` or `one_of`".into(),
                });
            }
            if r.group.trim().is_empty() {
                errors.push(MappingError::Invalid {
                    key,
                    reason: "`group` is empty".into(),
                });
            }
        }
        let actions: [(&str, &[&str]); 3] = [
            (
                tables::ORDER_CONTROL,
                &["create", "update", "cancel", "ignore"],
            ),
            (tables::SIU_EVENT, &["create", "update", "cancel", "ignore"]),
            (tables::ADT_EVENT, &["upsert", "ignore"]),
        ];
        for (table, allowed) in actions {
            for (k, v) in self.tables.get(table).into_iter().flatten() {
                if !allowed.contains(&v.as_str()) {
                    errors.push(MappingError::Invalid {
                        key: format!("tables.{table}.{k}"),
                        reason: format!("`{v}` is not one of {}", allowed.join(", ")),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Looks a value up in a table: exact key, then ASCII case-insensitive, then `"*"`.
    /// `None` when the table is missing, nothing matches, or the mapped value is empty.
    pub fn lookup(&self, table: &str, value: &str) -> Option<String> {
        let t = self.tables.get(table)?;
        let hit = t
            .get(value)
            .or_else(|| {
                t.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(value))
                    .map(|(_, v)| v)
            })
            .or_else(|| t.get(tables::ANY))?;
        (!hit.is_empty()).then(|| hit.clone())
    }
}

// ---------------------------------------------------------------------------------
// Errors

/// Why a message could not be mapped. The engine answers it with AE (AR for
/// [`MapError::Unsupported`]) and an ERR built by [`MapError::to_error_detail`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A message type/trigger this mapping does not handle (`ADT^A03`, `ORU^R01` …).
    #[error("unsupported message type {0}")]
    Unsupported(String),
    /// A required segment or field is absent.
    #[error("{}: {reason}", path.as_deref().unwrap_or("message"))]
    Missing {
        path: Option<String>,
        reason: String,
    },
    /// A value is malformed (a date that is not a date, too many repetitions …).
    #[error("{}: {reason}", path.as_deref().unwrap_or("message"))]
    Invalid {
        path: Option<String>,
        reason: String,
    },
    /// A coded value the mapping's table does not know (an ORC-1 order control …).
    #[error("{}: {reason}", path.as_deref().unwrap_or("message"))]
    UnknownCode {
        path: Option<String>,
        reason: String,
    },
    /// The mapping itself is broken (a path that does not parse); `check` catches it.
    #[error("mapping error at {}: {reason}", path.as_deref().unwrap_or("?"))]
    Mapping {
        path: Option<String>,
        reason: String,
    },
}

impl MapError {
    pub(crate) fn missing(path: impl Into<String>, reason: impl Into<String>) -> Self {
        MapError::Missing {
            path: Some(path.into()),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        MapError::Invalid {
            path: Some(path.into()),
            reason: reason.into(),
        }
    }

    /// The HL7 path the problem is at (`PID-3`, `ORC(2)-1`, `MSH-9` …).
    pub fn path(&self) -> Option<&str> {
        match self {
            MapError::Unsupported(_) => Some("MSH-9"),
            MapError::Missing { path, .. }
            | MapError::Invalid { path, .. }
            | MapError::UnknownCode { path, .. }
            | MapError::Mapping { path, .. } => path.as_deref(),
        }
    }

    /// The readable reason (without the path).
    pub fn reason(&self) -> String {
        match self {
            MapError::Unsupported(t) => format!("unsupported message type {t}"),
            MapError::Missing { reason, .. }
            | MapError::Invalid { reason, .. }
            | MapError::UnknownCode { reason, .. }
            | MapError::Mapping { reason, .. } => reason.clone(),
        }
    }

    /// The HL7 table 0357 code for the ERR segment.
    pub fn code(&self) -> ErrorCode {
        match self {
            MapError::Unsupported(t) => {
                let known = ["ADT", "ORM", "SIU"]
                    .iter()
                    .any(|k| t.split('^').next() == Some(k));
                if known {
                    ErrorCode::UnsupportedEventCode
                } else {
                    ErrorCode::UnsupportedMessageType
                }
            }
            MapError::Missing { .. } => ErrorCode::RequiredFieldMissing,
            MapError::Invalid { .. } => ErrorCode::DataTypeError,
            MapError::UnknownCode { .. } => ErrorCode::TableValueNotFound,
            MapError::Mapping { .. } => ErrorCode::ApplicationInternalError,
        }
    }

    /// True when the engine should reject (AR) rather than error (AE): the message is
    /// of a kind this integration never processes.
    pub fn is_reject(&self) -> bool {
        matches!(self, MapError::Unsupported(_))
    }

    /// The ERR entry for an ACK, located at the path when it names a field.
    pub fn to_error_detail(&self) -> ErrorDetail {
        let mut d = ErrorDetail::new(self.code(), self.reason());
        if let Some(p) = self.path() {
            d.location = Some(match p.parse::<Path>() {
                Ok(path) => ErrorLocation::from(&path),
                // A bare segment id ("PID") when the whole segment is missing.
                Err(_) => ErrorLocation::segment(p.get(..3).unwrap_or(p), 1),
            });
        }
        d
    }
}

impl From<&MapError> for ErrorDetail {
    fn from(e: &MapError) -> Self {
        e.to_error_detail()
    }
}

impl From<MapError> for ErrorDetail {
    fn from(e: MapError) -> Self {
        e.to_error_detail()
    }
}

// ---------------------------------------------------------------------------------
// Mapping a message

/// Who the message is mapped for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContext {
    /// The integration's name (part of every [`OrderKey`]).
    pub integration: String,
    /// The integration's device group: where orders go unless a route says otherwise.
    pub group: String,
    /// The organisation everything belongs to.
    pub org: String,
}

/// Segments read from the order group being mapped rather than from the message.
const GROUP_SEGMENTS: [&str; 2] = ["ORC", "OBR"];

/// One ORC and its OBR, with their occurrence numbers (for error locations).
#[derive(Debug, Clone, Default)]
struct OrderGroup<'a> {
    orc: Option<(Segment<'a>, usize)>,
    obr: Option<(Segment<'a>, usize)>,
}

// Only references: copied per order group.
#[derive(Clone, Copy)]
struct Reader<'m, 'a> {
    msg: &'m Message<'a>,
    mapping: &'m Mapping,
    group: Option<&'m OrderGroup<'a>>,
}

/// A value found at a path, with the path as it locates the value in this message.
struct Found<'a> {
    value: Value<'a>,
    path: Path,
    /// Where the value is in this message; formatted only for an error report.
    located: Path,
}

impl Found<'_> {
    fn at(&self) -> String {
        self.located.to_string()
    }
}

impl<'a> Reader<'_, 'a> {
    fn resolve(&self, raw_path: &str) -> Result<Option<Found<'a>>, MapError> {
        let path: Path = raw_path.parse().map_err(|e| MapError::Mapping {
            path: Some(raw_path.to_string()),
            reason: format!("invalid path: {e}"),
        })?;
        self.resolve_parsed(path)
    }

    fn resolve_parsed(&self, path: Path) -> Result<Option<Found<'a>>, MapError> {
        let in_group = GROUP_SEGMENTS.contains(&path.segment());
        let (value, located) = match (in_group, self.group) {
            (true, Some(g)) => {
                let slot = if path.segment() == "ORC" {
                    &g.orc
                } else {
                    &g.obr
                };
                let Some((seg, occ)) = slot else {
                    return Ok(None);
                };
                (seg.get_path(&path), path.clone().with_segment_index(*occ))
            }
            _ => (self.msg.get_path(&path), path.clone()),
        };
        Ok(value.map(|value| Found {
            value,
            path,
            located,
        }))
    }

    /// A mapping path as it locates a value in this message (`ORC(2)-1` for the
    /// second order group), for error reports even when the position is absent.
    fn locate(&self, raw_path: &str) -> String {
        let Ok(path) = raw_path.parse::<Path>() else {
            return raw_path.to_string();
        };
        match self.group {
            Some(g) if GROUP_SEGMENTS.contains(&path.segment()) => {
                let slot = if path.segment() == "ORC" {
                    &g.orc
                } else {
                    &g.obr
                };
                match slot {
                    Some((_, occ)) => path.with_segment_index(*occ).to_string(),
                    None => path.to_string(),
                }
            }
            _ => path.to_string(),
        }
    }

    fn segment_present(&self, raw_path: &str) -> bool {
        let Ok(path) = raw_path.parse::<Path>() else {
            return false;
        };
        match self.group {
            Some(g) if GROUP_SEGMENTS.contains(&path.segment()) => {
                if path.segment() == "ORC" {
                    g.orc.is_some()
                } else {
                    g.obr.is_some()
                }
            }
            _ => self
                .msg
                .segment(path.segment(), path.segment_index())
                .is_some(),
        }
    }

    fn text_of(&self, v: &Value<'a>) -> Option<String> {
        let t = self.msg.text(v);
        let t = t.trim();
        (!t.is_empty() && t != "\"\"").then(|| t.to_string())
    }

    /// Text of component `n` (its first sub-component) of a repetition.
    fn comp(&self, rep: &Value<'a>, n: usize) -> Option<String> {
        self.text_of(&rep.component(n)?.subcomponent(1)?)
    }

    /// HD: namespace id, else universal id.
    fn hd(&self, rep: &Value<'a>, n: usize) -> Option<String> {
        let c = rep.component(n)?;
        self.text_of(&c.subcomponent(1)?)
            .or_else(|| c.subcomponent(2).and_then(|s| self.text_of(&s)))
    }

    /// The repetitions a composite path points at (one when it names a repetition or
    /// component), at most [`MAX_REPETITIONS`].
    fn reps(&self, f: &Found<'a>) -> Result<impl Iterator<Item = Value<'a>> + use<'a>, MapError> {
        let single = f.path.repetition().is_some() || f.path.component().is_some();
        if !single && f.value.repetitions().nth(MAX_REPETITIONS).is_some() {
            return Err(MapError::invalid(
                f.at(),
                format!("more than {MAX_REPETITIONS} repetitions"),
            ));
        }
        // Counted above rather than collected: most fields have one repetition.
        let (one, many) = if single {
            (Some(f.value), None)
        } else {
            (None, Some(f.value.repetitions()))
        };
        Ok(one.into_iter().chain(many.into_iter().flatten()))
    }

    fn check_len(&self, f: &Found<'a>, s: String) -> Result<String, MapError> {
        if s.len() > MAX_VALUE_LEN {
            return Err(MapError::invalid(
                f.at(),
                format!("value longer than {MAX_VALUE_LEN} bytes"),
            ));
        }
        Ok(s)
    }

    fn text(&self, f: &Found<'a>) -> Result<Option<String>, MapError> {
        let v = if f.path.subcomponent().is_some() {
            Some(f.value)
        } else {
            // First repetition, first component, first sub-component as the level needs.
            f.value.subcomponent(1)
        };
        v.and_then(|v| self.text_of(&v))
            .map(|s| self.check_len(f, s))
            .transpose()
    }

    fn as_sent(&self, f: &Found<'a>) -> Result<Option<String>, MapError> {
        let v = if f.path.repetition().is_none() && f.path.component().is_none() {
            f.value.repetition(1)
        } else {
            Some(f.value)
        };
        let s = v.and_then(|v| self.text_of(&v)).map(|s| {
            // Trailing empty components carry nothing.
            s.trim_end_matches(['^', '&']).to_string()
        });
        s.filter(|s| !s.is_empty())
            .map(|s| self.check_len(f, s))
            .transpose()
    }

    fn coded(&self, rep: &Value<'a>) -> Option<Coded> {
        let (code, display, system) = match self.comp(rep, 1) {
            Some(code) => (code, self.comp(rep, 2), self.comp(rep, 3)),
            // CE alternate triplet when the primary one is empty.
            None => (self.comp(rep, 4)?, self.comp(rep, 5), self.comp(rep, 6)),
        };
        Some(Coded {
            code,
            display,
            system,
        })
    }

    fn identifier(&self, rep: &Value<'a>) -> Option<Identifier> {
        Some(Identifier {
            value: self.comp(rep, 1)?,
            system: self.hd(rep, 4),
            kind: self.comp(rep, 5),
        })
    }

    fn provider(&self, rep: &Value<'a>) -> Option<Provider> {
        let p = Provider {
            id: self.comp(rep, 1),
            family: self.comp(rep, 2),
            given: [3, 4].iter().filter_map(|n| self.comp(rep, *n)).collect(),
            prefix: self.comp(rep, 6),
        };
        (p != Provider::default()).then_some(p)
    }

    fn address(&self, rep: &Value<'a>) -> Option<Address> {
        let a = Address {
            street: self.comp(rep, 1),
            other: self.comp(rep, 2),
            city: self.comp(rep, 3),
            state: self.comp(rep, 4),
            postal_code: self.comp(rep, 5),
            country: self.comp(rep, 6),
            kind: self.comp(rep, 7),
        };
        (a != Address::default()).then_some(a)
    }

    /// XTN-2 `NET` / XTN-3 `Internet`/`X.400` mark an e-mail repetition; some senders
    /// put the address in XTN-1 there.
    fn is_email_rep(&self, rep: &Value<'a>) -> bool {
        self.comp(rep, 2)
            .is_some_and(|u| u.eq_ignore_ascii_case("NET"))
            || self.comp(rep, 3).is_some_and(|e| {
                e.eq_ignore_ascii_case("Internet") || e.eq_ignore_ascii_case("X.400")
            })
    }

    fn phone(&self, rep: &Value<'a>) -> Option<String> {
        if self.is_email_rep(rep) {
            return None;
        }
        if let Some(n) = self.comp(rep, 1).or_else(|| self.comp(rep, 12)) {
            return Some(n);
        }
        let local = self.comp(rep, 7)?;
        let mut parts: Vec<String> = Vec::new();
        parts.extend(
            self.comp(rep, 5)
                .map(|c| format!("+{}", c.trim_start_matches('+'))),
        );
        parts.extend(self.comp(rep, 6));
        parts.push(local);
        parts.extend(self.comp(rep, 8).map(|x| format!("x{x}")));
        Some(parts.join(" "))
    }

    fn email(&self, rep: &Value<'a>) -> Option<String> {
        self.comp(rep, 4).or_else(|| {
            if self.is_email_rep(rep) {
                self.comp(rep, 1)
            } else {
                None
            }
        })
    }

    fn first_rep<T>(
        &self,
        f: &Found<'a>,
        read: impl Fn(&Self, &Value<'a>) -> Option<T>,
    ) -> Result<Option<T>, MapError> {
        Ok(self.reps(f)?.find_map(|r| read(self, &r)))
    }

    /// The first path of `src` that yields a value, read with `read`.
    fn first<T>(
        &self,
        src: Option<&Source>,
        read: impl Fn(&Self, &Found<'a>) -> Result<Option<T>, MapError>,
    ) -> Result<Option<T>, MapError> {
        let Some(src) = src else { return Ok(None) };
        for (raw, parsed) in src.each_path() {
            let found = match parsed {
                Some(path) => self.resolve_parsed(path)?,
                None => self.resolve(raw)?,
            };
            if let Some(f) = found
                && let Some(v) = read(self, &f)?
            {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn get_text(&self, src: Option<&Source>) -> Result<Option<String>, MapError> {
        let mut v = self.first(src, Self::text)?;
        if let (Some(text), Some(split)) = (&v, src.and_then(|s| s.split.as_ref())) {
            v = split.apply(text);
        }
        Ok(match (v, src.and_then(|s| s.table.as_deref())) {
            (Some(v), Some(table)) => self.mapping.lookup(table, &v),
            (v, _) => v,
        })
    }

    fn get_as_sent(&self, src: Option<&Source>) -> Result<Option<String>, MapError> {
        self.first(src, Self::as_sent)
    }

    fn get_time(&self, src: Option<&Source>, date_only: bool) -> Result<Option<String>, MapError> {
        self.first(src, |r, f| {
            let Some(t) = r.text(f)? else { return Ok(None) };
            let iso = if date_only {
                time::hl7_to_iso_date(&t)
            } else {
                time::hl7_to_iso(&t)
            };
            iso.map(Some).ok_or_else(|| {
                MapError::invalid(
                    f.at(),
                    format!(
                        "`{}` is not an HL7 {}",
                        t.chars().take(40).collect::<String>(),
                        if date_only { "date" } else { "date/time" }
                    ),
                )
            })
        })
    }

    fn get_coded(&self, src: Option<&Source>) -> Result<Option<Coded>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::coded))
    }

    fn get_identifier(&self, src: Option<&Source>) -> Result<Option<Identifier>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::identifier))
    }

    fn get_identifiers(&self, src: Option<&Source>) -> Result<Vec<Identifier>, MapError> {
        Ok(self
            .first(src, |r, f| {
                let ids: Vec<Identifier> =
                    r.reps(f)?.filter_map(|rep| r.identifier(&rep)).collect();
                Ok((!ids.is_empty()).then_some(ids))
            })?
            .unwrap_or_default())
    }

    fn get_provider(&self, src: Option<&Source>) -> Result<Option<Provider>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::provider))
    }

    fn get_address(&self, src: Option<&Source>) -> Result<Option<Address>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::address))
    }

    fn get_phone(&self, src: Option<&Source>) -> Result<Option<String>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::phone))
    }

    fn get_email(&self, src: Option<&Source>) -> Result<Option<String>, MapError> {
        self.first(src, |r, f| r.first_rep(f, Self::email))
    }

    fn patient(&self) -> Result<Patient, MapError> {
        let m = &self.mapping.patient;
        let mut given: Vec<String> = Vec::new();
        given.extend(self.get_text(m.given.as_ref())?);
        given.extend(self.get_text(m.middle.as_ref())?);
        let race = self.get_coded(m.race.as_ref())?;
        Ok(Patient {
            id: String::new(),
            identifiers: self.get_identifiers(m.identifiers.as_ref())?,
            family: self.get_text(m.family.as_ref())?,
            given,
            suffix: self.get_text(m.suffix.as_ref())?,
            prefix: self.get_text(m.prefix.as_ref())?,
            birth_date: self.get_time(m.birth_date.as_ref(), true)?,
            sex: self.get_text(m.sex.as_ref())?,
            race_code: self.get_text(m.race_code.as_ref())?,
            race,
            language: self.get_text(m.language.as_ref())?,
            address: self.get_address(m.address.as_ref())?,
            phone: self.get_phone(m.phone.as_ref())?,
            email: self.get_email(m.email.as_ref())?,
        })
    }

    /// The patient, which must be there with at least one identifier.
    fn required_patient(&self) -> Result<Patient, MapError> {
        if self.msg.segment("PID", 1).is_none() {
            return Err(MapError::missing("PID", "PID segment missing"));
        }
        let p = self.patient()?;
        if p.identifiers.is_empty() {
            let at = self
                .mapping
                .patient
                .identifiers
                .as_ref()
                .and_then(|s| s.paths.first().cloned())
                .unwrap_or_else(|| "PID-3".into());
            return Err(MapError::missing(
                at,
                "patient identifier missing: the patient cannot be matched",
            ));
        }
        Ok(p)
    }

    fn visit(&self) -> Result<Visit, MapError> {
        let m = &self.mapping.visit;
        Ok(Visit {
            class: self.get_text(m.class.as_ref())?,
            location: self.get_as_sent(m.location.as_ref())?,
            admission_type: self.get_text(m.admission_type.as_ref())?,
            attending: self.get_provider(m.attending.as_ref())?,
            service: self.get_text(m.service.as_ref())?,
            visit_number: self.get_identifier(m.visit_number.as_ref())?,
            admit_at: self.get_time(m.admit_at.as_ref(), false)?,
            discharge_at: self.get_time(m.discharge_at.as_ref(), false)?,
        })
    }

    fn order(&self) -> Result<Order, MapError> {
        let m = &self.mapping.order;
        Ok(Order {
            request_date: self.get_time(m.request_date.as_ref(), false)?,
            control: self.get_text(m.control.as_ref())?,
            placer_order: self.get_text(m.placer_order.as_ref())?,
            filler_order: self.get_text(m.filler_order.as_ref())?,
            group_number: self.get_text(m.group_number.as_ref())?,
            status: self.get_text(m.status.as_ref())?,
            response_flag: self.get_text(m.response_flag.as_ref())?,
            timing: self.get_as_sent(m.timing.as_ref())?,
            transaction_at: self.get_time(m.transaction_at.as_ref(), false)?,
            entered_by: self.get_provider(m.entered_by.as_ref())?,
            verified_by: self.get_provider(m.verified_by.as_ref())?,
            ordering_provider: self.get_provider(m.ordering_provider.as_ref())?,
            callback_phone: self.get_phone(m.callback_phone.as_ref())?,
            effective_at: self.get_time(m.effective_at.as_ref(), false)?,
            procedure: self.get_coded(m.procedure.as_ref())?,
            priority: self.get_text(m.priority.as_ref())?,
            requested_at: self.get_time(m.requested_at.as_ref(), false)?,
            observation_at: self.get_time(m.observation_at.as_ref(), false)?,
            obr_ordering_provider: self.get_provider(m.obr_ordering_provider.as_ref())?,
            diagnostic_section: self.get_text(m.diagnostic_section.as_ref())?,
            timing_block: self.get_as_sent(m.timing_block.as_ref())?,
            technician: self.get_as_sent(m.technician.as_ref())?,
            scheduled_at: self.get_time(m.scheduled_at.as_ref(), false)?,
            procedure_code: self.get_coded(m.procedure_code.as_ref())?,
            task_type: self.get_text(m.task_type.as_ref())?,
            activity_id: self.get_text(m.activity_id.as_ref())?,
            received_at: None,
            extra: Default::default(),
        })
    }

    fn route(&self, ctx: &MapContext) -> Result<String, MapError> {
        for r in &self.mapping.routes {
            let Some(f) = self.resolve(&r.path)? else {
                continue;
            };
            if let Some(v) = self.text(&f)?
                && r.matches(&v)
            {
                return Ok(r.group.clone());
            }
        }
        Ok(ctx.group.clone())
    }

    fn appointment(&self, ctx: &MapContext, visit: &Visit) -> Result<Appointment, MapError> {
        Ok(Appointment {
            id: String::new(),
            org: ctx.org.clone(),
            integration: ctx.integration.clone(),
            group: self.route(ctx)?,
            status: AppointmentStatus::Scheduled,
            scheduled_at: self.get_time(self.mapping.appointment.scheduled_at.as_ref(), false)?,
            order: self.order()?,
            visit: visit.clone(),
            patient_id: String::new(),
        })
    }

    /// The order key; an order with neither number cannot be found again.
    fn key(&self, ctx: &MapContext, order: &Order) -> Result<OrderKey, MapError> {
        if order.placer_order.is_none() && order.filler_order.is_none() {
            let m = &self.mapping.order;
            let describe = |s: &Option<Source>| {
                s.as_ref()
                    .map(|s| s.paths.join("/"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "-".into())
            };
            // Point at the first placer path whose segment this message has.
            let paths = m
                .placer_order
                .as_ref()
                .map(|s| s.paths.as_slice())
                .unwrap_or(&[]);
            let present = paths.iter().find(|p| self.segment_present(p));
            let at = self.locate(present.or(paths.first()).map_or("ORC-2", |p| p));
            return Err(MapError::missing(
                at,
                format!(
                    "order has neither a placer ({}) nor a filler ({}) number",
                    describe(&m.placer_order),
                    describe(&m.filler_order)
                ),
            ));
        }
        Ok(OrderKey {
            integration: ctx.integration.clone(),
            placer_order: order.placer_order.clone(),
            filler_order: order.filler_order.clone(),
        })
    }

    /// The action for one order (ORM group or SIU message).
    fn order_action(
        &self,
        ctx: &MapContext,
        action: &str,
        visit: &Visit,
        patient: &mut Option<Patient>,
    ) -> Result<Option<WorklistAction>, MapError> {
        let mut patient_once = || -> Result<Patient, MapError> {
            if let Some(p) = patient {
                return Ok(p.clone());
            }
            let p = self.required_patient()?;
            *patient = Some(p.clone());
            Ok(p)
        };
        Ok(Some(match action {
            "ignore" => return Ok(None),
            "cancel" => {
                let order = self.order()?;
                WorklistAction::CancelAppointment {
                    key: self.key(ctx, &order)?,
                    reason: self.get_text(self.mapping.appointment.cancel_reason.as_ref())?,
                }
            }
            "create" | "update" => {
                let appointment = self.appointment(ctx, visit)?;
                let key = self.key(ctx, &appointment.order)?;
                let patient = patient_once()?;
                if action == "create" {
                    WorklistAction::CreateAppointment {
                        patient,
                        appointment,
                    }
                } else {
                    WorklistAction::UpdateAppointment {
                        key,
                        patient,
                        appointment,
                    }
                }
            }
            other => {
                return Err(MapError::Mapping {
                    path: None,
                    reason: format!("unknown action `{other}`"),
                });
            }
        }))
    }
}

/// Splits an ORM^O01 into order groups: each ORC with the first OBR after it.
fn order_groups<'a>(msg: &Message<'a>) -> Result<Vec<OrderGroup<'a>>, MapError> {
    let mut groups: Vec<OrderGroup<'a>> = Vec::new();
    let (mut orcs, mut obrs) = (0usize, 0usize);
    for seg in msg.segments() {
        match seg.id() {
            "ORC" => {
                orcs += 1;
                if orcs > MAX_ORDERS {
                    return Err(MapError::invalid(
                        "ORC",
                        format!("more than {MAX_ORDERS} orders in one message"),
                    ));
                }
                groups.push(OrderGroup {
                    orc: Some((seg, orcs)),
                    obr: None,
                });
            }
            "OBR" => {
                obrs += 1;
                if let Some(g) = groups.last_mut()
                    && g.obr.is_none()
                {
                    g.obr = Some((seg, obrs));
                }
            }
            _ => {}
        }
    }
    Ok(groups)
}

/// Maps one parsed message into worklist actions (see the module docs).
///
/// * ORM^O01: one action per ORC group, chosen by ORC-1 through the `order_control`
///   table (NW → create, XO/SC → update, CA/OC/DC/CR/DR → cancel in the presets).
/// * ADT^A01/A04/A08/A28/A31 (the `adt_event` table) → [`WorklistAction::UpsertPatient`].
/// * SIU^S12 → create, S13/S14 → update, S15/S17 → cancel (the `siu_event` table).
/// * Anything else → [`MapError::Unsupported`].
///
/// Creates and updates need a PID with an identifier; every order needs a placer or
/// filler number. Nothing here panics on hostile input: it becomes a [`MapError`].
pub fn map_message(
    msg: &Message<'_>,
    mapping: &Mapping,
    ctx: &MapContext,
) -> Result<Vec<WorklistAction>, MapError> {
    let h = msg.header();
    let typ = h.message_type().unwrap_or_default();
    let trigger = h.trigger_event().unwrap_or_default();
    let type_string = if trigger.is_empty() {
        typ.to_string()
    } else {
        format!("{typ}^{trigger}")
    };
    let unsupported = || MapError::Unsupported(type_string.clone());
    let reader = Reader {
        msg,
        mapping,
        group: None,
    };
    match typ.as_ref() {
        "ADT" => match mapping.lookup(tables::ADT_EVENT, &trigger).as_deref() {
            Some("upsert") => Ok(vec![WorklistAction::UpsertPatient {
                patient: reader.required_patient()?,
            }]),
            Some("ignore") => Ok(Vec::new()),
            _ => Err(unsupported()),
        },
        "SIU" => {
            let Some(action) = mapping.lookup(tables::SIU_EVENT, &trigger) else {
                return Err(unsupported());
            };
            if msg.segment("SCH", 1).is_none() {
                return Err(MapError::missing("SCH", "SCH segment missing"));
            }
            let visit = reader.visit()?;
            let mut patient = None;
            Ok(reader
                .order_action(ctx, &action, &visit, &mut patient)?
                .into_iter()
                .collect())
        }
        "ORM" if trigger == "O01" => {
            let groups = order_groups(msg)?;
            if groups.is_empty() {
                return Err(MapError::missing("ORC", "ORM^O01 without an ORC segment"));
            }
            let visit = reader.visit()?;
            let mut patient = None;
            let mut actions = Vec::with_capacity(groups.len());
            for g in &groups {
                let r = Reader {
                    group: Some(g),
                    ..reader
                };
                let control_src = mapping.order.control.as_ref();
                // Only formatted for an error report.
                let control_at = || {
                    r.locate(
                        control_src
                            .and_then(|s| s.paths.first())
                            .map_or("ORC-1", |p| p),
                    )
                };
                let Some(control) = r.first(control_src, Reader::text)? else {
                    return Err(MapError::missing(
                        control_at(),
                        "order control code (ORC-1) is empty",
                    ));
                };
                let Some(action) = mapping.lookup(tables::ORDER_CONTROL, &control) else {
                    return Err(MapError::UnknownCode {
                        path: Some(control_at()),
                        reason: format!(
                            "unknown order control code `{}`",
                            control.chars().take(20).collect::<String>()
                        ),
                    });
                };
                actions.extend(r.order_action(ctx, &action, &visit, &mut patient)?);
            }
            Ok(actions)
        }
        _ => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_forms() {
        let m = Mapping::from_toml_str(
            r#"
            [patient]
            family = "PID-5.1"
            given = ["PID-5.2", "PID-9.2"]
            sex = { path = "PID-8", table = "sex" }
            race_code = { path = ["PID-10.1"], table = "race_code" }
            suffix = ""
            "#,
        )
        .unwrap();
        assert_eq!(m.patient.family, Some(Source::paths(["PID-5.1"])));
        assert_eq!(m.patient.given, Some(Source::paths(["PID-5.2", "PID-9.2"])));
        assert_eq!(
            m.patient.sex,
            Some(Source::paths(["PID-8"]).with_table("sex"))
        );
        assert_eq!(
            m.patient.race_code,
            Some(Source::paths(["PID-10.1"]).with_table("race_code"))
        );
        assert_eq!(m.patient.suffix, Some(Source::default()));
        // Serializes back to the same forms.
        let text = toml::to_string(&m).unwrap();
        assert_eq!(Mapping::from_toml_str(&text).unwrap(), m);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Mapping::from_toml_str("[patient]\nfamly = \"PID-5.1\"").unwrap_err();
        assert!(matches!(&e, MappingError::UnknownKey { key, .. } if key == "patient.famly"));
        assert!(e.to_string().contains("patient.famly"), "{e}");
        let e = Mapping::from_toml_str("[pateint]\nfamily = \"PID-5.1\"").unwrap_err();
        assert_eq!(e, MappingError::UnknownSection("pateint".into()));
        let e = Mapping::from_toml_str("[oru]\nsending_app = \"X\"").unwrap_err();
        assert!(e.to_string().contains("oru.sending_app"), "{e}");
        let e =
            Mapping::from_toml_str("[[route]]\npath = \"PV1-3.1\"\nequls = \"X\"\ngroup = \"g\"")
                .unwrap_err();
        assert!(
            e.to_string().contains("route[1]") && e.to_string().contains("equls"),
            "{e}"
        );
        let e = Mapping::from_toml_str("[patient]\nsex = { path = \"PID-8\", tabel = \"sex\" }")
            .unwrap_err();
        assert!(
            e.to_string().contains("patient.sex") && e.to_string().contains("tabel"),
            "{e}"
        );
        let e = Mapping::from_toml_str("[patient]\nsex = 3").unwrap_err();
        assert!(e.to_string().contains("patient.sex"), "{e}");
        let e = Mapping::from_toml_str("[tables.sex]\nM = 1").unwrap_err();
        assert!(e.to_string().contains("tables.sex.M"), "{e}");
    }

    #[test]
    fn check_reports_everything() {
        let m = Mapping::from_toml_str(
            r#"
            [patient]
            family = "PIDX-5"
            sex = { path = "PID-8", table = "gender" }
            [tables.order_control]
            NW = "make"
            [[route]]
            path = "PV1-3.1"
            group = ""
            "#,
        )
        .unwrap();
        let errors = m.check().unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 5, "{text:#?}");
        assert!(
            text.iter()
                .any(|t| t.contains("patient.family") && t.contains("PIDX-5"))
        );
        assert!(text.iter().any(|t| t.contains("gender")));
        assert!(text.iter().any(|t| t.contains("tables.order_control.NW")));
        assert!(text.iter().any(|t| t.contains("equals")));
        assert!(text.iter().any(|t| t.contains("group")));
    }

    #[test]
    fn lookup_rules() {
        let m = Mapping::from_toml_str(
            "[tables.sex]\nM = \"male\"\nf = \"female\"\nX = \"\"\n\"*\" = \"unknown\"\n[tables.plain]\nA = \"a\"",
        )
        .unwrap();
        assert_eq!(m.lookup("sex", "M").as_deref(), Some("male"));
        assert_eq!(m.lookup("sex", "F").as_deref(), Some("female"));
        assert_eq!(m.lookup("sex", "Q").as_deref(), Some("unknown"));
        assert_eq!(m.lookup("sex", "X"), None);
        assert_eq!(m.lookup("plain", "B"), None);
        assert_eq!(m.lookup("none", "A"), None);
    }

    #[test]
    fn merge_overrides() {
        let mut base = Mapping::from_toml_str(
            r#"
            [patient]
            family = "PID-5.1"
            given = "PID-5.2"
            [tables.sex]
            M = "male"
            F = "female"
            [[route]]
            path = "PV1-3.1"
            equals = "A"
            group = "a"
            [oru]
            sending_application = "MEDRELAY"
            receiving_application = "HIS"
            "#,
        )
        .unwrap();
        let mut table: toml::Table = toml::from_str(
            r#"
            patient.given = ["PID-5.3"]
            tables.sex.F = "woman"
            oru.receiving_application = "EHR"
            [[route]]
            path = "OBR-4.1"
            one_of = ["ECG"]
            group = "ecg"
            "#,
        )
        .unwrap();
        base.merge_table(&table).unwrap();
        assert_eq!(base.patient.family, Some(Source::paths(["PID-5.1"])));
        assert_eq!(base.patient.given, Some(Source::paths(["PID-5.3"])));
        assert_eq!(base.lookup("sex", "M").as_deref(), Some("male"));
        assert_eq!(base.lookup("sex", "F").as_deref(), Some("woman"));
        assert_eq!(base.routes.len(), 1);
        assert_eq!(base.routes[0].group, "ecg");
        assert_eq!(base.oru.sending_application.as_deref(), Some("MEDRELAY"));
        assert_eq!(base.oru.receiving_application.as_deref(), Some("EHR"));
        table.insert(
            "patient".into(),
            toml::Value::Table(toml::Table::from_iter([(
                "given_name".to_string(),
                toml::Value::String("PID-5.2".into()),
            )])),
        );
        assert!(base.merge_table(&table).is_err());
    }

    #[test]
    fn error_detail_locations() {
        let e = MapError::missing("ORC(2)-1", "order control code (ORC-1) is empty");
        let d = e.to_error_detail();
        assert_eq!(d.code, ErrorCode::RequiredFieldMissing);
        let loc = d.location.unwrap();
        assert_eq!(
            (loc.segment.as_str(), loc.sequence, loc.field),
            ("ORC", 2, Some(1))
        );
        let d = ErrorDetail::from(&MapError::missing("PID", "PID segment missing"));
        assert_eq!(d.location.unwrap().segment, "PID");
        let u = MapError::Unsupported("ADT^A03".into());
        assert_eq!(u.code(), ErrorCode::UnsupportedEventCode);
        assert!(u.is_reject());
        assert_eq!(
            MapError::Unsupported("MFN^M02".into()).code(),
            ErrorCode::UnsupportedMessageType
        );
        assert_eq!(u.to_error_detail().location.unwrap().field, Some(9));
    }
}
