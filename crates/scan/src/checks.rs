//! Validations and the one structural detector that regexes cannot express.
use crate::filter;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

pub fn decode_base64(v: &[u8]) -> Option<Vec<u8>> {
    STANDARD
        .decode(v)
        .or_else(|_| URL_SAFE.decode(v))
        .or_else(|_| general_purpose::STANDARD.decode(v))
        .ok()
}

/// A JWT is real when its header decodes to a JSON object with an `alg`.
pub fn jwt(token: &[u8]) -> bool {
    let header = token.split(|&b| b == b'.').next().unwrap_or_default();
    decode_base64(header).is_some_and(|h| {
        serde_json::from_slice::<serde_json::Value>(&h)
            .ok()
            .is_some_and(|v| v.get("alg").is_some())
    })
}

/// Base64 of `user:password` where the password is not a placeholder.
pub fn base64_credential(v: &[u8]) -> bool {
    let Some(decoded) = decode_base64(v) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let password = &decoded[colon + 1..];
    password.len() >= 6
        && !filter::is_placeholder(password)
        && !filter::is_generic_noise(password, false)
        && std::str::from_utf8(&decoded).is_ok()
}

/// A value from a Secret manifest: byte range of the value within `data`.
pub struct SecretValue {
    pub start: usize,
    pub end: usize,
}

/// Finds real values in the Kubernetes `Secret` YAML document around `hit`
/// (the position of `kind: Secret`). Base64 values under `data:` are decoded
/// first, so `cGFzc3dvcmQ=` ("password") is recognised as a placeholder.
pub fn kubernetes_secret(data: &[u8], hit: usize) -> Vec<SecretValue> {
    let (doc_start, doc_end) = yaml_document(data, hit);
    let doc = &data[doc_start..doc_end];
    if !is_secret_kind(&data[hit..doc_end]) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut section: Option<(usize, bool)> = None;
    let mut offset = 0;
    for line in doc.split_inclusive(|&b| b == b'\n') {
        let line_start = doc_start + offset;
        offset += line.len();
        let text = trim_end(line);
        let indent = text.iter().take_while(|&&b| b == b' ').count();
        let body = &text[indent..];
        if body.is_empty() || body.starts_with(b"#") {
            continue;
        }
        if let Some((section_indent, encoded)) = section {
            if indent > section_indent {
                if let Some((start, value)) = yaml_value(body)
                    && is_real_value(value, encoded)
                {
                    let start = line_start + indent + start;
                    found.push(SecretValue {
                        start,
                        end: start + value.len(),
                    });
                }
                continue;
            }
            section = None;
        }
        if body == b"data:" {
            section = Some((indent, true));
        } else if body == b"stringData:" {
            section = Some((indent, false));
        }
    }
    found
}

fn is_secret_kind(from_hit: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\n', from_hit).unwrap_or(from_hit.len());
    let rest = trim_end(&from_hit[..line_end]);
    rest.strip_prefix(b"kind:")
        .map(|r| r.trim_ascii())
        .is_some_and(|kind| kind == b"Secret" || kind == b"\"Secret\"" || kind == b"'Secret'")
}

/// The `---`-delimited YAML document containing `pos`.
fn yaml_document(data: &[u8], pos: usize) -> (usize, usize) {
    let start = memchr::memmem::rfind(&data[..pos], b"\n---").map_or(0, |p| p + 4);
    let end = memchr::memmem::find(&data[pos..], b"\n---").map_or(data.len(), |p| pos + p);
    (start, end)
}

/// `key: value` → (offset of value in `body`, value without quotes).
fn yaml_value(body: &[u8]) -> Option<(usize, &[u8])> {
    let colon = memchr::memmem::find(body, b": ")?;
    let raw = &body[colon + 2..];
    let lead = raw.iter().take_while(|&&b| b == b' ').count();
    let value = &raw[lead..];
    let (skip, value) = match value.first() {
        Some(b'"') | Some(b'\'') => {
            let quote = value[0];
            let close = value[1..].iter().position(|&b| b == quote)?;
            (1, &value[1..1 + close])
        }
        _ => (0, value),
    };
    Some((colon + 2 + lead + skip, value))
}

fn is_real_value(value: &[u8], encoded: bool) -> bool {
    if value.is_empty() || value.starts_with(b"|") || value.starts_with(b">") {
        return false;
    }
    if filter::is_placeholder(value) {
        return false;
    }
    let plain = if encoded {
        match decode_base64(value) {
            Some(plain) => plain,
            None => return false,
        }
    } else {
        value.to_vec()
    };
    plain.len() >= 8
        && !filter::is_placeholder(&plain)
        && !filter::is_generic_noise(&plain, false)
        && filter::entropy(&plain) >= 2.5
}

fn trim_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(doc: &str) -> Vec<String> {
        let hit = doc.find("kind:").unwrap();
        kubernetes_secret(doc.as_bytes(), hit)
            .into_iter()
            .map(|v| doc[v.start..v.end].to_string())
            .collect()
    }

    #[test]
    fn secret_manifest_with_real_base64_is_found() {
        let real = base64::engine::general_purpose::STANDARD.encode("q8#Vd!2mLz7pRt");
        let doc = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {real}\n  user: YWRtaW4=\n"
        );
        assert_eq!(values(&doc), vec![real]);
    }

    #[test]
    fn placeholder_values_are_not_found() {
        let doc = "kind: Secret\ndata:\n  password: cGFzc3dvcmQ=\n  token: {{ .Values.token | b64enc }}\nstringData:\n  key: \"<your-key>\"\n";
        assert!(values(doc).is_empty());
    }

    #[test]
    fn other_kinds_are_ignored() {
        let real = base64::engine::general_purpose::STANDARD.encode("q8#Vd!2mLz7pRt");
        let doc = format!("kind: SecretProviderClass\ndata:\n  password: {real}\n");
        assert!(values(&doc).is_empty());
    }

    #[test]
    fn docker_auth_needs_a_real_password() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(base64_credential(encode("deploy:Zq8!rT5wLp2v").as_bytes()));
        assert!(!base64_credential(encode("user:password").as_bytes()));
        assert!(!base64_credential(b"not base64!"));
    }
}
