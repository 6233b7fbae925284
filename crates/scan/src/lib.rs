//! `tresor scan`: finds committed credentials in working trees, staged
//! changes, standard input and git history.
//!
//! One Aho-Corasick pass selects the rules whose keywords occur, their regexes
//! run only around those hits, and placeholder, reference and entropy filters
//! decide last. Files and blobs are scanned in parallel and streamed in
//! bounded chunks.
#![forbid(unsafe_code)]

mod baseline;
mod checks;
mod config;
mod engine;
mod error;
mod filter;
mod finding;
mod git;
mod hook;
mod keywords;
mod report;
mod rules;
mod scanner;
mod stream;

pub use baseline::Baseline;
pub use config::{Config, FILE_NAME as CONFIG_FILE};
pub use error::ScanError;
pub use finding::{Commit, Finding};
pub use hook::install as install_hook;
pub use report::{Format, sarif, write as write_report};
pub use rules::{RuleSpec, Severity, builtin as builtin_rules};
pub use scanner::{History, Refs, Report, Scanner, Target};
