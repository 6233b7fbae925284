use crate::{
    Accessor, Clock, CreateRequest, Limits, TOKEN_PREFIX, Token, TokenEntry, TokenError, TokenStore,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tresor_barrier::Barrier;
use tresor_storage::{Backend, Memory, Outcome, StorageError, Transaction};

const HOUR: Duration = Duration::from_secs(3600);

struct TestClock(AtomicU64);

impl TestClock {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// Memory storage that records the keys read and can be told to fail every
/// commit after a number of them (a crash, as far as the caller can tell).
#[derive(Default)]
struct Recording {
    inner: Memory,
    reads: Mutex<Vec<String>>,
    listed: AtomicUsize,
    commits_left: Mutex<Option<usize>>,
}

impl Backend for Recording {
    fn kind(&self) -> &'static str {
        "recording"
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.reads.lock().unwrap().push(key.to_owned());
        self.inner.get(key)
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError> {
        let entries = self.inner.list(prefix, after, limit)?;
        self.listed.fetch_add(entries.len(), Ordering::SeqCst);
        Ok(entries)
    }

    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError> {
        if let Some(left) = self.commits_left.lock().unwrap().as_mut() {
            if *left == 0 {
                return Err(StorageError::Backend("simulated crash".into()));
            }
            *left -= 1;
        }
        self.inner.commit(txn)
    }
}

impl Recording {
    /// Every key and value stored, as raw bytes.
    fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut folders = vec![String::new()];
        while let Some(prefix) = folders.pop() {
            for entry in self.inner.list(&prefix, None, None).unwrap() {
                let key = format!("{prefix}{entry}");
                if key.ends_with('/') {
                    folders.push(key);
                } else {
                    let value = self.inner.get(&key).unwrap().unwrap();
                    out.push((key, value));
                }
            }
        }
        out
    }

    fn keys_under(&self, prefix: &str) -> usize {
        self.dump()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .count()
    }
}

struct Fixture {
    storage: Arc<Recording>,
    barrier: Arc<Barrier>,
    clock: Arc<TestClock>,
    store: TokenStore,
}

impl Fixture {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        let storage = Arc::new(Recording::default());
        let barrier = tresor_barrier::testing::unsealed(storage.clone() as Arc<dyn Backend>);
        let clock = Arc::new(TestClock(AtomicU64::new(1_800_000_000)));
        let store = TokenStore::new(barrier.clone(), limits).with_clock(clock.clone());
        Self {
            storage,
            barrier,
            clock,
            store,
        }
    }

    /// Another server on the same storage.
    fn other_store(&self) -> TokenStore {
        TokenStore::new(self.barrier.clone(), self.store.limits()).with_clock(self.clock.clone())
    }

    fn root(&self) -> (Token, TokenEntry) {
        self.store.create_root(None).unwrap()
    }

    fn child(&self, parent: &TokenEntry, policies: &[&str]) -> (Token, TokenEntry) {
        self.store.create(Some(parent), request(policies)).unwrap()
    }

    fn valid(&self, token: &Token) -> bool {
        self.store.lookup(token).unwrap().is_some()
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

fn request(policies: &[&str]) -> CreateRequest {
    CreateRequest {
        policies: policies.iter().map(|p| p.to_string()).collect(),
        ..CreateRequest::default()
    }
}

#[test]
fn tokens_and_accessors_look_like_vaults() {
    let f = Fixture::new();
    let (token, entry) = f.root();
    let text = token.expose();
    assert!(text.starts_with(TOKEN_PREFIX));
    assert_eq!(text.len(), TOKEN_PREFIX.len() + 43);
    assert!(
        text[TOKEN_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    let accessor = entry.accessor();
    assert_eq!(accessor.expose().len(), 24);
    assert!(accessor.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    let (other, _) = f.root();
    assert_ne!(token.expose(), other.expose());
}

#[test]
fn create_lookup_renew_revoke() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&["app"]);
    req.ttl = HOUR;
    req.meta.insert("team".into(), "ml".into());
    req.display_name = "ci job".into();
    let (token, created) = f.store.create(Some(&root), req).unwrap();
    assert_eq!(created.policies(), ["app", "default"]);
    assert_eq!(created.display_name(), "token-ci-job");
    assert_eq!(created.ttl(f.now()), HOUR);
    assert!(!created.is_orphan());

    let found = f.store.lookup(&token).unwrap().unwrap();
    assert_eq!(found.meta()["team"], "ml");
    let by_accessor = f
        .store
        .lookup_accessor(&created.accessor())
        .unwrap()
        .unwrap();
    assert_eq!(by_accessor.accessor(), created.accessor());

    f.clock.advance(Duration::from_secs(1800));
    assert_eq!(
        f.store.lookup(&token).unwrap().unwrap().ttl(f.now()),
        HOUR / 2
    );
    let renewed = f.store.renew(&token, 2 * HOUR).unwrap();
    assert_eq!(renewed.ttl(f.now()), 2 * HOUR);
    // No increment: the token's own creation TTL.
    let renewed = f
        .store
        .renew_accessor(&created.accessor(), Duration::ZERO)
        .unwrap();
    assert_eq!(renewed.ttl(f.now()), HOUR);
    // The expiry index follows renewals: one entry per token.
    assert_eq!(f.storage.keys_under("sys/token/expiry/"), 1);

    assert!(f.store.revoke(&token).unwrap());
    assert!(!f.valid(&token));
    assert!(
        f.store
            .lookup_accessor(&created.accessor())
            .unwrap()
            .is_none()
    );
    assert!(!f.store.revoke(&token).unwrap());
    assert!(matches!(
        f.store.renew(&token, HOUR),
        Err(TokenError::NotFound)
    ));
    assert!(
        f.store
            .lookup(&Token::new("tvs.not-a-token"))
            .unwrap()
            .is_none()
    );
    for prefix in [
        "sys/token/expiry/",
        "sys/token/parent/",
        "sys/token/revoking/",
    ] {
        assert_eq!(f.storage.keys_under(prefix), 0, "{prefix}");
    }
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
    assert_eq!(f.storage.keys_under("sys/token/accessor/"), 1);
}

#[test]
fn expired_tokens_are_refused_before_any_tidy() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&[]);
    req.ttl = HOUR;
    let (parent, parent_entry) = f.store.create(Some(&root), req.clone()).unwrap();
    req.ttl = 10 * HOUR;
    let (child, _) = f.store.create(Some(&parent_entry), req).unwrap();
    f.clock.advance(HOUR);
    assert!(!f.valid(&parent));
    // The child's own TTL is not over, but its parent's life ended it.
    assert!(!f.valid(&child));
    assert!(matches!(
        f.store.create(Some(&parent_entry), request(&[])),
        Err(TokenError::ParentInvalid)
    ));
    assert_eq!(f.store.tidy(f.now()).unwrap(), 2);
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
}

#[test]
fn revoking_cascades_over_a_three_level_tree() {
    let f = Fixture::new();
    let (root_token, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    let (b1, b1_entry) = f.child(&a_entry, &[]);
    let (b2, _) = f.child(&a_entry, &[]);
    let (c, _) = f.child(&b1_entry, &[]);
    let (sibling, _) = f.child(&root, &[]);
    for t in [&a, &b1, &b2, &c, &sibling] {
        assert!(f.valid(t));
    }
    assert!(f.store.revoke(&a).unwrap());
    for t in [&a, &b1, &b2, &c] {
        assert!(!f.valid(t));
    }
    assert!(f.valid(&sibling) && f.valid(&root_token));
    // Only the root and the sibling are left, with the sibling's link.
    assert_eq!(f.storage.keys_under("sys/token/id/"), 2);
    assert_eq!(f.storage.keys_under("sys/token/accessor/"), 2);
    assert_eq!(f.storage.keys_under("sys/token/parent/"), 1);
    assert_eq!(f.storage.keys_under("sys/token/revoking/"), 0);
}

#[test]
fn revoke_orphan_keeps_the_children_as_orphans() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    let (b, b_entry) = f.child(&a_entry, &[]);
    let (c, _) = f.child(&b_entry, &[]);
    assert!(f.store.revoke_orphan(&a).unwrap());
    assert!(!f.valid(&a));
    let b_now = f.store.lookup(&b).unwrap().unwrap();
    assert!(b_now.is_orphan());
    let c_now = f.store.lookup(&c).unwrap().unwrap();
    assert!(!c_now.is_orphan());
    // The orphan still heads its own subtree.
    assert!(f.store.revoke(&b).unwrap());
    assert!(!f.valid(&c));
    assert!(!f.store.revoke_orphan(&a).unwrap());
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
    assert_eq!(f.storage.keys_under("sys/token/revoking/"), 0);
}

#[test]
fn revoke_by_accessor_cascades_too() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    let (b, _) = f.child(&a_entry, &[]);
    assert!(f.store.revoke_accessor(&a_entry.accessor()).unwrap());
    assert!(!f.valid(&a) && !f.valid(&b));
    assert!(!f.store.revoke_accessor(&Accessor::new("nope")).unwrap());
}

