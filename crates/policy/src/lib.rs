//! Vault-compatible ACL policies for tresor.
//!
//! Policies are written in HCL or JSON (`path "<pattern>" { capabilities = [...] }`), parsed
//! once into [`Policy`] values, and a token's policies are compiled into an [`Acl`] that
//! answers [`Acl::allowed`] and [`Acl::capabilities`] without re-parsing. Pattern priority
//! follows OpenBao's documented rules; see `docs/policy.md`.
#![forbid(unsafe_code)]

mod acl;
mod capability;
mod error;
mod params;
mod parse;
mod pattern;
mod policy;

pub use acl::{Acl, Decision, DenyReason};
pub use capability::{Capability, CapabilitySet, Operation};
pub use error::{Location, PolicyError};
pub use params::ParameterRules;
pub use parse::PathRule;
pub use pattern::PathPattern;
pub use policy::{
    DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, ROOT_POLICY_NAME, ensure_deletable,
    ensure_writable, normalize_name,
};
