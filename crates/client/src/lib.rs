//! A blocking client of tresor's Vault-compatible HTTP API, for the `tresor`
//! CLI: configuration from the environment (as the vault CLI reads it),
//! calls that return the JSON bodies, and typed helpers for what the CLI
//! needs. The token lives in zeroized memory and never appears in `Debug`
//! output or errors.
#![forbid(unsafe_code)]

mod config;
mod error;

pub use config::{Config, save_token, token_file};
pub use error::Error;

use serde_json::Value;
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// Bodies larger than this are refused; no API answer comes close.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// The HTTP methods of the Vault API (`LIST` is sent as `GET ?list=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    /// A JSON merge patch (`application/merge-patch+json`).
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A server's answer: its status and its JSON body (`None` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

/// A connection to one server, with an optional token.
pub struct Client {
    agent: ureq::Agent,
    address: String,
    token: Option<Zeroizing<String>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the server `config` names.
    pub fn new(config: Config) -> Result<Self, Error> {
        if !(config.address.starts_with("http://") || config.address.starts_with("https://")) {
            return Err(Error::Config(format!(
                "the server address `{}` must start with http:// or https://",
                config.address
            )));
        }
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent("tresor-client");
        if config.address.starts_with("https://") {
            builder = builder.tls_config(tls_config(config.ca_cert.as_deref())?);
        }
        Ok(Self {
            agent: builder.build().into(),
            address: config.address,
            token: config.token,
        })
    }