#[test]
fn racing_threads_never_get_more_uses_than_granted() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&[]);
    req.num_uses = 20;
    let (token, _) = f.store.create(Some(&root), req).unwrap();
    let stores: Vec<TokenStore> = (0..8).map(|_| f.other_store()).collect();
    let granted = AtomicUsize::new(0);
    let last_uses = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for store in &stores {
            let (token, granted, last_uses) = (&token, &granted, &last_uses);
            s.spawn(move || {
                while let Some(entry) = store.use_token(token).unwrap() {
                    granted.fetch_add(1, Ordering::SeqCst);
                    if entry.was_last_use() {
                        last_uses.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::SeqCst), 20);
    assert_eq!(last_uses.load(Ordering::SeqCst), 1);
    assert!(!f.valid(&token));
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
}

#[test]
fn uses_count_down_and_unlimited_tokens_are_not_written() {
    let f = Fixture::new();
    let (root_token, root) = f.root();
    let mut req = request(&[]);
    req.num_uses = 2;
    let (token, _) = f.store.create(Some(&root), req).unwrap();
    let first = f.store.use_token(&token).unwrap().unwrap();
    assert_eq!((first.num_uses(), first.was_last_use()), (1, false));
    assert_eq!(f.store.lookup(&token).unwrap().unwrap().num_uses(), 1);
    let second = f.store.use_token(&token).unwrap().unwrap();
    assert_eq!((second.num_uses(), second.was_last_use()), (0, true));
    assert!(f.store.use_token(&token).unwrap().is_none());
    let stored = f.storage.dump();
    f.store.use_token(&root_token).unwrap().unwrap();
    assert_eq!(f.storage.dump(), stored);
}

#[test]
fn periodic_tokens_renew_to_their_period_forever() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&[]);
    req.period = HOUR;
    req.ttl = 5 * HOUR;
    let (_, parent) = f.store.create(Some(&root), request(&["app"])).unwrap();
    assert!(matches!(
        f.store.create(Some(&parent), req.clone()),
        Err(TokenError::PeriodNeedsSudo)
    ));
    req.caller_is_root_or_sudo = true;
    let (token, entry) = f.store.create(Some(&root), req).unwrap();
    assert_eq!(entry.ttl(f.now()), HOUR);
    assert_eq!(entry.period(), HOUR);
    // Far past the 32-day system max: a periodic token lives while renewed.
    for _ in 0..40 * 24 {
        f.clock.advance(Duration::from_secs(3000));
        let renewed = f.store.renew(&token, 10 * HOUR).unwrap();
        assert_eq!(renewed.ttl(f.now()), HOUR);
    }
    f.clock.advance(HOUR);
    assert!(!f.valid(&token));
}

