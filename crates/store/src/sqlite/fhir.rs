//! The statements of the FHIR R4 API: versioned reads, history, searches and
//! the FHIR writes (create/update of patients, update of appointments, imaging
//! studies). Versions themselves are kept by the triggers of migration 0004.
//!
//! Searches build their SQL from the filters given, with bound parameters
//! only. Each runs its COUNT and its page inside one read transaction, so the
//! total and the rows come from the same snapshot.

use medrelay_worklist::{Appointment, AppointmentStatus, Patient};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::names::{NameRow, SEP, fold_part, index_names};
use super::worklist::{
    APPOINTMENT_COLS, MAX_PATIENT_IDENTIFIERS, MEASUREMENT_COLS, appointment_doc,
    appointment_only_from_row, json_col, limit_offset, measurement_from_row, merge_appointment,
    new_patient_row, non_empty, parse_id, stored_measurement, system_key, to_json_text,
    usable_identifiers,
};
use crate::domain::StoredMeasurement;
use crate::error::StoreError;
use crate::fhir::{
    AppointmentSearch, DateFilter, DateOp, MeasurementSearch, NewStudy, PatientSearch, Sort,
    SortKey, StoredStudy, StringFilter, StringMatch, StudySearch, TokenFilter, Versioned,
};
use crate::types::Millis;

// ---------------------------------------------------------------- helpers

