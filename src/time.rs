//! Timestamps: the formats users type and the one cairn prints (RFC 3339, UTC).
//!
//! Accepted input: RFC 3339 (`2026-11-21T10:30:00Z`, `…+01:00`), `YYYY-MM-DD HH:MM[:SS]` and
//! `YYYY-MM-DDTHH:MM[:SS]` (UTC unless an offset follows), and Unix seconds (`1763721000`).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

use crate::error::{Error, Result};

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `2026-11-21T10:30:00Z` (sub-second digits only when present).
pub fn format_ns(ns: i64) -> String {
    Utc.timestamp_nanos(ns)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Like [`format_ns`] but to whole seconds, for tables.
pub fn format_ns_secs(ns: i64) -> String {
    Utc.timestamp_nanos(ns)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-11-21 10:30:00.123456+00`: the form PostgreSQL's `recovery_target_time` reads.
pub fn format_ns_sql(ns: i64) -> String {
    Utc.timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string()
}

/// Parses a user-given timestamp into nanoseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    let t = s.trim();
    let bad = || {
        Error::InvalidArgument(format!(
            "cannot read timestamp {s:?}: use RFC 3339 (2026-11-21T10:30:00Z), \
             \"YYYY-MM-DD HH:MM[:SS]\" (UTC) or Unix seconds"
        ))
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = t.parse().map_err(|_| bad())?;
        return secs.checked_mul(1_000_000_000).ok_or_else(bad);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return dt.timestamp_nanos_opt().ok_or_else(bad);
    }
    // psql prints offsets as `+00` or `+05:30`; chrono wants minutes too.
    let owned;
    let t = match t.len().checked_sub(3).map(|i| t.split_at(i)) {
        Some((head, tail))
            if (tail.starts_with('+') || tail.starts_with('-'))
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            owned = format!("{head}{tail}:00");
            owned.as_str()
        }
        _ => t,
    };
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return naive.and_utc().timestamp_nanos_opt().ok_or_else(bad);
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return dt.timestamp_nanos_opt().ok_or_else(bad);
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let want = parse_timestamp("2026-11-21T10:30:00Z").unwrap();
        assert_eq!(parse_timestamp("2026-11-21 10:30").unwrap(), want);
        assert_eq!(parse_timestamp("2026-11-21 10:30:00").unwrap(), want);
        assert_eq!(parse_timestamp("2026-11-21T11:30:00+01:00").unwrap(), want);
        assert_eq!(parse_timestamp("2026-11-21 11:30:00+01:00").unwrap(), want);
        assert_eq!(parse_timestamp("2026-11-21 10:30:00+00").unwrap(), want);
        assert_eq!(
            parse_timestamp("2026-11-21 12:30:00.000000+02").unwrap(),
            want
        );
        assert_eq!(format_ns_sql(want), "2026-11-21 10:30:00.000000+00");
        assert_eq!(
            parse_timestamp(&(want / 1_000_000_000).to_string()).unwrap(),
            want
        );
        assert_eq!(format_ns(want), "2026-11-21T10:30:00Z");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01 00:00",
            "2026-11-21 25:00",
            "99999999999999999999",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
