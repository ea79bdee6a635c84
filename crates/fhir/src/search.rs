//! Parsing of FHIR R4 search parameter values (http://hl7.org/fhir/R4/search.html)
//! and of the `Prefer` header, as pure functions. Errors are `String`s written to
//! be put as they are into an OperationOutcome issue's `diagnostics`.
//!
//! Dates: a search value stands for the range its precision covers. [`parse_date`]
//! gives that range as text (`lo` inclusive, `hi` exclusive) so that a store can
//! compare it with the ISO-8601 text it keeps, in local time: a value's zone
//! is converted to the local zone ([`parse_date_local`]) or dropped
//! ([`parse_date`]).

use chrono::{
    DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
};

use crate::convert::{LOINC, SNOMED};
use crate::resources::Meta;
use crate::validate::is_id;
use crate::zone::LocalZone;

/// A search prefix (http://hl7.org/fhir/R4/search.html#prefix); `eq` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A date parameter: its prefix and the range [lo, hi) its value covers, as
/// ISO-8601 text that compares correctly as TEXT against stored values like
/// `2000-05-31`, `2025-03-15T12:05:00` or `2025-03-15T12:05:00+01:00`.
///
/// `2000` → [`2000`, `2001`); `2000-05` → [`2000-05`, `2000-06`); `2000-12-31` →
/// [`2000-12-31`, `2001-01-01`); `2025-03-15T12:05` → [`2025-03-15T12:05`,
/// `2025-03-15T12:06`); with seconds or fractional seconds the unit is the last
/// digit given.
///
/// Stored times are local wall-clock times (HL7 and GDT send them so; zoned
/// times written through FHIR are converted on the way in), so a value's zone
/// is converted to that local time ([`parse_date_local`]) or, by
/// [`parse_date`], dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: Prefix,
    pub lo: String,
    pub hi: String,
}

/// Reads a date search value (`[prefix]yyyy[-mm[-dd[Thh:mm[:ss[.s+]][zone]]]]`).
/// The prefixes `sa`, `eb` and `ap` are refused (not supported), as is anything
/// that is not a real date. A value's zone is dropped (see
/// [`parse_date_local`] to convert it instead).
pub fn parse_date(value: &str) -> Result<DateParam, String> {
    parse_date_in(value, None)
}

/// [`parse_date`], with a time that carries a zone (`Z`, `±hh:mm`) converted
/// to the local time of `zone`, the zone the stored times are written in:
/// `ge2025-03-15T08:30:00Z` in a `+01:00` zone is `ge2025-03-15T09:30:00`.
pub fn parse_date_local(value: &str, zone: &dyn LocalZone) -> Result<DateParam, String> {
    parse_date_in(value, Some(zone))
}

fn parse_date_in(value: &str, zone: Option<&dyn LocalZone>) -> Result<DateParam, String> {
    let (prefix, date) = split_prefix(value)?;
    let bad = || {
        format!(
            "{value:?} is not a valid date search value (expected [prefix]YYYY, YYYY-MM, YYYY-MM-DD \
             or YYYY-MM-DDThh:mm[:ss[.sss]][Z|±hh:mm])"
        )
    };
    let (lo, hi) = date_range(date, zone).ok_or_else(bad)?;
    Ok(DateParam { prefix, lo, hi })
}

fn split_prefix(value: &str) -> Result<(Prefix, &str), String> {
    let Some(head) = value
        .get(..2)
        .filter(|h| h.bytes().all(|b| b.is_ascii_lowercase()))
    else {
        return Ok((Prefix::Eq, value));
    };
    let prefix = match head {
        "eq" => Prefix::Eq,
        "ne" => Prefix::Ne,
        "lt" => Prefix::Lt,
        "le" => Prefix::Le,
        "gt" => Prefix::Gt,
        "ge" => Prefix::Ge,
        "sa" | "eb" | "ap" => {
            return Err(format!(
                "the search prefix {head:?} is not supported (use eq, ne, lt, le, gt or ge)"
            ));
        }
        _ => {
            return Err(format!(
                "{value:?} starts with an unknown search prefix {head:?} (use eq, ne, lt, le, gt or ge)"
            ));
        }
    };
    Ok((prefix, &value[2..]))
}

