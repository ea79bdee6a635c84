//! The HL7 presets: mappings shipped as data files (`crates/worklist/presets/*.toml`,
//! embedded at build time).
//!
//! A preset file is a [`Mapping`] plus a `[preset]` table with a `description` and an
//! optional `extends = "<preset>"`: the five EHR presets extend `hl7-mllp` and set
//! their own ORU application names. The GDT presets ([`gdt()`]) and the JSON presets
//! ([`json()`]: `best-practice`, `join`, `vena`, `webdoc`, `ziplanerx`, extending the
//! generic `json`) keep their file as a TOML table, so an integration's overrides
//! are merged key by key before the mapping is built.
//!
//! ```
//! use medrelay_worklist::presets;
//! let p = presets::get("nextgen").unwrap();
//! assert_eq!(p.mapping.oru.receiving_application.as_deref(), Some("NEXTGEN"));
//! assert!(p.mapping.check().is_ok());
//! assert!(presets::get("no-such-preset").is_none());
//! ```

use crate::gdt_map::{GdtMapping, merge_tables};
use crate::json_map::JsonMapping;
use crate::mapping::{Mapping, MappingError};

/// A ready-made mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub description: String,
    /// The complete mapping (with whatever it extends already merged in).
    pub mapping: Mapping,
}

const FILES: &[(&str, &str)] = &[
    ("hl7-mllp", include_str!("../presets/hl7-mllp.toml")),
    ("birpis", include_str!("../presets/birpis.toml")),
    ("hipokrat", include_str!("../presets/hipokrat.toml")),
    ("iris", include_str!("../presets/iris.toml")),
    ("isoz", include_str!("../presets/isoz.toml")),
    ("nextgen", include_str!("../presets/nextgen.toml")),
    ("weda", include_str!("../presets/weda.toml")),
];

/// The GDT presets: a [`GdtMapping`] each.
const GDT_FILES: &[(&str, &str)] = &[
    ("gdt", include_str!("../presets/gdt.toml")),
    ("doctolib", include_str!("../presets/doctolib.toml")),
    ("tomedo", include_str!("../presets/tomedo.toml")),
];

/// The JSON presets: a [`JsonMapping`] each. The vendor presets extend `json`.
const JSON_FILES: &[(&str, &str)] = &[
    ("json", include_str!("../presets/json.toml")),
    (
        "best-practice",
        include_str!("../presets/best-practice.toml"),
    ),
    ("join", include_str!("../presets/join.toml")),
    ("vena", include_str!("../presets/vena.toml")),
    ("webdoc", include_str!("../presets/webdoc.toml")),
    ("ziplanerx", include_str!("../presets/ziplanerx.toml")),
];

/// Names of every HL7 preset this crate ships.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(n, _)| *n).collect()
}

/// Names of every GDT preset this crate ships.
pub fn gdt_names() -> Vec<&'static str> {
    GDT_FILES.iter().map(|(n, _)| *n).collect()
}

/// Names of every JSON preset this crate ships.
pub fn json_names() -> Vec<&'static str> {
    JSON_FILES.iter().map(|(n, _)| *n).collect()
}

/// The preset's source file, as shipped.
pub fn source(name: &str) -> Option<&'static str> {
    FILES
        .iter()
        .chain(GDT_FILES)
        .chain(JSON_FILES)
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// A ready-made GDT mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct GdtPreset {
    pub name: &'static str,
    pub description: String,
    /// The preset file without its `[preset]` table: overrides are merged into it
    /// before it becomes a [`GdtMapping`].
    pub table: toml::Table,
}

impl GdtPreset {
    /// The preset's mapping with an integration's overrides merged in, checked.
    pub fn mapping(&self, overrides: Option<&toml::Table>) -> Result<GdtMapping, String> {
        let mut t = self.table.clone();
        if let Some(o) = overrides {
            merge_tables(&mut t, o);
        }
        GdtMapping::from_table(&t).map_err(|e| e.to_string())
    }
}

/// Loads a GDT preset.
pub fn gdt(name: &str) -> Result<GdtPreset, PresetError> {
    let (name, description, table) = merged_table(GDT_FILES, name, 0)?;
    GdtMapping::from_table(&table).map_err(|e| invalid(name, e.to_string()))?;
    Ok(GdtPreset {
        name,
        description,
        table,
    })
}

/// A ready-made JSON mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPreset {
    pub name: &'static str,
    pub description: String,
    /// The preset file (with what it extends merged in) without its `[preset]`
    /// table: overrides are merged into it before it becomes a [`JsonMapping`].
    pub table: toml::Table,
}

impl JsonPreset {
    /// The preset's mapping with an integration's overrides merged in, checked.
    pub fn mapping(&self, overrides: Option<&toml::Table>) -> Result<JsonMapping, String> {
        let mut t = self.table.clone();
        if let Some(o) = overrides {
            merge_tables(&mut t, o);
        }
        JsonMapping::from_table(&t).map_err(|e| e.to_string())
    }
}

/// Loads a JSON preset.
///
/// ```
/// use medrelay_worklist::{json_map::JsonInbound, presets};
/// let m = presets::json("vena").unwrap().mapping(None).unwrap();
/// assert_eq!(m.transport.inbound, JsonInbound::Poll);
/// assert_eq!(m.items.as_deref(), Some("/data"));
/// assert!(presets::json("nextgen").is_err());
/// ```
pub fn json(name: &str) -> Result<JsonPreset, PresetError> {
    let (name, description, table) = merged_table(JSON_FILES, name, 0)?;
    JsonMapping::from_table(&table).map_err(|e| invalid(name, e.to_string()))?;
    Ok(JsonPreset {
        name,
        description,
        table,
    })
}

