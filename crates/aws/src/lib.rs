//! Delivery to AWS Secrets Manager through the official Rust SDK, and
//! reading from it for `tresor import`.
//!
//! A secret's value goes out as one JSON object (the target's `json`
//! shape). A push compares it with the `AWSCURRENT` version and writes a new
//! version only when it differs; Secrets Manager then makes the new version
//! `AWSCURRENT` and the former one `AWSPREVIOUS`. tresor marks what it owns
//! with tags and never overwrites a secret without them (it adopts one that
//! already holds exactly the values). Credentials, region and endpoint
//! come from the SDK's default chain (`AWS_*` variables, profiles, instance
//! roles, `AWS_ENDPOINT_URL_SECRETS_MANAGER`), never from the spec.
#![forbid(unsafe_code)]

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager as sm;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sm::error::{ProvideErrorMetadata, SdkError};
use sm::types::{Filter, FilterNameStringType, Tag};
use tresor_kv::SecretMap;
use tresor_platform::{
    AwsTarget, Destination, Job, MANAGED_BY, OWNER_PLATFORM, Owner, PushResult, Pushed, SecretSpec,
    TargetError, Unreachable,
};
use zeroize::Zeroizing;

/// Why talking to Secrets Manager failed. Never holds a value or a credential.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region for {what}: set AWS_REGION (or a profile's region), or `region:` in the spec's aws target"
    )]
    NoRegion { what: String },
    #[error("cannot start the AWS client: {0}")]
    Runtime(String),
    #[error(
        "cannot reach AWS Secrets Manager in {region} ({reason}); check the network, the region and AWS_ENDPOINT_URL_SECRETS_MANAGER"
    )]
    Unreachable { region: String, reason: String },
    #[error(
        "no AWS credentials for {action} on `{name}` in {region} ({reason}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance or pod role applies"
    )]
    NoCredentials {
        region: String,
        name: String,
        action: &'static str,
        reason: String,
    },
    #[error(
        "AWS Secrets Manager in {region} throttled {action} on `{name}` past the SDK's retries ({detail}); run again in a while, or lower the request rate of other clients of this account"
    )]
    Throttled {
        region: String,
        name: String,
        action: &'static str,
        detail: String,
    },
    #[error(
        "AWS Secrets Manager in {region} denied {action} on `{name}` ({detail}); the credentials (AWS default chain: AWS_ACCESS_KEY_ID, AWS_PROFILE, an instance role) need secretsmanager:DescribeSecret, GetSecretValue, CreateSecret, PutSecretValue and TagResource on it"
    )]
    Denied {
        region: String,
        name: String,
        action: &'static str,
        detail: String,
    },
    #[error(
        "AWS secret `{name}` in {region} is scheduled for deletion (on {when}); restore it with `aws secretsmanager restore-secret --secret-id {name} --region {region}`, or deliver to another name"
    )]
    ScheduledForDeletion {
        region: String,
        name: String,
        when: String,
    },
    #[error(
        "AWS secret `{name}` in {region} exists and is not tresor's (no `managed-by=tresor` tag), and it holds other values; tresor will not overwrite it. Take it over with `tresor import --from aws --name {name}`, delete it, or deliver to another name"
    )]
    NotOurs { region: String, name: String },
    #[error(
        "AWS secret `{name}` in {region} belongs to tresor platform `{platform}`, not this one"
    )]
    OtherPlatform {
        region: String,
        name: String,
        platform: String,
    },
    #[error(
        "AWS secret `{name}` in {region} does not hold a JSON object of strings; tresor imports only JSON-shaped secrets"
    )]
    NotJson { region: String, name: String },
    #[error("AWS Secrets Manager in {region}: {action} on `{name}` failed: {detail}")]
    Api {
        region: String,
        name: String,
        action: &'static str,
        detail: String,
    },
}

impl AwsError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, AwsError::Unreachable { .. })
    }
}

impl From<AwsError> for TargetError {
    fn from(e: AwsError) -> Self {
        TargetError {
            unreachable: e.is_unreachable(),
            message: e.to_string(),
        }
    }
}

/// How many pushes `tresor apply` has in flight to Secrets Manager: each
/// is two or three requests that mostly wait on the network.
pub const IN_FLIGHT: usize = 16;

