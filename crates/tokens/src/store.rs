use crate::entry::{Clock, CreateRequest, Limits, StoredToken, SystemClock, TokenEntry, unix};
use crate::error::TokenError;
use crate::secret::{Accessor, Token};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tresor_barrier::{Barrier, ParsedCache, Stamp, WriteSet};
use zeroize::Zeroizing;

const SALT_KEY: &str = "sys/token/salt";
const ID: &str = "sys/token/id/";
const ACCESSOR: &str = "sys/token/accessor/";
const PARENT: &str = "sys/token/parent/";
const EXPIRY: &str = "sys/token/expiry/";
const REVOKING: &str = "sys/token/revoking/";

const SALT_LEN: usize = 32;

/// How often a write re-reads and retries when another writer changed the
/// same records between its read and its commit.
const ATTEMPTS: usize = 32;

/// Retries for consuming a use: every concurrent request with the same
/// limited-use token contends on one record, and each must get its answer.
const USE_ATTEMPTS: usize = 10_000;

/// Keys read per listing page (expiry index, children, markers).
const PAGE: usize = 256;

/// A parent chain longer than this can only come from corrupted records.
const MAX_DEPTH: usize = 4096;

/// The longest chosen root token id accepted, in bytes.
const MAX_ID_LEN: usize = 256;

/// Left under `sys/token/revoking/<hash>` while a token's descendants are
/// being revoked (or re-parented), so that `tidy` can finish after a crash.
#[derive(Clone, Copy, Serialize, Deserialize)]
enum Marker {
    /// The token is gone; its whole subtree is to be removed.
    Revoke,
    /// Its children become orphans, then the token is removed.
    Orphan,
}

/// The record under `sys/token/accessor/<keyed hash of the accessor>`.
#[derive(Serialize, Deserialize)]
struct AccessorRecord {
    accessor: String,
    hash: String,
}

/// A page of `list_accessors`.
#[derive(Debug)]
pub struct AccessorPage {
    pub accessors: Vec<Accessor>,
    /// Pass as `after` for the next page; `None` after the last one. An
    /// opaque cursor (accessors are stored under keyed hashes).
    pub next: Option<String>,
}

struct Loaded {
    stored: StoredToken,
    stamp: Stamp,
}

/// A token that is valid now, with the stamps of its ancestors (all valid
/// too), which a child creation expects unchanged.
struct Valid {
    token: Loaded,
    ancestors: Vec<(String, Stamp)>,
}

/// The token store: every token of a server, behind its barrier.
pub struct TokenStore {
    barrier: Arc<Barrier>,
    limits: Limits,
    clock: Arc<dyn Clock>,
    salt: OnceLock<Zeroizing<Vec<u8>>>,
    /// Token records already parsed. Every load still reads the record, so
    /// a revocation or a spent use on any server sharing the store is seen
    /// at once; only decrypting and parsing an unchanged record are skipped.
    parsed: ParsedCache<StoredToken>,
}