/// One preset file: its name as shipped, its description, what it extends, and
/// its mapping table without the `[preset]` table.
fn read_file(
    files: &[(&'static str, &'static str)],
    name: &str,
) -> Result<(&'static str, String, Option<String>, toml::Table), PresetError> {
    let (static_name, text) = files
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| PresetError::Unknown(name.to_string()))?;
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| invalid(static_name, e.to_string()))?;
    let meta = match table.remove("preset") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err(invalid(static_name, "`preset` must be a table".into())),
        None => toml::Table::new(),
    };
    let mut description = String::new();
    let mut base = None;
    for (k, v) in &meta {
        let text = v
            .as_str()
            .ok_or_else(|| invalid(static_name, format!("preset.{k} must be a string")))?;
        match k.as_str() {
            "description" => description = text.to_string(),
            "extends" => base = Some(text.to_string()),
            other => return Err(invalid(static_name, format!("unknown key preset.{other}"))),
        }
    }
    Ok((static_name, description, base, table))
}

/// A preset's table with what it extends merged under it (TOML tables merged key
/// by key: the GDT and JSON mappings).
fn merged_table(
    files: &[(&'static str, &'static str)],
    name: &str,
    depth: usize,
) -> Result<(&'static str, String, toml::Table), PresetError> {
    if depth > files.len() {
        return Err(invalid(name, "`extends` forms a cycle".into()));
    }
    let (static_name, description, base, table) = read_file(files, name)?;
    let table = match base {
        Some(base) => {
            let (_, _, mut merged) = merged_table(files, &base, depth + 1)?;
            merge_tables(&mut merged, &table);
            merged
        }
        None => table,
    };
    Ok((static_name, description, table))
}

fn invalid(name: &str, reason: String) -> PresetError {
    PresetError::Invalid {
        name: name.to_string(),
        reason,
    }
}

/// Why a preset file could not be loaded (a packaging bug; the tests load them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("no preset named `{0}`")]
    Unknown(String),
    #[error("preset `{name}`: {reason}")]
    Invalid { name: String, reason: String },
    #[error("preset `{name}`: {source}")]
    Mapping {
        name: String,
        #[source]
        source: MappingError,
    },
}

/// Loads a preset, reporting why it cannot be.
pub fn load(name: &str) -> Result<Preset, PresetError> {
    load_depth(name, 0)
}

fn load_depth(name: &str, depth: usize) -> Result<Preset, PresetError> {
    if depth > FILES.len() {
        return Err(invalid(name, "`extends` forms a cycle".into()));
    }
    let (static_name, description, base, table) = read_file(FILES, name)?;
    let own = Mapping::from_table(&table).map_err(|source| PresetError::Mapping {
        name: name.to_string(),
        source,
    })?;
    let mapping = match base {
        Some(b) => {
            let mut m = load_depth(&b, depth + 1)?.mapping;
            m.merge(&own);
            m
        }
        None => own,
    };
    Ok(Preset {
        name: static_name,
        description,
        mapping,
    })
}

/// The preset with this name, or `None` if there is none.
pub fn get(name: &str) -> Option<Preset> {
    load(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_presets_load_and_check() {
        assert_eq!(
            names(),
            [
                "hl7-mllp", "birpis", "hipokrat", "iris", "isoz", "nextgen", "weda"
            ]
        );
        for name in names() {
            let p = load(name).unwrap();
            assert_eq!(p.name, name);
            assert!(!p.description.is_empty(), "{name}");
            if let Err(errors) = p.mapping.check() {
                panic!("{name}: {errors:#?}");
            }
            // Every canonical field is mapped by every preset (the derived WEDA
            // fields only by `weda`).
            for (key, _, src) in p.mapping.entries() {
                let src = src.unwrap_or_else(|| panic!("{name}: {key} not mapped"));
                let derived = ["order.task_type", "order.activity_id"].contains(&key.as_str());
                assert_eq!(
                    src.paths.is_empty(),
                    derived && name != "weda",
                    "{name}: {key} switched off or on"
                );
            }
            assert_eq!(
                p.mapping.oru.sending_application.as_deref(),
                Some("MEDRELAY")
            );
        }
        for (name, app) in [
            ("birpis", "BIRPIS"),
            ("hipokrat", "HIPOKRAT"),
            ("iris", "IRIS"),
            ("isoz", "ISOZ"),
            ("nextgen", "NEXTGEN"),
        ] {
            let m = get(name).unwrap().mapping;
            assert_eq!(m.oru.receiving_application.as_deref(), Some(app));
            // The vendor presets share the generic field mapping.
            let generic = get("hl7-mllp").unwrap().mapping;
            assert_eq!(m.entries(), generic.entries());
            assert_eq!(m.tables, generic.tables);
        }
        assert_eq!(load("x"), Err(PresetError::Unknown("x".into())));
        for name in gdt_names() {
            let p = gdt(name).unwrap();
            assert!(!p.description.is_empty(), "{name}");
            let m = p.mapping(None).unwrap();
            assert_eq!(m.patient.family.unwrap().fields, ["3101"], "{name}");
        }
        assert!(gdt("nextgen").is_err());
        assert_eq!(gdt_names(), ["gdt", "doctolib", "tomedo"]);
        assert_eq!(gdt("doctolib").unwrap().table, gdt("gdt").unwrap().table);
        assert!(source("iris").unwrap().contains("extends"));
    }
}