    /// A client configured from the environment (see [`Config::from_env`]),
    /// or `None` when no server is named.
    pub fn from_env(address: Option<&str>) -> Result<Option<Self>, Error> {
        Config::from_env(address)?.map(Self::new).transpose()
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The same server with another token.
    pub fn with_token(&self, token: Zeroizing<String>) -> Self {
        Self {
            agent: self.agent.clone(),
            address: self.address.clone(),
            token: Some(token),
        }
    }

    /// Sends one request and returns whatever the server answered; fails
    /// only when there is no answer. `path` is relative to `/v1/`.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let mut uri = format!(
            "{}/v1/{}",
            self.address,
            encode(path.trim_start_matches('/'), false)
        );
        for (i, (name, value)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(name);
            uri.push('=');
            uri.push_str(&encode(value, true));
        }
        let content_type = if method == Method::Patch {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let mut request = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header("Content-Type", content_type);
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token.as_str());
        }
        // Serialized here, in memory that is wiped afterwards: the body may hold secrets.
        let bytes = Zeroizing::new(match body {
            Some(value) => serde_json::to_vec(value).expect("JSON values serialize"),
            None => Vec::new(),
        });
        let request = request
            .body(bytes.as_slice())
            .map_err(|e| Error::Config(format!("invalid request to {}: {e}", self.address)))?;
        let mut response = self.agent.run(request).map_err(|e| Error::Transport {
            address: self.address.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = Zeroizing::new(
            response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| Error::Transport {
                    address: self.address.clone(),
                    reason: e.to_string(),
                })?,
        );
        let body = if text.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice(&text) {
                Ok(value) => Some(value),
                Err(_) if status >= 400 => None,
                Err(e) => {
                    return Err(Error::Decode {
                        address: self.address.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        };
        Ok(Reply { status, body })
    }

    /// Sends one request and returns the body of a successful answer;
    /// any error status becomes [`Error::Api`].
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, Error> {
        self.call_with_query(method, path, &[], body)
    }

    pub fn call_with_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, Error> {
        let reply = self.send(method, path, query, body)?;
        if (200..300).contains(&reply.status) {
            Ok(reply.body)
        } else {
            Err(api_error(reply))
        }
    }

    /// `GET path`: the body, or `None` on 404.
    pub fn read(&self, path: &str) -> Result<Option<Value>, Error> {
        match self.call(Method::Get, path, None) {
            Err(Error::Api {
                status: 404,
                errors,
            }) if errors.is_empty() => Ok(None),
            other => other.map(|body| Some(body.unwrap_or(Value::Null))),
        }
    }

    /// `POST path` with a JSON body.
    pub fn write(&self, path: &str, body: &Value) -> Result<Option<Value>, Error> {
        self.call(Method::Post, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.call(Method::Delete, path, None).map(drop)
    }

    /// `LIST path` (with `after`/`limit` paging, as tresor offers): the
    /// keys, empty when there is nothing.
    pub fn list(
        &self,
        path: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        let mut query = vec![("list", "true".to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        match self.call_with_query(Method::Get, path, &query, None) {
            Err(Error::Api { status: 404, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
            Ok(body) => Ok(body
                .as_ref()
                .and_then(|b| b["data"]["keys"].as_array())
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()),
        }
    }

    /// `sys/seal-status` (no token needed).
    pub fn seal_status(&self) -> Result<Value, Error> {
        self.call(Method::Get, "sys/seal-status", None)
            .map(|b| b.unwrap_or(Value::Null))
    }

    /// The KV mount serving `path` (for example `secret/` for
    /// `secret/app/db`), as the vault CLI finds it through
    /// `sys/internal/ui/mounts/<path>`.
    pub fn kv_mount(&self, path: &str) -> Result<String, Error> {
        let body = self.call(
            Method::Get,
            &format!("sys/internal/ui/mounts/{}", path.trim_start_matches('/')),
            None,
        )?;
        body.as_ref()
            .and_then(|b| b["data"]["path"].as_str())
            .map(String::from)
            .ok_or_else(|| Error::Api {
                status: 400,
                errors: vec![format!("no mount serves {path}")],
            })
    }

    /// `auth/token/lookup-self`: the `data` of the token in use.
    pub fn lookup_self(&self) -> Result<Value, Error> {
        if self.token.is_none() {
            return Err(Error::NoToken);
        }
        let body = self.call(Method::Get, "auth/token/lookup-self", None)?;
        Ok(body.map(|mut b| b["data"].take()).unwrap_or(Value::Null))
    }
}

/// The error a non-2xx reply stands for: its status and Vault's `errors`.
pub fn api_error(reply: Reply) -> Error {
    let errors = reply
        .body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Error::Api {
        status: reply.status,
        errors,
    }
}

/// Percent-encodes everything but unreserved characters (and `/` in paths).
fn encode(text: &str, query: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (!query && byte == b'/');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// TLS through rustls with aws-lc-rs, trusting `ca_cert` when given, else
/// the system's CA bundle.
fn tls_config(ca_cert: Option<&std::path::Path>) -> Result<ureq::tls::TlsConfig, Error> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread installing one is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let system = [
        std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from),
        Some("/etc/ssl/certs/ca-certificates.crt".into()),
        Some("/etc/pki/tls/certs/ca-bundle.crt".into()),
        Some("/etc/ssl/cert.pem".into()),
    ];
    let file = match ca_cert {
        Some(path) => path.to_path_buf(),
        None => system
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::Config(
                    "no CA certificates found; set TRESOR_CACERT to the server's CA file".into(),
                )
            })?,
    };
    let pem = std::fs::read(&file)
        .map_err(|e| Error::Config(format!("cannot read the CA file {}: {e}", file.display())))?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no PEM certificate; set TRESOR_CACERT to the server's CA file",
            file.display()
        )));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let client = Client::new(Config {
            address: "http://127.0.0.1:8200".into(),
            token: Some(Zeroizing::new("s.very-secret-token".into())),
            ca_cert: None,
        })
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("very-secret") && shown.contains("<redacted>"));
    }

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(encode("secret/data/a b", false), "secret/data/a%20b");
        assert_eq!(encode("a/b&c", true), "a%2Fb%26c");
    }

    #[test]
    fn addresses_need_a_scheme() {
        let config = Config {
            address: "127.0.0.1:8200".into(),
            token: None,
            ca_cert: None,
        };
        assert!(matches!(Client::new(config), Err(Error::Config(_))));
    }
}
