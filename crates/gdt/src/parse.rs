//! Reading bytes into [`Record`]s.
//!
//! One pass over the input finds the lines (with `memchr`) and checks each line's
//! stated length, field id and line end; then the character set is taken from 9206
//! (a field id and value that are ASCII in every GDT charset, so it can be read before
//! decoding) and each content is decoded once. Work and memory are linear in the input.

use crate::charset::Charset;
use crate::error::Error;
use crate::field::{Field, FieldId, ids};
use crate::record::Record;
use crate::types::RecordType;

/// Default for [`ParseOptions::max_size`]: 10 MB, the most a 7-digit record length
/// (GDT 3.0) can state. GDT 2.1 records are at most 99 999 bytes.
pub const DEFAULT_MAX_SIZE: usize = 10_000_000;

/// How [`parse_with`] and [`parse_all_with`] read their input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Decode with this charset whatever 9206 says. For senders that declare one
    /// charset and write another (a common fault: 9206 = 2 with Windows-1252 content).
    /// 9206 must still be a valid code when present, or absent.
    pub charset_override: Option<Charset>,
    /// What 9206 = 3 ("ANSI") means. Default [`Charset::Latin1`]; some systems mean
    /// ISO 8859-15 or Windows-1252 (they differ only in `€ Š š Ž ž Œ œ Ÿ` and, for
    /// Windows-1252, typographic quotes and dashes).
    pub ansi_charset: Charset,
    /// Accept lines ended by a bare LF, a last line without line end, blank lines,
    /// and trailing whitespace, NUL or DOS end-of-file (0x1A) bytes. A line's stated
    /// length may then count either its real bytes or the bytes it would have with
    /// CR LF, and 8100 likewise. Off by default: GDT requires CR LF, and a missing
    /// line end usually means the file was read while still being written.
    pub lenient_line_endings: bool,
    /// Check that 8100 (when present) equals the record's byte length. On by default.
    pub check_record_length: bool,
    /// Refuse inputs larger than this many bytes. `None` for no limit.
    pub max_size: Option<usize>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            charset_override: None,
            ansi_charset: Charset::Latin1,
            lenient_line_endings: false,
            check_record_length: true,
            max_size: Some(DEFAULT_MAX_SIZE),
        }
    }
}

impl ParseOptions {
    /// The default options: strict line ends and lengths, charset from 9206.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`ParseOptions::charset_override`].
    pub fn charset_override(mut self, charset: Option<Charset>) -> Self {
        self.charset_override = charset;
        self
    }

    /// Sets [`ParseOptions::ansi_charset`].
    pub fn ansi_charset(mut self, charset: Charset) -> Self {
        self.ansi_charset = charset;
        self
    }

    /// Sets [`ParseOptions::lenient_line_endings`].
    pub fn lenient_line_endings(mut self, lenient: bool) -> Self {
        self.lenient_line_endings = lenient;
        self
    }

    /// Sets [`ParseOptions::check_record_length`].
    pub fn check_record_length(mut self, check: bool) -> Self {
        self.check_record_length = check;
        self
    }

    /// Sets [`ParseOptions::max_size`].
    pub fn max_size(mut self, max: Option<usize>) -> Self {
        self.max_size = max;
        self
    }
}

/// Parses one record with the default options.
///
/// ```
/// let bytes = b"01380006302\r\n014810000040\r\n0133000PAT1\r\n";
/// let r = gdt::parse(bytes)?;
/// assert_eq!(r.get(gdt::ids::PATIENT_NUMBER), Some("PAT1"));
/// assert_eq!(gdt::parse(b"01380006302\r\n014810000041\r\n0133000PAT1\r\n").unwrap_err().to_string(),
///     "record length (8100) says 41 bytes but the record is 40 bytes (all lines, CR LF included)");
/// # Ok::<(), gdt::Error>(())
/// ```
pub fn parse(bytes: &[u8]) -> Result<Record, Error> {
    parse_with(bytes, &ParseOptions::default())
}

/// Parses one record. A second record (another 8000 line) is an error; see
/// [`parse_all_with`].
pub fn parse_with(bytes: &[u8], opts: &ParseOptions) -> Result<Record, Error> {
    let lines = scan(bytes, opts)?;
    if let Some(second) = lines.iter().skip(1).find(|l| l.id == ids::RECORD_TYPE) {
        return Err(Error::MultipleRecords { line: second.line });
    }
    build_record(bytes, &lines, opts)
}

/// Parses every record of an input that holds several, one after the other (each
/// starting with 8000), with the default options.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Record>, Error> {
    parse_all_with(bytes, &ParseOptions::default())
}

