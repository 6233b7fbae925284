//! The hash-chain header carried by every line, and the start marker of a chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AuditError;
use crate::salt::hex;

/// `type` of the first line of every chain.
pub(crate) const START_TYPE: &str = "chain_start";

/// The `chain` member that starts every line, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ChainLink {
    /// Random id of the chain, the same on every line of a file.
    pub id: String,
    /// 0 for the start marker, then +1 per line.
    pub seq: u64,
    /// SHA-256 (hex) of the previous line's exact bytes; `null` on the start marker.
    pub prev: Option<String>,
}

/// The chain's position after a given line: persist it to detect truncation later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain_id: String,
    pub seq: u64,
    /// SHA-256 (hex) of the line with that sequence number.
    pub hash: String,
}

/// What the verifier and the resuming writer read from a line.
#[derive(Deserialize)]
pub(crate) struct LineHead {
    pub chain: ChainLink,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub continues: Option<Checkpoint>,
    #[serde(default)]
    pub time: Option<String>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn new_chain_id() -> Result<String, AuditError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(AuditError::Random)?;
    Ok(hex(&id))
}

/// The `chain` header as written: the fields of [`ChainLink`], borrowed.
#[derive(Serialize)]
pub(crate) struct LinkOut<'a> {
    pub id: &'a str,
    pub seq: u64,
    pub prev: Option<&'a str>,
}

/// Appends an entry's JSON object to `out`, prefixed with its chain header,
/// keeping one JSON object per line (no newline is added).
pub(crate) fn push_chained(
    out: &mut Vec<u8>,
    link: &LinkOut<'_>,
    entry_json: &str,
) -> Result<(), AuditError> {
    let rest = entry_json
        .strip_prefix('{')
        .filter(|rest| *rest != "}")
        .ok_or_else(|| {
            AuditError::Encode("an audit entry must be a non-empty JSON object".into())
        })?;
    out.reserve(entry_json.len() + 128);
    out.extend_from_slice(b"{\"chain\":");
    serde_json::to_writer(&mut *out, link).map_err(|e| AuditError::Encode(e.to_string()))?;
    out.push(b',');
    out.extend_from_slice(rest.as_bytes());
    Ok(())
}

/// An entry's JSON object prefixed with its chain header, as one line.
pub(crate) fn chained_line(link: &LinkOut<'_>, entry_json: &str) -> Result<String, AuditError> {
    let mut line = Vec::new();
    push_chained(&mut line, link, entry_json)?;
    String::from_utf8(line).map_err(|e| AuditError::Encode(e.to_string()))
}

/// The first line of a chain; `continues` links it to the chain of the previous file.
pub(crate) fn start_line(id: &str, continues: Option<&Checkpoint>) -> Result<String, AuditError> {
    #[derive(Serialize)]
    struct Start<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        time: String,
        continues: Option<&'a Checkpoint>,
    }
    let start = Start {
        kind: START_TYPE,
        time: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|e| AuditError::Encode(e.to_string()))?,
        continues,
    };
    let body = serde_json::to_string(&start).map_err(|e| AuditError::Encode(e.to_string()))?;
    let link = LinkOut {
        id,
        seq: 0,
        prev: None,
    };
    chained_line(&link, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        // python3 -c "import hashlib; print(hashlib.sha256(b'abc').hexdigest())"
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn chained_line_keeps_one_object() {
        let link = LinkOut {
            id: "c",
            seq: 3,
            prev: Some("ab"),
        };
        let line = chained_line(&link, r#"{"type":"request"}"#).unwrap();
        assert_eq!(
            line,
            r#"{"chain":{"id":"c","seq":3,"prev":"ab"},"type":"request"}"#
        );
        assert!(chained_line(&link, "{}").is_err());
    }
}
