//! Independent check: every resource the converters produce is read by Python's
//! `fhir.resources` R4B models (pydantic: structure, cardinality, primitive
//! formats). Install it with `python3 -m pip install "fhir.resources==8.3.0"`
//! (see .ci/run).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use medrelay_fhir::{Converter, Reference, device, patient, validate};
use medrelay_worklist::AppointmentStatus;
use serde_json::Value;

const SCRIPT: &str = r#"
import json, sys
try:
    from fhir.resources.R4B import get_fhir_model_class
except ImportError as e:
    print("MISSING: " + str(e)); sys.exit(3)
failed = 0
for item in json.load(sys.stdin):
    try:
        get_fhir_model_class(item["resourceType"]).model_validate_json(json.dumps(item))
    except Exception as e:
        failed += 1
        print("INVALID " + item["resourceType"] + "/" + str(item.get("id")) + ": " + str(e))
sys.exit(1 if failed else 0)
"#;

const HOW: &str = "this test needs python3 with fhir.resources: python3 -m pip install \"fhir.resources==8.3.0\" (as .ci/run does)";

fn check_with_python(resources: &[Value]) {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HOW}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(resources).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!("{stdout}{HOW}"),
        _ => panic!("fhir.resources rejected our output:\n{stdout}{stderr}"),
    }
}

fn produced() -> Vec<Value> {
    let c = Converter::new(chrono::FixedOffset::east_opt(3600).unwrap());
    let pref = Reference::to("Patient", "p1");
    let m = common::measurement();
    let mut all = vec![serde_json::to_value(patient(&common::patient())).unwrap()];
    for status in [
        AppointmentStatus::Scheduled,
        AppointmentStatus::Cancelled,
        AppointmentStatus::Completed,
    ] {
        let a = common::appointment(status);
        all.push(serde_json::to_value(c.service_request(&a, &pref)).unwrap());
        all.push(serde_json::to_value(c.appointment(&a, &pref)).unwrap());
    }
    let observations = c.observations(&m, &pref);
    let refs = observations
        .iter()
        .map(|o| Reference::to("Observation", o.id.as_deref().unwrap()))
        .collect();
    all.extend(
        observations
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    all.push(serde_json::to_value(c.diagnostic_report(&m, &pref, refs)).unwrap());
    all.push(serde_json::to_value(device(&common::device())).unwrap());
    let bundle = medrelay_fhir::Bundle::searchset(
        1,
        "http://h/fhir/R4/Patient",
        None,
        vec![(
            "http://h/fhir/R4/Patient/p1".into(),
            medrelay_fhir::Resource::Patient(Box::new(patient(&common::patient()))),
        )],
    );
    all.push(serde_json::to_value(bundle).unwrap());
    let outcome = medrelay_fhir::OperationOutcome::new(validate::validate(
        "ServiceRequest",
        &serde_json::json!({"resourceType": "ServiceRequest"}),
    ));
    all.push(serde_json::to_value(outcome).unwrap());
    all
}

#[test]
fn converter_output_is_valid_for_fhir_resources() {
    let all = produced();
    assert_eq!(all.len(), 1 + 6 + 4 + 1 + 1 + 1 + 1);
    check_with_python(&all);
}

#[test]
fn converter_output_passes_our_own_validation() {
    for r in produced() {
        let kind = r["resourceType"].as_str().unwrap().to_string();
        assert_eq!(validate::validate(&kind, &r), vec![], "{kind}: {r}");
    }
}

#[test]
fn imaging_study_example_is_valid_for_fhir_resources() {
    let study = serde_json::json!({"resourceType":"ImagingStudy","id":"study-20250315-001","status":"available","subject":{"reference":"Patient/1234567890"},"started":"2025-03-15T12:05:00+01:00","numberOfSeries":3,"numberOfInstances":512,"modality":[{"code":"CT"}],"identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.3.4.5.6.7"}],"series":[{"uid":"1.2.3.4.5.6.8","modality":{"code":"CT"},"numberOfInstances":512,"endpoint":[{"reference":"Endpoint/wado-rs"}]}]});
    let parsed: medrelay_fhir::ImagingStudy = validate::parse("ImagingStudy", &study).unwrap();
    check_with_python(&[serde_json::to_value(parsed).unwrap()]);
}

#[test]
fn python_check_really_rejects() {
    let bad =
        serde_json::json!({"resourceType": "Patient", "gender": 5, "birthDate": "22.10.1975"});
    let err = std::panic::catch_unwind(|| check_with_python(&[bad]))
        .expect_err("fhir.resources accepted an invalid Patient");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("rejected our output"), "{msg}");
}
