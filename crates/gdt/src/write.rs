//! Writing [`Record`]s as bytes.

use crate::charset::Charset;
use crate::error::Error;
use crate::field::{FieldId, ids};
use crate::record::Record;
use crate::types::RecordType;

/// What the writer does with a character the target charset cannot represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unencodable {
    /// Fail with [`Error::Unencodable`] naming the field and the character. The
    /// default: silently changing a patient's name is worse than a visible error.
    #[default]
    Error,
    /// Write `?` instead, as most GDT systems do.
    Replace,
}

/// How [`write()`] encodes a record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Encode in this charset instead of the one 9206 declares. 9206 itself is
    /// written as it is in the record: set it to match (see [`Charset::code`]) unless
    /// the receiver is known to expect the mismatch.
    pub charset_override: Option<Charset>,
    /// What 9206 = 3 means when the charset is taken from the record. Default
    /// [`Charset::Latin1`].
    pub ansi_charset: Charset,
    /// Unencodable characters: error (default) or `?`.
    pub unencodable: Unencodable,
    /// Add an 8100 line after 8000 when the record has none. On by default: GDT 2.1
    /// requires 8100 and receivers use it to see whether the file is complete.
    pub insert_record_length: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            charset_override: None,
            ansi_charset: Charset::Latin1,
            unencodable: Unencodable::Error,
            insert_record_length: true,
        }
    }
}

impl WriteOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`WriteOptions::charset_override`].
    pub fn charset_override(mut self, charset: Option<Charset>) -> Self {
        self.charset_override = charset;
        self
    }

    /// Sets [`WriteOptions::ansi_charset`].
    pub fn ansi_charset(mut self, charset: Charset) -> Self {
        self.ansi_charset = charset;
        self
    }

    /// Sets [`WriteOptions::unencodable`].
    pub fn unencodable(mut self, mode: Unencodable) -> Self {
        self.unencodable = mode;
        self
    }

    /// Sets [`WriteOptions::insert_record_length`].
    pub fn insert_record_length(mut self, insert: bool) -> Self {
        self.insert_record_length = insert;
        self
    }
}

/// The most content bytes one line can carry: 999 minus 3 length digits, 4 field-id
/// digits and CR LF.
pub const MAX_CONTENT_BYTES: usize = 999 - 9;

/// Encodes a record: each field as `LLLFFFFcontent` CR LF in the record's charset,
/// with each line's length and the record length (8100) computed from the encoded
/// bytes.
///
/// 8100 keeps the number of digits it has when that is 5 or more (so parsing and
/// writing a record gives back the same bytes); otherwise it gets 5 digits, or 7 when
/// 9218 says GDT 3.x, whose 8100 is 7 digits long. The length counts every line of the
/// record, the 8100 line itself included.
///
/// ```
/// use gdt::{ids, Record, RecordType, WriteOptions};
/// let mut r = Record::new(RecordType::ExaminationRequest);
/// r.push(ids::CHARSET, "2").push(ids::SURNAME, "Müller");
/// let bytes = gdt::write(&r, &WriteOptions::default())?;
/// assert_eq!(bytes, b"01380006302\r\n014810000052\r\n01092062\r\n0153101M\x81ller\r\n");
/// assert_eq!(gdt::parse(&bytes)?.get(ids::SURNAME), Some("Müller"));
/// # Ok::<(), gdt::Error>(())
/// ```
pub fn write(record: &Record, opts: &WriteOptions) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write_into(record, opts, &mut out)?;
    Ok(out)
}