impl TokenStore {
    pub fn new(barrier: Arc<Barrier>, limits: Limits) -> Self {
        Self {
            barrier,
            limits,
            clock: Arc::new(SystemClock),
            salt: OnceLock::new(),
            parsed: ParsedCache::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Creates a token. `parent` is the calling token (as returned by
    /// `lookup` or `use_token`); it is read again from the store, so a
    /// parent revoked meanwhile is refused. `None` is for tokens the server
    /// issues itself (never for a client's create request: use
    /// `orphan_endpoint` for `create-orphan`); such a token is an orphan and
    /// nothing restricts its policies but `root`, which only
    /// [`Self::create_root`] gives.
    pub fn create(
        &self,
        parent: Option<&TokenEntry>,
        request: CreateRequest,
    ) -> Result<(Token, TokenEntry), TokenError> {
        check_request(&request)?;
        for _ in 0..ATTEMPTS {
            let now = self.now();
            let valid = match parent {
                Some(p) => Some((
                    p.hash.as_str(),
                    self.load_valid(&p.hash, now)?
                        .ok_or(TokenError::ParentInvalid)?,
                )),
                None => None,
            };
            // A child would let a use-limited token escape its limit.
            if valid
                .as_ref()
                .is_some_and(|(_, v)| v.token.stored.num_uses > 0)
            {
                return Err(TokenError::UseLimitedParent);
            }
            let mut stored =
                self.plan(valid.as_ref().map(|(_, v)| &v.token.stored), &request, now)?;
            let token = Token::generate().map_err(TokenError::Random)?;
            let accessor = Accessor::generate().map_err(TokenError::Random)?;
            let hash = self.token_hash(&token)?;
            stored.accessor = accessor.expose().to_owned();
            let mut writes = WriteSet::new();
            if let Some((parent_hash, valid)) = valid
                .as_ref()
                .filter(|_| !(request.no_parent || request.orphan_endpoint))
            {
                stored.parent = Some((*parent_hash).to_owned());
                // A child is linked only while its whole ancestry is as
                // validated: a concurrent revocation makes this fail.
                writes.expect(&id_key(parent_hash), Some(&valid.token.stamp));
                for (ancestor, stamp) in &valid.ancestors {
                    writes.expect(&id_key(ancestor), Some(stamp));
                }
            }
            writes.expect(&id_key(&hash), None);
            writes.expect(&self.accessor_key(&stored.accessor)?, None);
            self.put_records(&mut writes, &hash, &stored)?;
            if self.barrier.commit(writes)?.applied() {
                let entry = TokenEntry {
                    hash,
                    stored,
                    last_use: false,
                };
                return Ok((token, entry));
            }
        }
        Err(TokenError::Contended)
    }

    /// Creates a root token: policy `root`, no expiry, no parent, not
    /// renewable. `id` chooses its text (a dev server's `--dev-root-token`);
    /// `None` generates one.
    pub fn create_root(&self, id: Option<&Token>) -> Result<(Token, TokenEntry), TokenError> {
        if let Some(id) = id {
            check_id(id.expose())?;
        }
        for _ in 0..ATTEMPTS {
            let token = match id {
                Some(id) => id.clone(),
                None => Token::generate().map_err(TokenError::Random)?,
            };
            let hash = self.token_hash(&token)?;
            // A chosen id may name a token whose revocation a crash cut
            // short: finish it, or its old descendants would come back.
            if self.barrier.get(&marker_key(&hash))?.is_some() {
                self.resume(&hash)?;
            }
            let accessor = Accessor::generate().map_err(TokenError::Random)?;
            let stored = StoredToken {
                accessor: accessor.expose().to_owned(),
                parent: None,
                policies: vec!["root".to_owned()],
                meta: Default::default(),
                display_name: "root".to_owned(),
                path: "auth/token/root".to_owned(),
                num_uses: 0,
                creation_time: self.now(),
                creation_ttl: 0,
                expire_time: None,
                explicit_max_ttl: 0,
                period: 0,
                renewable: false,
            };
            let mut writes = WriteSet::new();
            writes
                .expect(&id_key(&hash), None)
                .expect(&marker_key(&hash), None)
                .expect(&self.accessor_key(&stored.accessor)?, None);
            self.put_records(&mut writes, &hash, &stored)?;
            if self.barrier.commit(writes)?.applied() {
                let entry = TokenEntry {
                    hash,
                    stored,
                    last_use: false,
                };
                return Ok((token, entry));
            }
            if id.is_some() && self.barrier.get(&id_key(&hash))?.is_some() {
                return Err(TokenError::IdInUse);
            }
        }
        Err(TokenError::Contended)
    }

    /// The token's properties, if it is valid now (not expired, revoked or
    /// used up, and neither is any ancestor). Does not consume a use.
    pub fn lookup(&self, token: &Token) -> Result<Option<TokenEntry>, TokenError> {
        let hash = self.token_hash(token)?;
        self.lookup_hash(&hash)
    }

    pub fn lookup_accessor(&self, accessor: &Accessor) -> Result<Option<TokenEntry>, TokenError> {
        match self.hash_of_accessor(accessor)? {
            Some(hash) => self.lookup_hash(&hash),
            None => Ok(None),
        }
    }

    /// Validates the token for one request and consumes one of its uses, if
    /// it has a limit. The last use revokes it (and its descendants) and
    /// still returns the entry, with [`TokenEntry::was_last_use`] set.
    /// Concurrent callers never get more uses than the token had.
    pub fn use_token(&self, token: &Token) -> Result<Option<TokenEntry>, TokenError> {
        let hash = self.token_hash(token)?;
        for _ in 0..USE_ATTEMPTS {
            let Some(valid) = self.load_valid(&hash, self.now())? else {
                return Ok(None);
            };
            let mut stored = valid.token.stored.clone();
            match stored.num_uses {
                0 => return Ok(Some(entry(&hash, stored))),
                1 => {
                    if self.delete_token(&hash, &valid.token, Some(Marker::Revoke))? {
                        self.finish(&hash, Marker::Revoke)?;
                        stored.num_uses = 0;
                        let mut entry = entry(&hash, stored);
                        entry.last_use = true;
                        return Ok(Some(entry));
                    }
                }
                n => {
                    stored.num_uses = n - 1;
                    let mut writes = WriteSet::new();
                    writes
                        .expect(&id_key(&hash), Some(&valid.token.stamp))
                        .put(&id_key(&hash), to_bytes(&stored));
                    if self.barrier.commit(writes)?.applied() {
                        return Ok(Some(entry(&hash, stored)));
                    }
                }
            }
            std::thread::yield_now();
        }
        Err(TokenError::Contended)
    }

    /// Extends the token's life: by `increment` (zero: its creation TTL, or
    /// the default TTL), to its period for a periodic token, never past its
    /// explicit max TTL nor (unless periodic) the system max TTL counted from
    /// its creation. A token that never expires is returned unchanged.
    pub fn renew(&self, token: &Token, increment: Duration) -> Result<TokenEntry, TokenError> {
        let hash = self.token_hash(token)?;
        self.renew_hash(&hash, increment)
    }

    pub fn renew_accessor(
        &self,
        accessor: &Accessor,
        increment: Duration,
    ) -> Result<TokenEntry, TokenError> {
        let hash = self
            .hash_of_accessor(accessor)?
            .ok_or(TokenError::NotFound)?;
        self.renew_hash(&hash, increment)
    }

    /// Revokes the token and all its descendants. `false` if there was no
    /// such token (already revoked, or never existed).
    pub fn revoke(&self, token: &Token) -> Result<bool, TokenError> {
        let hash = self.token_hash(token)?;
        self.revoke_hash(&hash)
    }

    pub fn revoke_accessor(&self, accessor: &Accessor) -> Result<bool, TokenError> {
        match self.hash_of_accessor(accessor)? {
            Some(hash) => self.revoke_hash(&hash),
            None => Ok(false),
        }
    }

    /// Revokes the token alone: its children become orphans and stay valid.
    pub fn revoke_orphan(&self, token: &Token) -> Result<bool, TokenError> {
        let hash = self.token_hash(token)?;
        if self.load(&hash)?.is_none() {
            return Ok(false);
        }
        let mut writes = WriteSet::new();
        writes.put(&marker_key(&hash), to_bytes(&Marker::Orphan));
        self.barrier.commit(writes)?;
        Ok(self.finish(&hash, Marker::Orphan)? > 0)
    }

    /// A page of accessors, in storage order: those after the cursor
    /// `after` (from the previous page's `next`), at most `limit`.
    pub fn list_accessors(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<AccessorPage, TokenError> {
        let limit = limit.max(1);
        let keys = self.barrier.list(ACCESSOR, after, Some(limit))?;
        let mut accessors = Vec::with_capacity(keys.len());
        for key in &keys {
            let full = format!("{ACCESSOR}{key}");
            // Revoked between the listing and this read.
            let Some(record) = self.barrier.get(&full)? else {
                continue;
            };
            let record: AccessorRecord =
                serde_json::from_slice(&record.value).map_err(|_| TokenError::Corrupt(full))?;
            accessors.push(Accessor::new(record.accessor));
        }
        let next = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(AccessorPage { accessors, next })
    }

    /// Removes every token expired at `now` (with its descendants, accessor,
    /// parent link and index entries), reading only the expiry index up to
    /// `now`, page by page; first finishes any revocation a crash cut short.
    /// Returns how many tokens were removed.
    pub fn tidy(&self, now: SystemTime) -> Result<usize, TokenError> {
        let now = unix(now);
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let markers = self.barrier.list(REVOKING, after.as_deref(), Some(PAGE))?;
            for hash in &markers {
                removed += self.resume(hash)?;
            }
            match markers.last() {
                Some(last) => after = Some(last.clone()),
                None => break,
            }
        }
        let mut after: Option<String> = None;
        'folders: loop {
            let folders = self.barrier.list(EXPIRY, after.as_deref(), Some(PAGE))?;
            for folder in &folders {
                let secs: u64 = folder
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|_| TokenError::Corrupt(format!("{EXPIRY}{folder}")))?;
                if secs > now {
                    break 'folders;
                }
                let prefix = format!("{EXPIRY}{folder}");
                let mut inner: Option<String> = None;
                loop {
                    let hashes = self.barrier.list(&prefix, inner.as_deref(), Some(PAGE))?;
                    for hash in &hashes {
                        removed += self.expire(hash, secs)?;
                    }
                    match hashes.last() {
                        Some(last) => inner = Some(last.clone()),
                        None => break,
                    }
                }
            }
            match folders.last() {
                Some(last) => after = Some(last.clone()),
                None => break,
            }
        }
        Ok(removed)
    }

    fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>, TokenError> {
        Ok(self
            .load_valid(hash, self.now())?
            .map(|v| entry(hash, v.token.stored)))
    }

    fn renew_hash(&self, hash: &str, increment: Duration) -> Result<TokenEntry, TokenError> {
        for _ in 0..ATTEMPTS {
            let now = self.now();
            let valid = self.load_valid(hash, now)?.ok_or(TokenError::NotFound)?;
            let mut stored = valid.token.stored.clone();
            if !stored.renewable {
                return Err(TokenError::NotRenewable);
            }
            let Some(old) = stored.expire_time else {
                return Ok(entry(hash, stored));
            };
            let ttl = self.renewed_ttl(&stored, increment.as_secs(), now)?;
            let new = now.saturating_add(ttl);
            stored.expire_time = Some(new);
            let mut writes = WriteSet::new();
            writes
                .expect(&id_key(hash), Some(&valid.token.stamp))
                .put(&id_key(hash), to_bytes(&stored));
            if new != old {
                writes
                    .delete(&expiry_key(old, hash))
                    .put(&expiry_key(new, hash), Zeroizing::new(Vec::new()));
            }
            if self.barrier.commit(writes)?.applied() {
                return Ok(entry(hash, stored));
            }
        }
        Err(TokenError::Contended)
    }

    /// The TTL a renewal at `now` gives.
    fn renewed_ttl(&self, s: &StoredToken, increment: u64, now: u64) -> Result<u64, TokenError> {
        let (wanted, cap) = if s.period > 0 {
            // Periodic: the period, whatever was asked; only an explicit
            // max TTL bounds its life.
            (s.period, s.explicit_max_ttl)
        } else {
            let wanted = [increment, s.creation_ttl, self.limits.default_ttl.as_secs()]
                .into_iter()
                .find(|t| *t > 0)
                .unwrap_or(0);
            (
                wanted,
                min_nonzero(self.limits.max_ttl.as_secs(), s.explicit_max_ttl),
            )
        };
        if cap == 0 {
            return Ok(wanted);
        }
        let deadline = s.creation_time.saturating_add(cap);
        if now >= deadline {
            return Err(TokenError::PastMaxTtl);
        }
        Ok(wanted.min(deadline - now))
    }

    /// The new token's record (without accessor and parent) under Vault's
    /// rules for policies and TTLs.
    fn plan(
        &self,
        parent: Option<&StoredToken>,
        request: &CreateRequest,
        now: u64,
    ) -> Result<StoredToken, TokenError> {
        let sudo = request.caller_is_root_or_sudo;
        if parent.is_some() {
            if request.no_parent && !sudo {
                return Err(TokenError::OrphanNeedsSudo);
            }
            if !request.period.is_zero() && !sudo {
                return Err(TokenError::PeriodNeedsSudo);
            }
        }
        let parent_is_root = parent.is_some_and(|p| p.policies.iter().any(|x| x == "root"));
        let mut policies = sanitize(&request.policies);
        if policies.is_empty() {
            policies = parent.map(|p| p.policies.clone()).unwrap_or_default();
        } else if !parent_is_root {
            if policies.iter().any(|p| p == "root") {
                return Err(TokenError::RootNeedsRootParent);
            }
            if let Some(parent) = parent.filter(|_| !sudo) {
                let missing: Vec<String> = policies
                    .iter()
                    .filter(|p| *p != "default" && !parent.policies.contains(p))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(TokenError::PoliciesNotSubset(missing));
                }
            }
        }
        let root = policies.iter().any(|p| p == "root");
        if root && parent.is_none() {
            return Err(TokenError::RootNeedsRootParent);
        }
        if root {
            policies = vec!["root".to_owned()];
        } else {
            policies.retain(|p| p != "default");
            if !request.no_default_policy {
                policies.push("default".to_owned());
            }
            policies.sort();
        }

        let max = self.limits.max_ttl.as_secs();
        let explicit = request.explicit_max_ttl.as_secs();
        let mut period = request.period.as_secs();
        let ttl = if period > 0 {
            if max > 0 {
                period = period.min(max);
            }
            min_nonzero(period, explicit)
        } else {
            let mut ttl = request.ttl.as_secs();
            if ttl == 0 && !root {
                ttl = self.limits.default_ttl.as_secs();
            }
            // A root-policy child without a TTL never expires, unless an
            // explicit max TTL is given.
            if ttl == 0 {
                ttl = explicit;
            }
            match min_nonzero(max, explicit) {
                0 => ttl,
                cap => ttl.min(cap),
            }
        };
        let expire_time = (ttl > 0).then(|| now.saturating_add(ttl));
        let display_name = match sanitize_display_name(&request.display_name) {
            name if name.is_empty() => "token".to_owned(),
            name => format!("token-{name}"),
        };
        Ok(StoredToken {
            accessor: String::new(),
            parent: None,
            policies,
            meta: request.meta.clone(),
            display_name,
            path: if request.orphan_endpoint {
                "auth/token/create-orphan"
            } else {
                "auth/token/create"
            }
            .to_owned(),
            num_uses: request.num_uses,
            creation_time: now,
            creation_ttl: ttl,
            expire_time,
            explicit_max_ttl: explicit,
            period,
            renewable: request.renewable && expire_time.is_some(),
        })
    }

