//! The end-to-end tests: one binary driving the real `tresor` binary (and
//! the servers and clients it works with) through one harness, [`util`].

mod util;

mod bao;
mod cli;
mod cli_remote;
mod crash;
mod delivery_aws;
mod delivery_k8s_import;
mod delivery_render;
mod delivery_vault;
mod kms_k8s;
mod kv_lifecycle;
mod platform;
mod platform_k8s;
mod platform_render;
mod platform_server;
mod postgres_migrate;
mod postgres_servers;
mod rotation;
mod rotation_k8s;
mod rotation_postgres;
mod rotation_server;
mod rotation_targets;
mod scan_cli;
mod seal_kms;
mod server;
mod server_hvac;
mod snapshot;
