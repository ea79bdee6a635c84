//! What devices produce and who they are: a measurement is
//! `DiagnosticReport/<id>` (its PDF as `presentedForm`) with one
//! `Observation/<id>-<n>` per value; registered devices are `Device`s;
//! `ImagingStudy` resources are stored as received (with their patient,
//! start and modalities indexed for search).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use medrelay_fhir::convert;
use medrelay_fhir::resources::{ImagingStudy, Reference};
use medrelay_store::{
    MeasurementSearch, NewStudy, StoredMeasurement, StoredStudy, StudySearch, Versioned as Stored,
};
use serde_json::{Value, json};

use super::search::{self, Param, SearchQuery, bad_value};
use super::{
    FhirError, Versioned, authorize, base_url, capability, converter, drop_id, fhir_json,
    json_body, parse_resource, prefer_return, resource_response, with_meta,
};
use crate::AppState;
use crate::error::ApiError;
use crate::oauth::OAuthBearer;

const OBSERVATION: &str = "Observation";
const REPORT: &str = "DiagnosticReport";
const DEVICE: &str = "Device";
const STUDY: &str = "ImagingStudy";

const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
/// The identifier system of a device's name (unique per organisation).
pub const DEVICE_NAME_SYSTEM: &str = "urn:medrelay:device";

/// The diagnostic service section (HL7 table 0074) of a measurement type, and
/// the types each section covers (for `category` searches).
const SECTIONS: &[(&str, &str, &[&str])] = &[
    ("EC", "Electrocardiac", &["ecg", "ekg", "holter", "abi"]),
    ("PF", "Pulmonary Function", &["spirometry", "spiro"]),
    ("AU", "Audiology", &["audiometry", "audio"]),
];

fn section(kind: &str) -> (&'static str, &'static str) {
    let k = kind.to_ascii_lowercase();
    SECTIONS
        .iter()
        .find(|(_, _, kinds)| kinds.contains(&k.as_str()))
        .map_or(("OTH", "Other"), |(code, display, _)| (code, display))
}

fn measurement_version(m: &StoredMeasurement) -> Versioned<'_> {
    Versioned {
        resource_type: REPORT,
        id: &m.measurement.id,
        version: 1,
        updated_at: m.created_at,
    }
}

/// The Observations of a measurement, each with its meta and category.
fn observations(
    m: &StoredMeasurement,
    patient_id: &str,
) -> Result<Vec<(String, Value)>, FhirError> {
    let c = converter();
    let list = c.observations(&m.measurement, &Reference::to("Patient", patient_id));
    let mut out = Vec::with_capacity(list.len());
    for o in list {
        let id = o.id.clone().unwrap_or_default();
        let mut v = with_meta(
            &o,
            &Versioned {
                resource_type: OBSERVATION,
                id: &id,
                ..measurement_version(m)
            },
        )?;
        v["category"] = json!([{"coding": [{
            "system": OBSERVATION_CATEGORY, "code": "procedure", "display": "Procedure"
        }]}]);
        out.push((id, v));
    }
    Ok(out)
}

fn report(m: &StoredMeasurement, patient_id: &str) -> Result<Value, FhirError> {
    let c = converter();
    let patient = Reference::to("Patient", patient_id);
    let results = (1..=m.measurement.observations.len())
        .map(|n| Reference::to(OBSERVATION, &format!("{}-{n}", m.measurement.id)))
        .collect();
    let mut v = with_meta(
        &c.diagnostic_report(&m.measurement, &patient, results),
        &measurement_version(m),
    )?;
    let (code, display) = section(&m.measurement.kind);
    v["category"] = json!([{"coding": [{"system": V2_0074, "code": code, "display": display}]}]);
    Ok(v)
}

/// A measurement of `org` with its PDF and its patient's id.
async fn measurement(
    state: &AppState,
    org: &str,
    id: &str,
    resource: &str,
    shown_id: &str,
) -> Result<(StoredMeasurement, String), FhirError> {
    let not_found = || FhirError::not_found(resource, shown_id);
    let m = state
        .store
        .get_measurement(org, id)
        .await?
        .ok_or_else(not_found)?;
    let patient_id = state
        .store
        .get_appointment_versioned(org, &m.measurement.appointment_id)
        .await?
        .map(|(a, _)| a.value.patient_id)
        .ok_or_else(not_found)?;
    Ok((m, patient_id))
}

