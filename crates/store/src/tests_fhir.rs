//! Tests of the FHIR R4 part of the store (versions, history, searches, FHIR
//! writes), against real SQLite files.

use medrelay_worklist::{
    Appointment, AppointmentStatus, Coded, Measurement, Observation, Order, Patient, WorklistAction,
};

use crate::tests::{migrated_connection, query_plan, temp};
use crate::tests_worklist::{ident, open, patient};
use crate::*;

const A: &str = "clinic-a";
const B: &str = "clinic-b";
const T0: Millis = 1_700_000_000_000;

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
        ..Appointment::default()
    }
}

fn create(p: Patient, a: Appointment) -> WorklistAction {
    WorklistAction::CreateAppointment {
        patient: p,
        appointment: a,
    }
}

fn msg(org: &str, control_id: &str, worklist: Vec<WorklistAction>) -> InboundRecord {
    InboundRecord {
        org: org.into(),
        channel: "nextgen-in".into(),
        received_at: T0,
        control_id: Some(control_id.into()),
        message_type: Some("ORM^O01".into()),
        status: MessageStatus::Accepted,
        raw: format!("MSH|^~\\&|EHR||||||ORM^O01|{control_id}|P|2.5\r").into_bytes(),
        worklist,
        ..InboundRecord::default()
    }
}

/// Records one order and returns (patient id, appointment id).
async fn order(
    store: &Store,
    org: &str,
    control_id: &str,
    p: Patient,
    a: Appointment,
) -> (String, String) {
    match store
        .record_inbound(msg(org, control_id, vec![create(p, a)]))
        .await
        .expect("record_inbound")
    {
        InboundOutcome::Stored { worklist, .. } => (
            worklist[0].patient_id.clone().expect("patient id"),
            worklist[0].appointment_id.clone().expect("appointment id"),
        ),
        other => panic!("expected Stored, got {other:?}"),
    }
}

fn date(op: DateOp, lo: &str, hi: &str) -> DateFilter {
    DateFilter {
        op,
        lo: lo.into(),
        hi: hi.into(),
    }
}

fn token(systems: Option<&[&str]>, value: &str) -> TokenFilter {
    TokenFilter {
        systems: systems.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
        value: value.into(),
    }
}

fn strings(groups: &[&[&str]]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
        .collect()
}

/// String parameter values with the default match ("starts with").
fn names(groups: &[&[&str]]) -> Vec<Vec<StringFilter>> {
    groups
        .iter()
        .map(|g| g.iter().map(|s| StringFilter::from(*s)).collect())
        .collect()
}

fn asc(key: SortKey) -> Sort {
    Sort {
        key,
        descending: false,
    }
}

fn desc(key: SortKey) -> Sort {
    Sort {
        key,
        descending: true,
    }
}

