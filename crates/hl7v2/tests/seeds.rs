//! The ORM^O01 and ORU^R01 examples of the seed document, lines joined as segments.

use hl7v2::ack::{AckBuilder, AckCode, parse_ack};
use hl7v2::{Message, OwnedMessage, validate};

const ORM: &[u8] = include_bytes!("../test_assets/orm_o01_seed.hl7");
const ORU: &[u8] = include_bytes!("../test_assets/oru_r01_seed.hl7");
const ORU_LATIN1: &[u8] = include_bytes!("../test_assets/oru_r01_seed_latin1.hl7");

#[test]
fn orm_o01() {
    let m = Message::parse(ORM).unwrap();
    let h = m.header();
    assert_eq!(h.message_type_string(), "ORM^O01");
    assert_eq!(h.sending_application().as_deref(), Some("HIS"));
    assert_eq!(h.sending_facility().as_deref(), Some("HOSPITAL_A"));
    assert_eq!(h.receiving_application().as_deref(), Some("MEDISFERA"));
    assert_eq!(h.receiving_facility().as_deref(), Some("PACS"));
    assert_eq!(h.control_id().as_deref(), Some("MSG001"));
    assert_eq!(h.processing_id().as_deref(), Some("P"));
    assert_eq!(h.version().as_deref(), Some("2.5"));
    assert_eq!(m.get_decoded("PID-5.1").as_deref(), Some("GARCIA"));
    assert_eq!(m.get_decoded("PID-5.2").as_deref(), Some("PEDRO"));
    assert_eq!(m.get_decoded("PID-7").as_deref(), Some("19751022"));
    assert_eq!(m.get_decoded("PID-11.1").as_deref(), Some("C/ MAYOR 1"));
    assert_eq!(m.get_decoded("ORC-1").as_deref(), Some("NW"));
    assert_eq!(m.get_decoded("ORC-2").as_deref(), Some("ORD-2025-001"));
    assert_eq!(m.get_decoded("OBR-4.1").as_deref(), Some("72193"));
    assert_eq!(m.get_decoded("OBR-4.3").as_deref(), Some("LN"));
    assert_eq!(m.to_bytes(), ORM);
    let issues = validate::validate(&m);
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn oru_r01() {
    let m = Message::parse(ORU).unwrap();
    assert_eq!(m.header().message_type_string(), "ORU^R01");
    assert_eq!(
        m.get_decoded("OBX-3.2").as_deref(),
        Some("Impresión diagnóstica")
    );
    assert!(
        m.get_decoded("OBX-5")
            .unwrap()
            .starts_with("Estudio sin hallazgos significativos.")
    );
    assert_eq!(m.get_decoded("OBX-11").as_deref(), Some("F"));
    // As joined from the seed, the modality lands in OBR-21.
    assert_eq!(m.get_decoded("OBR-21").as_deref(), Some("CT"));
    assert_eq!(m.segments_named("OBX").count(), 1);
    assert!(
        validate::validate(&m).is_empty(),
        "{:?}",
        validate::validate(&m)
    );
    assert_eq!(OwnedMessage::from(&m).to_bytes(), ORU);
}

#[test]
fn oru_latin1() {
    let m = Message::parse(ORU_LATIN1).unwrap();
    assert!(m.header().is_latin1());
    let v = m.get("OBX-3.2").unwrap();
    assert_eq!(m.text(&v), "Impresión diagnóstica");
    assert_eq!(
        v.as_bytes(),
        "Impresión diagnóstica"
            .as_bytes()
            .iter()
            .copied()
            .filter(|&b| b != 0xC3)
            .map(|b| if b == 0xB3 { 0xF3 } else { b })
            .collect::<Vec<_>>()
    );
}

#[test]
fn ack_round_trip() {
    let m = Message::parse(ORM).unwrap();
    let ack = AckBuilder::for_message(&m)
        .timestamp("20250315120001")
        .control_id("ACK-1")
        .build();
    let view_msg = Message::parse(&ack).unwrap();
    assert_eq!(view_msg.header().message_type_string(), "ACK^O01");
    assert_eq!(view_msg.get("MSH-3").unwrap(), "MEDISFERA");
    assert_eq!(view_msg.get("MSH-5").unwrap(), "HIS");
    let view = parse_ack(&view_msg).unwrap();
    assert_eq!(view.code, AckCode::AA);
    assert_eq!(view.acknowledged_control_id, "MSG001");
    assert!(view.errors.is_empty());
}