#[test]
fn explicit_max_ttl_caps_renewals_even_for_periodic_tokens() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&[]);
    req.ttl = HOUR;
    req.explicit_max_ttl = Duration::from_secs(5400);
    let (token, _) = f.store.create(Some(&root), req.clone()).unwrap();
    f.clock.advance(Duration::from_secs(3000));
    let renewed = f.store.renew(&token, HOUR).unwrap();
    assert_eq!(renewed.ttl(f.now()), Duration::from_secs(2400));
    f.clock.advance(Duration::from_secs(2400));
    assert!(!f.valid(&token));

    req.period = HOUR;
    req.caller_is_root_or_sudo = true;
    let (periodic, _) = f.store.create(Some(&root), req).unwrap();
    f.clock.advance(Duration::from_secs(3000));
    let renewed = f.store.renew(&periodic, Duration::ZERO).unwrap();
    assert_eq!(renewed.ttl(f.now()), Duration::from_secs(2400));
    f.clock.advance(Duration::from_secs(2399));
    assert!(matches!(
        f.store.renew(&periodic, HOUR).map(|e| e.ttl(f.now())),
        Ok(d) if d == Duration::from_secs(1)
    ));
}

#[test]
fn the_system_max_ttl_bounds_ordinary_tokens() {
    let f = Fixture::with_limits(Limits {
        default_ttl: HOUR,
        max_ttl: 2 * HOUR,
    });
    let (_, root) = f.root();
    let (token, entry) = f.child(&root, &["app"]);
    assert_eq!(entry.ttl(f.now()), HOUR);
    let mut long = request(&["app"]);
    long.ttl = 10 * HOUR;
    let (_, capped) = f.store.create(Some(&root), long).unwrap();
    assert_eq!(capped.ttl(f.now()), 2 * HOUR);
    f.clock.advance(Duration::from_secs(3000));
    assert_eq!(f.store.renew(&token, HOUR).unwrap().ttl(f.now()), HOUR);
    f.clock.advance(Duration::from_secs(3000));
    assert_eq!(
        f.store.renew(&token, HOUR).unwrap().ttl(f.now()),
        Duration::from_secs(1200)
    );
    f.clock.advance(Duration::from_secs(1200));
    assert!(!f.valid(&token));
}

