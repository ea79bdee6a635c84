//! The part of an integration that speaks worklist: its preset's mapping (with
//! the configuration's overrides) for orders in, and its result settings for
//! results out. HL7 presets map ORM/ADT/SIU and answer with ORU^R01; GDT presets
//! map 6302 requests and answer with a 6310.

use chrono::{SecondsFormat, Utc};
use hl7v2::Message;
use medrelay_worklist::gdt_map::{self, GdtContext, GdtMapping};
use medrelay_worklist::json_map::{self, JsonContext, JsonItem, JsonMapping};
use medrelay_worklist::mapping::{MapContext, MapError, Mapping};
use medrelay_worklist::oru::{OruContext, build_oru};
use medrelay_worklist::{Appointment, Measurement, Patient, WorklistAction, presets};

use crate::integration::{Format, IntegrationConfig};

pub struct WorklistStage {
    format: StageFormat,
    ctx: MapContext,
}

enum StageFormat {
    Hl7(Box<Mapping>),
    Gdt(Box<GdtMapping>),
    Json(Box<JsonMapping>),
}

/// A result message, ready for the integration's queue.
pub struct ResultMessage {
    pub raw: Vec<u8>,
    pub message_type: &'static str,
}

impl WorklistStage {
    /// The preset's mapping merged with the integration's overrides, checked.
    pub fn new(cfg: &IntegrationConfig) -> Result<Self, String> {
        let ctx = MapContext {
            integration: cfg.name.clone(),
            group: cfg.group.clone(),
            org: cfg.org.clone(),
        };
        if cfg.format() == Some(Format::Json) {
            let preset = presets::json(&cfg.preset).map_err(|e| e.to_string())?;
            let mapping = preset
                .mapping(cfg.mapping.as_ref())
                .map_err(|e| format!("mapping: {e}"))?;
            return Ok(WorklistStage {
                format: StageFormat::Json(Box::new(mapping)),
                ctx,
            });
        }
        if cfg.format() == Some(Format::Gdt) {
            let preset = presets::gdt(&cfg.preset).map_err(|e| e.to_string())?;
            let mapping = preset
                .mapping(cfg.mapping.as_ref())
                .map_err(|e| format!("mapping: {e}"))?;
            return Ok(WorklistStage {
                format: StageFormat::Gdt(Box::new(mapping)),
                ctx,
            });
        }
        let preset = presets::get(&cfg.preset).ok_or_else(|| {
            format!(
                "unknown preset {:?}; known: {}",
                cfg.preset,
                presets::names().join(", ")
            )
        })?;
        let mut mapping = preset.mapping;
        if let Some(overrides) = &cfg.mapping {
            mapping
                .merge_table(overrides)
                .map_err(|e| format!("mapping: {e}"))?;
        }
        let o = &cfg.outbound;
        for (setting, value) in [
            (&mut mapping.oru.sending_application, &o.sending_application),
            (&mut mapping.oru.sending_facility, &o.sending_facility),
            (
                &mut mapping.oru.receiving_application,
                &o.receiving_application,
            ),
            (&mut mapping.oru.receiving_facility, &o.receiving_facility),
        ] {
            if value.is_some() {
                setting.clone_from(value);
            }
        }
        mapping.check().map_err(|problems| {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            format!("mapping: {}", list.join("; "))
        })?;
        Ok(WorklistStage {
            format: StageFormat::Hl7(Box::new(mapping)),
            ctx,
        })
    }

    /// What an HL7 message asks of the worklist.
    pub fn map(&self, msg: &Message<'_>) -> Result<Vec<WorklistAction>, MapError> {
        let StageFormat::Hl7(mapping) = &self.format else {
            return Err(MapError::Unsupported(
                "HL7 on an integration that speaks GDT".into(),
            ));
        };
        let mut actions = medrelay_worklist::mapping::map_message(msg, mapping, &self.ctx)?;
        stamp_received(&mut actions);
        Ok(actions)
    }

    /// What a GDT record asks of the worklist; `reference` identifies the file
    /// (it stands in for a missing request reference).
    pub fn map_gdt(
        &self,
        record: &gdt::Record,
        reference: &str,
    ) -> Result<Vec<WorklistAction>, MapError> {
        let StageFormat::Gdt(mapping) = &self.format else {
            return Err(MapError::Unsupported(
                "GDT on an integration that speaks HL7".into(),
            ));
        };
        let ctx = GdtContext {
            integration: self.ctx.integration.clone(),
            group: self.ctx.group.clone(),
            org: self.ctx.org.clone(),
            fallback_reference: reference.to_string(),
        };
        let mut actions = gdt_map::map_record(record, mapping, &ctx)?;
        stamp_received(&mut actions);
        Ok(actions)
    }

    /// The appointments in a JSON document (pushed or polled), each with its own
    /// id for de-duplication.
    pub fn map_json(&self, doc: &serde_json::Value) -> Result<Vec<JsonItem>, MapError> {
        let StageFormat::Json(mapping) = &self.format else {
            return Err(MapError::Unsupported(
                "JSON on an integration that does not speak it".into(),
            ));
        };
        let ctx = JsonContext {
            integration: self.ctx.integration.clone(),
            group: self.ctx.group.clone(),
            org: self.ctx.org.clone(),
        };
        let mut items = json_map::map_document(doc, mapping, &ctx)?;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        for item in &mut items {
            stamp_one(&mut item.action, &now);
        }
        Ok(items)
    }

    /// The JSON mapping, for the transport settings of a JSON integration.
    pub fn json_mapping(&self) -> Option<&JsonMapping> {
        match &self.format {
            StageFormat::Json(m) => Some(m),
            _ => None,
        }
    }

    /// The result for a measurement of one of this integration's orders: an
    /// ORU^R01, or a GDT 6310 referencing `pdf_reference`.
    pub fn build_result(
        &self,
        appointment: &Appointment,
        patient: &Patient,
        m: &Measurement,
        control_id: &str,
        timestamp: &str,
        pdf_reference: Option<&str>,
    ) -> Result<ResultMessage, String> {
        match &self.format {
            StageFormat::Hl7(mapping) => {
                let ctx = OruContext::from_settings(&mapping.oru, control_id, timestamp);
                Ok(ResultMessage {
                    raw: build_oru(&ctx, appointment, patient, m).map_err(|e| e.to_string())?,
                    message_type: "ORU^R01",
                })
            }
            StageFormat::Json(mapping) => {
                let doc = json_map::build_result(appointment, patient, m, mapping)?;
                Ok(ResultMessage {
                    raw: serde_json::to_vec(&doc).map_err(|e| e.to_string())?,
                    message_type: "JSON result",
                })
            }
            StageFormat::Gdt(mapping) => Ok(ResultMessage {
                raw: gdt_map::build_result(
                    appointment,
                    patient,
                    m,
                    &mapping.result,
                    control_id,
                    pdf_reference,
                )?,
                message_type: "GDT 6310",
            }),
        }
    }
}

/// Every order carries the time medrelay received it, whatever the sender's clock
/// said (WEDA calls it `requestedDate`).
fn stamp_received(actions: &mut [WorklistAction]) {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    for a in actions {
        stamp_one(a, &now);
    }
}

fn stamp_one(action: &mut WorklistAction, now: &str) {
    if let WorklistAction::CreateAppointment { appointment, .. }
    | WorklistAction::UpdateAppointment { appointment, .. } = action
    {
        appointment.order.received_at = Some(now.to_string());
    }
}
