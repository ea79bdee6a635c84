//! GDT requests through the `doctolib` / `tomedo` presets, and 6310 results back.

use gdt::{FieldId, Record, RecordType};
use medrelay_worklist::gdt_map::{GdtContext, build_result, map_record};
use medrelay_worklist::*;

fn ctx() -> GdtContext {
    GdtContext {
        integration: "praxis-doctolib".into(),
        group: "ecg".into(),
        org: "default".into(),
        fallback_reference: "GDT-abc".into(),
    }
}

fn f(id: u16) -> FieldId {
    FieldId::new(id).unwrap()
}

/// A Doctolib-style 6302 with every field the catalogue lists.
fn doctolib_request() -> Record {
    let mut r = Record::new(RecordType::ExaminationRequest);
    for (id, v) in [
        (8315, "MEDR"),
        (8316, "DOCTOLIB"),
        (9206, "2"),
        (9218, "02.10"),
        (3000, "12345"),
        (3101, "Müller"),
        (3102, "Jürgen"),
        (3103, "24061965"),
        (3105, "A123456789"),
        (3106, "50667 Köln"),
        (3107, "Hauptstraße 5"),
        (3110, "1"),
        (3112, "50667"),
        (3113, "Köln"),
        (3633, "juergen@example.org"),
        (8402, "EKG01"),
        (8609, "K"),
        (2998, "RUHE-EKG"),
        (2999, "ORD-4711"),
        (3626, "900001"),
        (3629, "900002"),
    ] {
        r.push(f(id), v);
    }
    r
}

fn create(actions: Vec<WorklistAction>) -> (Patient, Appointment) {
    match actions.as_slice() {
        [
            WorklistAction::CreateAppointment {
                patient,
                appointment,
            },
        ] => (patient.clone(), appointment.clone()),
        other => panic!("expected one create, got {other:#?}"),
    }
}

#[test]
fn every_catalogue_field_is_mapped() {
    for preset in ["doctolib", "tomedo"] {
        let mapping = presets::gdt(preset).unwrap().mapping(None).unwrap();
        // Through the bytes, as a file would arrive: CP437, lengths checked.
        let bytes = doctolib_request().to_bytes().unwrap();
        let record = gdt::parse(&bytes).unwrap();
        let (patient, appt) = create(map_record(&record, &mapping, &ctx()).unwrap());

        assert_eq!(patient.family.as_deref(), Some("Müller"), "{preset}");
        assert_eq!(patient.given, ["Jürgen"]);
        assert_eq!(patient.birth_date.as_deref(), Some("1965-06-24"));
        assert_eq!(patient.sex.as_deref(), Some("male"));
        assert_eq!(patient.email.as_deref(), Some("juergen@example.org"));
        assert_eq!(patient.identifiers[0].value, "12345");
        assert_eq!(patient.identifiers[0].system.as_deref(), Some("DOCTOLIB"));
        assert_eq!(patient.identifiers[1].value, "A123456789");
        let address = patient.address.unwrap();
        assert_eq!(address.street.as_deref(), Some("Hauptstraße 5"));
        assert_eq!(address.other.as_deref(), Some("50667 Köln"));
        assert_eq!(address.postal_code.as_deref(), Some("50667"));
        assert_eq!(address.city.as_deref(), Some("Köln"));

        assert_eq!(appt.order.placer_order.as_deref(), Some("ORD-4711"));
        assert_eq!(appt.order.procedure.as_ref().unwrap().code, "RUHE-EKG");
        assert_eq!(appt.group, "ecg");
        assert_eq!(appt.integration, "praxis-doctolib");
        let extra = &appt.order.extra;
        for (id, v) in [
            ("8315", "MEDR"),
            ("8316", "DOCTOLIB"),
            ("9206", "2"),
            ("9218", "02.10"),
            ("8402", "EKG01"),
            ("8609", "K"),
            ("2998", "RUHE-EKG"),
            ("2999", "ORD-4711"),
            ("3626", "900001"),
            ("3629", "900002"),
        ] {
            assert_eq!(extra.get(id).map(String::as_str), Some(v), "{preset} {id}");
        }
    }
}

#[test]
fn the_gdt_fixtures_map() {
    let mapping = presets::gdt("doctolib").unwrap().mapping(None).unwrap();
    for bytes in [
        &include_bytes!("../../gdt/test_assets/request_6302_gdt21_cp437.gdt")[..],
        &include_bytes!("../../gdt/test_assets/request_6302_gdt30_latin1.gdt")[..],
    ] {
        let record = gdt::parse(bytes).unwrap();
        let (patient, appt) = create(map_record(&record, &mapping, &ctx()).unwrap());
        assert_eq!(patient.family.as_deref(), Some("Müller"));
        assert_eq!(patient.sex.as_deref(), Some("male"));
        assert!(appt.order.placer_order.is_some());
    }
    // GDT 3.0: the request id, the planned date and time.
    let v3 = gdt::parse(include_bytes!(
        "../../gdt/test_assets/request_6302_gdt30_latin1.gdt"
    ))
    .unwrap();
    let (patient, appt) = create(map_record(&v3, &mapping, &ctx()).unwrap());
    assert_eq!(appt.order.placer_order.as_deref(), Some("ANF-2025-0815"));
    assert_eq!(appt.scheduled_at.as_deref(), Some("2025-03-15T14:30:00"));
    assert_eq!(
        patient.email.as_deref(),
        Some("juergen.mueller@example.org")
    );
}

