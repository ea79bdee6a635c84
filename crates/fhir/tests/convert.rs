mod common;

use medrelay_fhir::{
    AppointmentIn, Converter, Reference, appointment_to_model, device, patient, patient_to_model,
    service_request_to_order,
};
use medrelay_worklist::AppointmentStatus;
use serde_json::{Value, json};

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

fn pref() -> Reference {
    Reference::to("Patient", "p1")
}

#[test]
fn patient_json() {
    assert_eq!(
        to_json(&patient(&common::patient())),
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                    "system": "HIS",
                    "value": "12345"
                },
                {"system": "urn:oid:1.2.276.0.76.4.8", "value": "987"}
            ],
            "name": [{"use": "official", "family": "Doe", "given": ["Jane", "Q"], "prefix": ["Dr"], "suffix": ["Jr"]}],
            "telecom": [
                {"system": "phone", "value": "555-1234"},
                {"system": "email", "value": "jane@example.org"}
            ],
            "gender": "female",
            "birthDate": "1975-10-22",
            "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "12345", "country": "US"}]
        })
    );
}

#[test]
fn gender_mapping() {
    for (sex, gender) in [
        ("male", "male"),
        ("female", "female"),
        ("other", "other"),
        ("unknown", "unknown"),
        ("M", "male"),
        ("F", "female"),
        ("U", "unknown"),
        ("something", "unknown"),
    ] {
        let mut p = common::patient();
        p.sex = Some(sex.into());
        assert_eq!(patient(&p).gender.as_deref(), Some(gender), "{sex}");
    }
    let mut p = common::patient();
    p.sex = None;
    assert!(to_json(&patient(&p)).get("gender").is_none());
}

#[test]
fn minimal_patient_has_no_empty_elements() {
    let p = medrelay_worklist::Patient {
        id: "x".into(),
        ..Default::default()
    };
    assert_eq!(
        to_json(&patient(&p)),
        json!({"resourceType": "Patient", "id": "x"})
    );
}

#[test]
fn service_request_json() {
    let c = Converter::new(chrono::FixedOffset::east_opt(3600).unwrap());
    let sr = c.service_request(&common::appointment(AppointmentStatus::Scheduled), &pref());
    assert_eq!(
        to_json(&sr),
        json!({
            "resourceType": "ServiceRequest",
            "id": "a1",
            "identifier": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC", "display": "Placer Identifier"}]}, "value": "PL-1"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "FILL", "display": "Filler Identifier"}]}, "value": "FI-1"}
            ],
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": "L", "code": "ECG", "display": "Resting ECG"}], "text": "Resting ECG"},
            "subject": {"reference": "Patient/p1"},
            "occurrenceDateTime": "2025-03-15T12:00:00+01:00",
            "authoredOn": "2025-03-14T09:30:00+01:00",
            "requester": {"identifier": {"value": "D123"}, "display": "Dr Gregory House"}
        })
    );
    for (status, fhir) in [
        (AppointmentStatus::Cancelled, "revoked"),
        (AppointmentStatus::Completed, "completed"),
    ] {
        assert_eq!(
            c.service_request(&common::appointment(status), &pref())
                .status,
            fhir
        );
    }
}

#[test]
fn appointment_json() {
    let c = Converter::default();
    let a = c.appointment(&common::appointment(AppointmentStatus::Scheduled), &pref());
    assert_eq!(
        to_json(&a),
        json!({
            "resourceType": "Appointment",
            "id": "a1",
            "status": "booked",
            "serviceType": [{"coding": [{"system": "L", "code": "ECG", "display": "Resting ECG"}], "text": "Resting ECG"}],
            "start": "2025-03-15T12:00:00Z",
            "end": "2025-03-15T12:00:00Z",
            "basedOn": [{"reference": "ServiceRequest/a1"}],
            "participant": [{"actor": {"reference": "Patient/p1"}, "required": "required", "status": "accepted"}]
        })
    );
    for (status, fhir) in [
        (AppointmentStatus::Cancelled, "cancelled"),
        (AppointmentStatus::Completed, "fulfilled"),
    ] {
        assert_eq!(
            c.appointment(&common::appointment(status), &pref()).status,
            fhir
        );
    }
}