/// Runs `work` inside one read transaction (one snapshot for all its statements).
fn snapshot<T>(
    conn: &Connection,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = work();
    conn.prepare_cached("COMMIT")?.execute([])?;
    result
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The valid ids of a filter list; `None` when the list is non-empty but none
/// is valid, so the search matches nothing.
fn valid_ids(ids: &[String]) -> Option<Vec<i64>> {
    let parsed: Vec<i64> = ids.iter().filter_map(|id| parse_id(id)).collect();
    (ids.is_empty() || !parsed.is_empty()).then_some(parsed)
}

/// A WHERE clause under construction: every `?` in `sql` has its value in
/// `args`, in order.
struct Filter {
    sql: String,
    args: Vec<Value>,
    org: String,
}

impl Filter {
    fn new(base: &str, org: &str) -> Self {
        Filter {
            sql: base.to_owned(),
            args: vec![Value::Text(org.to_owned())],
            org: org.to_owned(),
        }
    }

    fn text(&mut self, v: &str) -> &'static str {
        self.args.push(Value::Text(v.to_owned()));
        "?"
    }

    fn placeholders(n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    /// `AND expr IN (values)`; nothing for an empty list.
    fn any_of(&mut self, expr: &str, values: impl IntoIterator<Item = Value>) {
        let before = self.args.len();
        self.args.extend(values);
        let n = self.args.len() - before;
        if n > 0 {
            self.sql
                .push_str(&format!(" AND {expr} IN ({})", Filter::placeholders(n)));
        }
    }

    fn ids(&mut self, expr: &str, ids: &[i64]) {
        self.any_of(expr, ids.iter().map(|&id| Value::Integer(id)));
    }

    /// AND over `groups`, OR within each; `one` writes the condition of one
    /// value (pushing its arguments through the `Filter` it is given).
    fn and_of_ors<X>(&mut self, groups: &[Vec<X>], one: impl Fn(&mut Filter, &X) -> String) {
        for group in groups {
            let ors: Vec<String> = group.iter().map(|x| one(self, x)).collect();
            if ors.is_empty() {
                // OR over nothing.
                self.sql.push_str(" AND 0");
            } else {
                self.sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
            }
        }
    }

    /// The condition of one date value on `expr` (a NULL never matches).
    fn date(&mut self, expr: &str, d: &DateFilter) -> String {
        match d.op {
            DateOp::Eq => {
                let (lo, hi) = (self.text(&d.lo), self.text(&d.hi));
                format!("({expr} >= {lo} AND {expr} < {hi})")
            }
            DateOp::Ne => {
                let (lo, hi) = (self.text(&d.lo), self.text(&d.hi));
                format!("({expr} < {lo} OR {expr} >= {hi})")
            }
            DateOp::Lt => format!("{expr} < {}", self.text(&d.lo)),
            DateOp::Le => format!("{expr} < {}", self.text(&d.hi)),
            DateOp::Gt => format!("{expr} >= {}", self.text(&d.hi)),
            DateOp::Ge => format!("{expr} >= {}", self.text(&d.lo)),
        }
    }

    fn dates(&mut self, expr: &str, groups: &[Vec<DateFilter>]) {
        self.and_of_ors(groups, |f, d| f.date(expr, d));
    }

    /// `AND system IN (…)` for a token with systems (a missing stored system
    /// being `system_expr`'s `''`).
    fn systems(&mut self, system_expr: &str, t: &TokenFilter) -> String {
        match &t.systems {
            None => String::new(),
            Some(list) => {
                self.args
                    .extend(list.iter().map(|s| Value::Text(s.clone())));
                format!(
                    " AND {system_expr} IN ({})",
                    Filter::placeholders(list.len())
                )
            }
        }
    }

    /// The COUNT(*) of this filter's matches, then the page of `select` in
    /// `order` (see [`order_by`]), mapped by `map`. Call it inside a
    /// [`snapshot`] so both see the same rows.
    fn run<T>(
        mut self,
        conn: &Connection,
        select: &str,
        order: &str,
        (limit, offset): (usize, usize),
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let count_sql = format!("SELECT COUNT(*) {}", self.sql);
        let where_args = self.args.len();
        self.sql.push_str(order);
        let (lim, off) = limit_offset(limit, offset);
        self.sql.push_str(" LIMIT ? OFFSET ?");
        self.args.push(Value::Integer(lim));
        self.args.push(Value::Integer(off));
        let page_sql = format!("SELECT {select} {}", self.sql);
        let total: i64 = conn
            .prepare_cached(&count_sql)?
            .query_row(params_from_iter(&self.args[..where_args]), |row| row.get(0))?;
        if limit == 0 || total == 0 {
            return Ok((Vec::new(), count(total)));
        }
        let rows = conn
            .prepare_cached(&page_sql)?
            .query_map(params_from_iter(&self.args), map)?
            .collect::<Result<Vec<T>, _>>()?;
        Ok((rows, count(total)))
    }
}

/// ` ORDER BY` the sort keys, then `id` ascending so that offset paging is
/// stable; `column` maps a key to its expression (`None`: the key does not
/// apply to the resource and is skipped). SQLite sorts NULLs first ascending.
fn order_by(sort: &[Sort], id: &str, column: fn(SortKey) -> Option<&'static str>) -> String {
    let mut keys: Vec<String> = sort
        .iter()
        .filter_map(|s| {
            column(s.key).map(|c| format!("{c} {}", if s.descending { "DESC" } else { "ASC" }))
        })
        .collect();
    keys.push(format!("{id} ASC"));
    format!(" ORDER BY {}", keys.join(", "))
}

// ---------------------------------------------------------------- patients

const PATIENT_VERSION_COLS: &str = "p.id, p.version, p.updated_at, p.json";

/// A patient from (id, version, updated_at, json).
fn versioned_patient(row: &Row<'_>) -> rusqlite::Result<Versioned<Patient>> {
    let mut p: Patient = json_col(row, 3)?;
    p.id = row.get::<_, i64>(0)?.to_string();
    Ok(Versioned {
        value: p,
        version: row.get(1)?,
        updated_at: row.get(2)?,
        deleted_at: None,
    })
}

fn load_versioned_patient(
    conn: &Connection,
    org: &str,
    id: i64,
) -> Result<Option<Versioned<Patient>>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PATIENT_VERSION_COLS} FROM patients p WHERE p.id = ?1 AND p.org = ?2"
        ))?
        .query_row(params![id, org], versioned_patient)
        .optional()?)
}