fn num(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Text ranges only compare correctly while years have four digits.
fn four_digit_year(d: NaiveDate) -> Option<NaiveDate> {
    (0..=9999).contains(&d.year()).then_some(d)
}

fn date_range(s: &str, zone: Option<&dyn LocalZone>) -> Option<(String, String)> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let year = num(parts.next()?, 4)? as i32;
    let month = match parts.next() {
        Some(m) => Some(num(m, 2)?),
        None => None,
    };
    let day = match parts.next() {
        Some(d) => Some(num(d, 2)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    match (month, day, time) {
        (None, None, None) => {
            let next = year.checked_add(1).filter(|y| *y <= 9999)?;
            Some((format!("{year:04}"), format!("{next:04}")))
        }
        (Some(m), None, None) => {
            let first = NaiveDate::from_ymd_opt(year, m, 1)?;
            let next = four_digit_year(first.checked_add_months(Months::new(1))?)?;
            Some((
                first.format("%Y-%m").to_string(),
                next.format("%Y-%m").to_string(),
            ))
        }
        (Some(m), Some(d), None) => {
            let day = NaiveDate::from_ymd_opt(year, m, d)?;
            let next = four_digit_year(day.succ_opt()?)?;
            Some((day.to_string(), next.to_string()))
        }
        (Some(m), Some(d), Some(t)) => {
            let day = NaiveDate::from_ymd_opt(year, m, d)?;
            let (local, offset) = split_zone(t)?;
            time_range(day, local, offset.zip(zone))
        }
        _ => None,
    }
}

/// The time and its zone (`Z`, `±hh:mm`), if it has one. A space stands for
/// `+` too: an unencoded `+` in a query string arrives as a space after form
/// decoding.
fn split_zone(t: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(local) = t.strip_suffix('Z') {
        return Some((local, FixedOffset::east_opt(0)));
    }
    let b = t.as_bytes();
    if b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-' | b' ') {
        let zone = &t[t.len() - 5..];
        let (h, m) = zone.split_once(':')?;
        let (h, m) = (num(h, 2)?, num(m, 2)?);
        if !((h < 14 && m <= 59) || (h == 14 && m == 0)) {
            return None;
        }
        let seconds = i32::try_from(h * 3600 + m * 60).ok()?;
        let sign = if b[b.len() - 6] == b'-' { -1 } else { 1 };
        return Some((&t[..t.len() - 6], FixedOffset::east_opt(sign * seconds)));
    }
    Some((t, None))
}

/// The range of a time on `day`; with `(offset, zone)`, the time was given
/// at that offset and is moved to `zone`'s local time first.
fn time_range(
    day: NaiveDate,
    local: &str,
    zoned: Option<(FixedOffset, &dyn LocalZone)>,
) -> Option<(String, String)> {
    let (hms, fraction) = match local.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (local, None),
    };
    let mut p = hms.split(':');
    let h = num(p.next()?, 2)?;
    let m = num(p.next()?, 2)?;
    let s = p.next().map(|s| num(s, 2));
    if p.next().is_some() {
        return None;
    }
    let (time, step, width) = match (s, fraction) {
        (None, None) => (NaiveTime::from_hms_opt(h, m, 0)?, TimeDelta::minutes(1), 0),
        (Some(s), None) => (NaiveTime::from_hms_opt(h, m, s?)?, TimeDelta::seconds(1), 0),
        (Some(s), Some(f)) => {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let nanos = f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32);
            let step = TimeDelta::nanoseconds(10i64.pow(9 - f.len() as u32));
            (
                NaiveTime::from_hms_nano_opt(h, m, s?, nanos)?,
                step,
                f.len(),
            )
        }
        (None, Some(_)) => return None,
    };
    let mut lo = NaiveDateTime::new(day, time);
    if let Some((offset, zone)) = zoned {
        let utc = lo.checked_sub_signed(TimeDelta::seconds(offset.local_minus_utc().into()))?;
        lo = zone.local_of_utc(utc);
        four_digit_year(lo.date())?;
    }
    let hi = lo.checked_add_signed(step)?;
    four_digit_year(hi.date())?;
    let text = |t: NaiveDateTime| {
        let base = if s.is_some() {
            t.format("%Y-%m-%dT%H:%M:%S").to_string()
        } else {
            t.format("%Y-%m-%dT%H:%M").to_string()
        };
        if width == 0 {
            base
        } else {
            let digits = format!("{:09}", t.and_utc().timestamp_subsec_nanos());
            format!("{base}.{}", &digits[..width])
        }
    };
    Some((text(lo), text(hi)))
}

