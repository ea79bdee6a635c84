//! A search's query string, checked against the resource's row of
//! [`CAPABILITIES`](super::CAPABILITIES), and its searchset Bundle.
//!
//! FHIR semantics: a parameter repeated is AND, comma-separated values are OR.
//! Unknown parameters (and modifiers this server does not implement) are an
//! error with `Prefer: handling=strict` and ignored otherwise (the default,
//! lenient); the Bundle's `self` link shows only what was applied.

use axum::http::{HeaderMap, StatusCode, header};
use medrelay_fhir::resources::Issue;
use medrelay_fhir::search::{self as fs, Handling, Prefix};
use medrelay_store::{DateFilter, DateOp, Sort, SortKey, StringFilter, StringMatch, TokenFilter};
use serde_json::{Value, json};

use super::capability::Capability;
use super::{FhirError, header_text};

/// Default and largest page.
pub const DEFAULT_COUNT: usize = 50;
pub const MAX_COUNT: usize = 500;
/// Most parameter values one search may carry: each becomes a bound SQL
/// parameter, and no real query needs more.
pub const MAX_VALUES: usize = 200;

/// One applied parameter: its name, its modifier (`exact` or `contains` on
/// a string parameter; no other is applied) and its comma-separated values.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub modifier: Option<String>,
    pub values: Vec<String>,
}

/// The modifiers applied, by parameter type.
fn modifier_supported(kind: &str, modifier: &str) -> bool {
    kind == "string" && matches!(modifier, "exact" | "contains")
}

/// A checked search request.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub resource: &'static str,
    pub params: Vec<Param>,
    pub count: usize,
    pub offset: usize,
    pub sort: Vec<(String, bool)>,
    pub summary_count: bool,
    pub include: Vec<String>,
    /// What was given and ignored (lenient handling), for an outcome entry.
    pub ignored: Vec<String>,
}