    fn revoke_hash(&self, hash: &str) -> Result<bool, TokenError> {
        for _ in 0..ATTEMPTS {
            let Some(loaded) = self.load(hash)? else {
                return Ok(false);
            };
            if self.delete_token(hash, &loaded, Some(Marker::Revoke))? {
                self.finish(hash, Marker::Revoke)?;
                return Ok(true);
            }
        }
        Err(TokenError::Contended)
    }

    /// Removes an expired token found under `expiry/<secs>/<hash>`; returns
    /// how many tokens went (it and its descendants).
    fn expire(&self, hash: &str, secs: u64) -> Result<usize, TokenError> {
        for _ in 0..ATTEMPTS {
            match self.load(hash)? {
                Some(loaded) if loaded.stored.expire_time == Some(secs) => {
                    if self.delete_token(hash, &loaded, Some(Marker::Revoke))? {
                        return Ok(1 + self.finish(hash, Marker::Revoke)?);
                    }
                }
                // Not this token's current index entry: only the entry goes.
                _ => {
                    let mut writes = WriteSet::new();
                    writes.delete(&expiry_key(secs, hash));
                    self.barrier.commit(writes)?;
                    return Ok(0);
                }
            }
        }
        Err(TokenError::Contended)
    }

    /// Finishes the revocation that left marker `hash`; returns how many
    /// tokens it removed.
    fn resume(&self, hash: &str) -> Result<usize, TokenError> {
        let key = marker_key(hash);
        let Some(found) = self.barrier.get(&key)? else {
            return Ok(0);
        };
        let marker: Marker =
            serde_json::from_slice(&found.value).map_err(|_| TokenError::Corrupt(key))?;
        self.finish(hash, marker)
    }

