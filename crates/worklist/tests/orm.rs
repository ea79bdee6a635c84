//! ORM^O01 through every preset: every field the catalogue lists lands where the
//! README says.

mod common;

use common::*;
use hl7v2::MessageBuilder;
use medrelay_worklist::*;

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

fn id(value: &str, system: Option<&str>, kind: Option<&str>) -> Identifier {
    Identifier {
        value: value.into(),
        system: system.map(Into::into),
        kind: kind.map(Into::into),
    }
}

fn coded(code: &str, display: &str, system: &str) -> Coded {
    Coded {
        code: code.into(),
        display: Some(display.into()),
        system: Some(system.into()),
    }
}

fn provider(id: &str, family: &str, given: &[&str], prefix: Option<&str>) -> Provider {
    Provider {
        id: Some(id.into()),
        family: Some(family.into()),
        given: given.iter().map(|g| g.to_string()).collect(),
        prefix: prefix.map(Into::into),
    }
}

#[test]
fn every_preset_maps_every_seed_field() {
    let raw = full_orm("NW");
    for name in PRESETS {
        let (patient, appt) = create(map(&raw, &preset(name)).unwrap());

        // PID
        assert_eq!(
            patient,
            Patient {
                id: String::new(),
                identifiers: vec![
                    id("1234567890", Some("HIS"), Some("MR")),
                    id("X-77", Some("1.2.3"), Some("PI")),
                ],
                family: Some("GARCIA".into()),
                given: vec!["PEDRO".into(), "MIGUEL".into()],
                suffix: Some("JR".into()),
                prefix: Some("DR".into()),
                birth_date: Some("1975-10-22".into()),
                sex: Some("male".into()),
                race: Some(coded("2106-3", "White", "CDCREC")),
                race_code: Some("white".into()),
                language: Some("es".into()),
                address: Some(Address {
                    street: Some("C/ MAYOR 1".into()),
                    other: Some("PISO 2".into()),
                    city: Some("MADRID".into()),
                    state: Some("MD".into()),
                    postal_code: Some("28001".into()),
                    country: Some("ES".into()),
                    kind: Some("H".into()),
                }),
                phone: Some("+34 91 5551234".into()),
                email: Some("pedro@example.com".into()),
            },
            "{name}"
        );

        // PV1
        assert_eq!(
            appt.visit,
            Visit {
                class: Some("O".into()),
                location: Some("CARDIO^101^1^HOSPITAL_A".into()),
                admission_type: Some("R".into()),
                attending: Some(provider("12345", "LOPEZ", &["ANA", "MARIA"], Some("DR"))),
                service: Some("CAR".into()),
                visit_number: Some(id("V-2025-77", Some("HOSPITAL_A"), Some("VN"))),
                admit_at: Some("2025-03-15T11:00:00".into()),
                discharge_at: Some("2025-03-15T18:00:00".into()),
            },
            "{name}"
        );

        // MSH + ORC + OBR
        assert_eq!(
            appt.order,
            Order {
                request_date: Some("2025-03-15T12:00:00+01:00".into()),
                control: Some("NW".into()),
                placer_order: Some("ORD-2025-001".into()),
                filler_order: Some("FIL-9".into()),
                group_number: Some("GRP-1".into()),
                status: Some("SC".into()),
                response_flag: Some("Y".into()),
                timing: Some("1^ONCE^^20250315130000^^R".into()),
                transaction_at: Some("2025-03-15T11:55:00".into()),
                entered_by: Some(provider("E1", "ENTER", &["EVA"], None)),
                verified_by: Some(provider("V1", "VERIFY", &["VIC"], None)),
                ordering_provider: Some(provider("12345", "LOPEZ", &["ANA"], None)),
                callback_phone: Some("91 5559999".into()),
                effective_at: Some("2025-03-15T12:05:00".into()),
                procedure: Some(coded("ECG", "Electrocardiogram", "L")),
                priority: Some("S".into()),
                requested_at: Some("2025-03-15T13:00:00".into()),
                observation_at: Some("2025-03-15T13:10:00".into()),
                obr_ordering_provider: Some(provider("67890", "SMITH", &["JOHN"], None)),
                diagnostic_section: Some("EC".into()),
                timing_block: Some("1^^^20250315130000^^S".into()),
                technician: Some("T1&TECH&TOM".into()),
                scheduled_at: Some("2025-03-15T14:00:00".into()),
                procedure_code: Some(coded("93000", "ECG routine", "C4")),
                ..Order::default()
            },
            "{name}"
        );

        assert_eq!(appt.scheduled_at.as_deref(), Some("2025-03-15T14:00:00"));
        assert_eq!(appt.integration, "cardiology-nextgen");
        assert_eq!(appt.group, "cardiology");
        assert_eq!(appt.org, "default");
        assert_eq!(appt.status, AppointmentStatus::Scheduled);
    }
}

