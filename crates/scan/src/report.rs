//! Text, JSON and SARIF 2.1.0 renderings of the findings.
use crate::finding::Finding;
use crate::rules::Severity;
use serde_json::{Value, json};
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

pub fn write(format: Format, findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Text => text(findings, out),
        Format::Json => {
            let doc = json!({ "tool": "tresor", "version": env!("CARGO_PKG_VERSION"), "findings": findings });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(findings))?;
            writeln!(out)
        }
    }
}

fn text(findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "{}:{}:{}: {} [{}] {}: {}",
            f.path,
            f.line,
            f.column,
            f.rule_id,
            f.severity.as_str(),
            f.description,
            f.redacted
        )?;
        if let Some(c) = &f.commit {
            let short = &c.id[..c.id.len().min(12)];
            writeln!(
                out,
                "    introduced in {short} by {} on {}",
                c.author, c.date
            )?;
        }
    }
    Ok(())
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub code scanning ranks security results by this 0-10 score.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

pub fn sarif(findings: &[Finding]) -> Value {
    let mut rule_ids: Vec<&str> = findings.iter().map(|f| f.rule_id.as_str()).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<Value> = rule_ids
        .iter()
        .map(|id| {
            let f = findings
                .iter()
                .find(|f| f.rule_id == *id)
                .map(|f| (f.description.as_str(), f.severity));
            let (description, severity) = f.unwrap_or(("", Severity::High));
            json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": description },
                "defaultConfiguration": { "level": level(severity) },
                "properties": {
                    "tags": ["security", "secret"],
                    "security-severity": security_severity(severity)
                }
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let rule_index = rule_ids.binary_search(&f.rule_id.as_str()).unwrap_or(0);
            let mut result = json!({
                "ruleId": f.rule_id,
                "ruleIndex": rule_index,
                "level": level(f.severity),
                "message": { "text": format!("{}: {}", f.description, f.redacted) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.path) },
                        "region": { "startLine": f.line, "startColumn": f.column }
                    }
                }],
                "partialFingerprints": { "tresorSecret/v1": f.fingerprint }
            });
            if let Some(c) = &f.commit {
                result["properties"] =
                    json!({ "commit": c.id, "author": c.author, "date": c.date });
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "tresor",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://example.invalid/tresor",
                    "rules": rules
                }
            },
            "results": results
        }]
    })
}

/// A relative URI reference: forward slashes, reserved bytes percent-encoded.
fn uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encodes_spaces_and_unicode() {
        assert_eq!(uri("a b/é.txt"), "a%20b/%C3%A9.txt");
        assert_eq!(uri("src\\main.rs"), "src/main.rs");
    }
}
