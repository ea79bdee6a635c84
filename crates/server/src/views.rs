//! JSON shapes of the API: one function per resource, so the device and admin
//! APIs show the same thing the same way.

use medrelay_store::{Delivery, StoredMeasurement, StoredMessage};
use medrelay_worklist::{Appointment, Device, Patient};
use serde_json::{Value, json};

/// A worklist item as DESIGN.md promises it, plus the full order and visit.
pub fn appointment(a: &Appointment, p: &Patient) -> Value {
    json!({
        "id": a.id,
        "status": a.status.as_str(),
        "group": a.group,
        "integration": a.integration,
        "procedure": a.order.procedure,
        "scheduled_at": a.scheduled_at,
        "placer_order": a.order.placer_order,
        "filler_order": a.order.filler_order,
        "visit_number": a.visit.visit_number.as_ref().map(|v| v.value.clone()),
        "patient": p,
        "order": a.order,
        "visit": a.visit,
    })
}

pub fn device(d: &Device) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "group": d.group,
        "created_at": d.created_at,
        "last_seen_at": d.last_seen_at,
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn delivery(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "destination": d.destination,
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "response": d.response.as_deref().map(text),
    })
}

/// Overall state of a measurement from its deliveries.
pub fn measurement_status(deliveries: &[Delivery]) -> &'static str {
    use medrelay_store::DeliveryState as S;
    if deliveries.is_empty() {
        "stored"
    } else if deliveries.iter().any(|d| d.state == S::Failed) {
        "failed"
    } else if deliveries.iter().all(|d| d.state == S::Sent) {
        "sent"
    } else if deliveries.iter().any(|d| d.state == S::Retrying) {
        "retrying"
    } else {
        "queued"
    }
}

pub fn measurement(s: &StoredMeasurement, with_pdf_link: bool) -> Value {
    let m = &s.measurement;
    let mut v = json!({
        "id": m.id,
        "appointment_id": m.appointment_id,
        "device_id": m.device_id,
        "type": m.kind,
        "performed_at": m.performed_at,
        "observations": m.observations,
        "created_at": s.created_at,
        "message_id": s.message_id,
        "status": measurement_status(&s.deliveries),
        "deliveries": s.deliveries.iter().map(delivery).collect::<Vec<_>>(),
    });
    if with_pdf_link && let Some(obj) = v.as_object_mut() {
        obj.insert(
            "report_pdf_url".into(),
            json!(format!("/api/v1/measurements/{}/report.pdf", m.id)),
        );
    }
    v
}

pub fn message_summary(m: &StoredMessage) -> Value {
    json!({
        "id": m.id,
        "channel": m.channel,
        "direction": m.direction.as_str(),
        "received_at": m.received_at,
        "peer": m.peer,
        "control_id": m.control_id,
        "message_type": m.message_type,
        "sending_application": m.sending_application,
        "sending_facility": m.sending_facility,
        "status": m.status.as_str(),
        "error": m.error,
        "size": m.raw.len(),
    })
}

/// The full message: raw text, ACK, and the HL7 fields with their paths.
pub fn message_detail(m: &StoredMessage, deliveries: &[Delivery]) -> Value {
    let mut v = message_summary(m);
    let parsed = hl7v2::Message::parse(&m.raw).ok().map(|msg| {
        let mut seen: std::collections::HashMap<&str, usize> = Default::default();
        msg.segments()
            .map(|seg| {
                let id = seg.id();
                let occurrence = {
                    let n = seen.entry(id).or_default();
                    *n += 1;
                    *n
                };
                let fields: Vec<Value> = (1..=seg.field_count())
                    .filter_map(|n| {
                        let value = seg.field(n)?;
                        (!value.is_empty()).then(|| {
                            json!({
                                "path": format!("{id}({occurrence})-{n}"),
                                "value": value.as_str(),
                            })
                        })
                    })
                    .collect();
                json!({ "segment": id, "fields": fields })
            })
            .collect::<Vec<_>>()
    });
    if let Some(obj) = v.as_object_mut() {
        obj.insert("raw".into(), json!(text(&m.raw)));
        obj.insert("ack".into(), json!(m.ack.as_deref().map(text)));
        obj.insert("segments".into(), json!(parsed));
        obj.insert(
            "deliveries".into(),
            json!(deliveries.iter().map(delivery).collect::<Vec<_>>()),
        );
    }
    v
}