    /// The second half of a revocation: re-parents the children (`Orphan`)
    /// and removes the token, then removes what is left below it, then the
    /// marker. Safe to run again, and concurrently, after any interruption.
    fn finish(&self, hash: &str, marker: Marker) -> Result<usize, TokenError> {
        let mut removed = 0;
        if let Marker::Orphan = marker {
            let children_prefix = format!("{PARENT}{hash}/");
            loop {
                let children = self.barrier.list(&children_prefix, None, Some(PAGE))?;
                if children.is_empty() {
                    break;
                }
                for child in &children {
                    self.make_orphan(hash, child)?;
                }
            }
            if self.revoke_alone(hash)? {
                removed += 1;
            }
        }
        removed += self.purge_below(hash)?;
        let mut writes = WriteSet::new();
        writes.delete(&marker_key(hash));
        self.barrier.commit(writes)?;
        Ok(removed)
    }

    /// Deletes the token's records, leaving the marker of what to do next.
    fn revoke_alone(&self, hash: &str) -> Result<bool, TokenError> {
        for _ in 0..ATTEMPTS {
            let Some(loaded) = self.load(hash)? else {
                return Ok(false);
            };
            if self.delete_token(hash, &loaded, None)? {
                return Ok(true);
            }
        }
        Err(TokenError::Contended)
    }