#[test]
fn the_seed_message_itself() {
    // shared/seeds/002_…, with its OBR line joined again.
    let raw = b"MSH|^~\\&|HIS|HOSPITAL_A|MEDISFERA|PACS|20250315120000||ORM^O01|MSG001|P|2.5\r\
PID|1||1234567890^^^HIS||GARCIA^PEDRO^M||19751022|M|||C/ MAYOR 1^MADRID^^28001\r\
PV1|1|O|RADIOLOGY||||12345^DR LOPEZ^ANA|\r\
ORC|NW|ORD-2025-001|||SC||||20250315120000|||12345^DR LOPEZ^ANA\r\
OBR|1|ORD-2025-001||72193^TC ABDOMEN SIN CONTRASTE^LN|||20250315||||||||||||12345^DR LOPEZ^ANA||||||CT|||^^MEDISFERA_MWL^MEDISFERA|||SC\r";
    for name in PRESETS {
        let (patient, appt) = create(map(raw, &preset(name)).unwrap());
        assert_eq!(patient.identifiers, [id("1234567890", Some("HIS"), None)]);
        assert_eq!(patient.given, ["PEDRO", "M"]);
        // The seed writes city in XAD-2; read as the standard lays XAD out.
        let addr = patient.address.unwrap();
        assert_eq!(addr.street.as_deref(), Some("C/ MAYOR 1"));
        assert_eq!(addr.other.as_deref(), Some("MADRID"));
        assert_eq!(addr.state.as_deref(), Some("28001"));
        assert_eq!(appt.visit.location.as_deref(), Some("RADIOLOGY"));
        assert_eq!(appt.order.placer_order.as_deref(), Some("ORD-2025-001"));
        assert_eq!(appt.order.status.as_deref(), Some("SC"));
        assert_eq!(appt.order.procedure.unwrap().code, "72193");
        assert_eq!(appt.order.requested_at, None);
        assert_eq!(appt.order.observation_at.as_deref(), Some("2025-03-15"));
        // The seed's OBR has the provider at OBR-19 and `CT` at OBR-25 (its line was
        // wrapped): standard positions are read, so they are not taken as OBR-16/24.
        assert_eq!(appt.order.diagnostic_section, None);
        // OBR-36 and OBR-6 absent: OBR-7 is the appointment time.
        assert_eq!(appt.scheduled_at.as_deref(), Some("2025-03-15"));
        assert_eq!(
            appt.order.request_date.as_deref(),
            Some("2025-03-15T12:00:00")
        );
    }
}

#[test]
fn scheduled_at_and_priority_fall_back() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| {
            s.field(1, "NW")
                .field(2, "P1")
                .field(7, "^^^^^A")
                .field(9, "20250316080000")
        })
        .segment("OBR", |s| s.field(1, "1").field(4, "ECG"))
        .build_bytes()
        .unwrap();
    let (_, appt) = create(map(&raw, &preset("hl7-mllp")).unwrap());
    assert_eq!(appt.scheduled_at.as_deref(), Some("2025-03-16T08:00:00"));
    assert_eq!(appt.order.priority.as_deref(), Some("A"));
    assert_eq!(appt.visit, Visit::default());

    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| s.field(1, "NW").field(2, "P1"))
        .build_bytes()
        .unwrap();
    let (_, appt) = create(map(&raw, &preset("hl7-mllp")).unwrap());
    // Only MSH-7 left.
    assert_eq!(
        appt.scheduled_at.as_deref(),
        Some("2025-03-15T12:00:00+01:00")
    );
}

