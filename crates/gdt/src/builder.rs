//! Building 6310 result records, and splitting long texts into lines.

use crate::charset::Charset;
use crate::error::Error;
use crate::field::{FieldId, ids};
use crate::record::Record;
use crate::types::{Date, GdtVersion, RecordType, Sex, Time};
use crate::write::MAX_CONTENT_BYTES;

/// Default line width for texts the builder splits: GDT 2.1 allows 60 characters in
/// 6220 (findings), 6227 (comment) and 6228 (result table) lines, and practice
/// systems show them in columns of that width.
pub const DEFAULT_TEXT_WIDTH: usize = 60;

/// Splits a text into lines of at most `max_chars` characters, for fields that carry
/// long texts as several lines with the same id (6220, 6227, 6228, 8480).
///
/// Existing line breaks (LF, CR LF, CR) start a new line; empty lines in between are
/// kept (as empty fields), trailing ones dropped. A line that is too long is broken at
/// its last space that fits (the space is dropped); a word longer than the width is
/// cut. `max_chars` is clamped to 1..=990, the most one GDT line can hold — every GDT
/// charset has one byte per character, so characters are bytes on the wire.
///
/// ```
/// assert_eq!(
///     gdt::split_text("Sinusrhythmus, Lagetyp normal.\nKeine Erregungsrückbildungsstörung.", 20),
///     ["Sinusrhythmus,", "Lagetyp normal.", "Keine", "Erregungsrückbildung", "sstörung."]
/// );
/// assert!(gdt::split_text("", 60).is_empty());
/// ```
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.clamp(1, MAX_CONTENT_BYTES);
    let mut out = Vec::new();
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    for para in text.split('\n') {
        let mut rest = para;
        // Each round looks at no more than `max + 1` characters: linear in the text.
        while let Some((cut, _)) = rest.char_indices().nth(max) {
            let (head, tail) = rest.split_at(cut);
            // Break at the last space within the first `max + 1` characters: a space
            // right after a full line is a break point too.
            let space = if tail.starts_with(' ') {
                Some(cut)
            } else {
                head.rfind(' ')
            };
            match space.filter(|&sp| sp > 0) {
                Some(sp) => {
                    let (line, after) = rest.split_at(sp);
                    out.push(line.to_string());
                    rest = after.get(1..).unwrap_or_default();
                }
                None => {
                    out.push(head.to_string());
                    rest = tail;
                }
            }
        }
        out.push(rest.to_string());
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// One test result for [`ResultRecordBuilder::test`]: 8410 and the fields after it.
///
/// ```
/// use gdt::TestEntry;
/// let t = TestEntry::new("HF").name("Herzfrequenz").value("72").unit("/min").normal_range("60", "100");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestEntry {
    id: String,
    name: Option<String>,
    status: Option<String>,
    value: Option<String>,
    unit: Option<String>,
    normal_text: Option<String>,
    normal_lower: Option<String>,
    normal_upper: Option<String>,
    notes: Vec<String>,
    result_texts: Vec<String>,
}

impl TestEntry {
    /// A test with its id (8410).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// 8411 — test name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// 8418 — test status.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// 8420 — result value, as it should be written (e.g. `"72"`, `"1.5"`).
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// 8421 — unit.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// 8460 — normal range as text.
    pub fn normal_text(mut self, text: impl Into<String>) -> Self {
        self.normal_text = Some(text.into());
        self
    }

    /// 8461/8462 — normal range limits.
    pub fn normal_range(mut self, lower: impl Into<String>, upper: impl Into<String>) -> Self {
        self.normal_lower = Some(lower.into());
        self.normal_upper = Some(upper.into());
        self
    }

    /// 8470 — a test note (repeatable).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// 8480 — a result text line (repeatable).
    pub fn result_text(mut self, text: impl Into<String>) -> Self {
        self.result_texts.push(text.into());
        self
    }

    fn push_to(&self, r: &mut Record) {
        r.push(ids::TEST_ID, self.id.as_str());
        let singles = [
            (ids::TEST_NAME, &self.name),
            (ids::TEST_STATUS, &self.status),
            (ids::RESULT_VALUE, &self.value),
            (ids::UNIT, &self.unit),
            (ids::NORMAL_RANGE_TEXT, &self.normal_text),
            (ids::NORMAL_LOWER, &self.normal_lower),
            (ids::NORMAL_UPPER, &self.normal_upper),
        ];
        for (id, v) in singles {
            if let Some(v) = v {
                r.push(id, v.as_str());
            }
        }
        for n in &self.notes {
            r.push(ids::TEST_NOTES, n.as_str());
        }
        for t in &self.result_texts {
            r.push(ids::RESULT_TEXT, t.as_str());
        }
    }
}

