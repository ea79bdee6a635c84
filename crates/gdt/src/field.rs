//! Field ids (Feldkennungen), fields, the constants of the ids this crate knows and
//! their names.

use std::fmt;

/// A GDT field id (Feldkennung): a number from 0000 to 9999, always written as four
/// digits.
///
/// ```
/// use gdt::{FieldId, ids};
/// assert_eq!(FieldId::new(3101), Some(ids::SURNAME));
/// assert_eq!(FieldId::new(10_000), None);
/// assert_eq!(ids::SOFTWARE.to_string(), "0103");
/// assert_eq!(FieldId::from_ascii(b"8000"), Some(ids::RECORD_TYPE));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) u16);

impl FieldId {
    /// The id for a number, `None` above 9999.
    pub const fn new(id: u16) -> Option<Self> {
        if id <= 9999 { Some(Self(id)) } else { None }
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Reads four ASCII digits.
    pub fn from_ascii(digits: &[u8]) -> Option<Self> {
        match digits {
            [a, b, c, d] => {
                let mut n: u16 = 0;
                for &x in [a, b, c, d] {
                    if !x.is_ascii_digit() {
                        return None;
                    }
                    n = n * 10 + u16::from(x - b'0');
                }
                Some(Self(n))
            }
            _ => None,
        }
    }

    /// The four ASCII digits, zero-padded.
    pub const fn to_ascii(self) -> [u8; 4] {
        let n = self.0;
        [
            b'0' + (n / 1000 % 10) as u8,
            b'0' + (n / 100 % 10) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ]
    }

    /// The English name of the field if this crate knows it (see [`field_name`]).
    pub fn name(self) -> Option<&'static str> {
        field_name(self)
    }
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl TryFrom<u16> for FieldId {
    type Error = u16;
    fn try_from(id: u16) -> Result<Self, u16> {
        Self::new(id).ok_or(id)
    }
}

impl From<FieldId> for u16 {
    fn from(id: FieldId) -> u16 {
        id.0
    }
}

/// One line of a record: a field id and its content, decoded to Unicode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field id.
    pub id: FieldId,
    /// The content, decoded from the record's character set. It never contains CR or
    /// LF when it comes from the parser; the writer rejects values that do.
    pub value: String,
}

impl Field {
    /// A field.
    pub fn new(id: FieldId, value: impl Into<String>) -> Self {
        Self {
            id,
            value: value.into(),
        }
    }
}

/// Constants for the field ids of GDT 2.1 and 3.0 this crate reads or writes.
///
/// Names follow the standard's meaning (e.g. 3101 is the surname, "Name des
/// Patienten"; 3102 the first name). Ids only used by GDT 3.0 say so.
pub mod ids {
    use super::FieldId;

