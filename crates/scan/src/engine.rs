//! The matching core: one Aho-Corasick pass over the input selects rules by
//! keyword, each selected rule's regex runs only in windows around its
//! keyword hits, then the placeholder filters and entropy decide.
use crate::checks;
use crate::error::ScanError;
use crate::filter;
use crate::keywords::Keywords;
use crate::rules::{Check, Rule};
use regex::bytes::{Captures, Regex};
use std::ops::Range;

/// How far a single-line rule looks around a keyword on a very long line.
const LINE_REACH: usize = 1024;
/// How far a multi-line rule (PEM blocks, service-account JSON) looks ahead.
const MULTILINE_REACH: usize = 16 * 1024;
const ALLOW_MARK: &[u8] = b"tresor:allow";

/// A candidate secret: the rule and the byte range of the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMatch {
    pub rule: usize,
    pub secret: Range<usize>,
}

pub struct Engine {
    rules: Vec<Rule>,
    keywords: Keywords,
    keyword_rules: Vec<Vec<usize>>,
    allowed_values: Vec<Regex>,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, allowed_values: Vec<Regex>) -> Result<Self, ScanError> {
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for keyword in rule.spec.keywords.iter().filter(|k| !k.is_empty()) {
                let keyword = keyword.to_ascii_lowercase();
                match keywords.iter().position(|k| *k == keyword) {
                    Some(at) => keyword_rules[at].push(index),
                    None => {
                        keywords.push(keyword);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        let keywords = Keywords::new(&keywords).map_err(|e| ScanError::Rule {
            id: "keywords".into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            rules,
            keywords,
            keyword_rules,
            allowed_values,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// All accepted secrets in `data`, without overlaps, in order.
    pub fn find(&self, data: &[u8]) -> Vec<RawMatch> {
        let mut hits: Vec<(usize, usize)> = Vec::new();
        self.keywords.find(data, |keyword, start| {
            for &rule in &self.keyword_rules[keyword] {
                hits.push((rule, start));
            }
        });
        if hits.is_empty() {
            return Vec::new();
        }
        hits.sort_unstable();
        hits.dedup();
        let mut found = Vec::new();
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            let rule = group[0].0;
            let positions = group.iter().map(|h| h.1);
            self.run_rule(rule, data, positions, &mut found);
        }
        found.retain(|m| !allowed_inline(data, m.secret.start));
        self.resolve_overlaps(found)
    }

    fn run_rule(
        &self,
        index: usize,
        data: &[u8],
        positions: impl Iterator<Item = usize>,
        found: &mut Vec<RawMatch>,
    ) {
        let rule = &self.rules[index];
        if rule.spec.check == Some(Check::KubernetesSecret) {
            for pos in positions {
                for value in checks::kubernetes_secret(data, pos) {
                    if self.accept(rule, &data[value.start..value.end], false) {
                        found.push(RawMatch {
                            rule: index,
                            secret: value.start..value.end,
                        });
                    }
                }
            }
            return;
        }
        let Some(regex) = rule.regex() else {
            return;
        };
        for window in merged_windows(data, positions, rule.spec.multiline) {
            for caps in regex.captures_iter(&data[window.clone()]) {
                let secret = secret_range(&caps);
                let secret = window.start + secret.start..window.start + secret.end;
                if self.accept(rule, &data[secret.clone()], quoted(data, &secret)) {
                    found.push(RawMatch {
                        rule: index,
                        secret,
                    });
                }
            }
        }
    }

    fn accept(&self, rule: &Rule, secret: &[u8], quoted: bool) -> bool {
        let spec = &rule.spec;
        let noise = secret.is_empty()
            || filter::is_placeholder(secret)
            || spec.generic && filter::is_generic_noise(secret, quoted)
            || spec
                .entropy
                .is_some_and(|min| filter::entropy(secret) < min);
        !noise
            && match spec.check {
                Some(Check::Jwt) => checks::jwt(secret),
                Some(Check::Base64Credential) => checks::base64_credential(secret),
                Some(Check::KubernetesSecret) | None => true,
            }
            && !self.allowed_values.iter().any(|r| r.is_match(secret))
    }

    /// Keeps one match per stretch of bytes: a specific rule beats a generic
    /// one, then the earlier rule in the set wins.
    fn resolve_overlaps(&self, mut found: Vec<RawMatch>) -> Vec<RawMatch> {
        let rank = |m: &RawMatch| (self.rules[m.rule].spec.generic, m.rule);
        found.sort_by_key(|m| rank(m));
        let mut kept: Vec<RawMatch> = Vec::with_capacity(found.len());
        for m in found {
            let overlaps = kept
                .iter()
                .any(|k| k.secret.start < m.secret.end && m.secret.start < k.secret.end);
            if !overlaps {
                kept.push(m);
            }
        }
        kept.sort_by_key(|m| (m.secret.start, m.rule));
        kept
    }
}

fn secret_range(caps: &Captures<'_>) -> Range<usize> {
    caps.name("secret")
        .or_else(|| (1..caps.len()).find_map(|i| caps.get(i)))
        .or_else(|| caps.get(0))
        .map_or(0..0, |m| m.range())
}

/// Whether the bytes at `range` stand between a pair of matching quotes.
fn quoted(data: &[u8], range: &std::ops::Range<usize>) -> bool {
    range.start > 0
        && matches!(data[range.start - 1], b'"' | b'\'' | b'`')
        && data.get(range.end) == Some(&data[range.start - 1])
}

/// Windows around keyword hits, merged where they overlap. A single-line
/// window is the hit's line (bounded); a multi-line one runs ahead from it.
fn merged_windows(
    data: &[u8],
    positions: impl Iterator<Item = usize>,
    multiline: bool,
) -> Vec<Range<usize>> {
    let mut windows: Vec<Range<usize>> = Vec::new();
    for pos in positions {
        let start = line_start(data, pos).max(pos.saturating_sub(LINE_REACH));
        let end = if multiline {
            (pos + MULTILINE_REACH).min(data.len())
        } else {
            line_end(data, pos).min(pos + LINE_REACH)
        };
        match windows.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => windows.push(start..end),
        }
    }
    windows
}

fn line_start(data: &[u8], pos: usize) -> usize {
    memchr::memrchr(b'\n', &data[..pos]).map_or(0, |p| p + 1)
}

fn line_end(data: &[u8], pos: usize) -> usize {
    memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |p| pos + p)
}

/// A `tresor:allow` comment on the secret's line silences it.
fn allowed_inline(data: &[u8], pos: usize) -> bool {
    let line = &data[line_start(data, pos)..line_end(data, pos)];
    memchr::memmem::find(line, ALLOW_MARK).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RuleSpec, Severity};

    fn spec(id: &str, keywords: &[&str], regex: &str) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            description: id.into(),
            severity: Severity::High,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            regex: Some(regex.into()),
            entropy: None,
            generic: false,
            multiline: false,
            check: None,
            tp: Vec::new(),
            tn: Vec::new(),
        }
    }

    fn engine(specs: Vec<RuleSpec>) -> Engine {
        Engine::new(specs.into_iter().map(Rule::new).collect(), Vec::new()).unwrap()
    }

    #[test]
    fn regex_runs_only_where_a_keyword_occurs() {
        let e = engine(vec![spec("t", &["tok_"], r"\b(?:tok_|zz_)([a-z0-9]{8})\b")]);
        let data = b"a tok_ab12cd34\nzz_ab12cd34";
        let found = e.find(data);
        assert_eq!(found.len(), 1);
        assert_eq!(&data[found[0].secret.clone()], b"ab12cd34");
    }

    #[test]
    fn inline_allow_silences_the_line() {
        let e = engine(vec![spec("t", &["tok_"], r"tok_[a-z0-9]{8}")]);
        assert!(e.find(b"x = tok_ab12cd34 # tresor:allow\n").is_empty());
        assert_eq!(e.find(b"x = tok_ab12cd34\n").len(), 1);
    }

    #[test]
    fn specific_rule_wins_an_overlap() {
        let mut generic = spec("generic", &["tok_"], r"tok_[a-z0-9]{8}");
        generic.generic = true;
        let e = engine(vec![
            generic,
            spec("specific", &["tok_"], r"tok_[a-z0-9]{8}"),
        ]);
        let found = e.find(b"tok_ab12cd34");
        assert_eq!(found.len(), 1);
        assert_eq!(e.rules()[found[0].rule].spec.id, "specific");
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let e = engine(vec![spec("t", &["secret"], r"(?i)secret=([a-z0-9]{8})")]);
        assert_eq!(e.find(b"SECRET=ab12cd34").len(), 1);
    }
}