/// A file reference for [`ResultRecordBuilder::file`] (6302–6305).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// 6302 — archive id.
    pub archive_id: String,
    /// 6303 — format (`PDF`).
    pub format: String,
    /// 6304 — description of the content.
    pub description: String,
    /// 6305 — path or URL of the file.
    pub reference: String,
}

impl FileEntry {
    /// A PDF report.
    pub fn pdf(
        archive_id: impl Into<String>,
        description: impl Into<String>,
        reference: impl Into<String>,
    ) -> Self {
        Self {
            archive_id: archive_id.into(),
            format: "PDF".into(),
            description: description.into(),
            reference: reference.into(),
        }
    }
}

#[derive(Debug, Clone)]
enum SexValue {
    Raw(String),
    Typed(Sex),
}

/// Builds a 6310 record ("transfer the data of an examination") in the flat GDT 2.1
/// layout, fields in the order of the standard's table: header, patient, procedure,
/// date and time, findings, comments, result table, files, tests, signature, then any
/// extra fields.
///
/// GDT 3.0's object markers (8200/8201/8202) are not generated; add them with
/// [`ResultRecordBuilder::field`] or edit the record if a receiver needs them.
///
/// ```
/// use gdt::{Charset, Date, FileEntry, ResultRecordBuilder, Sex, TestEntry, Time};
/// let record = ResultRecordBuilder::new()
///     .sender_id("EKG_DEV")
///     .receiver_id("PRAX_EDV")
///     .charset(Charset::Cp437)
///     .patient_number("12345")
///     .surname("Müller")
///     .first_name("Jürgen")
///     .birth_date(Date::new(1965, 6, 24).unwrap())
///     .sex(Sex::Male)
///     .procedure("EKG01")
///     .date(Date::new(2025, 3, 15).unwrap())
///     .time(Time::new(14, 30, 5).unwrap())
///     .findings("Sinusrhythmus, HF 72/min. Lagetyp: Indifferenztyp.")
///     .test(TestEntry::new("HF").name("Herzfrequenz").value("72").unit("/min"))
///     .file(FileEntry::pdf("EKG-2025-0001", "Ruhe-EKG Befund", "C:\\GDT\\EKG-2025-0001.pdf"))
///     .build()?;
/// let bytes = record.to_bytes()?;
/// assert_eq!(gdt::parse(&bytes)?.as_result().unwrap().tests().count(), 1);
/// # Ok::<(), gdt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResultRecordBuilder {
    header: Vec<(FieldId, String)>,
    version: Option<String>,
    charset_code: Option<String>,
    sender_id: Option<String>,
    receiver_id: Option<String>,
    patient: Vec<(FieldId, String)>,
    sex: Option<SexValue>,
    procedure: Option<String>,
    date: Option<String>,
    time: Option<String>,
    texts: Vec<(FieldId, String)>,
    files: Vec<FileEntry>,
    tests: Vec<TestEntry>,
    signature: Option<String>,
    extra: Vec<(FieldId, String)>,
    text_width: usize,
}

impl Default for ResultRecordBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResultRecordBuilder {
    /// An empty builder: GDT version `02.10`, charset CP437 (9206 = 2).
    pub fn new() -> Self {
        Self {
            header: Vec::new(),
            version: Some(GdtVersion::V2_1.to_string()),
            charset_code: Some(Charset::Cp437.code().to_string()),
            sender_id: None,
            receiver_id: None,
            patient: Vec::new(),
            sex: None,
            procedure: None,
            date: None,
            time: None,
            texts: Vec::new(),
            files: Vec::new(),
            tests: Vec::new(),
            signature: None,
            extra: Vec::new(),
            text_width: DEFAULT_TEXT_WIDTH,
        }
    }

    /// A builder answering a request (6302, or 6311/6301): sender and receiver ids
    /// swapped, version, charset, patient fields, procedure (8402) and request id/UID
    /// (8310/8314) copied verbatim, so the practice system can match the result.
    pub fn answering(request: &Record) -> Self {
        let mut b = Self::new();
        b.sender_id = request.receiver_id().map(str::to_string);
        b.receiver_id = request.sender_id().map(str::to_string);
        if let Some(v) = request.version_str() {
            b.version = Some(v.to_string());
        }
        if let Some(c) = request.get(ids::CHARSET) {
            b.charset_code = Some(c.to_string());
        }
        for id in [ids::REQUEST_ID, ids::REQUEST_UID] {
            if let Some(v) = request.get(id) {
                b.header.push((id, v.to_string()));
            }
        }
        for id in [
            ids::PATIENT_NUMBER,
            ids::NAME_PREFIX,
            ids::SURNAME,
            ids::FIRST_NAME,
            ids::BIRTH_DATE,
            ids::TITLE,
        ] {
            if let Some(v) = request.get(id) {
                b.patient.push((id, v.to_string()));
            }
        }
        b.sex = request.get(ids::SEX).map(|s| SexValue::Raw(s.to_string()));
        b.procedure = request.procedure().map(str::to_string);
        b
    }