#[test]
fn cancel_and_update_carry_the_key() {
    let m = preset("nextgen");
    for control in ["CA", "OC", "DC", "CR", "DR"] {
        let actions = map(&full_orm(control), &m).unwrap();
        assert_eq!(
            actions,
            [WorklistAction::CancelAppointment {
                key: OrderKey {
                    integration: "cardiology-nextgen".into(),
                    placer_order: Some("ORD-2025-001".into()),
                    filler_order: Some("FIL-9".into()),
                },
                reason: None,
            }],
            "{control}"
        );
    }
    for control in ["XO", "SC"] {
        let actions = map(&full_orm(control), &m).unwrap();
        let [
            WorklistAction::UpdateAppointment {
                key,
                patient,
                appointment,
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}")
        };
        assert_eq!(key.placer_order.as_deref(), Some("ORD-2025-001"));
        assert_eq!(key.filler_order.as_deref(), Some("FIL-9"));
        assert_eq!(patient.family.as_deref(), Some("GARCIA"));
        assert_eq!(appointment.order.control.as_deref(), Some(control));
    }

    // A cancel keyed only by OBR-2, with a reason, and no PID at all.
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("ORC", |s| {
            s.field(1, "CA").field(16, "PR^Patient request^L")
        })
        .segment("OBR", |s| s.field(1, "1").field(2, "ORD-7").field(4, "ECG"))
        .build_bytes()
        .unwrap();
    assert_eq!(
        map(&raw, &m).unwrap(),
        [WorklistAction::CancelAppointment {
            key: OrderKey {
                integration: "cardiology-nextgen".into(),
                placer_order: Some("ORD-7".into()),
                filler_order: None,
            },
            reason: Some("Patient request".into()),
        }]
    );
}

#[test]
fn several_orders_in_one_message() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", pid)
        .segment("ORC", |s| s.field(1, "NW").field(2, "A-1"))
        .segment("OBR", |s| {
            s.field(1, "1")
                .field(4, "ECG^ECG^L")
                .field(36, "20250401100000")
        })
        .segment("ORC", |s| s.field(1, "NW").field(2, "A-2"))
        .segment("OBR", |s| s.field(1, "2").field(4, "SPIRO^Spirometry^L"))
        .segment("ORC", |s| s.field(1, "CA").field(3, "F-3"))
        .build_bytes()
        .unwrap();
    let mut m = preset("hl7-mllp");
    m.merge(
        &Mapping::from_toml_str(
            r#"
            [[route]]
            path = "OBR-4.1"
            one_of = ["SPIRO", "FVC"]
            group = "pulmonology"
            "#,
        )
        .unwrap(),
    );
    let actions = map(&raw, &m).unwrap();
    assert_eq!(actions.len(), 3);
    let WorklistAction::CreateAppointment {
        appointment: a1, ..
    } = &actions[0]
    else {
        panic!()
    };
    let WorklistAction::CreateAppointment {
        appointment: a2, ..
    } = &actions[1]
    else {
        panic!()
    };
    assert_eq!(a1.order.placer_order.as_deref(), Some("A-1"));
    assert_eq!(a1.order.procedure.as_ref().unwrap().code, "ECG");
    assert_eq!(a1.scheduled_at.as_deref(), Some("2025-04-01T10:00:00"));
    assert_eq!(a1.group, "cardiology");
    assert_eq!(a2.order.placer_order.as_deref(), Some("A-2"));
    assert_eq!(a2.order.procedure.as_ref().unwrap().code, "SPIRO");
    assert_eq!(a2.group, "pulmonology");
    // The OBR of order 2 must not leak into order 3.
    assert_eq!(
        actions[2],
        WorklistAction::CancelAppointment {
            key: OrderKey {
                integration: "cardiology-nextgen".into(),
                placer_order: None,
                filler_order: Some("F-3".into()),
            },
            reason: None,
        }
    );
}

#[test]
fn routing_rules() {
    let mut m = preset("iris");
    m.merge_table(
        &toml::from_str(
            r#"
            [[route]]
            path = "PV1-3.1"
            equals = "cardio"
            group = "cardio-devices"

            [[route]]
            path = "OBR-24"
            one_of = ["EC", "CT"]
            group = "imaging"
            "#,
        )
        .unwrap(),
    )
    .unwrap();
    m.check().unwrap();
    // PV1-3.1 is CARDIO: the first rule (case-insensitive) wins over the second.
    let (_, appt) = create(map(&full_orm("NW"), &m).unwrap());
    assert_eq!(appt.group, "cardio-devices");

    m.routes.remove(0);
    let (_, appt) = create(map(&full_orm("NW"), &m).unwrap());
    assert_eq!(appt.group, "imaging");

    m.routes[0].one_of = vec!["XX".into()];
    let (_, appt) = create(map(&full_orm("NW"), &m).unwrap());
    assert_eq!(
        appt.group, "cardiology",
        "no rule matches: the integration's group"
    );
}

