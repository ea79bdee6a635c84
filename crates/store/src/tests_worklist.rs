//! Tests of the device worklist part of the store, against real SQLite files.

use medrelay_worklist::{
    Address, Appointment, AppointmentStatus, Coded, Identifier, Measurement, Observation, Order,
    OrderKey, Patient, Visit, WorklistAction,
};
use tempfile::TempDir;

use crate::tests::{migrated_connection, query_plan, temp};
use crate::*;

const A: &str = "clinic-a";
const B: &str = "clinic-b";
const T0: Millis = 1_700_000_000_000;

pub(crate) fn open(dir: &TempDir) -> Store {
    Store::open_sqlite(&dir.path().join("medrelay.db"), SqliteOptions::default())
        .expect("open store")
}

fn clock() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as Millis).unwrap_or(0)
}

pub(crate) fn ident(value: &str, system: Option<&str>) -> Identifier {
    Identifier {
        value: value.into(),
        system: system.map(Into::into),
        kind: Some("MR".into()),
    }
}

pub(crate) fn patient(mrn: &str, family: &str) -> Patient {
    Patient {
        identifiers: vec![ident(mrn, Some("HIS"))],
        family: Some(family.into()),
        given: vec!["PEDRO".into()],
        birth_date: Some("1975-10-22".into()),
        sex: Some("male".into()),
        ..Patient::default()
    }
}

fn appointment(placer: &str, group: &str, scheduled_at: &str) -> Appointment {
    Appointment {
        integration: "nextgen".into(),
        group: group.into(),
        scheduled_at: Some(scheduled_at.into()),
        order: Order {
            control: Some("NW".into()),
            placer_order: Some(placer.into()),
            filler_order: Some(format!("F-{placer}")),
            procedure: Some(Coded {
                code: "ECG".into(),
                display: Some("Electrocardiogram".into()),
                system: None,
            }),
            priority: Some("R".into()),
            ..Order::default()
        },
        visit: Visit {
            class: Some("O".into()),
            location: Some("CARD^101".into()),
            ..Visit::default()
        },
        ..Appointment::default()
    }
}

fn key(placer: Option<&str>, filler: Option<&str>) -> OrderKey {
    OrderKey {
        integration: "nextgen".into(),
        placer_order: placer.map(Into::into),
        filler_order: filler.map(Into::into),
    }
}

fn create(p: Patient, a: Appointment) -> WorklistAction {
    WorklistAction::CreateAppointment {
        patient: p,
        appointment: a,
    }
}

fn msg(org: &str, control_id: &str, at: Millis, worklist: Vec<WorklistAction>) -> InboundRecord {
    InboundRecord {
        org: org.into(),
        channel: "nextgen-in".into(),
        received_at: at,
        control_id: Some(control_id.into()),
        message_type: Some("ORM^O01".into()),
        sending_application: Some("EHR".into()),
        status: MessageStatus::Accepted,
        raw: format!("MSH|^~\\&|EHR||||||ORM^O01|{control_id}|P|2.5\r").into_bytes(),
        ack: Some(format!("MSA|AA|{control_id}").into_bytes()),
        dedup_window: Some(3_600_000),
        worklist,
        ..InboundRecord::default()
    }
}