/// A blocking client of Secrets Manager: one runtime, one SDK client per region.
pub struct Aws {
    runtime: tokio::runtime::Runtime,
    regions: Vec<(Option<String>, Regional)>,
}

#[derive(Clone)]
struct Regional {
    client: sm::Client,
    region: String,
}

impl Aws {
    pub fn new() -> Result<Self, AwsError> {
        // kube and the SDK both bring rustls: name its crypto provider once.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AwsError::Runtime(e.to_string()))?;
        Ok(Self {
            runtime,
            regions: Vec::new(),
        })
    }

    fn regional(&mut self, region: Option<&str>, what: &str) -> Result<Regional, AwsError> {
        if let Some((_, r)) = self.regions.iter().find(|(k, _)| k.as_deref() == region) {
            return Ok(r.clone());
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        let config = self.runtime.block_on(loader.load());
        let name = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| AwsError::NoRegion { what: what.into() })?;
        let regional = Regional {
            client: sm::Client::new(&config),
            region: name,
        };
        self.regions
            .push((region.map(str::to_owned), regional.clone()));
        Ok(regional)
    }

    /// The current values of the secret `name`, `None` when there is none.
    pub fn read(
        &mut self,
        region: Option<&str>,
        name: &str,
    ) -> Result<Option<SecretMap>, AwsError> {
        let r = self.regional(region, &format!("`{name}`"))?;
        self.runtime.block_on(read(&r, name))
    }

    /// The names of the secrets starting with `prefix`, not scheduled for deletion.
    pub fn list(&mut self, region: Option<&str>, prefix: &str) -> Result<Vec<String>, AwsError> {
        let r = self.regional(region, &format!("`{prefix}*`"))?;
        self.runtime.block_on(list(&r, prefix))
    }

    /// The region `region` resolves to (the default chain's when `None`).
    pub fn region_name(&mut self, region: Option<&str>) -> Result<String, AwsError> {
        Ok(self.regional(region, "import")?.region)
    }
}

/// Makes the secret `target` names hold `data` in its JSON shape, tagged
/// as `owner`'s.
async fn push_shaped(
    r: &Regional,
    target: &AwsTarget,
    data: &SecretMap,
    owner: &Owner<'_>,
) -> Result<Pushed, AwsError> {
    let mut desired = shape(target, data);
    let text = Zeroizing::new(desired.to_string());
    let pushed = push(r, target, &desired, &text, owner).await;
    tresor_kv::wipe_json(&mut desired);
    pushed
}

/// The secret string: the target's JSON fields with the keys' values.
fn shape(target: &AwsTarget, data: &SecretMap) -> Value {
    let mut object = Map::new();
    for (field, key) in &target.json {
        let value = data.get(key).cloned().unwrap_or(Value::Null);
        object.insert(field.clone(), value);
    }
    Value::Object(object)
}

fn failure<E>(error: SdkError<E>, r: &Regional, name: &str, action: &'static str) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let region = r.region.clone();
    let name = name.to_owned();
    // The SDK's own rendering is its whole debug chain: the innermost cause
    // says what happened in one line.
    let reason = innermost(&error);
    let no_credentials =
        std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .any(|e| e.is::<CredentialsError>());
    if no_credentials {
        return AwsError::NoCredentials {
            region,
            name,
            action,
            reason,
        };
    }
    let unreachable = match &error {
        SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
        SdkError::TimeoutError(_) => true,
        _ => false,
    };
    if unreachable {
        return AwsError::Unreachable { region, reason };
    }
    if let SdkError::ServiceError(s) = &error {
        let status = s.raw().status().as_u16();
        let code = s.err().code().unwrap_or("no error code");
        let detail = match s.err().message() {
            Some(m) => format!("HTTP {status}, {code}: {}", one_line(m)),
            None => format!("HTTP {status}, {code}"),
        };
        let denied = status == 403
            || matches!(
                code,
                "AccessDeniedException"
                    | "AccessDenied"
                    | "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
            );
        let throttled = status == 429
            || matches!(
                code,
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "RequestThrottled"
                    | "SlowDown"
            );
        return if denied {
            AwsError::Denied {
                region,
                name,
                action,
                detail,
            }
        } else if throttled {
            AwsError::Throttled {
                region,
                name,
                action,
                detail,
            }
        } else {
            AwsError::Api {
                region,
                name,
                action,
                detail,
            }
        };
    }
    AwsError::Api {
        region,
        name,
        action,
        detail: reason,
    }
}

