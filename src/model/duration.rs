//! Durations as operators write them: a bare number is seconds (the bundled
//! healthcheck's `--interval 2`, `--fast-interval 0.5`), anything else is a
//! humantime form (`250ms`, `2s`, `1m30s`).
//!
//! Every duration a user writes (flags, JSON, the control socket's `drain
//! --for`) is at most [`MAX`], one year: longer is surely a typo, and the
//! engine adds durations to `Instant`s, which must not overflow.

use std::time::Duration;

/// The longest duration exaprobe takes anywhere: 365 days.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `"2"`, `"0.5"`, `"250ms"` or `"1m"` into a [`Duration`] of at
/// most [`MAX`].
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let d = if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
        Duration::try_from_secs_f64(secs).map_err(|_| too_long(s))?
    } else {
        humantime::parse_duration(t).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => too_long(s),
            e => format!("{s:?} is not a duration ({e}); write seconds (2, 0.5) or 250ms, 2s, 1m"),
        })?
    };
    if d > MAX {
        return Err(too_long(s));
    }
    Ok(d)
}

fn too_long(s: &str) -> String {
    format!("{s:?} is longer than {} (365 days), the longest duration exaprobe takes", show(MAX))
}

/// Formats a duration compactly for logs and messages, in the largest unit
/// that shows it exactly (`1.5s`, `250ms`, `15m`, `1h`).
pub fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if d.subsec_nanos() == 0 && secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        let secs = format!("{:.3}", d.as_secs_f64());
        format!("{}s", secs.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse("").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("1.2.3").is_err());
        assert!(parse("soon").unwrap_err().contains("250ms"));
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse("365d"), Ok(MAX));
        assert_eq!(parse("31536000"), Ok(MAX));
        for long in ["10000000000000000000", "300000000000y", "366d", "31536000.5", "1e19", "99999999999999999999999"] {
            assert!(parse(long).is_err(), "{long}");
        }
        assert!(parse("366d").unwrap_err().contains("365 days"));
        assert!(parse("10000000000000000000").unwrap_err().contains("365 days"));
        assert!(parse("300000000000y").unwrap_err().contains("365 days"));
    }

    #[test]
    fn shows_compactly() {
        assert_eq!(show(Duration::from_secs(5)), "5s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
        assert_eq!(show(Duration::from_secs(900)), "15m");
        assert_eq!(show(Duration::from_secs(3600)), "1h");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(MAX), "8760h");
    }
}