pub(crate) fn get_patient_versioned(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<Versioned<Patient>>, StoreError> {
    match parse_id(id) {
        Some(id) => load_versioned_patient(conn, org, id),
        None => Ok(None),
    }
}

/// Every version of a patient, current row and history alike.
const PATIENT_VERSIONS: &str = "SELECT id, version, updated_at, json FROM patients \
     WHERE id = ?1 AND org = ?2 \
     UNION ALL \
     SELECT patient_id, version, updated_at, json FROM patient_history \
     WHERE patient_id = ?1 AND org = ?2";

pub(crate) fn patient_version(
    conn: &Connection,
    org: &str,
    id: &str,
    version: i64,
) -> Result<Option<Versioned<Patient>>, StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT * FROM ({PATIENT_VERSIONS}) WHERE version = ?3"
        ))?
        .query_row(params![id, org, version], versioned_patient)
        .optional()?)
}

pub(crate) fn patient_history(
    conn: &Connection,
    org: &str,
    id: &str,
    limit: usize,
    offset: usize,
) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok((Vec::new(), 0));
    };
    let (limit, offset) = limit_offset(limit, offset);
    snapshot(conn, || {
        let total: i64 = conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM ({PATIENT_VERSIONS})"))?
            .query_row(params![id, org], |row| row.get(0))?;
        let rows = conn
            .prepare_cached(&format!(
                "{PATIENT_VERSIONS} ORDER BY version DESC LIMIT ?3 OFFSET ?4"
            ))?
            .query_map(params![id, org, limit, offset], versioned_patient)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, count(total)))
    })
}

fn patient_sort_column(key: SortKey) -> Option<&'static str> {
    match key {
        SortKey::Id => Some("p.id"),
        SortKey::LastUpdated => Some("p.updated_at"),
        SortKey::Date => Some("json_extract(p.json, '$.birth_date')"),
        SortKey::Authored => None,
    }
}

/// Which name parts a string parameter searches.
#[derive(Clone, Copy)]
enum NamePart {
    Family,
    Given,
    /// `name`: the family or any given name.
    Any,
}

/// The condition of one string value on a patient's names: a scan of the
/// narrow `patient_names` rows (migration 0008) with `instr`. Given names are
/// each opened and closed by `SEP` and a folded value holds none, so a match
/// never spans two names. `:exact` narrows by the folded name, then compares
/// the stored text.
fn name_match(f: &mut Filter, part: NamePart, v: &StringFilter) -> String {
    let folded = fold_part(&v.value);
    let sep = SEP.to_string();
    let (family, given) = match v.how {
        StringMatch::StartsWith => ("instr(n.family, ?) = 1", "instr(n.given, ?) > 0"),
        StringMatch::Contains => ("instr(n.family, ?) > 0", "instr(n.given, ?) > 0"),
        StringMatch::Exact => ("n.family = ?", "instr(n.given, ?) > 0"),
    };
    let given_value = match v.how {
        StringMatch::StartsWith => format!("{sep}{folded}"),
        StringMatch::Contains => folded.clone(),
        StringMatch::Exact => format!("{sep}{folded}{sep}"),
    };
    let org = f.org.clone();
    f.text(&org);
    let folded_match = match part {
        NamePart::Family => {
            f.text(&folded);
            format!("n.family <> '' AND {family}")
        }
        NamePart::Given => {
            f.text(&given_value);
            format!("n.given <> '' AND {given}")
        }
        NamePart::Any => {
            f.text(&folded);
            f.text(&given_value);
            format!("((n.family <> '' AND {family}) OR (n.given <> '' AND {given}))")
        }
    };
    let names = format!(
        "p.id IN (SELECT n.patient_id FROM patient_names n WHERE n.org = ? AND {folded_match})"
    );
    if v.how != StringMatch::Exact {
        return names;
    }
    let family = "json_extract(p.json, '$.family') = ?";
    let given = "EXISTS (SELECT 1 FROM json_each(p.json, '$.given') g WHERE g.value = ?)";
    let exact = match part {
        NamePart::Family => {
            f.text(&v.value);
            family.to_string()
        }
        NamePart::Given => {
            f.text(&v.value);
            given.to_string()
        }
        NamePart::Any => {
            f.text(&v.value);
            f.text(&v.value);
            format!("({family} OR {given})")
        }
    };
    format!("({names} AND {exact})")
}

