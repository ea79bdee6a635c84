//! Typed, borrowing views on a [`Record`].
//!
//! A view holds a reference to the record and reads fields when asked, so nothing the
//! record contains is dropped or duplicated. Text getters return `Option<&str>` (absent
//! field → `None`); getters of typed values return `Result<Option<T>, Error>` so that
//! "absent" and "present but invalid" stay apart.

use crate::error::Error;
use crate::field::{Field, FieldId, ids};
use crate::record::Record;
use crate::types::{self, Date, GdtVersion, RecordType, Sex, Time};

/// The patient fields of a record (3000–3628).
#[derive(Debug, Clone, Copy)]
pub struct PatientView<'a> {
    record: &'a Record,
}

impl<'a> PatientView<'a> {
    pub(crate) fn new(record: &'a Record) -> Self {
        Self { record }
    }

    /// 3000 — patient number in the practice system.
    pub fn number(&self) -> Option<&'a str> {
        self.record.get(ids::PATIENT_NUMBER)
    }

    /// 3100 — name prefix ("von", "van der").
    pub fn name_prefix(&self) -> Option<&'a str> {
        self.record.get(ids::NAME_PREFIX)
    }

    /// 3101 — surname.
    pub fn surname(&self) -> Option<&'a str> {
        self.record.get(ids::SURNAME)
    }

    /// 3102 — first name.
    pub fn first_name(&self) -> Option<&'a str> {
        self.record.get(ids::FIRST_NAME)
    }

    /// 3103 — birth date.
    pub fn birth_date(&self) -> Result<Option<Date>, Error> {
        types::date_field(ids::BIRTH_DATE, self.record.get(ids::BIRTH_DATE))
    }

    /// 3104 — title.
    pub fn title(&self) -> Option<&'a str> {
        self.record.get(ids::TITLE)
    }

    /// 3105 — insurance number.
    pub fn insurance_number(&self) -> Option<&'a str> {
        self.record.get(ids::INSURANCE_NUMBER)
    }

    /// 3106 — place of residence; in GDT 2.1 postal code and city together
    /// ("50667 Köln").
    pub fn residence(&self) -> Option<&'a str> {
        self.record.get(ids::RESIDENCE)
    }

    /// 3107 — street and house number.
    pub fn street(&self) -> Option<&'a str> {
        self.record.get(ids::STREET)
    }

    /// 3112 — postal code (GDT 3.0).
    pub fn postal_code(&self) -> Option<&'a str> {
        self.record.get(ids::POSTAL_CODE)
    }

    /// 3113 — city (GDT 3.0).
    pub fn city(&self) -> Option<&'a str> {
        self.record.get(ids::CITY)
    }

    /// 3110 — sex, in the 2.1 (`1`/`2`) or 3.x (`M`/`W`/`D`/`X`) coding.
    pub fn sex(&self) -> Result<Option<Sex>, Error> {
        self.record
            .get(ids::SEX)
            .map(|v| {
                Sex::parse(v).ok_or_else(|| Error::InvalidSex {
                    value: v.to_string(),
                })
            })
            .transpose()
    }

    /// 3622 — height in cm.
    pub fn height_cm(&self) -> Result<Option<f64>, Error> {
        types::number_field(ids::HEIGHT, self.record.get(ids::HEIGHT))
    }

    /// 3623 — weight in kg.
    pub fn weight_kg(&self) -> Result<Option<f64>, Error> {
        types::number_field(ids::WEIGHT, self.record.get(ids::WEIGHT))
    }

    /// 3619 — e-mail address (GDT 3.0).
    pub fn email(&self) -> Option<&'a str> {
        self.record.get(ids::EMAIL)
    }

    /// 3633 — e-mail as the catalogue's vendors write it; see [`Self::email`].
    pub fn vendor_email(&self) -> Option<&'a str> {
        self.record.get(ids::VENDOR_EMAIL)
    }

    /// 3626 — phone number (GDT 3.0).
    pub fn phone(&self) -> Option<&'a str> {
        self.record.get(ids::PHONE)
    }

    /// 3618 — mobile phone number (GDT 3.0).
    pub fn mobile_phone(&self) -> Option<&'a str> {
        self.record.get(ids::MOBILE_PHONE)
    }

    /// 3628 — mother tongue.
    pub fn mother_tongue(&self) -> Option<&'a str> {
        self.record.get(ids::MOTHER_TONGUE)
    }
}

fn expect_type(record: &Record, expected: RecordType) -> Result<(), Error> {
    match record.record_type() {
        Some(t) if t == expected => Ok(()),
        other => Err(Error::WrongRecordType {
            expected: expected.code(),
            found: other.map_or(0, RecordType::code),
        }),
    }
}

