//! What a handler answers, before the edge gives it a status and a body.

use serde_json::{Map, Value};

/// A served request's answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Response {
    /// Vault's envelope around data and/or an issued token.
    Envelope(Envelope),
    /// Nothing to say.
    NoContent,
    /// A body answered as it is, with its status: the few endpoints Vault
    /// answers outside its envelope (`sys/health`, `sys/seal-status`, ...),
    /// whose status is part of what they report.
    Raw { status: u16, body: Value },
}

/// The parts of Vault's response envelope a handler fills in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub data: Option<Value>,
    pub auth: Option<Value>,
    pub wrap_info: Option<Value>,
    pub warnings: Vec<String>,
    /// The target is gone but what is known of it is shown (a deleted KV
    /// version): answered as not found, with the data.
    pub missing: bool,
    /// Legacy endpoints also put the data's members at the top level.
    pub data_at_top: bool,
    /// The status when it is not 200: a transit batch some of whose items
    /// failed answers as Vault does (400, or the caller's
    /// `partial_failure_response_code`).
    pub status: Option<u16>,
}

impl Response {
    pub fn data(data: Value) -> Self {
        Response::Envelope(Envelope {
            data: Some(data),
            ..Envelope::default()
        })
    }

    pub fn auth(auth: Value) -> Self {
        Response::Envelope(Envelope {
            auth: Some(auth),
            ..Envelope::default()
        })
    }

    /// The data of a target that no longer exists (see [`Envelope::missing`]).
    pub fn missing(data: Value) -> Self {
        Response::Envelope(Envelope {
            data: Some(data),
            missing: true,
            ..Envelope::default()
        })
    }

    pub fn raw(status: u16, body: Value) -> Self {
        Response::Raw { status, body }
    }

    /// The envelope's `data`, if any.
    pub fn data_value(&self) -> Option<&Value> {
        match self {
            Response::Envelope(e) => e.data.as_ref(),
            _ => None,
        }
    }

    /// The envelope's `auth` (an issued token), if any.
    pub fn auth_value(&self) -> Option<&Value> {
        match self {
            Response::Envelope(e) => e.auth.as_ref(),
            _ => None,
        }
    }
}

impl Envelope {
    /// Vault's JSON envelope for request `id`.
    pub fn to_json(self, id: &str) -> Value {
        // Built field by field: `json!` would deep-copy `data` and `auth`.
        let mut body = Map::with_capacity(9);
        body.insert("request_id".into(), Value::String(id.to_owned()));
        body.insert("lease_id".into(), Value::String(String::new()));
        body.insert("renewable".into(), Value::Bool(false));
        body.insert("lease_duration".into(), Value::from(0));
        let top = match (&self.data, self.data_at_top) {
            (Some(Value::Object(data)), true) => Some(data.clone()),
            _ => None,
        };
        body.insert("data".into(), self.data.unwrap_or(Value::Null));
        body.insert("wrap_info".into(), self.wrap_info.unwrap_or(Value::Null));
        let warnings = if self.warnings.is_empty() {
            Value::Null
        } else {
            Value::from(self.warnings)
        };
        body.insert("warnings".into(), warnings);
        body.insert("auth".into(), self.auth.unwrap_or(Value::Null));
        body.insert("mount_type".into(), Value::String(String::new()));
        for (k, v) in top.into_iter().flatten() {
            body.entry(k).or_insert(v);
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_has_vaults_fields() {
        let Response::Envelope(envelope) = Response::data(json!({"k": "v"})) else {
            unreachable!()
        };
        assert_eq!(
            envelope.to_json("id-1"),
            json!({
                "request_id": "id-1",
                "lease_id": "",
                "renewable": false,
                "lease_duration": 0,
                "data": {"k": "v"},
                "wrap_info": null,
                "warnings": null,
                "auth": null,
                "mount_type": "",
            })
        );
    }

    #[test]
    fn legacy_data_also_sits_at_the_top_without_hiding_the_envelope() {
        let envelope = Envelope {
            data: Some(json!({"keys": ["a"], "request_id": "forged"})),
            data_at_top: true,
            ..Envelope::default()
        };
        let body = envelope.to_json("id-2");
        assert_eq!(body["keys"], json!(["a"]));
        assert_eq!(body["request_id"], "id-2");
    }
}
