//! The fixtures of `test_assets/` (written by `make_fixtures.py`, an implementation
//! independent of this crate): every field decodes as expected and parse → write gives
//! back the same bytes.

use gdt::{Charset, Date, GdtVersion, RecordType, Sex, Time, ids};

const REQ21: &[u8] = include_bytes!("../test_assets/request_6302_gdt21_cp437.gdt");
const REQ30: &[u8] = include_bytes!("../test_assets/request_6302_gdt30_latin1.gdt");
const RES21: &[u8] = include_bytes!("../test_assets/result_6310_gdt21_cp437.gdt");

#[test]
fn byte_exact_round_trip() {
    for (name, bytes) in [("req21", REQ21), ("req30", REQ30), ("res21", RES21)] {
        let r = gdt::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.to_bytes().unwrap(), bytes, "{name}");
        assert_eq!(
            r.record_length().unwrap(),
            Some(bytes.len() as u64),
            "{name}"
        );
    }
}

#[test]
fn request_gdt21_cp437() {
    let r = gdt::parse(REQ21).unwrap();
    assert_eq!(r.record_type(), Some(RecordType::ExaminationRequest));
    assert_eq!(r.charset(), Ok(Charset::Cp437));
    assert_eq!(r.version(), Some(GdtVersion::V2_1));
    assert_eq!(r.version_str(), Some("02.10"));
    assert_eq!(r.receiver_id(), Some("EKG_DEV"));
    assert_eq!(r.sender_id(), Some("PRAX_EDV"));
    let req = r.as_request().unwrap();
    assert_eq!(req.procedure(), Some("EKG01"));
    assert_eq!(req.test_ids().collect::<Vec<_>>(), ["RUHEEKG"]);
    let p = req.patient();
    assert_eq!(p.number(), Some("12345"));
    assert_eq!(p.surname(), Some("Müller"));
    assert_eq!(p.first_name(), Some("Jürgen"));
    assert_eq!(p.birth_date(), Ok(Date::new(1965, 6, 24)));
    assert_eq!(p.title(), Some("Dr."));
    assert_eq!(p.insurance_number(), Some("A123456789"));
    assert_eq!(p.residence(), Some("50667 Köln"));
    assert_eq!(p.street(), Some("Hauptstraße 5"));
    assert_eq!(p.sex(), Ok(Some(Sex::Male)));
    assert_eq!(p.height_cm(), Ok(Some(178.0)));
    assert_eq!(p.weight_kg(), Ok(Some(82.0)));
    assert_eq!(p.city(), None);
    assert!(r.as_result().is_none());
}

#[test]
fn request_gdt30_latin1() {
    let r = gdt::parse(REQ30).unwrap();
    assert_eq!(r.charset(), Ok(Charset::Latin1));
    assert!(r.version().unwrap().is_v3());
    // 8100 has 7 digits in GDT 3.0.
    assert_eq!(r.get(ids::RECORD_LENGTH), Some("0000534"));
    let req = r.as_request().unwrap();
    let p = req.patient();
    assert_eq!(p.surname(), Some("Müller"));
    assert_eq!(p.street(), Some("Hauptstraße 5"));
    assert_eq!(p.sex(), Ok(Some(Sex::Male)));
    assert_eq!(p.postal_code(), Some("50667"));
    assert_eq!(p.city(), Some("Köln"));
    assert_eq!(p.email(), Some("juergen.mueller@example.org"));
    assert_eq!(p.height_cm(), Ok(Some(178.0)));
    assert_eq!(req.request_id(), Some("ANF-2025-0815"));
    assert!(req.request_uid().unwrap().starts_with("1.2.276."));
    assert_eq!(req.date(), Ok(Date::new(2025, 3, 15)));
    assert_eq!(req.time(), Ok(Time::new(14, 30, 0)));
    // GDT 3.0 object markers are kept as ordinary fields, in order.
    let objects: Vec<_> = r.get_all(ids::OBJECT_START).collect();
    assert_eq!(
        objects,
        [
            "Obj_Kopfdaten",
            "Obj_Patient",
            "Obj_Anforderung",
            "Obj_Basisdiagnostik"
        ]
    );
    assert_eq!(r.get(ids::RECORD_END), Some(r.len().to_string().as_str()));
    // The raw bytes really are Latin-1: 'ü' is one byte 0xFC.
    assert!(REQ30.windows(8).any(|w| w == b"3101M\xfcll"));
}

