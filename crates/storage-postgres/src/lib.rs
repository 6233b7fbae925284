//! PostgreSQL storage for tresor: several servers on one database.
//!
//! [`Postgres`] implements [`tresor_storage::Backend`] over one table,
//! `tresor_kv (key text COLLATE "C" PRIMARY KEY, value bytea)`. The database
//! only ever sees storage keys and ciphertext (the barrier encrypts above).
//!
//! The trait is synchronous and the server calls it from blocking threads, so
//! the backend owns a small tokio runtime that drives a pool of
//! tokio-postgres connections; every call is bounded by a timeout and answers
//! a [`StorageError`] naming the database (never its password) when the
//! database cannot be reached.
//!
//! A conditional transaction is one call of the `tresor_commit` SQL function:
//! it takes a transaction-scoped advisory lock on every key the transaction
//! names (conditions and writes, in a fixed order), then checks the
//! conditions and writes. Holding every lock until commit makes conflicting
//! transactions run one after the other, including conditions on keys that
//! are absent (which no row lock could cover), so no update is lost and no
//! phantom insert slips between a check and a write.
#![forbid(unsafe_code)]

mod backend;
mod schema;
mod tls;
mod url;

pub use backend::{Options, Postgres};
pub use schema::SCHEMA_VERSION;
pub use tresor_storage::StorageError;