/// Per AND group: the patients owning one of the identifiers (found through
/// the primary key with systems, else the (org, value) index; one IN list, so
/// the search starts from them instead of scanning the organisation),
/// provided their JSON still lists a matching identifier.
fn identifier_filter(f: &mut Filter, groups: &[Vec<TokenFilter>]) {
    for group in groups {
        if group.is_empty() {
            f.sql.push_str(" AND 0");
            continue;
        }
        let mut owners = Vec::new();
        for t in group {
            let org = f.org.clone();
            f.text(&org);
            f.text(&t.value);
            let systems = f.systems("i.system", t);
            owners.push(format!(
                "SELECT i.patient_id FROM patient_identifiers i \
                 WHERE i.org = ? AND i.value = ?{systems}"
            ));
        }
        let mut listed = Vec::new();
        for t in group {
            f.text(&t.value);
            let systems = f.systems("coalesce(json_extract(j.value, '$.system'), '')", t);
            listed.push(format!("(json_extract(j.value, '$.value') = ?{systems})"));
        }
        f.sql.push_str(&format!(
            " AND p.id IN ({}) \
             AND EXISTS (SELECT 1 FROM json_each(p.json, '$.identifiers') j WHERE {})",
            owners.join(" UNION ALL "),
            listed.join(" OR ")
        ));
    }
}

pub(crate) fn search_patients(
    conn: &Connection,
    q: &PatientSearch,
) -> Result<(Vec<Versioned<Patient>>, u64), StoreError> {
    let Some(ids) = valid_ids(&q.ids) else {
        return Ok((Vec::new(), 0));
    };
    let mut f = Filter::new("FROM patients p WHERE p.org = ?", &q.org);
    f.ids("p.id", &ids);
    identifier_filter(&mut f, &q.identifier);
    f.and_of_ors(&q.family, |f, v| name_match(f, NamePart::Family, v));
    f.and_of_ors(&q.given, |f, v| name_match(f, NamePart::Given, v));
    f.and_of_ors(&q.name, |f, v| name_match(f, NamePart::Any, v));
    f.dates("json_extract(p.json, '$.birth_date')", &q.birthdate);
    f.and_of_ors(&q.gender, |f, v| {
        format!(
            "lower(json_extract(p.json, '$.sex')) = lower({})",
            f.text(v)
        )
    });
    snapshot(conn, || {
        f.run(
            conn,
            PATIENT_VERSION_COLS,
            &order_by(&q.sort, "p.id", patient_sort_column),
            (q.limit, q.offset),
            versioned_patient,
        )
    })
}

/// The patient's usable identifiers as `patient_identifiers` keys (system,
/// value), once each, in the order of [`new_patient_row`]'s. More than a
/// patient keeps is `Invalid`: an HL7 merge may drop the excess, a FHIR write
/// must not lose data silently.
fn identifier_keys(patient: &Patient) -> Result<Vec<(String, String)>, StoreError> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for ident in usable_identifiers(patient) {
        let key = (system_key(ident).to_owned(), ident.value.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.len() > MAX_PATIENT_IDENTIFIERS {
        return Err(StoreError::Invalid(format!(
            "a patient has at most {MAX_PATIENT_IDENTIFIERS} identifiers"
        )));
    }
    Ok(keys)
}

/// What a FHIR write of a patient stores, computed before the op is queued.
pub(crate) struct PatientRow {
    json: String,
    /// (system, value) of each identifier, once each.
    identifiers: Vec<(String, String)>,
    names: NameRow,
    patient: Patient,
}

impl PatientRow {
    pub(crate) fn new(patient: &Patient) -> Result<Self, StoreError> {
        let identifiers = identifier_keys(patient)?;
        let row = new_patient_row(patient);
        Ok(PatientRow {
            json: to_json_text(&row)?,
            identifiers,
            names: NameRow::of(&row),
            patient: row,
        })
    }
}

fn identifier_owner(
    conn: &Connection,
    org: &str,
    (system, value): &(String, String),
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT patient_id FROM patient_identifiers \
             WHERE org = ?1 AND system = ?2 AND value = ?3",
        )?
        .query_row(params![org, system, value], |row| row.get(0))
        .optional()?)
}

