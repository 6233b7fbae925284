//! `tresor scan`: finds committed credentials in working trees, staged
//! changes, standard input and git history.
#![forbid(unsafe_code)]

mod checks;
mod engine;
mod error;
mod filter;
mod rules;
mod stream;

pub use error::ScanError;
