//! tresor server's core, without HTTP.
//!
//! The edge builds one canonical [`tresor_request::Request`] per request and
//! hands it to [`handle`]: the unauthenticated `sys/` endpoints, then the
//! token, the route, the ACL, the audit log and the handler, all on that one
//! value (see [`pipeline`]). Answers are [`Response`]s, failures [`Error`]s;
//! the edge alone turns them into HTTP.
#![forbid(unsafe_code)]

mod auth;
mod backend;
mod blocking;
mod error;
mod node;
mod params;
pub mod pipeline;
mod response;
mod router;

pub use backend::sys::VERSION;
pub use error::{Error, Result};
pub use node::{Initialized, Node, NodeSettings, Unsealed};
pub use pipeline::{Outcome, Refused, audit_refused, handle, reads_only};
pub use response::{Envelope, Response};