/// The last cause of `error`, on one line.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let last = std::iter::successors(Some(error), |e| e.source())
        .last()
        .unwrap_or(error);
    one_line(&last.to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn not_found<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(error, SdkError::ServiceError(s) if s.err().code() == Some("ResourceNotFoundException"))
}

fn tags(owner: &Owner) -> Vec<Tag> {
    owner
        .marks()
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn push(
    r: &Regional,
    target: &AwsTarget,
    desired: &Value,
    text: &str,
    owner: &Owner<'_>,
) -> Result<Pushed, AwsError> {
    let name = target.name.as_str();
    let described = match r.client.describe_secret().secret_id(name).send().await {
        Ok(d) => d,
        Err(e) if not_found(&e) => {
            r.client
                .create_secret()
                .name(name)
                .secret_string(text)
                .set_kms_key_id(target.kms_key.clone())
                .set_tags(Some(tags(owner)))
                .send()
                .await
                .map_err(|e| failure(e, r, name, "CreateSecret"))?;
            return Ok(Pushed::Created);
        }
        Err(e) => return Err(failure(e, r, name, "DescribeSecret")),
    };
    if let Some(when) = described.deleted_date() {
        return Err(AwsError::ScheduledForDeletion {
            region: r.region.clone(),
            name: name.into(),
            when: when.to_string(),
        });
    }
    let tag = |key: &str| {
        described
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
    };
    let ours = tag(MANAGED_BY.0) == Some(MANAGED_BY.1);
    if ours && let Some(platform) = tag(OWNER_PLATFORM).filter(|p| *p != owner.platform) {
        return Err(AwsError::OtherPlatform {
            region: r.region.clone(),
            name: name.into(),
            platform: platform.into(),
        });
    }
    let same = current(r, name).await?.as_ref() == Some(desired);
    if !ours && !same {
        return Err(AwsError::NotOurs {
            region: r.region.clone(),
            name: name.into(),
        });
    }
    let pushed = if same {
        Pushed::kept(ours)
    } else {
        // Without explicit stages, Secrets Manager moves AWSCURRENT to the
        // new version and AWSPREVIOUS to the one it replaces.
        r.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| failure(e, r, name, "PutSecretValue"))?;
        Pushed::Updated
    };
    let marked = tags(owner)
        .iter()
        .all(|t| tag(t.key().unwrap_or_default()) == t.value());
    if !marked {
        r.client
            .tag_resource()
            .secret_id(name)
            .set_tags(Some(tags(owner)))
            .send()
            .await
            .map_err(|e| failure(e, r, name, "TagResource"))?;
    }
    Ok(pushed)
}

/// The `AWSCURRENT` secret string as JSON (`None` when absent or not JSON).
async fn current(r: &Regional, name: &str) -> Result<Option<Value>, AwsError> {
    match r
        .client
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await
    {
        Ok(out) => Ok(out
            .secret_string()
            .and_then(|s| serde_json::from_str(s).ok())),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(failure(e, r, name, "GetSecretValue")),
    }
}

async fn read(r: &Regional, name: &str) -> Result<Option<SecretMap>, AwsError> {
    let exists = match r.client.describe_secret().secret_id(name).send().await {
        Ok(d) => d.deleted_date().is_none(),
        Err(e) if not_found(&e) => false,
        Err(e) => return Err(failure(e, r, name, "DescribeSecret")),
    };
    if !exists {
        return Ok(None);
    }
    match current(r, name).await? {
        Some(Value::Object(map)) if map.values().all(Value::is_string) => {
            Ok(Some(SecretMap::from_map(map)))
        }
        Some(mut other) => {
            tresor_kv::wipe_json(&mut other);
            Err(AwsError::NotJson {
                region: r.region.clone(),
                name: name.into(),
            })
        }
        None => Err(AwsError::NotJson {
            region: r.region.clone(),
            name: name.into(),
        }),
    }
}

