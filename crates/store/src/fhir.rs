//! The store's types for the FHIR R4 API: versioned records and the searches.
//!
//! Every search struct follows the same rules. A `Vec<Vec<X>>` field is an AND
//! of ORs: the outer vector is the repeated parameter (each must match), the
//! inner one its comma-separated values (one must match; an empty inner vector
//! matches nothing). A plain `Vec<X>` field is an OR. An empty outer vector is
//! no filter. `org` always applies. Results come in `sort` order, then by id
//! ascending (so offset paging is stable; NULLs sort first when ascending), and
//! `limit`/`offset` page them; every search also returns the number of all
//! matches, ignoring the paging. A sort key that does not apply to the
//! resource (e.g. [`SortKey::Authored`] for patients) is ignored.

use medrelay_worklist::AppointmentStatus;

use crate::types::{DEFAULT_ORG, Millis};

/// The page size of a search built with `new`.
const DEFAULT_LIMIT: usize = 50;

/// A record with its version (FHIR meta.versionId / lastUpdated).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
    pub updated_at: Millis,
    /// soft-deleted appointments only
    pub deleted_at: Option<Millis>,
}

/// Comparison of a FHIR date search parameter. The parameter's value is the range [lo, hi)
/// (ISO-8601 text, e.g. lo "2000-05-01", hi "2000-06-01"; compare as TEXT). For a stored value v:
/// Eq: lo <= v < hi; Ne: not Eq; Lt: v < lo; Le: v < hi; Gt: v >= hi; Ge: v >= lo. NULL v never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One value of a date parameter: see [`DateOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFilter {
    pub op: DateOp,
    pub lo: String,
    pub hi: String,
}

/// An identifier or code: `systems` None = any system, Some(list) = stored system is one of them.
/// A missing stored system compares as `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFilter {
    pub systems: Option<Vec<String>>,
    pub value: String,
}

/// How a string parameter's value matches (FHIR R4 search §3.1.1.4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StringMatch {
    /// No modifier: the name starts with the value, regardless of case and
    /// accents (both [`fold`](crate::fold::fold)ed).
    #[default]
    StartsWith,
    /// `:contains`: the value anywhere in the name, regardless of case and accents.
    Contains,
    /// `:exact`: the whole name, case and accents included.
    Exact,
}

/// One value of a string parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringFilter {
    pub value: String,
    pub how: StringMatch,
}

impl StringFilter {
    pub fn new(value: impl Into<String>, how: StringMatch) -> Self {
        StringFilter {
            value: value.into(),
            how,
        }
    }
}

/// "Starts with", the default.
impl From<&str> for StringFilter {
    fn from(value: &str) -> Self {
        StringFilter::new(value, StringMatch::StartsWith)
    }
}