/// The family names of a patient search's page, in order, and the total.
async fn families(store: &Store, q: PatientSearch) -> (Vec<String>, u64) {
    let (rows, total) = store.search_patients(q).await.expect("search_patients");
    (
        rows.into_iter()
            .map(|v| v.value.family.unwrap_or_default())
            .collect(),
        total,
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------- versions

#[tokio::test]
async fn hl7_upserts_bump_the_patient_version_only_when_it_changes() {
    let dir = temp();
    let store = open(&dir);
    let (pid, aid) = order(
        &store,
        A,
        "M1",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    let v1 = store.get_patient_versioned(A, &pid).await.unwrap().unwrap();
    assert_eq!(
        (v1.version, v1.value.family.as_deref()),
        (1, Some("GARCIA"))
    );
    assert_eq!(v1.deleted_at, None);

    // The same order again (new control id): same patient, same version.
    order(
        &store,
        A,
        "M2",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    assert_eq!(
        store
            .get_patient_versioned(A, &pid)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );

    // A changed name makes version 2; the old one goes to the history.
    order(
        &store,
        A,
        "M3",
        patient("MRN-1", "GARCIA LOPEZ"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    let v2 = store.get_patient_versioned(A, &pid).await.unwrap().unwrap();
    assert_eq!(
        (v2.version, v2.value.family.as_deref()),
        (2, Some("GARCIA LOPEZ"))
    );
    assert!(v2.updated_at >= v1.updated_at);

    let old = store.patient_version(A, &pid, 1).await.unwrap().unwrap();
    assert_eq!(old, v1, "vread of the superseded version");
    assert_eq!(
        store.patient_version(A, &pid, 2).await.unwrap().unwrap(),
        v2
    );
    assert_eq!(store.patient_version(A, &pid, 3).await.unwrap(), None);
    assert_eq!(store.patient_version(B, &pid, 1).await.unwrap(), None);
    assert_eq!(store.patient_version(A, "x", 1).await.unwrap(), None);

    let (all, total) = store.patient_history(A, &pid, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(all, vec![v2.clone(), v1.clone()], "newest first");
    let (page, total) = store.patient_history(A, &pid, 1, 1).await.unwrap();
    assert_eq!((page, total), (vec![v1.clone()], 2));
    assert_eq!(
        store.patient_history(B, &pid, 10, 0).await.unwrap(),
        (vec![], 0)
    );
    assert_eq!(
        store.patient_history(A, "999", 10, 0).await.unwrap(),
        (vec![], 0)
    );

    // The appointment: created at 1, each HL7 update is one more version.
    let (a, _) = store
        .get_appointment_versioned(A, &aid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.version, 3, "created, then updated twice");
}

#[tokio::test]
async fn every_appointment_write_bumps_its_version_once() {
    let (_dir, conn) = migrated_connection();
    let recursive: i64 = conn
        .query_row("PRAGMA recursive_triggers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recursive, 0, "SQLite's default");
    drop(conn);

    let dir = temp();
    let store = open(&dir);
    let (_, aid) = order(
        &store,
        A,
        "M1",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    let version = |store: Store, aid: String| async move {
        store
            .get_appointment_versioned(A, &aid)
            .await
            .unwrap()
            .unwrap()
            .0
            .version
    };
    assert_eq!(version(store.clone(), aid.clone()).await, 1);
    store.rename_group(A, "ecg", "cardio").await.unwrap();
    assert_eq!(version(store.clone(), aid.clone()).await, 2);
    store
        .record_measurement(
            Measurement {
                org: A.into(),
                appointment_id: aid.clone(),
                kind: "ECG".into(),
                performed_at: "2025-03-15T09:10:00".into(),
                ..Measurement::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(version(store.clone(), aid.clone()).await, 3);
    store.delete_appointment(A, &aid).await.unwrap();
    let (deleted, patient) = store
        .get_appointment_versioned(A, &aid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.version, 4);
    assert!(deleted.deleted_at.is_some());
    assert_eq!(deleted.value.status, AppointmentStatus::Completed);
    assert_eq!(patient.family.as_deref(), Some("GARCIA"));

    // Even with recursive triggers on, the WHEN clauses stop the recursion.
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("medrelay.db")).unwrap();
    conn.pragma_update(None, "recursive_triggers", "ON")
        .unwrap();
    conn.execute("UPDATE appointments SET grp = 'x'", [])
        .unwrap();
    let v: i64 = conn
        .query_row("SELECT version FROM appointments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 5);
    conn.execute("UPDATE patients SET json = '{\"family\":\"X\"}'", [])
        .unwrap();
    let (v, history): (i64, i64) = conn
        .query_row(
            "SELECT version, (SELECT COUNT(*) FROM patient_history) FROM patients",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((v, history), (2, 1));
    // The same text again is no new version.
    conn.execute("UPDATE patients SET json = '{\"family\":\"X\"}'", [])
        .unwrap();
    let v: i64 = conn
        .query_row("SELECT version FROM patients", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

// ---------------------------------------------------------------- FHIR writes

#[tokio::test]
async fn create_patient_owns_its_identifiers_and_refuses_taken_ones() {
    let dir = temp();
    let store = open(&dir);
    let created = store
        .create_patient(
            A,
            Patient {
                id: "12345".into(),
                identifiers: vec![
                    ident("1", Some("HIS")),
                    ident("1", Some("HIS")),
                    ident("", None),
                ],
                family: Some("GARCIA".into()),
                ..Patient::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(created.value.id, "12345", "the given id is ignored");
    assert_eq!(created.version, 1);
    assert_eq!(created.value.identifiers, vec![ident("1", Some("HIS"))]);
    assert_eq!(
        store
            .get_patient_versioned(A, &created.value.id)
            .await
            .unwrap()
            .unwrap(),
        created
    );

    let taken = store.create_patient(A, patient("1", "OTHER")).await;
    match taken {
        Err(StoreError::Conflict(m)) => assert!(m.contains("HIS|1"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Another organisation has its own identifiers.
    store
        .create_patient(B, patient("1", "OTHER"))
        .await
        .unwrap();

    // An HL7 order with the identifier finds the FHIR-created patient.
    let (pid, _) = order(
        &store,
        A,
        "M1",
        patient("1", "GARCIA"),
        appointment("P1", "ecg", "2025"),
    )
    .await;
    assert_eq!(pid, created.value.id);

    let too_many = Patient {
        identifiers: (0..65).map(|i| ident(&format!("X{i}"), None)).collect(),
        ..Patient::default()
    };
    assert!(matches!(
        store.create_patient(A, too_many).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn update_patient_replaces_checks_if_match_and_moves_identifiers() {
    let dir = temp();
    let store = open(&dir);
    let p = store
        .create_patient(
            A,
            Patient {
                identifiers: vec![ident("1", Some("HIS")), ident("2", None)],
                family: Some("GARCIA".into()),
                given: vec!["ANA".into()],
                ..Patient::default()
            },
        )
        .await
        .unwrap();
    let other = store
        .create_patient(A, patient("9", "OTHER"))
        .await
        .unwrap();
    let id = p.value.id.clone();

    // Full replace: `given` is gone, identifier 2 dropped, 3 added.
    let replacement = Patient {
        identifiers: vec![ident("1", Some("HIS")), ident("3", None)],
        family: Some("GARCIA LOPEZ".into()),
        ..Patient::default()
    };
    let v2 = store
        .update_patient(A, &id, replacement.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.value.given, Vec::<String>::new());
    assert_eq!(v2.value.family.as_deref(), Some("GARCIA LOPEZ"));
    assert_eq!(store.patient_version(A, &id, 1).await.unwrap().unwrap(), p);

    let by_ident = |value: &str| {
        let mut q = PatientSearch::new(A);
        q.identifier = vec![vec![token(None, value)]];
        q
    };
    assert_eq!(families(&store, by_ident("2")).await.1, 0, "dropped");
    assert_eq!(
        families(&store, by_ident("3")).await.0,
        vec!["GARCIA LOPEZ"]
    );
    // The dropped identifier is free again.
    store
        .create_patient(
            A,
            Patient {
                identifiers: vec![ident("2", None)],
                ..Patient::default()
            },
        )
        .await
        .unwrap();

    // A stale If-Match: nothing written.
    match store
        .update_patient(A, &id, patient("1", "STALE"), Some(1))
        .await
    {
        Err(StoreError::VersionConflict { current }) => assert_eq!(current, 2),
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    assert_eq!(
        StoreError::VersionConflict { current: 3 }.to_string(),
        "version conflict: the current version is 3"
    );
    // Taking another patient's identifier.
    let mut stealing = replacement.clone();
    stealing.identifiers.push(ident("9", Some("HIS")));
    assert!(matches!(
        store.update_patient(A, &id, stealing, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_patient_versioned(A, &id).await.unwrap().unwrap(),
        v2
    );
    assert_eq!(
        store
            .get_patient_versioned(A, &other.value.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    // Identical content: no new version.
    let same = store
        .update_patient(A, &id, replacement, Some(2))
        .await
        .unwrap();
    assert_eq!(same, v2);
    for (org, id) in [(B, id.as_str()), (A, "999"), (A, "abc")] {
        assert!(matches!(
            store.update_patient(org, id, patient("7", "X"), None).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test]
async fn an_order_naming_a_patient_id_attaches_to_that_patient() {
    let dir = temp();
    let store = open(&dir);
    let bare = store
        .create_patient(
            A,
            Patient {
                family: Some("NOIDENT".into()),
                ..Patient::default()
            },
        )
        .await
        .unwrap();
    let with_mrn = store
        .create_patient(A, patient("MRN-1", "MRN"))
        .await
        .unwrap();
    // The id wins over an identifier that names another patient.
    let incoming = Patient {
        id: bare.value.id.clone(),
        identifiers: vec![ident("MRN-1", Some("HIS"))],
        given: vec!["ANA".into()],
        ..Patient::default()
    };
    let (pid, _) = order(&store, A, "M1", incoming, appointment("P1", "ecg", "2025")).await;
    assert_eq!(pid, bare.value.id);
    let merged = store.get_patient_versioned(A, &pid).await.unwrap().unwrap();
    assert_eq!(merged.value.family.as_deref(), Some("NOIDENT"));
    assert_eq!(merged.value.given, vec!["ANA"]);
    assert_eq!(merged.version, 2);
    // MRN-1 stays with its owner.
    let mut q = PatientSearch::new(A);
    q.identifier = vec![vec![token(Some(&["HIS"]), "MRN-1")]];
    let (rows, _) = store.search_patients(q).await.unwrap();
    assert_eq!(rows[0].value.id, with_mrn.value.id);

    // An id of another organisation names nobody there: a new patient.
    let foreign = Patient {
        id: bare.value.id.clone(),
        family: Some("FOREIGN".into()),
        ..Patient::default()
    };
    let (pid_b, _) = order(&store, B, "M2", foreign, appointment("P2", "ecg", "2025")).await;
    assert_ne!(pid_b, bare.value.id);
}

#[tokio::test]
async fn update_appointment_fhir_merges_sets_and_versions() {
    let dir = temp();
    let store = open(&dir);
    let (pid, aid) = order(
        &store,
        A,
        "M1",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    let other = store
        .create_patient(A, patient("MRN-2", "OTHER"))
        .await
        .unwrap();
    let foreign = store
        .create_patient(B, patient("MRN-3", "FOREIGN"))
        .await
        .unwrap();

    let update = Appointment {
        status: AppointmentStatus::Cancelled,
        scheduled_at: Some("2025-04-01T10:00:00".into()),
        order: Order {
            priority: Some("S".into()),
            ..Order::default()
        },
        ..Appointment::default()
    };
    let v2 = store
        .update_appointment_fhir(A, &aid, &other.value.id, update.clone(), Some(1))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.value.status, AppointmentStatus::Cancelled);
    assert_eq!(
        v2.value.scheduled_at.as_deref(),
        Some("2025-04-01T10:00:00")
    );
    assert_eq!(v2.value.patient_id, other.value.id);
    assert_eq!(v2.value.group, "ecg", "no group given: kept");
    assert_eq!(v2.value.order.priority.as_deref(), Some("S"));
    assert_eq!(
        v2.value.order.placer_order.as_deref(),
        Some("P1"),
        "merged, not replaced"
    );
    assert_eq!(
        v2.value.order.procedure.as_ref().map(|c| c.code.as_str()),
        Some("ECG")
    );
    let (read, patient) = store
        .get_appointment_versioned(A, &aid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, v2);
    assert_eq!(patient.id, other.value.id);
    // Cancelled: off the worklist, still findable by its key.
    assert!(store.worklist(A, "ecg", 10).await.unwrap().is_empty());

    match store
        .update_appointment_fhir(A, &aid, &pid, update.clone(), Some(1))
        .await
    {
        Err(StoreError::VersionConflict { current }) => assert_eq!(current, 2),
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    for patient_id in ["999", "x", foreign.value.id.as_str()] {
        assert!(matches!(
            store
                .update_appointment_fhir(A, &aid, patient_id, update.clone(), None)
                .await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(matches!(
        store
            .update_appointment_fhir(B, &aid, &foreign.value.id, update.clone(), None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .get_appointment_versioned(A, &aid)
            .await
            .unwrap()
            .unwrap()
            .0,
        v2
    );

    // Back to scheduled, in another group.
    let reopened = store
        .update_appointment_fhir(
            A,
            &aid,
            &pid,
            Appointment {
                status: AppointmentStatus::Scheduled,
                group: "cardio".into(),
                ..Appointment::default()
            },
            Some(2),
        )
        .await
        .unwrap();
    assert_eq!(reopened.version, 3);
    assert_eq!(reopened.value.scheduled_at, None, "set from the update");
    assert_eq!(store.worklist(A, "cardio", 10).await.unwrap().len(), 1);

    store.delete_appointment(A, &aid).await.unwrap();
    assert!(matches!(
        store
            .update_appointment_fhir(A, &aid, &pid, update, None)
            .await,
        Err(StoreError::NotFound)
    ));
}

// ---------------------------------------------------------------- patient search

struct Seed {
    mrn: &'static str,
    system: Option<&'static str>,
    family: &'static str,
    given: &'static [&'static str],
    birth: Option<&'static str>,
    sex: &'static str,
}

const SEEDS: &[Seed] = &[
    Seed {
        mrn: "1",
        system: Some("HIS"),
        family: "GARCIA",
        given: &["ANA", "MARIA"],
        birth: Some("2000-04-30"),
        sex: "female",
    },
    Seed {
        mrn: "2",
        system: Some("HIS"),
        family: "GARZA",
        given: &["PEDRO"],
        birth: Some("2000-05-01"),
        sex: "male",
    },
    Seed {
        mrn: "3",
        system: Some("LAB"),
        family: "LOPEZ",
        given: &["JUAN", "GARY"],
        birth: Some("2000-05-31"),
        sex: "male",
    },
    Seed {
        mrn: "4",
        system: None,
        family: "PCT%ONE",
        given: &["X"],
        birth: Some("2000-06-01"),
        sex: "other",
    },
    Seed {
        mrn: "5",
        system: None,
        family: "PCTXONE",
        given: &["Y"],
        birth: None,
        sex: "unknown",
    },
    Seed {
        mrn: "6",
        system: Some("HIS"),
        family: "UND_ONE",
        given: &[],
        birth: None,
        sex: "female",
    },
    Seed {
        mrn: "7",
        system: Some("HIS"),
        family: "UNDXONE",
        given: &[],
        birth: None,
        sex: "female",
    },
    Seed {
        mrn: "8",
        system: Some("HIS"),
        family: "BACK\\SLASH",
        given: &[],
        birth: None,
        sex: "male",
    },
    Seed {
        mrn: "9",
        system: Some("HIS"),
        family: "BACKXSLASH",
        given: &[],
        birth: None,
        sex: "male",
    },
];

async fn seed_patients(store: &Store) -> Vec<String> {
    let mut ids = Vec::new();
    for s in SEEDS {
        let p = Patient {
            identifiers: vec![ident(s.mrn, s.system)],
            family: Some(s.family.into()),
            given: s.given.iter().map(|g| (*g).to_owned()).collect(),
            birth_date: s.birth.map(Into::into),
            sex: Some(s.sex.into()),
            prefix: (s.mrn == "3").then(|| "DR".into()),
            suffix: (s.mrn == "2").then(|| "JR".into()),
            ..Patient::default()
        };
        ids.push(store.create_patient(A, p).await.unwrap().value.id);
    }
    // The same names in another organisation must never show up.
    for s in SEEDS {
        store
            .create_patient(
                B,
                Patient {
                    family: Some(s.family.into()),
                    ..Patient::default()
                },
            )
            .await
            .unwrap();
    }
    ids
}

#[tokio::test]
async fn patient_search_by_name_gender_and_ids() {
    let dir = temp();
    let store = open(&dir);
    let ids = seed_patients(&store).await;
    let q = || PatientSearch::new(A);

    let (all, total) = families(&store, q()).await;
    assert_eq!((all.len(), total), (9, 9), "org isolation");

    let by = |field: &str, groups: &[&[&str]]| {
        let mut s = q();
        match field {
            "family" => s.family = names(groups),
            "given" => s.given = names(groups),
            "name" => s.name = names(groups),
            "gender" => s.gender = strings(groups),
            _ => unreachable!(),
        }
        s
    };
    // Prefix, case-insensitive.
    assert_eq!(
        sorted(families(&store, by("family", &[&["gar"]])).await.0),
        ["GARCIA", "GARZA"]
    );
    assert_eq!(
        families(&store, by("family", &[&["arc"]])).await.0,
        Vec::<String>::new()
    );
    // OR within, AND across.
    assert_eq!(
        sorted(families(&store, by("family", &[&["garc", "lop"]])).await.0),
        ["GARCIA", "LOPEZ"]
    );
    assert_eq!(
        families(&store, by("family", &[&["garc"], &["lop"]]))
            .await
            .1,
        0
    );
    assert_eq!(
        families(&store, by("family", &[&["gar"], &["garz"]]))
            .await
            .0,
        ["GARZA"]
    );
    assert_eq!(
        families(&store, by("family", &[&[]])).await.1,
        0,
        "OR of nothing"
    );
    // Any given name.
    assert_eq!(
        families(&store, by("given", &[&["mar"]])).await.0,
        ["GARCIA"]
    );
    assert_eq!(
        families(&store, by("given", &[&["gary"]])).await.0,
        ["LOPEZ"]
    );
    // name: family, given, prefix or suffix.
    assert_eq!(
        sorted(families(&store, by("name", &[&["gar"]])).await.0),
        ["GARCIA", "GARZA", "LOPEZ"]
    );
    // Not prefix or suffix (FHIR leaves `name` to the server).
    assert_eq!(families(&store, by("name", &[&["dr"]])).await.1, 0);
    assert_eq!(families(&store, by("name", &[&["jr"]])).await.1, 0);
    assert_eq!(
        families(&store, by("name", &[&["juan"], &["lop"]])).await.0,
        ["LOPEZ"]
    );
    // LIKE metacharacters are literal.
    assert_eq!(
        families(&store, by("family", &[&["pct%"]])).await.0,
        ["PCT%ONE"]
    );
    assert_eq!(
        families(&store, by("family", &[&["und_"]])).await.0,
        ["UND_ONE"]
    );
    assert_eq!(
        families(&store, by("family", &[&["back\\"]])).await.0,
        ["BACK\\SLASH"]
    );
    assert_eq!(
        families(&store, by("name", &[&["pct%"]])).await.0,
        ["PCT%ONE"]
    );
    assert_eq!(families(&store, by("name", &[&["%"]])).await.1, 0);
    assert_eq!(families(&store, by("given", &[&["_"]])).await.1, 0);
    // Gender: lowercase compare.
    assert_eq!(families(&store, by("gender", &[&["MALE"]])).await.1, 4);
    assert_eq!(
        families(&store, by("gender", &[&["other", "unknown"]]))
            .await
            .1,
        2
    );
    assert_eq!(
        families(&store, by("gender", &[&["female"], &["male"]]))
            .await
            .1,
        0
    );
    let mut s = by("gender", &[&["female"]]);
    s.family = names(&[&["gar", "und"]]);
    assert_eq!(
        sorted(families(&store, s).await.0),
        ["GARCIA", "UNDXONE", "UND_ONE"]
    );

    // Ids: invalid ones match nothing.
    let mut s = q();
    s.ids = vec![ids[0].clone(), "007".into(), ids[2].clone()];
    assert_eq!(families(&store, s).await.0, ["GARCIA", "LOPEZ"]);
    let mut s = q();
    s.ids = vec!["abc".into()];
    assert_eq!(families(&store, s).await.1, 0);
    let mut s = PatientSearch::new(B);
    s.ids = vec![ids[0].clone()];
    assert_eq!(
        families(&store, s).await.1,
        0,
        "an id of another organisation"
    );
}

#[tokio::test]
async fn patient_search_by_identifier() {
    let dir = temp();
    let store = open(&dir);
    seed_patients(&store).await;
    let by = |groups: Vec<Vec<TokenFilter>>| {
        let mut s = PatientSearch::new(A);
        s.identifier = groups;
        s
    };
    assert_eq!(
        families(&store, by(vec![vec![token(None, "1")]])).await.0,
        ["GARCIA"]
    );
    assert_eq!(
        families(&store, by(vec![vec![token(Some(&["HIS"]), "1")]]))
            .await
            .0,
        ["GARCIA"]
    );
    assert_eq!(
        families(&store, by(vec![vec![token(Some(&["LAB"]), "1")]]))
            .await
            .1,
        0
    );
    assert_eq!(
        families(&store, by(vec![vec![token(Some(&["LAB", "HIS"]), "3")]]))
            .await
            .0,
        ["LOPEZ"]
    );
    // No system stored: the system `""`.
    assert_eq!(
        families(&store, by(vec![vec![token(Some(&[""]), "4")]]))
            .await
            .0,
        ["PCT%ONE"]
    );
    assert_eq!(
        families(&store, by(vec![vec![token(Some(&[""]), "1")]]))
            .await
            .1,
        0
    );
    // OR within, AND across.
    assert_eq!(
        sorted(
            families(&store, by(vec![vec![token(None, "1"), token(None, "2")]]))
                .await
                .0
        ),
        ["GARCIA", "GARZA"]
    );
    assert_eq!(
        families(
            &store,
            by(vec![vec![token(None, "1")], vec![token(None, "2")]])
        )
        .await
        .1,
        0
    );
    assert_eq!(
        families(&store, by(vec![vec![token(None, "%")]])).await.1,
        0,
        "no LIKE here"
    );
    let mut other = by(vec![vec![token(None, "1")]]);
    other.org = B.into();
    assert_eq!(families(&store, other).await.1, 0);
}

#[tokio::test]
async fn date_operators_at_the_boundaries() {
    let dir = temp();
    let store = open(&dir);
    seed_patients(&store).await;
    // The month 2000-05: [2000-05-01, 2000-06-01).
    let births = |op: DateOp| {
        let mut s = PatientSearch::new(A);
        s.birthdate = vec![vec![date(op, "2000-05-01", "2000-06-01")]];
        s.sort = vec![asc(SortKey::Date)];
        s
    };
    let expect: [(DateOp, &[&str]); 6] = [
        (DateOp::Eq, &["GARZA", "LOPEZ"]),
        // Not equal, but never the patients without a birth date.
        (DateOp::Ne, &["GARCIA", "PCT%ONE"]),
        (DateOp::Lt, &["GARCIA"]),
        (DateOp::Le, &["GARCIA", "GARZA", "LOPEZ"]),
        (DateOp::Gt, &["PCT%ONE"]),
        (DateOp::Ge, &["GARZA", "LOPEZ", "PCT%ONE"]),
    ];
    for (op, names) in expect {
        assert_eq!(families(&store, births(op)).await.0, names, "{op:?}");
    }
    // A day's range against full dates; AND of two ranges.
    let mut s = PatientSearch::new(A);
    s.birthdate = vec![
        vec![date(DateOp::Ge, "2000-05-01", "2000-05-02")],
        vec![date(DateOp::Lt, "2000-05-31", "2000-06-01")],
    ];
    assert_eq!(families(&store, s).await.0, ["GARZA"]);
    let mut s = PatientSearch::new(A);
    s.birthdate = vec![vec![
        date(DateOp::Eq, "2000-04-30", "2000-05-01"),
        date(DateOp::Eq, "2000-06-01", "2000-06-02"),
    ]];
    assert_eq!(families(&store, s).await.0, ["GARCIA", "PCT%ONE"]);
}

#[tokio::test]
async fn patient_search_sorts_and_pages() {
    let dir = temp();
    let store = open(&dir);
    let ids = seed_patients(&store).await;
    // NULL birth dates first ascending, last descending; ties by id.
    let mut s = PatientSearch::new(A);
    s.sort = vec![asc(SortKey::Date)];
    let (rows, _) = store.search_patients(s).await.unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r.value.id.as_str()).collect();
    let want: Vec<&str> = [4, 5, 6, 7, 8, 0, 1, 2, 3]
        .iter()
        .map(|&i| ids[i].as_str())
        .collect();
    assert_eq!(got, want);
    let mut s = PatientSearch::new(A);
    s.sort = vec![desc(SortKey::Date)];
    let (rows, _) = store.search_patients(s).await.unwrap();
    let got: Vec<&str> = rows.iter().map(|r| r.value.id.as_str()).collect();
    let want: Vec<&str> = [3, 2, 1, 0, 4, 5, 6, 7, 8]
        .iter()
        .map(|&i| ids[i].as_str())
        .collect();
    assert_eq!(got, want);
    let mut s = PatientSearch::new(A);
    s.sort = vec![desc(SortKey::Id)];
    s.limit = 2;
    s.offset = 1;
    let (rows, total) = store.search_patients(s).await.unwrap();
    assert_eq!(total, 9);
    assert_eq!(
        rows.iter().map(|r| r.value.id.clone()).collect::<Vec<_>>(),
        vec![ids[7].clone(), ids[6].clone()]
    );
    // limit 0: only the count (`_summary=count`).
    let mut s = PatientSearch::new(A);
    s.limit = 0;
    s.gender = strings(&[&["male"]]);
    assert_eq!(store.search_patients(s).await.unwrap(), (vec![], 4));
    // Past the end.
    let mut s = PatientSearch::new(A);
    s.offset = 100;
    assert_eq!(store.search_patients(s).await.unwrap(), (vec![], 9));
    // lastUpdated follows the updates.
    store
        .update_patient(
            A,
            &ids[0],
            Patient {
                family: Some("GARCIA".into()),
                ..Patient::default()
            },
            None,
        )
        .await
        .unwrap();
    let mut s = PatientSearch::new(A);
    s.sort = vec![desc(SortKey::LastUpdated), asc(SortKey::Id)];
    s.limit = 1;
    let (rows, _) = store.search_patients(s).await.unwrap();
    assert_eq!(rows[0].value.id, ids[0]);
    assert_eq!(rows[0].version, 2);
}

#[tokio::test]
async fn paging_250_patients_visits_each_exactly_once() {
    let dir = temp();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..250 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Five birth dates (one missing): many ties, broken by id.
            let birth = (i % 5 != 0).then(|| format!("1990-01-0{}", i % 5));
            let p = Patient {
                family: Some(format!("P{i:03}")),
                birth_date: birth,
                ..Patient::default()
            };
            store.create_patient(A, p).await.unwrap().value.id
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    for sort in [
        vec![],
        vec![asc(SortKey::Date)],
        vec![desc(SortKey::Date)],
        vec![desc(SortKey::LastUpdated)],
    ] {
        let mut seen = Vec::new();
        for page in 0..6 {
            let mut s = PatientSearch::new(A);
            s.sort = sort.clone();
            s.offset = page * 50;
            let (rows, total) = store.search_patients(s).await.unwrap();
            assert_eq!(total, 250);
            assert_eq!(rows.len(), if page < 5 { 50 } else { 0 });
            seen.extend(rows.into_iter().map(|r| r.value.id));
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 250, "{sort:?}: every patient once");
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(unique, expected);
    }
}

// ---------------------------------------------------------------- appointment search

#[tokio::test]
async fn appointment_search_filters_and_skips_deleted() {
    let dir = temp();
    let store = open(&dir);
    let mut a1 = appointment("P1", "ecg", "2025-03-15T09:00:00");
    a1.order.request_date = Some("2025-03-01T08:00:00".into());
    let mut a2 = appointment("P2", "ecg", "2025-03-16T09:00:00");
    a2.order.procedure = None;
    a2.order.procedure_code = Some(Coded {
        code: "SPIRO".into(),
        display: None,
        system: Some("LOCAL".into()),
    });
    a2.order.request_date = Some("2025-03-02T08:00:00".into());
    let a3 = appointment("P3", "lung", "2025-03-17T09:00:00");
    let (p1, id1) = order(&store, A, "M1", patient("MRN-1", "GARCIA"), a1).await;
    let (_, id2) = order(&store, A, "M2", patient("MRN-1", "GARCIA"), a2).await;
    let (p3, id3) = order(&store, A, "M3", patient("MRN-3", "LOPEZ"), a3).await;
    let (_, b1) = order(
        &store,
        B,
        "M4",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    store
        .record_inbound(msg(
            A,
            "M5",
            vec![WorklistAction::CancelAppointment {
                key: OrderKey {
                    integration: "nextgen".into(),
                    placer_order: Some("P3".into()),
                    filler_order: None,
                },
                reason: None,
            }],
        ))
        .await
        .unwrap();

    let ids_of = |rows: Vec<(Versioned<Appointment>, Patient)>| -> Vec<String> {
        rows.into_iter().map(|(a, _)| a.value.id).collect()
    };
    let search = |f: &dyn Fn(&mut AppointmentSearch)| {
        let mut q = AppointmentSearch::new(A);
        f(&mut q);
        let store = store.clone();
        async move {
            let (rows, total) = store.search_appointments(q).await.unwrap();
            let ids = ids_of(rows);
            assert_eq!(ids.len() as u64, total);
            ids
        }
    };
    assert_eq!(
        search(&|_| {}).await,
        [id1.clone(), id2.clone(), id3.clone()]
    );
    assert_eq!(
        search(&|q| q.ids = vec![id2.clone(), b1.clone(), "x".into()]).await,
        [id2.as_str()]
    );
    assert_eq!(
        search(&|q| q.ids = vec!["x".into()]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&|q| q.patient_ids = vec![p1.clone()]).await,
        [id1.clone(), id2.clone()]
    );
    assert_eq!(
        search(&|q| q.patient_ids = vec!["0x".into()]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&|q| q.groups = vec!["lung".into(), "x".into()]).await,
        [id3.as_str()]
    );
    assert_eq!(
        search(&|q| q.statuses = vec![AppointmentStatus::Cancelled]).await,
        [id3.as_str()]
    );
    assert_eq!(
        search(&|q| q.statuses = vec![AppointmentStatus::Scheduled, AppointmentStatus::Completed])
            .await,
        [id1.clone(), id2.clone()]
    );
    // scheduled_at holds date-times: a day's range matches them.
    assert_eq!(
        search(&|q| q.scheduled = vec![vec![date(DateOp::Eq, "2025-03-16", "2025-03-17")]]).await,
        [id2.as_str()]
    );
    assert_eq!(
        search(&|q| q.scheduled = vec![
            vec![date(DateOp::Ge, "2025-03-16", "2025-03-17")],
            vec![date(DateOp::Le, "2025-03-16", "2025-03-17")]
        ])
        .await,
        [id2.as_str()]
    );
    assert_eq!(
        search(&|q| q.authored = vec![vec![date(DateOp::Lt, "2025-03-02", "2025-03-03")]]).await,
        [id1.as_str()]
    );
    assert_eq!(
        search(&|q| q.authored = vec![vec![date(DateOp::Ne, "2025-03-02", "2025-03-03")]]).await,
        [id1.as_str()],
        "no request date never matches"
    );
    assert_eq!(
        search(&|q| q.order_number = vec![vec![token(None, "P2")]]).await,
        [id2.as_str()]
    );
    assert_eq!(
        search(
            &|q| q.order_number = vec![vec![token(Some(&["ignored"]), "F-P3"), token(None, "P1")]]
        )
        .await,
        [id1.clone(), id3.clone()]
    );
    assert_eq!(
        search(&|q| q.code = vec![vec![token(None, "ECG")]]).await,
        [id1.clone(), id3.clone()]
    );
    assert_eq!(
        search(&|q| q.code = vec![vec![token(Some(&["LOCAL"]), "SPIRO")]]).await,
        [id2.as_str()]
    );
    assert_eq!(
        search(&|q| q.code = vec![vec![token(Some(&["LN"]), "SPIRO")]]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&|q| q.code = vec![vec![token(Some(&[""]), "ECG")]]).await,
        [id1.clone(), id3.clone()]
    );
    assert_eq!(
        search(&|q| q.code = vec![vec![token(None, "ECG")], vec![token(None, "SPIRO")]]).await,
        Vec::<String>::new()
    );
    // Sorting: scheduled descending, authored ascending (NULL first).
    assert_eq!(
        search(&|q| q.sort = vec![desc(SortKey::Date)]).await,
        [id3.clone(), id2.clone(), id1.clone()]
    );
    assert_eq!(
        search(&|q| q.sort = vec![asc(SortKey::Authored)]).await,
        [id3.clone(), id1.clone(), id2.clone()]
    );
    // Paging and the total.
    let mut q = AppointmentSearch::new(A);
    q.limit = 1;
    q.offset = 1;
    let (rows, total) = store.search_appointments(q).await.unwrap();
    assert_eq!((ids_of(rows), total), (vec![id2.clone()], 3));

    // Soft-deleted: gone from search, still readable with deleted_at.
    store.delete_appointment(A, &id2).await.unwrap();
    assert_eq!(search(&|_| {}).await, [id1.clone(), id3.clone()]);
    assert_eq!(
        search(&|q| q.ids = vec![id2.clone()]).await,
        Vec::<String>::new()
    );
    let (gone, patient) = store
        .get_appointment_versioned(A, &id2)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.deleted_at.is_some());
    assert_eq!(patient.id, p1);
    assert_eq!(
        store.get_appointment_versioned(B, &id2).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_appointment(A, &id2).await.unwrap(),
        None,
        "unchanged elsewhere"
    );
    let _ = p3;
}

// ---------------------------------------------------------------- measurements

fn obs(code: &str, system: Option<&str>) -> Observation {
    Observation {
        code: code.into(),
        system: system.map(Into::into),
        value: serde_json::json!(1),
        ..Observation::default()
    }
}

#[tokio::test]
async fn measurement_search_filters() {
    let dir = temp();
    let store = open(&dir);
    let (p1, a1) = order(
        &store,
        A,
        "M1",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15"),
    )
    .await;
    let (p2, a2) = order(
        &store,
        A,
        "M2",
        patient("MRN-2", "LOPEZ"),
        appointment("P2", "ecg", "2025-03-16"),
    )
    .await;
    let (_, b1) = order(
        &store,
        B,
        "M3",
        patient("MRN-1", "GARCIA"),
        appointment("P1", "ecg", "2025-03-15"),
    )
    .await;
    let record = |org: &str, aid: &str, kind: &str, at: &str, o: Vec<Observation>| {
        let m = Measurement {
            org: org.into(),
            appointment_id: aid.into(),
            kind: kind.into(),
            performed_at: at.into(),
            observations: o,
            report_pdf: b"%PDF".to_vec(),
            ..Measurement::default()
        };
        let store = store.clone();
        async move {
            store
                .record_measurement(m, None)
                .await
                .unwrap()
                .measurement_id
        }
    };
    let m1 = record(
        A,
        &a1,
        "ECG",
        "2025-03-15T09:05:00",
        vec![obs("8867-4", Some("LN")), obs("QT", None)],
    )
    .await;
    let m2 = record(
        A,
        &a2,
        "spirometry",
        "2025-03-16T09:05:00",
        vec![obs("19868-9", Some("LN"))],
    )
    .await;
    let m3 = record(A, &a1, "ecg", "2025-03-17T09:05:00", vec![]).await;
    record(
        B,
        &b1,
        "ECG",
        "2025-03-15T09:05:00",
        vec![obs("8867-4", Some("LN"))],
    )
    .await;

    let search = |f: &dyn Fn(&mut MeasurementSearch)| {
        let mut q = MeasurementSearch::new(A);
        f(&mut q);
        let store = store.clone();
        async move {
            let (rows, total) = store.search_measurements(q).await.unwrap();
            assert_eq!(rows.len() as u64, total);
            rows.into_iter()
                .map(|(m, pid)| (m.measurement.id, pid))
                .collect::<Vec<_>>()
        }
    };
    let only_ids = |v: Vec<(String, String)>| v.into_iter().map(|(m, _)| m).collect::<Vec<_>>();
    assert_eq!(
        search(&|_| {}).await,
        [
            (m1.clone(), p1.clone()),
            (m2.clone(), p2.clone()),
            (m3.clone(), p1.clone())
        ]
    );
    let (rows, _) = store
        .search_measurements(MeasurementSearch::new(A))
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|(m, _)| m.measurement.report_pdf.is_empty()),
        "no PDFs"
    );
    assert_eq!(
        only_ids(search(&|q| q.ids = vec![m2.clone(), "x".into()]).await),
        [m2.as_str()]
    );
    assert_eq!(
        only_ids(search(&|q| q.patient_ids = vec![p1.clone()]).await),
        [m1.clone(), m3.clone()]
    );
    assert_eq!(
        only_ids(search(&|q| q.patient_ids = vec!["x".into()]).await),
        Vec::<String>::new()
    );
    assert_eq!(
        only_ids(
            search(&|q| q.performed = vec![vec![date(DateOp::Gt, "2025-03-15", "2025-03-16")]])
                .await
        ),
        [m2.clone(), m3.clone()]
    );
    assert_eq!(
        only_ids(search(&|q| q.observation_code = vec![vec![token(None, "8867-4")]]).await),
        [m1.as_str()]
    );
    assert_eq!(
        only_ids(
            search(&|q| q.observation_code = vec![vec![
                token(Some(&["LN"]), "19868-9"),
                token(Some(&[""]), "QT")
            ]])
            .await
        ),
        [m1.clone(), m2.clone()]
    );
    assert_eq!(
        only_ids(
            search(&|q| q.observation_code = vec![vec![token(Some(&["SCT"]), "8867-4")]]).await
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        only_ids(
            search(&|q| q.observation_code =
                vec![vec![token(None, "8867-4")], vec![token(None, "QT")]])
            .await
        ),
        [m1.as_str()]
    );
    assert_eq!(
        only_ids(search(&|q| q.kind = vec![vec![token(None, "EcG")]]).await),
        [m1.clone(), m3.clone()]
    );
    assert_eq!(
        only_ids(search(&|q| q.sort = vec![desc(SortKey::Date)]).await),
        [m3.clone(), m2.clone(), m1.clone()]
    );
    let mut q = MeasurementSearch::new(A);
    q.limit = 1;
    let (rows, total) = store.search_measurements(q).await.unwrap();
    assert_eq!((rows.len(), total), (1, 3));
}

// ---------------------------------------------------------------- imaging studies

#[tokio::test]
async fn studies_create_get_and_search() {
    let dir = temp();
    let store = open(&dir);
    let p1 = store
        .create_patient(A, patient("1", "GARCIA"))
        .await
        .unwrap()
        .value
        .id;
    let p2 = store
        .create_patient(A, patient("2", "LOPEZ"))
        .await
        .unwrap()
        .value
        .id;
    let pb = store
        .create_patient(B, patient("1", "GARCIA"))
        .await
        .unwrap()
        .value
        .id;
    let study =
        |org: &str, pid: Option<&str>, started: Option<&str>, modalities: &[&str]| NewStudy {
            org: org.into(),
            patient_id: pid.map(Into::into),
            started: started.map(Into::into),
            modalities: modalities.iter().map(|m| (*m).to_owned()).collect(),
            json: format!("{{\"resourceType\":\"ImagingStudy\",\"started\":{started:?}}}"),
        };
    let s1 = store
        .create_study(study(
            A,
            Some(&p1),
            Some("2025-03-15T09:00:00"),
            &["CT", "MR"],
        ))
        .await
        .unwrap();
    assert_eq!((s1.version, s1.deleted_at), (1, None));
    assert_eq!(s1.value.patient_id.as_deref(), Some(p1.as_str()));
    let s2 = store
        .create_study(study(A, Some(&p2), Some("2025-03-16"), &["CTX", " "]))
        .await
        .unwrap();
    let s3 = store.create_study(study(A, None, None, &[])).await.unwrap();
    store
        .create_study(study(B, Some(&pb), Some("2025-03-15"), &["CT"]))
        .await
        .unwrap();
    for bad in [pb.as_str(), "999", "x"] {
        assert!(matches!(
            store.create_study(study(A, Some(bad), None, &[])).await,
            Err(StoreError::NotFound)
        ));
    }

    assert_eq!(store.get_study(A, &s1.value.id).await.unwrap().unwrap(), s1);
    assert_eq!(store.get_study(B, &s1.value.id).await.unwrap(), None);
    assert_eq!(store.get_study(A, "x").await.unwrap(), None);

    let search = |f: &dyn Fn(&mut StudySearch)| {
        let mut q = StudySearch::new(A);
        f(&mut q);
        let store = store.clone();
        async move {
            let (rows, total) = store.search_studies(q).await.unwrap();
            assert_eq!(rows.len() as u64, total);
            rows.into_iter().map(|s| s.value.id).collect::<Vec<_>>()
        }
    };
    let (i1, i2, i3) = (
        s1.value.id.clone(),
        s2.value.id.clone(),
        s3.value.id.clone(),
    );
    assert_eq!(search(&|_| {}).await, [i1.clone(), i2.clone(), i3.clone()]);
    assert_eq!(search(&|q| q.ids = vec![i3.clone()]).await, [i3.as_str()]);
    assert_eq!(
        search(&|q| q.patient_ids = vec![p2.clone(), pb.clone()]).await,
        [i2.as_str()]
    );
    assert_eq!(
        search(&|q| q.modality = vec![vec![token(Some(&["DCM"]), "CT")]]).await,
        [i1.as_str()],
        "whole codes"
    );
    assert_eq!(
        search(&|q| q.modality = vec![vec![token(None, "C")]]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&|q| q.modality = vec![vec![token(None, "MR"), token(None, "CTX")]]).await,
        [i1.clone(), i2.clone()]
    );
    assert_eq!(
        search(&|q| q.modality = vec![vec![token(None, "CT")], vec![token(None, "MR")]]).await,
        [i1.as_str()]
    );
    assert_eq!(
        search(&|q| q.modality = vec![vec![token(None, "")]]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&|q| q.started = vec![vec![date(DateOp::Eq, "2025-03-15", "2025-03-16")]]).await,
        [i1.as_str()]
    );
    assert_eq!(
        search(&|q| q.sort = vec![desc(SortKey::Date)]).await,
        [i2.clone(), i1.clone(), i3.clone()]
    );
}

// ---------------------------------------------------------------- plans

#[test]
fn identifier_searches_use_the_indexes() {
    let (_dir, conn) = migrated_connection();
    let any_system = query_plan(
        &conn,
        "SELECT i.patient_id FROM patient_identifiers i WHERE i.org = 'a' AND i.value = 'v'",
    );
    assert!(
        any_system.contains("patient_identifiers_value"),
        "{any_system}"
    );
    let with_system = query_plan(
        &conn,
        "SELECT i.patient_id FROM patient_identifiers i \
         WHERE i.org = 'a' AND i.value = 'v' AND i.system IN ('HIS', 'LAB')",
    );
    assert!(with_system.contains("PRIMARY KEY"), "{with_system}");
    let studies = query_plan(
        &conn,
        "SELECT id FROM imaging_studies WHERE org = 'a' AND patient_id = 1",
    );
    assert!(studies.contains("imaging_studies_patient"), "{studies}");
}

// ---------------------------------------------------------------- names regardless of case and accents

async fn named(store: &Store, org: &str, family: &str, given: &[&str]) -> String {
    store
        .create_patient(
            org,
            Patient {
                family: Some(family.into()),
                given: given.iter().map(|g| (*g).to_owned()).collect(),
                ..Patient::default()
            },
        )
        .await
        .unwrap()
        .value
        .id
}

fn by_name(part: &str, value: &str, how: StringMatch) -> PatientSearch {
    let mut s = PatientSearch::new(A);
    let v = vec![vec![StringFilter::new(value, how)]];
    match part {
        "family" => s.family = v,
        "given" => s.given = v,
        _ => s.name = v,
    }
    s
}

#[tokio::test]
async fn string_search_ignores_case_and_accents_and_knows_exact_and_contains() {
    let dir = temp();
    let store = open(&dir);
    named(&store, A, "Müller", &["Jürgen"]).await;
    named(&store, A, "Straße", &["Zoë"]).await;
    named(&store, A, "MUELLER", &["Ana"]).await;
    named(&store, A, "Ｍａｘｉｍ", &[]).await;
    named(&store, B, "Müller", &["Jürgen"]).await;
    use StringMatch::*;
    let found = |part: &'static str, value: &'static str, how: StringMatch| {
        let store = store.clone();
        async move { sorted(families(&store, by_name(part, value, how)).await.0) }
    };

    for value in ["muller", "MÜLLER", "müll", "Mu\u{308}ller", "MUL"] {
        assert_eq!(
            found("family", value, StartsWith).await,
            ["Müller"],
            "{value}"
        );
    }
    assert_eq!(found("family", "strasse", StartsWith).await, ["Straße"]);
    assert_eq!(found("family", "STRAS", StartsWith).await, ["Straße"]);
    assert_eq!(found("family", "max", StartsWith).await, ["Ｍａｘｉｍ"]);
    assert_eq!(found("family", "mue", StartsWith).await, ["MUELLER"]);
    assert_eq!(found("given", "jurg", StartsWith).await, ["Müller"]);
    assert_eq!(found("given", "zoe", StartsWith).await, ["Straße"]);
    assert_eq!(
        found("name", "m", StartsWith).await,
        ["MUELLER", "Müller", "Ｍａｘｉｍ"]
    );
    assert!(found("family", "uller", StartsWith).await.is_empty());

    // :contains, folded the same way.
    assert_eq!(
        found("family", "LLER", Contains).await,
        ["MUELLER", "Müller"]
    );
    assert_eq!(found("name", "rge", Contains).await, ["Müller"]);
    assert!(found("given", "xyz", Contains).await.is_empty());

    // :exact: the whole name, case and accents included.
    assert_eq!(found("family", "Müller", Exact).await, ["Müller"]);
    assert!(found("family", "müller", Exact).await.is_empty());
    assert!(found("family", "Muller", Exact).await.is_empty());
    assert!(found("family", "Müll", Exact).await.is_empty());
    assert_eq!(found("given", "Zoë", Exact).await, ["Straße"]);
    assert_eq!(found("name", "Jürgen", Exact).await, ["Müller"]);
    assert!(found("name", "Jurgen", Exact).await.is_empty());
}

#[tokio::test]
async fn the_name_index_follows_every_write_path() {
    let dir = temp();
    let store = open(&dir);
    let id = named(&store, A, "Alt", &["Erst"]).await;
    let mut p = store.get_patient(A, &id).await.unwrap().unwrap();
    p.family = Some("Neu".into());
    p.given = vec!["Zweit".into()];
    store.update_patient(A, &id, p, None).await.unwrap();
    let starts = |part: &'static str, v: &'static str| {
        let store = store.clone();
        async move {
            families(&store, by_name(part, v, StringMatch::StartsWith))
                .await
                .1
        }
    };
    assert_eq!(starts("family", "alt").await, 0, "the old name is gone");
    assert_eq!(starts("given", "erst").await, 0);
    assert_eq!(starts("family", "neu").await, 1);
    assert_eq!(starts("given", "zwei").await, 1);

    // An HL7 order creates and then updates a patient through the worklist path.
    let (pid, _) = order(
        &store,
        A,
        "N1",
        patient("MRN-N", "Ørsted"),
        appointment("PN1", "ecg", "2025-03-15T09:00:00"),
    )
    .await;
    assert_eq!(starts("family", "ørs").await, 1);
    order(
        &store,
        A,
        "N2",
        patient("MRN-N", "Åberg"),
        appointment("PN2", "ecg", "2025-03-15T10:00:00"),
    )
    .await;
    assert_eq!(starts("family", "ørs").await, 0);
    assert_eq!(starts("family", "aberg").await, 1);
    let found = store
        .search_patients(by_name("family", "ABERG", StringMatch::StartsWith))
        .await
        .unwrap()
        .0;
    assert_eq!(found[0].value.id, pid);
}

/// Patients stored before migration 0008 are found by name after it.
#[tokio::test]
async fn names_stored_before_the_name_index_are_found() {
    let dir = temp();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        rusqlite_migration::Migrations::new(vec![
            rusqlite_migration::M::up(include_str!("../migrations/0001_init.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0002_worklist.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0003_oauth.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0004_fhir.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0005_direct.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0006_dashboard.sql")),
            rusqlite_migration::M::up(include_str!("../migrations/0007_session_org.sql")),
        ])
        .to_latest(&mut conn)
        .unwrap();
        conn.execute(
            "INSERT INTO patients (org, created_at, updated_at, json) VALUES \
             (?1, 1, 1, '{\"family\":\"Gómez\",\"given\":[\"José\",\"Luis\"],\"prefix\":\"Dr.\"}'), \
             (?2, 1, 1, '{\"family\":\"Gómez\"}'), (?1, 1, 1, '{\"identifiers\":[]}')",
            rusqlite::params![A, B],
        )
        .unwrap();
    }
    let store = Store::open_sqlite(&path, SqliteOptions::default()).unwrap();
    let starts = |part: &'static str, v: &'static str| {
        let store = store.clone();
        async move { families(&store, by_name(part, v, StringMatch::StartsWith)).await }
    };
    assert_eq!(
        starts("family", "gomez").await,
        (vec!["Gómez".to_string()], 1)
    );
    assert_eq!(starts("given", "luis").await.1, 1);
    assert_eq!(starts("name", "jos").await.1, 1);
    assert_eq!(starts("name", "dr").await.1, 0, "not the prefix");
    assert_eq!(starts("name", "").await.1, 1, "only patients with a name");
}

/// Name searches read the narrow name rows, and the patients they match by
/// id: never a pass over every patient's JSON.
#[test]
fn name_searches_scan_only_the_name_rows() {
    let (_dir, conn) = migrated_connection();
    let plan = query_plan(
        &conn,
        "SELECT p.id FROM patients p WHERE p.org = 'a' AND p.id IN \
         (SELECT n.patient_id FROM patient_names n WHERE n.org = 'a' \
          AND n.family <> '' AND instr(n.family, 'mul') = 1)",
    );
    assert!(plan.contains("SCAN n"), "{plan}");
    assert!(!plan.contains("SCAN p"), "{plan}");
}