#[test]
fn renewal_refusals() {
    let f = Fixture::new();
    let (root_token, root) = f.root();
    assert!(matches!(
        f.store.renew(&root_token, HOUR),
        Err(TokenError::NotRenewable)
    ));
    let mut req = request(&[]);
    req.renewable = false;
    let (fixed, _) = f.store.create(Some(&root), req).unwrap();
    assert!(matches!(
        f.store.renew(&fixed, HOUR),
        Err(TokenError::NotRenewable)
    ));
    // A root-policy child without TTL never expires: nothing to renew.
    let (forever, entry) = f.child(&root, &[]);
    assert_eq!(entry.policies(), ["root"]);
    assert_eq!(entry.expire_time(), None);
    assert!(!entry.renewable());
    assert!(matches!(
        f.store.renew(&forever, HOUR),
        Err(TokenError::NotRenewable)
    ));
}

#[test]
fn policy_rules() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (_, parent) = f.child(&root, &["a", "b"]);
    assert_eq!(parent.policies(), ["a", "b", "default"]);
    let (_, child) = f.child(&parent, &["A ", "default"]);
    assert_eq!(child.policies(), ["a", "default"]);
    let (_, inherited) = f.child(&parent, &[]);
    assert_eq!(inherited.policies(), ["a", "b", "default"]);
    match f.store.create(Some(&parent), request(&["a", "c", "d"])) {
        Err(TokenError::PoliciesNotSubset(missing)) => assert_eq!(missing, ["c", "d"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.store.create(Some(&parent), request(&["root"])),
        Err(TokenError::RootNeedsRootParent)
    ));
    let mut sudo = request(&["c"]);
    sudo.caller_is_root_or_sudo = true;
    let (_, widened) = f.store.create(Some(&parent), sudo.clone()).unwrap();
    assert_eq!(widened.policies(), ["c", "default"]);
    sudo.policies = vec!["root".into()];
    assert!(matches!(
        f.store.create(Some(&parent), sudo),
        Err(TokenError::RootNeedsRootParent)
    ));
    let mut bare = request(&["a"]);
    bare.no_default_policy = true;
    let (_, bare) = f.store.create(Some(&parent), bare).unwrap();
    assert_eq!(bare.policies(), ["a"]);
    let (_, root_child) = f.child(&root, &["root", "x"]);
    assert_eq!(root_child.policies(), ["root"]);
    assert!(matches!(
        f.store.create(None, request(&["root"])),
        Err(TokenError::RootNeedsRootParent)
    ));
}

#[test]
fn orphans_need_sudo_or_the_orphan_endpoint() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (parent_token, parent) = f.child(&root, &["a"]);
    let mut req = request(&["a"]);
    req.no_parent = true;
    assert!(matches!(
        f.store.create(Some(&parent), req.clone()),
        Err(TokenError::OrphanNeedsSudo)
    ));
    req.caller_is_root_or_sudo = true;
    let (sudo_orphan, entry) = f.store.create(Some(&parent), req).unwrap();
    assert!(entry.is_orphan());
    let mut endpoint = request(&["a"]);
    endpoint.orphan_endpoint = true;
    let (endpoint_orphan, entry) = f.store.create(Some(&parent), endpoint.clone()).unwrap();
    assert!(entry.is_orphan());
    assert_eq!(entry.path(), "auth/token/create-orphan");
    // The orphan endpoint does not lift the subset rule.
    endpoint.policies = vec!["b".into()];
    assert!(f.store.create(Some(&parent), endpoint).is_err());
    f.store.revoke(&parent_token).unwrap();
    assert!(f.valid(&sudo_orphan) && f.valid(&endpoint_orphan));
}