    /// 0102 — responsible for the software (Softwareverantwortlicher).
    pub const SOFTWARE_RESPONSIBLE: FieldId = FieldId(102);
    /// 0103 — software name.
    pub const SOFTWARE: FieldId = FieldId(103);
    /// 0132 — software release.
    pub const SOFTWARE_RELEASE: FieldId = FieldId(132);
    /// 2998 — the requested service or test. Not in the GDT 2.1/3.0 field tables:
    /// written by the practice systems of the device maker's catalogue (Doctolib,
    /// Tomedo).
    pub const REQUESTED_SERVICE: FieldId = FieldId(2998);
    /// 2999 — the request's order reference (catalogue vendors, like 2998).
    pub const ORDER_REFERENCE: FieldId = FieldId(2999);
    /// 3000 — patient number / patient id in the practice system (Patientennummer).
    pub const PATIENT_NUMBER: FieldId = FieldId(3000);
    /// 3100 — name prefix / addition (Namenszusatz, Vorsatzwort: "von", "van der").
    pub const NAME_PREFIX: FieldId = FieldId(3100);
    /// 3101 — surname (Name des Patienten).
    pub const SURNAME: FieldId = FieldId(3101);
    /// 3102 — first name (Vorname).
    pub const FIRST_NAME: FieldId = FieldId(3102);
    /// 3103 — birth date, `DDMMYYYY`.
    pub const BIRTH_DATE: FieldId = FieldId(3103);
    /// 3104 — title (Titel, e.g. "Dr.").
    pub const TITLE: FieldId = FieldId(3104);
    /// 3105 — insurance number (Versichertennummer).
    pub const INSURANCE_NUMBER: FieldId = FieldId(3105);
    /// 3106 — place of residence (Wohnort; in GDT 2.1 postal code and city in one field).
    pub const RESIDENCE: FieldId = FieldId(3106);
    /// 3107 — street and house number (Straße).
    pub const STREET: FieldId = FieldId(3107);
    /// 3108 — insurance kind (Versichertenart: 1 member, 3 family, 5 pensioner).
    pub const INSURANCE_KIND: FieldId = FieldId(3108);
    /// 3110 — sex (GDT 2.1: 1 male, 2 female; GDT 3.x: M, W, D, X).
    pub const SEX: FieldId = FieldId(3110);
    /// 3112 — postal code (PLZ), GDT 3.0.
    pub const POSTAL_CODE: FieldId = FieldId(3112);
    /// 3113 — city (Wohnort), GDT 3.0.
    pub const CITY: FieldId = FieldId(3113);
    /// 3114 — country code of residence, GDT 3.0.
    pub const COUNTRY_CODE: FieldId = FieldId(3114);
    /// 3115 — address supplement, GDT 3.0.
    pub const ADDRESS_SUPPLEMENT: FieldId = FieldId(3115);
    /// 3618 — mobile phone number, GDT 3.0.
    pub const MOBILE_PHONE: FieldId = FieldId(3618);
    /// 3619 — e-mail address, GDT 3.0.
    pub const EMAIL: FieldId = FieldId(3619);
    /// 3622 — height in cm.
    pub const HEIGHT: FieldId = FieldId(3622);
    /// 3623 — weight in kg.
    pub const WEIGHT: FieldId = FieldId(3623);
    /// 3626 — phone number, GDT 3.0.
    pub const PHONE: FieldId = FieldId(3626);
    /// 3628 — mother tongue.
    pub const MOTHER_TONGUE: FieldId = FieldId(3628);
    /// 3629 — an additional order number (catalogue vendors; not in the standard's
    /// tables). The catalogue lists 3626 beside it, which GDT 3.0 defines as the
    /// phone number.
    pub const EXTRA_ORDER_NUMBER: FieldId = FieldId(3629);
    /// 3633 — the e-mail address as the catalogue's vendors write it (GDT 3.0
    /// defines 3619).
    pub const VENDOR_EMAIL: FieldId = FieldId(3633);
    /// 6200 — date of the examination / of storing the data, `DDMMYYYY`.
    pub const EXAM_DATE: FieldId = FieldId(6200);
    /// 6201 — time of the examination, `HHMMSS`.
    pub const EXAM_TIME: FieldId = FieldId(6201);
    /// 6205 — current diagnosis (repeatable).
    pub const CURRENT_DIAGNOSIS: FieldId = FieldId(6205);
    /// 6220 — findings (Befund), one line per field, repeatable.
    pub const FINDINGS: FieldId = FieldId(6220);
    /// 6221 — external findings (Fremdbefund), repeatable.
    pub const EXTERNAL_FINDINGS: FieldId = FieldId(6221);
    /// 6226 — number of following 6228 lines.
    pub const RESULT_TABLE_LINES: FieldId = FieldId(6226);
    /// 6227 — comment (Kommentar), repeatable.
    pub const COMMENT: FieldId = FieldId(6227);
    /// 6228 — formatted result table text, one line per field, repeatable.
    pub const RESULT_TABLE_TEXT: FieldId = FieldId(6228);
    /// 6302 — file archive id (Datei-Archivierungskennung); starts a file reference.
    /// (Not to be confused with record type 6302, which is the content of 8000.)
    pub const FILE_ARCHIVE_ID: FieldId = FieldId(6302);
    /// 6303 — file format (e.g. `PDF`).
    pub const FILE_FORMAT: FieldId = FieldId(6303);
    /// 6304 — file content description.
    pub const FILE_DESCRIPTION: FieldId = FieldId(6304);
    /// 6305 — reference to the file (path or URL).
    pub const FILE_REFERENCE: FieldId = FieldId(6305);
    /// 6329 — file content as Base64, GDT 3.0.
    pub const FILE_BASE64: FieldId = FieldId(6329);
    /// 8000 — record type (Satzart), always the first line.
    pub const RECORD_TYPE: FieldId = FieldId(8000);
    /// 8100 — record length (Satzlänge) in bytes, all lines with CR LF included.
    pub const RECORD_LENGTH: FieldId = FieldId(8100);
    /// 8200 — object start (Obj_…), GDT 3.0.
    pub const OBJECT_START: FieldId = FieldId(8200);
    /// 8201 — object end with the object's number of lines, GDT 3.0.
    pub const OBJECT_END: FieldId = FieldId(8201);
    /// 8202 — record end with the record's number of lines, GDT 3.0.
    pub const RECORD_END: FieldId = FieldId(8202);
    /// 8310 — request id (Anforderungs-Ident).
    pub const REQUEST_ID: FieldId = FieldId(8310);
    /// 8314 — request UID, GDT 3.0.
    pub const REQUEST_UID: FieldId = FieldId(8314);
    /// 8315 — GDT id of the receiver (GDT-ID des Empfängers).
    pub const RECEIVER_ID: FieldId = FieldId(8315);
    /// 8316 — GDT id of the sender (GDT-ID des Senders).
    pub const SENDER_ID: FieldId = FieldId(8316);
    /// 8402 — device and procedure specific code (Geräte- und verfahrensspezifisches
    /// Kennfeld, e.g. `EKG01`, `BDM01`).
    pub const PROCEDURE: FieldId = FieldId(8402);
    /// 8403 — fee schedule (Gebührenordnung), GDT 3.0.
    pub const FEE_SCHEDULE: FieldId = FieldId(8403);
    /// 8404 — subcategory of 8402, GDT 3.0.
    pub const PROCEDURE_SUBCATEGORY: FieldId = FieldId(8404);
    /// 8410 — test id (Test-Ident); starts a test result group.
    pub const TEST_ID: FieldId = FieldId(8410);
    /// 8411 — test name (Testbezeichnung).
    pub const TEST_NAME: FieldId = FieldId(8411);
    /// 8418 — test status.
    pub const TEST_STATUS: FieldId = FieldId(8418);
    /// 8420 — result value (Ergebnis-Wert).
    pub const RESULT_VALUE: FieldId = FieldId(8420);
    /// 8421 — unit (Einheit).
    pub const UNIT: FieldId = FieldId(8421);
    /// 8428 — sample material id.
    pub const SAMPLE_ID: FieldId = FieldId(8428);
    /// 8429 — sample material index.
    pub const SAMPLE_INDEX: FieldId = FieldId(8429);
    /// 8430 — sample material name.
    pub const SAMPLE_NAME: FieldId = FieldId(8430);
    /// 8431 — sample material specification.
    pub const SAMPLE_SPEC: FieldId = FieldId(8431);
    /// 8432 — collection date, `DDMMYYYY`.
    pub const COLLECTION_DATE: FieldId = FieldId(8432);
    /// 8437 — unit(s) of a data stream.
    pub const DATA_STREAM_UNITS: FieldId = FieldId(8437);
    /// 8438 — data stream.
    pub const DATA_STREAM: FieldId = FieldId(8438);
    /// 8439 — collection time, `HHMMSS`.
    pub const COLLECTION_TIME: FieldId = FieldId(8439);
    /// 8460 — normal range as text.
    pub const NORMAL_RANGE_TEXT: FieldId = FieldId(8460);
    /// 8461 — normal range lower limit.
    pub const NORMAL_LOWER: FieldId = FieldId(8461);
    /// 8462 — normal range upper limit.
    pub const NORMAL_UPPER: FieldId = FieldId(8462);
    /// 8470 — test notes (Testbezogene Hinweise), repeatable.
    pub const TEST_NOTES: FieldId = FieldId(8470);
    /// 8480 — result text (Ergebnis-Text), repeatable.
    pub const RESULT_TEXT: FieldId = FieldId(8480);
    /// 8491 — ordering / responsible physician.
    pub const RESPONSIBLE_PHYSICIAN: FieldId = FieldId(8491);
    /// 8609 — billing type (Abrechnungstyp), GDT 3.0.
    pub const BILLING_TYPE: FieldId = FieldId(8609);
    /// 8990 — signature (Namenszeichen).
    pub const SIGNATURE: FieldId = FieldId(8990);
    /// 9103 — creation date, GDT 3.0.
    pub const CREATION_DATE: FieldId = FieldId(9103);
    /// 9206 — character set (Verwendeter Zeichensatz): 1, 2 or 3.
    pub const CHARSET: FieldId = FieldId(9206);
    /// 9218 — GDT version (`02.10`, `03.00`, …).
    pub const GDT_VERSION: FieldId = FieldId(9218);
}