/// A token parameter: `system|code`, `|code` (no system) or `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenParam {
    /// `None`: any system; `Some("")`: the code without a system.
    pub system: Option<String>,
    pub code: String,
}

/// Reads a token value: `system|code` → (Some(system), code); `|code` → (Some(""),
/// code); `code` → (None, code). `system|` (any code of a system) is not supported
/// and an empty code is an error. `\|`, `\,`, `\$` and `\\` are unescaped.
pub fn parse_token(value: &str) -> Result<TokenParam, String> {
    let mut parts = split_unescaped(value, '|');
    let (system, code) = match parts.len() {
        1 => (None, parts.remove(0)),
        2 => {
            let code = parts.remove(1);
            (Some(parts.remove(0)), code)
        }
        _ => {
            return Err(format!(
                "{value:?} has more than one unescaped '|' (a token is [system|]code; write \\| for a '|' in a code)"
            ));
        }
    };
    if code.is_empty() {
        return Err(match system {
            Some(s) if !s.is_empty() => format!(
                "searching any code of a system ({value:?}) is not supported; give system|code"
            ),
            _ => format!("{value:?} has an empty code"),
        });
    }
    Ok(TokenParam { system, code })
}

/// Splits at `sep` where it is not escaped, unescaping `\|`, `\,`, `\$` and `\\`.
fn split_unescaped(value: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == sep {
            out.push(String::new());
            continue;
        }
        let Some(cur) = out.last_mut() else { break };
        if c != '\\' {
            cur.push(c);
            continue;
        }
        match chars.next() {
            Some(n @ ('|' | ',' | '$' | '\\')) => cur.push(n),
            Some(n) => {
                cur.push('\\');
                cur.push(n);
            }
            None => cur.push('\\'),
        }
    }
    out
}

/// Reads a reference value as the id of a `resource_type`: `123`, `Patient/123`,
/// or an absolute URL ending in `/Patient/123`. Other types, version-specific
/// references and ids that are not FHIR ids are errors.
pub fn parse_reference(value: &str, resource_type: &str) -> Result<String, String> {
    let absolute = value.starts_with("http://") || value.starts_with("https://");
    let segments: Vec<&str> = value.rsplit('/').collect();
    let (id, ty) = match segments.as_slice() {
        [id] if !absolute => (*id, None),
        [id, ty] if !absolute => (*id, Some(*ty)),
        [id, ty, _, _, ..] if absolute => (*id, Some(*ty)),
        _ => {
            return Err(format!(
                "{value:?} is not a reference to a {resource_type} (expected <id>, {resource_type}/<id> or a URL ending in /{resource_type}/<id>)"
            ));
        }
    };
    if segments.contains(&"_history") {
        return Err(format!(
            "{value:?}: version-specific references are not supported in searches"
        ));
    }
    if let Some(ty) = ty
        && ty != resource_type
    {
        return Err(format!(
            "{value:?} refers to a {ty}, but only {resource_type} references can match here"
        ));
    }
    if !is_id(id) {
        return Err(format!(
            "{id:?} is not a valid id (1-64 of A-Z a-z 0-9 - .)"
        ));
    }
    Ok(id.to_string())
}

/// Splits a comma-separated list of values (the OR of a search parameter),
/// honouring `\,`: only that escape is resolved here; `\|`, `\$` and `\\` stay for
/// the parser of the value's type. Empty values are kept (the parser reports them).
pub fn split_values(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let Some(cur) = out.last_mut() else { break };
        match c {
            '\\' => match chars.next() {
                Some(',') => cur.push(','),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => out.push(String::new()),
            c => cur.push(c),
        }
    }
    out
}

