//! Malformed and hostile input: typed errors naming the line, never panics, bounded
//! work.

use gdt::{Error, FieldId, ParseOptions, ids};

fn line(id: &str, content: &str) -> String {
    format!("{:03}{id}{content}\r\n", content.len() + 9)
}

fn valid() -> String {
    line("8000", "6302") + &line("3000", "12345") + &line("3101", "Meier")
}

#[test]
fn empty() {
    assert_eq!(gdt::parse(b""), Err(Error::Empty));
    assert_eq!(gdt::parse(b"\r\n \r\n\x1a"), Err(Error::Empty));
    assert_eq!(gdt::parse_all(b""), Err(Error::Empty));
}

#[test]
fn bad_line_length_names_the_line() {
    let s = line("8000", "6302") + &line("3000", "1") + "0253101Meier Schmidt-Huber\r\n";
    let err = gdt::parse(s.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Error::LineLength {
            line: 3,
            stated: 25,
            actual: 28
        }
    );
    assert!(
        err.to_string()
            .starts_with("line 3: stated length 025 but the line is 28 bytes"),
        "{err}"
    );
}

#[test]
fn wrong_record_length() {
    let body = line("8000", "6302") + &line("8100", "00099") + &line("3000", "1");
    let err = gdt::parse(body.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Error::RecordLength {
            stated: 99,
            actual: 37
        }
    );
    // Not checked when switched off.
    let opts = ParseOptions::new().check_record_length(false);
    assert!(gdt::parse_with(body.as_bytes(), &opts).is_ok());
    let body = line("8000", "6302") + &line("8100", "12a45");
    assert_eq!(
        gdt::parse(body.as_bytes()),
        Err(Error::InvalidRecordLength {
            line: 2,
            value: "12a45".into()
        })
    );
}

#[test]
fn truncated_record() {
    let full = valid();
    let cut = &full.as_bytes()[..full.len() - 4];
    assert_eq!(gdt::parse(cut), Err(Error::Truncated { line: 3 }));
    // Cut right after the CR: still no LF.
    let cut = &full.as_bytes()[..full.len() - 1];
    assert_eq!(gdt::parse(cut), Err(Error::Truncated { line: 3 }));
    // Leniently, a last line without line end is fine only when its length fits.
    let opts = ParseOptions::new().lenient_line_endings(true);
    assert!(gdt::parse_with(&full.as_bytes()[..full.len() - 2], &opts).is_ok());
    assert!(matches!(
        gdt::parse_with(&full.as_bytes()[..full.len() - 4], &opts),
        Err(Error::LineLength { line: 3, .. })
    ));
}

