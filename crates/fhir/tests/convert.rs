mod common;

use medrelay_fhir::{Converter, Reference, device, patient, service_request_to_order};
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
    let c = Converter::new("+01:00");
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
    assert_eq!(
        paths,
        [
            "ServiceRequest.subject",
            "ServiceRequest.intent",
            "ServiceRequest.identifier"
        ]
    );
}
