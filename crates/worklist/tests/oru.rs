//! ORU^R01 built from a mapped order and a measurement, parsed back with hl7v2.

mod common;

use common::*;
use hl7v2::{Message, validate::validate};
use medrelay_worklist::oru::{OruContext, is_pdf};
use medrelay_worklist::*;
use serde_json::json;

fn order(preset_name: &str) -> (Patient, Appointment) {
    let actions = map(&full_orm("NW"), &preset(preset_name)).unwrap();
    match actions.into_iter().next() {
        Some(WorklistAction::CreateAppointment {
            patient,
            appointment,
        }) => (patient, appointment),
        other => panic!("{other:?}"),
    }
}

fn measurement() -> Measurement {
    Measurement {
        appointment_id: "appt-1".into(),
        kind: "ECG".into(),
        performed_at: "2025-03-15T14:05:00+01:00".into(),
        observations: vec![
            Observation {
                code: "8867-4".into(),
                system: Some("LN".into()),
                display: Some("Heart rate".into()),
                value: json!(72),
                unit: Some("/min".into()),
                reference_range: Some("60-100".into()),
                abnormal_flag: Some("N".into()),
            },
            Observation {
                code: "QTC".into(),
                system: None,
                display: Some("QTc | corrected".into()),
                value: json!(412.5),
                unit: Some("ms".into()),
                reference_range: None,
                abnormal_flag: Some("H".into()),
            },
            Observation {
                code: "INTERP".into(),
                system: Some("L".into()),
                display: Some("Interpretation".into()),
                value: json!("Sinus rhythm ^ normal & fine"),
                ..Default::default()
            },
            Observation {
                code: "RHYTHM".into(),
                system: Some("L".into()),
                display: None,
                value: json!({"code": "SR", "display": "Sinus rhythm", "system": "SCT"}),
                ..Default::default()
            },
        ],
        report_pdf: pdf(),
        ..Default::default()
    }
}

fn ctx_for(preset_name: &str) -> OruContext {
    OruContext::from_settings(&preset(preset_name).oru, "RPT-1", "20250315145530+0100")
}