#[test]
fn value_tables_and_field_overrides() {
    let mut m = preset("birpis");
    m.merge_table(
        &toml::from_str(
            r#"
            patient.family = "PID-5.2"
            patient.suffix = ""
            order.priority = { path = ["OBR-5"], table = "priority" }
            tables.sex.M = "masculine"
            tables.race_code."2106-3" = "caucasian"
            tables.priority = { S = "stat", R = "routine" }
            tables.order_control.NW = "update"
            oru.receiving_application = "BIRPIS-TEST"
            "#,
        )
        .unwrap(),
    )
    .unwrap();
    m.check().unwrap();
    let actions = map(&full_orm("NW"), &m).unwrap();
    let [
        WorklistAction::UpdateAppointment {
            patient,
            appointment,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(patient.family.as_deref(), Some("PEDRO"));
    assert_eq!(patient.suffix, None);
    assert_eq!(patient.sex.as_deref(), Some("masculine"));
    assert_eq!(patient.race_code.as_deref(), Some("caucasian"));
    assert_eq!(appointment.order.priority.as_deref(), Some("stat"));
    assert_eq!(m.oru.receiving_application.as_deref(), Some("BIRPIS-TEST"));

    // Values the tables do not list.
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", |s| {
            s.field(3, "P1")
                .field(5, "X^Y")
                .field(8, "Z")
                .field(10, "9999-9^Martian^CDCREC")
        })
        .segment("ORC", |s| s.field(1, "NW").field(2, "P1"))
        .build_bytes()
        .unwrap();
    let (p, _) = create(map(&raw, &preset("hl7-mllp")).unwrap());
    assert_eq!(p.sex.as_deref(), Some("unknown"));
    assert_eq!(p.race_code.as_deref(), Some("unknown"));
    assert_eq!(p.race.unwrap().display.as_deref(), Some("Martian"));
    for (code, want) in [
        ("F", "female"),
        ("O", "other"),
        ("A", "other"),
        ("U", "unknown"),
        ("N", "unknown"),
    ] {
        let raw = msh(MessageBuilder::new("ADT", "A08"))
            .segment("EVN", |s| s.field(2, "20250315120000"))
            .segment("PID", |s| s.field(3, "P1").field(5, "X").field(8, code))
            .build_bytes()
            .unwrap();
        let actions = map(&raw, &preset("isoz")).unwrap();
        let [WorklistAction::UpsertPatient { patient }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(patient.sex.as_deref(), Some(want), "{code}");
    }
    for (code, want) in [
        ("2054-5", "black"),
        ("2028-9", "asian"),
        ("1002-5", "american-indian"),
        ("2076-8", "pacific-islander"),
        ("2131-1", "other"),
    ] {
        let raw = msh(MessageBuilder::new("ADT", "A08"))
            .segment("PID", |s| s.field(3, "P1").field(10, code))
            .build_bytes()
            .unwrap();
        let actions = map(&raw, &preset("hipokrat")).unwrap();
        let WorklistAction::UpsertPatient { patient } = &actions[0] else {
            panic!()
        };
        assert_eq!(patient.race_code.as_deref(), Some(want), "{code}");
    }
}

#[test]
fn unknown_override_keys_are_rejected() {
    let mut m = preset("nextgen");
    for (toml_text, named) in [
        ("patient.famly = \"PID-5.1\"", "patient.famly"),
        ("pateint.family = \"PID-5.1\"", "pateint"),
        ("order.placer = \"ORC-2\"", "order.placer"),
        ("oru.receiving_app = \"X\"", "oru.receiving_app"),
        ("visit.class = { path = \"PV1-2\", tbl = \"x\" }", "tbl"),
    ] {
        let t: toml::Table = toml::from_str(toml_text).unwrap();
        let e = m.merge_table(&t).unwrap_err();
        assert!(e.to_string().contains(named), "{toml_text}: {e}");
    }
    // A bad path or a missing table is caught by check(), naming the key.
    m.merge_table(
        &toml::from_str(
            "patient.family = \"PID-5.x\"\npatient.sex = { path = \"PID-8\", table = \"gender\" }",
        )
        .unwrap(),
    )
    .unwrap();
    let errors = m.check().unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].to_string().contains("patient.family"));
    assert!(errors[1].to_string().contains("gender"));
}