#[test]
fn bad_requests_are_clear_errors() {
    let mapping = presets::gdt("doctolib").unwrap().mapping(None).unwrap();
    // The insurance number alone still identifies the patient; neither does not.
    let mut no_number = doctolib_request();
    no_number.remove_all(f(3000));
    assert!(map_record(&no_number, &mapping, &ctx()).is_ok());
    no_number.remove_all(f(3105));
    let e = map_record(&no_number, &mapping, &ctx()).unwrap_err();
    assert!(e.to_string().contains("3000"), "{e}");

    let mut bad_date = doctolib_request();
    bad_date.set(f(3103), "31021965");
    let e = map_record(&bad_date, &mapping, &ctx()).unwrap_err();
    assert!(e.to_string().contains("FK 3103"), "{e}");

    let result = gdt::parse(include_bytes!(
        "../../gdt/test_assets/result_6310_gdt21_cp437.gdt"
    ))
    .unwrap();
    let e = map_record(&result, &mapping, &ctx()).unwrap_err();
    assert!(matches!(e, MapError::Unsupported(_)), "{e}");

    // Without an order reference the file's own reference stands in.
    let mut no_ref = doctolib_request();
    no_ref.remove_all(f(2999));
    let (_, appt) = create(map_record(&no_ref, &mapping, &ctx()).unwrap());
    assert_eq!(appt.order.placer_order.as_deref(), Some("GDT-abc"));
}

#[test]
fn overrides_replace_single_keys() {
    let overrides: toml::Table =
        toml::from_str("[patient]\nemail = \"3619\"\n[tables.sex]\n\"1\" = \"männlich\"\n")
            .unwrap();
    let m = presets::gdt("tomedo")
        .unwrap()
        .mapping(Some(&overrides))
        .unwrap();
    assert_eq!(m.patient.email.unwrap().fields, ["3619"]);
    assert_eq!(m.patient.family.unwrap().fields, ["3101"]);
    assert_eq!(m.tables["sex"]["1"], "männlich");
    assert_eq!(m.tables["sex"]["2"], "female");
    let bad: toml::Table = toml::from_str("[patient]\nfamily = \"31O1\"\n").unwrap();
    let e = presets::gdt("tomedo")
        .unwrap()
        .mapping(Some(&bad))
        .unwrap_err();
    assert!(e.contains("31O1"), "{e}");
}

#[test]
fn results_answer_the_request() {
    let mapping = presets::gdt("doctolib").unwrap().mapping(None).unwrap();
    let (patient, appt) = create(map_record(&doctolib_request(), &mapping, &ctx()).unwrap());
    let m = Measurement {
        appointment_id: "1".into(),
        kind: "ECG".into(),
        performed_at: "2025-03-15T14:30:05Z".into(),
        observations: vec![Observation {
            code: "HR".into(),
            display: Some("Herzfrequenz".into()),
            value: serde_json::json!(72),
            unit: Some("/min".into()),
            reference_range: Some("60-100".into()),
            ..Observation::default()
        }],
        ..Measurement::default()
    };
    let bytes = build_result(
        &appt,
        &patient,
        &m,
        &mapping.result,
        "M-1",
        Some("C:\\GDT\\out\\M-1.pdf"),
    )
    .unwrap();
    let r = gdt::parse(&bytes).unwrap();
    assert_eq!(r.record_type(), Some(RecordType::ExaminationData));
    // Back to the sender, from the id the request was sent to.
    assert_eq!(r.receiver_id(), Some("DOCTOLIB"));
    assert_eq!(r.sender_id(), Some("MEDR"));
    assert_eq!(r.get(f(3000)), Some("12345"));
    assert_eq!(r.get(f(3101)), Some("Müller"));
    assert_eq!(r.get(f(3102)), Some("Jürgen"));
    assert_eq!(r.get(f(3103)), Some("24061965"));
    assert_eq!(r.get(f(3110)), Some("1"));
    assert_eq!(r.get(f(8402)), Some("EKG01"));
    assert_eq!(r.get(f(6200)), Some("15032025"));
    assert_eq!(r.get(f(6201)), Some("143005"));
    let view = r.as_result().unwrap();
    let tests: Vec<_> = view.tests().collect();
    assert_eq!(tests.len(), 1);
    assert_eq!(r.get(f(8410)), Some("HR"));
    assert_eq!(r.get(f(8420)), Some("72"));
    assert_eq!(r.get(f(8421)), Some("/min"));
    assert_eq!(r.get(f(6305)), Some("C:\\GDT\\out\\M-1.pdf"));
    assert_eq!(r.get(f(6303)), Some("PDF"));
    // CP437 on the wire: ü is one byte.
    assert!(bytes.windows(2).any(|w| w == [b'M', 0x81]));
}