#[test]
fn oru_echoes_the_order_for_every_preset() {
    for name in PRESETS {
        let (patient, appt) = order(name);
        let m = measurement();
        let ctx = OruContext {
            sending_facility: "CLINIC".into(),
            receiving_facility: "HOSPITAL_A".into(),
            ..ctx_for(name)
        };
        let bytes = build_oru(&ctx, &appt, &patient, &m).unwrap();
        let msg = Message::parse(&bytes).unwrap();

        let issues = validate(&msg);
        assert!(issues.iter().all(|i| !i.is_error()), "{name}: {issues:#?}");

        let h = msg.header();
        assert_eq!(msg.get("MSH-9").unwrap(), "ORU^R01^ORU_R01");
        assert_eq!(h.sending_application().as_deref(), Some("MEDRELAY"));
        assert_eq!(h.sending_facility().as_deref(), Some("CLINIC"));
        let want_app = if name == "hl7-mllp" {
            None
        } else {
            Some(name.to_uppercase())
        };
        assert_eq!(h.receiving_application().map(|s| s.to_string()), want_app);
        assert_eq!(h.receiving_facility().as_deref(), Some("HOSPITAL_A"));
        assert_eq!(h.control_id().as_deref(), Some("RPT-1"));
        assert_eq!(h.timestamp().as_deref(), Some("20250315145530+0100"));
        assert_eq!(h.version().as_deref(), Some("2.5"));
        assert_eq!(h.processing_id().as_deref(), Some("P"));

        // PID echoes the patient.
        assert_eq!(
            msg.get("PID-3").unwrap(),
            "1234567890^^^HIS^MR~X-77^^^1.2.3^PI"
        );
        assert_eq!(msg.get("PID-5").unwrap(), "GARCIA^PEDRO^MIGUEL^JR^DR");
        assert_eq!(msg.get("PID-7").unwrap(), "19751022");
        assert_eq!(msg.get("PID-8").unwrap(), "M");
        assert_eq!(msg.get("PID-10").unwrap(), "2106-3^White^CDCREC");
        assert_eq!(
            msg.get("PID-11").unwrap(),
            "C/ MAYOR 1^PISO 2^MADRID^MD^28001^ES^H"
        );
        assert_eq!(
            msg.get("PID-13").unwrap(),
            "+34 91 5551234~^NET^Internet^pedro@example.com"
        );

        // PV1 echoes the visit.
        assert_eq!(msg.get("PV1-2").unwrap(), "O");
        assert_eq!(msg.get("PV1-3").unwrap(), "CARDIO^101^1^HOSPITAL_A");
        assert_eq!(msg.get("PV1-7").unwrap(), "12345^LOPEZ^ANA^MARIA^^DR");
        assert_eq!(msg.get("PV1-19").unwrap(), "V-2025-77^^^HOSPITAL_A^VN");
        assert_eq!(msg.get("PV1-44").unwrap(), "20250315110000");

        // ORC / OBR echo the order numbers and procedure.
        assert_eq!(msg.get("ORC-1").unwrap(), "RE");
        assert_eq!(msg.get("ORC-2").unwrap(), "ORD-2025-001");
        assert_eq!(msg.get("ORC-3").unwrap(), "FIL-9");
        assert_eq!(msg.get("ORC-12").unwrap(), "12345^LOPEZ^ANA");
        assert_eq!(msg.get("OBR-1").unwrap(), "1");
        assert_eq!(msg.get("OBR-2").unwrap(), "ORD-2025-001");
        assert_eq!(msg.get("OBR-3").unwrap(), "FIL-9");
        assert_eq!(msg.get("OBR-4").unwrap(), "ECG^Electrocardiogram^L");
        assert_eq!(msg.get("OBR-7").unwrap(), "20250315140500+0100");
        assert_eq!(msg.get("OBR-16").unwrap(), "67890^SMITH^JOHN");
        assert_eq!(msg.get("OBR-22").unwrap(), "20250315145530+0100");
        assert_eq!(msg.get("OBR-25").unwrap(), "F");

        // One OBX per observation, then the PDF.
        let obx: Vec<_> = msg.segments_named("OBX").collect();
        assert_eq!(obx.len(), 5);
        let f = |i: usize, n: usize| obx[i].field(n).map(|v| v.to_string()).unwrap_or_default();
        let d = |i: usize, n: usize| {
            obx[i]
                .field(n)
                .map(|v| v.decoded().to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            (
                f(0, 1),
                f(0, 2),
                f(0, 3),
                f(0, 5),
                f(0, 6),
                f(0, 7),
                f(0, 8),
                f(0, 11),
                f(0, 14)
            ),
            (
                "1".into(),
                "NM".into(),
                "8867-4^Heart rate^LN".into(),
                "72".into(),
                "/min".into(),
                "60-100".into(),
                "N".into(),
                "F".into(),
                "20250315140500+0100".into()
            )
        );
        assert_eq!(
            (f(1, 2), f(1, 5), f(1, 8)),
            ("NM".into(), "412.5".into(), "H".into())
        );
        assert_eq!(msg.get_decoded("OBX(2)-3.2").unwrap(), "QTc | corrected");
        assert_eq!(
            (f(2, 2), d(2, 5)),
            ("ST".into(), "Sinus rhythm ^ normal & fine".into())
        );
        assert_eq!(
            (f(3, 2), f(3, 5)),
            ("CE".into(), "SR^Sinus rhythm^SCT".into())
        );
        assert_eq!(
            (f(4, 1), f(4, 2), f(4, 3), f(4, 11)),
            ("5".into(), "ED".into(), "PDF^Report^L".into(), "F".into())
        );
        assert!(
            f(4, 5).starts_with("^AP^PDF^Base64^JVBERi0xLjQK"),
            "{}",
            f(4, 5)
        );

        assert_eq!(parse_oru_pdf(&msg).unwrap(), m.report_pdf, "{name}");
    }
}

#[test]
fn v27_uses_mime_types_and_large_pdfs_round_trip() {
    let (patient, appt) = order("iris");
    let mut m = measurement();
    let mut big = b"%PDF-1.7\n".to_vec();
    big.extend((0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    big.extend_from_slice(b"\n%%EOF");
    m.report_pdf = big;
    let ctx = OruContext {
        version: "2.7".into(),
        ..ctx_for("iris")
    };
    let bytes = build_oru(&ctx, &appt, &patient, &m).unwrap();
    let msg = Message::parse(&bytes).unwrap();
    assert!(
        msg.get("OBX(5)-5")
            .unwrap()
            .to_string()
            .starts_with("^application^pdf^Base64^")
    );
    assert_eq!(parse_oru_pdf(&msg).unwrap(), m.report_pdf);
    assert!(validate(&msg).iter().all(|i| !i.is_error()));
}

#[test]
fn minimal_order_still_builds_a_valid_oru() {
    let patient = Patient {
        id: "p-1".into(),
        family: Some("DOE".into()),
        sex: Some("female".into()),
        ..Default::default()
    };
    let appt = Appointment::default();
    let m = Measurement {
        kind: "ABI".into(),
        performed_at: "2025-03-15T12:00:00Z".into(),
        ..Default::default()
    };
    assert_eq!(
        build_oru(&OruContext::default(), &appt, &patient, &m),
        Err(OruError::MissingContext("control_id"))
    );
    let ctx = OruContext {
        control_id: "C1".into(),
        timestamp: "20250315".into(),
        ..Default::default()
    };
    let bytes = build_oru(&ctx, &appt, &patient, &m).unwrap();
    let msg = Message::parse(&bytes).unwrap();
    assert!(
        validate(&msg).iter().all(|i| !i.is_error()),
        "{:?}",
        validate(&msg)
    );
    assert_eq!(msg.get("PID-3").unwrap(), "p-1^^^MEDRELAY");
    assert_eq!(msg.get("PID-8").unwrap(), "F");
    assert_eq!(msg.get("OBR-4").unwrap(), "ABI^ABI^L");
    assert_eq!(msg.segments_named("PV1").count(), 0);
    assert_eq!(msg.segments_named("OBX").count(), 0);
    assert_eq!(parse_oru_pdf(&msg), None);
}

#[test]
fn build_errors() {
    let (patient, appt) = order("hl7-mllp");
    let mut m = measurement();
    m.performed_at = "yesterday".into();
    assert!(matches!(
        build_oru(&ctx_for("isoz"), &appt, &patient, &m),
        Err(OruError::InvalidTime { .. })
    ));
    let ctx = OruContext {
        timestamp: "now".into(),
        ..ctx_for("isoz")
    };
    assert!(matches!(
        build_oru(&ctx, &appt, &patient, &measurement()),
        Err(OruError::InvalidTime { .. })
    ));
    let mut m = measurement();
    m.observations[1].value = json!(true);
    assert!(matches!(
        build_oru(&ctx_for("isoz"), &appt, &patient, &m),
        Err(OruError::InvalidObservation { index: 1, .. })
    ));
}

#[test]
fn validate_measurements() {
    let m = measurement();
    assert_eq!(validate_measurement(&m, 1 << 20), Ok(()));
    assert!(is_pdf(&pdf()));

    let mut bad = measurement();
    bad.performed_at = "2025-03-15".into();
    bad.kind = String::new();
    bad.observations[0].code = " ".into();
    bad.observations[1].value = serde_json::Value::Null;
    bad.observations[2].value = json!({"display": "x", "colour": "red"});
    bad.observations[3].value = json!([1, 2]);
    bad.report_pdf = b"GIF89a".to_vec();
    let errors = validate_measurement(&bad, 1 << 20).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "type",
            "performed_at",
            "observations[0].code",
            "observations[1].value",
            "observations[2].value.code",
            "observations[2].value.colour",
            "observations[3].value",
            "report_pdf"
        ]
    );

    let mut big = measurement();
    big.report_pdf = pdf();
    let errors = validate_measurement(&big, 100).unwrap_err();
    assert_eq!(errors[0].field, "report_pdf");
    assert!(errors[0].reason.contains("limit"));

    let mut truncated = measurement();
    truncated.report_pdf = b"%PDF-1.4\nno end marker".to_vec();
    assert!(validate_measurement(&truncated, 1 << 20).is_err());
}
