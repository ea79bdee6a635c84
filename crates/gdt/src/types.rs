//! Typed values of GDT fields: record types, dates, times, sex and versions.
//!
//! These are deliberately small and dependency-free: GDT dates are plain calendar
//! dates without a time zone, so there is nothing a date library would add here.

use std::fmt;

use crate::error::Error;
use crate::field::FieldId;

/// The record type (Satzart) of field 8000.
///
/// ```
/// use gdt::RecordType;
/// assert_eq!(RecordType::from_code(6302), RecordType::ExaminationRequest);
/// assert_eq!(RecordType::ExaminationData.code(), 6310);
/// assert_eq!(RecordType::from_code(6399).to_string(), "6399");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// 6300 — request patient data (Stammdaten anfordern), device → practice system.
    PatientDataRequest,
    /// 6301 — transfer patient data (Stammdaten übermitteln).
    PatientData,
    /// 6302 — request a new examination (Neue Untersuchung anfordern), practice
    /// system → device.
    ExaminationRequest,
    /// 6303 — cancel a requested examination (GDT 3.0).
    ExaminationCancel,
    /// 6310 — transfer the data of an examination (result), device → practice system.
    ExaminationData,
    /// 6311 — show the data of an examination (Daten einer Untersuchung zeigen).
    ExaminationShow,
    /// Any other 4-digit record type.
    Other(u16),
}

impl RecordType {
    /// The type for a code.
    pub fn from_code(code: u16) -> Self {
        match code {
            6300 => Self::PatientDataRequest,
            6301 => Self::PatientData,
            6302 => Self::ExaminationRequest,
            6303 => Self::ExaminationCancel,
            6310 => Self::ExaminationData,
            6311 => Self::ExaminationShow,
            c => Self::Other(c),
        }
    }

    /// Reads the content of 8000: exactly four digits.
    pub fn parse(value: &str) -> Option<Self> {
        FieldId::from_ascii(value.as_bytes()).map(|id| Self::from_code(id.get()))
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::PatientDataRequest => 6300,
            Self::PatientData => 6301,
            Self::ExaminationRequest => 6302,
            Self::ExaminationCancel => 6303,
            Self::ExaminationData => 6310,
            Self::ExaminationShow => 6311,
            Self::Other(c) => c,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.code())
    }
}

/// A calendar date, validated (month 1–12, day within the month, leap years).
///
/// GDT writes dates as `DDMMYYYY`.
///
/// ```
/// use gdt::Date;
/// let d = Date::parse_gdt("29022024").unwrap();
/// assert_eq!((d.year(), d.month(), d.day()), (2024, 2, 29));
/// assert_eq!(d.to_gdt(), "29022024");
/// assert!(Date::parse_gdt("29022023").is_none());
/// assert!(Date::parse_gdt("00001950").is_none()); // unknown day/month is not a date
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A date, `None` when it does not exist (years 1–9999).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1–31.
    pub fn day(self) -> u8 {
        self.day
    }

    /// Reads `DDMMYYYY` (exactly eight digits).
    pub fn parse_gdt(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let day = u8::try_from(digits(b.get(0..2)?)).ok()?;
        let month = u8::try_from(digits(b.get(2..4)?)).ok()?;
        let year = u16::try_from(digits(b.get(4..8)?)).ok()?;
        Self::new(year, month, day)
    }

    /// `DDMMYYYY`.
    pub fn to_gdt(self) -> String {
        format!("{:02}{:02}{:04}", self.day, self.month, self.year)
    }
}

impl fmt::Display for Date {
    /// ISO 8601 (`YYYY-MM-DD`), for logs and dashboards.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
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

/// Value of ASCII digits (the caller checked they are digits; at most 4 of them).
fn digits(b: &[u8]) -> u32 {
    b.iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d.wrapping_sub(b'0') % 10))
}

/// A time of day, validated. GDT writes `HHMMSS`; `HHMM` is read too (some devices
/// leave out the seconds).
///
/// ```
/// use gdt::Time;
/// let t = Time::parse_gdt("143005").unwrap();
/// assert_eq!((t.hour(), t.minute(), t.second()), (14, 30, 5));
/// assert_eq!(Time::parse_gdt("1430").unwrap().to_gdt(), "143000");
/// assert!(Time::parse_gdt("246000").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Time {
    hour: u8,
    minute: u8,
    second: u8,
}

impl Time {
    /// A time, `None` out of range (a leap second 60 is not accepted).
    pub fn new(hour: u8, minute: u8, second: u8) -> Option<Self> {
        (hour < 24 && minute < 60 && second < 60).then_some(Self {
            hour,
            minute,
            second,
        })
    }