    fn set_patient(mut self, id: FieldId, value: String) -> Self {
        match self.patient.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = value,
            None => self.patient.push((id, value)),
        }
        self
    }

    /// 8316 — our (the device's) GDT id.
    pub fn sender_id(mut self, id: impl Into<String>) -> Self {
        self.sender_id = Some(id.into());
        self
    }

    /// 8315 — the practice system's GDT id.
    pub fn receiver_id(mut self, id: impl Into<String>) -> Self {
        self.receiver_id = Some(id.into());
        self
    }

    /// 9218 — GDT version (default `02.10`).
    pub fn version(mut self, version: GdtVersion) -> Self {
        self.version = Some(version.to_string());
        self
    }

    /// 9206 — character set (default CP437). The writer encodes with it.
    pub fn charset(mut self, charset: Charset) -> Self {
        self.charset_code = Some(charset.code().to_string());
        self
    }

    /// 8310 — request id this result answers.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.header.retain(|(i, _)| *i != ids::REQUEST_ID);
        self.header.push((ids::REQUEST_ID, id.into()));
        self
    }

    /// 3000 — patient number.
    pub fn patient_number(self, number: impl Into<String>) -> Self {
        self.set_patient(ids::PATIENT_NUMBER, number.into())
    }

    /// 3101 — surname.
    pub fn surname(self, surname: impl Into<String>) -> Self {
        self.set_patient(ids::SURNAME, surname.into())
    }

    /// 3102 — first name.
    pub fn first_name(self, first_name: impl Into<String>) -> Self {
        self.set_patient(ids::FIRST_NAME, first_name.into())
    }

    /// 3103 — birth date.
    pub fn birth_date(self, date: Date) -> Self {
        self.set_patient(ids::BIRTH_DATE, date.to_gdt())
    }

    /// 3104 — title.
    pub fn title(self, title: impl Into<String>) -> Self {
        self.set_patient(ids::TITLE, title.into())
    }

    /// 3110 — sex, coded for the record's version when built.
    pub fn sex(mut self, sex: Sex) -> Self {
        self.sex = Some(SexValue::Typed(sex));
        self
    }

    /// 8402 — device and procedure specific code.
    pub fn procedure(mut self, code: impl Into<String>) -> Self {
        self.procedure = Some(code.into());
        self
    }

    /// 6200 — date of the examination.
    pub fn date(mut self, date: Date) -> Self {
        self.date = Some(date.to_gdt());
        self
    }

    /// 6201 — time of the examination.
    pub fn time(mut self, time: Time) -> Self {
        self.time = Some(time.to_gdt());
        self
    }

    /// Width for the texts split by [`findings`](Self::findings),
    /// [`comment`](Self::comment) and [`result_table`](Self::result_table) (default 60).
    pub fn text_width(mut self, width: usize) -> Self {
        self.text_width = width;
        self
    }

    fn text(mut self, id: FieldId, text: &str) -> Self {
        for line in split_text(text, self.text_width) {
            self.texts.push((id, line));
        }
        self
    }

    /// 6220 — findings text, split into lines.
    pub fn findings(self, text: &str) -> Self {
        self.text(ids::FINDINGS, text)
    }

    /// 6227 — comment text, split into lines.
    pub fn comment(self, text: &str) -> Self {
        self.text(ids::COMMENT, text)
    }

    /// 6228 — formatted result table; each line of `text` should already fit.
    pub fn result_table(self, text: &str) -> Self {
        self.text(ids::RESULT_TABLE_TEXT, text)
    }

    /// 6302–6305 — a file reference.
    pub fn file(mut self, file: FileEntry) -> Self {
        self.files.push(file);
        self
    }

    /// 8410… — a test result.
    pub fn test(mut self, test: TestEntry) -> Self {
        self.tests.push(test);
        self
    }

    /// 8990 — signature.
    pub fn signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = Some(signature.into());
        self
    }

    /// Any other field, appended at the end in call order.
    pub fn field(mut self, id: FieldId, value: impl Into<String>) -> Self {
        self.extra.push((id, value.into()));
        self
    }

    /// The record. 8100 holds zeros until written. Fails only when the sex cannot be
    /// expressed in the record's version (`D`/`X` in GDT 2.1).
    pub fn build(self) -> Result<Record, Error> {
        let version = self.version.as_deref().and_then(GdtVersion::parse);
        let mut r = Record::new(RecordType::ExaminationData);
        let width = if version.is_some_and(GdtVersion::is_v3) {
            7
        } else {
            5
        };
        r.push(ids::RECORD_LENGTH, "0".repeat(width));
        if let Some(v) = self.receiver_id {
            r.push(ids::RECEIVER_ID, v);
        }
        if let Some(v) = self.sender_id {
            r.push(ids::SENDER_ID, v);
        }
        if let Some(v) = self.charset_code {
            r.push(ids::CHARSET, v);
        }
        if let Some(v) = self.version {
            r.push(ids::GDT_VERSION, v);
        }
        for (id, v) in self.header {
            r.push(id, v);
        }
        let mut patient = self.patient;
        patient.sort_by_key(|(id, _)| *id);
        for (id, v) in patient.iter().filter(|(id, _)| id.get() < ids::SEX.get()) {
            r.push(*id, v.as_str());
        }
        match self.sex {
            None => {}
            Some(SexValue::Raw(s)) => {
                r.push(ids::SEX, s);
            }
            Some(SexValue::Typed(s)) => {
                let code = s.code_for(version).ok_or_else(|| Error::InvalidSex {
                    value: s.gdt3_code().to_string(),
                })?;
                r.push(ids::SEX, code);
            }
        }
        for (id, v) in patient.iter().filter(|(id, _)| id.get() > ids::SEX.get()) {
            r.push(*id, v.as_str());
        }
        if let Some(v) = self.procedure {
            r.push(ids::PROCEDURE, v);
        }
        if let Some(v) = self.date {
            r.push(ids::EXAM_DATE, v);
        }
        if let Some(v) = self.time {
            r.push(ids::EXAM_TIME, v);
        }
        // Findings, then comments, then the result table, each in call order.
        for kind in [ids::FINDINGS, ids::COMMENT, ids::RESULT_TABLE_TEXT] {
            for (_, line) in self.texts.iter().filter(|(id, _)| *id == kind) {
                r.push(kind, line.as_str());
            }
        }
        for f in self.files {
            r.push(ids::FILE_ARCHIVE_ID, f.archive_id)
                .push(ids::FILE_FORMAT, f.format)
                .push(ids::FILE_DESCRIPTION, f.description)
                .push(ids::FILE_REFERENCE, f.reference);
        }
        for t in &self.tests {
            t.push_to(&mut r);
        }
        if let Some(v) = self.signature {
            r.push(ids::SIGNATURE, v);
        }
        for (id, v) in self.extra {
            r.push(id, v);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(split_text("abc def", 3), ["abc", "def"]);
        assert_eq!(split_text("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(split_text("a\r\n\r\nb\r\n\r\n", 10), ["a", "", "b"]);
        assert_eq!(split_text("  x", 2), [" ", "x"]);
        assert_eq!(split_text("äöü ß", 3), ["äöü", "ß"]);
        assert_eq!(split_text("x", 0), ["x"]);
        let long = "y".repeat(2000);
        let lines = split_text(&long, 5000);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() <= MAX_CONTENT_BYTES));
    }

    #[test]
    fn sex_in_v2_must_be_codable() {
        let err = ResultRecordBuilder::new().sex(Sex::Diverse).build();
        assert!(matches!(err, Err(Error::InvalidSex { .. })));
        let r = ResultRecordBuilder::new()
            .version(GdtVersion::V3_0)
            .sex(Sex::Diverse)
            .build()
            .unwrap();
        assert_eq!(r.get(ids::SEX), Some("D"));
        assert_eq!(r.get(ids::RECORD_LENGTH), Some("0000000"));
    }

    #[test]
    fn answering_swaps_ids() {
        let mut req = Record::new(RecordType::ExaminationRequest);
        req.push(ids::RECEIVER_ID, "DEV")
            .push(ids::SENDER_ID, "PVS")
            .push(ids::CHARSET, "3")
            .push(ids::PATIENT_NUMBER, "7")
            .push(ids::SEX, "2")
            .push(ids::PROCEDURE, "EKG01");
        let r = ResultRecordBuilder::answering(&req).build().unwrap();
        assert_eq!(r.sender_id(), Some("DEV"));
        assert_eq!(r.receiver_id(), Some("PVS"));
        assert_eq!(r.get(ids::CHARSET), Some("3"));
        assert_eq!(r.get(ids::SEX), Some("2"));
        assert_eq!(r.procedure(), Some("EKG01"));
        assert_eq!(r.patient().number(), Some("7"));
    }
}