#[test]
fn chosen_root_ids() {
    let f = Fixture::new();
    let id = Token::new("root");
    let (token, entry) = f.store.create_root(Some(&id)).unwrap();
    assert_eq!(token.expose(), "root");
    assert!(entry.is_root() && entry.is_orphan());
    assert!(matches!(
        f.store.create_root(Some(&id)),
        Err(TokenError::IdInUse)
    ));
    for bad in ["", "has space", &"x".repeat(300)] {
        assert!(matches!(
            f.store.create_root(Some(&Token::new(bad))),
            Err(TokenError::InvalidId(_))
        ));
    }
    f.store.revoke(&token).unwrap();
    f.store.create_root(Some(&id)).unwrap();
    assert!(f.valid(&id));
}

#[test]
fn list_accessors_pages() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut expected = BTreeSet::from([root.accessor().expose().to_owned()]);
    for _ in 0..9 {
        expected.insert(f.child(&root, &[]).1.accessor().expose().to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = f.store.list_accessors(after.as_deref(), 3).unwrap();
        pages += 1;
        seen.extend(page.accessors.iter().map(|a| a.expose().to_owned()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);
}

#[test]
fn tidy_reads_only_the_expired_part_of_the_index() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut expired = HashSet::new();
    let mut live = Vec::new();
    for i in 0..5000u64 {
        let mut req = request(&["app"]);
        // 100 short-lived tokens spread over 100 seconds, the rest later.
        req.ttl = if i % 50 == 0 {
            Duration::from_secs(60 + i / 50)
        } else {
            HOUR + Duration::from_secs(i)
        };
        let (token, entry) = f.store.create(Some(&root), req).unwrap();
        if i % 50 == 0 {
            expired.insert(entry.hash.clone());
        } else {
            live.push(token);
        }
    }
    f.clock.advance(Duration::from_secs(600));
    f.storage.reads.lock().unwrap().clear();
    f.storage.listed.store(0, Ordering::SeqCst);
    assert_eq!(f.store.tidy(f.now()).unwrap(), 100);
    let reads = std::mem::take(&mut *f.storage.reads.lock().unwrap());
    for key in &reads {
        if let Some(hash) = key.strip_prefix("sys/token/id/") {
            assert!(expired.contains(hash), "tidy read a live token: {key}");
        }
    }
    assert!(reads.len() <= 100 * 3, "{} reads", reads.len());
    // Listed entries: the expired folders and their entries, each
    // tidied token's (empty) children and the first later folders of a page.
    let listed = f.storage.listed.load(Ordering::SeqCst);
    assert!(listed <= 100 * 2 + 256 + 10, "{listed} entries listed");
    assert_eq!(f.storage.keys_under("sys/token/expiry/"), 4900);
    assert_eq!(f.storage.keys_under("sys/token/id/"), 4901);
    assert!(live.iter().take(50).all(|t| f.valid(t)));
    assert_eq!(f.store.tidy(f.now()).unwrap(), 0);
}

#[test]
fn tidy_removes_descendants_of_expired_tokens() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut req = request(&[]);
    req.ttl = HOUR;
    let (_, parent) = f.store.create(Some(&root), req.clone()).unwrap();
    req.ttl = 100 * HOUR;
    let (_, child) = f.store.create(Some(&parent), req.clone()).unwrap();
    f.store.create(Some(&child), req).unwrap();
    f.clock.advance(2 * HOUR);
    assert_eq!(f.store.tidy(f.now()).unwrap(), 3);
    // The salt, and the root token's record and accessor: nothing else.
    assert_eq!(f.storage.keys_under("sys/token/"), 3);
}

#[test]
fn tidy_finishes_a_revocation_cut_short() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    let mut descendants = Vec::new();
    for _ in 0..3 {
        let (b, b_entry) = f.child(&a_entry, &[]);
        descendants.push(b);
        descendants.push(f.child(&b_entry, &[]).0);
    }
    // The first commit (removing `a` and leaving the marker) lands; then the
    // process "dies".
    *f.storage.commits_left.lock().unwrap() = Some(2);
    assert!(f.store.revoke(&a).is_err());
    *f.storage.commits_left.lock().unwrap() = None;
    assert!(!f.valid(&a));
    assert!(descendants.iter().all(|t| !f.valid(t)));
    assert!(f.storage.keys_under("sys/token/id/") > 2);
    assert_eq!(f.storage.keys_under("sys/token/revoking/"), 1);
    let fresh = f.other_store();
    assert_eq!(fresh.tidy(f.now()).unwrap(), 5);
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
    assert_eq!(f.storage.keys_under("sys/token/parent/"), 0);
    assert_eq!(f.storage.keys_under("sys/token/revoking/"), 0);
}

