//! Hostile inputs: errors, never panics, bounded work.

use hl7v2::ack::{AckBuilder, parse_ack};
use hl7v2::{Message, OwnedMessage, ParseError, validate};

#[test]
fn empty_and_short() {
    assert_eq!(Message::parse(b"").unwrap_err(), ParseError::Empty);
    assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
    assert!(matches!(
        Message::parse(b"MSH"),
        Err(ParseError::MshTooShort { len: 3 })
    ));
    assert!(matches!(
        Message::parse(b"MSH|"),
        Err(ParseError::EncodingCharactersTooShort { found: 0 })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~\\"),
        Err(ParseError::EncodingCharactersTooShort { found: 3 })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~\r"),
        Err(ParseError::EncodingCharactersTooShort { found: 2 })
    ));
    assert!(matches!(
        Message::parse(b"MSH\r"),
        Err(ParseError::InvalidFieldSeparator { byte: b'\r' })
    ));
    assert!(matches!(
        Message::parse(b"MSH\x00^~\\&"),
        Err(ParseError::InvalidFieldSeparator { byte: 0 })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~\\&XYZ|"),
        Err(ParseError::FieldSeparatorMissing { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~\\\x00|"),
        Err(ParseError::InvalidEncodingCharacter {
            byte: 0,
            position: 4
        })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~\\~|"),
        Err(ParseError::DuplicateDelimiter { byte: b'~' })
    ));
    // MSH-2 alone is a (useless) message; validation reports what is missing.
    let m = Message::parse(b"MSH|^~\\&").unwrap();
    assert!(m.check_header().is_err());
    assert!(validate::has_errors(&validate::validate(&m)));
}

#[test]
fn binary_and_nul() {
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert!(matches!(
        Message::parse(&garbage),
        Err(ParseError::NotMsh { .. })
    ));
    let mut nul = b"MSH|^~\\&|A\r".to_vec();
    nul.extend_from_slice(&[0u8; 100]);
    let e = Message::parse(&nul).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::InvalidSegmentId {
                line: 2,
                segment_index: 2,
                offset: 11,
                ..
            }
        ),
        "{e:?}"
    );
    // NULs inside a field are data.
    let m = Message::parse(b"MSH|^~\\&|A\x00B\r").unwrap();
    assert_eq!(m.get("MSH-3").unwrap().as_bytes(), b"A\x00B");
}

#[test]
fn huge_field_count() {
    let mut raw = b"MSH|^~\\&|A\rPID".to_vec();
    raw.extend(std::iter::repeat_n(b'|', 200_000));
    raw.extend_from_slice(b"END\r");
    let m = Message::parse(&raw).unwrap();
    let pid = m.segment("PID", 1).unwrap();
    assert_eq!(pid.field_count(), 200_000);
    assert_eq!(m.get("PID-200000").unwrap(), "END");
    assert!(m.get("PID-200001").is_none());
    assert_eq!(pid.fields().count(), 200_000);
    let owned = OwnedMessage::from(&m);
    assert_eq!(owned.to_bytes(), raw);
    let _ = validate::validate(&m);
}

#[test]
fn deeply_nested_separators() {
    let mut raw = b"MSH|^~\\&|A\rOBX|1|".to_vec();
    for _ in 0..50_000 {
        raw.extend_from_slice(b"~^&\\");
    }
    raw.push(b'\r');
    let m = Message::parse(&raw).unwrap();
    let f = m.get("OBX-2").unwrap();
    assert_eq!(f.repetitions().count(), 50_001);
    assert_eq!(m.get_all("OBX-2").count(), 50_001);
    let _ = f.decoded();
    assert!(m.get("OBX-2[50001].1.1").is_some());
}

#[test]
fn edits_are_bounded() {
    let mut m = OwnedMessage::parse(b"MSH|^~\\&|A\r").unwrap();
    assert!(m.set("PID-999999999", "x").is_err());
    assert!(m.set("PID(100000)-1", "x").is_err());
    assert!(m.set("PID-1[100000]", "x").is_err());
    assert!(m.set("PID-1.100000", "x").is_err());
    assert!(m.set("PID-1.1.100000", "x").is_err());
    m.set("PID-10000", "x").unwrap();
}

#[test]
fn ack_for_hostile_inputs() {
    let long_junk = vec![b'A'; 1 << 20];
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 64],
        long_junk.clone(),
        [b"MSH|^~\\&|".as_slice(), &long_junk].concat(),
        [b"MSH|^~|".as_slice(), &long_junk].concat(),
        b"MSH|^~\\&|\x00\x01|\x7f|x\ry".to_vec(),
    ];
    for input in inputs {
        let ack = AckBuilder::for_raw(&input).build();
        assert!(ack.len() < 2048, "ACK stays small");
        let parsed = Message::parse(&ack).unwrap();
        parse_ack(&parsed).unwrap();
    }
}

#[test]
fn bad_paths_do_not_panic() {
    let m = Message::parse(b"MSH|^~\\&|A\rPID|1\r").unwrap();
    for p in [
        "",
        "-",
        "PID-",
        "PID-0",
        "PID-1.0",
        "PID(0)-1",
        "PID-1[0]",
        "💥-1",
        "PID-1.1.1.1",
        "MSH-0",
    ] {
        assert!(m.get(p).is_none(), "{p}");
        assert_eq!(m.get_all(p).count(), 0);
    }
}
