//! The part of an integration that speaks worklist: its preset's mapping (with
//! the configuration's overrides) for orders in, and its ORU settings for
//! results out.

use hl7v2::Message;
use medrelay_worklist::mapping::{MapContext, MapError, Mapping};
use medrelay_worklist::oru::{OruContext, build_oru};
use medrelay_worklist::{Appointment, Measurement, Patient, WorklistAction, presets};

use crate::integration::IntegrationConfig;

pub struct WorklistStage {
    mapping: Mapping,
    ctx: MapContext,
}

impl WorklistStage {
    /// The preset's mapping merged with the integration's overrides, checked.
    pub fn new(cfg: &IntegrationConfig) -> Result<Self, String> {
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
            mapping,
            ctx: MapContext {
                integration: cfg.name.clone(),
                group: cfg.group.clone(),
                org: cfg.org.clone(),
            },
        })
    }

    pub fn map(&self, msg: &Message<'_>) -> Result<Vec<WorklistAction>, MapError> {
        medrelay_worklist::mapping::map_message(msg, &self.mapping, &self.ctx)
    }

    /// The ORU^R01 for a measurement of one of this integration's orders.
    pub fn build_oru(
        &self,
        appointment: &Appointment,
        patient: &Patient,
        m: &Measurement,
        control_id: &str,
        timestamp: &str,
    ) -> Result<Vec<u8>, String> {
        let ctx = OruContext::from_settings(&self.mapping.oru, control_id, timestamp);
        build_oru(&ctx, appointment, patient, m).map_err(|e| e.to_string())
    }
}