/// Parses every record of an input that holds several. Each record has its own 9206
/// and 8100.
pub fn parse_all_with(bytes: &[u8], opts: &ParseOptions) -> Result<Vec<Record>, Error> {
    let lines = scan(bytes, opts)?;
    let mut records = Vec::new();
    let mut rest: &[Line] = &lines;
    while !rest.is_empty() {
        // `scan` guarantees the first line is 8000; each record runs to the next one.
        let end = rest
            .iter()
            .skip(1)
            .position(|l| l.id == ids::RECORD_TYPE)
            .map_or(rest.len(), |p| p + 1);
        let (this, next) = rest.split_at(end);
        records.push(build_record(bytes, this, opts)?);
        rest = next;
    }
    Ok(records)
}

/// A line found by [`scan`]: where its content is and what it claims.
#[derive(Debug, Clone, Copy)]
struct Line {
    /// 1-based line number in the input.
    line: usize,
    id: FieldId,
    /// Byte range of the content (after the field id, before the line end).
    start: usize,
    end: usize,
    /// Bytes the line really has, line end included.
    actual: usize,
    /// Bytes it would have with CR LF (differs from `actual` only in lenient mode).
    canonical: usize,
}

/// Bytes a lenient reader ignores after the last line.
fn is_trailing_junk(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x1A)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Finds and checks the lines of the input.
fn scan(bytes: &[u8], opts: &ParseOptions) -> Result<Vec<Line>, Error> {
    if let Some(max) = opts.max_size
        && bytes.len() > max
    {
        return Err(Error::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    if bytes.iter().all(|&b| is_trailing_junk(b)) {
        return Err(Error::Empty);
    }
    let lenient = opts.lenient_line_endings;
    // A GDT line is at least 9 bytes; most are 12–60.
    let mut lines = Vec::with_capacity(bytes.len() / 16 + 1);
    let mut pos = 0;
    let mut line_no = 0;
    while pos < bytes.len() {
        line_no += 1;
        let rest = bytes.get(pos..).unwrap_or_default();
        match scan_line(rest, pos, line_no, lenient) {
            Ok(Step::End) => break,
            Ok(Step::Skip(n)) => pos += n,
            Ok(Step::Line(line, n)) => {
                lines.push(line);
                pos += n;
            }
            // Whitespace, NUL or ^Z after a complete record is the usual reason the
            // last "line" is broken; say so rather than "truncated" or "too short".
            // (Only reached on the error path, so the scan costs nothing otherwise.)
            Err(_) if !lines.is_empty() && rest.iter().all(|&b| is_trailing_junk(b)) => {
                return Err(Error::TrailingBytes {
                    line: line_no,
                    len: rest.len(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    match lines.first() {
        None => Err(Error::Empty),
        Some(first) if first.id != ids::RECORD_TYPE => Err(Error::MissingRecordType {
            line: first.line,
            found: first.id,
        }),
        Some(_) => Ok(lines),
    }
}

/// What [`scan_line`] found at the start of the remaining input.
enum Step {
    /// Only trailing junk without a line end is left (lenient mode).
    End,
    /// A blank line of this many bytes (lenient mode).
    Skip(usize),
    /// A line and its byte length, line end included.
    Line(Line, usize),
}

/// Checks the line at the start of `rest` (which starts at `offset` in the input).
fn scan_line(rest: &[u8], offset: usize, line_no: usize, lenient: bool) -> Result<Step, Error> {
    let (body_len, raw_len) = match memchr::memchr(b'\n', rest) {
        Some(lf) => {
            let crlf = lf > 0 && rest.get(lf - 1) == Some(&b'\r');
            if !crlf && !lenient {
                return Err(Error::BadLineEnding { line: line_no });
            }
            (if crlf { lf - 1 } else { lf }, lf + 1)
        }
        None if lenient => {
            if rest.iter().all(|&b| is_trailing_junk(b)) {
                return Ok(Step::End);
            }
            (rest.len(), rest.len())
        }
        None => return Err(Error::Truncated { line: line_no }),
    };
    let body = rest.get(..body_len).unwrap_or_default();
    if lenient && body.iter().all(|&b| is_trailing_junk(b)) {
        // Blank line (or stray whitespace), tolerated in lenient mode only.
        return Ok(Step::Skip(raw_len));
    }
    let (Some(len_digits), Some(id_digits), Some(content)) =
        (body.get(0..3), body.get(3..7), body.get(7..))
    else {
        return Err(Error::LineTooShort {
            line: line_no,
            len: body.len(),
        });
    };
    let stated = match len_digits {
        [a, b, c] if len_digits.iter().all(u8::is_ascii_digit) => {
            usize::from(a - b'0') * 100 + usize::from(b - b'0') * 10 + usize::from(c - b'0')
        }
        _ => {
            return Err(Error::BadLength {
                line: line_no,
                found: lossy(len_digits),
            });
        }
    };
    let canonical = body.len() + 2;
    if stated != raw_len && !(lenient && stated == canonical) {
        return Err(Error::LineLength {
            line: line_no,
            stated,
            actual: raw_len,
        });
    }
    let Some(id) = FieldId::from_ascii(id_digits) else {
        return Err(Error::BadFieldId {
            line: line_no,
            found: lossy(id_digits),
        });
    };
    if memchr::memchr(b'\r', content).is_some() {
        return Err(Error::StrayCr { line: line_no });
    }
    let line = Line {
        line: line_no,
        id,
        start: offset + 7,
        end: offset + body_len,
        actual: raw_len,
        canonical,
    };
    Ok(Step::Line(line, raw_len))
}

/// Decodes the lines of one record (the first is 8000) and checks 8000, 9206 and 8100.
fn build_record(bytes: &[u8], lines: &[Line], opts: &ParseOptions) -> Result<Record, Error> {
    let content = |l: &Line| bytes.get(l.start..l.end).unwrap_or_default();

    // 9206 is validated even under an override: an unknown code means the sender's
    // configuration is broken, which the operator should hear about.
    let declared = match lines.iter().find(|l| l.id == ids::CHARSET) {
        None => Charset::Cp437,
        Some(l) => {
            let raw = content(l);
            std::str::from_utf8(raw)
                .ok()
                .and_then(|v| Charset::from_code(v, opts.ansi_charset))
                .ok_or_else(|| Error::UnknownCharset { value: lossy(raw) })?
        }
    };
    let charset = opts.charset_override.unwrap_or(declared);

    let mut fields = Vec::with_capacity(lines.len());
    for l in lines {
        let mut value = String::new();
        charset
            .decode_into(content(l), &mut value)
            .map_err(|byte| Error::NotSevenBit { line: l.line, byte })?;
        fields.push(Field { id: l.id, value });
    }

    if let (Some(first), Some(line)) = (fields.first(), lines.first())
        && RecordType::parse(&first.value).is_none()
    {
        return Err(Error::InvalidRecordType {
            line: line.line,
            value: first.value.clone(),
        });
    }

    if opts.check_record_length
        && let Some((l, f)) = lines
            .iter()
            .zip(&fields)
            .find(|(l, _)| l.id == ids::RECORD_LENGTH)
    {
        let v = f.value.trim();
        let stated = (!v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| Error::InvalidRecordLength {
                line: l.line,
                value: f.value.clone(),
            })?;
        let actual: u64 = lines.iter().map(|l| l.actual as u64).sum();
        let canonical: u64 = lines.iter().map(|l| l.canonical as u64).sum();
        let lenient_ok = opts.lenient_line_endings && stated == canonical;
        if stated != actual && !lenient_ok {
            return Err(Error::RecordLength { stated, actual });
        }
    }
    Ok(Record::from_fields(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, content: &str) -> String {
        format!("{:03}{id}{content}\r\n", content.len() + 9)
    }

    #[test]
    fn minimal() {
        let s = line("8000", "6302") + &line("3000", "42");
        let r = parse(s.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(ids::PATIENT_NUMBER), Some("42"));
    }

    #[test]
    fn line_numbers() {
        let s = line("8000", "6302") + "0143000abc\r\n";
        assert_eq!(
            parse(s.as_bytes()),
            Err(Error::LineLength {
                line: 2,
                stated: 14,
                actual: 12
            })
        );
        let s = line("8000", "6302") + "0143000abc\n";
        assert_eq!(parse(s.as_bytes()), Err(Error::BadLineEnding { line: 2 }));
        let s = line("8000", "6302") + "\r\n";
        assert_eq!(
            parse(s.as_bytes()),
            Err(Error::TrailingBytes { line: 2, len: 2 })
        );
        let s = line("8000", "6302") + "\r\n" + &line("3000", "1");
        assert_eq!(
            parse(s.as_bytes()),
            Err(Error::LineTooShort { line: 2, len: 0 })
        );
    }

    #[test]
    fn lenient() {
        let opts = ParseOptions::new().lenient_line_endings(true);
        // LF only, lengths counted as if CR LF; last line without end; blank line.
        let s = "01380006302\n\n0113000ab\n0103101x";
        let r = parse_with(s.as_bytes(), &opts).unwrap();
        assert_eq!(r.get(ids::SURNAME), Some("x"));
        // LF only with lengths counting the real bytes.
        let s = "01280006302\n0093000a\n\x1a";
        assert!(parse_with(s.as_bytes(), &opts).is_ok());
        assert_eq!(parse(s.as_bytes()), Err(Error::BadLineEnding { line: 1 }));
    }

    #[test]
    fn several_records() {
        let a = line("8000", "6301") + &line("3000", "1");
        let b = line("8000", "6302") + &line("3000", "2");
        let both = a.clone() + &b;
        assert_eq!(
            parse(both.as_bytes()),
            Err(Error::MultipleRecords { line: 3 })
        );
        let all = parse_all(both.as_bytes()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].get(ids::PATIENT_NUMBER), Some("2"));
    }
}
