//! `patient_names` (migration 0008): each name part of a patient, folded
//! (`crate::fold`), for FHIR string search regardless of case and accents.
//!
//! Written here by the four statements that write `patients.json` (the
//! worklist's insert and merge, FHIR create and update) rather than by
//! triggers: a trigger calling the fold function cost a new patient about
//! half again its writer time on the order path, while the rows below are
//! folded by the async caller and cost the writer one prepared insert each.
//! `the_name_index_follows_every_write_path` covers every write site.

use medrelay_worklist::Patient;
use rusqlite::{Connection, params};

use crate::error::StoreError;

/// One row: the folded name and its kind.
pub(crate) type NameRow = (String, &'static str);

/// A patient's family and given names as rows, each once, empty ones left
/// out. Prefix and suffix are not searched: FHIR leaves what `name` matches
/// to the server, and each row costs the order path a B-tree insert.
pub(crate) fn name_rows(p: &Patient) -> Vec<NameRow> {
    let parts = p
        .family
        .iter()
        .map(|v| (v, "family"))
        .chain(p.given.iter().map(|v| (v, "given")));
    let mut rows: Vec<NameRow> = Vec::new();
    for (value, kind) in parts {
        let norm = crate::fold::fold(value);
        if !norm.is_empty() && !rows.iter().any(|(n, k)| *n == norm && *k == kind) {
            rows.push((norm, kind));
        }
    }
    rows
}

/// Replaces `old` rows of the patient by `new` ones (only the difference is
/// written; `old` empty for a new patient).
pub(crate) fn index_names(
    conn: &Connection,
    org: &str,
    patient_id: i64,
    old: &[NameRow],
    new: &[NameRow],
) -> Result<(), StoreError> {
    let gone: Vec<&NameRow> = old.iter().filter(|r| !new.contains(r)).collect();
    if !gone.is_empty() {
        let mut delete = conn.prepare_cached(
            "DELETE FROM patient_names \
             WHERE org = ?1 AND norm = ?2 AND kind = ?3 AND patient_id = ?4",
        )?;
        for (norm, kind) in gone {
            delete.execute(params![org, norm, kind, patient_id])?;
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO patient_names (org, norm, kind, patient_id) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (norm, kind) in new.iter().filter(|r| !old.contains(r)) {
        insert.execute(params![org, norm, kind, patient_id])?;
    }
    Ok(())
}