    /// Removes every descendant of `root` (whose own record is already
    /// gone), deepest first, one token per transaction. They are refused
    /// from the moment `root` went, because a lookup checks the ancestry.
    fn purge_below(&self, root: &str) -> Result<usize, TokenError> {
        let mut removed = 0;
        let mut stack = vec![(root.to_owned(), None::<String>)];
        while let Some((node, parent)) = stack.last().cloned() {
            let children = self
                .barrier
                .list(&format!("{PARENT}{node}/"), None, Some(PAGE))?;
            if children.is_empty() {
                stack.pop();
                if let Some(parent) = parent {
                    removed += usize::from(self.remove_child(&parent, &node)?);
                }
            } else {
                stack.extend(children.into_iter().map(|c| (c, Some(node.clone()))));
            }
        }
        Ok(removed)
    }

    /// Removes the token `child` (linked under `parent`) and its link.
    fn remove_child(&self, parent: &str, child: &str) -> Result<bool, TokenError> {
        for _ in 0..ATTEMPTS {
            let mut writes = WriteSet::new();
            // The link goes whatever the record says, so the walk always
            // makes progress.
            writes.delete(&parent_key(parent, child));
            // Gone, or re-parented by a concurrent `revoke_orphan`: only the
            // stale link goes.
            let Some(loaded) = self
                .load(child)?
                .filter(|l| l.stored.parent.as_deref() == Some(parent))
            else {
                self.barrier.commit(writes)?;
                return Ok(false);
            };
            writes.expect(&id_key(child), Some(&loaded.stamp));
            self.delete_records(&mut writes, child, &loaded.stored)?;
            if self.barrier.commit(writes)?.applied() {
                return Ok(true);
            }
        }
        Err(TokenError::Contended)
    }

