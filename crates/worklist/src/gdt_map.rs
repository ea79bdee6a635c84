//! GDT into the worklist and back: a 6302 ("new examination request") becomes an
//! appointment, a measurement becomes a 6310 ("examination data") answering it.
//!
//! Like the HL7 mapping, what comes from where is data: a preset file names the GDT
//! field ids for each canonical field (first present wins), value tables translate
//! codes, and an integration overrides any key. The fields the result must echo
//! (sender and receiver ids, version, charset, device code, request id) and the
//! ones no canonical field covers are kept verbatim in [`Order::extra`] under their
//! field id.
//!
//! ```toml
//! [patient]
//! family = "3101"                          # GDT: 3101 is the surname
//! sex = { field = "3110", table = "sex" }
//! email = ["3619", "3633"]                 # the first present wins
//!
//! [order]
//! placer_order = ["8310", "2999"]
//! keep = ["8315", "8316", "9218", "9206"]  # copied into Order.extra
//! ```

use std::collections::BTreeMap;
use std::fmt;

use gdt::{Charset, Date, FieldId, FileEntry, Record, RecordType, ResultRecordBuilder, TestEntry};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::mapping::MapError;
use crate::model::{
    Address, Appointment, AppointmentStatus, Coded, Identifier, Measurement, Order, OrderKey,
    Patient, WorklistAction,
};

/// Where one canonical field comes from: GDT field ids tried in order, and an
/// optional value table. In TOML: `"3101"`, `["3619", "3633"]` or
/// `{ field = "3110", table = "sex" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GdtSource {
    pub fields: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl<'de> Deserialize<'de> for GdtSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GdtSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a GDT field id (\"3101\"), a list of them, or { field = …, table = … }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GdtSource, E> {
                Ok(GdtSource {
                    fields: one(v),
                    table: None,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GdtSource, A::Error> {
                let mut fields = Vec::new();
                while let Some(f) = seq.next_element::<String>()? {
                    fields.extend(one(&f));
                }
                Ok(GdtSource {
                    fields,
                    table: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GdtSource, A::Error> {
                let mut out = GdtSource::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "field" => {
                            out.fields = match map.next_value::<OneOrMany>()? {
                                OneOrMany::One(f) => one(&f),
                                OneOrMany::Many(fs) => fs.iter().flat_map(|f| one(f)).collect(),
                            }
                        }
                        "table" => {
                            let t: String = map.next_value()?;
                            out.table = (!t.trim().is_empty()).then_some(t);
                        }
                        other => return Err(de::Error::unknown_field(other, &["field", "table"])),
                    }
                }
                Ok(out)
            }
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        d.deserialize_any(V)
    }
}

fn one(f: &str) -> Vec<String> {
    let f = f.trim();
    if f.is_empty() {
        Vec::new()
    } else {
        vec![f.to_string()]
    }
}

/// `[patient]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GdtPatientFields {
    /// The practice's patient number: the identifier the patient is matched by.
    pub identifier: Option<GdtSource>,
    /// A second identifier (insurance number).
    pub insurance_number: Option<GdtSource>,
    pub family: Option<GdtSource>,
    pub given: Option<GdtSource>,
    pub prefix: Option<GdtSource>,
    /// `DDMMYYYY`.
    pub birth_date: Option<GdtSource>,
    pub sex: Option<GdtSource>,
    pub street: Option<GdtSource>,
    /// GDT 2.1 "Wohnort" (postal code and city in one line): `Address.other`.
    pub residence: Option<GdtSource>,
    pub postal_code: Option<GdtSource>,
    pub city: Option<GdtSource>,
    pub email: Option<GdtSource>,
    pub phone: Option<GdtSource>,
}

/// `[order]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GdtOrderFields {
    /// The request's reference: how the result and a cancel find it again.
    pub placer_order: Option<GdtSource>,
    /// The requested service or test: `Order.procedure.code`.
    pub procedure: Option<GdtSource>,
    /// `DDMMYYYY` and `HHMMSS` of the planned examination.
    pub scheduled_date: Option<GdtSource>,
    pub scheduled_time: Option<GdtSource>,
    /// Field ids copied verbatim into `Order.extra`.
    pub keep: Vec<String>,
}