/// Like [`write()`], appending to `out` (which may already hold other records: the
/// 8100 length counts only this record). On error `out` is left with a partial record
/// and should be discarded.
pub fn write_into(record: &Record, opts: &WriteOptions, out: &mut Vec<u8>) -> Result<(), Error> {
    let fields = record.fields();
    let Some(first) = fields.first() else {
        return Err(Error::NoFields);
    };
    if first.id != ids::RECORD_TYPE {
        return Err(Error::MissingRecordType {
            line: 1,
            found: first.id,
        });
    }
    if RecordType::parse(&first.value).is_none() {
        return Err(Error::InvalidRecordType {
            line: 1,
            value: first.value.clone(),
        });
    }
    let charset = match opts.charset_override {
        Some(c) => c,
        None => record.charset_with(opts.ansi_charset)?,
    };
    let replacement = match opts.unencodable {
        Unencodable::Error => None,
        Unencodable::Replace => Some(b'?'),
    };

    let existing = fields.iter().position(|f| f.id == ids::RECORD_LENGTH);
    let width = existing
        .and_then(|i| fields.get(i))
        .map(|f| f.value.as_str())
        .filter(|v| (5..=10).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(
            || {
                if record.version().is_some_and(|v| v.is_v3()) {
                    7
                } else {
                    5
                }
            },
            str::len,
        );
    let zeros = "0".repeat(width);

    let start = out.len();
    out.reserve(fields.iter().map(|f| f.value.len() + 9).sum::<usize>() + 16);
    // Where the 8100 digits are, to fill in when the total is known.
    let mut length_digits: Option<usize> = None;
    for (i, field) in fields.iter().enumerate() {
        if Some(i) == existing {
            length_digits = Some(out.len() + 7);
            write_line(out, field.id, &zeros, charset, replacement)?;
        } else {
            write_line(out, field.id, &field.value, charset, replacement)?;
        }
        if i == 0 && existing.is_none() && opts.insert_record_length {
            length_digits = Some(out.len() + 7);
            write_line(out, ids::RECORD_LENGTH, &zeros, charset, replacement)?;
        }
    }

    if let Some(at) = length_digits {
        let total = out.len() - start;
        let digits = format!("{total:0width$}");
        if digits.len() > width {
            return Err(Error::RecordTooLong {
                length: total as u64,
                digits: width,
            });
        }
        if let Some(slot) = out.get_mut(at..at + width) {
            slot.copy_from_slice(digits.as_bytes());
        }
    }
    Ok(())
}

/// Appends one `LLLFFFFcontent\r\n` line.
fn write_line(
    out: &mut Vec<u8>,
    id: FieldId,
    value: &str,
    charset: Charset,
    replacement: Option<u8>,
) -> Result<(), Error> {
    if value.contains(['\r', '\n']) {
        return Err(Error::LineBreakInValue { field: id });
    }
    let start = out.len();
    out.extend_from_slice(b"000");
    out.extend_from_slice(&id.to_ascii());
    charset
        .encode_into(value, out, replacement)
        .map_err(|ch| Error::Unencodable {
            field: id,
            ch,
            charset,
        })?;
    let length = out.len() - start + 2;
    if length > 999 {
        return Err(Error::LineTooLong { field: id, length });
    }
    let digits = [
        b'0' + (length / 100) as u8,
        b'0' + (length / 10 % 10) as u8,
        b'0' + (length % 10) as u8,
    ];
    if let Some(slot) = out.get_mut(start..start + 3) {
        slot.copy_from_slice(&digits);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;

    #[test]
    fn inserts_and_counts_8100() {
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::PATIENT_NUMBER, "1");
        let b = write(&r, &WriteOptions::default()).unwrap();
        assert_eq!(b, b"01380006301\r\n014810000037\r\n01030001\r\n");
        let no = write(&r, &WriteOptions::new().insert_record_length(false)).unwrap();
        assert_eq!(no, b"01380006301\r\n01030001\r\n");
    }

    #[test]
    fn seven_digits_for_v3() {
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::GDT_VERSION, "03.00");
        let b = write(&r, &WriteOptions::default()).unwrap();
        assert!(b.starts_with(b"01380006301\r\n01681000000043\r\n"), "{b:?}");
        assert_eq!(b.len(), 43);
    }

    #[test]
    fn errors() {
        assert_eq!(
            write(&Record::default(), &WriteOptions::default()),
            Err(Error::NoFields)
        );
        let r = Record::from_fields(vec![Field::new(ids::SURNAME, "x")]);
        assert!(matches!(
            write(&r, &WriteOptions::default()),
            Err(Error::MissingRecordType { .. })
        ));
        let r = Record::from_fields(vec![Field::new(ids::RECORD_TYPE, "63")]);
        assert!(matches!(
            write(&r, &WriteOptions::default()),
            Err(Error::InvalidRecordType { .. })
        ));
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::SURNAME, "a\nb");
        assert_eq!(
            write(&r, &WriteOptions::default()),
            Err(Error::LineBreakInValue {
                field: ids::SURNAME
            })
        );
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::FINDINGS, "x".repeat(MAX_CONTENT_BYTES));
        assert!(write(&r, &WriteOptions::default()).is_ok());
        r.push(ids::FINDINGS, "x".repeat(MAX_CONTENT_BYTES + 1));
        assert_eq!(
            write(&r, &WriteOptions::default()),
            Err(Error::LineTooLong {
                field: ids::FINDINGS,
                length: 1000
            })
        );
    }

    #[test]
    fn unencodable() {
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::SURNAME, "Łukasz €");
        assert_eq!(
            write(&r, &WriteOptions::default()),
            Err(Error::Unencodable {
                field: ids::SURNAME,
                ch: 'Ł',
                charset: Charset::Cp437
            })
        );
        let b = write(&r, &WriteOptions::new().unencodable(Unencodable::Replace)).unwrap();
        assert!(b.ends_with(b"0173101?ukasz ?\r\n"));
    }

    #[test]
    fn too_long_for_five_digits() {
        let mut r = Record::new(RecordType::ExaminationData);
        for _ in 0..110 {
            r.push(ids::FINDINGS, "x".repeat(MAX_CONTENT_BYTES));
        }
        assert!(matches!(
            write(&r, &WriteOptions::default()),
            Err(Error::RecordTooLong { digits: 5, .. })
        ));
        r.insert(1, ids::GDT_VERSION, "03.00");
        assert!(write(&r, &WriteOptions::default()).is_ok());
    }
}
