//! Vault-compatible ACL policies for tresor.
//!
//! Policies are written in HCL or JSON (`path "<pattern>" { capabilities = [...] }`), parsed
//! once into [`Policy`] values, and a token's policies are compiled into an [`Acl`] that
//! answers [`Acl::allowed`] and [`Acl::capabilities`] without re-parsing; [`PolicyStore`]
//! keeps policies in the barrier and caches compiled ACLs. Pattern priority
//! follows OpenBao's documented rules; see `docs/policy.md`.
#![forbid(unsafe_code)]

mod acl;
mod capability;
mod error;
mod params;
mod parse;
mod pattern;
mod policy;
mod store;

pub use acl::{Acl, Decision, DenyReason};
pub use capability::{Capability, CapabilitySet};
pub use error::{Location, PolicyError};
pub use params::ParameterRules;
pub use parse::PathRule;
pub use pattern::PathPattern;
pub use policy::{
    DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, ROOT_POLICY_NAME, ensure_canonical,
    ensure_deletable, ensure_writable, normalize_name,
};
pub use store::{PolicyStore, PolicyStoreError};
pub use tresor_request::Operation;