/// Records a message and returns (message id, worklist effects).
async fn apply(store: &Store, rec: InboundRecord) -> (i64, Vec<WorklistEffect>) {
    match store.record_inbound(rec).await.expect("record_inbound") {
        InboundOutcome::Stored {
            message_id,
            worklist,
            ..
        } => (message_id, worklist),
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// Creates one appointment in `org` and returns its id.
async fn seed_appointment(
    store: &Store,
    org: &str,
    control_id: &str,
    placer: &str,
    group: &str,
    at: &str,
) -> String {
    let (_, effects) = apply(
        store,
        msg(
            org,
            control_id,
            T0,
            vec![create(
                patient("MRN-1", "GARCIA"),
                appointment(placer, group, at),
            )],
        ),
    )
    .await;
    effects[0].appointment_id.clone().expect("appointment id")
}

fn measurement(org: &str, appointment_id: &str, pdf: &[u8]) -> Measurement {
    Measurement {
        org: org.into(),
        appointment_id: appointment_id.into(),
        device_id: "7".into(),
        kind: "ECG".into(),
        performed_at: "2025-03-15T12:05:00Z".into(),
        observations: vec![Observation {
            code: "8867-4".into(),
            system: Some("LN".into()),
            display: Some("Heart rate".into()),
            value: serde_json::json!(72),
            unit: Some("/min".into()),
            ..Observation::default()
        }],
        report_pdf: pdf.to_vec(),
        ..Measurement::default()
    }
}

fn outbound(org: &str, destinations: &[&str]) -> OutboundMessage {
    OutboundMessage {
        org: org.into(),
        channel: "nextgen-out".into(),
        control_id: Some("ORU0001".into()),
        message_type: Some("ORU^R01".into()),
        raw: b"MSH|^~\\&|MEDRELAY||||||ORU^R01|ORU0001|P|2.5\r".to_vec(),
        created_at: T0 + 500,
        deliveries: destinations
            .iter()
            .map(|d| NewDelivery {
                destination: (*d).into(),
                payload: b"MSH|ORU".to_vec(),
                not_before: T0 + 500,
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_upsert_matches_by_identifier_and_merges_fields() {
    let dir = temp();
    let store = open(&dir);
    let first = Patient {
        address: Some(Address {
            city: Some("Madrid".into()),
            ..Address::default()
        }),
        phone: Some("555-1234".into()),
        ..patient("MRN-1", "GARCIA")
    };
    let (_, e1) = apply(
        &store,
        msg(
            A,
            "m1",
            T0,
            vec![WorklistAction::UpsertPatient { patient: first }],
        ),
    )
    .await;
    let pid = e1[0].patient_id.clone().unwrap();
    assert_eq!(
        e1[0],
        WorklistEffect {
            patient_id: Some(pid.clone()),
            appointment_id: None,
            not_found: false
        }
    );

    // Same MRN plus a second identifier without a system; new family name, no
    // phone, no address, no given names: those keep their old values.
    let update = Patient {
        identifiers: vec![
            Identifier {
                value: "MRN-1".into(),
                system: Some("HIS".into()),
                kind: None,
            },
            ident("SSN-9", None),
        ],
        family: Some("GARCIA LOPEZ".into()),
        email: Some("p@example.org".into()),
        ..Patient::default()
    };
    let (_, e2) = apply(
        &store,
        msg(
            A,
            "m2",
            T0 + 1,
            vec![WorklistAction::UpsertPatient { patient: update }],
        ),
    )
    .await;
    assert_eq!(e2[0].patient_id.as_deref(), Some(pid.as_str()));
    let p = store.get_patient(A, &pid).await.unwrap().unwrap();
    assert_eq!(p.id, pid);
    assert_eq!(p.family.as_deref(), Some("GARCIA LOPEZ"));
    assert_eq!(p.given, vec!["PEDRO".to_string()]);
    assert_eq!(p.phone.as_deref(), Some("555-1234"));
    assert_eq!(p.email.as_deref(), Some("p@example.org"));
    assert_eq!(
        p.address.as_ref().and_then(|a| a.city.as_deref()),
        Some("Madrid")
    );
    // Identifiers: union; the existing one keeps its type (the update had none).
    assert_eq!(
        p.identifiers,
        vec![ident("MRN-1", Some("HIS")), ident("SSN-9", None)]
    );

    // Matching by the second identifier alone (system absent = '') finds it too.
    let by_ssn = Patient {
        identifiers: vec![Identifier {
            value: "SSN-9".into(),
            system: Some(String::new()),
            kind: None,
        }],
        sex: Some("other".into()),
        ..Patient::default()
    };
    let (_, e3) = apply(
        &store,
        msg(
            A,
            "m3",
            T0 + 2,
            vec![WorklistAction::UpsertPatient { patient: by_ssn }],
        ),
    )
    .await;
    assert_eq!(e3[0].patient_id.as_deref(), Some(pid.as_str()));
    assert_eq!(
        store
            .get_patient(A, &pid)
            .await
            .unwrap()
            .unwrap()
            .sex
            .as_deref(),
        Some("other")
    );

    // Same value, different system: another patient.
    let (_, e4) = apply(
        &store,
        msg(
            A,
            "m4",
            T0 + 3,
            vec![WorklistAction::UpsertPatient {
                patient: Patient {
                    identifiers: vec![ident("MRN-1", Some("OTHER-HIS"))],
                    ..patient("MRN-1", "SMITH")
                },
            }],
        ),
    )
    .await;
    let other = e4[0].patient_id.clone().unwrap();
    assert_ne!(other, pid);
    let all = store.list_patients(A, 10, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        vec![pid.clone(), other.clone()]
    );
    assert_eq!(store.list_patients(A, 10, 1).await.unwrap().len(), 1);
    assert_eq!(store.get_patient(A, "nope").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appointments_are_created_updated_and_cancelled_by_messages() {
    let dir = temp();
    let store = open(&dir);
    let (m1, e1) = apply(
        &store,
        msg(
            A,
            "nw1",
            T0,
            vec![create(
                patient("MRN-1", "GARCIA"),
                appointment("ORD-1", "cardiology", "2025-03-15T12:00:00Z"),
            )],
        ),
    )
    .await;
    assert!(!e1[0].not_found);
    let aid = e1[0].appointment_id.clone().unwrap();
    let pid = e1[0].patient_id.clone().unwrap();
    let (a, p) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    assert_eq!(a.id, aid);
    assert_eq!(a.org, A);
    assert_eq!(a.status, AppointmentStatus::Scheduled);
    assert_eq!(a.group, "cardiology");
    assert_eq!(a.patient_id, pid);
    assert_eq!(p.id, pid);
    assert_eq!(p.family.as_deref(), Some("GARCIA"));
    let expected = appointment("ORD-1", "cardiology", "2025-03-15T12:00:00Z");
    assert_eq!(a.order, expected.order);
    assert_eq!(a.visit, expected.visit);
    assert_eq!(a.integration, "nextgen");
    assert!(m1 > 0);
    let found = store
        .find_appointment(A, &key(Some("ORD-1"), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, aid);
    // By filler number alone, and by placer falling back to filler.
    let by_filler = key(None, Some("F-ORD-1"));
    assert_eq!(
        store
            .find_appointment(A, &by_filler)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(aid.clone())
    );
    let fallback = key(Some("unknown"), Some("F-ORD-1"));
    assert_eq!(
        store
            .find_appointment(A, &fallback)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(aid.clone())
    );

    // XO: new time and priority, other order fields keep their values; the
    // patient (same MRN) gets a new phone.
    let mut change = Appointment {
        integration: "nextgen".into(),
        scheduled_at: Some("2025-03-16T09:00:00Z".into()),
        ..Appointment::default()
    };
    change.order.control = Some("XO".into());
    change.order.priority = Some("S".into());
    let update = WorklistAction::UpdateAppointment {
        key: key(Some("ORD-1"), None),
        patient: Patient {
            identifiers: vec![ident("MRN-1", Some("HIS"))],
            phone: Some("555-0000".into()),
            ..Patient::default()
        },
        appointment: change,
    };
    let unknown_update = WorklistAction::UpdateAppointment {
        key: key(Some("ORD-404"), None),
        patient: patient("MRN-404", "NOBODY"),
        appointment: appointment("ORD-404", "cardiology", "2025-01-01T00:00:00Z"),
    };
    let (_, e2) = apply(&store, msg(A, "xo1", T0 + 10, vec![update, unknown_update])).await;
    assert_eq!(
        e2,
        vec![
            WorklistEffect {
                patient_id: Some(pid.clone()),
                appointment_id: Some(aid.clone()),
                not_found: false,
            },
            WorklistEffect {
                patient_id: None,
                appointment_id: None,
                not_found: true,
            },
        ]
    );
    let (a, p) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    assert_eq!(a.scheduled_at.as_deref(), Some("2025-03-16T09:00:00Z"));
    assert_eq!(a.order.control.as_deref(), Some("XO"));
    assert_eq!(a.order.priority.as_deref(), Some("S"));
    assert_eq!(a.order.procedure, expected.order.procedure);
    assert_eq!(a.order.placer_order.as_deref(), Some("ORD-1"));
    assert_eq!(a.visit, expected.visit);
    assert_eq!(a.group, "cardiology");
    assert_eq!(p.phone.as_deref(), Some("555-0000"));
    assert_eq!(p.family.as_deref(), Some("GARCIA"));
    // The not-found update changed nothing: no patient MRN-404.
    assert_eq!(store.list_patients(A, 10, 0).await.unwrap().len(), 1);

    // CA: cancelled, gone from the worklist; unknown cancel → not_found.
    let (_, e3) = apply(
        &store,
        msg(
            A,
            "ca1",
            T0 + 20,
            vec![
                WorklistAction::CancelAppointment {
                    key: key(None, Some("F-ORD-1")),
                    reason: Some("patient called".into()),
                },
                WorklistAction::CancelAppointment {
                    key: key(Some("ORD-404"), None),
                    reason: None,
                },
            ],
        ),
    )
    .await;
    assert_eq!(e3[0].appointment_id.as_deref(), Some(aid.as_str()));
    assert!(!e3[0].not_found);
    assert!(e3[1].not_found);
    let (a, _) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    assert_eq!(a.status, AppointmentStatus::Cancelled);
    assert!(
        store
            .worklist(A, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );

    // NW again with the same placer number: the same appointment, un-cancelled.
    let (_, e4) = apply(
        &store,
        msg(
            A,
            "nw2",
            T0 + 30,
            vec![create(
                patient("MRN-1", "GARCIA"),
                appointment("ORD-1", "cardiology", "2025-03-17T08:00:00Z"),
            )],
        ),
    )
    .await;
    assert_eq!(e4[0].appointment_id.as_deref(), Some(aid.as_str()));
    let list = store.worklist(A, "cardiology", 1000).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0.status, AppointmentStatus::Scheduled);
    assert_eq!(
        list[0].0.scheduled_at.as_deref(),
        Some("2025-03-17T08:00:00Z")
    );
    // The message that created it and the ones after are all stored.
    assert_eq!(store.count_messages(A, None).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_message_applies_nothing() {
    let dir = temp();
    let store = open(&dir);
    let actions = vec![create(
        patient("MRN-1", "GARCIA"),
        appointment("ORD-1", "cardiology", "2025-03-15T12:00:00Z"),
    )];
    let (first, _) = apply(&store, msg(A, "dup", T0, actions.clone())).await;
    // The same message again, after the appointment was cancelled: if the
    // retransmission were applied it would reopen it.
    apply(
        &store,
        msg(
            A,
            "cancel",
            T0 + 1,
            vec![WorklistAction::CancelAppointment {
                key: key(Some("ORD-1"), None),
                reason: None,
            }],
        ),
    )
    .await;
    let again = store
        .record_inbound(msg(A, "dup", T0 + 2, actions))
        .await
        .unwrap();
    assert!(
        matches!(again, InboundOutcome::Duplicate { original_id, .. } if original_id == first),
        "{again:?}"
    );
    assert!(
        store
            .worklist(A, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );
    let all = store
        .list_appointments(AppointmentQuery::new(A))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0.status, AppointmentStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worklist_is_ordered_and_filtered_by_group() {
    let dir = temp();
    let store = open(&dir);
    let mut actions = Vec::new();
    for (placer, group, at, mrn) in [
        ("O3", "cardiology", "2025-03-15T14:00:00Z", "P3"),
        ("O1", "cardiology", "2025-03-15T09:00:00Z", "P1"),
        ("O2", "cardiology", "2025-03-15T09:00:00Z", "P2"),
        ("O4", "pulmonology", "2025-03-15T08:00:00Z", "P4"),
    ] {
        actions.push(create(patient(mrn, mrn), appointment(placer, group, at)));
    }
    let (_, effects) = apply(&store, msg(A, "batch", T0, actions)).await;
    let ids: Vec<String> = effects
        .iter()
        .map(|e| e.appointment_id.clone().unwrap())
        .collect();
    let cardio = store.worklist(A, "cardiology", 1000).await.unwrap();
    let placers: Vec<_> = cardio
        .iter()
        .map(|(a, _)| a.order.placer_order.clone().unwrap())
        .collect();
    assert_eq!(placers, ["O1", "O2", "O3"]);
    for (a, p) in &cardio {
        assert_eq!(a.patient_id, p.id);
        assert_eq!(
            p.identifiers[0].value,
            a.order.placer_order.as_deref().unwrap().replace('O', "P")
        );
    }
    assert_eq!(
        store.worklist(A, "pulmonology", 1000).await.unwrap().len(),
        1
    );
    assert!(store.worklist(A, "nobody", 1000).await.unwrap().is_empty());

    // Groups were created by the orders and count their open appointments.
    let groups = store.list_groups(A).await.unwrap();
    assert_eq!(
        groups,
        vec![
            GroupInfo {
                name: "cardiology".into(),
                devices: 0,
                open_appointments: 3
            },
            GroupInfo {
                name: "pulmonology".into(),
                devices: 0,
                open_appointments: 1
            },
        ]
    );

    // Lists with filters.
    let q = |f: fn(&mut AppointmentQuery)| {
        let mut q = AppointmentQuery::new(A);
        f(&mut q);
        q
    };
    let by_group = store
        .list_appointments(q(|q| q.group = Some("pulmonology".into())))
        .await
        .unwrap();
    assert_eq!(by_group.len(), 1);
    assert_eq!(by_group[0].0.id, ids[3]);
    let window = store
        .list_appointments(q(|q| {
            q.scheduled_from = Some("2025-03-15T09:00:00Z".into());
            q.scheduled_to = Some("2025-03-15T14:00:00Z".into());
        }))
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|(a, _)| a.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[2].clone()]
    );
    let page = store
        .list_appointments(q(|q| {
            q.limit = 2;
            q.offset = 1;
        }))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|(a, _)| a.id.clone()).collect::<Vec<_>>(),
        vec![ids[1].clone(), ids[2].clone()]
    );
    let pid = cardio[0].1.id.clone();
    let by_patient = store
        .list_appointments(AppointmentQuery {
            patient_id: Some(pid),
            integration: Some("nextgen".into()),
            status: Some(AppointmentStatus::Scheduled),
            ..AppointmentQuery::new(A)
        })
        .await
        .unwrap();
    assert_eq!(by_patient.len(), 1);
    assert_eq!(by_patient[0].0.id, ids[1]);
    let completed = store
        .list_appointments(q(|q| q.status = Some(AppointmentStatus::Completed)))
        .await
        .unwrap();
    assert!(completed.is_empty());
    let other_integration = store
        .list_appointments(q(|q| q.integration = Some("weda".into())))
        .await
        .unwrap();
    assert!(other_integration.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_appointments_are_hidden() {
    let dir = temp();
    let store = open(&dir);
    let aid = seed_appointment(
        &store,
        A,
        "m1",
        "ORD-1",
        "cardiology",
        "2025-03-15T12:00:00Z",
    )
    .await;
    store.delete_appointment(A, &aid).await.unwrap();
    assert_eq!(store.get_appointment(A, &aid).await.unwrap(), None);
    assert!(
        store
            .worklist(A, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_appointments(AppointmentQuery::new(A))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_appointment(A, &key(Some("ORD-1"), None))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_groups(A).await.unwrap()[0].open_appointments, 0);
    assert!(matches!(
        store.delete_appointment(A, &aid).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_appointment(A, "999").await,
        Err(StoreError::NotFound)
    ));
    // A cancel for the deleted order finds nothing; a new order with the same
    // number creates a new appointment.
    let (_, e) = apply(
        &store,
        msg(
            A,
            "m2",
            T0 + 3,
            vec![
                WorklistAction::CancelAppointment {
                    key: key(Some("ORD-1"), None),
                    reason: None,
                },
                create(
                    patient("MRN-1", "GARCIA"),
                    appointment("ORD-1", "cardiology", "2025-03-15T12:00:00Z"),
                ),
            ],
        ),
    )
    .await;
    assert!(e[0].not_found);
    assert_ne!(e[1].appointment_id.as_deref(), Some(aid.as_str()));
    assert_eq!(
        store.worklist(A, "cardiology", 1000).await.unwrap().len(),
        1
    );
    // Measurements cannot be recorded for a deleted appointment.
    assert!(matches!(
        store
            .record_measurement(measurement(A, &aid, b""), None)
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_devices_lifecycle() {
    let dir = temp();
    let store = open(&dir);
    let clock_before = clock();
    let g = store.create_group(A, "cardiology").await.unwrap();
    assert_eq!((g.org.as_str(), g.name.as_str()), (A, "cardiology"));
    assert!(matches!(
        store.create_group(A, "cardiology").await,
        Err(StoreError::Conflict(_))
    ));

    // create_device creates a missing group.
    let d1 = store
        .create_device(A, "tablet-1", "cardiology", "hash-1")
        .await
        .unwrap();
    let d2 = store
        .create_device(A, "tablet-2", "pulmonology", "hash-2")
        .await
        .unwrap();
    assert_eq!(d1.org, A);
    assert_eq!(d1.group, "cardiology");
    // Rows made by admin operations are stamped with the system clock.
    assert!(
        d1.created_at >= clock_before && d1.created_at <= clock(),
        "{d1:?}"
    );
    assert_eq!(d1.last_seen_at, None);
    assert!(matches!(
        store.create_device(A, "dup", "cardiology", "hash-1").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.list_devices(A).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(store.get_device(A, &d1.id).await.unwrap(), Some(d1.clone()));
    assert_eq!(
        store.device_by_token_hash("hash-2").await.unwrap(),
        Some(d2.clone())
    );
    assert_eq!(store.device_by_token_hash("nope").await.unwrap(), None);

    let aid = seed_appointment(
        &store,
        A,
        "m1",
        "ORD-1",
        "cardiology",
        "2025-03-15T12:00:00Z",
    )
    .await;
    let names: Vec<_> = store
        .list_groups(A)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.devices, g.open_appointments))
        .collect();
    assert_eq!(
        names,
        vec![("cardiology".into(), 1, 1), ("pulmonology".into(), 1, 0)]
    );

    // Rename moves devices and appointments.
    assert!(matches!(
        store.rename_group(A, "cardiology", "pulmonology").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.rename_group(A, "nope", "x").await,
        Err(StoreError::NotFound)
    ));
    store.rename_group(A, "cardiology", "heart").await.unwrap();
    assert_eq!(
        store.get_device(A, &d1.id).await.unwrap().unwrap().group,
        "heart"
    );
    assert!(
        store
            .worklist(A, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );
    let heart = store.worklist(A, "heart", 1000).await.unwrap();
    assert_eq!(heart.len(), 1);
    assert_eq!(heart[0].0.id, aid);
    assert_eq!(heart[0].0.group, "heart");

    // Delete refuses while devices remain.
    assert!(matches!(
        store.delete_group(A, "heart").await,
        Err(StoreError::Conflict(_))
    ));
    store.move_device(A, &d1.id, "pulmonology").await.unwrap();
    store.rename_device(A, &d1.id, "tablet-one").await.unwrap();
    let moved = store.get_device(A, &d1.id).await.unwrap().unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.group.as_str()),
        ("tablet-one", "pulmonology")
    );
    store.delete_group(A, "heart").await.unwrap();
    assert!(matches!(
        store.delete_group(A, "heart").await,
        Err(StoreError::NotFound)
    ));
    // Moving to a group that does not exist creates it.
    store.move_device(A, &d2.id, "new-group").await.unwrap();
    assert!(
        store
            .list_groups(A)
            .await
            .unwrap()
            .iter()
            .any(|g| g.name == "new-group" && g.devices == 1)
    );

    // Token rotation: the old hash stops working at once.
    store
        .rotate_device_token(A, &d1.id, "hash-1b")
        .await
        .unwrap();
    assert_eq!(store.device_by_token_hash("hash-1").await.unwrap(), None);
    assert_eq!(
        store
            .device_by_token_hash("hash-1b")
            .await
            .unwrap()
            .map(|d| d.id),
        Some(d1.id.clone())
    );
    assert!(matches!(
        store.rotate_device_token(A, &d1.id, "hash-2").await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_device(A, &d1.id).await.unwrap();
    assert_eq!(store.get_device(A, &d1.id).await.unwrap(), None);
    assert_eq!(store.device_by_token_hash("hash-1b").await.unwrap(), None);
    for r in [
        store.delete_device(A, &d1.id).await,
        store.rename_device(A, "x", "y").await,
        store.move_device(A, "12345", "g").await,
        store.rotate_device_token(A, &d1.id, "h").await,
    ] {
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_device_writes_at_most_every_30_seconds() {
    let dir = temp();
    let store = open(&dir);
    let d = store.create_device(A, "tablet", "g", "hash").await.unwrap();
    let seen = |store: Store, id: String| async move {
        store
            .get_device(A, &id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at
    };
    assert!(store.touch_device(&d.id, T0 + 1_000).await.unwrap());
    assert_eq!(seen(store.clone(), d.id.clone()).await, Some(T0 + 1_000));
    let before = store.metrics_snapshot().ops;
    // Inside the interval: no write at all (the writer sees no op).
    assert!(!store.touch_device(&d.id, T0 + 20_000).await.unwrap());
    assert!(!store.touch_device(&d.id, T0 + 30_999).await.unwrap());
    assert_eq!(store.metrics_snapshot().ops, before);
    assert_eq!(seen(store.clone(), d.id.clone()).await, Some(T0 + 1_000));
    // A clock going backwards does not move it back either.
    assert!(!store.touch_device(&d.id, T0).await.unwrap());
    assert!(store.touch_device(&d.id, T0 + 31_000).await.unwrap());
    assert_eq!(seen(store.clone(), d.id.clone()).await, Some(T0 + 31_000));
    assert!(matches!(
        store.touch_device("424242", T0).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens() {
    let dir = temp();
    let store = open(&dir);
    let t = store
        .create_api_token(A, "admin", "ops", "tok-hash")
        .await
        .unwrap();
    assert_eq!(
        (t.org.as_str(), t.role.as_str(), t.name.as_str()),
        (A, "admin", "ops")
    );
    assert!(t.created_at > T0 && t.last_used_at.is_none());
    assert!(matches!(
        store
            .create_api_token(A, "admin", "again", "tok-hash")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.api_token_by_hash("tok-hash").await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(store.api_token_by_hash("other").await.unwrap(), None);
    let t2 = store
        .create_api_token(A, "viewer", "dash", "tok-2")
        .await
        .unwrap();
    assert_eq!(
        store.list_api_tokens(A).await.unwrap(),
        vec![t.clone(), t2.clone()]
    );
    assert!(store.touch_api_token(&t.id, T0 + 5).await.unwrap());
    assert!(!store.touch_api_token(&t.id, T0 + 6).await.unwrap());
    assert_eq!(
        store
            .api_token_by_hash("tok-hash")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(T0 + 5)
    );
    store.delete_api_token(A, &t.id).await.unwrap();
    assert_eq!(store.api_token_by_hash("tok-hash").await.unwrap(), None);
    assert!(matches!(
        store.delete_api_token(A, &t.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_api_tokens(A).await.unwrap(), vec![t2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurement_with_outbound_message_in_one_transaction() {
    let dir = temp();
    let store = open(&dir);
    let aid = seed_appointment(
        &store,
        A,
        "m1",
        "ORD-1",
        "cardiology",
        "2025-03-15T12:00:00Z",
    )
    .await;
    let pdf = b"%PDF-1.7 fake report".to_vec();
    let ids = store
        .record_measurement(
            measurement(A, &aid, &pdf),
            Some(outbound(A, &["nextgen-out/ehr", "nextgen-out/archive"])),
        )
        .await
        .unwrap();
    let message_id = ids.message_id.unwrap();
    assert_eq!(ids.delivery_ids.len(), 2);

    // The appointment is completed and off the worklist.
    let (a, _) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    assert_eq!(a.status, AppointmentStatus::Completed);
    assert!(
        store
            .worklist(A, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );

    // The ORU is a stored outbound message, browsable and filterable.
    let oru = store.get_message(A, message_id).await.unwrap().unwrap();
    assert_eq!(oru.direction, Direction::Out);
    assert_eq!(oru.status, MessageStatus::Accepted);
    assert_eq!(oru.received_at, T0 + 500);
    assert_eq!(oru.control_id.as_deref(), Some("ORU0001"));
    assert_eq!(oru.message_type.as_deref(), Some("ORU^R01"));
    let out = store
        .find_messages(MessageQuery {
            direction: Some(Direction::Out),
            ..MessageQuery::new(A)
        })
        .await
        .unwrap();
    assert_eq!(
        out.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![message_id]
    );
    let inbound = store
        .find_messages(MessageQuery {
            direction: Some(Direction::In),
            ..MessageQuery::new(A)
        })
        .await
        .unwrap();
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].direction, Direction::In);
    assert_eq!(
        store
            .pending_deliveries("nextgen-out/ehr", 10)
            .await
            .unwrap()[0]
            .id,
        ids.delivery_ids[0]
    );

    // get: the measurement with its PDF and delivery states.
    let got = store
        .get_measurement(A, &ids.measurement_id)
        .await
        .unwrap()
        .unwrap();
    let mut expected = measurement(A, &aid, &pdf);
    expected.id = ids.measurement_id.clone();
    assert_eq!(got.measurement, expected);
    assert!(got.created_at >= T0, "{}", got.created_at);
    assert_eq!(got.message_id, Some(message_id));
    assert_eq!(
        got.deliveries.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids.delivery_ids
    );
    assert_eq!(got.deliveries[0].destination, "nextgen-out/ehr");
    assert!(got.deliveries.iter().all(|d| d.payload.is_empty()));

    // Deliver one, fail the other; list shows it without the PDF.
    store
        .delivery_sent(ids.delivery_ids[0], T0 + 600, Some(b"MSA|AA".to_vec()))
        .await
        .unwrap();
    store
        .delivery_failed(
            ids.delivery_ids[1],
            T0 + 600,
            "AR: unknown patient",
            None,
            None,
        )
        .await
        .unwrap();
    let list = store.list_measurements(A, None, 10, 0).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].measurement.report_pdf.is_empty());
    assert_eq!(list[0].measurement.observations, expected.observations);
    let states: Vec<_> = list[0].deliveries.iter().map(|d| d.state).collect();
    assert_eq!(states, vec![DeliveryState::Sent, DeliveryState::Failed]);
    assert_eq!(
        list[0].deliveries[0].response.as_deref(),
        Some(&b"MSA|AA"[..])
    );
    assert_eq!(
        store
            .list_measurements(A, Some(&aid), 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list_measurements(A, Some("999"), 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.measurement_pdf(A, &ids.measurement_id).await.unwrap(),
        Some(pdf.clone())
    );
    // A file destination finds the PDF from the result message it delivers.
    let message_id = ids.message_id.unwrap();
    assert_eq!(store.pdf_for_message(message_id).await.unwrap(), Some(pdf));
    assert_eq!(
        store.pdf_for_message(message_id + 1000).await.unwrap(),
        None
    );

    // Resend requeues every delivery.
    let requeued = store
        .resend_measurement(A, &ids.measurement_id, T0 + 700)
        .await
        .unwrap();
    assert_eq!(requeued, ids.delivery_ids);
    for id in &requeued {
        let d = store.get_delivery(*id).await.unwrap().unwrap();
        assert_eq!(
            (d.state, d.attempts, d.next_attempt_at),
            (DeliveryState::Queued, 0, T0 + 700)
        );
    }

    // A measurement without outbound message or PDF.
    let aid2 = seed_appointment(
        &store,
        A,
        "m2",
        "ORD-2",
        "cardiology",
        "2025-03-15T13:00:00Z",
    )
    .await;
    let plain = store
        .record_measurement(measurement(A, &aid2, b""), None)
        .await
        .unwrap();
    assert_eq!((plain.message_id, plain.delivery_ids.len()), (None, 0));
    assert_eq!(
        store
            .measurement_pdf(A, &plain.measurement_id)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.resend_measurement(A, &plain.measurement_id, T0).await,
        Err(StoreError::NotFound)
    ));
    let newest_first: Vec<_> = store
        .list_measurements(A, None, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.measurement.id)
        .collect();
    assert_eq!(
        newest_first,
        vec![plain.measurement_id.clone(), ids.measurement_id.clone()]
    );
    assert_eq!(
        store.list_measurements(A, None, 1, 1).await.unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_measurement_writes_nothing() {
    let dir = temp();
    let store = open(&dir);
    let aid = seed_appointment(
        &store,
        A,
        "m1",
        "ORD-1",
        "cardiology",
        "2025-03-15T12:00:00Z",
    )
    .await;
    let messages_before = store.count_messages(A, None).await.unwrap();
    for bad in ["999", "not-a-number", ""] {
        let r = store
            .record_measurement(measurement(A, bad, b"%PDF"), Some(outbound(A, &["x/y"])))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }
    let r = store
        .record_measurement(measurement(A, &aid, b"%PDF"), Some(outbound(B, &["x/y"])))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(
        store.count_messages(A, None).await.unwrap(),
        messages_before
    );
    assert_eq!(store.count_messages(B, None).await.unwrap(), 0);
    assert_eq!(store.queue_depth("x/y").await.unwrap().pending, 0);
    assert!(
        store
            .list_measurements(A, None, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let (a, _) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    assert_eq!(a.status, AppointmentStatus::Scheduled);
}

/// A second organisation can neither read nor change anything of the first,
/// even knowing every id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_never_see_each_others_worklist_data() {
    let dir = temp();
    let store = open(&dir);
    let aid = seed_appointment(
        &store,
        A,
        "m1",
        "ORD-1",
        "cardiology",
        "2025-03-15T12:00:00Z",
    )
    .await;
    let (a, p) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    let device = store
        .create_device(A, "tablet", "cardiology", "dev-hash")
        .await
        .unwrap();
    let token = store
        .create_api_token(A, "admin", "ops", "adm-hash")
        .await
        .unwrap();
    let ids = store
        .record_measurement(
            measurement(A, &aid, b"%PDF-a"),
            Some(outbound(A, &["nextgen-out/ehr"])),
        )
        .await
        .unwrap();
    let mid = ids.measurement_id.clone();
    let k = key(Some("ORD-1"), None);

    // Reads in B find nothing.
    assert_eq!(store.get_patient(B, &p.id).await.unwrap(), None);
    assert!(store.list_patients(B, 100, 0).await.unwrap().is_empty());
    assert_eq!(store.get_appointment(B, &aid).await.unwrap(), None);
    assert_eq!(store.find_appointment(B, &k).await.unwrap(), None);
    assert!(
        store
            .worklist(B, "cardiology", 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_appointments(AppointmentQuery::new(B))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_groups(B).await.unwrap().is_empty());
    assert!(store.list_devices(B).await.unwrap().is_empty());
    assert_eq!(store.get_device(B, &device.id).await.unwrap(), None);
    assert!(store.list_api_tokens(B).await.unwrap().is_empty());
    assert_eq!(store.get_measurement(B, &mid).await.unwrap(), None);
    assert!(
        store
            .list_measurements(B, None, 100, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_measurements(B, Some(&aid), 100, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.measurement_pdf(B, &mid).await.unwrap(), None);
    let oru = ids.message_id.unwrap();
    assert_eq!(store.get_message(B, oru).await.unwrap(), None);

    // Writes in B are refused.
    let refusals = [
        store.delete_appointment(B, &aid).await,
        store.rename_group(B, "cardiology", "x").await,
        store.delete_group(B, "cardiology").await,
        store.rename_device(B, &device.id, "stolen").await,
        store.move_device(B, &device.id, "x").await,
        store.delete_device(B, &device.id).await,
        store.rotate_device_token(B, &device.id, "new").await,
        store.delete_api_token(B, &token.id).await,
        store.resend_measurement(B, &mid, T0).await.map(|_| ()),
        store
            .record_measurement(measurement(B, &aid, b""), None)
            .await
            .map(|_| ()),
    ];
    for r in refusals {
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    }

    // Messages of B with worklist actions never touch A's rows: the same MRN
    // and the same order number make a new patient and appointment in B; B's
    // update and cancel of A's order find nothing.
    let (_, e) = apply(
        &store,
        msg(
            B,
            "b1",
            T0,
            vec![
                WorklistAction::UpdateAppointment {
                    key: k.clone(),
                    patient: patient("MRN-1", "HACKED"),
                    appointment: appointment("ORD-1", "cardiology", "2030-01-01T00:00:00Z"),
                },
                WorklistAction::CancelAppointment {
                    key: k.clone(),
                    reason: None,
                },
                WorklistAction::UpsertPatient {
                    patient: patient("MRN-1", "HACKED"),
                },
                create(
                    patient("MRN-1", "HACKED"),
                    appointment("ORD-1", "cardiology", "2030-01-01T00:00:00Z"),
                ),
            ],
        ),
    )
    .await;
    assert!(e[0].not_found && e[1].not_found);
    assert_ne!(e[2].patient_id.as_deref(), Some(p.id.as_str()));
    assert_ne!(e[3].appointment_id.as_deref(), Some(aid.as_str()));
    // B's group of the same name is B's own.
    store
        .rename_group(B, "cardiology", "b-cardio")
        .await
        .unwrap();
    assert_eq!(store.worklist(B, "b-cardio", 1000).await.unwrap().len(), 1);

    // A is unchanged.
    let (a2, p2) = store.get_appointment(A, &aid).await.unwrap().unwrap();
    let completed = Appointment {
        status: AppointmentStatus::Completed,
        ..a
    };
    assert_eq!((a2, p2), (completed, p));
    assert_eq!(store.get_device(A, &device.id).await.unwrap(), Some(device));
    assert_eq!(store.list_api_tokens(A).await.unwrap(), vec![token]);
    assert!(store.get_measurement(A, &mid).await.unwrap().is_some());
    assert_eq!(
        store.list_groups(A).await.unwrap()[0].name,
        "cardiology".to_string()
    );
}

/// A database written by a build that knew only migration 0001 opens with this
/// one: messages and deliveries survive (with direction `in`), the new tables work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0001_database_migrates_with_its_data() {
    let dir = temp();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(include_str!(
            "../migrations/0001_init.sql"
        ))])
        .to_latest(&mut conn)
        .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        for i in 1..=3_i64 {
            conn.execute(
                "INSERT INTO messages (id, org, channel, received_at, control_id, status, ack, raw) \
                 VALUES (?1, 'default', 'adt-in', ?2, ?3, 'accepted', X'4D5341', ?4)",
                rusqlite::params![i, T0 + i, format!("C{i}"), vec![b'x'; 5000]],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO deliveries (message_id, org, destination, state, next_attempt_at, \
                 created_at, updated_at, payload) VALUES (?1, 'default', 'adt-in/pacs', 'queued', \
                 0, ?2, ?2, X'01')",
                rusqlite::params![i, T0 + i],
            )
            .unwrap();
        }
    }

    let store = Store::open_sqlite(&path, SqliteOptions::default()).unwrap();
    let m = store.get_message(DEFAULT_ORG, 2).await.unwrap().unwrap();
    assert_eq!(m.direction, Direction::In);
    assert_eq!(m.control_id.as_deref(), Some("C2"));
    assert_eq!(m.raw.len(), 5000);
    assert_eq!(store.queue_depth("adt-in/pacs").await.unwrap().pending, 3);
    assert_eq!(
        store.deliveries_for_message(3).await.unwrap()[0].message_id,
        3
    );
    // Dedup still finds the old messages through the rebuilt index.
    let dup = store
        .record_inbound(InboundRecord {
            channel: "adt-in".into(),
            received_at: T0 + 10,
            control_id: Some("C1".into()),
            dedup_window: Some(60_000),
            ack: Some(b"x".to_vec()),
            ..InboundRecord::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        dup,
        InboundOutcome::Duplicate { original_id: 1, .. }
    ));
    // New ids continue after the old ones; the new tables work.
    let (id, _) = apply(
        &store,
        msg(
            DEFAULT_ORG,
            "new",
            T0 + 20,
            vec![create(
                patient("MRN-1", "GARCIA"),
                appointment("ORD-1", "default", "2025-03-15T12:00:00Z"),
            )],
        ),
    )
    .await;
    assert_eq!(id, 4);
    assert_eq!(
        store
            .worklist(DEFAULT_ORG, "default", 1000)
            .await
            .unwrap()
            .len(),
        1
    );
    // Foreign keys are on again after migrating: retention still cascades.
    for d in store.deliveries_for_message(1).await.unwrap() {
        store.delivery_sent(d.id, T0, None).await.unwrap();
    }
    assert_eq!(store.prune(T0 + 2, 10).await.unwrap(), 1);
    assert!(store.deliveries_for_message(1).await.unwrap().is_empty());
    assert_eq!(store.queue_depth("adt-in/pacs").await.unwrap().pending, 2);
    store.close().await.unwrap();

    // Reopening does not migrate again.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9);
    let fk_violations: i64 = conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_violations, 0);
    drop(conn);
    let store = Store::open_sqlite(&path, SqliteOptions::default()).unwrap();
    assert_eq!(store.count_messages(DEFAULT_ORG, None).await.unwrap(), 3);
    store.close().await.unwrap();
}

/// Retention of an outbound message keeps its measurement (message_id → NULL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_of_the_outbound_message_keeps_the_measurement() {
    let dir = temp();
    let store = open(&dir);
    let aid = seed_appointment(&store, A, "m1", "ORD-1", "g", "2025-03-15T12:00:00Z").await;
    let ids = store
        .record_measurement(measurement(A, &aid, b"%PDF"), Some(outbound(A, &["o/e"])))
        .await
        .unwrap();
    store
        .delivery_sent(ids.delivery_ids[0], T0, None)
        .await
        .unwrap();
    assert_eq!(store.prune(T0 + 1_000, 10).await.unwrap(), 2);
    let m = store
        .get_measurement(A, &ids.measurement_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m.message_id, m.deliveries.len()), (None, 0));
    assert_eq!(m.measurement.report_pdf, b"%PDF");
    assert!(store.get_appointment(A, &aid).await.unwrap().is_some());
}

/// The worklist queries use the indexes designed for them.
#[test]
fn worklist_query_plans_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let plan = |sql: &str| query_plan(&conn, sql);
    // The store names the index (without statistics the planner may rate
    // appointments_org_time equal to it); INDEXED BY fails if it cannot be used.
    let worklist = plan(
        "SELECT a.id FROM appointments a INDEXED BY appointments_worklist \
         JOIN patients p ON p.id = a.patient_id \
         WHERE a.org = 'o' AND a.grp = 'g' AND a.status = 'scheduled' AND a.deleted_at IS NULL \
         ORDER BY a.scheduled_at, a.id",
    );
    assert!(worklist.contains("appointments_worklist"), "{worklist}");
    assert!(!worklist.contains("TEMP B-TREE"), "{worklist}");
    // Open appointments per group are counted from the index alone.
    let open_count = plan(
        "SELECT COUNT(*) FROM appointments a INDEXED BY appointments_worklist \
         WHERE a.org = 'o' AND a.grp = 'g' AND a.status = 'scheduled' AND a.deleted_at IS NULL",
    );
    assert!(
        open_count.contains("COVERING INDEX appointments_worklist"),
        "{open_count}"
    );
    // A group rename finds every row of the group (any status) by its prefix.
    let rename = plan(
        "UPDATE appointments INDEXED BY appointments_worklist SET grp = 'h' \
         WHERE org = 'o' AND grp = 'g'",
    );
    assert!(
        rename.contains("appointments_worklist (org=? AND grp=?)"),
        "{rename}"
    );
    // Appointments have exactly the indexes the queries use (each one costs
    // every order's insert).
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'appointments' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "appointments_filler",
            "appointments_org_time",
            "appointments_patient",
            "appointments_placer",
            "appointments_worklist"
        ]
    );
    let outbound = plan(
        "SELECT id FROM messages WHERE org = 'o' AND direction = 'out' ORDER BY id DESC LIMIT 5",
    );
    assert!(outbound.contains("messages_outbound"), "{outbound}");
    assert!(!outbound.contains("TEMP B-TREE"), "{outbound}");
    let ident = plan(
        "SELECT patient_id FROM patient_identifiers WHERE org = 'o' AND system = '' AND value = 'v'",
    );
    assert!(ident.contains("PRIMARY KEY"), "{ident}");
    let by_appointment =
        plan("SELECT id FROM measurements WHERE org = 'o' AND appointment_id = 1 ORDER BY id DESC");
    assert!(
        by_appointment.contains("measurements_appointment"),
        "{by_appointment}"
    );
    let device = plan("SELECT id FROM devices WHERE token_hash = 'h'");
    assert!(device.contains("INDEX"), "{device}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_messages_are_stored_and_filtered_by_direction() {
    for d in Direction::ALL {
        assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
    }
    assert!("OUT".parse::<Direction>().is_err());
    let dir = temp();
    let store = open(&dir);
    let (inbound, _) = apply(&store, msg(A, "in-1", T0, Vec::new())).await;
    let (out, _) = apply(
        &store,
        InboundRecord {
            direction: Direction::Out,
            message_type: Some("ORU^R01".into()),
            ..msg(A, "out-1", T0 + 1, Vec::new())
        },
    )
    .await;
    let ids = |q: MessageQuery| {
        let store = store.clone();
        async move {
            store
                .find_messages(q)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.id, m.direction))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids(MessageQuery::new(A)).await,
        vec![(out, Direction::Out), (inbound, Direction::In)]
    );
    let only = |d| MessageQuery {
        direction: Some(d),
        ..MessageQuery::new(A)
    };
    assert_eq!(ids(only(Direction::Out)).await, vec![(out, Direction::Out)]);
    assert_eq!(
        ids(only(Direction::In)).await,
        vec![(inbound, Direction::In)]
    );
    let with_channel = MessageQuery {
        channel: Some("nextgen-in".into()),
        ..only(Direction::Out)
    };
    assert_eq!(ids(with_channel).await, vec![(out, Direction::Out)]);
    assert!(ids(only(Direction::Out).clone_for(B)).await.is_empty());
}

trait ForOrg {
    fn clone_for(&self, org: &str) -> Self;
}

impl ForOrg for MessageQuery {
    fn clone_for(&self, org: &str) -> Self {
        MessageQuery {
            org: org.into(),
            ..self.clone()
        }
    }
}