/// English names of the fields in [`ids`], for error messages, logs and dashboards.
///
/// ```
/// use gdt::{field_name, FieldId};
/// assert_eq!(field_name(gdt::ids::RECORD_LENGTH), Some("record length"));
/// assert_eq!(field_name(FieldId::new(4711).unwrap()), None);
/// ```
pub fn field_name(id: FieldId) -> Option<&'static str> {
    Some(match id.0 {
        102 => "software responsible",
        103 => "software",
        132 => "software release",
        3000 => "patient number",
        3100 => "name prefix",
        3101 => "surname",
        3102 => "first name",
        3103 => "birth date",
        3104 => "title",
        3105 => "insurance number",
        3106 => "residence",
        3107 => "street",
        3108 => "insurance kind",
        3110 => "sex",
        3112 => "postal code",
        3113 => "city",
        3114 => "country code",
        3115 => "address supplement",
        3618 => "mobile phone",
        3619 => "e-mail",
        3622 => "height (cm)",
        3623 => "weight (kg)",
        3626 => "phone",
        3628 => "mother tongue",
        3629 => "additional order number (vendor)",
        3633 => "e-mail (vendor)",
        2998 => "requested service (vendor)",
        2999 => "order reference (vendor)",
        6200 => "examination date",
        6201 => "examination time",
        6205 => "current diagnosis",
        6220 => "findings",
        6221 => "external findings",
        6226 => "result table line count",
        6227 => "comment",
        6228 => "result table text",
        6302 => "file archive id",
        6303 => "file format",
        6304 => "file description",
        6305 => "file reference",
        6329 => "file content (Base64)",
        8000 => "record type",
        8100 => "record length",
        8200 => "object start",
        8201 => "object end",
        8202 => "record end",
        8310 => "request id",
        8314 => "request UID",
        8315 => "receiver GDT id",
        8316 => "sender GDT id",
        8402 => "device/procedure code",
        8403 => "fee schedule",
        8404 => "procedure subcategory",
        8410 => "test id",
        8411 => "test name",
        8418 => "test status",
        8420 => "result value",
        8421 => "unit",
        8428 => "sample id",
        8429 => "sample index",
        8430 => "sample name",
        8431 => "sample specification",
        8432 => "collection date",
        8437 => "data stream units",
        8438 => "data stream",
        8439 => "collection time",
        8460 => "normal range text",
        8461 => "normal range lower limit",
        8462 => "normal range upper limit",
        8470 => "test notes",
        8480 => "result text",
        8491 => "responsible physician",
        8609 => "billing type",
        8990 => "signature",
        9103 => "creation date",
        9206 => "character set",
        9218 => "GDT version",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_round_trip() {
        for n in [0u16, 7, 102, 3101, 8000, 9999] {
            let id = FieldId::new(n).unwrap();
            assert_eq!(FieldId::from_ascii(&id.to_ascii()), Some(id));
            assert_eq!(id.to_string().as_bytes(), id.to_ascii());
        }
        assert_eq!(FieldId::from_ascii(b"80a0"), None);
        assert_eq!(FieldId::from_ascii(b"800"), None);
        assert_eq!(FieldId::from_ascii(b"80000"), None);
        assert_eq!(FieldId::try_from(10_000u16), Err(10_000));
    }

    #[test]
    fn every_constant_has_a_name() {
        use ids::*;
        for id in [
            SOFTWARE_RESPONSIBLE,
            SOFTWARE,
            SOFTWARE_RELEASE,
            PATIENT_NUMBER,
            NAME_PREFIX,
            SURNAME,
            FIRST_NAME,
            BIRTH_DATE,
            TITLE,
            INSURANCE_NUMBER,
            RESIDENCE,
            STREET,
            INSURANCE_KIND,
            SEX,
            POSTAL_CODE,
            CITY,
            COUNTRY_CODE,
            ADDRESS_SUPPLEMENT,
            MOBILE_PHONE,
            EMAIL,
            HEIGHT,
            WEIGHT,
            PHONE,
            MOTHER_TONGUE,
            EXTRA_ORDER_NUMBER,
            VENDOR_EMAIL,
            REQUESTED_SERVICE,
            ORDER_REFERENCE,
            EXAM_DATE,
            EXAM_TIME,
            CURRENT_DIAGNOSIS,
            FINDINGS,
            EXTERNAL_FINDINGS,
            RESULT_TABLE_LINES,
            COMMENT,
            RESULT_TABLE_TEXT,
            FILE_ARCHIVE_ID,
            FILE_FORMAT,
            FILE_DESCRIPTION,
            FILE_REFERENCE,
            FILE_BASE64,
            RECORD_TYPE,
            RECORD_LENGTH,
            OBJECT_START,
            OBJECT_END,
            RECORD_END,
            REQUEST_ID,
            REQUEST_UID,
            RECEIVER_ID,
            SENDER_ID,
            PROCEDURE,
            FEE_SCHEDULE,
            PROCEDURE_SUBCATEGORY,
            TEST_ID,
            TEST_NAME,
            TEST_STATUS,
            RESULT_VALUE,
            UNIT,
            SAMPLE_ID,
            SAMPLE_INDEX,
            SAMPLE_NAME,
            SAMPLE_SPEC,
            COLLECTION_DATE,
            DATA_STREAM_UNITS,
            DATA_STREAM,
            COLLECTION_TIME,
            NORMAL_RANGE_TEXT,
            NORMAL_LOWER,
            NORMAL_UPPER,
            TEST_NOTES,
            RESULT_TEXT,
            RESPONSIBLE_PHYSICIAN,
            BILLING_TYPE,
            SIGNATURE,
            CREATION_DATE,
            CHARSET,
            GDT_VERSION,
        ] {
            assert!(field_name(id).is_some(), "{id}");
        }
    }
}
