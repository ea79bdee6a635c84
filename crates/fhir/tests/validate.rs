use medrelay_fhir::validate::{
    self, Invalid, is_date, is_date_time, is_dicom_uid, is_instant, is_reference,
};
use medrelay_fhir::{
    ImagingStudy, Issue, Resource, ServiceRequest, validate_appointment, validate_imaging_study,
    validate_patient, validate_service_request,
};
use serde_json::{Value, json};

/// (code, expression) of every issue.
fn found(issues: &[Issue]) -> Vec<(String, String)> {
    issues
        .iter()
        .map(|i| {
            (
                i.code.clone(),
                i.expression.first().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

fn has(issues: &[Issue], code: &str, path: &str) -> bool {
    found(issues).iter().any(|(c, p)| c == code && p == path)
}

fn good_sr() -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "id": "a1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-03-14T09:30:00+01:00",
        "occurrenceDateTime": "2025-03-15"
    })
}

fn good_appt() -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2025-03-15T12:00:00Z",
        "end": "2025-03-15T12:30:00Z",
        "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]
    })
}

#[test]
fn valid_resources_pass() {
    let p = json!({
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1975-10-22",
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "telecom": [{"system": "phone", "value": "555"}],
        "generalPractitioner": [{"reference": "Practitioner/x"}]
    });
    assert_eq!(validate_patient(&p), vec![]);
    assert_eq!(validate_service_request(&good_sr()), vec![]);
    assert_eq!(validate_appointment(&good_appt()), vec![]);
}

#[test]
fn resource_type_and_shape() {
    let issues = validate_patient(&json!({"resourceType": "Device"}));
    assert!(
        has(&issues, "invalid", "Patient.resourceType"),
        "{issues:?}"
    );
    let issues = validate_patient(&json!({"gender": "male"}));
    assert!(
        has(&issues, "required", "Patient.resourceType"),
        "{issues:?}"
    );
    let issues = validate_patient(&json!([1]));
    assert!(has(&issues, "structure", "Patient"), "{issues:?}");
    let issues = validate_patient(&json!({"resourceType": "Patient", "id": "has space"}));
    assert!(has(&issues, "value", "Patient.id"), "{issues:?}");
    let issues = validate_patient(&json!({"resourceType": "Patient", "name": {"family": "x"}}));
    assert!(has(&issues, "structure", "Patient.name"), "{issues:?}");
    let issues = validate_patient(&json!({"resourceType": "Patient", "name": [{"given": "x"}]}));
    assert!(
        has(&issues, "structure", "Patient.name[0].given"),
        "{issues:?}"
    );
}

#[test]
fn patient_value_sets_and_dates() {
    let issues = validate_patient(&json!({
        "resourceType": "Patient",
        "gender": "F",
        "birthDate": "1975-02-30",
        "telecom": [{"system": "telex", "value": "1"}],
        "managingOrganization": {"reference": "not a reference"}
    }));
    assert_eq!(
        found(&issues),
        [
            ("code-invalid".into(), "Patient.telecom[0].system".into()),
            ("code-invalid".into(), "Patient.gender".into()),
            ("value".into(), "Patient.birthDate".into()),
            (
                "value".into(),
                "Patient.managingOrganization.reference".into()
            ),
        ]
    );
    assert!(
        issues
            .iter()
            .all(|i| i.severity == "error" && i.diagnostics.is_some())
    );
}

#[test]
fn service_request_required_elements() {
    let issues = validate_service_request(&json!({"resourceType": "ServiceRequest"}));
    assert_eq!(
        found(&issues),
        [
            ("required".into(), "ServiceRequest.status".into()),
            ("required".into(), "ServiceRequest.intent".into()),
            ("required".into(), "ServiceRequest.subject".into()),
        ]
    );
}

