use std::time::Duration;

pub use tresor_request::parse_duration;

/// Prints a duration as Go does (`3h0m0s`, `1m30s`, `0s`), as Vault returns them.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_vault_durations() {
        for (text, secs) in [
            ("30", 30),
            ("90s", 90),
            ("3h", 10800),
            ("1h30m", 5400),
            ("3h0m0s", 10800),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(format_duration(Duration::from_secs(10800)), "3h0m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
