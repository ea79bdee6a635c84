//! Patient: read, vread, history, search, create (conditional with
//! `If-None-Exist`) and update (`If-Match`). The same rows HL7, GDT and JSON
//! orders upsert: an HL7 ADT that changes a patient makes a new version here.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use medrelay_fhir::convert;
use medrelay_fhir::resources::Patient as FhirPatient;
use medrelay_fhir::search as fs;
use medrelay_store::{PatientSearch, Versioned as Stored};
use medrelay_worklist::Patient;
use serde_json::{Value, json};

use super::search::{self, SearchQuery, bad_value};
use super::{
    FhirError, Versioned, authorize, base_url, capability, check_body_id, drop_id, if_match,
    json_body, parse_resource, prefer_return, resource_response, with_meta,
};
use crate::AppState;
use crate::error::ApiError;
use crate::oauth::OAuthBearer;

const PATIENT: &str = "Patient";

/// The FHIR Patient of a stored version.
pub(crate) fn to_fhir(p: &Stored<Patient>) -> Result<Value, FhirError> {
    with_meta(
        &convert::patient(&p.value),
        &Versioned {
            resource_type: PATIENT,
            id: &p.value.id,
            version: p.version,
            updated_at: p.updated_at,
        },
    )
}

fn answer(
    status: StatusCode,
    p: &Stored<Patient>,
    headers: &HeaderMap,
    location: bool,
) -> Result<Response, FhirError> {
    let body = to_fhir(p)?;
    let base = base_url(headers);
    Ok(resource_response(
        status,
        body,
        &Versioned {
            resource_type: PATIENT,
            id: &p.value.id,
            version: p.version,
            updated_at: p.updated_at,
        },
        location.then_some(base.as_str()),
        prefer_return(headers),
    ))
}

/// `GET /Patient/{id}`.
pub async fn read(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, false)?;
    let p = state
        .store
        .get_patient_versioned(bearer.org(), &id)
        .await?
        .ok_or_else(|| FhirError::not_found(PATIENT, &id))?;
    answer(StatusCode::OK, &p, &headers, false)
}

/// `GET /Patient/{id}/_history/{vid}`.
pub async fn vread(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path((id, vid)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, false)?;
    let version: i64 = vid.parse().map_err(|_| {
        FhirError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{vid:?} is not a version of Patient/{id} (versions are 1, 2, 3 …)"),
        )
    })?;
    let p = state
        .store
        .patient_version(bearer.org(), &id, version)
        .await?
        .ok_or_else(|| {
            FhirError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("Patient/{id} has no version {version}"),
            )
        })?;
    answer(StatusCode::OK, &p, &headers, false)
}

/// `GET /Patient/{id}/_history`: a history Bundle, newest version first.
pub async fn history(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, false)?;
    let mut count = search::DEFAULT_COUNT;
    let mut offset = 0usize;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| bad_value("_count", format!("not a number: {v:?}")))?
                    .clamp(1, search::MAX_COUNT)
            }
            "_offset" => {
                offset = v
                    .parse()
                    .map_err(|_| bad_value("_offset", format!("not a number: {v:?}")))?
            }
            _ => {}
        }
    }
    let (versions, total) = state
        .store
        .patient_history(bearer.org(), &id, count, offset)
        .await?;
    if total == 0 {
        return Err(FhirError::not_found(PATIENT, &id));
    }
    let base = base_url(&headers);
    let mut entry = Vec::new();
    for v in &versions {
        let resource = to_fhir(v)?;
        // The oldest version was a create; every later one an update.
        let method = if v.version == 1 { "POST" } else { "PUT" };
        let status = if v.version == 1 {
            "201 Created"
        } else {
            "200 OK"
        };
        entry.push(json!({
            "fullUrl": format!("{base}/Patient/{id}"),
            "resource": resource,
            "request": {
                "method": method,
                "url": if method == "POST" { "Patient".to_string() } else { format!("Patient/{id}") },
            },
            "response": {
                "status": status,
                "etag": format!("W/\"{}\"", v.version),
                "lastModified": fs::instant_from_millis(v.updated_at),
            },
        }));
    }
    let url =
        |offset: usize| format!("{base}/Patient/{id}/_history?_count={count}&_offset={offset}");
    let mut link = vec![json!({"relation": "self", "url": url(offset)})];
    if u64::try_from(offset + versions.len()).unwrap_or(u64::MAX) < total {
        link.push(json!({"relation": "next", "url": url(offset + count)}));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": link,
        "entry": entry,
    });
    Ok(super::fhir_json(StatusCode::OK, &bundle))
}

