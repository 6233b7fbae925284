//! Just enough gRPC for the KMS plugin API: unary calls over HTTP/2 on a
//! unix socket. A request is `POST /<package>.<Service>/<Method>` whose
//! body is one message (a zero compression flag, a 4-byte big-endian
//! length, the protobuf bytes); the answer is one such message and the
//! status in the trailers (`grpc-status`, `grpc-message`).

use crate::proto::{v1, v2};
use crate::service::{KeyService, ServiceError};
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::UnixListener;
use zeroize::Zeroize;

/// gRPC status codes the plugin answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// A failed call's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = match &error {
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Misconfigured(_) => Code::FailedPrecondition,
            ServiceError::Invalid(_) => Code::InvalidArgument,
            _ => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}

/// How the plugin serves.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Longest one call may take before it answers DEADLINE_EXCEEDED.
    pub timeout: Duration,
    /// Largest request message accepted (a data key is 32 bytes; v2 sends
    /// a seed of the same size).
    pub max_message: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            max_message: 64 * 1024,
        }
    }
}

struct State {
    service: Arc<dyn KeyService>,
    options: Options,
}

/// Serves the v1beta1 and v2 services on `listener` until `shutdown`
/// completes; connections in progress are then dropped.
pub async fn serve(
    listener: UnixListener,
    service: Arc<dyn KeyService>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(State { service, options });
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "kms plugin: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let (client_read, mut client_write) = stream.into_split();
            let (server_read, server_write) = tokio::io::split(theirs);
            tokio::spawn(async move {
                if let Err(e) = crate::authority::mend(client_read, server_write).await {
                    tracing::debug!(error = %e, "kms plugin: connection closed");
                }
            });
            tokio::spawn(async move {
                let mut server_read = server_read;
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let connection =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(ours), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "kms plugin: connection ended");
            }
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<GrpcBody> {
    let path = req.uri().path().to_owned();
    let result = match read_message(req.into_body(), state.options.max_message).await {
        Ok(mut message) => {
            let answer = dispatch(state, &path, &message).await;
            message.zeroize();
            answer
        }
        Err(status) => Err(status),
    };
    match result {
        Ok(reply) => respond(Some(reply), Status::new(Code::Ok, "")),
        Err(status) => {
            tracing::warn!(call = %path, code = ?status.code, message = %status.message, "kms plugin: call failed");
            respond(None, status)
        }
    }
}

async fn read_message(body: Incoming, max: usize) -> Result<Vec<u8>, Status> {
    let limited = http_body_util::Limited::new(body, max + 5);
    let mut bytes = limited
        .collect()
        .await
        .map_err(|e| Status::new(Code::InvalidArgument, format!("request body: {e}")))?
        .to_bytes();
    if bytes.len() < 5 {
        return Err(Status::new(
            Code::InvalidArgument,
            "no gRPC message in the request",
        ));
    }
    let compressed = bytes.get_u8();
    let len = bytes.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::new(
            Code::Unimplemented,
            "compressed messages are not supported",
        ));
    }
    if len != bytes.len() {
        return Err(Status::new(
            Code::InvalidArgument,
            "the request holds other than one gRPC message",
        ));
    }
    Ok(bytes.to_vec())
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Status::new(Code::InvalidArgument, format!("bad request: {e}")))
}

/// Runs a blocking service call off the I/O threads, within the timeout.
async fn blocking<T: Send + 'static>(
    state: &State,
    work: impl FnOnce(&dyn KeyService) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Status> {
    let service = Arc::clone(&state.service);
    let timeout = state.options.timeout;
    let task = tokio::task::spawn_blocking(move || work(&*service));
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result.map_err(Status::from),
        Ok(Err(_)) => Err(Status::new(Code::Internal, "the key service call failed")),
        Err(_) => Err(Status::new(
            Code::DeadlineExceeded,
            format!(
                "{} did not answer within {timeout:?}",
                state.service.describe()
            ),
        )),
    }
}