/// `[result]`: how the 6310 answer is written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GdtResultSettings {
    /// Our GDT id (8316 of the result); default: the id the request was sent to (its 8315).
    pub sender_id: Option<String>,
    /// 9218 of the result when the request did not say: default `02.10`.
    pub version: Option<String>,
    /// 9206 of the result when the request did not say: `1` 7-bit, `2` CP437 (default), `3` ISO 8859-1.
    pub charset: Option<String>,
}

/// A complete GDT mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GdtMapping {
    pub patient: GdtPatientFields,
    pub order: GdtOrderFields,
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    pub result: GdtResultSettings,
}

/// A problem with a GDT mapping, worded for the configuration's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GdtMappingError(pub String);

impl GdtMapping {
    /// Parses a mapping (a preset file without its `[preset]` table, or overrides).
    pub fn from_table(t: &toml::Table) -> Result<Self, GdtMappingError> {
        let m: GdtMapping = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| GdtMappingError(e.message().to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// Every field id is four digits and every table a field names exists.
    pub fn check(&self) -> Result<(), GdtMappingError> {
        let mut problems = Vec::new();
        for (key, src) in self.sources() {
            let Some(src) = src else { continue };
            for f in &src.fields {
                if parse_id(f).is_none() {
                    problems.push(format!("{key}: {f:?} is not a GDT field id (four digits)"));
                }
            }
            if let Some(t) = &src.table
                && !self.tables.contains_key(t)
            {
                problems.push(format!("{key}: table {t:?} is not defined under [tables]"));
            }
        }
        for f in &self.order.keep {
            if parse_id(f).is_none() {
                problems.push(format!("order.keep: {f:?} is not a GDT field id"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(GdtMappingError(problems.join("; ")))
        }
    }

    /// `(key, source)` of every mapped field, for checks and documentation.
    pub fn sources(&self) -> Vec<(&'static str, Option<&GdtSource>)> {
        let p = &self.patient;
        let o = &self.order;
        vec![
            ("patient.identifier", p.identifier.as_ref()),
            ("patient.insurance_number", p.insurance_number.as_ref()),
            ("patient.family", p.family.as_ref()),
            ("patient.given", p.given.as_ref()),
            ("patient.prefix", p.prefix.as_ref()),
            ("patient.birth_date", p.birth_date.as_ref()),
            ("patient.sex", p.sex.as_ref()),
            ("patient.street", p.street.as_ref()),
            ("patient.residence", p.residence.as_ref()),
            ("patient.postal_code", p.postal_code.as_ref()),
            ("patient.city", p.city.as_ref()),
            ("patient.email", p.email.as_ref()),
            ("patient.phone", p.phone.as_ref()),
            ("order.placer_order", o.placer_order.as_ref()),
            ("order.procedure", o.procedure.as_ref()),
            ("order.scheduled_date", o.scheduled_date.as_ref()),
            ("order.scheduled_time", o.scheduled_time.as_ref()),
        ]
    }

    fn lookup(&self, table: &str, value: &str) -> Option<String> {
        let t = self.tables.get(table)?;
        let hit = t
            .get(value)
            .or_else(|| {
                t.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(value))
                    .map(|(_, v)| v)
            })
            .or_else(|| t.get("*"))?;
        (!hit.is_empty()).then(|| hit.clone())
    }
}

fn parse_id(s: &str) -> Option<FieldId> {
    (s.len() == 4)
        .then(|| FieldId::from_ascii(s.as_bytes()))
        .flatten()
}

/// Deep-merges `overrides` into `base` (tables key by key, anything else replaced).
pub fn merge_tables(base: &mut toml::Table, overrides: &toml::Table) {
    for (k, v) in overrides {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Who the mapped records belong to.
#[derive(Debug, Clone)]
pub struct GdtContext {
    pub integration: String,
    pub group: String,
    pub org: String,
    /// Stands in for the request reference when the file has none (derived from
    /// the file's content, so the same file maps to the same appointment).
    pub fallback_reference: String,
}

struct Reader<'r> {
    record: &'r Record,
    mapping: &'r GdtMapping,
}

impl Reader<'_> {
    /// The first listed field present with a non-empty value, and its id.
    fn raw<'s>(&self, src: Option<&'s GdtSource>) -> Option<(&'s str, String)> {
        let src = src?;
        src.fields.iter().find_map(|f| {
            let id = parse_id(f)?;
            let v = self.record.get(id)?.trim();
            (!v.is_empty()).then(|| (f.as_str(), v.to_string()))
        })
    }

    fn text(&self, src: Option<&GdtSource>) -> Option<String> {
        let (_, v) = self.raw(src)?;
        match src.and_then(|s| s.table.as_deref()) {
            Some(t) => self.mapping.lookup(t, &v),
            None => Some(v),
        }
    }

    fn date(&self, src: Option<&GdtSource>) -> Result<Option<String>, MapError> {
        let Some((field, v)) = self.raw(src) else {
            return Ok(None);
        };
        Date::parse_gdt(&v)
            .map(|d| Some(d.to_string()))
            .ok_or_else(|| {
                MapError::invalid(
                    format!("FK {field}"),
                    format!(
                        "`{}` is not a date (DDMMYYYY)",
                        v.chars().take(20).collect::<String>()
                    ),
                )
            })
    }

    fn time(&self, src: Option<&GdtSource>) -> Result<Option<String>, MapError> {
        let Some((field, v)) = self.raw(src) else {
            return Ok(None);
        };
        let t = gdt::Time::parse_gdt(&v).ok_or_else(|| {
            MapError::invalid(
                format!("FK {field}"),
                format!(
                    "`{}` is not a time (HHMM or HHMMSS)",
                    v.chars().take(20).collect::<String>()
                ),
            )
        })?;
        Ok(Some(t.to_string()))
    }

    fn patient(&self, system: Option<&str>) -> Result<Patient, MapError> {
        let p = &self.mapping.patient;
        let mut identifiers = Vec::new();
        if let Some(v) = self.text(p.identifier.as_ref()) {
            identifiers.push(Identifier {
                value: v,
                system: system.map(str::to_string),
                kind: Some("PI".into()),
            });
        }
        if let Some(v) = self.text(p.insurance_number.as_ref()) {
            identifiers.push(Identifier {
                value: v,
                system: Some("insurance".into()),
                kind: Some("SN".into()),
            });
        }
        let address = Address {
            street: self.text(p.street.as_ref()),
            other: self.text(p.residence.as_ref()),
            city: self.text(p.city.as_ref()),
            postal_code: self.text(p.postal_code.as_ref()),
            ..Address::default()
        };
        Ok(Patient {
            identifiers,
            family: self.text(p.family.as_ref()),
            given: self.text(p.given.as_ref()).into_iter().collect(),
            prefix: self.text(p.prefix.as_ref()),
            birth_date: self.date(p.birth_date.as_ref())?,
            sex: self.text(p.sex.as_ref()),
            address: (address != Address::default()).then_some(address),
            email: self.text(p.email.as_ref()),
            phone: self.text(p.phone.as_ref()),
            ..Patient::default()
        })
    }

    fn order(&self, fallback_reference: &str) -> Result<Order, MapError> {
        let o = &self.mapping.order;
        let mut extra = BTreeMap::new();
        for f in &o.keep {
            if let Some(v) = parse_id(f).and_then(|id| self.record.get(id))
                && !v.trim().is_empty()
            {
                extra.insert(f.clone(), v.trim().to_string());
            }
        }
        let scheduled = match (
            self.date(o.scheduled_date.as_ref())?,
            self.time(o.scheduled_time.as_ref())?,
        ) {
            (Some(d), Some(t)) => Some(format!("{d}T{t}")),
            (d, _) => d,
        };
        Ok(Order {
            placer_order: Some(
                self.text(o.placer_order.as_ref())
                    .unwrap_or_else(|| fallback_reference.to_string()),
            ),
            procedure: self.text(o.procedure.as_ref()).map(|code| Coded {
                code,
                display: None,
                system: None,
            }),
            scheduled_at: scheduled,
            extra,
            ..Order::default()
        })
    }
}

/// What a GDT record asks of the worklist: 6302 creates (or updates) an
/// appointment, 6301 updates the patient, 6303 cancels a request. Anything else
/// is not an order and is refused.
pub fn map_record(
    record: &Record,
    mapping: &GdtMapping,
    ctx: &GdtContext,
) -> Result<Vec<WorklistAction>, MapError> {
    let r = Reader { record, mapping };
    let sender = record.sender_id().map(str::trim).filter(|s| !s.is_empty());
    let record_type = record.record_type();
    match record_type {
        Some(RecordType::ExaminationRequest) | Some(RecordType::PatientData) => {}
        Some(RecordType::ExaminationCancel) => {
            let order = r.order(&ctx.fallback_reference)?;
            return Ok(vec![WorklistAction::CancelAppointment {
                key: OrderKey {
                    integration: ctx.integration.clone(),
                    placer_order: order.placer_order,
                    filler_order: None,
                },
                reason: Some("cancelled by the practice system (GDT 6303)".into()),
            }]);
        }
        other => {
            return Err(MapError::Unsupported(match other {
                Some(t) => format!("GDT record type {}", t.code()),
                None => "GDT record without a record type (8000)".into(),
            }));
        }
    }
    let patient = r.patient(sender)?;
    if patient.identifiers.is_empty() {
        let fields = mapping
            .patient
            .identifier
            .as_ref()
            .map(|s| s.fields.join("/"))
            .unwrap_or_else(|| "3000".into());
        return Err(MapError::missing(
            format!("FK {fields}"),
            "patient number missing: the patient cannot be matched",
        ));
    }
    if record_type == Some(RecordType::PatientData) {
        return Ok(vec![WorklistAction::UpsertPatient { patient }]);
    }
    let order = r.order(&ctx.fallback_reference)?;
    let appointment = Appointment {
        org: ctx.org.clone(),
        integration: ctx.integration.clone(),
        group: ctx.group.clone(),
        status: AppointmentStatus::Scheduled,
        scheduled_at: order.scheduled_at.clone(),
        order,
        ..Appointment::default()
    };
    Ok(vec![WorklistAction::CreateAppointment {
        patient,
        appointment,
    }])
}

/// The 6310 for a measurement of an appointment that came from a GDT request,
/// encoded (in the request's version and charset) and ready to write. `pdf_reference`
/// is the report's file name as the practice system will see it.
pub fn build_result(
    appointment: &Appointment,
    patient: &Patient,
    m: &Measurement,
    settings: &GdtResultSettings,
    archive_id: &str,
    pdf_reference: Option<&str>,
) -> Result<Vec<u8>, String> {
    let extra = &appointment.order.extra;
    let get = |id: &str| extra.get(id).map(String::as_str).filter(|v| !v.is_empty());
    let mut b = ResultRecordBuilder::new();
    let version = match get("9218").or(settings.version.as_deref()) {
        Some(v) => Some(gdt::GdtVersion::parse(v).ok_or_else(|| format!("GDT version {v:?}"))?),
        None => None,
    };
    if let Some(v) = version {
        b = b.version(v);
    }
    let v3 = version.is_some_and(|v| v.is_v3());
    let charset_code = get("9206").or(settings.charset.as_deref()).unwrap_or("2");
    let charset = Charset::from_code(charset_code, Charset::Latin1)
        .ok_or_else(|| format!("unknown GDT charset code {charset_code:?}"))?;
    b = b.charset(charset);
    // The answer goes back to whoever asked, from whom they asked.
    if let Some(v) = get("8316") {
        b = b.receiver_id(v);
    }
    if let Some(v) = settings.sender_id.as_deref().or(get("8315")) {
        b = b.sender_id(v);
    }
    if let Some(v) = get("8310") {
        b = b.request_id(v);
    }
    let number = patient
        .identifiers
        .iter()
        .find(|i| i.kind.as_deref() == Some("PI"))
        .or(patient.identifiers.first());
    if let Some(i) = number {
        b = b.patient_number(&i.value);
    }
    if let Some(v) = &patient.family {
        b = b.surname(v);
    }
    if let Some(v) = patient.given.first() {
        b = b.first_name(v);
    }
    if let Some(v) = &patient.prefix {
        b = b.title(v);
    }
    // GDT 2.1 knows only 1 and 2; "diverse" and "not specified" are 3.x codes.
    let sex = match patient.sex.as_deref() {
        Some("male") => Some(gdt::Sex::Male),
        Some("female") => Some(gdt::Sex::Female),
        Some("other") if v3 => Some(gdt::Sex::Diverse),
        Some("unknown") if v3 => Some(gdt::Sex::Unspecified),
        _ => None,
    };
    if let Some(sex) = sex {
        b = b.sex(sex);
    }
    if let Some(d) = patient.birth_date.as_deref().and_then(iso_date) {
        b = b.birth_date(d);
    }
    if let Some(v) = get("8402") {
        b = b.procedure(v);
    }
    if let Some((d, t)) = iso_date_time(&m.performed_at) {
        b = b.date(d);
        if let Some(t) = t {
            b = b.time(t);
        }
    }
    let mut findings = Vec::new();
    for o in &m.observations {
        let value = match &o.value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(obj) => obj
                .get("code")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_string(),
            other => other.to_string(),
        };
        let mut t = TestEntry::new(&o.code).value(&value);
        if let Some(d) = &o.display {
            t = t.name(d);
        }
        if let Some(u) = &o.unit {
            t = t.unit(u);
        }
        if let Some(r) = &o.reference_range {
            t = t.normal_text(r);
        }
        if let Some(f) = &o.abnormal_flag {
            t = t.note(format!("abnormal flag {f}"));
        }
        b = b.test(t);
        findings.push(format!(
            "{}: {}{}",
            o.display.as_deref().unwrap_or(&o.code),
            value,
            o.unit
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        ));
    }
    if !findings.is_empty() {
        b = b.findings(&format!("{}: {}", m.kind, findings.join("; ")));
    }
    if let Some(reference) = pdf_reference {
        b = b.file(FileEntry::pdf(
            archive_id,
            format!("{} report", m.kind),
            reference,
        ));
    }
    let record = b.build().map_err(|e| e.to_string())?;
    let mut opts = gdt::WriteOptions::default();
    // A name the charset cannot spell must not hold up a result.
    opts.unencodable = gdt::Unencodable::Replace;
    gdt::write(&record, &opts).map_err(|e| e.to_string())
}

fn iso_date(s: &str) -> Option<Date> {
    let y = s.get(0..4)?.parse().ok()?;
    let m = s.get(5..7)?.parse().ok()?;
    let d = s.get(8..10)?.parse().ok()?;
    Date::new(y, m, d)
}

fn iso_date_time(s: &str) -> Option<(Date, Option<gdt::Time>)> {
    let d = iso_date(s)?;
    let t = s.get(11..19).and_then(|t| {
        let h = t.get(0..2)?.parse().ok()?;
        let mi = t.get(3..5)?.parse().ok()?;
        let se = t.get(6..8)?.parse().ok()?;
        gdt::Time::new(h, mi, se)
    });
    Some((d, t))
}
