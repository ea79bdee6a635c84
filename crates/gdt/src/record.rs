//! The owned record: an ordered list of fields.

use crate::charset::Charset;
use crate::error::Error;
use crate::field::{Field, FieldId, ids};
use crate::types::{self, Date, GdtVersion, RecordType, Time};
use crate::view::PatientView;

/// One GDT record (Satz): its fields in order, decoded to Unicode.
///
/// Every field of the input is kept, in order, including fields this crate does not
/// know and repeated fields, so parsing and writing a record gives back the same bytes.
/// The typed getters read from this list; nothing is copied into a second structure
/// that could drift from it.
///
/// ```
/// use gdt::{ids, Record, RecordType};
/// let mut r = Record::new(RecordType::ExaminationRequest);
/// r.push(ids::PATIENT_NUMBER, "12345");
/// r.push(ids::SURNAME, "Müller");
/// r.set(ids::SURNAME, "Meier");
/// assert_eq!(r.get(ids::SURNAME), Some("Meier"));
/// assert_eq!(r.record_type(), Some(RecordType::ExaminationRequest));
/// assert_eq!(r.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Record {
    fields: Vec<Field>,
}

impl Record {
    /// A record holding only field 8000 with the given type. The writer adds 8100.
    pub fn new(record_type: RecordType) -> Self {
        Self {
            fields: vec![Field::new(ids::RECORD_TYPE, record_type.to_string())],
        }
    }

    /// A record of the given fields, as they are (the writer checks that the first is
    /// 8000).
    pub fn from_fields(fields: Vec<Field>) -> Self {
        Self { fields }
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The fields, to edit in place.
    pub fn fields_mut(&mut self) -> &mut Vec<Field> {
        &mut self.fields
    }

    /// Takes the fields out.
    pub fn into_fields(self) -> Vec<Field> {
        self.fields
    }

    /// Iterates `(id, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (FieldId, &str)> + '_ {
        self.fields.iter().map(|f| (f.id, f.value.as_str()))
    }