async fn dispatch(state: &State, path: &str, message: &[u8]) -> Result<Vec<u8>, Status> {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown call {path}")))?;
    if service == v1::SERVICE {
        match method {
            "Version" => {
                let _: v1::VersionRequest = decode(message)?;
                Ok(v1::VersionResponse {
                    version: v1::API_VERSION.into(),
                    runtime_name: "tresor".into(),
                    runtime_version: env!("CARGO_PKG_VERSION").into(),
                }
                .encode_to_vec())
            }
            "Encrypt" => {
                let mut request: v1::EncryptRequest = decode(message)?;
                let plain = std::mem::take(&mut request.plain);
                let wrapped = blocking(state, move |s| {
                    let mut plain = plain;
                    let out = s.encrypt(&plain);
                    plain.zeroize();
                    out
                })
                .await?;
                Ok(v1::EncryptResponse {
                    cipher: wrapped.ciphertext,
                }
                .encode_to_vec())
            }
            "Decrypt" => {
                let request: v1::DecryptRequest = decode(message)?;
                let plain = blocking(state, move |s| s.decrypt(&request.cipher)).await?;
                let mut response = v1::DecryptResponse {
                    plain: plain.to_vec(),
                };
                let bytes = response.encode_to_vec();
                response.plain.zeroize();
                Ok(bytes)
            }
            _ => Err(Status::new(
                Code::Unimplemented,
                format!("unknown call {path}"),
            )),
        }
    } else if v2::SERVICES.contains(&service) {
        match method {
            "Status" => {
                let _: v2::StatusRequest = decode(message)?;
                let key_id = blocking(state, |s| s.key_id()).await?;
                Ok(v2::StatusResponse {
                    version: v2::API_VERSION.into(),
                    healthz: "ok".into(),
                    key_id,
                }
                .encode_to_vec())
            }
            "Encrypt" => {
                let mut request: v2::EncryptRequest = decode(message)?;
                let plain = std::mem::take(&mut request.plaintext);
                let wrapped = blocking(state, move |s| {
                    let mut plain = plain;
                    let out = s.encrypt(&plain);
                    plain.zeroize();
                    out
                })
                .await?;
                Ok(v2::EncryptResponse {
                    ciphertext: wrapped.ciphertext,
                    key_id: wrapped.key_id,
                    annotations: Default::default(),
                }
                .encode_to_vec())
            }
            "Decrypt" => {
                let request: v2::DecryptRequest = decode(message)?;
                let plain = blocking(state, move |s| s.decrypt(&request.ciphertext)).await?;
                let mut response = v2::DecryptResponse {
                    plaintext: plain.to_vec(),
                };
                let bytes = response.encode_to_vec();
                response.plaintext.zeroize();
                Ok(bytes)
            }
            _ => Err(Status::new(
                Code::Unimplemented,
                format!("unknown call {path}"),
            )),
        }
    } else {
        Err(Status::new(
            Code::Unimplemented,
            format!("unknown service in {path}"),
        ))
    }
}

fn respond(message: Option<Vec<u8>>, status: Status) -> Response<GrpcBody> {
    let data = message.map(|mut m| {
        let mut framed = Vec::with_capacity(m.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(m.len() as u32).to_be_bytes());
        framed.extend_from_slice(&m);
        m.zeroize();
        Bytes::from(framed)
    });
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status.code as u32));
    if !status.message.is_empty()
        && let Ok(value) = HeaderValue::from_str(&percent_encode(&status.message))
    {
        trailers.insert("grpc-message", value);
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(GrpcBody {
            data,
            trailers: Some(trailers),
        })
        .expect("a static response builds")
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII but `%` as is.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One data frame (if any), then the trailers.
pub struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("50% of é"), "50%25 of %C3%A9");
        assert_eq!(percent_encode("plain text"), "plain text");
    }
}