#[test]
fn service_request_value_sets_formats_references() {
    let mut sr = good_sr();
    sr["status"] = json!("scheduled");
    sr["intent"] = json!("request");
    sr["priority"] = json!("high");
    sr["subject"] = json!({"reference": "Patient/"});
    sr["authoredOn"] = json!("2025-03-14T09:30:00");
    sr["occurrenceDateTime"] = json!("15.03.2025");
    sr["requester"] = json!({"reference": "practitioner/1"});
    let issues = validate_service_request(&sr);
    for (code, path) in [
        ("code-invalid", "ServiceRequest.status"),
        ("code-invalid", "ServiceRequest.intent"),
        ("code-invalid", "ServiceRequest.priority"),
        ("value", "ServiceRequest.subject.reference"),
        ("value", "ServiceRequest.requester.reference"),
        ("value", "ServiceRequest.authoredOn"),
        ("value", "ServiceRequest.occurrenceDateTime"),
    ] {
        assert!(
            has(&issues, code, path),
            "{code} {path} missing in {issues:?}"
        );
    }
    assert_eq!(issues.len(), 7, "{issues:?}");
    sr["status"] = json!(3);
    assert!(has(
        &validate_service_request(&sr),
        "structure",
        "ServiceRequest.status"
    ));
}

#[test]
fn appointment_rules() {
    let issues = validate_appointment(&json!({"resourceType": "Appointment"}));
    assert_eq!(
        found(&issues),
        [
            ("required".into(), "Appointment.status".into()),
            ("required".into(), "Appointment.participant".into()),
        ]
    );
    let mut a = good_appt();
    a["status"] = json!("confirmed");
    a["participant"] = json!([{"actor": {"reference": "Patient/p1"}, "status": "maybe"}, {}]);
    a["end"] = json!("2025-03-15");
    let issues = validate_appointment(&a);
    for (code, path) in [
        ("code-invalid", "Appointment.status"),
        ("code-invalid", "Appointment.participant[0].status"),
        ("required", "Appointment.participant[1].status"),
        ("required", "Appointment.participant[1]"),
        ("value", "Appointment.end"),
    ] {
        assert!(
            has(&issues, code, path),
            "{code} {path} missing in {issues:?}"
        );
    }
    let mut a = good_appt();
    a.as_object_mut().unwrap().remove("end");
    let issues = validate_appointment(&a);
    assert!(has(&issues, "invariant", "Appointment"), "{issues:?}");
    a["participant"] = json!([]);
    assert!(has(
        &validate_appointment(&a),
        "required",
        "Appointment.participant"
    ));
}

#[test]
fn primitives() {
    for ok in ["2025", "2025-03", "2024-02-29", "2025-03-15"] {
        assert!(is_date(ok), "{ok}");
        assert!(is_date_time(ok), "{ok}");
    }
    for bad in [
        "25",
        "2025-3",
        "2025-13",
        "2025-02-29",
        "2025-03-15T",
        "2025/03/15",
        "",
    ] {
        assert!(!is_date(bad), "{bad}");
    }
    for ok in [
        "2025-03-15T12:00:00Z",
        "2025-03-15T12:00:00.123+01:00",
        "2025-03-15T23:59:60-14:00",
    ] {
        assert!(is_date_time(ok), "{ok}");
        assert!(is_instant(ok), "{ok}");
    }
    for bad in [
        "2025-03-15T12:00:00",
        "2025-03-15T12:00Z",
        "2025-03-15T24:00:00Z",
        "2025-03-15T12:00:00+0100",
        "2025-03-15T12:00:00+15:00",
        "2025-03-15T12:00:00.Z",
    ] {
        assert!(!is_date_time(bad), "{bad}");
    }
    assert!(!is_instant("2025-03-15"));
    for ok in [
        "Patient/p1",
        "Patient/p-1.2/_history/3",
        "https://h/fhir/R4/Patient/p1",
        "urn:uuid:0d6e8a5e-1b2c-4c1e-9d3a-000000000001",
        "#c1",
    ] {
        assert!(is_reference(ok), "{ok}");
    }
    for bad in [
        "p1",
        "Patient/",
        "/Patient/p1",
        "patient/p1",
        "Patient/p 1",
        "Patient/p1/extra",
        "https://h/",
    ] {
        assert!(!is_reference(bad), "{bad}");
    }
}

