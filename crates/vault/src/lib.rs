//! Delivery to a HashiCorp Vault (or a tresor server) through its KV
//! version 2 API, and reading from one for `tresor import`.
//!
//! A push writes only when the values differ, with `cas` set to the version
//! it compared against, and marks the path as tresor's in its custom
//! metadata. A path that exists without that mark is someone else's: it is
//! never overwritten (only adopted when it already holds exactly the values).
//! Address and token come from `VAULT_ADDR`/`VAULT_TOKEN` (or
//! `~/.vault-token`, `VAULT_CACERT`) unless the spec names an address or a
//! declared key holding the token.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use tresor_client::{Client, Config};
use tresor_kv::SecretMap;
use tresor_platform::{
    Destination, Job, KeyRef, MANAGED_BY, OWNER_PLATFORM, Owner, PlatformError, PushResult, Pushed,
    RemoteStore, SecretSpec, SecretStore, TargetError, Unreachable, VaultAuth,
};
use zeroize::Zeroizing;

/// Why talking to a Vault failed. Never holds a token or a value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no Vault address for {what}: set VAULT_ADDR, or `address:` in the spec's vault target"
    )]
    NoAddress { what: String },
    #[error(
        "no Vault token for {address}: set VAULT_TOKEN (or run `vault login`, which writes ~/.vault-token), or name a declared key with `auth.token_ref`"
    )]
    NoToken { address: String },
    #[error("the token for {address} comes from `{key}`, which holds no value yet")]
    TokenMissing { address: String, key: String },
    #[error("cannot reach Vault at {address} ({reason}); check the address and that Vault is up")]
    Unreachable { address: String, reason: String },
    #[error(
        "Vault at {address} denied access to {place} ({detail}); the token's policy needs read, create and update on {place_data} and {place_metadata}"
    )]
    Denied {
        address: String,
        place: String,
        place_data: String,
        place_metadata: String,
        detail: String,
    },
    #[error(
        "Vault at {address}: {place} exists and is not tresor's (no `managed-by: tresor` custom metadata), and it holds other values; tresor will not overwrite it. Take it over with `tresor import --from vault --path {place}`, delete it, or deliver to another path"
    )]
    NotOurs { address: String, place: String },
    #[error(
        "Vault at {address}: {place} belongs to tresor platform `{platform}`, not this one; deliver to another path"
    )]
    OtherPlatform {
        address: String,
        place: String,
        platform: String,
    },
    #[error(
        "Vault at {address}: {place} changed while it was being written (check-and-set); run `tresor apply` again"
    )]
    Changed { address: String, place: String },
    #[error("Vault at {address}, {place}: {source}")]
    Api {
        address: String,
        place: String,
        source: tresor_client::Error,
    },
}

impl VaultError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, VaultError::Unreachable { .. })
    }
}

impl From<VaultError> for TargetError {
    fn from(e: VaultError) -> Self {
        TargetError {
            unreachable: e.is_unreachable(),
            message: e.to_string(),
        }
    }
}

/// How many pushes `tresor apply` has in flight to Vault: each is a few
/// small requests, so a handful of connections keeps a server busy.
pub const IN_FLIGHT: usize = 8;

