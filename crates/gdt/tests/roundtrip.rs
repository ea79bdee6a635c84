//! Property tests: arbitrary records written and parsed back are unchanged, in every
//! charset, and parsing never panics.

use gdt::{Charset, Field, FieldId, ParseOptions, Record, WriteOptions, ids};
use proptest::prelude::*;

/// Every character a charset can write, except CR and LF (line ends).
fn repertoire(c: Charset) -> Vec<char> {
    let top = if c == Charset::Ascii7 { 0x80u16 } else { 0x100 };
    (0..top)
        .filter_map(|b| c.decode(&[b as u8]).ok())
        .flat_map(|s| s.chars().collect::<Vec<_>>())
        .filter(|&ch| ch != '\r' && ch != '\n')
        .collect()
}

fn charset() -> impl Strategy<Value = Charset> {
    prop::sample::select(vec![
        Charset::Ascii7,
        Charset::Cp437,
        Charset::Latin1,
        Charset::Latin9,
        Charset::Windows1252,
    ])
}

/// Field ids other than the three the record structure depends on.
fn free_id() -> impl Strategy<Value = FieldId> {
    (0u16..=9999)
        .prop_filter("structural id", |&n| !matches!(n, 8000 | 8100 | 9206))
        .prop_map(|n| FieldId::new(n).unwrap())
}

fn record() -> impl Strategy<Value = (Charset, Record)> {
    charset().prop_flat_map(|c| {
        let chars = repertoire(c);
        let value = prop::collection::vec(prop::sample::select(chars), 0..80)
            .prop_map(|v| v.into_iter().collect::<String>());
        (
            Just(c),
            0u16..=9999,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec((free_id(), value), 0..40),
        )
            .prop_map(|(c, rt, v3, declare, fields)| {
                let mut r = Record::from_fields(vec![
                    Field::new(ids::RECORD_TYPE, format!("{rt:04}")),
                    Field::new(ids::RECORD_LENGTH, if v3 { "0000000" } else { "00000" }),
                ]);
                if declare || c != Charset::Cp437 {
                    r.push(ids::CHARSET, c.code());
                }
                for (id, v) in fields {
                    r.push(id, v);
                }
                (c, r)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn write_then_parse_is_identity((c, r) in record()) {
        let wopts = WriteOptions::new().ansi_charset(c);
        let bytes = gdt::write(&r, &wopts).unwrap();
        let popts = ParseOptions::new().ansi_charset(c);
        let back = gdt::parse_with(&bytes, &popts).unwrap();
        // Everything but the 8100 value, which the writer filled in.
        prop_assert_eq!(back.len(), r.len());
        for (a, b) in back.fields().iter().zip(r.fields()) {
            prop_assert_eq!(a.id, b.id);
            if a.id != ids::RECORD_LENGTH {
                prop_assert_eq!(&a.value, &b.value);
            }
        }
        prop_assert_eq!(back.record_length().unwrap(), Some(bytes.len() as u64));
        // Writing the parsed record gives the same bytes again.
        prop_assert_eq!(gdt::write(&back, &wopts).unwrap(), bytes);
    }

    #[test]
    fn parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = gdt::parse(&data);
        let _ = gdt::parse_with(&data, &ParseOptions::new().lenient_line_endings(true));
        let _ = gdt::parse_all(&data);
    }

    #[test]
    fn split_text_lines_fit(text in "[a-zäöüß \n]{0,300}", width in 1usize..100) {
        let lines = gdt::split_text(&text, width);
        for l in &lines {
            prop_assert!(l.chars().count() <= width);
            prop_assert!(!l.contains('\n'));
        }
        // Only the break spaces and line breaks are lost.
        let kept: String = lines.concat().chars().filter(|c| !c.is_whitespace()).collect();
        let orig: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        prop_assert_eq!(kept, orig);
    }
}
