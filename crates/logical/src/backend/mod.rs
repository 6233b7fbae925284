//! The backends requests are routed to, each a table of endpoints.

pub(crate) mod kv;
pub(crate) mod kv1;
pub(crate) mod sys;
pub(crate) mod token;
pub(crate) mod transit;