#[test]
fn tidy_finishes_an_orphaning_cut_short() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    let children: Vec<Token> = (0..4).map(|_| f.child(&a_entry, &[]).0).collect();
    // Marker, then two re-parentings, then the "crash".
    *f.storage.commits_left.lock().unwrap() = Some(3);
    assert!(f.store.revoke_orphan(&a).is_err());
    *f.storage.commits_left.lock().unwrap() = None;
    // Nothing was refused meanwhile: the parent and all children still work.
    assert!(f.valid(&a) && children.iter().all(|t| f.valid(t)));
    assert_eq!(f.store.tidy(f.now()).unwrap(), 1);
    assert!(!f.valid(&a));
    for child in &children {
        assert!(f.store.lookup(child).unwrap().unwrap().is_orphan());
    }
    assert_eq!(f.storage.keys_under("sys/token/revoking/"), 0);
}

#[test]
fn the_salt_is_created_once_under_concurrent_first_use() {
    let f = Fixture::new();
    let stores: Vec<TokenStore> = (0..8).map(|_| f.other_store()).collect();
    let tokens: Vec<Token> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .map(|store| s.spawn(move || store.create_root(None).unwrap().0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let later = f.other_store();
    assert!(tokens.iter().all(|t| later.lookup(t).unwrap().is_some()));
    assert_eq!(f.storage.keys_under("sys/token/salt"), 1);
}

#[test]
fn neither_tokens_nor_accessors_reach_storage() {
    let f = Fixture::new();
    let (root_token, root) = f
        .store
        .create_root(Some(&Token::new("dev-root-token-xyz")))
        .unwrap();
    let mut secrets = vec![
        root_token.expose().to_owned(),
        root.accessor().expose().to_owned(),
    ];
    for _ in 0..20 {
        let (token, entry) = f.child(&root, &[]);
        secrets.push(token.expose().to_owned());
        secrets.push(token.expose()[TOKEN_PREFIX.len()..].to_owned());
        secrets.push(entry.accessor().expose().to_owned());
    }
    for (key, value) in f.storage.dump() {
        for secret in &secrets {
            let needle = secret.as_bytes();
            assert!(!key.contains(secret.as_str()), "{key}");
            assert!(
                !value.windows(needle.len()).any(|w| w == needle),
                "a secret is readable under {key}"
            );
        }
    }
}

#[test]
fn debug_output_is_redacted() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (token, entry) = f.child(&root, &["app"]);
    let view = entry.view(f.now(), Some(&token));
    let page = f.store.list_accessors(None, 10).unwrap();
    for text in [
        format!("{token:?}"),
        format!("{:?}", entry.accessor()),
        format!("{entry:?}"),
        format!("{view:?}"),
        format!("{page:?}"),
    ] {
        assert!(!text.contains(token.expose()), "{text}");
        assert!(!text.contains(entry.accessor().expose()), "{text}");
        assert!(!text.contains(root.accessor().expose()), "{text}");
    }
}

#[test]
fn the_view_has_vaults_lookup_shape() {
    let f = Fixture::new();
    let (root_token, root) = f.root();
    let mut req = request(&["app"]);
    req.ttl = HOUR;
    req.num_uses = 3;
    let (token, entry) = f.store.create(Some(&root), req).unwrap();
    f.clock.advance(Duration::from_secs(60));
    let json = serde_json::to_value(entry.view(f.now(), Some(&token))).unwrap();
    let created = 1_800_000_000u64;
    assert_eq!(json["id"], token.expose());
    assert_eq!(json["accessor"], entry.accessor().expose());
    assert_eq!(json["creation_time"], created);
    assert_eq!(json["creation_ttl"], 3600);
    assert_eq!(json["ttl"], 3540);
    assert_eq!(json["expire_time"], "2027-01-15T09:00:00Z");
    assert_eq!(json["issue_time"], "2027-01-15T08:00:00Z");
    assert_eq!(json["policies"], serde_json::json!(["app", "default"]));
    assert_eq!(json["num_uses"], 3);
    assert_eq!(json["orphan"], false);
    assert_eq!(json["renewable"], true);
    assert_eq!(json["type"], "service");
    assert_eq!(json["path"], "auth/token/create");
    assert_eq!(json["display_name"], "token");
    assert_eq!(json["explicit_max_ttl"], 0);
    assert_eq!(json["period"], 0);
    assert_eq!(json["meta"], serde_json::json!({}));
    let by_accessor = serde_json::to_value(root.view(f.now(), None)).unwrap();
    assert_eq!(by_accessor["id"], "");
    assert_eq!(by_accessor["expire_time"], serde_json::Value::Null);
    assert_eq!(by_accessor["ttl"], 0);
    assert_eq!(by_accessor["orphan"], true);
    assert!(f.valid(&root_token));
}

#[test]
fn a_parent_revoked_after_lookup_cannot_create() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let (a, a_entry) = f.child(&root, &[]);
    f.store.revoke(&a).unwrap();
    assert!(matches!(
        f.store.create(Some(&a_entry), request(&[])),
        Err(TokenError::ParentInvalid)
    ));
    assert_eq!(f.storage.keys_under("sys/token/id/"), 1);
}

