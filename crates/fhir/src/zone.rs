//! The time zone of local times. HL7 v2 and GDT senders write wall-clock
//! times without an offset, and the model keeps them so; FHIR needs an offset
//! on every time. A [`LocalZone`] says which offset a local time had (for
//! output) and which local time an instant was (for zoned input: created
//! resources and search values), so both sides compare in one zone.
//!
//! Any `chrono` time zone is one: `chrono::Utc`, a `FixedOffset`, or
//! `chrono::Local` (the machine's zone: `TZ`, else `/etc/localtime`), which the
//! server uses. This crate reads no clock and no zone itself.

use chrono::{FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone};

/// The zone local times are written in.
pub trait LocalZone: Send + Sync + std::fmt::Debug {
    /// The offset in force at the local time `t`: the earlier one when the
    /// clock was set back (ambiguous), the one before the change for a time
    /// the clock skipped.
    fn offset_at_local(&self, t: NaiveDateTime) -> FixedOffset;
    /// The local time at the UTC time `t`.
    fn local_of_utc(&self, t: NaiveDateTime) -> NaiveDateTime;
}

impl<Tz> LocalZone for Tz
where
    Tz: TimeZone + Send + Sync + std::fmt::Debug,
{
    fn offset_at_local(&self, t: NaiveDateTime) -> FixedOffset {
        match self.offset_from_local_datetime(&t) {
            LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => o.fix(),
            // Skipped by the clock: three hours earlier is before the change.
            LocalResult::None => {
                let before = t - chrono::TimeDelta::hours(3);
                self.offset_from_utc_datetime(&before).fix()
            }
        }
    }

    fn local_of_utc(&self, t: NaiveDateTime) -> NaiveDateTime {
        self.from_utc_datetime(&t).naive_local()
    }
}

/// `Z` for UTC, else `±hh:mm`.
pub fn offset_text(o: FixedOffset) -> String {
    if o.local_minus_utc() == 0 {
        "Z".into()
    } else {
        o.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn fixed_offsets_and_utc() {
        let cet = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            offset_text(cet.offset_at_local(at(2025, 7, 1, 9, 0))),
            "+01:00"
        );
        assert_eq!(cet.local_of_utc(at(2025, 7, 1, 8, 0)), at(2025, 7, 1, 9, 0));
        assert_eq!(
            offset_text(chrono::Utc.offset_at_local(at(2025, 7, 1, 9, 0))),
            "Z"
        );
        let west = FixedOffset::west_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(
            offset_text(west.offset_at_local(at(2025, 1, 1, 0, 0))),
            "-05:30"
        );
    }

    /// A zone with summer time: +01:00, +02:00 from 2026-03-29 01:00 UTC
    /// (local 02:00 becomes 03:00) to 2026-10-25 01:00 UTC (03:00 becomes 02:00).
    #[derive(Debug)]
    struct Cet;

    impl LocalZone for Cet {
        fn offset_at_local(&self, t: NaiveDateTime) -> FixedOffset {
            let summer = t >= at(2026, 3, 29, 2, 0) && t < at(2026, 10, 25, 2, 0);
            FixedOffset::east_opt(if summer { 7200 } else { 3600 }).unwrap()
        }
        fn local_of_utc(&self, t: NaiveDateTime) -> NaiveDateTime {
            let summer = t >= at(2026, 3, 29, 1, 0) && t < at(2026, 10, 25, 1, 0);
            t + chrono::TimeDelta::hours(if summer { 2 } else { 1 })
        }
    }

    #[test]
    fn the_converter_gives_each_time_its_own_offset() {
        let c = crate::convert::Converter::new(Cet);
        assert_eq!(
            c.date_time("2026-07-06T10:00:00").as_deref(),
            Some("2026-07-06T10:00:00+02:00")
        );
        assert_eq!(
            c.date_time("2026-12-06T09:30").as_deref(),
            Some("2026-12-06T09:30+01:00")
        );
        assert_eq!(
            c.date_time("2026-12-06T09:30:00.25").as_deref(),
            Some("2026-12-06T09:30:00.25+01:00")
        );
        // Already zoned, or a date: as given. Unreadable time: its day's noon.
        assert_eq!(
            c.date_time("2026-07-06T10:00:00Z").as_deref(),
            Some("2026-07-06T10:00:00Z")
        );
        assert_eq!(c.date_time("2026-07-06").as_deref(), Some("2026-07-06"));
        assert_eq!(
            c.date_time("2026-07-06T10").as_deref(),
            Some("2026-07-06T10+02:00")
        );
        // Zoned input becomes local time of the same instant.
        assert_eq!(c.local_time("2026-07-06T08:00:00Z"), "2026-07-06T10:00:00");
        assert_eq!(
            c.local_time("2026-12-06T10:30:00+02:00"),
            "2026-12-06T09:30:00"
        );
        assert_eq!(
            c.local_time("2026-12-06T08:30:00.5Z"),
            "2026-12-06T09:30:00.500"
        );
        for kept in ["2026-12-06", "2026-12-06T09:30:00", "not a time", ""] {
            assert_eq!(c.local_time(kept), kept);
        }
        // Round trip: local → FHIR → local.
        let fhir = c.date_time("2026-10-24T23:30:00").unwrap();
        assert_eq!(c.local_time(&fhir), "2026-10-24T23:30:00");
    }
}