fn identifier_conflict((system, value): &(String, String)) -> StoreError {
    let name = if system.is_empty() {
        value.clone()
    } else {
        format!("{system}|{value}")
    };
    StoreError::Conflict(format!("the identifier {name} belongs to another patient"))
}

fn own_identifiers(
    conn: &Connection,
    org: &str,
    id: i64,
    identifiers: &[(String, String)],
) -> Result<(), StoreError> {
    let mut own = conn.prepare_cached(
        "INSERT OR IGNORE INTO patient_identifiers (org, system, value, patient_id) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (system, value) in identifiers {
        own.execute(params![org, system, value, id])?;
    }
    Ok(())
}

pub(crate) fn create_patient(
    conn: &Connection,
    org: &str,
    row: &PatientRow,
    at: Millis,
) -> Result<Versioned<Patient>, StoreError> {
    for key in &row.identifiers {
        if identifier_owner(conn, org, key)?.is_some() {
            return Err(identifier_conflict(key));
        }
    }
    conn.prepare_cached(
        "INSERT INTO patients (org, created_at, updated_at, json) VALUES (?1, ?2, ?2, ?3)",
    )?
    .execute(params![org, at, row.json])?;
    let id = conn.last_insert_rowid();
    own_identifiers(conn, org, id, &row.identifiers)?;
    index_names(conn, org, id, &row.names)?;
    let mut patient = row.patient.clone();
    patient.id = id.to_string();
    Ok(Versioned {
        value: patient,
        version: 1,
        updated_at: at,
        deleted_at: None,
    })
}

pub(crate) fn update_patient(
    conn: &Connection,
    org: &str,
    id: &str,
    row: &PatientRow,
    if_match: Option<i64>,
    at: Millis,
) -> Result<Versioned<Patient>, StoreError> {
    // Every check first: a refusal must not have written anything.
    let id = parse_id(id).ok_or(StoreError::NotFound)?;
    let (current, json): (i64, String) = conn
        .prepare_cached("SELECT version, json FROM patients WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if let Some(expected) = if_match
        && expected != current
    {
        return Err(StoreError::VersionConflict { current });
    }
    for key in &row.identifiers {
        if identifier_owner(conn, org, key)?.is_some_and(|owner| owner != id) {
            return Err(identifier_conflict(key));
        }
    }
    let owned: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT system, value FROM patient_identifiers WHERE patient_id = ?1 AND org = ?2",
        )?
        .query_map(params![id, org], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;

    // Identical content makes no new version (like a repeated HL7 order).
    if json != row.json {
        conn.prepare_cached("UPDATE patients SET json = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, row.json, at])?;
        index_names(conn, org, id, &row.names)?;
    }
    let mut disown = conn.prepare_cached(
        "DELETE FROM patient_identifiers \
         WHERE org = ?1 AND system = ?2 AND value = ?3 AND patient_id = ?4",
    )?;
    for (system, value) in owned.iter().filter(|k| !row.identifiers.contains(k)) {
        disown.execute(params![org, system, value, id])?;
    }
    own_identifiers(conn, org, id, &row.identifiers)?;
    load_versioned_patient(conn, org, id)?
        .ok_or_else(|| StoreError::Sqlite(format!("patient {id} vanished during its update")))
}

// ---------------------------------------------------------------- appointments

/// [`APPOINTMENT_COLS`] plus the version columns (9, 10, 11).
fn appointment_version_cols() -> String {
    format!("{APPOINTMENT_COLS}, a.version, a.updated_at, a.deleted_at")
}

fn versioned_appointment(row: &Row<'_>) -> rusqlite::Result<(Versioned<Appointment>, Patient)> {
    let appointment = appointment_only_from_row(row)?;
    let mut patient: Patient = json_col(row, 8)?;
    patient.id.clone_from(&appointment.patient_id);
    Ok((
        Versioned {
            value: appointment,
            version: row.get(9)?,
            updated_at: row.get(10)?,
            deleted_at: row.get(11)?,
        },
        patient,
    ))
}

/// Including soft-deleted rows.
fn load_versioned_appointment(
    conn: &Connection,
    org: &str,
    id: i64,
) -> Result<Option<(Versioned<Appointment>, Patient)>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {} FROM appointments a JOIN patients p ON p.id = a.patient_id \
             WHERE a.id = ?1 AND a.org = ?2",
            appointment_version_cols()
        ))?
        .query_row(params![id, org], versioned_appointment)
        .optional()?)
}

