//! The strength check of literal values written into a spec.

use zxcvbn::Score;
use zxcvbn::matching::patterns::MatchPattern;

/// The shortest literal accepted under a secret-looking key.
pub const MIN_LITERAL_LENGTH: usize = 16;

/// Parts of key names that mark a value as a credential.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
    "private",
    "signing",
    "salt",
];

/// Whether a key's name says it holds a credential.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Why a literal is weak, in words that never quote the value itself.
/// `context` holds words an attacker would try first (the key name, the
/// secret's name, the spec's other literals).
pub fn weakness(value: &str, context: &[&str]) -> Option<String> {
    let length = value.chars().count();
    let entropy = zxcvbn::zxcvbn(value, context);
    let score = entropy.score();
    if length >= MIN_LITERAL_LENGTH && score == Score::Four {
        return None;
    }
    let mut reasons = Vec::new();
    if length < MIN_LITERAL_LENGTH {
        reasons.push(format!(
            "{length} characters, fewer than {MIN_LITERAL_LENGTH}"
        ));
    }
    if score != Score::Four {
        reasons.push(format!(
            "zxcvbn score {} of 4 (about 10^{:.0} guesses)",
            score as u8,
            entropy.guesses_log10()
        ));
    }
    let mut patterns: Vec<&str> = entropy
        .sequence()
        .iter()
        .filter_map(|m| match &m.pattern {
            MatchPattern::Dictionary(d) if d.matched_word.len() >= 3 => {
                Some("a dictionary word (or a name from the spec)")
            }
            MatchPattern::Spatial(_) => Some("a keyboard pattern"),
            MatchPattern::Repeat(_) => Some("a repetition"),
            MatchPattern::Sequence(_) => Some("a sequence like abc or 123"),
            MatchPattern::Date(_) => Some("a date"),
            MatchPattern::Regex(_) => Some("a year"),
            _ => None,
        })
        .collect();
    patterns.sort_unstable();
    patterns.dedup();
    if !patterns.is_empty() {
        reasons.push(format!("contains {}", patterns.join(", ")));
    }
    Some(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys() {
        for key in [
            "db-password",
            "POSTGRES_PASSWORD",
            "api-key",
            "token",
            "client_secret",
        ] {
            assert!(looks_secret(key), "{key}");
        }
        for key in ["db-username", "postgres-db", "host", "port"] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn weak_literals_are_explained_without_the_value() {
        let why = weakness("hunter2", &[]).unwrap();
        assert!(why.contains("7 characters"), "{why}");
        assert!(!why.contains("hunter"), "{why}");
        let why = weakness("password1234567890", &[]).unwrap();
        assert!(why.contains("dictionary word"), "{why}");
        let why = weakness("zxcvbnm,./asdfghjkl", &[]).unwrap();
        assert!(why.contains("keyboard pattern"), "{why}");
        let why = weakness("mlflow-mlflow-mlflow", &["mlflow"]).unwrap();
        assert!(
            why.contains("name from the spec") || why.contains("repetition"),
            "{why}"
        );
    }

    #[test]
    fn strong_literals_pass() {
        assert_eq!(weakness("Vd8#qL2@xN7!pR4$kT9&", &[]), None);
        assert_eq!(weakness("tFJ6PbSxMGYvb0Zx0m3ZlJtw7E7uoY5a", &[]), None);
    }
}