/// `GET /Observation/{measurement id}-{n}`.
pub async fn read_observation(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, OBSERVATION, false)?;
    let (mid, _) = id
        .rsplit_once('-')
        .ok_or_else(|| FhirError::not_found(OBSERVATION, &id))?;
    let (m, patient_id) = measurement(&state, bearer.org(), mid, OBSERVATION, &id).await?;
    let (_, body) = observations(&m, &patient_id)?
        .into_iter()
        .find(|(oid, _)| *oid == id)
        .ok_or_else(|| FhirError::not_found(OBSERVATION, &id))?;
    Ok(resource_response(
        StatusCode::OK,
        body,
        &Versioned {
            resource_type: OBSERVATION,
            id: &id,
            ..measurement_version(&m)
        },
        None,
        prefer_return(&headers),
    ))
}

/// `GET /DiagnosticReport/{measurement id}`.
pub async fn read_report(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, REPORT, false)?;
    let (m, patient_id) = measurement(&state, bearer.org(), &id, REPORT, &id).await?;
    let body = report(&m, &patient_id)?;
    Ok(resource_response(
        StatusCode::OK,
        body,
        &measurement_version(&m),
        None,
        prefer_return(&headers),
    ))
}

/// Observation code filters (AND of ORs), applied to each value.
type CodeFilters = Vec<Vec<medrelay_store::TokenFilter>>;

/// The measurement search of an Observation or DiagnosticReport query;
/// `None` when a category can match nothing. Observation codes filter the
/// values too, so they are returned for that.
fn measurement_search(
    org: &str,
    q: &SearchQuery,
    resource: &str,
) -> Result<Option<(MeasurementSearch, CodeFilters)>, FhirError> {
    let mut s = MeasurementSearch::new(org);
    let mut codes = Vec::new();
    for p in &q.params {
        match p.name.as_str() {
            "_id" => {
                for v in &p.values {
                    // Observation ids are <measurement>-<n>.
                    let mid = if resource == OBSERVATION {
                        v.rsplit_once('-').map_or(v.as_str(), |(m, _)| m)
                    } else {
                        v.as_str()
                    };
                    s.ids.push(mid.to_string());
                }
            }
            "patient" | "subject" => s.patient_ids.extend(search::references(p, "Patient")?),
            "date" => s.performed.push(search::dates(p)?),
            "code" if resource == OBSERVATION => {
                let t = search::tokens(p)?;
                s.observation_code.push(t.clone());
                codes.push(t);
            }
            "code" => s.kind.push(search::tokens(p)?),
            "category" if !category_filter(p, resource, &mut s)? => return Ok(None),
            _ => {}
        }
    }
    s.sort = q.store_sort();
    s.offset = q.offset;
    s.limit = q.limit();
    Ok(Some((s, codes)))
}

/// Applies a `category` parameter; false when it can match nothing.
fn category_filter(
    p: &Param,
    resource: &str,
    s: &mut MeasurementSearch,
) -> Result<bool, FhirError> {
    let mut kinds = Vec::new();
    let mut everything = false;
    for t in search::tokens(p)? {
        let system_ok = |uri: &str| {
            t.systems
                .as_ref()
                .is_none_or(|systems| systems.iter().any(|s| s == uri))
        };
        if resource == OBSERVATION {
            everything |= t.value == "procedure" && system_ok(OBSERVATION_CATEGORY);
        } else if system_ok(V2_0074) {
            match SECTIONS.iter().find(|(code, _, _)| *code == t.value) {
                Some((_, _, ks)) => kinds.extend(ks.iter().map(|k| medrelay_store::TokenFilter {
                    systems: None,
                    value: (*k).to_string(),
                })),
                None if t.value == "OTH" => {
                    return Err(bad_value(
                        "category",
                        "category OTH (every other measurement type) cannot be searched; search by code instead".into(),
                    ));
                }
                None => {}
            }
        }
    }
    if everything {
        return Ok(true);
    }
    if kinds.is_empty() {
        return Ok(false);
    }
    s.kind.push(kinds);
    Ok(true)
}

/// Does observation `o` (FHIR JSON) match every code filter?
fn matches_codes(o: &Value, codes: &[Vec<medrelay_store::TokenFilter>]) -> bool {
    let codings = o["code"]["coding"].as_array().cloned().unwrap_or_default();
    codes.iter().all(|any| {
        any.iter().any(|t| {
            codings.iter().any(|c| {
                c["code"].as_str() == Some(t.value.as_str())
                    && t.systems.as_ref().is_none_or(|systems| {
                        let sys = c["system"].as_str().unwrap_or("");
                        systems.iter().any(|s| s == sys)
                    })
            })
        })
    })
}

