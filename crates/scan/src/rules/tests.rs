//! Every rule's own true-positive and true-negative examples, run through the
//! complete engine so that overlaps between rules are exercised too.
use super::*;
use crate::engine::Engine;
use base64::Engine as _;

/// Deterministic generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn for_rule(id: &str) -> Self {
        Self(id.bytes().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        }))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, alphabet: &str, len: usize) -> String {
        let bytes = alphabet.as_bytes();
        (0..len)
            .map(|_| bytes[(self.next() % bytes.len() as u64) as usize] as char)
            .collect()
    }
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

fn generate(rng: &mut Rng, kind: &str, len: usize) -> String {
    let alnum = format!("{UPPER}{LOWER}{DIGITS}");
    match kind {
        "alnum" => rng.pick(&alnum, len),
        "alpha" => rng.pick(&format!("{UPPER}{LOWER}"), len),
        "hex" => rng.pick("0123456789abcdef", len),
        "upper" => rng.pick(&format!("{UPPER}{DIGITS}"), len),
        "lower" => rng.pick(&format!("{LOWER}{DIGITS}"), len),
        "digits" => rng.pick(DIGITS, len),
        "b64" => rng.pick(&format!("{alnum}+/"), len),
        "b64url" => rng.pick(&format!("{alnum}_-"), len),
        "base32" => rng.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", len),
        "b32lower" => rng.pick("abcdefghijklmnopqrstuvwxyz234567", len),
        "bech32" => rng.pick("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", len),
        "password" => password(rng),
        "b64pw" => b64(&password(rng)),
        "b64cred" => b64(&format!("deploy:{}", password(rng))),
        "jwt" => {
            let header = b64url(r#"{"alg":"HS256","typ":"JWT"}"#);
            let claims = format!(
                r#"{{"sub":"svc-{}","exp":1893456000}}"#,
                rng.pick(DIGITS, 6)
            );
            format!("{header}.{}.{}", b64url(&claims), rng.pick(&alnum, 43))
        }
        other => panic!("unknown generator {other}"),
    }
}

/// A strong password with symbols, the kind every peer tool misses.
fn password(rng: &mut Rng) -> String {
    format!(
        "{}{}{}{}{}",
        rng.pick(UPPER, 2),
        rng.pick("!%^*-_+=~", 1),
        rng.pick(LOWER, 4),
        rng.pick(DIGITS, 2),
        rng.pick(&format!("{UPPER}{LOWER}{DIGITS}!%^*"), 5)
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Replaces `{{kind:N}}` and `{{kind}}` generators; other braces stay as written.
fn expand(template: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        let inner = &rest[open + 2..open + close];
        let (kind, len) = match inner.split_once(':') {
            Some((k, n)) => (k, n.parse().ok()),
            None => (inner, Some(0)),
        };
        let known = kind.chars().all(|c| c.is_ascii_alphanumeric()) && !kind.is_empty();
        out.push_str(&rest[..open]);
        match (known, len) {
            (true, Some(len)) => out.push_str(&generate(rng, kind, len)),
            _ => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn engine() -> Engine {
    Engine::new(builtin().into_iter().map(Rule::new).collect(), Vec::new()).unwrap()
}

fn rule_ids(engine: &Engine, text: &str) -> Vec<String> {
    engine
        .find(text.as_bytes())
        .into_iter()
        .map(|m| engine.rules()[m.rule].spec.id.clone())
        .collect()
}

#[test]
fn every_builtin_file_parses() {
    for text in BUILTIN {
        parse_rules(text).unwrap();
    }
}

#[test]
fn rule_set_is_large_unique_and_complete() {
    let rules = builtin();
    assert!(rules.len() >= 150, "only {} rules", rules.len());
    let mut ids: Vec<_> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rules.len(), "duplicate rule ids");
    for rule in &rules {
        assert!(!rule.description.is_empty(), "{}", rule.id);
        assert!(!rule.tp.is_empty(), "{} has no true positive", rule.id);
        assert!(!rule.tn.is_empty(), "{} has no true negative", rule.id);
        assert!(!rule.keywords.is_empty(), "{} has no keyword", rule.id);
        Rule::compiled(rule.clone()).unwrap();
    }
}

#[test]
fn every_rule_finds_its_true_positives() {
    let engine = engine();
    let mut failures = Vec::new();
    for rule in engine.rules() {
        let mut rng = Rng::for_rule(&rule.spec.id);
        for template in &rule.spec.tp {
            let text = expand(template, &mut rng);
            let ids = rule_ids(&engine, &text);
            if !ids.contains(&rule.spec.id) {
                failures.push(format!("{}: missed {text:?}, got {ids:?}", rule.spec.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_rule_fires_on_any_true_negative() {
    let engine = engine();
    let mut failures = Vec::new();
    for rule in engine.rules() {
        let mut rng = Rng::for_rule(&rule.spec.id);
        for template in &rule.spec.tn {
            let text = expand(template, &mut rng);
            let ids = rule_ids(&engine, &text);
            if !ids.is_empty() {
                failures.push(format!("{}: {text:?} flagged by {ids:?}", rule.spec.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_custom_rules_are_errors() {
    let mut spec = builtin().remove(0);
    spec.regex = Some("(unclosed".into());
    assert!(matches!(
        Rule::compiled(spec.clone()),
        Err(ScanError::Rule { .. })
    ));
    spec.regex = Some("ok".into());
    spec.keywords = vec![String::new()];
    assert!(matches!(
        Rule::compiled(spec.clone()),
        Err(ScanError::Rule { .. })
    ));
    spec.keywords = vec!["ok".into()];
    spec.regex = None;
    assert!(matches!(Rule::compiled(spec), Err(ScanError::Rule { .. })));
}

#[test]
fn generators_expand_and_templates_survive() {
    let mut rng = Rng::for_rule("x");
    let text = expand("a {{hex:4}} {{ .Values.x }} {{password}}", &mut rng);
    assert!(text.contains("{{ .Values.x }}"));
    assert!(!text.contains("{{hex"));
    assert!(!text.contains("{{password"));
}