    /// Number of fields (lines).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of the first field with this id.
    pub fn get(&self, id: FieldId) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.value.as_str())
    }

    /// The values of every field with this id, in order (for repeated fields such as
    /// 6220 findings lines or 8410 test ids).
    pub fn get_all(&self, id: FieldId) -> impl Iterator<Item = &str> + '_ {
        self.fields
            .iter()
            .filter(move |f| f.id == id)
            .map(|f| f.value.as_str())
    }

    /// Whether the record has a field with this id.
    pub fn contains(&self, id: FieldId) -> bool {
        self.fields.iter().any(|f| f.id == id)
    }

    /// Appends a field.
    pub fn push(&mut self, id: FieldId, value: impl Into<String>) -> &mut Self {
        self.fields.push(Field::new(id, value));
        self
    }

    /// Inserts a field at a position (clamped to the end).
    pub fn insert(&mut self, index: usize, id: FieldId, value: impl Into<String>) -> &mut Self {
        let index = index.min(self.fields.len());
        self.fields.insert(index, Field::new(id, value));
        self
    }

    /// Sets the first field with this id (appends one when there is none). Later
    /// fields with the same id are left alone; use [`Record::remove_all`] first to
    /// replace a repeated field.
    pub fn set(&mut self, id: FieldId, value: impl Into<String>) -> &mut Self {
        match self.fields.iter_mut().find(|f| f.id == id) {
            Some(f) => f.value = value.into(),
            None => self.fields.push(Field::new(id, value)),
        }
        self
    }

    /// Removes every field with this id; returns how many there were.
    pub fn remove_all(&mut self, id: FieldId) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| f.id != id);
        before - self.fields.len()
    }

    /// Appends a long text as several fields with the same id, split so that each fits
    /// in `max_chars` characters (see [`split_text`](crate::split_text)). Use it for
    /// findings (6220), comments (6227) and result tables (6228).
    pub fn push_text(&mut self, id: FieldId, text: &str, max_chars: usize) -> &mut Self {
        for line in crate::builder::split_text(text, max_chars) {
            self.fields.push(Field::new(id, line));
        }
        self
    }

    // ----- header ---------------------------------------------------------------

    /// The record type (8000) if the record starts with a valid one.
    pub fn record_type(&self) -> Option<RecordType> {
        self.fields
            .first()
            .filter(|f| f.id == ids::RECORD_TYPE)
            .and_then(|f| RecordType::parse(&f.value))
    }

    /// The record length (8100) as written in the record. After parsing with the
    /// default options it equals the record's byte length; after editing it is stale
    /// until the record is written.
    pub fn record_length(&self) -> Result<Option<u64>, Error> {
        self.get(ids::RECORD_LENGTH)
            .map(|v| {
                let t = v.trim();
                (!t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| Error::InvalidRecordLength {
                        line: self.line_of(ids::RECORD_LENGTH),
                        value: v.to_string(),
                    })
            })
            .transpose()
    }

    /// The character set declared in 9206, [`Charset::Cp437`] when it is absent (the
    /// GDT default). `3` is read as ISO 8859-1.
    pub fn charset(&self) -> Result<Charset, Error> {
        self.charset_with(Charset::Latin1)
    }

    /// Like [`Record::charset`], with `ansi` for what 9206 = 3 means.
    pub fn charset_with(&self, ansi: Charset) -> Result<Charset, Error> {
        match self.get(ids::CHARSET) {
            None => Ok(Charset::Cp437),
            Some(v) => Charset::from_code(v, ansi).ok_or_else(|| Error::UnknownCharset {
                value: v.to_string(),
            }),
        }
    }

    /// The raw GDT version string of 9218 (`02.10`, `03.00`).
    pub fn version_str(&self) -> Option<&str> {
        self.get(ids::GDT_VERSION)
    }

    /// The GDT version of 9218, `None` when absent or not `MM.mm`.
    pub fn version(&self) -> Option<GdtVersion> {
        self.version_str().and_then(GdtVersion::parse)
    }

    /// The GDT id of the receiver (8315).
    pub fn receiver_id(&self) -> Option<&str> {
        self.get(ids::RECEIVER_ID)
    }

    /// The GDT id of the sender (8316).
    pub fn sender_id(&self) -> Option<&str> {
        self.get(ids::SENDER_ID)
    }

    /// The device and procedure specific code (8402, e.g. `EKG01`).
    pub fn procedure(&self) -> Option<&str> {
        self.get(ids::PROCEDURE)
    }

    /// The request id (8310).
    pub fn request_id(&self) -> Option<&str> {
        self.get(ids::REQUEST_ID)
    }

    /// The billing type (8609, GDT 3.0).
    pub fn billing_type(&self) -> Option<&str> {
        self.get(ids::BILLING_TYPE)
    }

    /// The examination date (6200).
    pub fn exam_date(&self) -> Result<Option<Date>, Error> {
        types::date_field(ids::EXAM_DATE, self.get(ids::EXAM_DATE))
    }

    /// The examination time (6201).
    pub fn exam_time(&self) -> Result<Option<Time>, Error> {
        types::time_field(ids::EXAM_TIME, self.get(ids::EXAM_TIME))
    }

    /// The patient fields (3000–3628).
    pub fn patient(&self) -> PatientView<'_> {
        PatientView::new(self)
    }

    /// The request view if this is a 6302 record.
    pub fn as_request(&self) -> Option<crate::view::RequestView<'_>> {
        crate::view::RequestView::new(self).ok()
    }

    /// The result view if this is a 6310 record.
    pub fn as_result(&self) -> Option<crate::view::ResultView<'_>> {
        crate::view::ResultView::new(self).ok()
    }

    /// Writes the record with the default options (charset from 9206, 8100 filled in,
    /// unencodable characters are an error).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        crate::write::write(self, &crate::write::WriteOptions::default())
    }

    /// 1-based line of the first field with this id (the line it would have when
    /// written), 0 when absent; for error messages about a parsed record.
    pub(crate) fn line_of(&self, id: FieldId) -> usize {
        self.fields
            .iter()
            .position(|f| f.id == id)
            .map_or(0, |i| i + 1)
    }
}

impl<'a> IntoIterator for &'a Record {
    type Item = &'a Field;
    type IntoIter = std::slice::Iter<'a, Field>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl FromIterator<Field> for Record {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        Self {
            fields: iter.into_iter().collect(),
        }
    }
}
