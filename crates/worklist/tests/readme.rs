//! The README's mapping table is the documentation the main README links to: it must
//! match the preset files exactly.

use medrelay_worklist::presets;

fn expected_rows() -> Vec<String> {
    let generic = presets::get("hl7-mllp").unwrap().mapping;
    generic
        .entries()
        .into_iter()
        .map(|(key, kind, src)| {
            let src = src.unwrap();
            let paths: Vec<String> = src.paths.iter().map(|p| format!("`{p}`")).collect();
            let mut cell = if paths.is_empty() {
                "off".to_string()
            } else {
                paths.join(" → ")
            };
            if let Some(t) = &src.table {
                cell.push_str(&format!(" via `{t}`"));
            }
            format!("| `{key}` | {cell} | {} |", kind.hl7_type())
        })
        .collect()
}

#[test]
fn readme_mapping_table_matches_the_presets() {
    let readme = include_str!("../README.md");
    let missing: Vec<String> = expected_rows()
        .into_iter()
        .filter(|row| !readme.lines().any(|l| l.starts_with(row.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md rows out of date; expected rows starting with:\n{}",
        missing.join("\n")
    );
    // Every MLLP preset has the same field mapping, which the table states once;
    // `weda`'s differences are listed below it.
    for name in presets::names() {
        let m = presets::get(name).unwrap().mapping;
        if name != "weda" {
            assert_eq!(
                m.entries(),
                presets::get("hl7-mllp").unwrap().mapping.entries()
            );
        }
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} not in README"
        );
        if let Some(app) = &m.oru.receiving_application {
            assert!(readme.contains(&format!("`{app}`")), "{app} not in README");
        }
    }
}

#[test]
fn readme_override_example_works() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n[[integration]]").unwrap() + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let config: toml::Table = toml::from_str(&readme[start..start + len]).unwrap();
    let integration = &config["integration"].as_array().unwrap()[0];
    let overrides = integration["mapping"].as_table().unwrap();
    let mut m = presets::get(integration["preset"].as_str().unwrap())
        .unwrap()
        .mapping;
    m.merge_table(overrides).unwrap();
    m.check().unwrap();
    assert_eq!(m.routes[0].group, "pulmonology");
    assert_eq!(m.lookup("priority", "S").as_deref(), Some("stat"));
    assert_eq!(m.lookup("order_control", "SN").as_deref(), Some("ignore"));
    assert_eq!(m.oru.receiving_facility.as_deref(), Some("HOSPITAL_A"));
    assert_eq!(m.oru.receiving_application.as_deref(), Some("NEXTGEN"));
}
