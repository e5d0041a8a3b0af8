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
    Utc.timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Like [`format_ns`] but to whole seconds, for tables.
pub fn format_ns_secs(ns: i64) -> String {
    Utc.timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `20261121T103000Z`: now, compact, for names of files (no `:`).
pub fn compact_now() -> String {
    Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// `2026-11-21 10:30:00.123456+00`: the form PostgreSQL's `recovery_target_time` reads.
pub fn format_ns_sql(ns: i64) -> String {
    Utc.timestamp_nanos(ns).format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// `90d`, `36h`, `15m`, `2h30m`: parses a duration into nanoseconds. Units: s, m, h, d, w,
/// y (365 days).
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || Error::InvalidArgument(format!("cannot read duration {s:?}: use forms like 90d, 36h, 2h30m, 1y"));
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'y' => 365 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if !num.is_empty() || total == 0 {
        return Err(bad());
    }
    total.checked_mul(1_000_000_000).ok_or_else(bad)
}

/// `2d3h` style, the inverse of [`parse_duration`] (to whole seconds).
pub fn format_duration_ns(ns: i64) -> String {
    let mut secs = ns / 1_000_000_000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
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
            if (tail.starts_with('+') || tail.starts_with('-')) && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            owned = format!("{head}{tail}:00");
            owned.as_str()
        }
        _ => t,
    };
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return naive.and_utc().timestamp_nanos_opt().ok_or_else(bad);
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z"] {
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
        assert_eq!(parse_timestamp("2026-11-21 12:30:00.000000+02").unwrap(), want);
        assert_eq!(format_ns_sql(want), "2026-11-21 10:30:00.000000+00");
        assert_eq!(parse_timestamp(&(want / 1_000_000_000).to_string()).unwrap(), want);
        assert_eq!(format_ns(want), "2026-11-21T10:30:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400 * 1_000_000_000);
        assert_eq!(parse_duration("2h30m").unwrap(), 9000 * 1_000_000_000);
        assert_eq!(format_duration_ns(parse_duration("2h30m").unwrap()), "2h30m");
        for bad in ["", "5", "h", "3x", "-1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "yesterday", "2026-13-01 00:00", "2026-11-21 25:00", "99999999999999999999"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }
}
