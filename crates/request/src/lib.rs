//! The one request tresor's server works on.
//!
//! The HTTP edge calls [`Request::from_raw`] exactly once per request: it
//! decides the [`Operation`] (Vault's rules for `LIST` and `?list=true`), the
//! canonical path (decoded once; empty segments dropped; `.`, `..`, control
//! characters and whitespace around a segment refused), and the parameters
//! (the query string for reads, lists and deletes; the body for writes). The
//! ACL, the parameter constraints, the audit log, the router and the handlers
//! all see this value and nothing else, so none of them can read a request
//! differently from another. `docs/security.md` states the rules and why.
#![forbid(unsafe_code)]

mod error;
mod operation;
mod parse;
mod request;

pub use error::RequestError;
pub use operation::Operation;
pub use parse::{RawRequest, parse_duration};
pub use request::{ClientToken, Request};