/// A client of the Vault at `address` (else `VAULT_ADDR`) with `token`
/// (else `VAULT_TOKEN`, else `~/.vault-token`). `TRESOR_*` variables are
/// not read: they name tresor's own server, not the target.
pub fn connect(
    address: Option<&str>,
    token: Option<Zeroizing<String>>,
    what: &str,
) -> Result<Client, VaultError> {
    let address = address
        .map(str::to_owned)
        .or_else(|| var("VAULT_ADDR"))
        .ok_or_else(|| VaultError::NoAddress { what: what.into() })?
        .trim_end_matches('/')
        .to_owned();
    let token = match token {
        Some(t) => t,
        None => env_token().ok_or_else(|| VaultError::NoToken {
            address: address.clone(),
        })?,
    };
    Client::new(Config {
        address: address.clone(),
        token: Some(token),
        ca_cert: var("VAULT_CACERT").map(Into::into),
    })
    .map_err(|source| VaultError::Api {
        address,
        place: what.into(),
        source,
    })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_token() -> Option<Zeroizing<String>> {
    if let Ok(token) = std::env::var("VAULT_TOKEN") {
        let token = Zeroizing::new(token);
        if !token.trim().is_empty() {
            return Some(Zeroizing::new(token.trim().to_owned()));
        }
    }
    let file = std::path::Path::new(&std::env::var_os("HOME")?).join(".vault-token");
    let text = Zeroizing::new(std::fs::read_to_string(file).ok()?);
    (!text.trim().is_empty()).then(|| Zeroizing::new(text.trim().to_owned()))
}

/// One KV version 2 mount of one Vault.
pub struct Kv {
    store: RemoteStore,
    address: String,
    mount: String,
}

/// A secret as read from Vault: its values and custom metadata.
pub struct Remote {
    pub data: Option<SecretMap>,
    pub custom: BTreeMap<String, String>,
}

impl Kv {
    pub fn new(client: Client, mount: &str) -> Self {
        Self {
            address: client.address().to_owned(),
            store: RemoteStore::new(client, mount),
            mount: mount.trim_matches('/').to_owned(),
        }
    }

    fn place(&self, path: &str) -> String {
        format!("{}/{path}", self.mount)
    }

    fn error(&self, path: &str, error: PlatformError) -> VaultError {
        let address = self.address.clone();
        let place = self.place(path);
        match error {
            PlatformError::Server(tresor_client::Error::Transport { reason, .. }) => {
                VaultError::Unreachable { address, reason }
            }
            PlatformError::Server(tresor_client::Error::Api {
                status: 403,
                errors,
            }) => VaultError::Denied {
                place_data: format!("{}/data/{path}", self.mount),
                place_metadata: format!("{}/metadata/{path}", self.mount),
                address,
                place,
                detail: if errors.is_empty() {
                    "403".into()
                } else {
                    errors.join("; ")
                },
            },
            PlatformError::Server(source) => VaultError::Api {
                address,
                place,
                source,
            },
            other => VaultError::Api {
                address,
                place,
                source: tresor_client::Error::Config(other.to_string()),
            },
        }
    }

    /// The secret at `path`, `None` when nothing is there.
    pub fn read(&self, path: &str) -> Result<Option<Remote>, VaultError> {
        let stored = self.store.read(path).map_err(|e| self.error(path, e))?;
        if stored.version == 0 && stored.custom.is_empty() {
            return Ok(None);
        }
        Ok(Some(Remote {
            data: stored.data,
            custom: stored.custom,
        }))
    }

    /// Makes `path` hold exactly `data`, marked as `owner`'s.
    pub fn push(&self, path: &str, data: &SecretMap, owner: &Owner) -> Result<Pushed, VaultError> {
        let failed = |e| self.error(path, e);
        let stored = self.store.read(path).map_err(failed)?;
        let exists = stored.version > 0 || !stored.custom.is_empty();
        let ours = stored.custom.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
        let same = stored.data.as_ref() == Some(data);
        if exists && !ours && !same {
            return Err(VaultError::NotOurs {
                address: self.address.clone(),
                place: self.place(path),
            });
        }
        if let Some(platform) = stored.custom.get(OWNER_PLATFORM)
            && ours
            && platform != owner.platform
        {
            return Err(VaultError::OtherPlatform {
                address: self.address.clone(),
                place: self.place(path),
                platform: platform.clone(),
            });
        }
        let pushed = if same {
            Pushed::kept(ours)
        } else {
            if !self
                .store
                .write(path, data, stored.version)
                .map_err(failed)?
            {
                return Err(VaultError::Changed {
                    address: self.address.clone(),
                    place: self.place(path),
                });
            }
            if exists {
                Pushed::Updated
            } else {
                Pushed::Created
            }
        };
        let missing: BTreeMap<String, Option<String>> = owner
            .marks()
            .iter()
            .filter(|(k, v)| stored.custom.get(*k).map(String::as_str) != Some(*v))
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect();
        if !missing.is_empty() {
            self.store
                .merge_custom_metadata(path, &missing)
                .map_err(failed)?;
        }
        Ok(pushed)
    }

    /// Every secret under `prefix` (a path or a folder), depth first.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, VaultError> {
        let prefix = prefix.trim_matches('/');
        let mut out = Vec::new();
        let mut folders = vec![prefix.to_owned()];
        while let Some(folder) = folders.pop() {
            let listing = format!("{}/metadata/{folder}", self.mount);
            let keys = self
                .store
                .client()
                .list(&listing, None, None)
                .map_err(|e| self.error(&folder, e.into()))?;
            for key in keys {
                let path = if folder.is_empty() {
                    key.clone()
                } else {
                    format!("{folder}/{key}")
                };
                match path.strip_suffix('/') {
                    Some(sub) => folders.push(sub.to_owned()),
                    None => out.push(path),
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A connection's identity: address, token source and mount.
type MountKey = (Option<String>, VaultAuth, String);

/// The value of a declared key holding a Vault token (`auth.token_ref`),
/// when there is one.
pub type Tokens<'a> = &'a (dyn Fn(&KeyRef) -> Option<Zeroizing<String>> + Sync);

/// The pushes of one delivery to every Vault target of the spec.
pub struct VaultDestination<'a> {
    platform: String,
    tokens: Tokens<'a>,
    /// One connection per address, token source and mount.
    mounts: Vec<(MountKey, Kv)>,
}

impl<'a> VaultDestination<'a> {
    /// `tokens` supplies the tokens that targets take from declared keys.
    pub fn new(platform: &str, tokens: Tokens<'a>) -> Self {
        Self {
            platform: platform.to_owned(),
            tokens,
            mounts: Vec::new(),
        }
    }

    /// The index in `mounts` of the connection `secret` is pushed
    /// through, connecting on first use.
    fn connect(&mut self, secret: &SecretSpec) -> Result<usize, VaultError> {
        let target = secret.targets.vault.as_ref().expect("only vault targets");
        let id = (
            target.address.clone(),
            target.auth.clone(),
            target.mount.clone(),
        );
        let index = match self.mounts.iter().position(|(k, _)| *k == id) {
            Some(i) => i,
            None => {
                let what = format!("secret `{}`", secret.name);
                let token = match &target.auth {
                    VaultAuth::Environment => None,
                    VaultAuth::Token(r) => Some(self.token(r, &what)?),
                };
                let client = connect(target.address.as_deref(), token, &what)?;
                self.mounts.push((id, Kv::new(client, &target.mount)));
                self.mounts.len() - 1
            }
        };
        Ok(index)
    }

    /// Pushes `secret` through the connection at `mount`.
    fn push_to(
        &self,
        mount: usize,
        secret: &SecretSpec,
        data: &SecretMap,
    ) -> Result<Pushed, VaultError> {
        let path = &secret
            .targets
            .vault
            .as_ref()
            .expect("only vault targets")
            .path;
        let owner = Owner {
            platform: &self.platform,
            secret: &secret.name,
        };
        self.mounts[mount].1.push(path, data, &owner)
    }

    fn token(&self, key: &KeyRef, what: &str) -> Result<Zeroizing<String>, VaultError> {
        (self.tokens)(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| VaultError::TokenMissing {
                address: what.into(),
                key: key.to_string(),
            })
    }
}

impl Destination for VaultDestination<'_> {
    fn kind(&self) -> &'static str {
        "vault"
    }

    fn place(&self, secret: &SecretSpec) -> Option<String> {
        let v = secret.targets.vault.as_ref()?;
        Some(format!(
            "{}/{} at {}",
            v.mount,
            v.path,
            self.endpoint(secret)
        ))
    }

    fn endpoint(&self, secret: &SecretSpec) -> String {
        secret
            .targets
            .vault
            .as_ref()
            .and_then(|v| v.address.clone())
            .or_else(|| var("VAULT_ADDR"))
            .unwrap_or_else(|| "(no VAULT_ADDR)".into())
    }

    fn push(&mut self, secret: &SecretSpec, data: &SecretMap) -> Result<Pushed, TargetError> {
        let mount = self.connect(secret)?;
        Ok(self.push_to(mount, secret, data)?)
    }

    /// [`IN_FLIGHT`] pushes at a time, after connecting one by one (a
    /// connection may take its token from a declared key).
    fn push_all(&mut self, jobs: &[Job<'_>]) -> Vec<PushResult> {
        let connected: Vec<(Job<'_>, Result<usize, TargetError>)> = jobs
            .iter()
            .map(|job| (*job, self.connect(job.secret).map_err(TargetError::from)))
            .collect();
        let unreachable = Unreachable::default();
        let this = &*self;
        tresor_platform::parallel::map(&connected, IN_FLIGHT, |(job, mount)| {
            let endpoint = this.endpoint(job.secret);
            if unreachable.skips(&endpoint) {
                return PushResult::Skipped;
            }
            let pushed = match mount {
                Ok(mount) => this
                    .push_to(*mount, job.secret, job.data)
                    .map_err(TargetError::from),
                Err(e) => Err(e.clone()),
            };
            unreachable.outcome(&endpoint, pushed)
        })
    }
}
