//! Results out: a device's measurement becomes an ORU^R01 for the integration
//! its order came from, committed together with the measurement and queued for
//! the EHR in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use medrelay_store::{NewDelivery, OutboundMessage, Store, StoreError};
use medrelay_worklist::{Device, Measurement};
use tokio::sync::Notify;

use crate::clock::{ControlIds, hl7_timestamp, now_ms};
use crate::worklist_stage::WorklistStage;

/// Largest PDF report accepted (bytes, decoded).
pub const MAX_PDF: usize = 20 * 1024 * 1024;

/// What `submit` could not do, for the HTTP layer to word.
#[derive(Debug)]
pub enum SubmitError {
    /// Field path and reason for each problem.
    Invalid(Vec<(String, String)>),
    TooLarge(String),
    /// No such appointment in the device's organisation and group.
    UnknownAppointment(String),
    /// The ORU could not be built from the stored order.
    Build(String),
    Store(StoreError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        SubmitError::Store(e)
    }
}

/// A stored measurement.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub id: String,
    /// `queued` when a result message is on its way, `stored` when the
    /// integration sends none.
    pub status: &'static str,
}

/// Where an integration's results go.
pub(crate) struct ResultsRoute {
    pub stage: Arc<WorklistStage>,
    /// File results: where the practice system finds the PDF written beside the
    /// result (the folder as it sees it), for the reference inside the result.
    pub pdf_folder: Option<String>,
    /// Queue key and the wake-up of its worker; `None` without an outbound side.
    pub queue: Option<(String, Arc<Notify>)>,
    /// Results as a Direct message instead of a queued result message.
    pub direct: Option<crate::integration::DirectOutbound>,
}

/// Cheap to clone; shared by the HTTP handlers.
#[derive(Clone)]
pub struct Results {
    store: Store,
    routes: Arc<HashMap<String, ResultsRoute>>,
    control_ids: Arc<ControlIds>,
    hisp: Arc<crate::direct::Hisp>,
}

impl Results {
    pub(crate) fn new(
        store: Store,
        routes: HashMap<String, ResultsRoute>,
        control_ids: Arc<ControlIds>,
        hisp: Arc<crate::direct::Hisp>,
    ) -> Self {
        Results {
            store,
            routes: Arc::new(routes),
            control_ids,
            hisp,
        }
    }

    /// Validates, stores, and queues the result message. The device must belong
    /// to the appointment's organisation and group.
    pub async fn submit(
        &self,
        device: &Device,
        mut m: Measurement,
    ) -> Result<Submitted, SubmitError> {
        if m.report_pdf.len() > MAX_PDF {
            return Err(SubmitError::TooLarge(format!(
                "report_pdf is {} bytes; the limit is {MAX_PDF}",
                m.report_pdf.len()
            )));
        }
        medrelay_worklist::oru::validate_measurement(&m, MAX_PDF).map_err(|problems| {
            SubmitError::Invalid(problems.into_iter().map(|p| (p.field, p.reason)).collect())
        })?;
        let unknown = || SubmitError::UnknownAppointment(m.appointment_id.clone());
        let (appointment, patient) = self
            .store
            .get_appointment(&device.org, &m.appointment_id)
            .await?
            .ok_or_else(unknown)?;
        if appointment.group != device.group {
            return Err(unknown());
        }
        m.org = device.org.clone();
        m.device_id = device.id.clone();

        let route = self.routes.get(&appointment.integration);
        if let Some(d) = route.and_then(|r| r.direct.as_ref()) {
            return self.send_direct(d, &appointment, &patient, m).await;
        }
        let Some((route, (key, wake))) = route.and_then(|r| r.queue.as_ref().map(|q| (r, q)))
        else {
            let ids = self.store.record_measurement(m, None).await?;
            return Ok(Submitted {
                id: ids.measurement_id,
                status: "stored",
            });
        };
        let now = now_ms();
        let control_id = self.control_ids.next();
        let pdf_reference = route
            .pdf_folder
            .as_deref()
            .filter(|_| !m.report_pdf.is_empty())
            .map(|dir| pdf_reference(dir, &control_id));
        let result = route
            .stage
            .build_result(
                &appointment,
                &patient,
                &m,
                &control_id,
                &hl7_timestamp(now),
                pdf_reference.as_deref(),
            )
            .map_err(SubmitError::Build)?;
        let outbound = OutboundMessage {
            org: device.org.clone(),
            channel: appointment.integration.clone(),
            control_id: Some(control_id),
            message_type: Some(result.message_type.into()),
            created_at: now,
            // The queue entry points at the message's bytes: the PDF is not
            // stored a third time.
            deliveries: vec![NewDelivery {
                destination: key.clone(),
                payload: Vec::new(),
                not_before: now,
            }],
            raw: result.raw,
        };
        let ids = self.store.record_measurement(m, Some(outbound)).await?;
        wake.notify_one();
        Ok(Submitted {
            id: ids.measurement_id,
            status: "queued",
        })
    }