/// The systems an identifier or code may be stored under for a FHIR system URI
/// (the inverse of [`crate::convert::system_uri`]): `urn:oid:1.2.3` → the URI and
/// `1.2.3`; LOINC → the URI, `LN`, `LOINC`; SNOMED → the URI, `SCT`, `SNOMED`,
/// `SNOMEDCT`, `SNOMED CT`; anything else → the URI itself. The HL7 v2 names are
/// given in upper case: stores should compare them case-insensitively, as
/// `system_uri` does.
pub fn stored_systems(uri: &str) -> Vec<String> {
    let mut out = vec![uri.to_string()];
    match uri {
        LOINC => out.extend(["LN", "LOINC"].map(String::from)),
        SNOMED => out.extend(["SCT", "SNOMED", "SNOMEDCT", "SNOMED CT"].map(String::from)),
        _ => {
            if let Some(oid) = uri.strip_prefix("urn:oid:")
                && !oid.is_empty()
            {
                out.push(oid.to_string());
            }
        }
    }
    out
}

/// `Prefer: handling=…` (http://hl7.org/fhir/R4/search.html#errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    Strict,
    Lenient,
}

/// The `handling` preference of a `Prefer` header (RFC 7240; other preferences are
/// ignored). Lenient when absent or unknown.
pub fn handling(prefer: Option<&str>) -> Handling {
    match preference(prefer, "handling").as_deref() {
        Some(v) if v.eq_ignore_ascii_case("strict") => Handling::Strict,
        _ => Handling::Lenient,
    }
}

/// `Prefer: return=…` (http://hl7.org/fhir/R4/http.html#ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

/// The `return` preference of a `Prefer` header. Representation when absent or
/// unknown.
pub fn return_preference(prefer: Option<&str>) -> Return {
    match preference(prefer, "return") {
        Some(v) if v.eq_ignore_ascii_case("minimal") => Return::Minimal,
        Some(v) if v.eq_ignore_ascii_case("OperationOutcome") => Return::OperationOutcome,
        _ => Return::Representation,
    }
}

/// The value of the preference `name` in a `Prefer` header (RFC 7240:
/// `pref *( "," pref )`, `pref = token [ "=" value ] *( ";" parameter )`, names
/// case-insensitive, values tokens or quoted strings). The first occurrence wins.
fn preference(prefer: Option<&str>, name: &str) -> Option<String> {
    split_outside_quotes(prefer?, ',')
        .into_iter()
        .find_map(|pref| {
            let head = split_outside_quotes(&pref, ';').into_iter().next()?;
            let (key, value) = match head.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (head.trim(), ""),
            };
            key.eq_ignore_ascii_case(name).then(|| unquote(value))
        })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        let Some(cur) = out.last_mut() else { break };
        if escaped {
            escaped = false;
            cur.push(c);
        } else if quoted && c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == sep && !quoted {
            out.push(String::new());
        } else {
            cur.push(c);
        }
    }
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// The model `sex` values an administrative-gender code matches (the model keeps
/// what the sender wrote, HL7 v2 letters included; see [`crate::convert::patient`]).
pub fn gender_values(code: &str) -> Result<Vec<&'static str>, String> {
    Ok(match code {
        "male" => vec!["male", "m"],
        "female" => vec!["female", "f"],
        "other" => vec!["other", "o", "a", "n", "x", "d"],
        "unknown" => vec!["unknown", "u"],
        _ => {
            return Err(format!(
                "{code:?} is not an administrative-gender code (male, female, other, unknown)"
            ));
        }
    })
}

