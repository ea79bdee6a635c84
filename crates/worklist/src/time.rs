//! HL7 date/time (DT, DTM, the first component of TS) ↔ ISO 8601.
//!
//! HL7 writes `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`; the model keeps ISO 8601
//! (`1975-10-22`, `2025-03-15T12:00:00`, `2025-03-15T12:00:00+01:00`) because that is
//! what the device API and FHIR speak. Precision is kept: `197510` stays `1975-10`, a
//! time given to the hour or minute is written with `:00` filled in (ISO 8601 extended
//! format has no hour-only form that JSON clients parse reliably).
//!
//! Every function validates ranges (month, day of month with leap years, hour, minute,
//! second, offset) and returns `None` for anything else; nothing here panics.
//!
//! ```
//! use medrelay_worklist::time::{hl7_to_iso, iso_to_hl7};
//! assert_eq!(hl7_to_iso("19751022").as_deref(), Some("1975-10-22"));
//! assert_eq!(hl7_to_iso("20250315120000").as_deref(), Some("2025-03-15T12:00:00"));
//! assert_eq!(hl7_to_iso("202503151200+0100").as_deref(), Some("2025-03-15T12:00:00+01:00"));
//! assert_eq!(iso_to_hl7("2025-03-15T12:05:00+01:00").as_deref(), Some("20250315120500+0100"));
//! assert_eq!(iso_to_hl7("2025-03-15T12:05:00Z").as_deref(), Some("20250315120500+0000"));
//! assert_eq!(hl7_to_iso("20250230"), None); // no 30th of February
//! ```

/// A parsed date/time, at whatever precision the source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DateTime {
    year: u16,
    month: Option<u8>,
    day: Option<u8>,
    hour: Option<u8>,
    minute: Option<u8>,
    second: Option<u8>,
    /// Fraction digits as written (1..=9 digits), without the dot.
    fraction: Option<String>,
    /// Offset in minutes east of UTC.
    offset: Option<i16>,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn num(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl DateTime {
    fn validate(self) -> Option<Self> {
        if let Some(m) = self.month {
            if !(1..=12).contains(&m) {
                return None;
            }
            if let Some(d) = self.day
                && (d == 0 || d > days_in_month(self.year, m))
            {
                return None;
            }
        }
        if self.hour.is_some_and(|h| h > 23)
            || self.minute.is_some_and(|m| m > 59)
            // 60 allows a leap second, which HL7 and ISO both permit.
            || self.second.is_some_and(|s| s > 60)
        {
            return None;
        }
        if let Some(o) = self.offset
            && o.unsigned_abs() > 14 * 60
        {
            return None;
        }
        Some(self)
    }

    fn has_time(&self) -> bool {
        self.hour.is_some()
    }

    fn to_iso(&self) -> String {
        // Written digit by digit: this runs for every date of every order.
        let mut out = String::with_capacity(32);
        push_year(&mut out, self.year);
        let Some(month) = self.month else { return out };
        out.push('-');
        push2(&mut out, month);
        let Some(day) = self.day else { return out };
        out.push('-');
        push2(&mut out, day);
        let Some(hour) = self.hour else { return out };
        out.push('T');
        push2(&mut out, hour);
        out.push(':');
        push2(&mut out, self.minute.unwrap_or(0));
        out.push(':');
        push2(&mut out, self.second.unwrap_or(0));
        if let Some(f) = &self.fraction {
            out.push('.');
            out.push_str(f);
        }
        if let Some(o) = self.offset {
            push_offset(&mut out, o, true);
        }
        out
    }

    fn to_hl7(&self) -> String {
        let mut out = String::with_capacity(24);
        push_year(&mut out, self.year);
        for part in [self.month, self.day, self.hour, self.minute, self.second] {
            match part {
                Some(p) => push2(&mut out, p),
                None => break,
            }
        }
        if self.second.is_some()
            && let Some(f) = &self.fraction
        {
            // HL7 allows at most four fraction digits.
            out.push('.');
            out.push_str(f.get(..4).unwrap_or(f));
        }
        if self.has_time()
            && let Some(o) = self.offset
        {
            push_offset(&mut out, o, false);
        }
        out
    }
}

/// Two decimal digits (values above 99 cannot come out of the parser).
fn push2(out: &mut String, n: u8) {
    out.push(char::from(b'0' + (n / 10) % 10));
    out.push(char::from(b'0' + n % 10));
}

fn push_year(out: &mut String, year: u16) {
    for d in [year / 1000 % 10, year / 100 % 10, year / 10 % 10, year % 10] {
        out.push(char::from(b'0' + d as u8));
    }
}

/// `+hh:mm` (ISO) or `+hhmm` (HL7) for an offset in minutes.
fn push_offset(out: &mut String, minutes: i16, iso: bool) {
    out.push(if minutes < 0 { '-' } else { '+' });
    let a = minutes.unsigned_abs();
    push2(out, (a / 60) as u8);
    if iso {
        out.push(':');
    }
    push2(out, (a % 60) as u8);
}

/// Splits `+hhmm`/`-hhmm` (HL7) or `+hh:mm`/`-hh:mm`/`Z` (ISO) off the end.
fn split_offset(s: &str, iso: bool) -> Option<(&str, Option<i16>)> {
    if iso && let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((rest, Some(0)));
    }
    let Some(pos) = s.rfind(['+', '-']) else {
        return Some((s, None));
    };
    let (head, tail) = s.split_at(pos);
    // In ISO, '-' also separates the date: only a sign after the 'T' is an offset.
    if iso && !head.contains(['T', 't', ' ']) {
        return Some((s, None));
    }
    let negative = tail.starts_with('-');
    let digits: String = tail.get(1..)?.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 && !(iso && digits.len() == 2) {
        return None;
    }
    let hours = num(digits.get(..2)?)?;
    let minutes = if digits.len() == 4 {
        num(digits.get(2..)?)?
    } else {
        0
    };
    if minutes > 59 {
        return None;
    }
    let total = i16::try_from(hours * 60 + minutes).ok()?;
    Some((head, Some(if negative { -total } else { total })))
}

