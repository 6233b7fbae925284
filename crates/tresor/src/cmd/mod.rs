pub mod audit;
pub mod kv;
pub mod operator;
#[cfg(feature = "scan")]
pub mod scan;
pub mod secrets;
pub mod server;
