//! The token store: Vault-style service tokens for `tresor server`.
//!
//! A token (`tvs.` + 43 base64url characters from 32 random bytes) is never
//! stored. Its records live behind the barrier under an HMAC-SHA256 of the
//! token, keyed by a per-store salt (`sys/token/salt`, itself encrypted):
//! - `sys/token/id/<hash>`: the token's properties;
//! - `sys/token/accessor/<hmac of accessor>`: the accessor and the hash;
//! - `sys/token/parent/<parent hash>/<child hash>`: the tree, for cascades;
//! - `sys/token/expiry/<unix seconds, 20 digits>/<hash>`: the expiry index
//!   `tidy` walks in time order, page by page;
//! - `sys/token/revoking/<hash>`: a revocation whose descendants are still
//!   being removed (or re-parented).
//!
//! Every change is a conditional write on the stamps of the records read, so
//! concurrent servers on one store stay consistent (a use count is never
//! over-spent). A token is valid only while it and every ancestor exist and
//! are unexpired, so a revoked or expired token refuses its whole subtree at
//! once, even before `tidy` or the rest of a cascade has removed it.
//!
//! # Crash behaviour
//! Each storage transaction is atomic; operations spanning several leave a
//! marker first, so nothing is ever half-valid:
//! - `create`, `create_root`, `renew`, consuming a use: one transaction each;
//!   all or nothing.
//! - `revoke` (and the last use, and `tidy` of an expired token): the token's
//!   records go together with a `revoking/` marker written in the same
//!   transaction; its descendants are then removed one by one, and the marker
//!   last. A crash in between leaves descendants on disk, refused (their
//!   ancestor is gone), and `tidy` finishes the removal.
//! - `revoke_orphan`: the marker is written first, then children are
//!   re-parented one by one (each still valid throughout), then the token is
//!   removed, then the marker. `tidy` resumes from wherever it stopped.
//!
//! See `docs/tokens.md` for the model and the rules taken from Vault.
#![forbid(unsafe_code)]

mod entry;
mod error;
mod secret;
mod store;

#[cfg(test)]
mod tests;

pub use entry::{Clock, CreateRequest, Limits, SystemClock, TokenEntry, TokenView};
pub use error::TokenError;
pub use secret::{Accessor, TOKEN_PREFIX, Token};
pub use store::{AccessorPage, TokenStore};
