//! The JSON presets against their example documents (examples/<preset>-appointments.json
//! in, examples/<preset>-result.json out), overrides, cancels, and hostile input.

use std::collections::BTreeMap;

use medrelay_worklist::json_map::{
    AsyncState, JsonContext, JsonInbound, JsonItem, JsonMapping, MAX_DEPTH, MAX_ITEMS,
    PLACEHOLDERS, build_result, map_document, next_page,
};
use medrelay_worklist::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const VENDORS: [&str; 5] = ["best-practice", "join", "vena", "webdoc", "ziplanerx"];

/// The example documents, as shipped beside the configuration examples.
fn example(name: &str) -> &'static str {
    match name {
        "best-practice-appointments" => {
            include_str!("../../../examples/best-practice-appointments.json")
        }
        "best-practice-result" => include_str!("../../../examples/best-practice-result.json"),
        "join-appointments" => include_str!("../../../examples/join-appointments.json"),
        "join-result" => include_str!("../../../examples/join-result.json"),
        "vena-appointments" => include_str!("../../../examples/vena-appointments.json"),
        "vena-result" => include_str!("../../../examples/vena-result.json"),
        "webdoc-appointments" => include_str!("../../../examples/webdoc-appointments.json"),
        "webdoc-result" => include_str!("../../../examples/webdoc-result.json"),
        "ziplanerx-appointments" => include_str!("../../../examples/ziplanerx-appointments.json"),
        "ziplanerx-result" => include_str!("../../../examples/ziplanerx-result.json"),
        other => panic!("no example {other}"),
    }
}

fn doc(name: &str) -> Value {
    serde_json::from_str(example(name)).unwrap()
}

fn ctx(integration: &str) -> JsonContext {
    JsonContext {
        integration: integration.into(),
        group: "default-group".into(),
        org: "default".into(),
    }
}

fn mapping(preset: &str) -> JsonMapping {
    presets::json(preset).unwrap().mapping(None).unwrap()
}

fn overrides(toml_text: &str) -> toml::Table {
    toml::from_str(toml_text).unwrap()
}

fn map_example(preset: &str) -> Vec<JsonItem> {
    map_document(
        &doc(&format!("{preset}-appointments")),
        &mapping(preset),
        &ctx(preset),
    )
    .unwrap()
}

fn created(item: &JsonItem) -> (&Patient, &Appointment) {
    match &item.action {
        WorklistAction::CreateAppointment {
            patient,
            appointment,
        } => (patient, appointment),
        other => panic!("expected a create, got {other:?}"),
    }
}

