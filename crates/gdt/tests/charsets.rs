//! Character sets: decoding of each 9206 code, override options, and lengths counted
//! in encoded bytes.

use gdt::{Charset, Error, ParseOptions, Record, RecordType, Unencodable, WriteOptions, ids};

/// One GDT line, length computed over the given content bytes.
fn line(id: &str, content: &[u8]) -> Vec<u8> {
    let mut v = format!("{:03}{id}", content.len() + 9).into_bytes();
    v.extend_from_slice(content);
    v.extend_from_slice(b"\r\n");
    v
}

fn record(charset: Option<&str>, name: &[u8]) -> Vec<u8> {
    let mut v = line("8000", b"6301");
    if let Some(c) = charset {
        v.extend(line("9206", c.as_bytes()));
    }
    v.extend(line("3101", name));
    v
}

#[test]
fn cp437_is_the_default() {
    // 0x81 ü, 0x94 ö, 0xE1 ß in CP437.
    for cs in [None, Some("2")] {
        let r = gdt::parse(&record(cs, b"\x81\x94\xe1")).unwrap();
        assert_eq!(r.patient().surname(), Some("üöß"), "{cs:?}");
    }
}

#[test]
fn latin1_for_3() {
    let r = gdt::parse(&record(Some("3"), b"M\xfcller")).unwrap();
    assert_eq!(r.patient().surname(), Some("Müller"));
    assert_eq!(r.charset(), Ok(Charset::Latin1));
    // True Latin-1: 0xA4 is the currency sign, 0x80 a C1 control (not Windows-1252's €).
    let r = gdt::parse(&record(Some("3"), b"\xa4\x80")).unwrap();
    assert_eq!(r.patient().surname(), Some("\u{a4}\u{80}"));
}

#[test]
fn latin9_and_windows1252_selectable() {
    let bytes = record(Some("3"), b"5 \xa4");
    let opts = ParseOptions::new().ansi_charset(Charset::Latin9);
    let r = gdt::parse_with(&bytes, &opts).unwrap();
    assert_eq!(r.patient().surname(), Some("5 €"));
    let opts = ParseOptions::new().charset_override(Some(Charset::Windows1252));
    let r = gdt::parse_with(&record(Some("2"), b"\x80 \x84Test\x93"), &opts).unwrap();
    assert_eq!(r.patient().surname(), Some("€ „Test“"));
    // Writing Latin-9 puts € back at 0xA4.
    let out = gdt::write(
        &r,
        &WriteOptions::new().charset_override(Some(Charset::Latin9)),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(out, Error::Unencodable { ch: '„', .. }));
    let mut r = Record::new(RecordType::PatientData);
    r.push(ids::CHARSET, "3").push(ids::SURNAME, "5 €");
    let bytes = gdt::write(&r, &WriteOptions::new().ansi_charset(Charset::Latin9)).unwrap();
    assert!(bytes.windows(12).any(|w| w == b"01231015 \xa4\r\n"));
}

#[test]
fn seven_bit() {
    let r = gdt::parse(&record(Some("1"), b"M}ller [{|~] @")).unwrap();
    assert_eq!(r.patient().surname(), Some("Müller ÄäößÜ §"));
    assert_eq!(
        gdt::parse(&record(Some("1"), b"M\x81ller")),
        Err(Error::NotSevenBit {
            line: 3,
            byte: 0x81
        })
    );
}

#[test]
fn unknown_charset_code() {
    for code in ["4", "0", "", "22", "x"] {
        assert_eq!(
            gdt::parse(&record(Some(code), b"x")),
            Err(Error::UnknownCharset {
                value: code.to_string()
            }),
            "{code:?}"
        );
    }
    let mut bytes = line("8000", b"6301");
    bytes.extend(line("9206", b"\xff"));
    assert!(matches!(
        gdt::parse(&bytes),
        Err(Error::UnknownCharset { .. })
    ));
    // An override does not hide a broken declaration.
    let opts = ParseOptions::new().charset_override(Some(Charset::Latin1));
    assert!(gdt::parse_with(&record(Some("9"), b"x"), &opts).is_err());
}

/// UTF-8 in a CP437 record is wrong but readable: lengths are in bytes, and the
/// content decodes to mojibake rather than failing.
#[test]
fn utf8_in_cp437_record_is_mojibake_not_an_error() {
    let bytes = record(Some("2"), "Müller".as_bytes());
    let r = gdt::parse(&bytes).unwrap();
    assert_eq!(r.patient().surname(), Some("M├╝ller"));
    // The same bytes declared as 7-bit are an error.
    assert!(matches!(
        gdt::parse(&record(Some("1"), "Müller".as_bytes())),
        Err(Error::NotSevenBit {
            line: 3,
            byte: 0xC3
        })
    ));
}

/// 'ü' is two bytes in UTF-8 but one in every GDT charset: the writer counts the
/// encoded bytes.
#[test]
fn writer_counts_encoded_bytes() {
    for (code, umlaut) in [("2", 0x81u8), ("3", 0xFC)] {
        let mut r = Record::new(RecordType::PatientData);
        r.push(ids::CHARSET, code).push(ids::SURNAME, "Müller");
        let bytes = r.to_bytes().unwrap();
        let expected = {
            let mut v = line("8000", b"6301");
            v.extend(line("8100", b"00000"));
            v.extend(line("9206", code.as_bytes()));
            v.extend(line("3101", &[b'M', umlaut, b'l', b'l', b'e', b'r']));
            let total = format!("{:05}", v.len());
            let at = 13 + 7;
            v[at..at + 5].copy_from_slice(total.as_bytes());
            v
        };
        assert_eq!(bytes, expected);
        // "Müller" is 7 bytes in UTF-8: the line is 15 bytes, not 16.
        assert!(bytes.windows(7).any(|w| w == b"0153101"));
        assert_eq!(
            gdt::parse(&bytes).unwrap().patient().surname(),
            Some("Müller")
        );
    }
}

#[test]
fn unencodable_error_or_replace() {
    let mut r = Record::new(RecordType::PatientData);
    r.push(ids::SURNAME, "Dvořák");
    assert_eq!(
        r.to_bytes(),
        Err(Error::Unencodable {
            field: ids::SURNAME,
            ch: 'ř',
            charset: Charset::Cp437
        })
    );
    assert_eq!(
        r.to_bytes().unwrap_err().to_string(),
        "field 3101: character 'ř' (U+0159) cannot be written in IBM CP437"
    );
    let bytes = gdt::write(&r, &WriteOptions::new().unencodable(Unencodable::Replace)).unwrap();
    assert_eq!(
        gdt::parse(&bytes).unwrap().patient().surname(),
        Some("Dvo?ák")
    );
}
