//! SIU^S12/S13/S14/S15/S17 into worklist actions.

mod common;

use common::*;
use hl7v2::MessageBuilder;
use medrelay_worklist::*;

fn siu(trigger: &str) -> Vec<u8> {
    msh(MessageBuilder::new("SIU", trigger))
        .segment("SCH", |s| {
            s.field(1, "APT-1^HIS")
                .field(2, "FAPT-2^MEDRELAY")
                .field(6, "PR^Patient request^L")
                .field(7, "ECGREQ^ECG request^L")
                .field(11, "^^15^20250320090000^20250320091500")
                .field(12, "111^PLACER^PAUL")
                .field(16, "222^FILLER^FIONA")
                .field(20, "333^ENTRY^ERIC")
                .field(25, "Booked")
        })
        .segment("PID", pid)
        .segment("PV1", pv1)
        .segment("RGS", |s| s.field(1, "1"))
        .segment("AIS", |s| {
            s.field(1, "1")
                .field(3, "ECG^Electrocardiogram^L")
                .field(4, "20250320090500")
        })
        .segment("AIP", |s| s.field(1, "1").field(3, "444^DOC^DORA"))
        .build_bytes()
        .unwrap()
}

#[test]
fn s12_creates() {
    for name in PRESETS {
        let actions = map(&siu("S12"), &preset(name)).unwrap();
        let [
            WorklistAction::CreateAppointment {
                patient,
                appointment,
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}")
        };
        assert_eq!(patient.family.as_deref(), Some("GARCIA"));
        let o = &appointment.order;
        assert_eq!(o.placer_order.as_deref(), Some("APT-1"));
        assert_eq!(o.filler_order.as_deref(), Some("FAPT-2"));
        assert_eq!(
            o.procedure.as_ref().unwrap().code,
            "ECG",
            "AIS-3 before SCH-7"
        );
        assert_eq!(
            o.timing.as_deref(),
            Some("^^15^20250320090000^20250320091500")
        );
        assert_eq!(
            o.ordering_provider.as_ref().unwrap().family.as_deref(),
            Some("PLACER")
        );
        assert_eq!(
            o.entered_by.as_ref().unwrap().family.as_deref(),
            Some("ENTRY")
        );
        assert_eq!(o.status.as_deref(), Some("Booked"));
        assert_eq!(o.request_date.as_deref(), Some("2025-03-15T12:00:00+01:00"));
        assert_eq!(
            appointment.scheduled_at.as_deref(),
            Some("2025-03-20T09:00:00")
        );
        assert_eq!(
            appointment.visit.visit_number.as_ref().unwrap().value,
            "V-2025-77"
        );
        // PV1-7 wins over AIP-3 for the attending.
        assert_eq!(
            appointment
                .visit
                .attending
                .as_ref()
                .unwrap()
                .family
                .as_deref(),
            Some("LOPEZ")
        );
        assert_eq!(appointment.group, "cardiology");
    }
}

#[test]
fn s13_s14_update_and_s15_s17_cancel() {
    let m = preset("hl7-mllp");
    let key = OrderKey {
        integration: "cardiology-nextgen".into(),
        placer_order: Some("APT-1".into()),
        filler_order: Some("FAPT-2".into()),
    };
    for trigger in ["S13", "S14"] {
        let actions = map(&siu(trigger), &m).unwrap();
        let [
            WorklistAction::UpdateAppointment {
                key: k,
                appointment,
                ..
            },
        ] = actions.as_slice()
        else {
            panic!("{actions:?}")
        };
        assert_eq!(k, &key);
        assert_eq!(
            appointment.scheduled_at.as_deref(),
            Some("2025-03-20T09:00:00")
        );
    }
    for trigger in ["S15", "S17"] {
        assert_eq!(
            map(&siu(trigger), &m).unwrap(),
            [WorklistAction::CancelAppointment {
                key: key.clone(),
                reason: Some("Patient request".into()),
            }]
        );
    }
}

#[test]
fn siu_fallbacks_and_errors() {
    // No SCH-11: AIS-4 is the time; no AIS: SCH-7 is the procedure.
    let raw = msh(MessageBuilder::new("SIU", "S12"))
        .segment("SCH", |s| s.field(1, "A1").field(7, "REASON^Reason"))
        .segment("PID", pid)
        .segment("RGS", |s| s.field(1, "1"))
        .segment("AIS", |s| s.field(1, "1").field(4, "20250321100000"))
        .build_bytes()
        .unwrap();
    let actions = map(&raw, &preset("hl7-mllp")).unwrap();
    let WorklistAction::CreateAppointment { appointment, .. } = &actions[0] else {
        panic!()
    };
    assert_eq!(
        appointment.scheduled_at.as_deref(),
        Some("2025-03-21T10:00:00")
    );
    assert_eq!(appointment.order.procedure.as_ref().unwrap().code, "REASON");

    let no_sch = msh(MessageBuilder::new("SIU", "S12"))
        .segment("PID", pid)
        .build_bytes()
        .unwrap();
    let e = map(&no_sch, &preset("hl7-mllp")).unwrap_err();
    assert_eq!(e.path(), Some("SCH"));

    let no_ids = msh(MessageBuilder::new("SIU", "S12"))
        .segment("SCH", |s| s.field(7, "X"))
        .segment("PID", pid)
        .build_bytes()
        .unwrap();
    let e = map(&no_ids, &preset("hl7-mllp")).unwrap_err();
    assert!(matches!(e, MapError::Missing { .. }), "{e}");
    assert_eq!(e.path(), Some("SCH-1"));
    assert!(
        e.reason().contains("SCH-1") && e.reason().contains("SCH-2"),
        "{e}"
    );

    let e = map(&siu("S26"), &preset("hl7-mllp")).unwrap_err();
    assert_eq!(e, MapError::Unsupported("SIU^S26".into()));
}
