//! Durations as operators write them: a bare number is seconds (the bundled
//! healthcheck's `--interval 2`, `--fast-interval 0.5`), anything else is a
//! humantime form (`250ms`, `2s`, `1m30s`).

use std::time::Duration;

/// Parses `"2"`, `"0.5"`, `"250ms"` or `"1m"` into a [`Duration`].
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
        return Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write seconds (2, 0.5) or 250ms, 2s, 1m"))
}

/// Formats a duration compactly for logs and messages (`1.5s`, `250ms`).
pub fn show(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
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
    fn shows_compactly() {
        assert_eq!(show(Duration::from_secs(5)), "5s");
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
    }
}
