//! The dashboard's pages: overview, worklist, devices and groups,
//! measurements, the message browser and the audit log. Each handler reads
//! through the same store calls as the admin API and renders one template.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use medrelay_store::{AppointmentQuery, Direction, MessageQuery, MessageStatus};
use medrelay_worklist::AppointmentStatus;
use serde::Deserialize;

use super::{CsrfForm, Page, Signed, UserView, render, when};
use crate::AppState;
use crate::auth::{TokenKind, generate};

/// Fixed flash texts, chosen by a query key (nothing the URL says is shown).
fn flash(key: Option<&str>) -> Option<String> {
    Some(
        match key? {
            "deleted" => "The appointment was deleted.",
            "queued" => "The result was queued again for every destination.",
            "moved" => "The device was changed.",
            "group" => "The groups were changed.",
            "state" => "The channel's state was changed.",
            "reprocessed" => {
                "The message went through its channel again; the new message is listed here."
            }
            "removed" => "The device was deleted.",
            _ => return None,
        }
        .to_string(),
    )
}

#[derive(Deserialize, Default)]
pub struct FlashQuery {
    done: Option<String>,
}

// ---------------------------------------------------------------- overview

pub struct ChannelRow {
    name: String,
    kind: String,
    source: String,
    state: String,
    /// An HL7 pipeline an operator can start, pause and stop.
    controllable: bool,
    received: u64,
    errored: u64,
    last: String,
    last_error: String,
    queues: Vec<QueueRow>,
}

pub struct QueueRow {
    key: String,
    pending: u64,
    oldest: String,
    oldest_at: Option<i64>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    user: Option<UserView>,
    flash: Option<String>,
    can_change: bool,
    csrf: String,
    /// The last 24 hours by hour: (hour, in, out, errored), newest first.
    traffic: Vec<(String, u64, u64, u64)>,
    channels: Vec<ChannelRow>,
    open_appointments: u64,
    devices: usize,
}

/// The overview's figures, for the page and for its refresh: every
/// configured channel and integration of the organisation (plus any other
/// channel that stored messages), its traffic among the newest 1,000
/// messages, its last error and its queues.
async fn figures(state: &AppState, org: &str) -> Result<Overview, Page> {
    let activity = state.store.channel_activity(org, 1000).await?;
    let mut channels: Vec<ChannelRow> = Vec::new();
    for c in state.components.iter().filter(|c| c.org == org) {
        let mut queues = Vec::new();
        for key in &c.queues {
            let depth = state.store.queue_depth(key).await?;
            queues.push(QueueRow {
                key: key.clone(),
                pending: depth.pending,
                oldest: depth.oldest_created_at.map(when).unwrap_or_default(),
                oldest_at: depth.oldest_created_at,
            });
        }
        channels.push(ChannelRow {
            name: c.name.clone(),
            kind: if c.preset.is_empty() {
                c.kind.to_string()
            } else {
                format!("{} ({})", c.kind, c.preset)
            },
            source: c.source.clone(),
            state: state
                .pipelines
                .get(&c.name)
                .map_or("running", |p| p.control().get().as_str())
                .into(),
            controllable: state.pipelines.contains_key(&c.name),
            received: 0,
            errored: 0,
            last: String::new(),
            last_error: String::new(),
            queues,
        });
    }
    for a in &activity {
        let row = match channels.iter_mut().position(|c| c.name == a.channel) {
            Some(i) => &mut channels[i],
            None => {
                channels.push(ChannelRow {
                    name: a.channel.clone(),
                    kind: "channel".into(),
                    source: String::new(),
                    state: "not configured".into(),
                    controllable: false,
                    received: 0,
                    errored: 0,
                    last: String::new(),
                    last_error: String::new(),
                    queues: Vec::new(),
                });
                let last = channels.len() - 1;
                &mut channels[last]
            }
        };
        row.received = a.received;
        row.errored = a.errored;
        row.last = when(a.last_at);
        if let Some((at, error)) = &a.last_error {
            row.last_error = format!("{}: {error}", when(*at));
        }
        if row.state == "running" && a.newest_failed {
            row.state = "error".into();
        }
    }
    let now = super::now();
    for row in &mut channels {
        // A queue whose oldest entry has waited over 5 minutes is stuck.
        let stuck = row
            .queues
            .iter()
            .any(|q| q.pending > 0 && q.oldest_at.is_some_and(|t| now - t > 5 * 60 * 1000));
        if row.state == "running" && stuck {
            row.state = "error".into();
        }
    }
    let groups = state.store.list_groups(org).await?;
    let devices = state.store.list_devices(org).await?.len();
    Ok(Overview {
        user: None,
        flash: None,
        can_change: false,
        csrf: String::new(),
        traffic: Vec::new(),
        channels,
        open_appointments: groups.iter().map(|g| g.open_appointments).sum(),
        devices,
    })
}