#[test]
fn escapes_and_latin1_are_decoded() {
    let raw = msh(MessageBuilder::new("ORM", "O01"))
        .segment("PID", |s| {
            s.field(3, "P\\T\\1").field(5, "O\\S\\NEIL^ANN\\F\\MARIE")
        })
        .segment("ORC", |s| s.field(1, "NW").field(2, "A\\E\\B"))
        .build_bytes()
        .unwrap();
    let (p, a) = create(map(&raw, &preset("hl7-mllp")).unwrap());
    assert_eq!(p.identifiers[0].value, "P&1");
    assert_eq!(p.family.as_deref(), Some("O^NEIL"));
    assert_eq!(p.given, ["ANN|MARIE"]);
    assert_eq!(a.order.placer_order.as_deref(), Some("A\\B"));

    let mut latin1 =
        b"MSH|^~\\&|HIS|H|ME|X|20250315||ORM^O01|1|P|2.5||||||8859/1\rPID|1||P1||M".to_vec();
    latin1.push(0xDC); // Ü
    latin1.extend_from_slice(b"LLER^J\xD6RG\rORC|NW|A1\r");
    let (p, _) = create(map(&latin1, &preset("hl7-mllp")).unwrap());
    assert_eq!(p.family.as_deref(), Some("MÜLLER"));
    assert_eq!(p.given, ["JÖRG"]);
}

#[test]
fn adt_upserts_the_patient() {
    for trigger in ["A01", "A04", "A08", "A28", "A31"] {
        let raw = msh(MessageBuilder::new("ADT", trigger))
            .segment("EVN", |s| s.field(2, "20250315120000"))
            .segment("PID", pid)
            .segment("PV1", pv1)
            .build_bytes()
            .unwrap();
        let actions = map(&raw, &preset("nextgen")).unwrap();
        let [WorklistAction::UpsertPatient { patient }] = actions.as_slice() else {
            panic!("{trigger}: {actions:?}")
        };
        assert_eq!(patient.identifiers.len(), 2);
        assert_eq!(patient.family.as_deref(), Some("GARCIA"));
        assert_eq!(patient.birth_date.as_deref(), Some("1975-10-22"));
        assert_eq!(patient.email.as_deref(), Some("pedro@example.com"));
    }
}

/// `weda`: the generic fields plus a task type and an activity id cut from ORC-2.1.
#[test]
fn weda_derives_task_type_and_activity_id_from_the_placer_number() {
    let (patient, appt) = create(map(&full_orm("NW"), &preset("weda")).unwrap());
    // ORC-2 is `ORD-2025-001^HIS`: split at the first `-`.
    assert_eq!(appt.order.task_type.as_deref(), Some("ORD"));
    assert_eq!(appt.order.activity_id.as_deref(), Some("2025-001"));
    assert_eq!(appt.order.placer_order.as_deref(), Some("ORD-2025-001"));
    // First components, as WEDA's mapping names them.
    assert_eq!(appt.visit.location.as_deref(), Some("CARDIO"));
    assert_eq!(appt.visit.class.as_deref(), Some("O"));
    assert_eq!(patient.sex.as_deref(), Some("male"));
    assert_eq!(patient.birth_date.as_deref(), Some("1975-10-22"));
    // The generic preset leaves them off.
    let (_, generic) = create(map(&full_orm("NW"), &preset("hl7-mllp")).unwrap());
    assert_eq!(generic.order.task_type, None);
    assert_eq!(generic.order.activity_id, None);
}

#[test]
fn split_parts() {
    use medrelay_worklist::mapping::{Split, SplitPart};
    let first = Split {
        separator: "-".into(),
        part: SplitPart::First,
    };
    let rest = Split {
        separator: "-".into(),
        part: SplitPart::Rest,
    };
    assert_eq!(first.apply("ECG-000123").as_deref(), Some("ECG"));
    assert_eq!(rest.apply("ECG-000123").as_deref(), Some("000123"));
    assert_eq!(first.apply("000123"), None);
    assert_eq!(rest.apply("000123").as_deref(), Some("000123"));
    assert_eq!(rest.apply("ECG-"), None);
    // A bad `part` is a configuration error, not a silent default.
    let bad = Mapping::from_toml_str(
        "[order]\ntask_type = { path = \"ORC-2.1\", split = \"-\", part = \"middle\" }\n",
    );
    assert!(bad.is_err());
}