impl SearchQuery {
    /// Parses `raw` (the URL query) for `cap`'s resource.
    pub fn parse(
        raw: Option<&str>,
        cap: &'static Capability,
        headers: &HeaderMap,
    ) -> Result<SearchQuery, FhirError> {
        let handling = fs::handling(
            header_text(headers, header::HeaderName::from_static("prefer")).as_deref(),
        );
        let mut q = SearchQuery {
            resource: cap.resource,
            params: Vec::new(),
            count: DEFAULT_COUNT,
            offset: 0,
            sort: Vec::new(),
            summary_count: false,
            include: Vec::new(),
            ignored: Vec::new(),
        };
        let mut problems = Vec::new();
        let ignore = |q: &mut SearchQuery, problems: &mut Vec<Issue>, name: &str, why: String| {
            if handling == Handling::Strict {
                problems.push(Issue::error("not-supported", name, why));
            } else {
                q.ignored.push(format!("{name}: {why}"));
            }
        };
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let (key, value) = (key.into_owned(), value.into_owned());
            match key.as_str() {
                "_count" => match value.parse::<usize>() {
                    Ok(0) => q.summary_count = true,
                    Ok(n) => q.count = n.min(MAX_COUNT),
                    Err(_) => problems.push(Issue::error(
                        "value",
                        "_count",
                        format!("_count must be a whole number, not {value:?}"),
                    )),
                },
                "_offset" => match value.parse::<usize>() {
                    Ok(n) => q.offset = n,
                    Err(_) => problems.push(Issue::error(
                        "value",
                        "_offset",
                        format!("_offset must be a whole number, not {value:?}"),
                    )),
                },
                "_sort" => {
                    for s in fs::split_values(&value) {
                        let (name, desc) = match s.strip_prefix('-') {
                            Some(n) => (n.to_string(), true),
                            None => (s.clone(), false),
                        };
                        if cap.sorts.contains(&name.as_str()) {
                            q.sort.push((name, desc));
                        } else {
                            ignore(
                                &mut q,
                                &mut problems,
                                "_sort",
                                format!(
                                    "{} cannot be sorted by {name:?}; sort keys: {}",
                                    cap.resource,
                                    cap.sorts.join(", ")
                                ),
                            );
                        }
                    }
                }
                "_summary" => match value.as_str() {
                    "count" => q.summary_count = true,
                    "false" => {}
                    other => ignore(
                        &mut q,
                        &mut problems,
                        "_summary",
                        format!("_summary={other} is not supported (count and false are)"),
                    ),
                },
                "_total" => {
                    if !matches!(value.as_str(), "none" | "estimate" | "accurate") {
                        problems.push(Issue::error(
                            "value",
                            "_total",
                            "_total must be none, estimate or accurate",
                        ));
                    }
                }
                "_format" => {}
                "_include" => {
                    if cap.includes.contains(&value.as_str()) {
                        q.include.push(value);
                    } else {
                        ignore(
                            &mut q,
                            &mut problems,
                            "_include",
                            format!(
                                "_include={value} is not supported; {} includes: {}",
                                cap.resource,
                                if cap.includes.is_empty() {
                                    "none".to_string()
                                } else {
                                    cap.includes.join(", ")
                                }
                            ),
                        );
                    }
                }
                _ => {
                    let (name, modifier) = match key.split_once(':') {
                        Some((n, m)) => (n, Some(m)),
                        None => (key.as_str(), None),
                    };
                    let Some(kind) = cap.param_type(name) else {
                        ignore(
                            &mut q,
                            &mut problems,
                            &key,
                            format!(
                                "{} has no search parameter {name:?}; it has: {}",
                                cap.resource,
                                cap.search
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                        continue;
                    };
                    if let Some(m) = modifier.filter(|m| !modifier_supported(kind, m)) {
                        ignore(
                            &mut q,
                            &mut problems,
                            &key,
                            format!(
                                "the modifier :{m} of the {kind} parameter {name} is not supported"
                            ),
                        );
                        continue;
                    }
                    let values = fs::split_values(&value);
                    if values.iter().all(|v| v.is_empty()) {
                        // An empty parameter is ignored (FHIR search §3.1.1.0).
                        continue;
                    }
                    q.params.push(Param {
                        name: name.to_string(),
                        modifier: modifier.map(str::to_string),
                        values,
                    });
                }
            }
        }
        let values: usize = q.params.iter().map(|p| p.values.len()).sum();
        if values > MAX_VALUES {
            problems.push(Issue::error(
                "too-costly",
                "",
                format!(
                    "the search has {values} parameter values; at most {MAX_VALUES} are accepted"
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(FhirError::issues(StatusCode::BAD_REQUEST, problems));
        }
        Ok(q)
    }

    /// The condition of a conditional create (`If-None-Exist: identifier=…`),
    /// if the request has one. It must be understood completely (strict
    /// handling: ignoring part of it could match the wrong record) and name
    /// at least one parameter; it asks for two rows, enough to tell one match
    /// from several.
    pub fn if_none_exist(
        headers: &HeaderMap,
        cap: &'static Capability,
    ) -> Result<Option<SearchQuery>, FhirError> {
        let Some(condition) =
            header_text(headers, header::HeaderName::from_static("if-none-exist"))
        else {
            return Ok(None);
        };
        let mut strict = HeaderMap::new();
        strict.insert(
            "prefer",
            axum::http::HeaderValue::from_static("handling=strict"),
        );
        let mut q = SearchQuery::parse(Some(condition.trim_start_matches('?')), cap, &strict)?;
        if q.params.is_empty() {
            return Err(FhirError::bad_request(
                "If-None-Exist needs search parameters, e.g. identifier=system|value",
            ));
        }
        q.count = 2;
        q.offset = 0;
        Ok(Some(q))
    }

    /// The query string of what was applied, at `offset`.
    pub fn query_string(&self, offset: usize) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for p in &self.params {
            let key = match &p.modifier {
                Some(m) => format!("{}:{m}", p.name),
                None => p.name.clone(),
            };
            out.append_pair(&key, &p.values.join(","));
        }
        if !self.sort.is_empty() {
            let sorts: Vec<String> = self
                .sort
                .iter()
                .map(|(n, d)| if *d { format!("-{n}") } else { n.clone() })
                .collect();
            out.append_pair("_sort", &sorts.join(","));
        }
        for i in &self.include {
            out.append_pair("_include", i);
        }
        if self.summary_count {
            out.append_pair("_summary", "count");
        } else {
            out.append_pair("_count", &self.count.to_string());
            out.append_pair("_offset", &offset.to_string());
        }
        out.finish()
    }

    /// The store's sort keys: `date_key` is what the resource's date sort
    /// (`birthdate`, `date`, `started`) means in the store.
    pub fn store_sort(&self) -> Vec<Sort> {
        self.sort
            .iter()
            .map(|(name, descending)| Sort {
                key: match name.as_str() {
                    "_id" => SortKey::Id,
                    "_lastUpdated" => SortKey::LastUpdated,
                    "authored" => SortKey::Authored,
                    _ => SortKey::Date,
                },
                descending: *descending,
            })
            .collect()
    }

    /// Rows to fetch: none when only counting.
    pub fn limit(&self) -> usize {
        if self.summary_count { 0 } else { self.count }
    }
}

/// A value error in parameter `name`, 400.
pub fn bad_value(name: &str, why: String) -> FhirError {
    FhirError::issues(
        StatusCode::BAD_REQUEST,
        vec![Issue::error("value", name, why)],
    )
}

/// A date parameter's values as store filters.
pub fn dates(p: &Param) -> Result<Vec<DateFilter>, FhirError> {
    p.values
        .iter()
        .map(|v| {
            let d = fs::parse_date_local(v, super::converter().zone())
                .map_err(|e| bad_value(&p.name, e))?;
            Ok(DateFilter {
                op: match d.prefix {
                    Prefix::Eq => DateOp::Eq,
                    Prefix::Ne => DateOp::Ne,
                    Prefix::Lt => DateOp::Lt,
                    Prefix::Le => DateOp::Le,
                    Prefix::Gt => DateOp::Gt,
                    Prefix::Ge => DateOp::Ge,
                },
                lo: d.lo,
                hi: d.hi,
            })
        })
        .collect()
}

/// A string parameter's values as store filters, matched as its modifier says.
pub fn strings(p: &Param) -> Vec<StringFilter> {
    let how = match p.modifier.as_deref() {
        Some("exact") => StringMatch::Exact,
        Some("contains") => StringMatch::Contains,
        _ => StringMatch::StartsWith,
    };
    p.values
        .iter()
        .map(|v| StringFilter::new(v.as_str(), how))
        .collect()
}

/// A token parameter's values as store filters: a FHIR system stands for
/// every stored spelling of it (`urn:oid:1.2` is also `1.2`).
pub fn tokens(p: &Param) -> Result<Vec<TokenFilter>, FhirError> {
    p.values
        .iter()
        .map(|v| {
            let t = fs::parse_token(v).map_err(|e| bad_value(&p.name, e))?;
            Ok(TokenFilter {
                systems: t.system.map(|s| {
                    if s.is_empty() {
                        vec![String::new()]
                    } else {
                        fs::stored_systems(&s)
                    }
                }),
                value: t.code,
            })
        })
        .collect()
}

/// A reference parameter's values as ids of `target`.
pub fn references(p: &Param, target: &str) -> Result<Vec<String>, FhirError> {
    p.values
        .iter()
        .map(|v| fs::parse_reference(v, target).map_err(|e| bad_value(&p.name, e)))
        .collect()
}

/// A searchset Bundle: `total`, `self`/`next`/`previous` links, the matches,
/// then the included resources (search mode `include`).
pub fn bundle(
    base: &str,
    q: &SearchQuery,
    total: u64,
    matches: Vec<(String, Value)>,
    included: Vec<(String, Value)>,
) -> Value {
    let url = |offset: usize| format!("{base}/{}?{}", q.resource, q.query_string(offset));
    let mut link = vec![json!({"relation": "self", "url": url(q.offset)})];
    if !q.summary_count {
        let shown = u64::try_from(q.offset + matches.len()).unwrap_or(u64::MAX);
        if shown < total {
            link.push(json!({"relation": "next", "url": url(q.offset + q.count)}));
        }
        if q.offset > 0 {
            link.push(
                json!({"relation": "previous", "url": url(q.offset.saturating_sub(q.count))}),
            );
        }
    }
    let mut entry: Vec<Value> = matches
        .into_iter()
        .map(|(path, resource)| {
            json!({"fullUrl": format!("{base}/{path}"), "resource": resource, "search": {"mode": "match"}})
        })
        .chain(included.into_iter().map(|(path, resource)| {
            json!({"fullUrl": format!("{base}/{path}"), "resource": resource, "search": {"mode": "include"}})
        }))
        .collect();
    if !q.ignored.is_empty() {
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": q.ignored.iter().map(|i| json!({
                "severity": "warning",
                "code": "not-supported",
                "diagnostics": format!("ignored {i}"),
            })).collect::<Vec<_>>(),
        });
        entry.push(json!({"resource": outcome, "search": {"mode": "outcome"}}));
    }
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": link,
    });
    if !entry.is_empty() {
        b["entry"] = Value::Array(entry);
    }
    b
}