fn id(value: &str, system: &str, kind: &str) -> Identifier {
    Identifier {
        value: value.into(),
        system: Some(system.into()),
        kind: Some(kind.into()),
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

struct Expect {
    key: &'static str,
    patient_id: &'static str,
    family: &'static str,
    given: &'static str,
    birth_date: &'static str,
    sex: &'static str,
    address: Option<[&'static str; 4]>,
    scheduled_at: &'static str,
    visit: &'static str,
    group: &'static str,
    procedure: (&'static str, &'static str),
    practitioner: Option<[&'static str; 3]>,
    extra: &'static [(&'static str, &'static str)],
}

/// The first appointment of the example, every field compared (whole structs).
fn check_first(preset: &str, e: Expect) {
    let items = map_example(preset);
    assert_eq!(items[0].key, e.key, "{preset}");
    let (patient, appointment) = created(&items[0]);
    let expected_patient = Patient {
        identifiers: vec![id(e.patient_id, preset, "PI")],
        family: some(e.family),
        given: vec![e.given.into()],
        birth_date: some(e.birth_date),
        sex: some(e.sex),
        address: e
            .address
            .map(|[street, city, postal_code, country]| Address {
                street: some(street),
                city: some(city),
                postal_code: some(postal_code),
                country: (!country.is_empty()).then(|| country.to_string()),
                ..Address::default()
            }),
        ..Patient::default()
    };
    assert_eq!(patient, &expected_patient, "{preset}");
    let expected_appointment = Appointment {
        org: "default".into(),
        integration: preset.into(),
        group: e.group.into(),
        status: AppointmentStatus::Scheduled,
        scheduled_at: some(e.scheduled_at),
        order: Order {
            placer_order: some(e.key),
            procedure: Some(Coded {
                code: e.procedure.0.into(),
                display: some(e.procedure.1),
                system: None,
            }),
            ordering_provider: e.practitioner.map(|[id, family, given]| Provider {
                id: some(id),
                family: some(family),
                given: vec![given.into()],
                prefix: None,
            }),
            extra: e
                .extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Order::default()
        },
        visit: Visit {
            visit_number: Some(id(e.visit, preset, "VN")),
            ..Visit::default()
        },
        ..Appointment::default()
    };
    assert_eq!(appointment, &expected_appointment, "{preset}");
}

#[test]
fn best_practice_rows() {
    check_first(
        "best-practice",
        Expect {
            key: "48213",
            patient_id: "10234",
            family: "Nguyen",
            given: "Olivia",
            birth_date: "1965-06-24",
            sex: "female",
            address: Some(["12 Wattle Street", "Toowoomba", "4350", ""]),
            scheduled_at: "2025-03-15T09:30:00",
            visit: "V48213",
            group: "ecg",
            procedure: ("ECG", "Resting 12-lead ECG"),
            practitioner: Some(["7", "Walker", "James"]),
            extra: &[("/LocationID", "2"), ("patient_status", "Active")],
        },
    );
}

#[test]
fn join_push() {
    check_first(
        "join",
        Expect {
            key: "JN-58213",
            patient_id: "P-100234",
            family: "Kovač",
            given: "Ana",
            birth_date: "1958-11-03",
            sex: "female",
            address: None,
            scheduled_at: "2025-03-15T10:15:00+01:00",
            visit: "VIS-7781",
            group: "angiology",
            procedure: ("ABI", "Ankle-brachial index"),
            practitioner: None,
            extra: &[("/organizationId", "org-ljubljana-01")],
        },
    );
}

#[test]
fn vena_page() {
    check_first(
        "vena",
        Expect {
            key: "apt_2KQ9XW",
            patient_id: "pat_9F3KD",
            family: "Hansen",
            given: "Ingrid",
            birth_date: "1949-01-30",
            sex: "female",
            address: Some(["Storgata 12", "Oslo", "0155", "NO"]),
            scheduled_at: "2025-03-15T08:30:00+01:00",
            visit: "enc_77A1",
            group: "ecg",
            procedure: ("ECG", "Resting 12-lead ECG"),
            practitioner: Some(["prac_41", "Berg", "Lars"]),
            extra: &[("/care_unit_id", "cu_oslo_sentrum")],
        },
    );
}

#[test]
fn webdoc_page() {
    check_first(
        "webdoc",
        Expect {
            key: "apt_5MZ1RT",
            patient_id: "pat_19530412",
            family: "Lindqvist",
            given: "Karin",
            birth_date: "1953-04-12",
            sex: "female",
            address: Some(["Kungsgatan 8", "Göteborg", "411 19", "SE"]),
            scheduled_at: "2025-03-15T13:15:00+01:00",
            visit: "enc_30C9",
            group: "cardiology",
            procedure: ("ABI", "Ankle-brachial index"),
            practitioner: Some(["prac_208", "Johansson", "Erik"]),
            extra: &[("/care_unit_id", "cu_goteborg_vc")],
        },
    );
}

#[test]
fn ziplanerx_push() {
    check_first(
        "ziplanerx",
        Expect {
            key: "ZLR-2025-000731",
            patient_id: "ZP-55021",
            family: "Reed",
            given: "Marcus",
            birth_date: "1971-02-14",
            sex: "male",
            address: None,
            scheduled_at: "2025-03-15T14:00:00-05:00",
            visit: "ENC-88120",
            group: "pulmonology",
            procedure: ("SPIRO", "Spirometry"),
            practitioner: None,
            extra: &[("/location_id", "store-0412")],
        },
    );
    assert_eq!(map_example("ziplanerx").len(), 1);
}

#[test]
fn cancel_via_status() {
    for (preset, key, reason) in [
        ("best-practice", "48190", None),
        ("join", "JN-58190", Some("Patient rescheduled by phone")),
        ("vena", "apt_2KQ9Y3", Some("Cancelled by patient")),
        ("webdoc", "apt_5MZ1S0", Some("Rebooked")),
    ] {
        let items = map_example(preset);
        assert_eq!(items.len(), 2, "{preset}");
        assert_eq!(items[1].key, key);
        assert_eq!(
            items[1].action,
            WorklistAction::CancelAppointment {
                key: OrderKey {
                    integration: preset.into(),
                    placer_order: some(key),
                    filler_order: None,
                },
                reason: reason.map(str::to_string),
            },
            "{preset}"
        );
    }
    // ZipLaneRx: the same envelope with a cancelled state (and a table entry of its own).
    let m = mapping("ziplanerx");
    for state in ["CANCELLED", "voided"] {
        let mut d = doc("ziplanerx-appointments");
        d["appointment"]["state"] = json!(state);
        d["appointment"]["cancel_reason"] = json!("Store closed");
        let items = map_document(&d, &m, &ctx("ziplanerx")).unwrap();
        assert!(
            matches!(&items[0].action, WorklistAction::CancelAppointment { reason, .. } if reason.as_deref() == Some("Store closed")),
            "{state}"
        );
    }
    // A cancel needs only the id: no patient.
    let d = json!({"appointmentId": "JN-1", "status": "canceled"});
    let items = map_document(&d, &mapping("join"), &ctx("join")).unwrap();
    assert!(matches!(
        items[0].action,
        WorklistAction::CancelAppointment { .. }
    ));
}

#[test]
fn status_update_ignore_and_unknown() {
    let m = mapping("vena");
    let mut d = doc("vena-appointments");
    d["data"][0]["status"] = json!("Rescheduled");
    d["data"][1]["status"] = json!("completed");
    let items = map_document(&d, &m, &ctx("vena")).unwrap();
    assert_eq!(items.len(), 1, "completed is ignored");
    assert!(matches!(
        &items[0].action,
        WorklistAction::UpdateAppointment { key, .. } if key.placer_order.as_deref() == Some("apt_2KQ9XW")
    ));
    d["data"][1]["status"] = json!("teleported");
    let e = map_document(&d, &m, &ctx("vena")).unwrap_err();
    assert!(matches!(e, MapError::UnknownCode { .. }), "{e:?}");
    assert_eq!(e.path(), Some("/data/1/status"));
    assert!(e.reason().contains("teleported"), "{e}");
    assert!(e.reason().contains("tables.status"), "{e}");
    // No status at all: create.
    d["data"][1]
        .as_object_mut()
        .unwrap()
        .remove("status")
        .unwrap();
    let items = map_document(&d, &m, &ctx("vena")).unwrap();
    assert_eq!(items.len(), 2);
    created(&items[1]);
}

/// The measurement every result example is built from (the observations follow the
/// appointment's procedure).
fn measurement(kind: &str, appointment_id: &str) -> Measurement {
    let obs = |code: &str, display: &str, value: Value, unit: &str| Observation {
        code: code.into(),
        system: Some("LN".into()),
        display: Some(display.into()),
        value,
        unit: Some(unit.into()),
        reference_range: None,
        abnormal_flag: None,
    };
    let observations = match kind {
        "ECG" => vec![
            Observation {
                reference_range: some("60-100"),
                abnormal_flag: some("N"),
                ..obs("8867-4", "Heart rate", json!(72), "/min")
            },
            obs("8625-6", "P-R interval", json!(160), "ms"),
        ],
        "ABI" => vec![
            Observation {
                reference_range: some("0.9-1.4"),
                abnormal_flag: some("N"),
                ..obs(
                    "76497-6",
                    "Ankle-brachial index, right",
                    json!(1.08),
                    "{ratio}",
                )
            },
            Observation {
                reference_range: some("0.9-1.4"),
                abnormal_flag: some("L"),
                ..obs(
                    "76498-4",
                    "Ankle-brachial index, left",
                    json!(0.86),
                    "{ratio}",
                )
            },
        ],
        "SPIRO" => vec![
            obs("20150-9", "FEV1", json!(2.91), "L"),
            obs("19870-5", "FVC", json!(3.84), "L"),
            obs("19926-5", "FEV1/FVC", json!(75.8), "%"),
        ],
        other => panic!("no fixture for {other}"),
    };
    Measurement {
        id: "msr_01JPA3W9Q2".into(),
        org: "default".into(),
        appointment_id: appointment_id.into(),
        device_id: "tablet-1".into(),
        kind: kind.into(),
        performed_at: "2025-03-15T12:40:00Z".into(),
        observations,
        report_pdf: b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".to_vec(),
    }
}

/// The result of the example's first appointment.
fn result_of(preset: &str) -> Value {
    let items = map_example(preset);
    let (patient, appointment) = created(&items[0]);
    let mut appointment = appointment.clone();
    appointment.id = "apt-0001".into();
    let mut patient = patient.clone();
    patient.id = "pat-0001".into();
    let kind = appointment.order.procedure.as_ref().unwrap().code.clone();
    build_result(
        &appointment,
        &patient,
        &measurement(&kind, &appointment.id),
        &mapping(preset),
    )
    .unwrap()
}

#[test]
fn results_match_the_examples() {
    for preset in VENDORS {
        let built = result_of(preset);
        // MEDRELAY_BLESS_EXAMPLES=1 rewrites the files (keys sorted: reorder them as
        // the template has them, for readers).
        if std::env::var_os("MEDRELAY_BLESS_EXAMPLES").is_some() {
            let path = format!(
                "{}/../../examples/{preset}-result.json",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::write(path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Value = serde_json::from_str(example(&format!("{preset}-result"))).unwrap();
        assert_eq!(
            built,
            expected,
            "{preset}: examples/{preset}-result.json is out of date; got\n{}",
            serde_json::to_string_pretty(&built).unwrap()
        );
    }
}

#[test]
fn result_placeholders() {
    // Whole-string placeholders become values: the observations an array, the PDF a
    // Base64 string; inside text, placeholders are replaced by text.
    let r = result_of("best-practice");
    let m = &r["measurement"];
    assert_eq!(m["observations"].as_array().unwrap().len(), 2);
    assert_eq!(m["observations"][0]["value"], json!(72));
    assert!(m["report"]["data"].as_str().unwrap().starts_with("JVBERi0"));
    assert_eq!(m["report"]["fileName"], json!("ECG-48213.pdf"));
    assert_eq!(r["locationId"], json!("2"));
    // Every placeholder in a template of its own.
    let fields: Vec<String> = PLACEHOLDERS
        .iter()
        .map(|(name, _)| {
            let name = name.replace("<key>", "patient_status");
            format!("\"{name}\": \"{{{{{name}}}}}\"")
        })
        .collect();
    let template = format!(
        "{{{}, \"label\": \"{{{{patient.family}}}}, {{{{patient.given}}}} ({{{{appointment.visit_number}}}}) {{{{measurement.report_pdf}}}}\"}}",
        fields.join(", ")
    );
    let m = presets::json("best-practice")
        .unwrap()
        .mapping(Some(&overrides(&format!(
            "[result]\ntemplate = '''{template}'''"
        ))))
        .unwrap();
    let items = map_example("best-practice");
    let (patient, appointment) = created(&items[0]);
    let mut no_pdf = measurement("ECG", "x");
    no_pdf.report_pdf.clear();
    let v = build_result(appointment, patient, &no_pdf, &m).unwrap();
    assert_eq!(v["label"], json!("Nguyen, Olivia (V48213) "));
    assert_eq!(v["measurement.report_pdf"], Value::Null);
    assert_eq!(v["appointment.id"], Value::Null, "not stored yet");
    assert_eq!(v["appointment.placer_order"], json!("48213"));
    assert_eq!(v["appointment.practitioner.given"], json!("James"));
    assert_eq!(v["patient.identifier"], json!("10234"));
    assert_eq!(v["patient.identifier_system"], json!("best-practice"));
    assert_eq!(v["patient.sex"], json!("female"));
    assert_eq!(v["extra.patient_status"], json!("Active"));
    assert_eq!(v["device.id"], json!("tablet-1"));
    assert_eq!(v["measurement.device_id"], json!("tablet-1"));
    assert_eq!(v["measurement.type"], json!("ECG"));
    assert_eq!(v["patient.email"], Value::Null);
    // An appointment that did not come from an EHR has nothing to answer.
    let mut manual = appointment.clone();
    manual.order.placer_order = None;
    assert!(build_result(&manual, patient, &no_pdf, &m).is_err());
}

#[test]
fn unknown_placeholders_are_check_errors() {
    let p = presets::json("join").unwrap();
    let e = p
        .mapping(Some(&overrides(
            "[result]\ntemplate = '{\"a\": \"{{patient.surname}}\", \"b\": [\"x {{measurement.pdf}}\"]}'",
        )))
        .unwrap_err();
    assert!(e.contains("{{patient.surname}}"), "{e}");
    assert!(e.contains("{{measurement.pdf}}"), "{e}");
    for bad in ["'{\"a\": \"{{patient.family\"}'", "'not json'", "''"] {
        let e = p
            .mapping(Some(&overrides(&format!("[result]\ntemplate = {bad}"))))
            .unwrap_err();
        assert!(e.starts_with("result.template"), "{bad}: {e}");
    }
}

#[test]
fn transport_per_preset() {
    let bp = mapping("best-practice");
    assert_eq!(bp.transport.inbound, JsonInbound::Poll);
    assert_eq!(bp.transport.poll_method, "POST");
    assert!(bp.transport.poll_on_worklist);
    assert_eq!(bp.transport.next_page, None);
    let body: Value = serde_json::from_str(bp.transport.poll_body.as_deref().unwrap()).unwrap();
    let sql = body["sql"].as_str().unwrap();
    assert!(sql.starts_with("SELECT ") && sql.contains(" FROM Appointments "));
    assert_eq!(bp.items.as_deref(), Some("/rows"));
    let a = bp.transport.result_async.as_ref().unwrap();
    let accepted = json!({"requestId": "r-1", "statusUrl": "https://halo.example/status/r-1"});
    assert_eq!(
        a.status_url(&accepted).as_deref(),
        Some("https://halo.example/status/r-1")
    );
    assert_eq!(a.state(&json!({"status": "Completed"})), AsyncState::Done);
    assert_eq!(
        a.state(&json!({"status": "Failed"})),
        AsyncState::Failed("Failed".into())
    );
    assert_eq!(
        a.state(&json!({"status": "Processing"})),
        AsyncState::Pending(Some("Processing".into()))
    );
    for name in ["join", "ziplanerx", "json"] {
        let t = mapping(name).transport;
        assert_eq!(t.inbound, JsonInbound::Push, "{name}");
        assert!(!t.poll_on_worklist && t.result_async.is_none() && t.poll_body.is_none());
    }
    for name in ["vena", "webdoc"] {
        let m = mapping(name);
        let t = &m.transport;
        assert_eq!(t.inbound, JsonInbound::Poll, "{name}");
        assert_eq!(t.poll_method, "GET");
        assert!(t.poll_on_worklist);
        assert_eq!(t.next_page.as_deref(), Some("/next"));
        assert!(t.result_async.is_none() && t.poll_body.is_none());
        assert_eq!(m.items.as_deref(), Some("/data"));
    }
}

#[test]
fn next_page_pointer() {
    let vena = mapping("vena");
    assert_eq!(
        next_page(&doc("vena-appointments"), &vena).as_deref(),
        Some("https://api.leyr.example/v1/appointments?cursor=eyJwYWdlIjoyfQ")
    );
    // The last page: null, absent, empty.
    assert_eq!(next_page(&doc("webdoc-appointments"), &vena), None);
    assert_eq!(next_page(&json!({"data": []}), &vena), None);
    assert_eq!(next_page(&json!({"next": "  "}), &vena), None);
    assert_eq!(next_page(&json!({"next": {"url": "x"}}), &vena), None);
    assert_eq!(next_page(&json!({"next": "x".repeat(9000)}), &vena), None);
    // A numeric cursor is text.
    assert_eq!(
        next_page(&json!({"next": 42}), &vena).as_deref(),
        Some("42")
    );
    // Best Practice does not page; an override can make it.
    let bp = mapping("best-practice");
    assert_eq!(next_page(&json!({"rows": [], "next": "x"}), &bp), None);
    let bp = presets::json("best-practice")
        .unwrap()
        .mapping(Some(&overrides(
            "[transport]\nnext_page = \"/paging/cursor\"",
        )))
        .unwrap();
    assert_eq!(
        next_page(&json!({"rows": [], "paging": {"cursor": "c2"}}), &bp).as_deref(),
        Some("c2")
    );
    // An empty page maps to nothing.
    assert!(
        map_document(&json!({"data": [], "next": null}), &vena, &ctx("vena"))
            .unwrap()
            .is_empty()
    );
    assert!(
        map_document(&json!({"data": null}), &vena, &ctx("vena"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn overrides_replace_single_keys() {
    let p = presets::json("vena").unwrap();
    let base = p.mapping(None).unwrap();
    let m = p
        .mapping(Some(&overrides(
            r#"
            keep = ["/care_unit_id", "/end"]
            [patient]
            family = ["/patient/surname", "/patient/last_name"]
            identifier_system = "urn:oid:2.16.578.1.12.4.1.4.1"
            [appointment]
            group = { pointer = "/tablet_group", table = "groups" }
            [tables.groups]
            ecg = "cardiology"
            [tables.status]
            booked = "ignore"
            [transport]
            next_page = ""
            "#,
        )))
        .unwrap();
    // Only what was given changed.
    assert_eq!(m.patient.given, base.patient.given);
    assert_eq!(m.patient.birth_date, base.patient.birth_date);
    assert_eq!(m.appointment.id, base.appointment.id);
    assert_eq!(m.transport.poll_method, "GET");
    assert_eq!(m.transport.next_page, None);
    assert_eq!(
        m.tables["status"]["cancelled"], "cancel",
        "tables merge entry by entry"
    );
    assert_eq!(m.tables["sex"], base.tables["sex"]);
    assert_eq!(m.result, base.result);
    // And it takes effect.
    let mut d = doc("vena-appointments");
    d["data"][0]["patient"]["surname"] = json!("Hansen-Dahl");
    d["data"][0]["status"] = json!("confirmed");
    d["data"][1]["status"] = json!("booked");
    let items = map_document(&d, &m, &ctx("vena")).unwrap();
    assert_eq!(items.len(), 1, "booked is now ignored");
    let (patient, appointment) = created(&items[0]);
    assert_eq!(patient.family.as_deref(), Some("Hansen-Dahl"));
    assert_eq!(
        patient.identifiers[0].system.as_deref(),
        Some("urn:oid:2.16.578.1.12.4.1.4.1")
    );
    assert_eq!(appointment.group, "cardiology");
    assert_eq!(
        appointment.order.extra.get("/end").map(String::as_str),
        Some("2025-03-15T08:50:00+01:00")
    );
    // Switching the group off falls back to the integration's group.
    let m = p
        .mapping(Some(&overrides("[appointment]\ngroup = \"\"")))
        .unwrap();
    let items = map_document(&doc("vena-appointments"), &m, &ctx("vena")).unwrap();
    assert_eq!(created(&items[0]).1.group, "default-group");
    // Unknown keys and broken values are errors naming them.
    for (bad, needle) in [
        ("[patient]\nfamly = \"/x\"", "famly"),
        ("[appointment]\nid = \"id\"", "appointment.id"),
        ("[appointment]\nid = \"\"", "appointment.id must be mapped"),
        (
            "[patient]\nsex = { pointer = \"/g\", table = \"gender\" }",
            "gender",
        ),
        ("[transport]\npoll_method = \"PUT\"", "poll_method"),
        ("[transport]\npoll_body = \"{}\"", "POST"),
        ("[tables.status]\nbooked = \"maybe\"", "maybe"),
        ("keep = [\"care_unit_id\"]", "keep"),
        (
            "[transport]\ninbound = \"carrier-pigeon\"",
            "carrier-pigeon",
        ),
    ] {
        let e = p.mapping(Some(&overrides(bad))).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
    // A push preset cannot poll on worklist requests; switching it to poll can.
    let j = presets::json("join").unwrap();
    assert!(
        j.mapping(Some(&overrides("[transport]\npoll_on_worklist = true")))
            .is_err()
    );
    let m = j
        .mapping(Some(&overrides(
            "[transport]\ninbound = \"poll\"\npoll_on_worklist = true\nnext_page = \"/next\"",
        )))
        .unwrap();
    assert_eq!(m.transport.inbound, JsonInbound::Poll);
    // Best Practice's own query; async results switched off.
    let bp = presets::json("best-practice").unwrap();
    let m = bp
        .mapping(Some(&overrides(
            "[transport]\npoll_body = '{\"sql\": \"SELECT 1 FROM Appointments\"}'\nresult_async = { status_url = \"\" }",
        )))
        .unwrap();
    assert!(m.transport.poll_body.unwrap().contains("SELECT 1"));
    assert!(m.transport.result_async.is_none());
    assert!(
        bp.mapping(Some(&overrides("[transport]\npoll_body = '{\"sql\": '")))
            .is_err()
    );
}

#[test]
fn document_forms() {
    let m = mapping("join");
    let one = doc("join-appointments")["appointments"][0].clone();
    let c = ctx("join");
    // One object, an array, the envelope: the same appointment.
    let a = map_document(&one, &m, &c).unwrap();
    let b = map_document(&json!([one.clone()]), &m, &c).unwrap();
    let e = map_document(&json!({"appointments": [one.clone()]}), &m, &c).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, e);
    // Numbers and booleans are text; given names may be an array; birth dates may be
    // date-times.
    let mut n = one.clone();
    n["appointmentId"] = json!(58213);
    n["patient"]["patientId"] = json!(100234);
    n["patient"]["firstName"] = json!(["Ana", "Marija"]);
    n["patient"]["dateOfBirth"] = json!("1958-11-03T00:00:00.000Z");
    n["tabletGroup"] = json!(true);
    let items = map_document(&n, &m, &c).unwrap();
    assert_eq!(items[0].key, "58213");
    let (patient, appointment) = created(&items[0]);
    assert_eq!(patient.identifiers[0].value, "100234");
    assert_eq!(patient.given, ["Ana", "Marija"]);
    assert_eq!(patient.birth_date.as_deref(), Some("1958-11-03"));
    assert_eq!(appointment.group, "true");
    // The generic preset reads medrelay's own shape.
    let g = mapping("json");
    let d = json!({"appointments": [{
        "id": "A-1", "status": "scheduled", "scheduled_at": "2025-03-15T09:30:00Z",
        "visit_number": "V-1", "procedure": {"code": "ECG"},
        "patient": {"id": "P-1", "family": "Nguyen", "given": "Olivia", "birth_date": "1965-06-24",
                    "sex": "F", "email": "o@example.org", "phone": "+61 7 4600 0000",
                    "address": {"city": "Toowoomba"}}}]});
    let items = map_document(&d, &g, &ctx("generic")).unwrap();
    let (patient, appointment) = created(&items[0]);
    assert_eq!(patient.email.as_deref(), Some("o@example.org"));
    assert_eq!(patient.phone.as_deref(), Some("+61 7 4600 0000"));
    assert_eq!(patient.sex.as_deref(), Some("female"));
    assert_eq!(appointment.group, "default-group");
    assert_eq!(appointment.order.procedure.as_ref().unwrap().display, None);
    assert_eq!(appointment.order.ordering_provider, None);
}

#[test]
fn bad_date_and_missing_ids() {
    let m = mapping("vena");
    let c = ctx("vena");
    for bad in ["1949-02-30", "30.01.1949", "yesterday", "19490130"] {
        let mut d = doc("vena-appointments");
        d["data"][0]["patient"]["date_of_birth"] = json!(bad);
        let e = map_document(&d, &m, &c).unwrap_err();
        assert!(matches!(e, MapError::Invalid { .. }), "{bad}: {e:?}");
        assert_eq!(e.path(), Some("/data/0/patient/date_of_birth"), "{bad}");
        assert!(e.reason().contains(bad), "{e}");
    }
    let mut d = doc("vena-appointments");
    d["data"][0]["start"] = json!("15/03/2025 09:00");
    let e = map_document(&d, &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/data/0/start"));
    assert!(e.reason().contains("ISO 8601"), "{e}");
    // An object where a value belongs.
    let mut d = doc("vena-appointments");
    d["data"][0]["patient"]["last_name"] = json!({"text": "Hansen"});
    let e = map_document(&d, &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/data/0/patient/last_name"));
    assert!(e.reason().contains("object"), "{e}");

    let mut d = doc("vena-appointments");
    d["data"][1].as_object_mut().unwrap().remove("id");
    let e = map_document(&d, &m, &c).unwrap_err();
    assert!(matches!(e, MapError::Missing { .. }), "{e:?}");
    assert_eq!(e.path(), Some("/data/1/id"));
    assert!(e.reason().contains("appointment id"), "{e}");

    let mut d = doc("vena-appointments");
    d["data"][0]["patient"]["id"] = json!("  ");
    let e = map_document(&d, &m, &c).unwrap_err();
    assert!(matches!(e, MapError::Missing { .. }), "{e:?}");
    assert_eq!(e.path(), Some("/data/0/patient/id"));
    assert!(e.reason().contains("patient id"), "{e}");
    // A single pushed object names its own pointers.
    let mut one = doc("ziplanerx-appointments");
    one["appointment"]["patient"]
        .as_object_mut()
        .unwrap()
        .remove("patient_id");
    let e = map_document(&one, &mapping("ziplanerx"), &ctx("z")).unwrap_err();
    assert_eq!(e.path(), Some("/appointment/patient/patient_id"));
    let e = map_document(&json!({"x": 1}), &mapping("json"), &ctx("z")).unwrap_err();
    assert_eq!(e.path(), Some("/id"));
    assert_eq!(
        e.to_string(),
        "/id: appointment id missing: the appointment cannot be found again"
    );
}

#[test]
fn hostile_documents() {
    let m = mapping("vena");
    let c = ctx("vena");
    // Not an object or an array.
    for v in [json!("x"), json!(1), json!(null), json!(true)] {
        assert!(
            matches!(map_document(&v, &m, &c), Err(MapError::Unsupported(_))),
            "{v}"
        );
    }
    // Deep nesting, anywhere in the document (serde_json itself stops at 128).
    let mut deep = String::from("{\"data\": [], \"x\": ");
    deep.push_str(&"[".repeat(MAX_DEPTH + 5));
    deep.push_str(&"]".repeat(MAX_DEPTH + 5));
    deep.push('}');
    let v: Value = serde_json::from_str(&deep).unwrap();
    let e = map_document(&v, &m, &c).unwrap_err();
    assert!(
        matches!(e, MapError::Invalid { .. }) && e.reason().contains("deep"),
        "{e}"
    );
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
    // Too many appointments.
    let one = doc("vena-appointments")["data"][0].clone();
    let many = json!({"data": vec![one.clone(); MAX_ITEMS + 1]});
    let e = map_document(&many, &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/data"));
    assert!(e.reason().contains("at most 500"), "{e}");
    let e = map_document(&Value::Array(vec![json!(1); 100_000]), &m, &c).unwrap_err();
    assert!(e.reason().contains("at most"), "{e}");
    assert_eq!(
        map_document(&json!({"data": vec![one.clone(); MAX_ITEMS]}), &m, &c)
            .unwrap()
            .len(),
        MAX_ITEMS
    );
    // A huge array somewhere else.
    let e = map_document(&json!({"data": [], "blob": vec![0; 300_000]}), &m, &c).unwrap_err();
    assert!(e.reason().contains("JSON values"), "{e}");
    // Items that are not objects.
    for bad in [json!(1), json!("apt"), json!(null), json!([one.clone()])] {
        let e = map_document(&json!({"data": [one.clone(), bad.clone()]}), &m, &c).unwrap_err();
        assert_eq!(e.path(), Some("/data/1"), "{bad}");
        assert!(e.reason().contains("not an appointment object"), "{e}");
    }
    // The items pointer at something else.
    let e = map_document(&json!({"data": "none"}), &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/data"));
    // Huge values.
    let mut big = one.clone();
    big["patient"]["last_name"] = json!("x".repeat(100_000));
    let e = map_document(&big, &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/patient/last_name"));
    let mut big = one.clone();
    big["care_unit_id"] = json!(vec!["x".repeat(1000); 40]);
    let e = map_document(&big, &m, &c).unwrap_err();
    assert_eq!(e.path(), Some("/care_unit_id"));
    let mut names = one.clone();
    names["patient"]["first_name"] = json!(vec!["A"; 1000]);
    assert!(map_document(&names, &m, &c).is_err());
    // Control characters and odd text pass through as text.
    let mut odd = one;
    odd["patient"]["last_name"] = json!("Ha\u{0}n\u{202e}sen");
    odd["id"] = json!(1e300);
    let items = map_document(&odd, &m, &c).unwrap();
    assert_eq!(
        created(&items[0]).0.family.as_deref(),
        Some("Ha\u{0}n\u{202e}sen")
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9 /~-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("data".to_string()),
                    Just("patient".to_string()),
                    Just("status".to_string()),
                    Just("start".to_string()),
                    Just("date_of_birth".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The presets' mappings, loaded once for the property tests.
fn cached(preset: &str) -> &'static JsonMapping {
    static ALL: std::sync::OnceLock<Vec<(&'static str, JsonMapping)>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        presets::json_names()
            .into_iter()
            .map(|n| (n, mapping(n)))
            .collect()
    });
    &all.iter().find(|(n, _)| *n == preset).unwrap().1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_documents_never_panic(v in arb_json()) {
        for preset in ["vena", "best-practice", "ziplanerx", "json"] {
            let m = cached(preset);
            let _ = map_document(&v, m, &ctx(preset));
            let _ = next_page(&v, m);
        }
    }

    #[test]
    fn mutated_examples_never_panic(preset in prop::sample::select(VENDORS.to_vec()),
                                    path in prop::collection::vec(0usize..8, 1..5),
                                    replacement in arb_json()) {
        let mut d = doc(&format!("{preset}-appointments"));
        // Walk down by index into objects and arrays and replace what is there.
        let mut pointer = String::new();
        let mut at = &d;
        for i in path {
            let (token, next) = match at {
                Value::Object(o) if !o.is_empty() => {
                    let (k, v) = o.iter().nth(i % o.len()).unwrap();
                    (k.replace('~', "~0").replace('/', "~1"), v)
                }
                Value::Array(a) if !a.is_empty() => ((i % a.len()).to_string(), &a[i % a.len()]),
                _ => break,
            };
            pointer.push('/');
            pointer.push_str(&token);
            at = next;
        }
        *d.pointer_mut(&pointer).unwrap() = replacement;
        let _ = map_document(&d, cached(preset), &ctx(preset));
    }
}

#[test]
fn presets_load() {
    assert_eq!(
        presets::json_names(),
        [
            "json",
            "best-practice",
            "join",
            "vena",
            "webdoc",
            "ziplanerx"
        ]
    );
    for name in presets::json_names() {
        let p = presets::json(name).unwrap();
        assert_eq!(p.name, name);
        assert!(!p.description.is_empty(), "{name}");
        let m = p.mapping(None).unwrap();
        m.check().unwrap();
        assert!(presets::source(name).is_some());
    }
    assert!(matches!(
        presets::json("nextgen"),
        Err(presets::PresetError::Unknown(_))
    ));
    assert!(presets::json("gdt").is_err());
    // Each vendor file sets every field itself (nothing leaks from `json`), says its
    // shape is assumed, and points at its examples.
    let generic = mapping("json");
    for name in VENDORS {
        let source = presets::source(name).unwrap();
        assert!(source.contains("THE SHAPE IS ASSUMED"), "{name}");
        assert!(source.contains("Every key is overridable"), "{name}");
        assert!(source.contains(&format!("examples/{name}-appointments.json")));
        assert!(source.contains(&format!("examples/{name}-result.json")));
        assert!(source.contains("extends = \"json\""), "{name}");
        let own: toml::Table = toml::from_str(source).unwrap();
        for (key, src) in generic.sources() {
            assert!(src.is_some());
            let (section, field) = key.split_once('.').unwrap();
            assert!(
                own[section].as_table().unwrap().contains_key(field),
                "{name}: {key} is inherited from `json`"
            );
        }
        for key in ["items", "keep"] {
            assert!(own.contains_key(key), "{name}: {key}");
        }
        assert!(own["result"].get("template").is_some(), "{name}");
        // The catalogue's fields are mapped.
        let m = mapping(name);
        for (key, src) in m.sources() {
            let on = src.is_some_and(|s| !s.pointers.is_empty());
            let required = [
                "patient.identifier",
                "patient.family",
                "patient.given",
                "patient.birth_date",
                "patient.sex",
                "appointment.id",
                "appointment.status",
                "appointment.scheduled_at",
                "appointment.visit_id",
                "appointment.group",
                "appointment.procedure",
            ];
            if required.contains(&key) {
                assert!(on, "{name}: {key}");
            }
        }
    }
    // The catalogue lists address and practitioner for Vena and Webdoc (and Best
    // Practice's query selects them), patient status for Best Practice.
    for name in ["vena", "webdoc", "best-practice"] {
        let m = mapping(name);
        assert!(m.patient.street.is_some_and(|s| !s.pointers.is_empty()));
        assert!(
            m.appointment
                .practitioner_family
                .is_some_and(|s| !s.pointers.is_empty())
        );
    }
    assert!(
        mapping("best-practice")
            .patient
            .status
            .is_some_and(|s| !s.pointers.is_empty())
    );
}

#[test]
fn mappings_round_trip_through_toml() {
    for name in presets::json_names() {
        let m = mapping(name);
        let t = toml::Table::try_from(&m).unwrap();
        assert_eq!(JsonMapping::from_table(&t).unwrap(), m, "{name}");
    }
}

#[test]
fn readme_documents_the_json_mapping() {
    let readme = include_str!("../README.md");
    let start = readme.find("## The JSON mapping").expect("README section");
    let section = &readme[start..];
    let m = mapping("json");
    for (key, _) in m.sources() {
        assert!(
            section.contains(&format!("| `{key}` |")),
            "{key} not in README"
        );
    }
    for (name, _) in PLACEHOLDERS {
        assert!(
            section.contains(&format!("`{{{{{name}}}}}`")),
            "placeholder {name} not in README"
        );
    }
    for name in presets::json_names() {
        assert!(
            section.contains(&format!("`{name}`")),
            "{name} not in README"
        );
    }
    // The key table's preset columns match the preset files.
    let columns = [
        ("vena", 2),
        ("webdoc", 2),
        ("best-practice", 3),
        ("join", 4),
        ("ziplanerx", 5),
    ];
    for (preset, col) in columns {
        let pm = mapping(preset);
        for (key, src) in pm.sources() {
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap();
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
            let pointers = &src.unwrap().pointers;
            let want = if pointers.is_empty() {
                "off".to_string()
            } else {
                pointers
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            };
            assert_eq!(cells[col], want, "README {key} for {preset}");
        }
        let keep: Vec<String> = pm.keep.iter().map(|k| format!("\"{k}\"")).collect();
        assert!(
            section.contains(&format!("`[{}]`", keep.join(", "))),
            "README keep for {preset}"
        );
    }
    // The README's override example works.
    let begin = section.find("```toml\n[integration.mapping]").unwrap() + "```toml\n".len();
    let len = section[begin..].find("```").unwrap();
    let config: toml::Table = toml::from_str(&section[begin..begin + len]).unwrap();
    let o = config["integration"]["mapping"].as_table().unwrap();
    let m = presets::json("vena").unwrap().mapping(Some(o)).unwrap();
    assert_eq!(
        m.patient.family.unwrap().pointers,
        ["/patient/surname", "/patient/last_name"]
    );
}

#[test]
fn keep_copies_verbatim() {
    // keep copies values verbatim: objects as compact JSON.
    let m = presets::json("join")
        .unwrap()
        .mapping(Some(&overrides(
            "keep = [\"/measurement\", \"/missing\", \"/organizationId\"]",
        )))
        .unwrap();
    let items = map_document(&doc("join-appointments"), &m, &ctx("join")).unwrap();
    let extra: &BTreeMap<String, String> = &created(&items[0]).1.order.extra;
    assert_eq!(
        extra.get("/measurement").map(String::as_str),
        Some(r#"{"code":"ABI","name":"Ankle-brachial index"}"#)
    );
    assert!(!extra.contains_key("/missing"));
    assert_eq!(extra.len(), 2);
}
