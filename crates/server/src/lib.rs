//! `tresor server`: HashiCorp Vault's HTTP API (sys, token auth, ACL
//! policies, KV version 2, audit) over tresor's engines, so existing Vault
//! clients work against it unchanged.
//!
//! Layers inside: [`http`] translates HTTP to transport-free requests;
//! `api` authenticates, checks the ACL, audits and routes them; the handlers
//! call the engines (KV, tokens, policies, audit), which hold no HTTP.
#![forbid(unsafe_code)]

mod api;
mod audit;
mod auth;
mod blocking;
pub mod config;
mod errors;
mod http;
mod limiter;
mod policies;
mod request;
pub mod rotation;
mod serve;
mod state;
mod tls;

pub use audit::load_checkpoint;
pub use request::ApiError;
pub use serve::{
    Dev, Listener, PendingUnseal, ServeError, Server, Started, dev_core, embedded_core, store_core,
};
pub use state::{Core, CoreSettings};
pub use tls::TlsError;
pub use tresor_tokens::Limits as TokenLimits;