    /// Makes `child` an orphan: no parent, no link under `parent`.
    fn make_orphan(&self, parent: &str, child: &str) -> Result<(), TokenError> {
        for _ in 0..ATTEMPTS {
            let mut writes = WriteSet::new();
            writes.delete(&parent_key(parent, child));
            if let Some(loaded) = self.load(child)? {
                let mut stored = loaded.stored;
                if stored.parent.as_deref() == Some(parent) {
                    stored.parent = None;
                    writes
                        .expect(&id_key(child), Some(&loaded.stamp))
                        .put(&id_key(child), to_bytes(&stored));
                }
            }
            if self.barrier.commit(writes)?.applied() {
                return Ok(());
            }
        }
        Err(TokenError::Contended)
    }

    /// Deletes a token's records in one transaction, if its record is still
    /// as loaded; with `marker`, leaves it in the same transaction.
    fn delete_token(
        &self,
        hash: &str,
        loaded: &Loaded,
        marker: Option<Marker>,
    ) -> Result<bool, TokenError> {
        let mut writes = WriteSet::new();
        writes.expect(&id_key(hash), Some(&loaded.stamp));
        self.delete_records(&mut writes, hash, &loaded.stored)?;
        if let Some(marker) = marker {
            writes.put(&marker_key(hash), to_bytes(&marker));
        }
        Ok(self.barrier.commit(writes)?.applied())
    }