    /// The hour, 0–23.
    pub fn hour(self) -> u8 {
        self.hour
    }

    /// The minute, 0–59.
    pub fn minute(self) -> u8 {
        self.minute
    }

    /// The second, 0–59.
    pub fn second(self) -> u8 {
        self.second
    }

    /// Reads `HHMMSS` or `HHMM`.
    pub fn parse_gdt(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if !(b.len() == 6 || b.len() == 4) || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let part =
            |r: std::ops::Range<usize>| b.get(r).map(digits).and_then(|n| u8::try_from(n).ok());
        let second = if b.len() == 6 { part(4..6)? } else { 0 };
        Self::new(part(0..2)?, part(2..4)?, second)
    }

    /// `HHMMSS`.
    pub fn to_gdt(self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }
}

impl fmt::Display for Time {
    /// `HH:MM:SS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// The patient's sex (field 3110).
///
/// GDT 2.1 codes it as `1` (male) / `2` (female); GDT 3.x uses `M`, `W` (weiblich),
/// `D` (divers) and `X` (unbestimmt, not specified). Both are read; lower case and
/// `F` are accepted for female because devices send them.
///
/// ```
/// use gdt::Sex;
/// assert_eq!(Sex::parse("1"), Some(Sex::Male));
/// assert_eq!(Sex::parse("W"), Some(Sex::Female));
/// assert_eq!(Sex::Female.gdt2_code(), Some("2"));
/// assert_eq!(Sex::Diverse.gdt2_code(), None);
/// assert_eq!(Sex::Diverse.gdt3_code(), "D");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Male (`1`, `M`).
    Male,
    /// Female (`2`, `W`).
    Female,
    /// Diverse (`D`), GDT 3.x only.
    Diverse,
    /// Not specified (`X`), GDT 3.x only.
    Unspecified,
}

impl Sex {
    /// Reads a 3110 value of either version.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "1" | "M" | "m" => Some(Self::Male),
            "2" | "W" | "w" | "F" | "f" => Some(Self::Female),
            "D" | "d" => Some(Self::Diverse),
            "X" | "x" => Some(Self::Unspecified),
            _ => None,
        }
    }

    /// The GDT 2.1 code; `None` for the values 2.1 cannot express.
    pub fn gdt2_code(self) -> Option<&'static str> {
        match self {
            Self::Male => Some("1"),
            Self::Female => Some("2"),
            Self::Diverse | Self::Unspecified => None,
        }
    }

    /// The GDT 3.x code.
    pub fn gdt3_code(self) -> &'static str {
        match self {
            Self::Male => "M",
            Self::Female => "W",
            Self::Diverse => "D",
            Self::Unspecified => "X",
        }
    }

    /// The code for a record of the given version (2.x codes when the version is
    /// unknown, since 2.1 is what most systems speak); `None` when 2.x cannot express it.
    pub fn code_for(self, version: Option<GdtVersion>) -> Option<&'static str> {
        match version {
            Some(v) if v.major >= 3 => Some(self.gdt3_code()),
            _ => self.gdt2_code(),
        }
    }
}

/// The GDT version of field 9218, e.g. `02.10` (2.1) or `03.00`.
///
/// ```
/// use gdt::GdtVersion;
/// let v = GdtVersion::parse("02.10").unwrap();
/// assert_eq!((v.major, v.minor), (2, 10));
/// assert!(!v.is_v3());
/// assert!(GdtVersion::parse("3.00").unwrap().is_v3());
/// assert_eq!(GdtVersion::V2_1.to_string(), "02.10");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GdtVersion {
    /// Major version (2 or 3).
    pub major: u8,
    /// Minor version as written after the dot (`10` in `02.10`).
    pub minor: u8,
}

impl GdtVersion {
    /// GDT 2.1 (`02.10`).
    pub const V2_1: Self = Self {
        major: 2,
        minor: 10,
    };
    /// GDT 3.0 (`03.00`).
    pub const V3_0: Self = Self { major: 3, minor: 0 };

    /// Reads `MM.mm` with one or two digits on each side.
    pub fn parse(value: &str) -> Option<Self> {
        let (a, b) = value.trim().split_once('.')?;
        let num = |s: &str| {
            (!s.is_empty() && s.len() <= 2 && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse::<u8>().ok())
                .flatten()
        };
        Some(Self {
            major: num(a)?,
            minor: num(b)?,
        })
    }