/// The store search for a checked query.
pub(crate) fn store_search(org: &str, q: &SearchQuery) -> Result<PatientSearch, FhirError> {
    let mut s = PatientSearch::new(org);
    for p in &q.params {
        match p.name.as_str() {
            "_id" => s.ids.extend(p.values.iter().cloned()),
            "identifier" => s.identifier.push(search::tokens(p)?),
            "family" => s.family.push(search::strings(p)),
            "given" => s.given.push(search::strings(p)),
            "name" => s.name.push(search::strings(p)),
            "birthdate" => s.birthdate.push(search::dates(p)?),
            "gender" => {
                let mut values = Vec::new();
                for v in &p.values {
                    let stored = fs::gender_values(v).map_err(|e| bad_value("gender", e))?;
                    values.extend(stored.into_iter().map(str::to_string));
                }
                s.gender.push(values);
            }
            _ => {}
        }
    }
    s.sort = q.store_sort();
    s.limit = q.limit();
    s.offset = q.offset;
    Ok(s)
}

/// `GET /Patient?…`.
pub async fn search(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, false)?;
    let cap = capability::of(PATIENT).ok_or_else(|| FhirError::not_found(PATIENT, ""))?;
    let q = SearchQuery::parse(raw.as_deref(), cap, &headers)?;
    let (rows, total) = state
        .store
        .search_patients(store_search(bearer.org(), &q)?)
        .await?;
    let mut matches = Vec::with_capacity(rows.len());
    for p in &rows {
        matches.push((format!("Patient/{}", p.value.id), to_fhir(p)?));
    }
    let bundle = search::bundle(&base_url(&headers), &q, total, matches, Vec::new());
    Ok(super::fhir_json(StatusCode::OK, &bundle))
}

/// The model patient of a received FHIR Patient, or 422 with every problem.
fn incoming(value: &Value) -> Result<Patient, FhirError> {
    let fhir: FhirPatient = parse_resource(PATIENT, value)?;
    convert::patient_to_model(&fhir)
        .map_err(|issues| FhirError::issues(StatusCode::UNPROCESSABLE_ENTITY, issues))
}

/// `POST /Patient`; with `If-None-Exist: identifier=…` an existing match is
/// returned (200) instead of creating a duplicate, several matches are 412.
pub async fn create(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, true)?;
    let mut value = json_body(body, PATIENT)?;
    drop_id(&mut value);
    let patient = incoming(&value)?;
    let cap = capability::of(PATIENT).ok_or_else(|| FhirError::not_found(PATIENT, ""))?;
    if let Some(q) = SearchQuery::if_none_exist(&headers, cap)? {
        let s = store_search(bearer.org(), &q)?;
        let (found, total) = state.store.search_patients(s).await?;
        match (total, found.first()) {
            (0, _) => {}
            (1, Some(existing)) => return answer(StatusCode::OK, existing, &headers, false),
            _ => {
                return Err(FhirError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "multiple-matches",
                    format!("If-None-Exist matches {total} patients; make it more selective"),
                ));
            }
        }
    }
    let created = state.store.create_patient(bearer.org(), patient).await?;
    answer(StatusCode::CREATED, &created, &headers, true)
}

/// `PUT /Patient/{id}`: replaces the patient; `If-Match` guards against
/// overwriting a version the client has not seen (412). Ids are the
/// server's: a PUT to an unknown id is 405, not a create.
pub async fn update(
    State(state): State<AppState>,
    bearer: Result<OAuthBearer, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let bearer = authorize(bearer, PATIENT, true)?;
    let value = json_body(body, PATIENT)?;
    check_body_id(&value, &id)?;
    let expected = if_match(&headers)?;
    let patient = incoming(&value)?;
    let updated = match state
        .store
        .update_patient(bearer.org(), &id, patient, expected)
        .await
    {
        Err(medrelay_store::StoreError::NotFound) => {
            return Err(FhirError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                format!(
                    "Patient/{id} does not exist and this server assigns ids itself: create it with POST /Patient"
                ),
            ));
        }
        other => other?,
    };
    answer(StatusCode::OK, &updated, &headers, true)
}