    fn delete_records(
        &self,
        writes: &mut WriteSet,
        hash: &str,
        stored: &StoredToken,
    ) -> Result<(), TokenError> {
        writes
            .delete(&id_key(hash))
            .delete(&self.accessor_key(&stored.accessor)?);
        if let Some(parent) = &stored.parent {
            writes.delete(&parent_key(parent, hash));
        }
        if let Some(expire) = stored.expire_time {
            writes.delete(&expiry_key(expire, hash));
        }
        Ok(())
    }

    fn put_records(
        &self,
        writes: &mut WriteSet,
        hash: &str,
        stored: &StoredToken,
    ) -> Result<(), TokenError> {
        let record = AccessorRecord {
            accessor: stored.accessor.clone(),
            hash: hash.to_owned(),
        };
        writes
            .put(&id_key(hash), to_bytes(stored))
            .put(&self.accessor_key(&stored.accessor)?, to_bytes(&record));
        if let Some(parent) = &stored.parent {
            writes.put(&parent_key(parent, hash), Zeroizing::new(Vec::new()));
        }
        if let Some(expire) = stored.expire_time {
            writes.put(&expiry_key(expire, hash), Zeroizing::new(Vec::new()));
        }
        Ok(())
    }

    fn load(&self, hash: &str) -> Result<Option<Loaded>, TokenError> {
        let key = id_key(hash);
        let loaded = self.parsed.get(&self.barrier, &key, |bytes| {
            serde_json::from_slice(bytes).map_err(|_| TokenError::Corrupt(key.clone()))
        })?;
        Ok(loaded.map(|(stored, stamp)| Loaded { stored, stamp }))
    }

    /// The token, if it and every ancestor exist and are unexpired at `now`.
    fn load_valid(&self, hash: &str, now: u64) -> Result<Option<Valid>, TokenError> {
        let Some(token) = self.load(hash)?.filter(|t| !t.stored.expired(now)) else {
            return Ok(None);
        };
        let mut ancestors = Vec::new();
        let mut next = token.stored.parent.clone();
        while let Some(parent) = next {
            if ancestors.len() == MAX_DEPTH {
                return Err(TokenError::Corrupt(id_key(hash)));
            }
            let Some(loaded) = self.load(&parent)?.filter(|p| !p.stored.expired(now)) else {
                return Ok(None);
            };
            next = loaded.stored.parent.clone();
            ancestors.push((parent, loaded.stamp));
        }
        Ok(Some(Valid { token, ancestors }))
    }

