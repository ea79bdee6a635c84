//! Sample model objects shared by the tests.
#![allow(dead_code)]

use medrelay_worklist as model;
use serde_json::json;

pub fn patient() -> model::Patient {
    model::Patient {
        id: "p1".into(),
        identifiers: vec![
            model::Identifier {
                value: "12345".into(),
                system: Some("HIS".into()),
                kind: Some("MR".into()),
            },
            model::Identifier {
                value: "987".into(),
                system: Some("1.2.276.0.76.4.8".into()),
                kind: None,
            },
        ],
        family: Some("Doe".into()),
        given: vec!["Jane".into(), "Q".into()],
        suffix: Some("Jr".into()),
        prefix: Some("Dr".into()),
        birth_date: Some("1975-10-22".into()),
        sex: Some("female".into()),
        address: Some(model::Address {
            street: Some("1 Main St".into()),
            city: Some("Springfield".into()),
            postal_code: Some("12345".into()),
            country: Some("US".into()),
            ..Default::default()
        }),
        phone: Some("555-1234".into()),
        email: Some("jane@example.org".into()),
        ..Default::default()
    }
}

pub fn appointment(status: model::AppointmentStatus) -> model::Appointment {
    model::Appointment {
        id: "a1".into(),
        org: "org".into(),
        integration: "cardio".into(),
        group: "ecg".into(),
        status,
        scheduled_at: Some("2025-03-15T12:00:00".into()),
        order: model::Order {
            request_date: Some("2025-03-14T09:30:00+01:00".into()),
            placer_order: Some("PL-1".into()),
            filler_order: Some("FI-1".into()),
            ordering_provider: Some(model::Provider {
                id: Some("D123".into()),
                family: Some("House".into()),
                given: vec!["Gregory".into()],
                prefix: Some("Dr".into()),
            }),
            procedure: Some(model::Coded {
                code: "ECG".into(),
                display: Some("Resting ECG".into()),
                system: Some("L".into()),
            }),
            ..Default::default()
        },
        patient_id: "p1".into(),
        ..Default::default()
    }
}

pub fn measurement() -> model::Measurement {
    model::Measurement {
        id: "m1".into(),
        org: "org".into(),
        appointment_id: "a1".into(),
        device_id: "d1".into(),
        kind: "ECG".into(),
        performed_at: "2025-03-15T12:10:00".into(),
        observations: vec![
            model::Observation {
                code: "8867-4".into(),
                system: Some("LN".into()),
                display: Some("Heart rate".into()),
                value: json!(72),
                unit: Some("/min".into()),
                reference_range: Some("60-100".into()),
                abnormal_flag: Some("N".into()),
            },
            model::Observation {
                code: "QT".into(),
                system: Some("ACME".into()),
                display: Some("QT interval".into()),
                value: json!(455.5),
                unit: Some("ms".into()),
                reference_range: None,
                abnormal_flag: Some("H".into()),
            },
            model::Observation {
                code: "INTERP".into(),
                system: None,
                display: Some("Interpretation".into()),
                value: json!("Sinus rhythm"),
                unit: None,
                reference_range: None,
                abnormal_flag: None,
            },
            model::Observation {
                code: "RHYTHM".into(),
                system: Some("ACME".into()),
                display: None,
                value: json!({"code": "SR", "display": "Sinus rhythm", "system": "ACME"}),
                unit: None,
                reference_range: None,
                abnormal_flag: Some("XYZ".into()),
            },
        ],
        report_pdf: b"%PDF-1.4 test".to_vec(),
    }
}

pub fn device() -> model::Device {
    model::Device {
        id: "d1".into(),
        org: "org".into(),
        name: "Tablet 1".into(),
        group: "ecg".into(),
        last_seen_at: None,
        created_at: 0,
    }
}
