//! Delivery of a platform's secrets to Kubernetes: manifests byte-identical
//! to kubectl's, RBAC and env snippets per consumer, and server-side apply
//! to a cluster with restarts of the consumers whose Secret changed.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod import;
pub mod providers;
pub mod render;
pub mod yaml;

pub use cluster::{
    ApplyOptions, Finding, KubeError, Report, SecretValues, apply, connect, doctor, fix, runtime,
};
