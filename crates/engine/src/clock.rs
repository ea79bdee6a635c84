//! Wall-clock helpers: the store wants epoch milliseconds, HL7 wants `YYYYMMDDHHMMSS`.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// HL7 DTM with seconds and UTC offset, e.g. `20250315120000+0000`.
pub fn hl7_timestamp(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y%m%d%H%M%S+0000").to_string(),
        None => "19700101000000+0000".to_string(),
    }
}

/// Control ids for the messages medrelay itself creates (ACKs): unique within the
/// process and, because they start at the start-up time in milliseconds, across
/// restarts too. At most 20 characters, the v2.5 length of MSH-10.
pub struct ControlIds {
    next: AtomicU64,
}

impl ControlIds {
    pub fn new() -> Self {
        let start = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000);
        ControlIds {
            next: AtomicU64::new(start),
        }
    }

    pub fn next(&self) -> String {
        self.next.fetch_add(1, Ordering::Relaxed).to_string()
    }
}

impl Default for ControlIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(hl7_timestamp(1_742_040_000_000), "20250315120000+0000");
    }

    #[test]
    fn control_ids_are_unique_and_short() {
        let ids = ControlIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.len() <= 20, "{a}");
    }
}