#[test]
fn observations_json() {
    let obs = Converter::default().observations(&common::measurement(), &pref());
    let j: Vec<Value> = obs.iter().map(to_json).collect();
    assert_eq!(
        j[0],
        json!({
            "resourceType": "Observation",
            "id": "m1-1",
            "basedOn": [{"reference": "ServiceRequest/a1"}],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2025-03-15T12:10:00Z",
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N", "display": "Normal"}]}],
            "device": {"reference": "Device/d1"},
            "referenceRange": [{"text": "60-100"}]
        })
    );
    assert_eq!(j[1]["code"]["coding"][0]["system"], "ACME");
    assert_eq!(j[1]["valueQuantity"]["value"], json!(455.5));
    assert_eq!(j[1]["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(j[2]["valueString"], "Sinus rhythm");
    assert!(j[2]["code"]["coding"][0].get("system").is_none());
    assert_eq!(
        j[3]["valueCodeableConcept"],
        json!({"coding": [{"system": "ACME", "code": "SR", "display": "Sinus rhythm"}], "text": "Sinus rhythm"})
    );
    assert_eq!(j[3]["interpretation"], json!([{"text": "XYZ"}]));
}

#[test]
fn diagnostic_report_json() {
    let c = Converter::default();
    let m = common::measurement();
    let results = vec![Reference::to("Observation", "m1-1")];
    let r = c.diagnostic_report(&m, &pref(), results);
    assert_eq!(
        to_json(&r),
        json!({
            "resourceType": "DiagnosticReport",
            "id": "m1",
            "basedOn": [{"reference": "ServiceRequest/a1"}],
            "status": "final",
            "code": {"text": "ECG"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2025-03-15T12:10:00Z",
            "result": [{"reference": "Observation/m1-1"}],
            "presentedForm": [{"contentType": "application/pdf", "data": "JVBERi0xLjQgdGVzdA==", "size": 13, "title": "ECG report"}]
        })
    );
}

#[test]
fn device_json() {
    assert_eq!(
        to_json(&device(&common::device())),
        json!({"resourceType": "Device", "id": "d1", "status": "active", "deviceName": [{"name": "Tablet 1", "type": "user-friendly-name"}]})
    );
}

#[test]
fn resources_round_trip_and_reject_wrong_type() {
    let p = patient(&common::patient());
    let back: medrelay_fhir::Patient = serde_json::from_value(to_json(&p)).unwrap();
    assert_eq!(back, p);
    let wrong = json!({"resourceType": "Device", "id": "x"});
    assert!(serde_json::from_value::<medrelay_fhir::Patient>(wrong).is_err());
}

#[test]
fn searchset_bundle() {
    let p = patient(&common::patient());
    let b = medrelay_fhir::Bundle::searchset(
        3,
        "http://h/fhir/R4/Patient?_count=1",
        Some("http://h/fhir/R4/Patient?_count=1&page=2"),
        vec![(
            "http://h/fhir/R4/Patient/p1".into(),
            medrelay_fhir::Resource::Patient(Box::new(p)),
        )],
    );
    let j = to_json(&b);
    assert_eq!(j["resourceType"], "Bundle");
    assert_eq!(j["type"], "searchset");
    assert_eq!(j["total"], 3);
    assert_eq!(
        j["link"][1],
        json!({"relation": "next", "url": "http://h/fhir/R4/Patient?_count=1&page=2"})
    );
    assert_eq!(j["entry"][0]["search"], json!({"mode": "match"}));
    assert_eq!(j["entry"][0]["resource"]["resourceType"], "Patient");
    let back: medrelay_fhir::Bundle = serde_json::from_value(j).unwrap();
    assert_eq!(back, b);
}

#[test]
fn service_request_back_to_order() {
    let c = Converter::default();
    let a = common::appointment(AppointmentStatus::Scheduled);
    let sr = c.service_request(&a, &pref());
    let (patient_id, back) = service_request_to_order(&sr).unwrap();
    assert_eq!(patient_id, "p1");
    assert_eq!(back.patient_id, "p1");
    assert_eq!(back.id, "a1");
    assert_eq!(back.status, AppointmentStatus::Scheduled);
    assert_eq!(back.order.placer_order.as_deref(), Some("PL-1"));
    assert_eq!(back.order.filler_order.as_deref(), Some("FI-1"));
    assert_eq!(back.order.procedure, a.order.procedure);
    assert_eq!(back.scheduled_at.as_deref(), Some("2025-03-15T12:00:00Z"));

    let mut bad = sr.clone();
    bad.subject = Reference::to("Group", "g1");
    bad.identifier.clear();
    bad.intent = "plan".into();
    let issues = service_request_to_order(&bad).unwrap_err();
    let paths: Vec<&str> = issues.iter().map(|i| i.expression[0].as_str()).collect();
    assert_eq!(paths, ["ServiceRequest.subject", "ServiceRequest.intent"]);
}

#[test]
fn service_request_without_placer_identifier_is_accepted() {
    let c = Converter::default();
    let mut sr = c.service_request(&common::appointment(AppointmentStatus::Scheduled), &pref());
    sr.identifier.clear();
    let (_, back) = service_request_to_order(&sr).unwrap();
    assert_eq!(back.order.placer_order, None);
    assert_eq!(back.order.filler_order, None);

    // An identifier of another type is no placer number either.
    sr.identifier = vec![medrelay_fhir::Identifier {
        system: Some("urn:x".into()),
        value: Some("X-1".into()),
        ..Default::default()
    }];
    let (_, back) = service_request_to_order(&sr).unwrap();
    assert_eq!(back.order.placer_order, None);

    // Only the filler number: accepted, the placer number is left to the server.
    let mut only_fill =
        c.service_request(&common::appointment(AppointmentStatus::Scheduled), &pref());
    only_fill.identifier.remove(0);
    let (_, back) = service_request_to_order(&only_fill).unwrap();
    assert_eq!(back.order.placer_order, None);
    assert_eq!(back.order.filler_order.as_deref(), Some("FI-1"));
}

#[test]
fn service_request_placer_identifier_without_value_is_an_issue() {
    let c = Converter::default();
    let mut sr = c.service_request(&common::appointment(AppointmentStatus::Scheduled), &pref());
    sr.identifier[0].value = None;
    let issues = service_request_to_order(&sr).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].code, "required");
    assert_eq!(issues[0].expression, ["ServiceRequest.identifier[0].value"]);
}

fn without_id(mut p: medrelay_worklist::Patient) -> medrelay_worklist::Patient {
    p.id.clear();
    p
}

#[test]
fn patient_round_trip_keeps_every_field() {
    let full = medrelay_worklist::Patient {
        address: Some(medrelay_worklist::Address {
            street: Some("1 Main St".into()),
            other: Some("Apt 4".into()),
            city: Some("Springfield".into()),
            state: Some("IL".into()),
            postal_code: Some("12345".into()),
            country: Some("US".into()),
            kind: None,
        }),
        ..common::patient()
    };
    for sex in ["male", "female", "other", "unknown"] {
        let p = medrelay_worklist::Patient {
            sex: Some(sex.into()),
            ..full.clone()
        };
        // Through JSON too, as the server receives it.
        let fhir: medrelay_fhir::Patient = serde_json::from_value(to_json(&patient(&p))).unwrap();
        assert_eq!(patient_to_model(&fhir).unwrap(), without_id(p), "{sex}");
    }
    let common = common::patient();
    assert_eq!(
        patient_to_model(&patient(&common)).unwrap(),
        without_id(common)
    );
    let minimal = medrelay_worklist::Patient::default();
    assert_eq!(patient_to_model(&patient(&minimal)).unwrap(), minimal);
}

#[test]
fn patient_from_fhir_json() {
    let p: medrelay_fhir::Patient = serde_json::from_value(json!({
        "resourceType": "Patient",
        "id": "ignored",
        "identifier": [
            {"system": "urn:oid:1.2.3", "value": "A1",
             "type": {"coding": [{"system": "http://other", "code": "XX"},
                                 {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
            {"system": "https://hospital.example/mrn", "value": "B2"},
            {"value": "C3"}
        ],
        "name": [
            {"use": "usual", "family": "Nick", "given": ["N"]},
            {"use": "official", "family": "Doe", "given": ["Jane", "Q", " "], "prefix": ["Dr", "Prof"], "suffix": ["Jr", "III"]}
        ],
        "telecom": [
            {"system": "fax", "value": "1"},
            {"system": "email", "value": "a@example.org"},
            {"system": "phone", "value": "555-1"},
            {"system": "phone", "value": "555-2"},
            {"system": "email", "value": "b@example.org"}
        ],
        "gender": "other",
        "birthDate": "1975-10",
        "address": [
            {"line": ["1 Main St", "Apt 4", "Rear"], "city": "Springfield", "state": "IL", "postalCode": "12345", "country": "US"},
            {"city": "Elsewhere"}
        ]
    }))
    .unwrap();
    let m = patient_to_model(&p).unwrap();
    assert_eq!(m.id, "");
    assert_eq!(
        m.identifiers,
        [
            medrelay_worklist::Identifier {
                value: "A1".into(),
                system: Some("1.2.3".into()),
                kind: Some("MR".into()),
            },
            medrelay_worklist::Identifier {
                value: "B2".into(),
                system: Some("https://hospital.example/mrn".into()),
                kind: None,
            },
            medrelay_worklist::Identifier {
                value: "C3".into(),
                system: None,
                kind: None,
            },
        ]
    );
    assert_eq!(m.family.as_deref(), Some("Doe"));
    assert_eq!(m.given, ["Jane", "Q"]);
    assert_eq!(m.prefix.as_deref(), Some("Dr"));
    assert_eq!(m.suffix.as_deref(), Some("Jr"));
    assert_eq!(m.sex.as_deref(), Some("other"));
    assert_eq!(m.birth_date.as_deref(), Some("1975-10"));
    assert_eq!(m.phone.as_deref(), Some("555-1"));
    assert_eq!(m.email.as_deref(), Some("a@example.org"));
    let a = m.address.unwrap();
    assert_eq!(a.street.as_deref(), Some("1 Main St"));
    assert_eq!(a.other.as_deref(), Some("Apt 4, Rear"));
    assert_eq!(a.city.as_deref(), Some("Springfield"));
    assert_eq!(a.state.as_deref(), Some("IL"));

    // Without an official name the first one is taken.
    let mut first = p.clone();
    first.name.remove(1);
    assert_eq!(
        patient_to_model(&first).unwrap().family.as_deref(),
        Some("Nick")
    );
}

#[test]
fn patient_from_fhir_issues() {
    let p: medrelay_fhir::Patient = serde_json::from_value(json!({
        "resourceType": "Patient",
        "identifier": [{"system": "HIS", "value": "1"}, {"system": "HIS"}, {"value": "  "}],
        "gender": "F"
    }))
    .unwrap();
    let issues = patient_to_model(&p).unwrap_err();
    let found: Vec<(&str, &str)> = issues
        .iter()
        .map(|i| (i.code.as_str(), i.expression[0].as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("required", "Patient.identifier[1].value"),
            ("required", "Patient.identifier[2].value"),
            ("code-invalid", "Patient.gender"),
        ]
    );
}

fn fhir_appointment(v: Value) -> medrelay_fhir::Appointment {
    serde_json::from_value(v).unwrap()
}

#[test]
fn appointment_from_fhir() {
    let a = fhir_appointment(json!({
        "resourceType": "Appointment",
        "id": "a9",
        "identifier": [{"system": "urn:x", "value": " "}, {"system": "urn:placer", "value": "PL-9"}],
        "status": "booked",
        "serviceType": [
            {"coding": [{"system": "http://loinc.org", "code": "11524-6", "display": "EKG study"}]},
            {"text": "ignored"}
        ],
        "start": "2025-03-15T12:00:00+01:00",
        "end": "2025-03-15T12:30:00+01:00",
        "basedOn": [{"reference": "CarePlan/c1"}, {"reference": "ServiceRequest/sr-1"}],
        "participant": [
            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
            {"type": [{"text": "room"}], "status": "accepted"},
            {"actor": {"reference": "Patient/p7"}, "status": "accepted"}
        ]
    }));
    let AppointmentIn {
        patient_id,
        based_on,
        appointment,
    } = appointment_to_model(&a).unwrap();
    assert_eq!(patient_id, "p7");
    assert_eq!(based_on.as_deref(), Some("sr-1"));
    assert_eq!(appointment.id, "a9");
    assert_eq!(appointment.patient_id, "p7");
    assert_eq!(appointment.status, AppointmentStatus::Scheduled);
    assert_eq!(
        appointment.scheduled_at.as_deref(),
        Some("2025-03-15T12:00:00+01:00")
    );
    assert_eq!(appointment.order.placer_order.as_deref(), Some("PL-9"));
    assert_eq!(
        appointment.order.procedure,
        Some(medrelay_worklist::Coded {
            code: "11524-6".into(),
            display: Some("EKG study".into()),
            system: Some("LN".into()),
        })
    );

    // No identifier, no basedOn, no serviceType: nothing invented.
    let bare = fhir_appointment(json!({
        "resourceType": "Appointment", "status": "proposed",
        "participant": [{"actor": {"reference": "Patient/p7"}, "status": "needs-action"}]
    }));
    let got = appointment_to_model(&bare).unwrap();
    assert_eq!(got.based_on, None);
    assert_eq!(got.appointment.order, medrelay_worklist::Order::default());
    assert_eq!(got.appointment.scheduled_at, None);
    assert_eq!(got.appointment.id, "");
}

#[test]
fn appointment_from_converter_output() {
    let c = Converter::new(chrono::FixedOffset::east_opt(3600).unwrap());
    let model = common::appointment(AppointmentStatus::Completed);
    let got = appointment_to_model(&c.appointment(&model, &pref())).unwrap();
    assert_eq!(got.patient_id, "p1");
    assert_eq!(got.based_on.as_deref(), Some("a1"));
    assert_eq!(got.appointment.status, AppointmentStatus::Completed);
    assert_eq!(
        got.appointment.scheduled_at.as_deref(),
        Some("2025-03-15T12:00:00+01:00")
    );
    assert_eq!(got.appointment.order.procedure, model.order.procedure);
}

#[test]
fn appointment_status_mapping() {
    for (status, want) in [
        ("proposed", AppointmentStatus::Scheduled),
        ("pending", AppointmentStatus::Scheduled),
        ("booked", AppointmentStatus::Scheduled),
        ("arrived", AppointmentStatus::Scheduled),
        ("checked-in", AppointmentStatus::Scheduled),
        ("waitlist", AppointmentStatus::Scheduled),
        ("cancelled", AppointmentStatus::Cancelled),
        ("noshow", AppointmentStatus::Cancelled),
        ("entered-in-error", AppointmentStatus::Cancelled),
        ("fulfilled", AppointmentStatus::Completed),
    ] {
        let a = fhir_appointment(json!({
            "resourceType": "Appointment", "status": status,
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]
        }));
        assert_eq!(
            appointment_to_model(&a).unwrap().appointment.status,
            want,
            "{status}"
        );
    }
    let a = fhir_appointment(json!({
        "resourceType": "Appointment", "status": "confirmed",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]
    }));
    let issues = appointment_to_model(&a).unwrap_err();
    assert_eq!(issues[0].code, "code-invalid");
    assert_eq!(issues[0].expression, ["Appointment.status"]);
}

#[test]
fn appointment_needs_exactly_one_patient() {
    let with = |participants: Value| {
        appointment_to_model(&fhir_appointment(json!({
            "resourceType": "Appointment", "status": "booked", "participant": participants
        })))
    };
    let issues = with(json!([{"actor": {"reference": "Practitioner/d1"}, "status": "accepted"}]))
        .unwrap_err();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (issues[0].code.as_str(), issues[0].expression[0].as_str()),
        ("required", "Appointment.participant")
    );

    let issues = with(json!([
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"reference": "Patient/p2"}, "status": "accepted"}
    ]))
    .unwrap_err();
    assert_eq!(
        (issues[0].code.as_str(), issues[0].expression[0].as_str()),
        ("business-rule", "Appointment.participant")
    );

    // The same patient twice is still one patient.
    let got = with(json!([
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"reference": "Patient/p1", "display": "again"}, "status": "accepted"}
    ]))
    .unwrap();
    assert_eq!(got.patient_id, "p1");

    let issues =
        with(json!([{"actor": {"reference": "Patient/a b"}, "status": "accepted"}])).unwrap_err();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (issues[0].code.as_str(), issues[0].expression[0].as_str()),
        ("value", "Appointment.participant[0].actor.reference")
    );
}
