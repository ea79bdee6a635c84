//! Direct message statuses, their allowed transitions, and the asynchronous
//! notification (an MDN rendered as JSON) sent to the sending edge.

use chrono::{DateTime, Timelike, Utc};

use crate::api::Notification;

/// The Messaging API's delivery statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Processed,
    SmtpInit,
    Dispatched,
    Displayed,
    Failed,
    FailedTo,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Processed,
        Status::SmtpInit,
        Status::Dispatched,
        Status::Displayed,
        Status::Failed,
        Status::FailedTo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Processed => "PROCESSED",
            Status::SmtpInit => "SMTPINIT",
            Status::Dispatched => "DISPATCHED",
            Status::Displayed => "DISPLAYED",
            Status::Failed => "FAILED",
            Status::FailedTo => "FAILED-TO",
        }
    }

    /// Case-insensitive, surrounding whitespace ignored.
    pub fn parse(s: &str) -> Option<Status> {
        let s = s.trim();
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// DISPATCHED and DISPLAYED are final and never overwritten except
    /// DISPATCHED → DISPLAYED (the read receipt); FAILED and FAILED-TO are
    /// final; PROCESSED → SMTPINIT | DISPATCHED | DISPLAYED | FAILED;
    /// SMTPINIT → DISPATCHED | DISPLAYED | FAILED | FAILED-TO. A status never
    /// "becomes" itself, so a duplicate MDN is not a change.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Processed, SmtpInit | Dispatched | Displayed | Failed)
                | (SmtpInit, Dispatched | Displayed | Failed | FailedTo)
                | (Dispatched, Displayed)
        )
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Processed | Status::SmtpInit)
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::FailedTo)
    }

    /// The RFC 3798 disposition type the status corresponds to. SMTPINIT has
    /// no MDN of its own; it is still a successful hand-off, i.e. "processed".
    fn disposition_type(self) -> &'static str {
        match self {
            Status::Processed | Status::SmtpInit => "processed",
            Status::Dispatched => "dispatched",
            Status::Displayed => "displayed",
            Status::Failed | Status::FailedTo => "failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn utc(at_millis: i64) -> DateTime<Utc> {
    // Out-of-range instants cannot come from a real clock; the epoch keeps
    // the output well-formed instead of panicking.
    DateTime::<Utc>::from_timestamp_millis(at_millis).unwrap_or_default()
}

/// The asynchronous notification for `status` of message `message_id` (the
/// sender's messageId) at `at_millis` (epoch ms).
pub fn notification(
    message_id: &str,
    status: Status,
    reason: Option<&str>,
    at_millis: i64,
) -> Notification {
    let kind = status.disposition_type();
    let description = if status.is_failure() {
        match reason.map(str::trim) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => kind.to_string(),
        }
    } else {
        kind.to_string()
    };
    Notification {
        timestamp: utc(at_millis).format("%Y-%m-%dT%H:%M:%S%.6fz").to_string(),
        id: message_id.to_string(),
        status: if status.is_failure() {
            "Error"
        } else {
            "Success"
        }
        .to_string(),
        description,
        disposition: format!("action/MDN-sent-automatically;{kind}"),
    }
}

/// `2020-04-10 15:10:39.0` from epoch ms (UTC): java.sql.Timestamp's
/// toString, which the seed's status answers show — the fraction without
/// trailing zeros but at least one digit.
pub fn send_time(at_millis: i64) -> String {
    let t = utc(at_millis);
    let millis = t.nanosecond() / 1_000_000 % 1000;
    let mut frac = format!("{millis:03}");
    while frac.len() > 1 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{}.{frac}", t.format("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn status_strings_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(Status::parse(&s.as_str().to_lowercase()), Some(s));
        }
        assert_eq!(Status::parse(" failed-to "), Some(FailedTo));
        assert_eq!(Status::parse("SUCCESS"), None);
        assert_eq!(Status::parse(""), None);
    }

    #[test]
    fn transition_table_every_pair() {
        // Rows: from; columns: to, in Status::ALL order.
        let table: [(Status, [bool; 6]); 6] = [
            (Processed, [false, true, true, true, true, false]),
            (SmtpInit, [false, false, true, true, true, true]),
            (Dispatched, [false, false, false, true, false, false]),
            (Displayed, [false; 6]),
            (Failed, [false; 6]),
            (FailedTo, [false; 6]),
        ];
        for (from, row) in table {
            for (to, expected) in Status::ALL.into_iter().zip(row) {
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn finality() {
        assert!(!Processed.is_final());
        assert!(!SmtpInit.is_final());
        for s in [Dispatched, Displayed, Failed, FailedTo] {
            assert!(s.is_final(), "{s}");
        }
    }

    // 2017-06-13T16:25:54.873Z
    const AT: i64 = 1_497_371_154_873;

    #[test]
    fn notification_timestamp_shape() {
        let n = notification("id", Dispatched, None, AT);
        assert_eq!(n.timestamp, "2017-06-13T16:25:54.873000z");
        let b = n.timestamp.as_bytes();
        assert_eq!(b.len(), "2017-06-13T16:25:54.873043z".len());
        assert_eq!(b[10], b'T');
        assert_eq!(b[19], b'.');
        assert!(n.timestamp.ends_with('z'));
    }

    #[test]
    fn notification_per_status() {
        let cases = [
            (Processed, "Success", "processed", "processed"),
            (SmtpInit, "Success", "processed", "processed"),
            (Dispatched, "Success", "dispatched", "dispatched"),
            (Displayed, "Success", "displayed", "displayed"),
            (Failed, "Error", "failed", "failed"),
            (FailedTo, "Error", "failed", "failed"),
        ];
        for (status, st, desc, disp) in cases {
            let n = notification("urn:uuid:x", status, None, AT);
            assert_eq!(n.id, "urn:uuid:x");
            assert_eq!(n.status, st, "{status}");
            assert_eq!(n.description, desc, "{status}");
            assert_eq!(
                n.disposition,
                format!("action/MDN-sent-automatically;{disp}"),
                "{status}"
            );
        }
    }

    #[test]
    fn notification_failure_reason_and_seed_json() {
        let n = notification(
            "urn:uuid:263e022e-3ec0-11e8-90ce-f77da4f8427d",
            Failed,
            Some("9002: ERROR=NoTrustedRecipients"),
            AT,
        );
        assert_eq!(n.description, "9002: ERROR=NoTrustedRecipients");
        // A reason never replaces the fixed success descriptions.
        let ok = notification("a", Dispatched, Some("ignored"), AT);
        assert_eq!(ok.description, "dispatched");
        let v = serde_json::to_value(&n).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["Timestamp", "Id", "Status", "Description", "Disposition"] {
            assert!(keys.contains(&k), "{k}");
        }
        assert_eq!(v["Status"], "Error");
        assert_eq!(v["Disposition"], "action/MDN-sent-automatically;failed");
    }

    #[test]
    fn send_time_format() {
        // 2020-04-10 15:10:39 UTC
        let base = 1_586_531_439_000;
        assert_eq!(send_time(base), "2020-04-10 15:10:39.0");
        assert_eq!(send_time(base + 123), "2020-04-10 15:10:39.123");
        assert_eq!(send_time(base + 120), "2020-04-10 15:10:39.12");
        assert_eq!(send_time(base + 5), "2020-04-10 15:10:39.005");
        assert_eq!(send_time(i64::MAX), "1970-01-01 00:00:00.0");
    }
}