#[test]
fn result_gdt21() {
    let r = gdt::parse(RES21).unwrap();
    let res = r.as_result().unwrap();
    assert_eq!(res.sender_id(), Some("EKG_DEV"));
    assert_eq!(res.receiver_id(), Some("PRAX_EDV"));
    assert_eq!(res.date(), Ok(Date::new(2025, 3, 15)));
    assert_eq!(res.time(), Ok(Time::new(14, 30, 5)));
    assert_eq!(res.findings().count(), 3);
    assert!(res.findings_text().contains("Erregungsrückbildungsstörung"));
    assert_eq!(
        res.comments().collect::<Vec<_>>(),
        ["Vorläufiger Befund, ärztliche Freigabe folgt."]
    );
    let tests: Vec<_> = res.tests().collect();
    let ids: Vec<_> = tests.iter().map(|t| t.id()).collect();
    assert_eq!(ids, ["HF", "PQ", "QRS", "QTC"]);
    assert_eq!(tests[0].name(), Some("Herzfrequenz"));
    assert_eq!(tests[0].normal_lower(), Ok(Some(60.0)));
    assert_eq!(tests[0].normal_upper(), Ok(Some(100.0)));
    assert_eq!(tests[2].result_texts().collect::<Vec<_>>(), ["normal"]);
    assert_eq!(tests[3].value_f64(), Ok(Some(412.0)));
    assert_eq!(tests[3].unit(), Some("ms"));
    // The signature after the last test is not part of it.
    assert_eq!(tests[3].fields().len(), 4);
    assert_eq!(res.signature(), Some("Dr. Weiß"));
    let files: Vec<_> = res.files().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].archive_id(), "EKG-2025-0001");
    assert_eq!(files[0].format(), Some("PDF"));
    assert_eq!(files[0].description(), Some("Ruhe-EKG Befundbericht"));
    assert_eq!(
        files[0].reference(),
        Some("C:\\GDT\\Befunde\\EKG-2025-0001.pdf")
    );
}

/// The builder reproduces the independently written 6310 fixture.
#[test]
fn builder_matches_fixture() {
    use gdt::{FileEntry, ResultRecordBuilder, TestEntry};
    let request = gdt::parse(REQ21).unwrap();
    let record = ResultRecordBuilder::answering(&request)
        .date(Date::new(2025, 3, 15).unwrap())
        .time(Time::new(14, 30, 5).unwrap())
        .findings("Sinusrhythmus, Herzfrequenz 72/min, Indifferenztyp.\nPQ-, QRS- und QT-Zeit normal.\nKeine Erregungsrückbildungsstörung.")
        .comment("Vorläufiger Befund, ärztliche Freigabe folgt.")
        .file(FileEntry::pdf(
            "EKG-2025-0001",
            "Ruhe-EKG Befundbericht",
            "C:\\GDT\\Befunde\\EKG-2025-0001.pdf",
        ))
        .test(
            TestEntry::new("HF")
                .name("Herzfrequenz")
                .value("72")
                .unit("/min")
                .normal_range("60", "100"),
        )
        .test(TestEntry::new("PQ").name("PQ-Zeit").value("160").unit("ms"))
        .test(
            TestEntry::new("QRS")
                .name("QRS-Dauer")
                .value("96")
                .unit("ms")
                .result_text("normal"),
        )
        .test(TestEntry::new("QTC").name("QTc-Zeit (Bazett)").value("412").unit("ms"))
        .signature("Dr. Weiß")
        .build()
        .unwrap();
    // The request's title is copied too; the fixture's result has none.
    let mut record = record;
    record.remove_all(ids::TITLE);
    assert_eq!(record.to_bytes().unwrap(), RES21);
}

#[test]
fn seven_bit_din66003() {
    let mut r = gdt::Record::new(RecordType::PatientData);
    r.push(ids::CHARSET, "1")
        .push(ids::SURNAME, "Müller")
        .push(ids::STREET, "Straße");
    let bytes = r.to_bytes().unwrap();
    assert!(bytes.windows(11).any(|w| w == b"3101M}ller\r"));
    assert!(bytes.windows(11).any(|w| w == b"3107Stra~e\r"));
    assert!(bytes.is_ascii());
    let back = gdt::parse(&bytes).unwrap();
    assert_eq!(back.patient().surname(), Some("Müller"));
    assert_eq!(back.patient().street(), Some("Straße"));
}

/// The fields the device maker's catalogue lists beyond the standard's tables.
#[test]
fn catalogue_vendor_fields() {
    let mut r = gdt::Record::new(RecordType::ExaminationRequest);
    r.push(ids::REQUESTED_SERVICE, "RUHE-EKG")
        .push(ids::ORDER_REFERENCE, "ORD-4711")
        .push(ids::PHONE, "900001")
        .push(ids::EXTRA_ORDER_NUMBER, "900002")
        .push(ids::VENDOR_EMAIL, "juergen@example.org");
    let r = gdt::parse(&r.to_bytes().unwrap()).unwrap();
    let req = r.as_request().unwrap();
    assert_eq!(req.requested_service(), Some("RUHE-EKG"));
    assert_eq!(req.order_reference(), Some("ORD-4711"));
    assert_eq!(req.extra_order_number(), Some("900002"));
    assert_eq!(req.patient().vendor_email(), Some("juergen@example.org"));
    assert_eq!(req.patient().phone(), Some("900001"));
    assert_eq!(
        gdt::field_name(ids::ORDER_REFERENCE),
        Some("order reference (vendor)")
    );
}
