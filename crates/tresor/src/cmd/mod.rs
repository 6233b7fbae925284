#[cfg(feature = "scan")]
pub mod scan;