/// A 6302 record, "request a new examination", as the practice system sends it to a
/// device.
///
/// ```
/// let bytes = include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt");
/// let record = gdt::parse(bytes)?;
/// let req = record.as_request().unwrap();
/// assert_eq!(req.patient().surname(), Some("Müller"));
/// assert_eq!(req.procedure(), Some("EKG01"));
/// assert_eq!(req.patient().birth_date()?.map(|d| d.year()), Some(1965));
/// # Ok::<(), gdt::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    record: &'a Record,
}

impl<'a> RequestView<'a> {
    /// The view, or [`Error::WrongRecordType`] when the record is not a 6302.
    pub fn new(record: &'a Record) -> Result<Self, Error> {
        expect_type(record, RecordType::ExaminationRequest)?;
        Ok(Self { record })
    }

    /// The whole record.
    pub fn record(&self) -> &'a Record {
        self.record
    }

    /// 8316 — GDT id of the sender (the practice system).
    pub fn sender_id(&self) -> Option<&'a str> {
        self.record.sender_id()
    }

    /// 8315 — GDT id of the receiver (the device).
    pub fn receiver_id(&self) -> Option<&'a str> {
        self.record.receiver_id()
    }

    /// 9218 — GDT version.
    pub fn version(&self) -> Option<GdtVersion> {
        self.record.version()
    }

    /// The patient.
    pub fn patient(&self) -> PatientView<'a> {
        PatientView::new(self.record)
    }

    /// 8402 — device and procedure specific code (what to examine, e.g. `EKG01`).
    pub fn procedure(&self) -> Option<&'a str> {
        self.record.get(ids::PROCEDURE)
    }

    /// 8404 — subcategory of 8402 (GDT 3.0).
    pub fn procedure_subcategory(&self) -> Option<&'a str> {
        self.record.get(ids::PROCEDURE_SUBCATEGORY)
    }

    /// 8410 — requested test ids, in order.
    pub fn test_ids(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.get_all(ids::TEST_ID)
    }

    /// 8310 — request id (GDT 3.0, echoed in the result).
    pub fn request_id(&self) -> Option<&'a str> {
        self.record.get(ids::REQUEST_ID)
    }

    /// 2998 — the requested service or test (catalogue vendors).
    pub fn requested_service(&self) -> Option<&'a str> {
        self.record.get(ids::REQUESTED_SERVICE)
    }

    /// 2999 — the order reference (catalogue vendors).
    pub fn order_reference(&self) -> Option<&'a str> {
        self.record.get(ids::ORDER_REFERENCE)
    }

    /// 3629 — an additional order number (catalogue vendors).
    pub fn extra_order_number(&self) -> Option<&'a str> {
        self.record.get(ids::EXTRA_ORDER_NUMBER)
    }

    /// 8314 — request UID (GDT 3.0).
    pub fn request_uid(&self) -> Option<&'a str> {
        self.record.get(ids::REQUEST_UID)
    }

    /// 6200 — requested date.
    pub fn date(&self) -> Result<Option<Date>, Error> {
        self.record.exam_date()
    }

    /// 6201 — requested time.
    pub fn time(&self) -> Result<Option<Time>, Error> {
        self.record.exam_time()
    }

    /// 8609 — billing type (GDT 3.0).
    pub fn billing_type(&self) -> Option<&'a str> {
        self.record.get(ids::BILLING_TYPE)
    }
}

/// A 6310 record, "transfer the data of an examination": the result a device sends
/// back to the practice system.
///
/// ```
/// let bytes = include_bytes!("../test_assets/result_6310_gdt21_cp437.gdt");
/// let record = gdt::parse(bytes)?;
/// let res = record.as_result().unwrap();
/// let hr = res.tests().find(|t| t.id() == "HF").unwrap();
/// assert_eq!(hr.value_f64()?, Some(72.0));
/// assert_eq!(hr.unit(), Some("/min"));
/// assert_eq!(res.files().next().unwrap().format(), Some("PDF"));
/// # Ok::<(), gdt::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ResultView<'a> {
    record: &'a Record,
}

impl<'a> ResultView<'a> {
    /// The view, or [`Error::WrongRecordType`] when the record is not a 6310.
    pub fn new(record: &'a Record) -> Result<Self, Error> {
        expect_type(record, RecordType::ExaminationData)?;
        Ok(Self { record })
    }