    /// Whether this is GDT 3.x or later (objects, `M/W/D/X` sex codes, 7-digit 8100).
    pub fn is_v3(self) -> bool {
        self.major >= 3
    }
}

impl fmt::Display for GdtVersion {
    /// As GDT writes it: `02.10`, `03.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}.{:02}", self.major, self.minor)
    }
}

/// Reads a date field, for the typed accessors.
pub(crate) fn date_field(field: FieldId, value: Option<&str>) -> Result<Option<Date>, Error> {
    value
        .map(|v| {
            Date::parse_gdt(v.trim()).ok_or_else(|| Error::InvalidDate {
                field,
                value: v.to_string(),
            })
        })
        .transpose()
}

/// Reads a time field, for the typed accessors.
pub(crate) fn time_field(field: FieldId, value: Option<&str>) -> Result<Option<Time>, Error> {
    value
        .map(|v| {
            Time::parse_gdt(v.trim()).ok_or_else(|| Error::InvalidTime {
                field,
                value: v.to_string(),
            })
        })
        .transpose()
}

/// Reads a decimal number (`.` or `,` as decimal separator), for the typed accessors.
pub(crate) fn number_field(field: FieldId, value: Option<&str>) -> Result<Option<f64>, Error> {
    value
        .map(|v| {
            parse_decimal(v).ok_or_else(|| Error::InvalidNumber {
                field,
                value: v.to_string(),
            })
        })
        .transpose()
}

/// A decimal number as devices write it: optional sign, digits, `.` or `,` as the
/// decimal separator. No exponents, no thousands separators, no `inf`/`NaN`.
pub fn parse_decimal(value: &str) -> Option<f64> {
    let v = value.trim();
    let body = v.strip_prefix(['-', '+']).unwrap_or(v);
    let mut seen_sep = false;
    let mut seen_digit = false;
    for c in body.bytes() {
        match c {
            b'0'..=b'9' => seen_digit = true,
            b'.' | b',' if !seen_sep => seen_sep = true,
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    v.replace(',', ".").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(Date::parse_gdt("31012024").is_some());
        assert!(Date::parse_gdt("31042024").is_none());
        assert!(Date::parse_gdt("29021900").is_none());
        assert!(Date::parse_gdt("29022000").is_some());
        assert!(Date::parse_gdt("1012024").is_none());
        assert!(Date::parse_gdt("01-12024").is_none());
        assert!(Date::parse_gdt("01.01.2024").is_none());
        assert!(Date::parse_gdt("01010000").is_none());
        assert_eq!(Date::new(1965, 6, 24).unwrap().to_string(), "1965-06-24");
    }

    #[test]
    fn times() {
        assert_eq!(Time::parse_gdt("000000"), Time::new(0, 0, 0));
        assert_eq!(Time::parse_gdt("235959"), Time::new(23, 59, 59));
        assert!(Time::parse_gdt("235960").is_none());
        assert!(Time::parse_gdt("12345").is_none());
        assert!(Time::parse_gdt("12:30").is_none());
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("72"), Some(72.0));
        assert_eq!(parse_decimal(" 178.00"), Some(178.0));
        assert_eq!(parse_decimal("1,5"), Some(1.5));
        assert_eq!(parse_decimal("-0.5"), Some(-0.5));
        assert_eq!(parse_decimal(".5"), Some(0.5));
        assert_eq!(parse_decimal("1e5"), None);
        assert_eq!(parse_decimal("NaN"), None);
        assert_eq!(parse_decimal("1.2.3"), None);
        assert_eq!(parse_decimal("-"), None);
        assert_eq!(parse_decimal(""), None);
    }

    #[test]
    fn versions() {
        assert_eq!(GdtVersion::parse("2.10"), Some(GdtVersion::V2_1));
        assert_eq!(GdtVersion::parse("03.01").map(|v| v.minor), Some(1));
        assert_eq!(GdtVersion::parse("0210"), None);
        assert_eq!(GdtVersion::parse("02.100"), None);
        assert_eq!(GdtVersion::parse("a.b"), None);
    }

    #[test]
    fn record_types() {
        assert_eq!(RecordType::parse("6310"), Some(RecordType::ExaminationData));
        assert_eq!(RecordType::parse("631"), None);
        assert_eq!(RecordType::parse("63100"), None);
        assert_eq!(RecordType::parse("0042"), Some(RecordType::Other(42)));
        for c in [6300, 6301, 6302, 6303, 6310, 6311, 1234] {
            assert_eq!(RecordType::from_code(c).code(), c);
        }
    }
}