#[test]
fn parse_validates_then_reads() {
    let sr: ServiceRequest = validate::parse("ServiceRequest", &good_sr()).unwrap();
    assert_eq!(sr.subject.reference.as_deref(), Some("Patient/p1"));
    let Invalid(outcome) = validate::parse::<ServiceRequest>(
        "ServiceRequest",
        &json!({"resourceType": "ServiceRequest"}),
    )
    .unwrap_err();
    assert_eq!(outcome.issue.len(), 3);
    let j = serde_json::to_value(&outcome).unwrap();
    assert_eq!(j["resourceType"], "OperationOutcome");
    assert_eq!(
        j["issue"][0],
        json!({
            "severity": "error", "code": "required",
            "diagnostics": "ServiceRequest.status is required",
            "expression": ["ServiceRequest.status"]
        })
    );
}

/// The seed's example study.
fn seed_study() -> Value {
    json!({"resourceType":"ImagingStudy","id":"study-20250315-001","status":"available","subject":{"reference":"Patient/1234567890"},"started":"2025-03-15T12:05:00+01:00","numberOfSeries":3,"numberOfInstances":512,"modality":[{"code":"CT"}],"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.3.4.5.6.7"}],"series":[{"uid":"1.2.3.4.5.6.8","modality":{"code":"CT"},"numberOfInstances":512,"endpoint":[{"reference":"Endpoint/wado-rs"}]}]})
}

#[test]
fn imaging_study_seed_example_validates_and_parses() {
    let v = seed_study();
    assert_eq!(validate_imaging_study(&v), vec![]);
    assert_eq!(validate::validate("ImagingStudy", &v), vec![]);
    let s: ImagingStudy = validate::parse("ImagingStudy", &v).unwrap();
    assert_eq!(s.id.as_deref(), Some("study-20250315-001"));
    assert_eq!(s.status, "available");
    assert_eq!(s.subject.reference.as_deref(), Some("Patient/1234567890"));
    assert_eq!(s.started.as_deref(), Some("2025-03-15T12:05:00+01:00"));
    assert_eq!(
        (s.number_of_series, s.number_of_instances),
        (Some(3), Some(512))
    );
    assert_eq!(s.modality[0].code.as_deref(), Some("CT"));
    assert_eq!(
        s.identifier[0].value.as_deref(),
        Some("urn:oid:1.2.3.4.5.6.7")
    );
    let series = &s.series[0];
    assert_eq!(series.uid, "1.2.3.4.5.6.8");
    assert_eq!(series.modality.code.as_deref(), Some("CT"));
    assert_eq!(series.number_of_instances, Some(512));
    assert_eq!(
        series.endpoint[0].reference.as_deref(),
        Some("Endpoint/wado-rs")
    );
    // Written back, it is the same JSON.
    assert_eq!(serde_json::to_value(&s).unwrap(), v);
    // And a Bundle entry reads it as an ImagingStudy.
    match serde_json::from_value::<Resource>(v).unwrap() {
        Resource::ImagingStudy(back) => assert_eq!(*back, s),
        other => panic!("read as {other:?}"),
    }
}

#[test]
fn imaging_study_required_elements() {
    let issues = validate_imaging_study(&json!({"resourceType": "ImagingStudy"}));
    assert_eq!(
        found(&issues),
        [
            ("required".into(), "ImagingStudy.status".into()),
            ("required".into(), "ImagingStudy.subject".into()),
        ]
    );
    let issues = validate_imaging_study(&json!({"resourceType": "Patient"}));
    assert!(
        has(&issues, "invalid", "ImagingStudy.resourceType"),
        "{issues:?}"
    );
    let mut v = seed_study();
    v["series"] = json!([{}]);
    assert_eq!(
        found(&validate_imaging_study(&v)),
        [
            ("required".into(), "ImagingStudy.series[0].uid".into()),
            ("required".into(), "ImagingStudy.series[0].modality".into()),
        ]
    );
    v["series"] = json!([{"uid": "1.2.3", "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM"}}]);
    assert_eq!(
        found(&validate_imaging_study(&v)),
        [(
            "required".into(),
            "ImagingStudy.series[0].modality.code".into()
        )]
    );
}