async fn list(r: &Regional, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = r.client.list_secrets().set_next_token(token.take());
        if !prefix.is_empty() {
            request = request.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(prefix)
                    .build(),
            );
        }
        let page = request
            .send()
            .await
            .map_err(|e| failure(e, r, prefix, "ListSecrets"))?;
        names.extend(
            page.secret_list()
                .iter()
                .filter(|s| s.deleted_date().is_none())
                .filter_map(|s| s.name())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_owned),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    names.sort();
    Ok(names)
}

/// The pushes of one delivery to every AWS target of the spec.
pub struct AwsDestination {
    platform: String,
    aws: Option<Aws>,
}

impl AwsDestination {
    pub fn new(platform: &str) -> Self {
        Self {
            platform: platform.to_owned(),
            aws: None,
        }
    }

    /// Starts the runtime (once).
    fn start(&mut self) -> Result<&mut Aws, TargetError> {
        if self.aws.is_none() {
            self.aws = Some(Aws::new().map_err(|e| TargetError {
                unreachable: true,
                message: e.to_string(),
            })?);
        }
        Ok(self.aws.as_mut().expect("set above"))
    }

    /// The client for `secret`'s region, loading its configuration on first use.
    fn regional(&mut self, secret: &SecretSpec) -> Result<Regional, TargetError> {
        let target = secret.targets.aws.as_ref().expect("only aws targets");
        let aws = self.start()?;
        Ok(aws.regional(target.region.as_deref(), &format!("`{}`", target.name))?)
    }

    async fn push_to(
        &self,
        r: &Regional,
        secret: &SecretSpec,
        data: &SecretMap,
    ) -> Result<Pushed, AwsError> {
        let target = secret.targets.aws.as_ref().expect("only aws targets");
        let owner = Owner {
            platform: &self.platform,
            secret: &secret.name,
        };
        push_shaped(r, target, data, &owner).await
    }
}

impl Destination for AwsDestination {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn place(&self, secret: &SecretSpec) -> Option<String> {
        let a = secret.targets.aws.as_ref()?;
        Some(format!("{} ({})", a.name, self.endpoint(secret)))
    }

    fn endpoint(&self, secret: &SecretSpec) -> String {
        secret
            .targets
            .aws
            .as_ref()
            .and_then(|a| a.region.clone())
            .unwrap_or_else(|| "default region".into())
    }

    fn push(&mut self, secret: &SecretSpec, data: &SecretMap) -> Result<Pushed, TargetError> {
        let r = self.regional(secret)?;
        let aws = self.aws.as_ref().expect("started by regional");
        Ok(aws.runtime.block_on(self.push_to(&r, secret, data))?)
    }

    /// [`IN_FLIGHT`] pushes at a time on the SDK's async client, after
    /// loading each region's configuration once.
    fn push_all(&mut self, jobs: &[Job<'_>]) -> Vec<PushResult> {
        if let Err(e) = self.start() {
            // Without a runtime nothing is tried: the first push says why.
            return (0..jobs.len())
                .map(|i| match i {
                    0 => PushResult::Failed(e.message.clone()),
                    _ => PushResult::Skipped,
                })
                .collect();
        }
        let clients: Vec<Result<Regional, TargetError>> =
            jobs.iter().map(|job| self.regional(job.secret)).collect();
        let unreachable = Unreachable::default();
        let this = &*self;
        let aws = self.aws.as_ref().expect("started above");
        let pushes = jobs.iter().zip(&clients).map(|(job, client)| {
            let unreachable = &unreachable;
            async move {
                let endpoint = this.endpoint(job.secret);
                if unreachable.skips(&endpoint) {
                    return PushResult::Skipped;
                }
                let pushed = match client {
                    Ok(r) => this
                        .push_to(r, job.secret, job.data)
                        .await
                        .map_err(TargetError::from),
                    Err(e) => Err(e.clone()),
                };
                unreachable.outcome(&endpoint, pushed)
            }
        });
        aws.runtime.block_on(
            futures_util::stream::iter(pushes)
                .buffered(IN_FLIGHT)
                .collect(),
        )
    }
}