fn parse_hl7(s: &str) -> Option<DateTime> {
    let s = s.trim();
    let (body, offset) = split_offset(s, false)?;
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (body, None),
    };
    if !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return None;
    }
    let part = |from: usize| -> Option<Option<u8>> {
        match digits.get(from..from + 2) {
            Some(p) => Some(Some(u8::try_from(num(p)?).ok()?)),
            None => Some(None),
        }
    };
    let fraction = match fraction {
        Some(f) if digits.len() == 14 && (1..=9).contains(&f.len()) && all_digits(f) => {
            Some(f.to_string())
        }
        Some(_) => return None,
        None => None,
    };
    DateTime {
        year: num(digits.get(..4)?)?,
        month: part(4)?,
        day: part(6)?,
        hour: part(8)?,
        minute: part(10)?,
        second: part(12)?,
        fraction,
        offset,
    }
    .validate()
}

fn parse_iso(s: &str) -> Option<DateTime> {
    let s = s.trim();
    let (body, offset) = split_offset(s, true)?;
    let (date, time) = match body.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut dparts = date.split('-');
    let year_s = dparts.next()?;
    if year_s.len() != 4 {
        return None;
    }
    let year = num(year_s)?;
    let two = |it: &mut std::str::Split<'_, char>| -> Option<Option<u8>> {
        match it.next() {
            Some(p) if p.len() == 2 => Some(Some(u8::try_from(num(p)?).ok()?)),
            Some(_) => None,
            None => Some(None),
        }
    };
    let month = two(&mut dparts)?;
    let day = two(&mut dparts)?;
    if dparts.next().is_some() {
        return None;
    }
    let (mut hour, mut minute, mut second, mut fraction) = (None, None, None, None);
    if let Some(t) = time {
        // A time needs a full date.
        day?;
        let (hms, frac) = match t.split_once(['.', ',']) {
            Some((a, f)) => (a, Some(f)),
            None => (t, None),
        };
        let mut tparts = hms.split(':');
        hour = two(&mut tparts)?;
        minute = two(&mut tparts)?;
        second = two(&mut tparts)?;
        if hour.is_none() || tparts.next().is_some() {
            return None;
        }
        if let Some(f) = frac {
            if second.is_none() || !(1..=9).contains(&f.len()) || !all_digits(f) {
                return None;
            }
            fraction = Some(f.to_string());
        }
    } else if offset.is_some() {
        return None;
    }
    DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        fraction,
        offset,
    }
    .validate()
}

/// HL7 DTM/DT → ISO 8601 at the precision given. `None` if it is not a valid date/time.
pub fn hl7_to_iso(hl7: &str) -> Option<String> {
    parse_hl7(hl7).map(|d| d.to_iso())
}

/// HL7 DTM/DT → an ISO 8601 date (`YYYY[-MM[-DD]]`), dropping any time part: birth
/// dates are sometimes sent as DTM with a midnight time.
pub fn hl7_to_iso_date(hl7: &str) -> Option<String> {
    parse_hl7(hl7).map(|d| {
        DateTime {
            hour: None,
            minute: None,
            second: None,
            fraction: None,
            offset: None,
            ..d
        }
        .to_iso()
    })
}

