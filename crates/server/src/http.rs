//! The HTTP face: turns HTTP requests into [`Request`]s, runs them on the
//! blocking pool (the engines do synchronous, durable I/O), and writes
//! Vault-shaped responses.

use crate::api;
use crate::limiter::FailedAuthLimiter;
use crate::request::{ApiError, ClientToken, Method, Request, Response};
use crate::state::Core;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::routing::any;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use zeroize::Zeroizing;

pub struct App {
    pub core: Arc<Core>,
    pub limiter: FailedAuthLimiter,
    pub max_request_bytes: usize,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/{*path}", any(v1))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> axum::response::Response {
    to_http(ApiError::not_found().into_response(), false)
}

async fn v1(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let head = method == axum::http::Method::HEAD;
    if app.limiter.blocked(peer.ip()) {
        let error = ApiError::new(
            429,
            "too many failed authentication attempts from this client; wait a minute and retry",
        );
        return to_http(error.into_response(), head);
    }
    let request = match translate(&app, peer, &method, &uri, &headers, body).await {
        Ok(request) => request,
        Err(error) => return to_http(error.into_response(), head),
    };
    let outcome = if api::reads_only(request.method) && app.core.reads_are_local() {
        // A read from a local store takes microseconds and queues its audit
        // entries without waiting: serving it on this worker and awaiting
        // the devices spares two thread hand-offs per request.
        api::handle(&app.core, &request)
    } else {
        let core = Arc::clone(&app.core);
        match tokio::task::spawn_blocking(move || api::handle(&core, &request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let error = ApiError::internal("internal error: the request handler stopped");
                return to_http(error.into_response(), head);
            }
        }
    };
    if outcome.auth_failed {
        app.limiter.record_failure(peer.ip());
    }
    to_http(outcome.finish_async().await, head)
}

async fn translate(
    app: &App,
    peer: SocketAddr,
    method: &axum::http::Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Request, ApiError> {
    let method = match method.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "LIST" => Method::List,
        "POST" | "PUT" => Method::Write,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        _ => return Err(ApiError::new(405, "unsupported method")),
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > app.max_request_bytes
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, app.max_request_bytes)
        .await
        .map_err(|_| too_large())?;
    let body = parse_body(&bytes)?;
    let query = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k, true), decode(v, true))
                })
                .collect()
        })
        .unwrap_or_default();
    let path = decode(uri.path().strip_prefix("/v1/").unwrap_or_default(), false);
    let merge_patch = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/merge-patch+json"));
    Ok(Request {
        id: request_id(),
        method,
        path: path.trim_end_matches('/').to_string(),
        query,
        body,
        token: token(headers),
        remote: Some(peer.ip()),
        merge_patch,
    })
}

fn too_large() -> ApiError {
    ApiError::new(413, "request body too large")
}

fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "failed to parse JSON input: the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to parse JSON input: {e}"
        ))),
    }
}

fn token(headers: &HeaderMap) -> Option<ClientToken> {
    let raw = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        })?;
    let raw = Zeroizing::new(raw.trim().to_string());
    (!raw.is_empty()).then(|| ClientToken(raw))
}

/// Percent-decoding; `+` is a space in query strings only.
fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(bytes.get(i + 2).copied().and_then(hex));
                if let Some((high, low)) = pair {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A fresh random UUID (version 4), naming the request in its audit entries.
fn request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

fn to_http(response: Response, head: bool) -> axum::response::Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = match (response.body, head) {
        (Some(body), false) => {
            let mut bytes = serde_json::to_vec(&body).expect("JSON values serialize");
            bytes.push(b'\n');
            axum::response::Response::new(Body::from(bytes))
        }
        _ => axum::response::Response::new(Body::empty()),
    };
    *out.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("a%2Fb+c", true), "a/b c");
        assert_eq!(decode("a+b", false), "a+b");
        assert_eq!(decode("100%", true), "100%");
        assert_eq!(decode("%zz%4", true), "%zz%4");
        assert_eq!(decode("%C3%A9", false), "é");
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = request_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(request_id(), id);
    }
}