#[test]
fn imaging_study_values() {
    let mut v = seed_study();
    v["status"] = json!("final");
    v["subject"] = json!({"reference": "Group/g1"});
    v["started"] = json!("2025-03-15T12:05");
    v["numberOfSeries"] = json!(-1);
    v["numberOfInstances"] = json!("512");
    v["modality"] = json!([{"code": 5}]);
    v["series"] = json!([
        {"uid": "1.2.03", "modality": {"code": "CT"}, "number": 1.5},
        {"uid": "urn:oid:1.2.3", "modality": {"code": "MR"}, "endpoint": [{"reference": "wado"}]},
        {"uid": "3.1", "modality": "CT", "bodySite": {"code": ["x"]}}
    ]);
    let issues = validate_imaging_study(&v);
    for (code, path) in [
        ("code-invalid", "ImagingStudy.status"),
        ("value", "ImagingStudy.subject.reference"),
        ("value", "ImagingStudy.started"),
        ("value", "ImagingStudy.numberOfSeries"),
        ("value", "ImagingStudy.numberOfInstances"),
        ("structure", "ImagingStudy.modality[0].code"),
        ("value", "ImagingStudy.series[0].uid"),
        ("value", "ImagingStudy.series[0].number"),
        ("value", "ImagingStudy.series[1].uid"),
        ("value", "ImagingStudy.series[1].endpoint[0].reference"),
        ("value", "ImagingStudy.series[2].uid"),
        ("structure", "ImagingStudy.series[2].modality"),
        ("structure", "ImagingStudy.series[2].bodySite.code"),
    ] {
        assert!(
            has(&issues, code, path),
            "{code} {path} missing in {issues:?}"
        );
    }
    assert_eq!(issues.len(), 13, "{issues:?}");

    // The subject must be a literal Patient reference.
    let mut v = seed_study();
    v["subject"] = json!({"identifier": {"value": "123"}});
    assert!(has(
        &validate_imaging_study(&v),
        "required",
        "ImagingStudy.subject.reference"
    ));
    v["subject"] = json!({"reference": "Patient/"});
    assert_eq!(
        found(&validate_imaging_study(&v)),
        [("value".into(), "ImagingStudy.subject.reference".into())]
    );
}

#[test]
fn dicom_uids() {
    for ok in [
        "1.2",
        "0.0",
        "2.25.123456789",
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3.4.5.6.8",
    ] {
        assert!(is_dicom_uid(ok), "{ok}");
    }
    for bad in [
        "",
        "1",
        "3.1",
        "1.",
        ".1",
        "1..2",
        "1.02",
        "01.2",
        "1.2a",
        "urn:oid:1.2",
        "1.-2",
    ] {
        assert!(!is_dicom_uid(bad), "{bad}");
    }
}

#[test]
fn strings_over_one_megabyte_are_refused_with_their_path() {
    let big = "x".repeat(medrelay_fhir::validate::MAX_STRING_BYTES + 1);
    let v = serde_json::json!({"resourceType": "Patient", "name": [{"family": big}]});
    let issues = medrelay_fhir::validate::validate("Patient", &v);
    assert!(
        issues
            .iter()
            .any(|i| i.code == "too-long" && i.expression == ["Patient.name[0].family"]),
        "{issues:?}"
    );
    let ok = serde_json::json!({"resourceType": "Patient", "name": [{"family": "x".repeat(1000)}]});
    assert!(medrelay_fhir::validate::validate("Patient", &ok).is_empty());
}
