//! `patient_names` (migration 0008): each patient's family and given names,
//! folded (`crate::fold`), for FHIR string search regardless of case and
//! accents. One narrow row per patient, keyed by its id, so a new patient's
//! row is appended (the migration says why there is no index on the names)
//! and a search scans a few megabytes instead of every patient's JSON.
//!
//! Written by the statements that write `patients.json` (the worklist's
//! insert and merge, FHIR create and update), with the names folded by the
//! async caller where it can; `the_name_index_follows_every_write_path`
//! covers every write site.

use medrelay_worklist::Patient;
use rusqlite::{Connection, params};

use crate::error::StoreError;

/// Closes each given name in `NameRow::given`.
pub(crate) const SEP: char = '\u{1f}';

/// A name folded for search: a separator in it becomes a space, so a folded
/// search value never spans two names.
pub(crate) fn fold_part(s: &str) -> String {
    crate::fold::fold(s).replace(SEP, " ")
}

/// A patient's `patient_names` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameRow {
    family: String,
    given: String,
}

impl NameRow {
    pub(crate) fn of(p: &Patient) -> NameRow {
        let mut given = String::new();
        for g in p
            .given
            .iter()
            .map(|g| fold_part(g))
            .filter(|g| !g.is_empty())
        {
            if given.is_empty() {
                given.push(SEP);
            }
            given.push_str(&g);
            given.push(SEP);
        }
        NameRow {
            family: p.family.as_deref().map(fold_part).unwrap_or_default(),
            given,
        }
    }
}

/// Writes the patient's row (insert or replace by id).
pub(crate) fn index_names(
    conn: &Connection,
    org: &str,
    patient_id: i64,
    row: &NameRow,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO patient_names (patient_id, org, family, given) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![patient_id, org, row.family, row.given])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fold_names_and_close_each_given_name() {
        let p = Patient {
            family: Some("Müller\u{1f}X".into()),
            given: vec!["Jürgen".into(), "".into(), "ANA".into()],
            ..Patient::default()
        };
        let row = NameRow::of(&p);
        assert_eq!(row.family, "muller x");
        assert_eq!(row.given, "\u{1f}jurgen\u{1f}ana\u{1f}");
        assert_eq!(
            NameRow::of(&Patient::default()),
            NameRow {
                family: String::new(),
                given: String::new()
            }
        );
    }
}
