//! Shared test fixtures: a seed-style ORM^O01 with every field the catalogue lists.
#![allow(dead_code)]

use hl7v2::{Message, MessageBuilder};
use medrelay_worklist::mapping::{MapContext, Mapping, map_message};
use medrelay_worklist::{MapError, WorklistAction, presets};

pub const PRESETS: [&str; 6] = ["hl7-mllp", "birpis", "hipokrat", "iris", "isoz", "nextgen"];

pub fn ctx() -> MapContext {
    MapContext {
        integration: "cardiology-nextgen".into(),
        group: "cardiology".into(),
        org: "default".into(),
    }
}

pub fn preset(name: &str) -> Mapping {
    presets::get(name).unwrap().mapping
}

pub fn map(raw: &[u8], mapping: &Mapping) -> Result<Vec<WorklistAction>, MapError> {
    let msg = Message::parse(raw).unwrap();
    map_message(&msg, mapping, &ctx())
}

pub fn msh(b: MessageBuilder) -> MessageBuilder {
    b.control_id("MSG001")
        .sending("HIS", "HOSPITAL_A")
        .receiving("MEDRELAY", "CARDIO")
        .timestamp("20250315120000+0100")
}

pub fn pid(s: hl7v2::builder::SegmentBuilder) -> hl7v2::builder::SegmentBuilder {
    s.field(1, "1")
        .field(3, "1234567890^^^HIS^MR~X-77^^^&1.2.3&ISO^PI")
        .field(5, "GARCIA^PEDRO^MIGUEL^JR^DR")
        .field(7, "19751022")
        .field(8, "M")
        .field(10, "2106-3^White^CDCREC")
        .field(11, "C/ MAYOR 1^PISO 2^MADRID^MD^28001^ES^H")
        .field(13, "^PRN^PH^^34^91^5551234~^NET^Internet^pedro@example.com")
        .field(15, "es^Spanish^ISO6391")
}

pub fn pv1(s: hl7v2::builder::SegmentBuilder) -> hl7v2::builder::SegmentBuilder {
    s.field(1, "1")
        .field(2, "O")
        .field(3, "CARDIO^101^1^HOSPITAL_A")
        .field(4, "R")
        .field(7, "12345^LOPEZ^ANA^MARIA^^DR")
        .field(10, "CAR")
        .field(19, "V-2025-77^^^HOSPITAL_A^VN")
        .field(44, "20250315110000")
        .field(45, "20250315180000")
}

pub fn orc(s: hl7v2::builder::SegmentBuilder, control: &str) -> hl7v2::builder::SegmentBuilder {
    s.field(1, control)
        .field(2, "ORD-2025-001^HIS")
        .field(3, "FIL-9^MEDRELAY")
        .field(4, "GRP-1^HIS")
        .field(5, "SC")
        .field(6, "Y")
        .field(7, "1^ONCE^^20250315130000^^R")
        .field(9, "20250315115500")
        .field(10, "E1^ENTER^EVA")
        .field(11, "V1^VERIFY^VIC")
        .field(12, "12345^LOPEZ^ANA")
        .field(14, "^WPN^PH^^^91^5559999")
        .field(15, "20250315120500")
}

pub fn obr(s: hl7v2::builder::SegmentBuilder) -> hl7v2::builder::SegmentBuilder {
    s.field(1, "1")
        .field(2, "ORD-2025-001^HIS")
        .field(3, "FIL-9^MEDRELAY")
        .field(4, "ECG^Electrocardiogram^L")
        .field(5, "S")
        .field(6, "20250315130000")
        .field(7, "20250315131000")
        .field(16, "67890^SMITH^JOHN")
        .field(24, "EC")
        .field(27, "1^^^20250315130000^^S")
        .field(34, "T1&TECH&TOM")
        .field(36, "20250315140000")
        .field(44, "93000^ECG routine^C4")
}

/// The full ORM^O01 with ORC-1 = `control`.
pub fn full_orm(control: &str) -> Vec<u8> {
    msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("PV1", pv1)
        .segment("ORC", |s| orc(s, control))
        .segment("OBR", obr)
        .build_bytes()
        .unwrap()
}

/// A small but complete PDF.
pub fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    v.extend((0u8..=255).collect::<Vec<_>>());
    v.extend_from_slice(b"\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    v
}