pub(crate) fn get_appointment_versioned(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<(Versioned<Appointment>, Patient)>, StoreError> {
    match parse_id(id) {
        Some(id) => load_versioned_appointment(conn, org, id),
        None => Ok(None),
    }
}

fn appointment_sort_column(key: SortKey) -> Option<&'static str> {
    match key {
        SortKey::Id => Some("a.id"),
        SortKey::LastUpdated => Some("a.updated_at"),
        SortKey::Date => Some("a.scheduled_at"),
        SortKey::Authored => Some("json_extract(a.json, '$.order.request_date')"),
    }
}

fn procedure_match(f: &mut Filter, coded: &str, t: &TokenFilter) -> String {
    let code = f.text(&t.value);
    let systems = f.systems(
        &format!("coalesce(json_extract(a.json, '$.order.{coded}.system'), '')"),
        t,
    );
    format!("(json_extract(a.json, '$.order.{coded}.code') = {code}{systems})")
}

/// Appointments with their patients, as the searches return them.
type AppointmentRows = Vec<(Versioned<Appointment>, Patient)>;

pub(crate) fn search_appointments(
    conn: &Connection,
    q: &AppointmentSearch,
) -> Result<(AppointmentRows, u64), StoreError> {
    let (Some(ids), Some(patient_ids)) = (valid_ids(&q.ids), valid_ids(&q.patient_ids)) else {
        return Ok((Vec::new(), 0));
    };
    let mut f = Filter::new(
        "FROM appointments a JOIN patients p ON p.id = a.patient_id \
         WHERE a.org = ? AND a.deleted_at IS NULL",
        &q.org,
    );
    f.ids("a.id", &ids);
    f.ids("a.patient_id", &patient_ids);
    f.any_of("a.grp", q.groups.iter().map(|g| Value::Text(g.clone())));
    f.any_of(
        "a.status",
        q.statuses
            .iter()
            .map(|s| Value::Text(s.as_str().to_owned())),
    );
    f.dates("a.scheduled_at", &q.scheduled);
    f.dates("json_extract(a.json, '$.order.request_date')", &q.authored);
    f.and_of_ors(&q.order_number, |f, t| {
        let (placer, filler) = (f.text(&t.value), f.text(&t.value));
        format!("(a.placer_order = {placer} OR a.filler_order = {filler})")
    });
    f.and_of_ors(&q.code, |f, t| {
        let procedure = procedure_match(f, "procedure", t);
        let procedure_code = procedure_match(f, "procedure_code", t);
        format!("({procedure} OR {procedure_code})")
    });
    snapshot(conn, || {
        f.run(
            conn,
            &appointment_version_cols(),
            &order_by(&q.sort, "a.id", appointment_sort_column),
            (q.limit, q.offset),
            versioned_appointment,
        )
    })
}