    /// Puts a measurement's result back on its queue (dashboard "resend").
    pub async fn resend(&self, org: &str, measurement_id: &str) -> Result<usize, StoreError> {
        let requeued = self
            .store
            .resend_measurement(org, measurement_id, now_ms())
            .await?;
        for route in self.routes.values() {
            if let Some((_, wake)) = &route.queue {
                wake.notify_one();
            }
        }
        Ok(requeued.len())
    }
}

/// The PDF's path as the practice system sees it: `dir` joined with the result's
/// own name, with the separator `dir` already uses (`C:\GDT\in` stays Windows).
pub fn pdf_reference(dir: &str, control_id: &str) -> String {
    let name = format!("{control_id}.pdf");
    if dir.is_empty() {
        return name;
    }
    let sep = if dir.contains('\\') && !dir.contains('/') {
        '\\'
    } else {
        '/'
    };
    if dir.ends_with(sep) {
        format!("{dir}{name}")
    } else {
        format!("{dir}{sep}{name}")
    }
}

impl Results {
    /// `outbound.direct`: the measurement is committed, then its report goes
    /// out as a Direct message (the PDF, the observations in the body, the
    /// patient's demographics). The message is built first, so a report that
    /// cannot be sent is refused before anything is stored.
    async fn send_direct(
        &self,
        d: &crate::integration::DirectOutbound,
        appointment: &medrelay_worklist::Appointment,
        patient: &medrelay_worklist::Patient,
        m: Measurement,
    ) -> Result<Submitted, SubmitError> {
        let mut req = crate::direct::result_message(d, appointment, patient, &m);
        let integration = appointment.integration.clone();
        let org = m.org.clone();
        let ids = self.store.record_measurement(m, None).await?;
        req.message_id = format!("medrelay-measurement-{}-{}", org, ids.measurement_id);
        match self
            .hisp
            .submit_internal(&org, &format!("integration:{integration}"), &req)
            .await
        {
            Ok(_) => Ok(Submitted {
                id: ids.measurement_id,
                status: "queued",
            }),
            Err(e) => {
                // The measurement is kept; the report can be sent again by
                // hand. Saying "stored" keeps the device from posting twice.
                tracing::error!(measurement = %ids.measurement_id, error = %e, "the report could not be sent by Direct");
                Ok(Submitted {
                    id: ids.measurement_id,
                    status: "stored",
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pdf_reference;

    #[test]
    fn pdf_references_use_the_folders_separator() {
        assert_eq!(pdf_reference("C:\\GDT\\in", "42"), "C:\\GDT\\in\\42.pdf");
        assert_eq!(pdf_reference("/srv/gdt/out/", "42"), "/srv/gdt/out/42.pdf");
        assert_eq!(pdf_reference("", "42"), "42.pdf");
    }
}