/// `GET /DiagnosticReport?…`.
pub async fn search_reports(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, REPORT, false)?;
    let cap = capability::of(REPORT).ok_or_else(|| FhirError::not_found(REPORT, ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let (rows, total) = match measurement_search(bearer.org(), &q, REPORT)? {
        Some((s, _)) => state.store.search_measurements(s).await?,
        None => (Vec::new(), 0),
    };
    let mut matches = Vec::with_capacity(rows.len());
    for (m, patient_id) in &rows {
        // Lists leave the PDF out; a report carries it.
        let full = state
            .store
            .get_measurement(bearer.org(), &m.measurement.id)
            .await?;
        let m = full.as_ref().unwrap_or(m);
        matches.push((
            format!("{REPORT}/{}", m.measurement.id),
            report(m, patient_id)?,
        ));
    }
    let bundle = search::bundle(&base_url(&headers), &q, total, matches, Vec::new());
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// `GET /Observation?…`. Observations are paged in observation units, so the
/// measurements are walked from the start; `_offset` costs what it skips.
pub async fn search_observations(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, OBSERVATION, false)?;
    let cap = capability::of(OBSERVATION).ok_or_else(|| FhirError::not_found(OBSERVATION, ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let ids: Vec<String> = q
        .params
        .iter()
        .filter(|p| p.name == "_id")
        .flat_map(|p| p.values.iter().cloned())
        .collect();
    // Walk only as far as this page needs (one more match tells whether a
    // next page exists), unless the client asked for the count: then the
    // whole walk gives the exact total. A partial walk reports no total.
    let wanted = if q.summary_count {
        usize::MAX
    } else {
        q.offset.saturating_add(q.limit()).saturating_add(1)
    };
    let mut all = Vec::new();
    let mut complete = true;
    if let Some((mut s, codes)) = measurement_search(bearer.org(), &q, OBSERVATION)? {
        const BATCH: usize = 200;
        s.offset = 0;
        s.limit = BATCH;
        'walk: loop {
            let (rows, _) = state.store.search_measurements(s.clone()).await?;
            for (m, patient_id) in &rows {
                for (id, o) in observations(m, patient_id)? {
                    if (ids.is_empty() || ids.contains(&id)) && matches_codes(&o, &codes) {
                        all.push((format!("{OBSERVATION}/{id}"), o));
                        if all.len() >= wanted {
                            complete = false;
                            break 'walk;
                        }
                    }
                }
            }
            if rows.len() < BATCH {
                break;
            }
            s.offset += BATCH;
        }
    }
    let found = u64::try_from(all.len()).unwrap_or(u64::MAX);
    let matches: Vec<(String, Value)> = all.into_iter().skip(q.offset).take(q.limit()).collect();
    let mut bundle = search::bundle(&base_url(&headers), &q, found, matches, Vec::new());
    if !complete && let Some(b) = bundle.as_object_mut() {
        // `total` is optional in a searchset; a guess would mislead.
        b.remove("total");
    }
    Ok(fhir_json(StatusCode::OK, &bundle))
}

// ---------------------------------------------------------------- devices

fn device_json(d: &medrelay_worklist::Device) -> Result<Value, FhirError> {
    let mut v = with_meta(
        &convert::device(d),
        &Versioned {
            resource_type: DEVICE,
            id: &d.id,
            version: 1,
            updated_at: d.created_at,
        },
    )?;
    v["identifier"] = json!([{"system": DEVICE_NAME_SYSTEM, "value": d.name}]);
    Ok(v)
}

/// `GET /Device/{id}`.
pub async fn read_device(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, DEVICE, false)?;
    let d = state
        .store
        .get_device(bearer.org(), &id)
        .await?
        .ok_or_else(|| FhirError::not_found(DEVICE, &id))?;
    Ok(resource_response(
        StatusCode::OK,
        device_json(&d)?,
        &Versioned {
            resource_type: DEVICE,
            id: &d.id,
            version: 1,
            updated_at: d.created_at,
        },
        None,
        prefer_return(&headers),
    ))
}

/// `GET /Device?…`: an organisation has few devices, so they are filtered here.
pub async fn search_devices(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, DEVICE, false)?;
    let cap = capability::of(DEVICE).ok_or_else(|| FhirError::not_found(DEVICE, ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let mut devices = state.store.list_devices(bearer.org()).await?;
    for p in &q.params {
        match p.name.as_str() {
            "_id" => devices.retain(|d| p.values.contains(&d.id)),
            "identifier" => {
                let tokens = search::tokens(p)?;
                devices.retain(|d| {
                    tokens.iter().any(|t| {
                        t.value == d.name
                            && t.systems
                                .as_ref()
                                .is_none_or(|s| s.iter().any(|s| s == DEVICE_NAME_SYSTEM))
                    })
                });
            }
            _ => {}
        }
    }
    devices.sort_by(|a, b| {
        let desc = q.sort.first().is_some_and(|(_, d)| *d);
        let key = |d: &medrelay_worklist::Device| d.id.parse::<i64>().unwrap_or(i64::MAX);
        if desc {
            key(b).cmp(&key(a))
        } else {
            key(a).cmp(&key(b))
        }
    });
    let total = u64::try_from(devices.len()).unwrap_or(u64::MAX);
    let mut matches = Vec::new();
    for d in devices.iter().skip(q.offset).take(q.limit()) {
        matches.push((format!("{DEVICE}/{}", d.id), device_json(d)?));
    }
    let bundle = search::bundle(&base_url(&headers), &q, total, matches, Vec::new());
    Ok(fhir_json(StatusCode::OK, &bundle))
}

// ---------------------------------------------------------------- studies

fn study_json(s: &Stored<StoredStudy>) -> Result<Value, FhirError> {
    let mut v: Value = serde_json::from_str(&s.value.json).map_err(|e| {
        FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("stored ImagingStudy/{} is unreadable: {e}", s.value.id),
        )
    })?;
    v["id"] = json!(s.value.id);
    v["meta"] = serde_json::to_value(medrelay_fhir::search::meta(s.version, s.updated_at))
        .unwrap_or(Value::Null);
    Ok(v)
}

fn study_version(s: &Stored<StoredStudy>) -> Versioned<'_> {
    Versioned {
        resource_type: STUDY,
        id: &s.value.id,
        version: s.version,
        updated_at: s.updated_at,
    }
}