    /// The whole record.
    pub fn record(&self) -> &'a Record {
        self.record
    }

    /// 8316 — GDT id of the sender (the device).
    pub fn sender_id(&self) -> Option<&'a str> {
        self.record.sender_id()
    }

    /// 8315 — GDT id of the receiver (the practice system).
    pub fn receiver_id(&self) -> Option<&'a str> {
        self.record.receiver_id()
    }

    /// The patient.
    pub fn patient(&self) -> PatientView<'a> {
        PatientView::new(self.record)
    }

    /// 8402 — device and procedure specific code.
    pub fn procedure(&self) -> Option<&'a str> {
        self.record.get(ids::PROCEDURE)
    }

    /// 8310 — request id this result answers (GDT 3.0).
    pub fn request_id(&self) -> Option<&'a str> {
        self.record.get(ids::REQUEST_ID)
    }

    /// 6200 — date of the examination.
    pub fn date(&self) -> Result<Option<Date>, Error> {
        self.record.exam_date()
    }

    /// 6201 — time of the examination.
    pub fn time(&self) -> Result<Option<Time>, Error> {
        self.record.exam_time()
    }

    /// 6220 — the findings lines, in order.
    pub fn findings(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.get_all(ids::FINDINGS)
    }

    /// The findings lines joined with `\n`.
    pub fn findings_text(&self) -> String {
        join_lines(self.findings())
    }

    /// 6227 — comment lines.
    pub fn comments(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.get_all(ids::COMMENT)
    }

    /// 6228 — lines of the formatted result table.
    pub fn result_table(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.record.get_all(ids::RESULT_TABLE_TEXT)
    }

    /// 8990 — signature.
    pub fn signature(&self) -> Option<&'a str> {
        self.record.get(ids::SIGNATURE)
    }

    /// The test results: each group starts at an 8410 (test id) and holds the 84xx
    /// fields that follow it (8411 name, 8420 value, 8421 unit, 8480 result text …)
    /// up to the next 8410 or the first field outside 8411–8499.
    pub fn tests(&self) -> Tests<'a> {
        Tests {
            fields: self.record.fields(),
        }
    }

    /// The file references: each starts at a 6302 (archive id) and holds the 6303
    /// (format), 6304 (description) and 6305 (path or URL) that follow it.
    pub fn files(&self) -> FileReferences<'a> {
        FileReferences {
            fields: self.record.fields(),
        }
    }
}

fn join_lines<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for (i, l) in lines.enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(l);
    }
    s
}

/// Finds the next group starting with `start` whose members satisfy `member`; returns
/// the group and the rest.
fn next_group(
    fields: &[Field],
    start: FieldId,
    member: impl Fn(FieldId) -> bool,
) -> Option<(&[Field], &[Field])> {
    let begin = fields.iter().position(|f| f.id == start)?;
    let from = fields.get(begin..)?;
    let len = from
        .iter()
        .skip(1)
        .position(|f| f.id == start || !member(f.id))
        .map_or(from.len(), |p| p + 1);
    Some(from.split_at(len))
}

/// Iterator over the test results of a record; see [`ResultView::tests`].
#[derive(Debug, Clone)]
pub struct Tests<'a> {
    fields: &'a [Field],
}

impl<'a> Iterator for Tests<'a> {
    type Item = TestResult<'a>;
    fn next(&mut self) -> Option<TestResult<'a>> {
        let (group, rest) = next_group(self.fields, ids::TEST_ID, |id| {
            (8411..=8499).contains(&id.get())
        })?;
        self.fields = rest;
        Some(TestResult { fields: group })
    }
}

/// One test result: an 8410 field and the 84xx fields after it, borrowed from the
/// record.
#[derive(Debug, Clone, Copy)]
pub struct TestResult<'a> {
    fields: &'a [Field],
}

impl<'a> TestResult<'a> {
    fn get(&self, id: FieldId) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.value.as_str())
    }

    fn get_all(&self, id: FieldId) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.id == id)
            .map(|f| f.value.as_str())
    }

    /// The fields of the group, 8410 first.
    pub fn fields(&self) -> &'a [Field] {
        self.fields
    }

    /// 8410 — test id.
    pub fn id(&self) -> &'a str {
        self.fields.first().map_or("", |f| f.value.as_str())
    }

    /// 8411 — test name.
    pub fn name(&self) -> Option<&'a str> {
        self.get(ids::TEST_NAME)
    }

    /// 8418 — test status.
    pub fn status(&self) -> Option<&'a str> {
        self.get(ids::TEST_STATUS)
    }

    /// 8420 — result value as written.
    pub fn value(&self) -> Option<&'a str> {
        self.get(ids::RESULT_VALUE)
    }

    /// 8420 — result value as a number (`.` or `,` as decimal separator).
    pub fn value_f64(&self) -> Result<Option<f64>, Error> {
        types::number_field(ids::RESULT_VALUE, self.value())
    }

    /// 8421 — unit.
    pub fn unit(&self) -> Option<&'a str> {
        self.get(ids::UNIT)
    }

    /// 8460 — normal range as text.
    pub fn normal_range_text(&self) -> Option<&'a str> {
        self.get(ids::NORMAL_RANGE_TEXT)
    }

    /// 8461 — normal range lower limit.
    pub fn normal_lower(&self) -> Result<Option<f64>, Error> {
        types::number_field(ids::NORMAL_LOWER, self.get(ids::NORMAL_LOWER))
    }

    /// 8462 — normal range upper limit.
    pub fn normal_upper(&self) -> Result<Option<f64>, Error> {
        types::number_field(ids::NORMAL_UPPER, self.get(ids::NORMAL_UPPER))
    }

    /// 8432 — collection date.
    pub fn collection_date(&self) -> Result<Option<Date>, Error> {
        types::date_field(ids::COLLECTION_DATE, self.get(ids::COLLECTION_DATE))
    }

    /// 8439 — collection time.
    pub fn collection_time(&self) -> Result<Option<Time>, Error> {
        types::time_field(ids::COLLECTION_TIME, self.get(ids::COLLECTION_TIME))
    }

    /// 8480 — result text lines.
    pub fn result_texts(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(ids::RESULT_TEXT)
    }

    /// 8470 — test notes.
    pub fn notes(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(ids::TEST_NOTES)
    }
}

