//! The AWS KMS seal: a store's unseal key is encrypted by an AWS KMS key
//! and the ciphertext kept in the store's seal record, so the store opens
//! wherever that key may be used, with no key file or shares. The store's
//! id is the encryption context: one store's wrapped key opens no other.
#![forbid(unsafe_code)]

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::time::Duration;
use tresor_barrier::{BarrierError, Kms, KmsSeal};
use zeroize::Zeroizing;

/// Which KMS key, where: `[seal] kind = "awskms"` in the server's config,
/// `--kms-*` on the command line, or what a store's seal record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A key id, ARN, alias name (`alias/tresor`) or alias ARN.
    pub key_id: String,
    pub region: String,
    /// A custom endpoint (a VPC endpoint, a local KMS for tests); none: AWS's.
    pub endpoint: Option<String>,
}

impl Settings {
    /// The settings a store's seal record names.
    pub fn from_record(record: &KmsSeal) -> Option<Self> {
        match record {
            KmsSeal::Awskms {
                key_id,
                region,
                endpoint,
                ..
            } => Some(Self {
                key_id: key_id.clone(),
                region: region.clone(),
                endpoint: endpoint.clone(),
            }),
            _ => None,
        }
    }
}

/// The encryption context entry binding a wrapped key to its store.
const CONTEXT_KEY: &str = "tresor-store-id";

/// Connect and call timeouts: a KMS that does not answer fails the open
/// quickly instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An AWS KMS client for one key. Credentials come from the usual AWS
/// chain (environment, profile, instance role).
pub struct AwsKms {
    settings: Settings,
    client: aws_sdk_kms::Client,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A client for `settings`; nothing is sent until the first call.
    pub fn new(settings: Settings) -> Result<Self, BarrierError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                BarrierError::Kms(format!("cannot start the AWS client's runtime: {e}"))
            })?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(CALL_TIMEOUT)
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2));
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = on_thread(&runtime, loader.load());
        Ok(Self {
            client: aws_sdk_kms::Client::new(&config),
            settings,
            runtime,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn where_(&self) -> String {
        match &self.settings.endpoint {
            Some(endpoint) => format!(
                "AWS KMS key {} at {endpoint} ({})",
                self.settings.key_id, self.settings.region
            ),
            None => format!(
                "AWS KMS key {} in {}",
                self.settings.key_id, self.settings.region
            ),
        }
    }

    fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        doing: &str,
        error: SdkError<E>,
    ) -> BarrierError {
        let code = error.code().map(str::to_owned);
        let why = match (code.as_deref(), &error) {
            (_, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => format!(
                "it did not answer ({}); check the endpoint and the network",
                innermost(&error)
            ),
            (Some("NotFoundException"), _) => {
                "the key does not exist in that region; check the key id".to_owned()
            }
            (Some("IncorrectKeyException" | "AccessDeniedException"), _) => format!(
                "the store's unseal key was not wrapped by this key, or it may not be used ({}); give the key id the store was sealed with",
                error.message().unwrap_or("access denied")
            ),
            (Some("InvalidCiphertextException"), _) => {
                "the wrapped unseal key does not belong to this store or was altered".to_owned()
            }
            (Some("DisabledException" | "KMSInvalidStateException"), _) => {
                "the key is disabled or pending deletion; enable it in KMS".to_owned()
            }
            _ => DisplayErrorContext(&error).to_string(),
        };
        BarrierError::Kms(format!("{doing} with {}: {why}", self.where_()))
    }
}

impl Kms for AwsKms {
    fn wrap(&self, plaintext: &[u8], store_id: &str) -> Result<Vec<u8>, BarrierError> {
        let call = self
            .client
            .encrypt()
            .key_id(&self.settings.key_id)
            .plaintext(Blob::new(plaintext))
            .encryption_context(CONTEXT_KEY, store_id)
            .send();
        let out = on_thread(&self.runtime, call)
            .map_err(|e| self.failed("cannot wrap the unseal key", e))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| BarrierError::Kms(format!("{} returned no ciphertext", self.where_())))
    }

    fn unwrap(
        &self,
        ciphertext: &[u8],
        store_id: &str,
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let call = self
            .client
            .decrypt()
            .key_id(&self.settings.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(CONTEXT_KEY, store_id)
            .send();
        let out = on_thread(&self.runtime, call)
            .map_err(|e| self.failed("cannot unwrap the unseal key", e))?;
        out.plaintext
            .map(|p| Zeroizing::new(p.into_inner()))
            .ok_or_else(|| BarrierError::Kms(format!("{} returned no plaintext", self.where_())))
    }

    fn record(&self, ciphertext: &[u8]) -> KmsSeal {
        KmsSeal::Awskms {
            key_id: self.settings.key_id.clone(),
            region: self.settings.region.clone(),
            endpoint: self.settings.endpoint.clone(),
            wrapped_key: B64.encode(ciphertext),
        }
    }
}

/// The deepest cause of an error: for a failed connection, the words of
/// the operating system rather than the SDK's layers.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Runs `work` on this client's runtime from a thread of its own, so that
/// a caller inside another runtime (the server) may call it too.
fn on_thread<F: std::future::Future + Send>(runtime: &tokio::runtime::Runtime, work: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(work))
            .join()
            .expect("the AWS client's thread does not panic")
    })
}
