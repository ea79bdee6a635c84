//! Hostile and broken input: always a MapError with a path and a reason, never a panic.

mod common;

use common::*;
use hl7v2::{ErrorCode, Message, MessageBuilder};
use medrelay_worklist::*;
use proptest::prelude::*;

fn err(raw: &[u8]) -> MapError {
    map(raw, &preset("nextgen")).unwrap_err()
}

#[test]
fn missing_pid() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("ORC", |s| orc(s, "NW"))
        .segment("OBR", obr)
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert_eq!(e.path(), Some("PID"));
    assert_eq!(e.code(), ErrorCode::RequiredFieldMissing);
    let d = e.to_error_detail();
    assert_eq!(d.location.unwrap().segment, "PID");
}

#[test]
fn pid_without_identifier() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", |s| {
            s.field(1, "1").field(3, "^^^HIS~").field(5, "GARCIA")
        })
        .segment("ORC", |s| orc(s, "NW"))
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert_eq!(e.path(), Some("PID-3"));
    assert!(e.reason().contains("identifier"), "{e}");
    let loc = e.to_error_detail().location.unwrap();
    assert_eq!((loc.segment.as_str(), loc.field), ("PID", Some(3)));

    // ADT too.
    let raw = msh(MessageBuilder::new("ADT", "A08"))
        .segment("PID", |s| s.field(5, "X"))
        .build_bytes()
        .unwrap();
    assert_eq!(err(&raw).path(), Some("PID-3"));
    let raw = msh(MessageBuilder::new("ADT", "A01"))
        .build_bytes()
        .unwrap();
    assert_eq!(err(&raw).path(), Some("PID"));
}

#[test]
fn empty_and_unknown_order_control() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| s)
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert_eq!(e.path(), Some("ORC-1"));
    assert!(e.reason().contains("ORC-1"), "{e}");

    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| orc(s, "NW"))
        .segment("ORC", |s| orc(s, "ZZ"))
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert!(matches!(e, MapError::UnknownCode { .. }));
    assert_eq!(e.path(), Some("ORC(2)-1"));
    assert!(e.reason().contains("ZZ"));
    assert_eq!(e.code(), ErrorCode::TableValueNotFound);
    let loc = e.to_error_detail().location.unwrap();
    assert_eq!((loc.sequence, loc.field), (2, Some(1)));
}

#[test]
fn order_without_numbers() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| s.field(1, "NW"))
        .segment("OBR", |s| s.field(1, "1").field(4, "ECG"))
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert!(matches!(e, MapError::Missing { .. }));
    assert_eq!(e.path(), Some("ORC-2"));
    for p in ["ORC-2", "OBR-2", "ORC-3", "OBR-3"] {
        assert!(e.reason().contains(p), "{e}");
    }
    // Cancels need a key too.
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("ORC", |s| s.field(1, "CA").field(2, ""))
        .build_bytes()
        .unwrap();
    assert!(matches!(err(&raw), MapError::Missing { .. }));
}

#[test]
fn no_orc_at_all() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .build_bytes()
        .unwrap();
    assert_eq!(err(&raw).path(), Some("ORC"));
}

#[test]
fn garbage_values() {
    for (seg, field, value, path) in [
        ("PID", 7, "not-a-date", "PID-7"),
        ("PID", 7, "19751322", "PID-7"),
        ("PV1", 44, "2025031599", "PV1-44"),
        ("OBR", 36, "tomorrow", "OBR-36"),
        ("ORC", 9, "2025-03-15", "ORC-9"),
    ] {
        let raw = msh(MessageBuilder::new("ORM", "O01"))
            .segment("PID", |s| {
                let s = pid(s);
                if seg == "PID" {
                    s.field(field, value)
                } else {
                    s
                }
            })
            .segment("PV1", |s| {
                let s = pv1(s);
                if seg == "PV1" {
                    s.field(field, value)
                } else {
                    s
                }
            })
            .segment("ORC", |s| {
                let s = orc(s, "NW");
                if seg == "ORC" {
                    s.field(field, value)
                } else {
                    s
                }
            })
            .segment("OBR", |s| {
                let s = obr(s);
                if seg == "OBR" {
                    s.field(field, value)
                } else {
                    s
                }
            })
            .build_bytes()
            .unwrap();
        let e = err(&raw);
        assert!(matches!(e, MapError::Invalid { .. }), "{path}: {e}");
        assert_eq!(e.path(), Some(path));
        assert_eq!(e.code(), ErrorCode::DataTypeError);
        assert!(e.reason().contains(value), "{e}");
    }
}