pub(crate) fn update_appointment_fhir(
    conn: &Connection,
    org: &str,
    id: &str,
    patient_id: &str,
    new: &Appointment,
    if_match: Option<i64>,
    at: Millis,
) -> Result<Versioned<Appointment>, StoreError> {
    // Every check first: a refusal must not have written anything.
    let id = parse_id(id).ok_or(StoreError::NotFound)?;
    let (old, _) = load_versioned_appointment(conn, org, id)?.ok_or(StoreError::NotFound)?;
    if old.deleted_at.is_some() {
        return Err(StoreError::NotFound);
    }
    if let Some(expected) = if_match
        && expected != old.version
    {
        return Err(StoreError::VersionConflict {
            current: old.version,
        });
    }
    let patient_id = parse_id(patient_id).ok_or(StoreError::NotFound)?;
    conn.prepare_cached("SELECT 1 FROM patients WHERE id = ?1 AND org = ?2")?
        .query_row(params![patient_id, org], |_| Ok(()))
        .optional()?
        .ok_or(StoreError::NotFound)?;

    let old = old.value;
    let (order, visit, group) = merge_appointment(conn, org, &old, new, at)?;
    let cancelled = new.status == AppointmentStatus::Cancelled;
    // A cancellation keeps its first time; leaving `cancelled` clears it.
    conn.prepare_cached(
        "UPDATE appointments SET placer_order = ?2, filler_order = ?3, grp = ?4, status = ?5, \
         scheduled_at = ?6, patient_id = ?7, updated_at = ?8, json = ?9, \
         cancelled_at = CASE WHEN ?10 THEN coalesce(cancelled_at, ?8) END, \
         cancel_reason = CASE WHEN ?10 THEN cancel_reason END \
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        non_empty(order.placer_order.as_deref()),
        non_empty(order.filler_order.as_deref()),
        group,
        new.status.as_str(),
        new.scheduled_at,
        patient_id,
        at,
        appointment_doc(&order, &visit)?,
        cancelled,
    ])?;
    let (stored, _) = load_versioned_appointment(conn, org, id)?.ok_or_else(|| {
        StoreError::Sqlite(format!("appointment {id} vanished during its update"))
    })?;
    Ok(stored)
}

// ---------------------------------------------------------------- measurements

fn measurement_sort_column(key: SortKey) -> Option<&'static str> {
    match key {
        SortKey::Id => Some("m.id"),
        SortKey::LastUpdated => Some("m.created_at"),
        SortKey::Date => Some("m.performed_at"),
        SortKey::Authored => None,
    }
}

