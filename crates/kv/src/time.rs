use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, in nanoseconds since the Unix epoch; printed as Vault prints
/// times (RFC 3339, nanoseconds, trailing zeros trimmed, `Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_system(time: SystemTime) -> Self {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    pub fn plus(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }

    pub fn rfc3339(self) -> String {
        let text = humantime::format_rfc3339_nanos(self.to_system()).to_string();
        // Go's RFC3339Nano, which Vault clients parse, trims trailing zeros.
        let (stamp, _) = text.split_at(text.len() - 1);
        let trimmed = stamp.trim_end_matches('0').trim_end_matches('.');
        format!("{trimmed}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go() {
        assert_eq!(
            Timestamp(1_521_685_446_945_319_214).rfc3339(),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            Timestamp(1_521_685_446_900_000_000).rfc3339(),
            "2018-03-22T02:24:06.9Z"
        );
        assert_eq!(
            Timestamp(1_521_685_446_000_000_000).rfc3339(),
            "2018-03-22T02:24:06Z"
        );
    }
}
