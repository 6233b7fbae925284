//! `tresor server`: HashiCorp Vault's HTTP API over tresor's engines, so
//! existing Vault clients work against it unchanged.
//!
//! This crate is the edge: configuration, listening (TLS, limits on slow and
//! many clients), and [`http`], which reads each HTTP request once into the
//! canonical request that `tresor_logical` serves; nothing below it knows
//! HTTP.
#![forbid(unsafe_code)]

pub mod config;
mod http;
mod limiter;
pub mod rotation;
mod serve;
mod tls;
mod watch;

pub use serve::{
    Dev, Listener, PendingUnseal, ServeError, Server, Started, Timeouts, dev_node, embedded_node,
    store_node,
};
pub use tls::TlsError;
pub use tresor_audit::load_checkpoint;
pub use tresor_logical::{Node, NodeSettings};
pub use tresor_tokens::Limits as TokenLimits;
