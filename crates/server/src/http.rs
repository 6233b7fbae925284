//! The HTTP edge: reads each request once into the canonical
//! [`Request`], runs it through the core (on the blocking pool unless it
//! only reads a local store), and writes the answer in Vault's shapes. It
//! is the only place that knows HTTP: status codes are decided here.

use crate::limiter::FailedAuthLimiter;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::routing::any;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tresor_logical::{Error, Node, Response};
use tresor_request::{RawRequest, Request, RequestError};

pub struct App {
    pub node: Arc<Node>,
    pub limiter: FailedAuthLimiter,
    pub max_request_bytes: usize,
    /// Longest a client may take to send a request's body.
    pub body_timeout: Duration,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/{*path}", any(v1))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> axum::response::Response {
    error_response(&Error::NotFound, false)
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
    let request = match read_request(&app, peer, &method, &uri, &headers, body).await {
        Ok(request) => request,
        Err(refused) => {
            let (status, message) = refused.status_and_message();
            let record = tresor_logical::Refused {
                id: &request_id(),
                method: method.as_str(),
                path: uri.path().strip_prefix("/v1/").unwrap_or(uri.path()),
                query: uri.query(),
                token: headers.get("x-vault-token").and_then(|v| v.to_str().ok()),
                remote_address: Some(peer.ip()),
                error: &message,
            };
            // Refused either way; the audit log's failure is the answer then.
            if let Err(e) = tresor_logical::audit_refused(&app.node, &record).await {
                return error_response(&e, head);
            }
            return json_response(status, Some(json!({ "errors": [message] })), head);
        }
    };
    let id = request.id.clone();
    let outcome = if tresor_logical::reads_only(request.operation) && app.node.reads_are_local() {
        // A read from a local store takes microseconds and queues its audit
        // entries without waiting: serving it on this worker and awaiting
        // the devices spares two thread hand-offs per request.
        tresor_logical::handle(&app.node, request)
    } else {
        let node = Arc::clone(&app.node);
        match tokio::task::spawn_blocking(move || tresor_logical::handle(&node, request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let error = Error::Internal("the request handler stopped".into());
                tracing::error!(request = %id, "a request handler panicked");
                return error_response(&error, head);
            }
        }
    };
    let auth_failed = outcome.auth_failed;
    let result = outcome.finish_async().await;
    if auth_failed {
        // A client that keeps guessing tokens is told to wait; a valid
        // token, or an endpoint that needs none, is never turned away.
        if app.limiter.record_failure(peer.ip()) {
            return too_many_failures(head);
        }
    }
    match result {
        Ok(response) => to_http(response, &id, head),
        Err(error) => error_response(&error, head),
    }
}

/// Why a request never reached the core.
enum Refused {
    Request(RequestError),
    TooLarge,
    SlowBody(Duration),
    Header(&'static str),
}

impl Refused {
    fn status_and_message(self) -> (StatusCode, String) {
        match self {
            Refused::Request(RequestError::UnsupportedMethod(m)) => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("unsupported method {m}"),
            ),
            Refused::Request(e @ RequestError::PatchContentType) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())
            }
            Refused::Request(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Refused::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large".to_string(),
            ),
            Refused::SlowBody(limit) => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {}s",
                    limit.as_secs()
                ),
            ),
            Refused::Header(why) => (StatusCode::BAD_REQUEST, why.to_string()),
        }
    }
}

async fn read_request(
    app: &App,
    peer: SocketAddr,
    method: &axum::http::Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Request, Refused> {
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|length| length > app.max_request_bytes)
    {
        return Err(Refused::TooLarge);
    }
    let bytes = match tokio::time::timeout(
        app.body_timeout,
        axum::body::to_bytes(body, app.max_request_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(Refused::TooLarge),
        Err(_) => return Err(Refused::SlowBody(app.body_timeout)),
    };
    let vault_token = header_values(headers, "x-vault-token")?;
    let authorization = header_values(headers, header::AUTHORIZATION.as_str())?;
    let content_type = single_header(headers, header::CONTENT_TYPE.as_str())?;
    let wrap_ttl = single_header(headers, "x-vault-wrap-ttl")?;
    let raw = RawRequest {
        method: method.as_str(),
        path: uri.path().strip_prefix("/v1/").unwrap_or_default(),
        query: uri.query(),
        content_type,
        body: &bytes,
        vault_token: &vault_token,
        authorization: &authorization,
        wrap_ttl,
    };
    let mut request = Request::from_raw(&raw).map_err(Refused::Request)?;
    request.id = request_id();
    request.remote_address = Some(peer.ip());
    Ok(request)
}

fn header_values<'h>(headers: &'h HeaderMap, name: &str) -> Result<Vec<&'h str>, Refused> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| Refused::Header("a header value is not visible ASCII"))
        })
        .collect()
}

fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refused> {
    match header_values(headers, name)?.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(Refused::Header(
            "a header the server reads was sent more than once",
        )),
    }
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

fn too_many_failures(head: bool) -> axum::response::Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        Some(json!({
            "errors": ["too many failed authentication attempts from this client; wait a minute and retry"]
        })),
        head,
    )
}

/// Vault's status code for each error of the core.
fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::PermissionDenied | Error::Denied(_) => StatusCode::FORBIDDEN,
        Error::UnsupportedPath(_) | Error::NotFound => StatusCode::NOT_FOUND,
        Error::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Sealed | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::NotInitialized => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(error: &Error, head: bool) -> axum::response::Response {
    // Vault answers a plain 404 with no message.
    let errors: Vec<String> = match error {
        Error::NotFound => Vec::new(),
        other => vec![other.to_string()],
    };
    json_response(status_of(error), Some(json!({ "errors": errors })), head)
}

fn to_http(response: Response, id: &str, head: bool) -> axum::response::Response {
    match response {
        Response::NoContent => json_response(StatusCode::NO_CONTENT, None, head),
        Response::Raw { status, body } => json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Some(body),
            head,
        ),
        Response::Envelope(envelope) => {
            let status = match (envelope.missing, envelope.status) {
                (true, _) => StatusCode::NOT_FOUND,
                (false, Some(code)) => {
                    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
                }
                (false, None) => StatusCode::OK,
            };
            json_response(status, Some(envelope.to_json(id)), head)
        }
        _ => json_response(StatusCode::INTERNAL_SERVER_ERROR, None, head),
    }
}

fn json_response(status: StatusCode, body: Option<Value>, head: bool) -> axum::response::Response {
    let mut out = match (body, head) {
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