/// Iterator over the file references of a record; see [`ResultView::files`].
#[derive(Debug, Clone)]
pub struct FileReferences<'a> {
    fields: &'a [Field],
}

impl<'a> Iterator for FileReferences<'a> {
    type Item = FileReference<'a>;
    fn next(&mut self) -> Option<FileReference<'a>> {
        let (group, rest) = next_group(self.fields, ids::FILE_ARCHIVE_ID, |id| {
            (6303..=6305).contains(&id.get())
        })?;
        self.fields = rest;
        Some(FileReference { fields: group })
    }
}

/// A file the result refers to (6302–6305), e.g. the PDF report.
#[derive(Debug, Clone, Copy)]
pub struct FileReference<'a> {
    fields: &'a [Field],
}

impl<'a> FileReference<'a> {
    fn get(&self, id: FieldId) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.value.as_str())
    }

    /// 6302 — archive id.
    pub fn archive_id(&self) -> &'a str {
        self.fields.first().map_or("", |f| f.value.as_str())
    }

    /// 6303 — file format (`PDF`, `JPG` …).
    pub fn format(&self) -> Option<&'a str> {
        self.get(ids::FILE_FORMAT)
    }

    /// 6304 — what the file contains.
    pub fn description(&self) -> Option<&'a str> {
        self.get(ids::FILE_DESCRIPTION)
    }

    /// 6305 — where the file is (path or URL).
    pub fn reference(&self) -> Option<&'a str> {
        self.get(ids::FILE_REFERENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> Record {
        let mut r = Record::new(RecordType::ExaminationData);
        r.push(ids::FINDINGS, "a")
            .push(ids::TEST_ID, "T1")
            .push(ids::TEST_NAME, "one")
            .push(ids::RESULT_VALUE, "1,5")
            .push(ids::RESULT_TEXT, "x")
            .push(ids::RESULT_TEXT, "y")
            .push(ids::TEST_ID, "T2")
            .push(ids::SIGNATURE, "dr")
            .push(ids::FILE_ARCHIVE_ID, "A")
            .push(ids::FILE_FORMAT, "PDF")
            .push(ids::FILE_ARCHIVE_ID, "B")
            .push(ids::FILE_REFERENCE, "b.pdf")
            .push(ids::FINDINGS, "b");
        r
    }

    #[test]
    fn grouping() {
        let r = result();
        let v = r.as_result().unwrap();
        let tests: Vec<_> = v.tests().collect();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].id(), "T1");
        assert_eq!(tests[0].value_f64(), Ok(Some(1.5)));
        assert_eq!(tests[0].result_texts().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(tests[1].id(), "T2");
        assert_eq!(tests[1].fields().len(), 1); // 8990 is not part of the test
        let files: Vec<_> = v.files().collect();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].format(), Some("PDF"));
        assert_eq!(files[0].reference(), None);
        assert_eq!(files[1].reference(), Some("b.pdf"));
        assert_eq!(v.findings_text(), "a\nb");
        assert_eq!(v.signature(), Some("dr"));
    }

    #[test]
    fn wrong_type() {
        let r = result();
        assert_eq!(
            RequestView::new(&r).map(|_| ()),
            Err(Error::WrongRecordType {
                expected: 6302,
                found: 6310
            })
        );
        assert!(r.as_request().is_none());
    }

    #[test]
    fn invalid_values() {
        let mut r = Record::new(RecordType::ExaminationRequest);
        r.push(ids::BIRTH_DATE, "31021990")
            .push(ids::SEX, "Q")
            .push(ids::HEIGHT, "1,80 m");
        let p = r.patient();
        assert!(matches!(p.birth_date(), Err(Error::InvalidDate { .. })));
        assert!(matches!(p.sex(), Err(Error::InvalidSex { .. })));
        assert!(matches!(p.height_cm(), Err(Error::InvalidNumber { .. })));
        assert_eq!(p.weight_kg(), Ok(None));
    }
}
