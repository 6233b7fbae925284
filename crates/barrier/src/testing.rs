//! For other crates' tests: a barrier ready to use, without ceremony.

use crate::{Barrier, SealKind, UnsealKey};
use std::sync::Arc;
use tresor_storage::Backend;

/// A barrier over `storage`, initialized with a throwaway key and unsealed.
pub fn unsealed(storage: Arc<dyn Backend>) -> Arc<Barrier> {
    initialized(storage, &UnsealKey::generate())
}

/// Two barriers over `storage`, both unsealed: two servers sharing a store.
pub fn unsealed_pair(storage: Arc<dyn Backend>) -> (Arc<Barrier>, Arc<Barrier>) {
    let key = UnsealKey::generate();
    let first = initialized(Arc::clone(&storage), &key);
    let second = Arc::new(Barrier::new(storage));
    second
        .unseal(&key)
        .expect("the key just made opens the store");
    (first, second)
}

fn initialized(storage: Arc<dyn Backend>, key: &UnsealKey) -> Arc<Barrier> {
    let barrier = Arc::new(Barrier::new(storage));
    barrier
        .initialize(
            SealKind::Shamir {
                shares: 1,
                threshold: 1,
            },
            key,
            &[],
        )
        .expect("a fresh backend initializes");
    barrier
}