impl From<String> for StringFilter {
    fn from(value: String) -> Self {
        StringFilter::new(value, StringMatch::StartsWith)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    LastUpdated,
    /// birth_date for patients, scheduled_at for appointments, performed_at for
    /// measurements, started for studies
    Date,
    /// appointments: json $.order.request_date
    Authored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

/// A search over the patients of `org` (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    pub org: String,
    /// Ids that are not valid ids match nothing.
    pub ids: Vec<String>,
    /// Value equal and, with systems, the system one of them; only the patient
    /// owning the identifier (see `Store::create_patient`) matches.
    pub identifier: Vec<Vec<TokenFilter>>,
    /// The family name, as each value asks (see [`StringMatch`]).
    pub family: Vec<Vec<StringFilter>>,
    /// Any given name.
    pub given: Vec<Vec<StringFilter>>,
    /// the family or any given name (not prefix or suffix)
    pub name: Vec<Vec<StringFilter>>,
    pub birthdate: Vec<Vec<DateFilter>>,
    /// stored model `sex` values, lowercase compare
    pub gender: Vec<Vec<String>>,
    pub sort: Vec<Sort>,
    pub limit: usize,
    pub offset: usize,
}

impl PatientSearch {
    /// Every patient of `org`, 50 per page.
    pub fn new(org: impl Into<String>) -> Self {
        PatientSearch {
            org: org.into(),
            ids: Vec::new(),
            identifier: Vec::new(),
            family: Vec::new(),
            given: Vec::new(),
            name: Vec::new(),
            birthdate: Vec::new(),
            gender: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Default for PatientSearch {
    fn default() -> Self {
        PatientSearch::new(DEFAULT_ORG)
    }
}

/// A search over the appointments of `org`; soft-deleted ones never match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentSearch {
    pub org: String,
    pub ids: Vec<String>,
    pub patient_ids: Vec<String>,
    pub groups: Vec<String>,
    pub statuses: Vec<AppointmentStatus>,
    pub scheduled: Vec<Vec<DateFilter>>,
    /// `$.order.request_date`
    pub authored: Vec<Vec<DateFilter>>,
    /// placer or filler order number equals the value (systems ignored)
    pub order_number: Vec<Vec<TokenFilter>>,
    /// $.order.procedure.code or $.order.procedure_code.code equals value; systems compare with the coded's `system`
    pub code: Vec<Vec<TokenFilter>>,
    pub sort: Vec<Sort>,
    pub limit: usize,
    pub offset: usize,
}

impl AppointmentSearch {
    /// Every undeleted appointment of `org`, 50 per page.
    pub fn new(org: impl Into<String>) -> Self {
        AppointmentSearch {
            org: org.into(),
            ids: Vec::new(),
            patient_ids: Vec::new(),
            groups: Vec::new(),
            statuses: Vec::new(),
            scheduled: Vec::new(),
            authored: Vec::new(),
            order_number: Vec::new(),
            code: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Default for AppointmentSearch {
    fn default() -> Self {
        AppointmentSearch::new(DEFAULT_ORG)
    }
}

/// A search over the measurements of `org`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementSearch {
    pub org: String,
    pub ids: Vec<String>,
    /// via the appointment's patient
    pub patient_ids: Vec<String>,
    pub performed: Vec<Vec<DateFilter>>,
    /// any of its observations has this code (and, with systems, one of these systems)
    pub observation_code: Vec<Vec<TokenFilter>>,
    /// measurement `kind` equals value (case-insensitive; systems ignored)
    pub kind: Vec<Vec<TokenFilter>>,
    pub sort: Vec<Sort>,
    pub limit: usize,
    pub offset: usize,
}

impl MeasurementSearch {
    /// Every measurement of `org`, 50 per page.
    pub fn new(org: impl Into<String>) -> Self {
        MeasurementSearch {
            org: org.into(),
            ids: Vec::new(),
            patient_ids: Vec::new(),
            performed: Vec::new(),
            observation_code: Vec::new(),
            kind: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Default for MeasurementSearch {
    fn default() -> Self {
        MeasurementSearch::new(DEFAULT_ORG)
    }
}

/// A search over the imaging studies of `org`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudySearch {
    pub org: String,
    pub ids: Vec<String>,
    pub patient_ids: Vec<String>,
    pub started: Vec<Vec<DateFilter>>,
    /// code in modalities (exact, case-sensitive), systems ignored
    pub modality: Vec<Vec<TokenFilter>>,
    pub sort: Vec<Sort>,
    pub limit: usize,
    pub offset: usize,
}

impl StudySearch {
    /// Every imaging study of `org`, 50 per page.
    pub fn new(org: impl Into<String>) -> Self {
        StudySearch {
            org: org.into(),
            ids: Vec::new(),
            patient_ids: Vec::new(),
            started: Vec::new(),
            modality: Vec::new(),
            sort: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Default for StudySearch {
    fn default() -> Self {
        StudySearch::new(DEFAULT_ORG)
    }
}

/// An imaging study to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStudy {
    pub org: String,
    /// Must name a patient of `org`.
    pub patient_id: Option<String>,
    pub started: Option<String>,
    /// Modality codes (e.g. `CT`); empty ones are dropped.
    pub modalities: Vec<String>,
    /// the resource JSON as given (the server sets id/meta when it serves it)
    pub json: String,
}

/// An imaging study as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStudy {
    pub id: String,
    pub patient_id: Option<String>,
    pub json: String,
}