/// ISO 8601 (extended format: `2025-03-15`, `2025-03-15T12:05:00.25+01:00`, `…Z`) →
/// HL7 DTM (`20250315120500.25+0100`; `Z` becomes `+0000`). `None` if invalid.
pub fn iso_to_hl7(iso: &str) -> Option<String> {
    parse_iso(iso).map(|d| d.to_hl7())
}

/// True for a valid ISO 8601 date or date-time (the forms [`iso_to_hl7`] accepts).
pub fn is_iso(s: &str) -> bool {
    parse_iso(s).is_some()
}

/// True for a valid ISO 8601 date-time that carries at least hours.
pub fn is_iso_datetime(s: &str) -> bool {
    parse_iso(s).is_some_and(|d| d.has_time())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_precisions() {
        let cases = [
            ("1975", Some("1975")),
            ("197510", Some("1975-10")),
            ("19751022", Some("1975-10-22")),
            ("2025031512", Some("2025-03-15T12:00:00")),
            ("202503151205", Some("2025-03-15T12:05:00")),
            ("20250315120530", Some("2025-03-15T12:05:30")),
            ("20250315120530.1234", Some("2025-03-15T12:05:30.1234")),
            ("20250315120530+0100", Some("2025-03-15T12:05:30+01:00")),
            ("20250315120530-0530", Some("2025-03-15T12:05:30-05:30")),
            ("20250315120530.5+0000", Some("2025-03-15T12:05:30.5+00:00")),
            (" 20250315 ", Some("2025-03-15")),
            ("20240229", Some("2024-02-29")),
            ("20000229", Some("2000-02-29")),
        ];
        for (input, want) in cases {
            assert_eq!(hl7_to_iso(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn hl7_invalid() {
        for bad in [
            "",
            "19",
            "197",
            "1975102",
            "19751322",
            "19751000",
            "20250229",
            "19000229",
            "2025031524",
            "202503151260",
            "20250315120561",
            "2025031512.5",
            "20250315120530.",
            "20250315120530.12345678901",
            "20250315+1",
            "20250315120000+2500",
            "20250315120000+0160",
            "abcd",
            "2025-03-15",
            "２０２５",
            "20250315120000++0100",
            "-0100",
        ] {
            assert_eq!(hl7_to_iso(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn date_only() {
        assert_eq!(
            hl7_to_iso_date("19751022000000").as_deref(),
            Some("1975-10-22")
        );
        assert_eq!(
            hl7_to_iso_date("19751022+0100").as_deref(),
            Some("1975-10-22")
        );
        assert_eq!(hl7_to_iso_date("x"), None);
    }

    #[test]
    fn iso_round_trip() {
        let cases = [
            ("1975-10-22", "19751022"),
            ("1975-10", "197510"),
            ("1975", "1975"),
            ("2025-03-15T12:00:00", "20250315120000"),
            ("2025-03-15T12:00", "202503151200"),
            ("2025-03-15 12:00:00", "20250315120000"),
            ("2025-03-15T12:00:00Z", "20250315120000+0000"),
            (
                "2025-03-15T12:00:00.123456+01:00",
                "20250315120000.1234+0100",
            ),
            ("2025-03-15T12:00:00-0500", "20250315120000-0500"),
            ("2025-03-15T12:00:00+02", "20250315120000+0200"),
        ];
        for (iso, hl7) in cases {
            assert_eq!(iso_to_hl7(iso).as_deref(), Some(hl7), "{iso}");
        }
        // HL7 → ISO → HL7 keeps the value.
        for hl7 in ["20250315120530+0100", "19751022", "20250315120530.25"] {
            let iso = hl7_to_iso(hl7).unwrap();
            assert_eq!(iso_to_hl7(&iso).as_deref(), Some(hl7));
        }
    }

    #[test]
    fn iso_invalid() {
        for bad in [
            "",
            "2025-3-15",
            "2025-03-32",
            "2025-02-29T00:00:00",
            "2025-03-15T",
            "2025-03-15T25:00:00",
            "2025-03-15T12:00:00+",
            "2025-03-15T12:00:00+1:00",
            "2025-03-15T12:00.5",
            "2025-03-15+01:00",
            "20250315",
            "yesterday",
            "2025-03-15T12:00:00:00",
            "2025-03-15-01",
        ] {
            assert_eq!(iso_to_hl7(bad), None, "{bad:?}");
        }
        assert!(is_iso_datetime("2025-03-15T12:00:00Z"));
        assert!(!is_iso_datetime("2025-03-15"));
        assert!(is_iso("2025-03-15"));
    }
}