#[test]
fn tidy_pages_through_many_expired_seconds() {
    let f = Fixture::new();
    let (_, root) = f.root();
    for i in 0..600u64 {
        let mut req = request(&["app"]);
        req.ttl = Duration::from_secs(10 + i);
        f.store.create(Some(&root), req).unwrap();
    }
    // Expiring at +10 ..= +560 s: 551 tokens over 551 seconds, past a page.
    f.clock.advance(Duration::from_secs(560));
    assert_eq!(f.store.tidy(f.now()).unwrap(), 551);
    assert_eq!(f.storage.keys_under("sys/token/expiry/"), 49);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Create { parent: usize, ttl: u64, uses: u64 },
        Revoke(usize),
        RevokeOrphan(usize),
        Use(usize),
        Advance(u64),
        Tidy,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<usize>(), 1..120u64, 0..4u64)
                .prop_map(|(parent, ttl, uses)| Op::Create { parent, ttl, uses }),
            1 => any::<usize>().prop_map(Op::Revoke),
            1 => any::<usize>().prop_map(Op::RevokeOrphan),
            2 => any::<usize>().prop_map(Op::Use),
            2 => (0..60u64).prop_map(Op::Advance),
            1 => Just(Op::Tidy),
        ]
    }

    /// What the store should hold: per token, its parent, expiry (`None`:
    /// never), uses left and whether its record exists.
    struct Model {
        parent: Vec<Option<usize>>,
        expire: Vec<Option<u64>>,
        uses: Vec<u64>,
        exists: Vec<bool>,
        now: u64,
    }

    impl Model {
        fn valid(&self, i: usize) -> bool {
            self.exists[i]
                && self.expire[i].is_none_or(|e| e > self.now)
                && self.parent[i].is_none_or(|p| self.valid(p))
        }

        /// Removes `i` and every descendant; returns how many existed.
        fn remove_tree(&mut self, i: usize) -> usize {
            let mut removed = usize::from(std::mem::replace(&mut self.exists[i], false));
            for child in 0..self.parent.len() {
                if self.parent[child] == Some(i) && self.exists[child] {
                    removed += self.remove_tree(child);
                }
            }
            removed
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn the_store_matches_a_model(ops in proptest::collection::vec(op(), 1..40)) {
            let f = Fixture::new();
            let (root_token, root) = f.root();
            let mut tokens = vec![root_token];
            let mut entries = vec![root];
            let mut m = Model {
                parent: vec![None],
                expire: vec![None],
                uses: vec![0],
                exists: vec![true],
                now: 1_800_000_000,
            };
            for op in ops {
                match op {
                    Op::Create { parent, ttl, uses } => {
                        let p = parent % tokens.len();
                        let mut req = request(&["app"]);
                        req.ttl = Duration::from_secs(ttl);
                        req.num_uses = uses;
                        let result = f.store.create(Some(&entries[p]), req);
                        if m.valid(p) && m.uses[p] > 0 {
                            prop_assert!(matches!(result, Err(TokenError::UseLimitedParent)));
                        } else if m.valid(p) {
                            let (token, entry) = result.unwrap();
                            tokens.push(token);
                            entries.push(entry);
                            m.parent.push(Some(p));
                            m.expire.push(Some(m.now + ttl));
                            m.uses.push(uses);
                            m.exists.push(true);
                        } else {
                            prop_assert!(matches!(result, Err(TokenError::ParentInvalid)));
                        }
                    }
                    Op::Revoke(i) => {
                        let i = i % tokens.len();
                        let existed = m.exists[i];
                        m.remove_tree(i);
                        prop_assert_eq!(f.store.revoke(&tokens[i]).unwrap(), existed);
                    }
                    Op::RevokeOrphan(i) => {
                        let i = i % tokens.len();
                        let existed = m.exists[i];
                        if existed {
                            m.exists[i] = false;
                            for p in m.parent.iter_mut().filter(|p| **p == Some(i)) {
                                *p = None;
                            }
                        }
                        prop_assert_eq!(f.store.revoke_orphan(&tokens[i]).unwrap(), existed);
                    }
                    Op::Use(i) => {
                        let i = i % tokens.len();
                        let valid = m.valid(i);
                        let used = f.store.use_token(&tokens[i]).unwrap();
                        prop_assert_eq!(used.is_some(), valid);
                        match m.uses[i] {
                            _ if !valid => {}
                            0 => {}
                            1 => {
                                m.remove_tree(i);
                            }
                            n => m.uses[i] = n - 1,
                        }
                    }
                    Op::Advance(secs) => {
                        f.clock.advance(Duration::from_secs(secs));
                        m.now += secs;
                    }
                    Op::Tidy => {
                        let mut expected = 0;
                        for i in 0..tokens.len() {
                            if m.exists[i] && m.expire[i].is_some_and(|e| e <= m.now) {
                                expected += m.remove_tree(i);
                            }
                        }
                        prop_assert_eq!(f.store.tidy(f.now()).unwrap(), expected);
                    }
                }
                for (i, token) in tokens.iter().enumerate() {
                    let found = f.store.lookup(token).unwrap();
                    prop_assert_eq!(found.is_some(), m.valid(i), "token {}", i);
                    if let Some(found) = found {
                        prop_assert_eq!(found.is_orphan(), m.parent[i].is_none());
                        prop_assert_eq!(found.num_uses(), m.uses[i]);
                    }
                }
            }
            let existing = m.exists.iter().filter(|e| **e).count();
            prop_assert_eq!(f.storage.keys_under("sys/token/id/"), existing);
            prop_assert_eq!(f.storage.keys_under("sys/token/revoking/"), 0);
        }
    }
}