#[test]
fn trailing_bytes() {
    for tail in ["\r\n", "\x1a", "  ", "\0\0\r\n\r\n"] {
        let s = valid() + tail;
        let err = gdt::parse(s.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            Error::TrailingBytes {
                line: 4,
                len: tail.len()
            },
            "{tail:?}"
        );
        let opts = ParseOptions::new().lenient_line_endings(true);
        assert_eq!(gdt::parse_with(s.as_bytes(), &opts).unwrap().len(), 3);
    }
    assert!(
        gdt::parse((valid() + "\x1a").as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with(
                "line 4: 1 bytes of whitespace, NUL or end-of-file mark (0x1A) after the last line"
            )
    );
}

#[test]
fn non_digit_length_and_field_id() {
    let s = line("8000", "6302") + "0x43000abcde\r\n";
    assert_eq!(
        gdt::parse(s.as_bytes()),
        Err(Error::BadLength {
            line: 2,
            found: "0x4".into()
        })
    );
    let s = line("8000", "6302") + "01430A0abcde\r\n";
    let err = gdt::parse(s.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Error::BadFieldId {
            line: 2,
            found: "30A0".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "line 2: invalid field id \"30A0\", expected 4 digits"
    );
    let s = line("8000", "6302") + "012\r\n";
    assert_eq!(
        gdt::parse(s.as_bytes()),
        Err(Error::LineTooShort { line: 2, len: 3 })
    );
}

#[test]
fn record_type_must_come_first() {
    let s = line("3000", "1") + &line("8000", "6302");
    let err = gdt::parse(s.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        Error::MissingRecordType {
            line: 1,
            found: ids::PATIENT_NUMBER
        }
    );
    assert_eq!(
        err.to_string(),
        "line 1: a record must start with field 8000 (record type), found field 3000"
    );
    let s = line("8000", "63A2");
    assert_eq!(
        gdt::parse(s.as_bytes()),
        Err(Error::InvalidRecordType {
            line: 1,
            value: "63A2".into()
        })
    );
}

#[test]
fn line_endings() {
    let s = line("8000", "6302") + "0103000x\n";
    assert_eq!(
        gdt::parse(s.as_bytes()),
        Err(Error::BadLineEnding { line: 2 })
    );
    let s = line("8000", "6302") + "0123000x\ry\r\n";
    assert_eq!(gdt::parse(s.as_bytes()), Err(Error::StrayCr { line: 2 }));
    // Blank lines are errors when strict, skipped (but counted) when lenient.
    let s = line("8000", "6302") + "\r\n" + "0103000x\n";
    assert_eq!(
        gdt::parse(s.as_bytes()),
        Err(Error::LineTooShort { line: 2, len: 0 })
    );
    let opts = ParseOptions::new().lenient_line_endings(true);
    let s = line("8000", "6302") + "\r\n" + "01030001\n" + "0113000xy";
    assert_eq!(gdt::parse_with(s.as_bytes(), &opts).unwrap().len(), 3);
    let s = line("8000", "6302") + "\r\n" + "01030001\n" + "0123000xy";
    assert_eq!(
        gdt::parse_with(s.as_bytes(), &opts),
        Err(Error::LineLength {
            line: 4,
            stated: 12,
            actual: 9
        })
    );
}

#[test]
fn several_records() {
    let two = valid() + &valid();
    assert_eq!(
        gdt::parse(two.as_bytes()),
        Err(Error::MultipleRecords { line: 4 })
    );
    assert_eq!(gdt::parse_all(two.as_bytes()).unwrap().len(), 2);
}

#[test]
fn oversized_input() {
    let big = vec![b'0'; 2000];
    let opts = ParseOptions::new().max_size(Some(1000));
    assert_eq!(
        gdt::parse_with(&big, &opts),
        Err(Error::TooLarge {
            size: 2000,
            max: 1000
        })
    );
    let over = vec![b' '; gdt::DEFAULT_MAX_SIZE + 1];
    assert!(matches!(gdt::parse(&over), Err(Error::TooLarge { .. })));
}

#[test]
fn binary_garbage() {
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert!(gdt::parse(&garbage).is_err());
    assert!(gdt::parse(&[0xff; 100]).is_err());
    assert!(gdt::parse(b"\x00\x00\x00\x00\x00\x00\x00\r\n").is_err());
}

/// A record of 900 000 short lines parses in linear time (no quadratic scans).
#[test]
fn many_lines_linear() {
    let mut s = line("8000", "6310").into_bytes();
    let l = line("6220", "x");
    while s.len() + l.len() < 9_000_000 {
        s.extend_from_slice(l.as_bytes());
    }
    let t = std::time::Instant::now();
    let r = gdt::parse(&s).unwrap();
    assert!(r.len() > 800_000);
    assert_eq!(r.as_result().unwrap().tests().count(), 0);
    assert_eq!(r.as_result().unwrap().files().count(), 0);
    // Generous even for an unoptimised build on a busy machine.
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    // 8100 of a 9 MB record does not fit 5 digits; GDT 3.0's 7 digits do.
    assert!(matches!(
        r.to_bytes(),
        Err(Error::RecordTooLong { digits: 5, .. })
    ));
}

/// Many interleaved tests and files: grouping stays linear.
#[test]
fn many_groups() {
    let mut r = gdt::Record::new(gdt::RecordType::ExaminationData);
    for i in 0..50_000 {
        r.push(ids::TEST_ID, i.to_string())
            .push(ids::RESULT_VALUE, "1")
            .push(ids::FILE_ARCHIVE_ID, "a")
            .push(ids::FILE_FORMAT, "PDF");
    }
    let v = r.as_result().unwrap();
    assert_eq!(v.tests().count(), 50_000);
    assert_eq!(v.files().count(), 50_000);
    assert!(FieldId::new(8410).is_some());
}

#[test]
fn errors_display_for_operators() {
    let cases: Vec<(Error, &str)> = vec![
        (
            Error::Truncated { line: 7 },
            "line 7: the input ends without CR LF; the record is truncated",
        ),
        (
            Error::UnknownCharset { value: "9".into() },
            "unknown character set (9206) \"9\": expected 1 (7-bit), 2 (IBM CP437) or 3 (ANSI/ISO 8859)",
        ),
        (
            Error::NotSevenBit {
                line: 4,
                byte: 0xFC,
            },
            "line 4: byte 0xFC in a record declared as 7-bit (9206 = 1)",
        ),
        (
            Error::InvalidDate {
                field: ids::BIRTH_DATE,
                value: "31021990".into(),
            },
            "field 3103: \"31021990\" is not a valid date (DDMMYYYY)",
        ),
        (
            Error::LineTooLong {
                field: ids::FINDINGS,
                length: 1200,
            },
            "field 6220: the line would be 1200 bytes, more than 999; split the text into several fields",
        ),
    ];
    for (e, msg) in cases {
        assert_eq!(e.to_string(), msg);
    }
}