pub async fn overview(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<FlashQuery>,
) -> Result<Response, Page> {
    let mut page = figures(&state, who.org()).await?;
    page.traffic = traffic(&state, who.org()).await?;
    page.user = Some(who.view());
    page.flash = flash(q.done.as_deref());
    page.can_change = who.can_change();
    page.csrf = who.0.csrf.clone();
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct StateForm {
    csrf: Option<String>,
    #[serde(default)]
    action: String,
}

/// Start, pause or stop a channel (see `medrelay_engine::run_state`).
pub async fn set_channel_state(
    State(state): State<AppState>,
    who: Signed,
    Path(name): Path<String>,
    Form(f): Form<StateForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let component = state
        .components
        .iter()
        .find(|c| c.name == name && c.org == who.org())
        .ok_or_else(|| Page::not_found(format!("no channel {name}")))?;
    let pipeline = state
        .pipelines
        .get(&component.name)
        .ok_or_else(|| Page::bad_request(format!("{name} has no HL7 pipeline to start or stop")))?;
    let target = medrelay_engine::run_state::RunState::parse(&f.action)
        .ok_or_else(|| Page::bad_request("the action is start, pause or stop"))?;
    pipeline.set_run_state(target, who.name()).await?;
    who.audit(
        &state,
        "set the state of",
        &format!("channel {name}"),
        Some(target.as_str()),
    )
    .await;
    Ok(Redirect::to("/?done=state").into_response())
}

/// Messages in, out and errored per hour over the last 24 hours, newest hour
/// first (hours without traffic are left out).
async fn traffic(state: &AppState, org: &str) -> Result<Vec<(String, u64, u64, u64)>, Page> {
    const HOUR: i64 = 3_600_000;
    let since = (super::now() - 23 * HOUR) / HOUR * HOUR;
    let buckets = state.store.message_traffic(org, since, HOUR).await?;
    let mut rows: Vec<(i64, u64, u64, u64)> = Vec::new();
    for b in buckets {
        let row = match rows.iter_mut().find(|r| r.0 == b.start) {
            Some(r) => r,
            None => {
                rows.push((b.start, 0, 0, 0));
                let last = rows.len() - 1;
                &mut rows[last]
            }
        };
        if b.outbound {
            row.2 += b.total;
        } else {
            row.1 += b.total;
        }
        row.3 += b.errored;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    Ok(rows
        .into_iter()
        .map(|(start, i, o, e)| {
            let hour = when(start);
            (hour.get(..16).unwrap_or(&hour).to_string(), i, o, e)
        })
        .collect())
}

/// `GET /overview/figures`: the same figures as JSON, which the overview
/// page fetches every few seconds to stay current without a reload.
pub async fn overview_figures(
    State(state): State<AppState>,
    who: Signed,
) -> Result<Response, Page> {
    let f = figures(&state, who.org()).await?;
    Ok(axum::Json(serde_json::json!({
        "channels": f.channels.iter().map(|c| serde_json::json!({
            "name": c.name, "kind": c.kind, "source": c.source, "state": c.state,
            "controllable": c.controllable,
            "received": c.received, "errored": c.errored, "last": c.last,
            "last_error": c.last_error,
            "queues": c.queues.iter().map(|q| serde_json::json!({
                "key": q.key, "pending": q.pending, "oldest": q.oldest,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "open_appointments": f.open_appointments,
        "devices": f.devices,
    }))
    .into_response())
}

// ---------------------------------------------------------------- worklist

pub struct AppointmentRow {
    id: String,
    patient: String,
    identifiers: String,
    order: String,
    procedure: String,
    scheduled: String,
    group: String,
    status: String,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct Worklist {
    user: Option<UserView>,
    flash: Option<String>,
    rows: Vec<AppointmentRow>,
    group: String,
    date: String,
    statuses: Vec<(&'static str, bool)>,
    can_change: bool,
}

#[derive(Deserialize, Default)]
pub struct WorklistQuery {
    group: Option<String>,
    status: Option<String>,
    date: Option<String>,
    done: Option<String>,
}

fn patient_name(p: &medrelay_worklist::Patient) -> String {
    let mut name = p.family.clone().unwrap_or_default();
    if !p.given.is_empty() {
        name.push_str(", ");
        name.push_str(&p.given.join(" "));
    }
    name
}

pub async fn worklist(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<WorklistQuery>,
) -> Result<Response, Page> {
    let status_text = q.status.clone().unwrap_or_else(|| "scheduled".into());
    let status = match status_text.as_str() {
        "any" => None,
        s => Some(
            AppointmentStatus::parse(s)
                .ok_or_else(|| Page::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    let group = q.group.clone().filter(|g| !g.trim().is_empty());
    let date = q.date.clone().filter(|d| d.len() == 10);
    let (from, to) = match &date {
        Some(d) => (Some(d.clone()), Some(format!("{d}T99"))),
        None => (None, None),
    };
    let rows = state
        .store
        .list_appointments(AppointmentQuery {
            group: group.clone(),
            status,
            scheduled_from: from,
            scheduled_to: to,
            limit: 500,
            ..AppointmentQuery::new(who.org())
        })
        .await?;
    who.audit(
        &state,
        "viewed",
        "worklist",
        Some(&format!("{} appointments with their patients", rows.len())),
    )
    .await;
    let rows = rows
        .iter()
        .map(|(a, p)| AppointmentRow {
            id: a.id.clone(),
            patient: patient_name(p),
            identifiers: p
                .identifiers
                .iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join(", "),
            order: a
                .order
                .placer_order
                .clone()
                .or(a.order.filler_order.clone())
                .unwrap_or_default(),
            procedure: a
                .order
                .procedure
                .as_ref()
                .map(|c| c.display.clone().unwrap_or(c.code.clone()))
                .unwrap_or_default(),
            scheduled: a.scheduled_at.clone().unwrap_or_default(),
            group: a.group.clone(),
            status: a.status.as_str().to_string(),
        })
        .collect();
    Ok(render(&Worklist {
        user: Some(who.view()),
        flash: flash(q.done.as_deref()),
        rows,
        group: group.unwrap_or_default(),
        date: date.unwrap_or_default(),
        statuses: ["scheduled", "completed", "cancelled", "any"]
            .into_iter()
            .map(|s| (s, s == status_text))
            .collect(),
        can_change: who.can_change(),
    }))
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDelete {
    user: Option<UserView>,
    flash: Option<String>,
    id: String,
    summary: String,
    csrf: String,
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    who.require_change()?;
    let (a, p) = state
        .store
        .get_appointment(who.org(), &id)
        .await?
        .ok_or_else(|| Page::not_found(format!("appointment {id} does not exist")))?;
    Ok(render(&ConfirmDelete {
        user: Some(who.view()),
        flash: None,
        id: a.id.clone(),
        summary: format!(
            "{} — order {} — {}",
            patient_name(&p),
            a.order.placer_order.clone().unwrap_or_default(),
            a.scheduled_at.clone().unwrap_or_default()
        ),
        csrf: who.0.csrf.clone(),
    }))
}

pub async fn delete_appointment(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    state.store.delete_appointment(who.org(), &id).await?;
    who.audit(&state, "deleted", &format!("appointment {id}"), None)
        .await;
    Ok(Redirect::to("/worklist?done=deleted").into_response())
}

// ---------------------------------------------------------------- devices

pub struct DeviceRow {
    id: String,
    name: String,
    group: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct Devices {
    user: Option<UserView>,
    flash: Option<String>,
    rows: Vec<DeviceRow>,
    groups: Vec<(String, u64, u64)>,
    new_token: Option<String>,
    can_change: bool,
    csrf: String,
}

async fn devices_page(
    state: &AppState,
    who: &Signed,
    flash_text: Option<String>,
    new_token: Option<String>,
) -> Result<Response, Page> {
    let rows = state
        .store
        .list_devices(who.org())
        .await?
        .into_iter()
        .map(|d| DeviceRow {
            id: d.id,
            name: d.name,
            group: d.group,
            last_seen: d.last_seen_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let groups = state
        .store
        .list_groups(who.org())
        .await?
        .into_iter()
        .map(|g| (g.name, g.devices, g.open_appointments))
        .collect();
    Ok(render(&Devices {
        user: Some(who.view()),
        flash: flash_text,
        rows,
        groups,
        new_token,
        can_change: who.can_change(),
        csrf: who.0.csrf.clone(),
    }))
}

pub async fn devices(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<FlashQuery>,
) -> Result<Response, Page> {
    devices_page(&state, &who, flash(q.done.as_deref()), None).await
}

#[derive(Deserialize)]
pub struct DeviceForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    group: String,
}

pub async fn add_device(
    State(state): State<AppState>,
    who: Signed,
    Form(f): Form<DeviceForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let name = f.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(Page::bad_request(
            "A device needs a name of 1-200 characters.",
        ));
    }
    if !medrelay_engine::config::valid_name(f.group.trim()) {
        return Err(Page::bad_request(
            "A group name is 1-64 characters of a-z, 0-9 and '-'.",
        ));
    }
    let token = generate(TokenKind::Device).map_err(|e| Page::internal(e.to_string()))?;
    let d = state
        .store
        .create_device(who.org(), name, f.group.trim(), &token.hash)
        .await?;
    who.audit(
        &state,
        "registered",
        &format!("device {} ({})", d.id, d.name),
        None,
    )
    .await;
    devices_page(
        &state,
        &who,
        Some(format!(
            "Device {} registered in group {}.",
            d.name, d.group
        )),
        Some(token.token),
    )
    .await
}

pub async fn rotate_token(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let token = generate(TokenKind::Device).map_err(|e| Page::internal(e.to_string()))?;
    state
        .store
        .rotate_device_token(who.org(), &id, &token.hash)
        .await?;
    who.audit(
        &state,
        "rotated the token of",
        &format!("device {id}"),
        None,
    )
    .await;
    devices_page(
        &state,
        &who,
        Some("The old token stopped working; give the device this one.".into()),
        Some(token.token),
    )
    .await
}

/// Renames and/or moves a device (the row's form sends both).
pub async fn move_device(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Form(f): Form<DeviceForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let name = f.name.trim();
    if !name.is_empty() {
        if name.len() > 200 {
            return Err(Page::bad_request(
                "A device name is at most 200 characters.",
            ));
        }
        state.store.rename_device(who.org(), &id, name).await?;
    }
    if !f.group.trim().is_empty() {
        if !medrelay_engine::config::valid_name(f.group.trim()) {
            return Err(Page::bad_request(
                "A group name is 1-64 characters of a-z, 0-9 and '-'.",
            ));
        }
        state
            .store
            .move_device(who.org(), &id, f.group.trim())
            .await?;
    }
    who.audit(
        &state,
        "changed",
        &format!("device {id}"),
        Some(&format!("name {name:?}, group {}", f.group.trim())),
    )
    .await;
    Ok(Redirect::to("/devices?done=moved").into_response())
}

#[derive(Deserialize)]
pub struct GroupForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

fn group_name(name: &str) -> Result<&str, Page> {
    let name = name.trim();
    if medrelay_engine::config::valid_name(name) {
        Ok(name)
    } else {
        Err(Page::bad_request(
            "A group name is 1-64 characters of a-z, 0-9 and '-'.",
        ))
    }
}

pub async fn add_group(
    State(state): State<AppState>,
    who: Signed,
    Form(f): Form<GroupForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let name = group_name(&f.name)?;
    state.store.create_group(who.org(), name).await?;
    who.audit(&state, "created", &format!("group {name}"), None)
        .await;
    Ok(Redirect::to("/devices?done=group").into_response())
}

/// Renames a group: its devices and appointments follow.
pub async fn rename_group(
    State(state): State<AppState>,
    who: Signed,
    Path(group): Path<String>,
    Form(f): Form<GroupForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let name = group_name(&f.name)?;
    state.store.rename_group(who.org(), &group, name).await?;
    who.audit(
        &state,
        "renamed",
        &format!("group {group}"),
        Some(&format!("to {name}")),
    )
    .await;
    Ok(Redirect::to("/devices?done=group").into_response())
}

/// Deletes a group; refused while it still has devices.
pub async fn delete_group(
    State(state): State<AppState>,
    who: Signed,
    Path(group): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    state.store.delete_group(who.org(), &group).await?;
    who.audit(&state, "deleted", &format!("group {group}"), None)
        .await;
    Ok(Redirect::to("/devices?done=group").into_response())
}

pub async fn delete_device(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    state.store.delete_device(who.org(), &id).await?;
    who.audit(&state, "deleted", &format!("device {id}"), None)
        .await;
    Ok(Redirect::to("/devices?done=removed").into_response())
}

// ---------------------------------------------------------------- measurements

pub struct MeasurementRow {
    id: String,
    performed: String,
    kind: String,
    appointment: String,
    status: String,
    deliveries: String,
}

#[derive(Template)]
#[template(path = "measurements.html")]
struct Measurements {
    user: Option<UserView>,
    flash: Option<String>,
    rows: Vec<MeasurementRow>,
}

pub async fn measurements(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<FlashQuery>,
) -> Result<Response, Page> {
    let list = state
        .store
        .list_measurements(who.org(), None, 200, 0)
        .await?;
    let rows = list
        .iter()
        .map(|s| MeasurementRow {
            id: s.measurement.id.clone(),
            performed: s.measurement.performed_at.clone(),
            kind: s.measurement.kind.clone(),
            appointment: s.measurement.appointment_id.clone(),
            status: crate::views::measurement_status(&s.deliveries).to_string(),
            deliveries: s
                .deliveries
                .iter()
                .map(|d| format!("{}: {}", d.destination, d.state.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    Ok(render(&Measurements {
        user: Some(who.view()),
        flash: flash(q.done.as_deref()),
        rows,
    }))
}

#[derive(Template)]
#[template(path = "measurement.html")]
struct MeasurementPage {
    user: Option<UserView>,
    flash: Option<String>,
    id: String,
    kind: String,
    performed: String,
    appointment: String,
    status: String,
    has_pdf: bool,
    observations: Vec<(String, String, String, String, String)>,
    deliveries: Vec<(String, String, u32, String, String)>,
    can_change: bool,
    csrf: String,
}

pub async fn measurement(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Result<Response, Page> {
    let s = state
        .store
        .get_measurement(who.org(), &id)
        .await?
        .ok_or_else(|| Page::not_found(format!("measurement {id} does not exist")))?;
    who.audit(&state, "viewed", &format!("measurement {id}"), None)
        .await;
    let m = &s.measurement;
    Ok(render(&MeasurementPage {
        user: Some(who.view()),
        flash: flash(q.done.as_deref()),
        id: m.id.clone(),
        kind: m.kind.clone(),
        performed: m.performed_at.clone(),
        appointment: m.appointment_id.clone(),
        status: crate::views::measurement_status(&s.deliveries).to_string(),
        has_pdf: !m.report_pdf.is_empty(),
        observations: m
            .observations
            .iter()
            .map(|o| {
                (
                    o.code.clone(),
                    o.display.clone().unwrap_or_default(),
                    match &o.value {
                        serde_json::Value::String(v) => v.clone(),
                        v => v.to_string(),
                    },
                    o.unit.clone().unwrap_or_default(),
                    o.abnormal_flag.clone().unwrap_or_default(),
                )
            })
            .collect(),
        deliveries: s
            .deliveries
            .iter()
            .map(|d| {
                (
                    d.destination.clone(),
                    d.state.as_str().to_string(),
                    d.attempts,
                    d.last_error.clone().unwrap_or_default(),
                    d.response
                        .as_deref()
                        .map(|r| String::from_utf8_lossy(r).replace('\r', "\n"))
                        .unwrap_or_default(),
                )
            })
            .collect(),
        can_change: who.can_change(),
        csrf: who.0.csrf.clone(),
    }))
}

pub async fn report_pdf(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    let pdf = state
        .store
        .measurement_pdf(who.org(), &id)
        .await?
        .ok_or_else(|| Page::not_found(format!("measurement {id} has no PDF report")))?;
    who.audit(
        &state,
        "viewed",
        &format!("the PDF report of measurement {id}"),
        None,
    )
    .await;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (header::CONTENT_DISPOSITION, "inline"),
        ],
        pdf,
    )
        .into_response())
}

pub async fn resend(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    state
        .results
        .resend(who.org(), &id)
        .await
        .map_err(|e| match e {
            medrelay_store::StoreError::NotFound => Page::bad_request(format!(
                "measurement {id} has no result message to send again"
            )),
            other => other.into(),
        })?;
    who.audit(&state, "resent", &format!("measurement {id}"), None)
        .await;
    Ok(Redirect::to(&format!("/measurements/{id}?done=queued")).into_response())
}

// ---------------------------------------------------------------- messages

pub struct MessageRow {
    id: i64,
    received: String,
    channel: String,
    direction: String,
    message_type: String,
    control_id: String,
    status: String,
    error: String,
}

fn message_row(m: &medrelay_store::StoredMessage) -> MessageRow {
    MessageRow {
        id: m.id,
        received: when(m.received_at),
        channel: m.channel.clone(),
        direction: match m.direction {
            Direction::In => "in".into(),
            Direction::Out => "out".into(),
        },
        message_type: m.message_type.clone().unwrap_or_default(),
        control_id: m.control_id.clone().unwrap_or_default(),
        status: m.status.as_str().to_string(),
        error: m.error.clone().unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
pub struct MessageSearch {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    control_id: String,
    #[serde(default)]
    identifier: String,
    #[serde(default, rename = "type")]
    message_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

#[derive(Template)]
#[template(path = "messages.html")]
struct Messages {
    user: Option<UserView>,
    flash: Option<String>,
    q: MessageSearch,
    statuses: Vec<(&'static str, bool)>,
    rows: Vec<MessageRow>,
    note: Option<String>,
}

/// `2026-12-03` as epoch milliseconds at its start (UTC).
fn day_start(d: &str) -> Option<i64> {
    chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
}

/// How many of the newest matching messages an identifier search reads: the
/// identifier is looked for in the raw text, which no index covers.
const IDENTIFIER_SCAN: usize = 2000;

pub async fn messages(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<MessageSearch>,
) -> Result<Response, Page> {
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let status = match q.status.trim() {
        "" | "any" => None,
        s => Some(
            s.parse::<MessageStatus>()
                .map_err(|_| Page::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    let identifier = some(&q.identifier);
    let rows = state
        .store
        .find_messages(MessageQuery {
            channel: some(&q.channel),
            control_id: some(&q.control_id),
            message_type: some(&q.message_type),
            status,
            since: day_start(&q.from),
            until: day_start(&q.to).map(|t| t + 24 * 3600 * 1000),
            limit: if identifier.is_some() {
                IDENTIFIER_SCAN
            } else {
                200
            },
            ..MessageQuery::new(who.org().to_string())
        })
        .await?;
    let note = identifier.as_ref().map(|_| {
        format!("A patient identifier is looked for in the newest {IDENTIFIER_SCAN} messages that match the other fields.")
    });
    let rows: Vec<MessageRow> = rows
        .iter()
        .filter(|m| {
            identifier
                .as_ref()
                .is_none_or(|id| memchr::memmem::find(&m.raw, id.as_bytes()).is_some())
        })
        .take(200)
        .map(message_row)
        .collect();
    let status_text = q.status.clone();
    Ok(render(&Messages {
        user: Some(who.view()),
        flash: flash(q.done.as_deref()),
        statuses: [
            "any",
            "received",
            "accepted",
            "rejected",
            "errored",
            "filtered",
            "processed",
        ]
        .into_iter()
        .map(|s| {
            (
                s,
                s == status_text || (status_text.is_empty() && s == "any"),
            )
        })
        .collect(),
        q,
        rows,
        note,
    }))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    user: Option<UserView>,
    flash: Option<String>,
    m: MessageRow,
    fields: Vec<(String, String)>,
    raw: String,
    ack: String,
    /// An inbound HL7 message of a running pipeline, for an operator.
    can_reprocess: bool,
    csrf: String,
}

/// Message text for reading: segments on their own lines.
fn readable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

pub async fn message(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Page> {
    let m = state
        .store
        .get_message(who.org(), id)
        .await?
        .ok_or_else(|| Page::not_found(format!("message {id} does not exist")))?;
    who.audit(&state, "viewed", &format!("message {id}"), None)
        .await;
    let mut fields = Vec::new();
    if let Ok(msg) = hl7v2::Message::parse(&m.raw) {
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for seg in msg.segments() {
            let sid = seg.id().to_string();
            let n = {
                let c = seen.entry(sid.clone()).or_default();
                *c += 1;
                *c
            };
            for f in 1..=seg.field_count() {
                if let Some(v) = seg.field(f).filter(|v| !v.is_empty()) {
                    fields.push((format!("{sid}({n})-{f}"), v.as_str().to_string()));
                }
            }
        }
    }
    Ok(render(&MessagePage {
        user: Some(who.view()),
        flash: None,
        m: message_row(&m),
        fields,
        raw: readable(&m.raw),
        ack: m.ack.as_deref().map(readable).unwrap_or_default(),
        can_reprocess: who.can_change()
            && m.direction == Direction::In
            && state.pipelines.contains_key(&m.channel),
        csrf: who.0.csrf.clone(),
    }))
}

/// Sends a stored inbound message through its channel again, as a new
/// message (a retransmission check would only return the first answer).
pub async fn reprocess(
    State(state): State<AppState>,
    who: Signed,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Page> {
    who.may_change(f.csrf.as_deref())?;
    let m = state
        .store
        .get_message(who.org(), id)
        .await?
        .ok_or_else(|| Page::not_found(format!("message {id} does not exist")))?;
    if m.direction != Direction::In {
        return Err(Page::bad_request(
            "Only received messages can be processed again.",
        ));
    }
    let channel = state.pipelines.get(&m.channel).ok_or_else(|| {
        Page::bad_request(format!(
            "{} has no HL7 pipeline in the running configuration to send it through",
            m.channel
        ))
    })?;
    let reply = channel
        .reprocess(
            m.raw.clone(),
            Some(format!("reprocessed by {} (message {id})", who.name())),
        )
        .await;
    who.audit(
        &state,
        "reprocessed",
        &format!("message {id}"),
        Some(&format!(
            "answer {:?}{}",
            reply.code,
            reply
                .message_id
                .map(|n| format!(", new message {n}"))
                .unwrap_or_default()
        )),
    )
    .await;
    let control = m.control_id.clone().unwrap_or_default();
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("control_id", &control)
        .append_pair("channel", &m.channel)
        .append_pair("done", "reprocessed")
        .finish();
    Ok(Redirect::to(&format!("/messages?{q}")).into_response())
}

// ---------------------------------------------------------------- audit

#[derive(Template)]
#[template(path = "audit.html")]
struct Audit {
    user: Option<UserView>,
    flash: Option<String>,
    rows: Vec<(String, String, String, String, String)>,
    older: Option<i64>,
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    before: Option<i64>,
}

pub async fn audit(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Page> {
    if who.0.user.role != "admin" {
        return Err(Page::forbidden("Only admins read the audit log."));
    }
    const PAGE: usize = 200;
    let entries = state.store.list_audit(who.org(), PAGE, q.before).await?;
    let older = (entries.len() == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(render(&Audit {
        user: Some(who.view()),
        flash: None,
        rows: entries
            .into_iter()
            .map(|e| {
                (
                    when(e.at),
                    e.actor,
                    e.action,
                    e.subject,
                    e.detail.unwrap_or_default(),
                )
            })
            .collect(),
        older,
    }))
}

// ---------------------------------------------------------------- organisations

#[derive(Template)]
#[template(path = "orgs.html")]
struct Orgs {
    user: Option<UserView>,
    flash: Option<String>,
    orgs: Vec<String>,
    current: String,
    csrf: String,
}

fn require_installation(who: &Signed) -> Result<(), Page> {
    if who.installation() {
        Ok(())
    } else {
        Err(Page::forbidden(
            "Only users of the whole installation manage organisations.",
        ))
    }
}

pub async fn orgs(
    State(state): State<AppState>,
    who: Signed,
    Query(q): Query<FlashQuery>,
) -> Result<Response, Page> {
    require_installation(&who)?;
    let mut orgs = state.store.list_orgs().await?;
    for c in state.components.iter() {
        if !orgs.contains(&c.org) {
            orgs.push(c.org.clone());
        }
    }
    if !orgs.iter().any(|o| o == medrelay_store::DEFAULT_ORG) {
        orgs.push(medrelay_store::DEFAULT_ORG.into());
    }
    orgs.sort();
    Ok(render(&Orgs {
        user: Some(who.view()),
        flash: match q.done.as_deref() {
            Some("org") => Some("The organisation was created with its first admin.".into()),
            Some("switched") => Some("Switched.".into()),
            _ => None,
        },
        orgs,
        current: who.org().to_string(),
        csrf: who.0.csrf.clone(),
    }))
}

#[derive(Deserialize)]
pub struct OrgForm {
    csrf: Option<String>,
    #[serde(default)]
    org: String,
    #[serde(default)]
    admin: String,
    #[serde(default)]
    password: String,
}

pub async fn switch_org(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    who: Signed,
    Form(f): Form<OrgForm>,
) -> Result<Response, Page> {
    who.check_csrf(f.csrf.as_deref())?;
    require_installation(&who)?;
    let org = f.org.trim();
    if !medrelay_engine::config::valid_name(org) {
        return Err(Page::bad_request(
            "An organisation is 1-64 characters of a-z, 0-9 and '-'.",
        ));
    }
    let token = super::cookie(&headers, super::SESSION_COOKIE)
        .ok_or_else(|| Page::forbidden("no session"))?;
    state
        .store
        .set_session_org(&crate::auth::hash(&token), org)
        .await?;
    let _ = state
        .store
        .audit(
            org,
            who.name(),
            "switched to",
            &format!("organisation {org}"),
            None,
        )
        .await;
    Ok(Redirect::to("/orgs?done=switched").into_response())
}

/// A new organisation with its first admin (who then manages it).
pub async fn add_org(
    State(state): State<AppState>,
    who: Signed,
    Form(f): Form<OrgForm>,
) -> Result<Response, Page> {
    who.check_csrf(f.csrf.as_deref())?;
    require_installation(&who)?;
    let org = f.org.trim();
    if !medrelay_engine::config::valid_name(org) {
        return Err(Page::bad_request(
            "An organisation is 1-64 characters of a-z, 0-9 and '-'.",
        ));
    }
    let admin = f.admin.trim();
    if admin.is_empty() || admin.len() > 100 {
        return Err(Page::bad_request(
            "The admin needs a name of 1-100 characters.",
        ));
    }
    if f.password.chars().count() < 12 {
        return Err(Page::bad_request(
            "The password must be at least 12 characters.",
        ));
    }
    let hash = medrelay_store::oauth::hash_secret(f.password).await?;
    state.store.create_user(org, admin, "admin", &hash).await?;
    let _ = state
        .store
        .audit(
            org,
            who.name(),
            "created",
            &format!("organisation {org} with admin {admin}"),
            None,
        )
        .await;
    Ok(Redirect::to("/orgs?done=org").into_response())
}