pub(crate) fn search_measurements(
    conn: &Connection,
    q: &MeasurementSearch,
) -> Result<(Vec<(StoredMeasurement, String)>, u64), StoreError> {
    let (Some(ids), Some(patient_ids)) = (valid_ids(&q.ids), valid_ids(&q.patient_ids)) else {
        return Ok((Vec::new(), 0));
    };
    let mut f = Filter::new(
        "FROM measurements m JOIN appointments a ON a.id = m.appointment_id WHERE m.org = ?",
        &q.org,
    );
    f.ids("m.id", &ids);
    f.ids("a.patient_id", &patient_ids);
    f.dates("m.performed_at", &q.performed);
    f.and_of_ors(&q.observation_code, |f, t| {
        let code = f.text(&t.value);
        let systems = f.systems("coalesce(json_extract(o.value, '$.system'), '')", t);
        format!(
            "EXISTS (SELECT 1 FROM json_each(m.json, '$.observations') o \
                     WHERE json_extract(o.value, '$.code') = {code}{systems})"
        )
    });
    f.and_of_ors(&q.kind, |f, t| {
        format!("lower(m.kind) = lower({})", f.text(&t.value))
    });
    let select = MEASUREMENT_COLS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .chain(std::iter::once("a.patient_id".to_owned()))
        .collect::<Vec<_>>()
        .join(", ");
    snapshot(conn, || {
        let (rows, total) = f.run(
            conn,
            &select,
            &order_by(&q.sort, "m.id", measurement_sort_column),
            (q.limit, q.offset),
            |row| Ok((measurement_from_row(row)?, row.get::<_, i64>(9)?)),
        )?;
        let rows = rows
            .into_iter()
            .map(|(parts, patient_id)| {
                Ok((stored_measurement(conn, parts)?, patient_id.to_string()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((rows, total))
    })
}

// ---------------------------------------------------------------- imaging studies

const STUDY_COLS: &str = "s.id, s.patient_id, s.version, s.updated_at, s.json";

fn versioned_study(row: &Row<'_>) -> rusqlite::Result<Versioned<StoredStudy>> {
    Ok(Versioned {
        value: StoredStudy {
            id: row.get::<_, i64>(0)?.to_string(),
            patient_id: row.get::<_, Option<i64>>(1)?.map(|id| id.to_string()),
            json: row.get(4)?,
        },
        version: row.get(2)?,
        updated_at: row.get(3)?,
        deleted_at: None,
    })
}

/// `' CT MR '`: every code between spaces, so `instr` finds whole codes.
fn modalities_column(modalities: &[String]) -> String {
    let codes: Vec<&str> = modalities
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .collect();
    if codes.is_empty() {
        String::new()
    } else {
        format!(" {} ", codes.join(" "))
    }
}

pub(crate) fn create_study(
    conn: &Connection,
    s: &NewStudy,
    at: Millis,
) -> Result<Versioned<StoredStudy>, StoreError> {
    let patient_id = match s.patient_id.as_deref() {
        Some(pid) => {
            let pid = parse_id(pid).ok_or(StoreError::NotFound)?;
            conn.prepare_cached("SELECT 1 FROM patients WHERE id = ?1 AND org = ?2")?
                .query_row(params![pid, s.org], |_| Ok(()))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            Some(pid)
        }
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO imaging_studies (org, patient_id, started, modalities, created_at, \
         updated_at, json) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )?
    .execute(params![
        s.org,
        patient_id,
        s.started,
        modalities_column(&s.modalities),
        at,
        s.json,
    ])?;
    Ok(Versioned {
        value: StoredStudy {
            id: conn.last_insert_rowid().to_string(),
            patient_id: patient_id.map(|id| id.to_string()),
            json: s.json.clone(),
        },
        version: 1,
        updated_at: at,
        deleted_at: None,
    })
}

pub(crate) fn get_study(
    conn: &Connection,
    org: &str,
    id: &str,
) -> Result<Option<Versioned<StoredStudy>>, StoreError> {
    let Some(id) = parse_id(id) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {STUDY_COLS} FROM imaging_studies s WHERE s.id = ?1 AND s.org = ?2"
        ))?
        .query_row(params![id, org], versioned_study)
        .optional()?)
}

fn study_sort_column(key: SortKey) -> Option<&'static str> {
    match key {
        SortKey::Id => Some("s.id"),
        SortKey::LastUpdated => Some("s.updated_at"),
        SortKey::Date => Some("s.started"),
        SortKey::Authored => None,
    }
}

pub(crate) fn search_studies(
    conn: &Connection,
    q: &StudySearch,
) -> Result<(Vec<Versioned<StoredStudy>>, u64), StoreError> {
    let (Some(ids), Some(patient_ids)) = (valid_ids(&q.ids), valid_ids(&q.patient_ids)) else {
        return Ok((Vec::new(), 0));
    };
    let mut f = Filter::new("FROM imaging_studies s WHERE s.org = ?", &q.org);
    f.ids("s.id", &ids);
    f.ids("s.patient_id", &patient_ids);
    f.dates("s.started", &q.started);
    f.and_of_ors(&q.modality, |f, t| {
        format!(
            "instr(s.modalities, {}) > 0",
            f.text(&format!(" {} ", t.value.trim()))
        )
    });
    snapshot(conn, || {
        f.run(
            conn,
            STUDY_COLS,
            &order_by(&q.sort, "s.id", study_sort_column),
            (q.limit, q.offset),
            versioned_study,
        )
    })
}