#[test]
fn huge_repetitions_and_values() {
    let reps = vec!["ID^^^HIS"; 10_000].join("~");
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", |s| s.field(3, &reps))
        .segment("ORC", |s| orc(s, "NW"))
        .build_bytes()
        .unwrap();
    let e = err(&raw);
    assert!(matches!(e, MapError::Invalid { .. }), "{e}");
    assert_eq!(e.path(), Some("PID-3"));

    let long = "A".repeat(100_000);
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", |s| s.field(3, "1").field(5, &long))
        .segment("ORC", |s| orc(s, "NW"))
        .build_bytes()
        .unwrap();
    assert_eq!(err(&raw).path(), Some("PID-5.1"));

    let mut b = msh(MessageBuilder::new("ORM", "O01")).segment("PID", pid);
    for i in 0..600 {
        b = b.segment("ORC", |s| s.field(1, "NW").field(2, &i.to_string()));
    }
    let e = err(&b.build_bytes().unwrap());
    assert!(e.reason().contains("orders"), "{e}");
}

#[test]
fn unsupported_types() {
    for (t, trig, want) in [
        ("ORU", "R01", ErrorCode::UnsupportedMessageType),
        ("ADT", "A03", ErrorCode::UnsupportedEventCode),
        ("ORM", "O02", ErrorCode::UnsupportedEventCode),
        ("MFN", "M02", ErrorCode::UnsupportedMessageType),
    ] {
        let raw = msh(MessageBuilder::new(t, trig))
            .segment("PID", pid)
            .build_bytes()
            .unwrap();
        let e = err(&raw);
        assert_eq!(e, MapError::Unsupported(format!("{t}^{trig}")));
        assert_eq!(e.code(), want);
        assert!(e.is_reject());
    }
    let e = err(b"MSH|^~\\&|A|B|C|D|20250315||||P|2.5\r");
    assert_eq!(e, MapError::Unsupported(String::new()));
}

#[test]
fn ignore_action_from_the_table() {
    let mut m = preset("hl7-mllp");
    m.merge_table(
        &toml::from_str("tables.order_control.SN = \"ignore\"\ntables.adt_event.A03 = \"ignore\"")
            .unwrap(),
    )
    .unwrap();
    m.check().unwrap();
    assert_eq!(map(&full_orm("SN"), &m).unwrap(), []);
    let raw = msh(MessageBuilder::new("ADT", "A03"))
        .segment("PID", pid)
        .build_bytes()
        .unwrap();
    assert_eq!(map(&raw, &m).unwrap(), []);
}

fn no_panic(bytes: &[u8]) {
    if let Ok(msg) = Message::parse(bytes) {
        for name in ["hl7-mllp", "nextgen"] {
            let _ = medrelay_worklist::map_message(&msg, &preset(name), &ctx());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_orders_never_panic(
        control in prop::sample::select(vec!["NW", "XO", "CA", "", "ZZ"]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
    ) {
        let mut raw = full_orm(control);
        for (at, byte) in edits {
            let i = at.index(raw.len());
            // Keep MSH parseable most of the time so the mapper is what gets exercised.
            if i > 9 {
                raw[i] = byte;
            }
        }
        no_panic(&raw);
    }

    #[test]
    fn random_fields_never_panic(
        typ in prop::sample::select(vec!["ORM^O01", "ADT^A08", "SIU^S12", "SIU^S15"]),
        fields in prop::collection::vec("[A-Za-z0-9^~&\\\\ .+-]{0,40}", 0..50),
        seg in prop::sample::select(vec!["PID", "PV1", "ORC", "OBR", "SCH", "AIS", "TQ1"]),
    ) {
        let mut raw = format!("MSH|^~\\&|A|B|C|D|20250315||{typ}|1|P|2.5\r").into_bytes();
        for s in ["PID|1|", seg, "ORC|NW|", seg] {
            raw.extend_from_slice(s.as_bytes());
            raw.push(b'|');
            raw.extend_from_slice(fields.join("|").as_bytes());
            raw.push(b'\r');
        }
        no_panic(&raw);
    }
}
