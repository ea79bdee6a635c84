//! The fuzz harness, shared by `fuzz/fuzz_targets/parse.rs` (cargo-fuzz, nightly) and
//! `tests/smoke_fuzz.rs` (proptest, stable). It must never panic on any input except
//! when an invariant of the crate is broken.

use hl7v2::ack::{AckBuilder, AckCode, ErrorDetail, parse_ack};
use hl7v2::escape::{escape, unescape};
use hl7v2::{Message, OwnedMessage, Path, validate};

/// Caps keep one input's work linear-ish even for "huge field count" inputs.
const MAX_SEGMENTS: usize = 64;
const MAX_FIELDS: usize = 64;
const MAX_PARTS: usize = 16;

pub fn exercise(data: &[u8]) {
    let msg = match Message::parse(data) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            let _ = ErrorDetail::from(&e);
            let ack = AckBuilder::for_raw(data)
                .code(AckCode::AR)
                .parse_error(&e)
                .build();
            let parsed = Message::parse(&ack).expect("ACK for garbage must parse");
            parse_ack(&parsed).expect("ACK for garbage must be an ACK");
            return;
        }
    };
    let d = *msg.delimiters();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for seg in msg.segments().take(MAX_SEGMENTS) {
        let id = seg.id().to_string();
        let occ = match seen.iter_mut().find(|(k, _)| *k == id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                seen.push((id.clone(), 1));
                1
            }
        };
        for (fi, field) in seg.fields().enumerate().take(MAX_FIELDS) {
            let fpath = Path::new(&id, fi + 1)
                .expect("valid id")
                .with_segment_index(occ);
            let got = msg.get_path(&fpath).expect("field exists");
            assert_eq!(got.as_bytes(), field.as_bytes(), "{fpath}");
            let _ = field.decoded();
            for (ri, rep) in field.repetitions().enumerate().take(MAX_PARTS) {
                let rpath = fpath.clone().with_repetition(ri + 1);
                assert_eq!(
                    msg.get_path(&rpath).map(|v| v.as_bytes()),
                    Some(rep.as_bytes()),
                    "{rpath}"
                );
                for (ci, comp) in rep.components().enumerate().take(MAX_PARTS) {
                    let cpath = rpath.clone().with_component(ci + 1);
                    assert_eq!(
                        msg.get_path(&cpath).map(|v| v.as_bytes()),
                        Some(comp.as_bytes()),
                        "{cpath}"
                    );
                    for (si, sub) in comp.subcomponents().enumerate().take(MAX_PARTS) {
                        let spath = cpath.clone().with_subcomponent(si + 1);
                        assert_eq!(
                            msg.get_path(&spath).map(|v| v.as_bytes()),
                            Some(sub.as_bytes()),
                            "{spath}"
                        );
                        let decoded = sub.decoded_bytes();
                        let _ = sub.decoded_latin1();
                        if !decoded.contains(&b'\r') {
                            assert_eq!(&*unescape(&escape(&decoded, &d), &d), &*decoded);
                        }
                    }
                }
            }
            let _ = msg.get_all_path(&fpath).count();
        }
    }
    // Writing is stable and the owned form agrees.
    let out = msg.to_bytes();
    let again = Message::parse(&out).expect("written message parses");
    assert_eq!(again.to_bytes(), out);
    assert_eq!(again.segment_count(), msg.segment_count());
    if msg.is_canonical() {
        assert_eq!(out, data);
    }
    assert_eq!(OwnedMessage::from(&msg).to_bytes(), out);
    let h = msg.header();
    let _ = (
        h.message_type_string(),
        h.control_id(),
        h.version(),
        h.charset(),
    );
    let issues = validate::validate_strict(&msg);
    let ack = AckBuilder::for_message(&msg)
        .issues(issues.iter())
        .timestamp("20250101000000")
        .build();
    let parsed = Message::parse(&ack).expect("ACK must parse");
    let view = parse_ack(&parsed).expect("ACK must be an ACK");
    if let Some(ctrl) = msg.msh().field(10) {
        // The ACK echoes at most 256 bytes of the original's values, so a hostile
        // sender cannot make the ACK huge; longer control ids come back cut short.
        if ctrl.as_bytes().len() <= 256 {
            assert_eq!(view.acknowledged_control_id, ctrl.decoded());
        } else {
            let echoed = parsed
                .get("MSA-2")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            assert!(echoed.len() <= 256);
            assert!(ctrl.as_bytes().starts_with(echoed));
        }
    }
}