/// Epoch milliseconds as a FHIR instant in UTC with milliseconds
/// (`2026-12-03T07:55:00.123Z`). Values beyond chrono's range (±262,000 years)
/// give the epoch rather than a panic.
pub fn instant_from_millis(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `Meta` with `versionId` and `lastUpdated`.
pub fn meta(version: i64, updated_at_millis: i64) -> Meta {
    Meta {
        version_id: Some(version.to_string()),
        last_updated: Some(instant_from_millis(updated_at_millis)),
        profile: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> (Prefix, String, String) {
        let d = parse_date(v).unwrap();
        (d.prefix, d.lo, d.hi)
    }

    fn r(p: Prefix, lo: &str, hi: &str) -> (Prefix, String, String) {
        (p, lo.into(), hi.into())
    }

    #[test]
    fn date_precisions() {
        assert_eq!(range("2000"), r(Prefix::Eq, "2000", "2001"));
        assert_eq!(range("2000-05"), r(Prefix::Eq, "2000-05", "2000-06"));
        assert_eq!(range("2000-12"), r(Prefix::Eq, "2000-12", "2001-01"));
        assert_eq!(
            range("2000-12-31"),
            r(Prefix::Eq, "2000-12-31", "2001-01-01")
        );
        assert_eq!(
            range("2025-03-15T12:05"),
            r(Prefix::Eq, "2025-03-15T12:05", "2025-03-15T12:06")
        );
        assert_eq!(
            range("2025-03-15T12:05:30"),
            r(Prefix::Eq, "2025-03-15T12:05:30", "2025-03-15T12:05:31")
        );
        assert_eq!(
            range("2025-03-15T12:05:30.123"),
            r(
                Prefix::Eq,
                "2025-03-15T12:05:30.123",
                "2025-03-15T12:05:30.124"
            )
        );
        assert_eq!(
            range("2025-03-15T12:05:30.5"),
            r(Prefix::Eq, "2025-03-15T12:05:30.5", "2025-03-15T12:05:30.6")
        );
    }

    #[test]
    fn date_month_and_year_boundaries() {
        assert_eq!(range("2000-02-28").2, "2000-02-29");
        assert_eq!(range("2000-02-29").2, "2000-03-01");
        assert_eq!(range("2001-02-28").2, "2001-03-01");
        assert_eq!(range("1999-12-31").2, "2000-01-01");
        assert_eq!(range("2000-04-30").2, "2000-05-01");
        assert_eq!(range("1999-12-31T23:59").2, "2000-01-01T00:00");
        assert_eq!(range("1999-12-31T23:59:59").2, "2000-01-01T00:00:00");
        assert_eq!(
            range("1999-12-31T23:59:59.999").2,
            "2000-01-01T00:00:00.000"
        );
        assert_eq!(range("2024-02-29T23:59").2, "2024-03-01T00:00");
    }

    #[test]
    fn date_zones_are_dropped() {
        for v in [
            "2025-03-15T12:05:00Z",
            "2025-03-15T12:05:00+01:00",
            "2025-03-15T12:05:00-05:30",
            "2025-03-15T12:05:00 01:00",
        ] {
            assert_eq!(
                range(v),
                r(Prefix::Eq, "2025-03-15T12:05:00", "2025-03-15T12:05:01"),
                "{v}"
            );
        }
        assert_eq!(
            range("ge2025-03-15T12:05+14:00"),
            r(Prefix::Ge, "2025-03-15T12:05", "2025-03-15T12:06")
        );
    }

    #[test]
    fn date_prefixes() {
        for (p, want) in [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("lt", Prefix::Lt),
            ("le", Prefix::Le),
            ("gt", Prefix::Gt),
            ("ge", Prefix::Ge),
        ] {
            assert_eq!(range(&format!("{p}2000")), r(want, "2000", "2001"));
        }
        for p in ["sa", "eb", "ap"] {
            let e = parse_date(&format!("{p}2000")).unwrap_err();
            assert!(e.contains("not supported"), "{e}");
        }
        assert!(
            parse_date("xx2000")
                .unwrap_err()
                .contains("unknown search prefix")
        );
    }

    #[test]
    fn date_ranges_compare_as_text() {
        let d = parse_date("2000").unwrap();
        assert!(d.lo.as_str() <= "2000-05-31" && "2000-05-31" < d.hi.as_str());
        let d = parse_date("2025-03-15T12:05").unwrap();
        for stored in ["2025-03-15T12:05:00", "2025-03-15T12:05:59+01:00"] {
            assert!(
                d.lo.as_str() <= stored && stored < d.hi.as_str(),
                "{stored}"
            );
        }
        let d = parse_date("2025-03-15").unwrap();
        assert!(d.lo.as_str() <= "2025-03-15T23:59:59Z" && "2025-03-15T23:59:59Z" < d.hi.as_str());
        assert!("2025-03-16T00:00:00" >= d.hi.as_str());
    }

    #[test]
    fn bad_dates() {
        for v in [
            "",
            "ge",
            "200",
            "20000",
            "2000-13",
            "2000-00",
            "2000-1",
            "2001-02-29",
            "2000-04-31",
            "2000-01-01T",
            "2000-01-01T12",
            "2000-01-01T24:00",
            "2000-01-01T12:60",
            "2000-01-01T12:00:61",
            "2000-01-01T12:00.5",
            "2000-01-01T12:00:00.",
            "2000-01-01T12:00:00.1234567890",
            "2000-01-01T12:00:00+1:00",
            "2000-01-01T12:00:00+15:00",
            "2000-01-01-01",
            "9999",
            "9999-12",
            "9999-12-31",
            "2000-01-01T12:00:00ZZ",
            "abcd",
            "2000-01-01 12:00",
        ] {
            assert!(parse_date(v).is_err(), "{v:?} should be refused");
        }
    }

    #[test]
    fn tokens() {
        let t = |v: &str| parse_token(v).unwrap();
        assert_eq!(
            t("http://loinc.org|8867-4"),
            TokenParam {
                system: Some("http://loinc.org".into()),
                code: "8867-4".into()
            }
        );
        assert_eq!(
            t("|abc"),
            TokenParam {
                system: Some(String::new()),
                code: "abc".into()
            }
        );
        assert_eq!(
            t("abc"),
            TokenParam {
                system: None,
                code: "abc".into()
            }
        );
        assert_eq!(t("a\\|b").code, "a|b");
        assert_eq!(t("s|a\\,b\\$c\\\\").code, "a,b$c\\");
        assert!(
            parse_token("http://loinc.org|")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(parse_token("").unwrap_err().contains("empty code"));
        assert!(parse_token("|").unwrap_err().contains("empty code"));
        assert!(parse_token("a|b|c").is_err());
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("123", "Patient").unwrap(), "123");
        assert_eq!(parse_reference("Patient/123", "Patient").unwrap(), "123");
        assert_eq!(
            parse_reference("https://h.example/fhir/R4/Patient/a-1.b", "Patient").unwrap(),
            "a-1.b"
        );
        assert!(
            parse_reference("Group/123", "Patient")
                .unwrap_err()
                .contains("Group")
        );
        assert!(parse_reference("http://h/fhir/Device/1", "Patient").is_err());
        assert!(parse_reference("", "Patient").is_err());
        assert!(parse_reference("Patient/", "Patient").is_err());
        assert!(parse_reference("Patient/a b", "Patient").is_err());
        assert!(parse_reference("a/Patient/1", "Patient").is_err());
        assert!(parse_reference("Patient/1/_history/2", "Patient").is_err());
        assert!(parse_reference("http://h/Patient/1/_history/2", "Patient").is_err());
        assert!(parse_reference("http://Patient", "Patient").is_err());
        assert!(parse_reference(&"x".repeat(65), "Patient").is_err());
    }

    #[test]
    fn value_lists() {
        assert_eq!(split_values("a,b"), ["a", "b"]);
        assert_eq!(split_values("a\\,b,c"), ["a,b", "c"]);
        assert_eq!(split_values("a\\\\,b"), ["a\\\\", "b"]);
        assert_eq!(split_values("s\\|x,y"), ["s\\|x", "y"]);
        assert_eq!(split_values("a,,b"), ["a", "", "b"]);
        assert_eq!(split_values(""), [""]);
        assert_eq!(split_values("end\\"), ["end\\"]);
        // A value split first, then parsed as a token, unescapes once.
        let values = split_values("s|a\\,b,s|c\\\\");
        let codes: Vec<String> = values
            .iter()
            .map(|v| parse_token(v).unwrap().code)
            .collect();
        assert_eq!(codes, ["a,b", "c\\"]);
    }

    #[test]
    fn systems() {
        assert_eq!(stored_systems("urn:oid:1.2.3"), ["urn:oid:1.2.3", "1.2.3"]);
        assert_eq!(stored_systems(LOINC), [LOINC, "LN", "LOINC"]);
        assert_eq!(
            stored_systems(SNOMED),
            [SNOMED, "SCT", "SNOMED", "SNOMEDCT", "SNOMED CT"]
        );
        assert_eq!(stored_systems("HIS"), ["HIS"]);
        assert_eq!(stored_systems("urn:oid:"), ["urn:oid:"]);
        // Every stored name maps back to the URI it was looked up by.
        for uri in ["urn:oid:1.2.3", LOINC, SNOMED, "http://x"] {
            for s in stored_systems(uri) {
                assert_eq!(crate::convert::system_uri(&s), uri, "{s}");
            }
        }
    }

    #[test]
    fn prefer_header() {
        assert_eq!(handling(None), Handling::Lenient);
        assert_eq!(handling(Some("handling=strict")), Handling::Strict);
        assert_eq!(handling(Some("handling=lenient")), Handling::Lenient);
        assert_eq!(
            handling(Some("return=minimal, Handling = \"strict\"")),
            Handling::Strict
        );
        assert_eq!(handling(Some("handling=strict; x=1")), Handling::Strict);
        assert_eq!(handling(Some("respond-async, wait=10")), Handling::Lenient);
        assert_eq!(handling(Some("x=\"a,handling=strict\"")), Handling::Lenient);
        assert_eq!(handling(Some("handling=bogus")), Handling::Lenient);
        assert_eq!(return_preference(None), Return::Representation);
        assert_eq!(return_preference(Some("return=minimal")), Return::Minimal);
        assert_eq!(
            return_preference(Some("handling=strict,return=OperationOutcome")),
            Return::OperationOutcome
        );
        assert_eq!(
            return_preference(Some("return=representation")),
            Return::Representation
        );
        assert_eq!(return_preference(Some("return")), Return::Representation);
        assert_eq!(
            return_preference(Some("return=other")),
            Return::Representation
        );
    }

    #[test]
    fn genders() {
        assert_eq!(gender_values("male").unwrap(), ["male", "m"]);
        assert_eq!(gender_values("female").unwrap(), ["female", "f"]);
        assert_eq!(
            gender_values("other").unwrap(),
            ["other", "o", "a", "n", "x", "d"]
        );
        assert_eq!(gender_values("unknown").unwrap(), ["unknown", "u"]);
        assert!(gender_values("M").is_err());
        assert!(gender_values("").is_err());
    }

    #[test]
    fn instants_and_meta() {
        assert_eq!(instant_from_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            instant_from_millis(1_796_284_500_123),
            "2026-12-03T07:55:00.123Z"
        );
        assert_eq!(instant_from_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(instant_from_millis(i64::MAX), "1970-01-01T00:00:00.000Z");
        assert!(crate::validate::is_instant(&instant_from_millis(
            1_796_284_500_123
        )));
        assert_eq!(
            meta(3, 1_796_284_500_123),
            Meta {
                version_id: Some("3".into()),
                last_updated: Some("2026-12-03T07:55:00.123Z".into()),
                profile: Vec::new(),
            }
        );
    }

    #[test]
    fn zoned_values_move_to_the_local_zone() {
        let cet = FixedOffset::east_opt(3600).unwrap();
        let local = |v: &str| {
            let d = parse_date_local(v, &cet).unwrap();
            (d.prefix, d.lo, d.hi)
        };
        assert_eq!(
            local("ge2025-03-15T08:30:00Z"),
            r(Prefix::Ge, "2025-03-15T09:30:00", "2025-03-15T09:30:01")
        );
        // An unencoded `+` arrives as a space.
        assert_eq!(
            local("2025-03-15T10:30 02:00"),
            r(Prefix::Eq, "2025-03-15T09:30", "2025-03-15T09:31")
        );
        assert_eq!(
            local("lt2025-12-31T23:30:00.5-01:00"),
            r(Prefix::Lt, "2026-01-01T01:30:00.5", "2026-01-01T01:30:00.6")
        );
        // No zone: already local. Dates have none.
        assert_eq!(
            local("2025-03-15T08:30"),
            r(Prefix::Eq, "2025-03-15T08:30", "2025-03-15T08:31")
        );
        assert_eq!(local("2025-03-15"), range("2025-03-15"));
        // Dropped, not converted, without a zone to convert to.
        assert_eq!(
            range("2025-03-15T08:30:00Z"),
            r(Prefix::Eq, "2025-03-15T08:30:00", "2025-03-15T08:30:01")
        );
        // Past year 9999 in local time: not a comparable value.
        assert!(parse_date_local("9999-12-31T23:30:00Z", &cet).is_err());
    }
}
