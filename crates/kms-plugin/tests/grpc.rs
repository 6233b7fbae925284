//! The plugin's gRPC surface, called over its unix socket by a plain HTTP/2
//! client speaking gRPC's framing (what grpc-go in the API server sends):
//! both API versions, every status the API server may see, and a slow key
//! service cut off by the timeout.

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tresor_kms_plugin::proto::{v1, v2};
use tresor_kms_plugin::{KeyService, Options, ServiceError, Wrapped};
use zeroize::Zeroizing;

/// Wraps by reversing the bytes; fails as told.
struct Fake {
    sealed: AtomicBool,
    slow: AtomicBool,
}

impl KeyService for Fake {
    fn encrypt(&self, plaintext: &[u8]) -> Result<Wrapped, ServiceError> {
        if self.slow.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(2));
        }
        if self.sealed.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable("tresor store is sealed".into()));
        }
        let mut ciphertext = b"vault:v1:".to_vec();
        ciphertext.extend(plaintext.iter().rev());
        Ok(Wrapped {
            ciphertext,
            key_id: "transit/keys/k:v1".into(),
        })
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        let body = ciphertext
            .strip_prefix(b"vault:v1:")
            .ok_or_else(|| ServiceError::Invalid("invalid ciphertext: no prefix".into()))?;
        Ok(Zeroizing::new(body.iter().rev().copied().collect()))
    }

    fn key_id(&self) -> Result<String, ServiceError> {
        Ok("transit/keys/k:v1".into())
    }

    fn describe(&self) -> String {
        "a fake key".into()
    }
}

struct Plugin {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    fake: Arc<Fake>,
    runtime: tokio::runtime::Runtime,
}

fn start() -> Plugin {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kms.sock");
    let fake = Arc::new(Fake {
        sealed: AtomicBool::new(false),
        slow: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(async { tokio::net::UnixListener::bind(&socket) })
        .unwrap();
    let service: Arc<dyn KeyService> = fake.clone();
    let options = Options {
        timeout: Duration::from_millis(500),
        ..Options::default()
    };
    runtime.spawn(tresor_kms_plugin::serve(
        listener,
        service,
        options,
        std::future::pending(),
    ));
    Plugin {
        _dir: dir,
        socket,
        fake,
        runtime,
    }
}

/// The status code and message, and the reply message when the status is 0.
fn call(plugin: &Plugin, path: &str, message: &impl Message) -> (u32, String, Vec<u8>) {
    let mut framed = vec![0u8];
    let body = message.encode_to_vec();
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    plugin.runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(&plugin.socket)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let request = http::Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(framed)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        let mut data = collected.to_bytes();
        let reply = if data.len() >= 5 {
            data.advance(1);
            let len = data.get_u32() as usize;
            assert_eq!(len, data.len());
            data.to_vec()
        } else {
            Vec::new()
        };
        let code = trailers["grpc-status"].to_str().unwrap().parse().unwrap();
        let message = trailers
            .get("grpc-message")
            .map(|m| m.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (code, message, reply)
    })
}

#[test]
fn v1_version_encrypt_decrypt() {
    let plugin = start();
    let (code, _, reply) = call(
        &plugin,
        "/v1beta1.KeyManagementService/Version",
        &v1::VersionRequest {
            version: "v1beta1".into(),
        },
    );
    assert_eq!(code, 0);
    let version = v1::VersionResponse::decode(reply.as_slice()).unwrap();
    assert_eq!(version.version, "v1beta1");
    assert_eq!(version.runtime_name, "tresor");

    let (code, _, reply) = call(
        &plugin,
        "/v1beta1.KeyManagementService/Encrypt",
        &v1::EncryptRequest {
            version: "v1beta1".into(),
            plain: b"data key".to_vec(),
        },
    );
    assert_eq!(code, 0);
    let cipher = v1::EncryptResponse::decode(reply.as_slice())
        .unwrap()
        .cipher;
    assert_eq!(cipher, b"vault:v1:yek atad");
    let (code, _, reply) = call(
        &plugin,
        "/v1beta1.KeyManagementService/Decrypt",
        &v1::DecryptRequest {
            version: "v1beta1".into(),
            cipher,
        },
    );
    assert_eq!(code, 0);
    assert_eq!(
        v1::DecryptResponse::decode(reply.as_slice()).unwrap().plain,
        b"data key"
    );
}

#[test]
fn v2_status_encrypt_decrypt() {
    let plugin = start();
    let (code, _, reply) = call(
        &plugin,
        "/v2.KeyManagementService/Status",
        &v2::StatusRequest {},
    );
    assert_eq!(code, 0);
    let status = v2::StatusResponse::decode(reply.as_slice()).unwrap();
    assert_eq!(
        (status.version.as_str(), status.healthz.as_str()),
        ("v2", "ok")
    );
    assert_eq!(status.key_id, "transit/keys/k:v1");
    let (code, _, reply) = call(
        &plugin,
        "/v2.KeyManagementService/Encrypt",
        &v2::EncryptRequest {
            plaintext: b"seed".to_vec(),
            uid: "u1".into(),
        },
    );
    assert_eq!(code, 0);
    let encrypted = v2::EncryptResponse::decode(reply.as_slice()).unwrap();
    assert_eq!(encrypted.key_id, "transit/keys/k:v1");
    let (code, _, reply) = call(
        &plugin,
        "/v2.KeyManagementService/Decrypt",
        &v2::DecryptRequest {
            ciphertext: encrypted.ciphertext,
            uid: "u2".into(),
            key_id: encrypted.key_id,
            annotations: Default::default(),
        },
    );
    assert_eq!(code, 0);
    assert_eq!(
        v2::DecryptResponse::decode(reply.as_slice())
            .unwrap()
            .plaintext,
        b"seed"
    );
}

#[test]
fn failures_have_the_status_the_api_server_expects() {
    let plugin = start();
    let bad = v1::DecryptRequest {
        version: "v1beta1".into(),
        cipher: b"junk".to_vec(),
    };
    let (code, message, _) = call(&plugin, "/v1beta1.KeyManagementService/Decrypt", &bad);
    assert_eq!(
        (code, message.as_str()),
        (3, "invalid ciphertext: no prefix")
    );

    let (code, _, _) = call(&plugin, "/v1beta1.KeyManagementService/Nope", &bad);
    assert_eq!(code, 12);
    let (code, _, _) = call(&plugin, "/other.Service/Encrypt", &bad);
    assert_eq!(code, 12);

    plugin.fake.sealed.store(true, Ordering::SeqCst);
    let encrypt = v1::EncryptRequest {
        version: "v1beta1".into(),
        plain: b"k".to_vec(),
    };
    let (code, message, _) = call(&plugin, "/v1beta1.KeyManagementService/Encrypt", &encrypt);
    assert_eq!((code, message.as_str()), (14, "tresor store is sealed"));

    plugin.fake.sealed.store(false, Ordering::SeqCst);
    plugin.fake.slow.store(true, Ordering::SeqCst);
    let (code, message, _) = call(&plugin, "/v1beta1.KeyManagementService/Encrypt", &encrypt);
    assert_eq!(code, 4, "{message}");
    assert!(message.contains("did not answer within"), "{message}");
}
