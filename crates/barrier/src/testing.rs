//! For other crates' tests: a barrier ready to use, without ceremony.

use crate::{Barrier, SealKind, UnsealKey};
use std::sync::Arc;
use tresor_storage::Backend;

/// A barrier over `storage`, initialized with a throwaway key and unsealed.
pub fn unsealed(storage: Arc<dyn Backend>) -> Arc<Barrier> {
    let barrier = Arc::new(Barrier::new(storage));
    barrier
        .initialize(
            SealKind::Shamir {
                shares: 1,
                threshold: 1,
            },
            &UnsealKey::generate(),
            &[],
        )
        .expect("a fresh backend initializes");
    barrier
}