    fn hash_of_accessor(&self, accessor: &Accessor) -> Result<Option<String>, TokenError> {
        let key = self.accessor_key(accessor.expose())?;
        let Some(found) = self.barrier.get(&key)? else {
            return Ok(None);
        };
        let record: AccessorRecord =
            serde_json::from_slice(&found.value).map_err(|_| TokenError::Corrupt(key))?;
        Ok(Some(record.hash))
    }

    fn token_hash(&self, token: &Token) -> Result<String, TokenError> {
        self.keyed_hash(b"token\0", token.expose())
    }

    fn accessor_key(&self, accessor: &str) -> Result<String, TokenError> {
        Ok(format!(
            "{ACCESSOR}{}",
            self.keyed_hash(b"accessor\0", accessor)?
        ))
    }

    /// HMAC-SHA256 under the store's salt, in hex; `domain` keeps token and
    /// accessor hashes apart.
    fn keyed_hash(&self, domain: &[u8], text: &str) -> Result<String, TokenError> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.salt()?).expect("HMAC accepts keys of any length");
        mac.update(domain);
        mac.update(text.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// The store's salt, created on first use by whichever process or
    /// thread gets its conditional write in first; the others adopt it.
    fn salt(&self) -> Result<&[u8], TokenError> {
        if let Some(salt) = self.salt.get() {
            return Ok(salt.as_slice());
        }
        for _ in 0..ATTEMPTS {
            if let Some(found) = self.barrier.get(SALT_KEY)? {
                if found.value.len() != SALT_LEN {
                    return Err(TokenError::Corrupt(SALT_KEY.to_owned()));
                }
                return Ok(self.salt.get_or_init(|| found.value).as_slice());
            }
            let mut fresh = Zeroizing::new(vec![0u8; SALT_LEN]);
            getrandom::fill(fresh.as_mut_slice()).map_err(TokenError::Random)?;
            let mut writes = WriteSet::new();
            writes.expect(SALT_KEY, None).put(SALT_KEY, fresh.clone());
            if self.barrier.commit(writes)?.applied() {
                return Ok(self.salt.get_or_init(|| fresh).as_slice());
            }
        }
        Err(TokenError::Contended)
    }

    fn now(&self) -> u64 {
        unix(self.clock.now())
    }
}

fn entry(hash: &str, stored: StoredToken) -> TokenEntry {
    TokenEntry {
        hash: hash.to_owned(),
        stored,
        last_use: false,
    }
}

fn check_request(request: &CreateRequest) -> Result<(), TokenError> {
    if request.meta.keys().any(String::is_empty) {
        return Err(TokenError::Invalid("meta keys must not be empty".into()));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), TokenError> {
    if id.is_empty() {
        return Err(TokenError::InvalidId("it is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(TokenError::InvalidId("it is longer than 256 bytes"));
    }
    if !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(TokenError::InvalidId("use printable ASCII without spaces"));
    }
    Ok(())
}

/// Policy names as Vault keeps them: trimmed, lowercase, sorted, unique.
fn sanitize(policies: &[String]) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn sanitize_display_name(name: &str) -> String {
    name.trim()
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The smaller of two limits where 0 means "none".
fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).expect("token records serialize"))
}

fn id_key(hash: &str) -> String {
    format!("{ID}{hash}")
}

fn parent_key(parent: &str, child: &str) -> String {
    format!("{PARENT}{parent}/{child}")
}

fn expiry_key(secs: u64, hash: &str) -> String {
    format!("{EXPIRY}{secs:020}/{hash}")
}

fn marker_key(hash: &str) -> String {
    format!("{REVOKING}{hash}")
}