/// `GET /ImagingStudy/{id}`.
pub async fn read_study(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, STUDY, false)?;
    let s = state
        .store
        .get_study(bearer.org(), &id)
        .await?
        .ok_or_else(|| FhirError::not_found(STUDY, &id))?;
    Ok(resource_response(
        StatusCode::OK,
        study_json(&s)?,
        &study_version(&s),
        None,
        prefer_return(&headers),
    ))
}

/// `POST /ImagingStudy`: validated, its patient must exist; stored as given.
pub async fn create_study(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, STUDY, true)?;
    let mut value = json_body(body, STUDY)?;
    drop_id(&mut value);
    let study: ImagingStudy = parse_resource(STUDY, &value)?;
    let patient_id = medrelay_fhir::search::parse_reference(
        study.subject.reference.as_deref().unwrap_or(""),
        "Patient",
    )
    .map_err(|e| {
        FhirError::issues(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![medrelay_fhir::resources::Issue::error(
                "value",
                "ImagingStudy.subject",
                e,
            )],
        )
    })?;
    if state
        .store
        .get_patient(bearer.org(), &patient_id)
        .await?
        .is_none()
    {
        return Err(FhirError::issues(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![medrelay_fhir::resources::Issue::error(
                "not-found",
                "ImagingStudy.subject",
                format!("Patient/{patient_id} does not exist"),
            )],
        ));
    }
    let mut modalities: Vec<String> = study
        .modality
        .iter()
        .chain(study.series.iter().map(|s| &s.modality))
        .filter_map(|c| c.code.clone())
        .collect();
    modalities.sort();
    modalities.dedup();
    let stored = state
        .store
        .create_study(NewStudy {
            org: bearer.org().to_string(),
            patient_id: Some(patient_id),
            // Indexed in local time, like every stored time; the resource
            // itself is kept as sent.
            started: study
                .started
                .as_deref()
                .map(|t| super::converter().local_time(t)),
            modalities,
            json: value.to_string(),
        })
        .await?;
    let base = base_url(&headers);
    Ok(resource_response(
        StatusCode::CREATED,
        study_json(&stored)?,
        &study_version(&stored),
        Some(&base),
        prefer_return(&headers),
    ))
}

/// `GET /ImagingStudy?…`.
pub async fn search_studies(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, STUDY, false)?;
    let cap = capability::of(STUDY).ok_or_else(|| FhirError::not_found(STUDY, ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let mut s = StudySearch::new(bearer.org());
    for p in &q.params {
        match p.name.as_str() {
            "_id" => s.ids.extend(p.values.iter().cloned()),
            "patient" | "subject" => s.patient_ids.extend(search::references(p, "Patient")?),
            "started" => s.started.push(search::dates(p)?),
            "modality" => s.modality.push(search::tokens(p)?),
            _ => {}
        }
    }
    s.sort = q.store_sort();
    s.limit = q.limit();
    s.offset = q.offset;
    let (rows, total) = state.store.search_studies(s).await?;
    let mut matches = Vec::with_capacity(rows.len());
    for st in &rows {
        matches.push((format!("{STUDY}/{}", st.value.id), study_json(st)?));
    }
    let bundle = search::bundle(&base_url(&headers), &q, total, matches, Vec::new());
    Ok(fhir_json(StatusCode::OK, &bundle))
}