#[test]
fn another_servers_revocation_and_spent_uses_are_seen_through_the_parsed_cache() {
    let f = Fixture::new();
    let other = f.other_store();
    let (_, root) = f.root();
    let mut limited = request(&["app"]);
    limited.num_uses = 3;
    let (token, _) = f.store.create(Some(&root), limited).unwrap();
    // Both servers have parsed the record once.
    assert_eq!(f.store.lookup(&token).unwrap().unwrap().num_uses(), 3);
    assert_eq!(other.lookup(&token).unwrap().unwrap().num_uses(), 3);
    other.use_token(&token).unwrap().unwrap();
    assert_eq!(f.store.lookup(&token).unwrap().unwrap().num_uses(), 2);
    other.revoke(&token).unwrap();
    assert!(f.store.lookup(&token).unwrap().is_none());
    assert!(f.store.use_token(&token).unwrap().is_none());
}

#[test]
fn a_use_limited_token_cannot_create_children() {
    let f = Fixture::new();
    let (_, root) = f.root();
    let mut limited = request(&["app"]);
    limited.num_uses = 5;
    let (token, entry) = f.store.create(Some(&root), limited).unwrap();
    assert!(matches!(
        f.store.create(Some(&entry), request(&["app"])),
        Err(TokenError::UseLimitedParent)
    ));
    let mut orphan = request(&["app"]);
    orphan.orphan_endpoint = true;
    assert!(matches!(
        f.store.create(Some(&entry), orphan),
        Err(TokenError::UseLimitedParent)
    ));
    // The refusal spends nothing beyond the request's own use.
    assert_eq!(f.store.lookup(&token).unwrap().unwrap().num_uses(), 5);
    // An unlimited token still can.
    let (_, free) = f.child(&root, &["app"]);
    f.store.create(Some(&free), request(&["app"])).unwrap();
}
