//! The accounts as `/userinfo` answers them. Every call needs an account and its roles,
//! so they are served from memory for a few seconds (`[tokens] userinfo_cache_secs`)
//! and then read again. A change made through this process's [`crate::directory::Directory`]
//! shows at once (it invalidates the entry); one made by another process (the admin
//! CLI, another instance) shows once the entry is older than that window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::Result;
use crate::account::AccountId;
use crate::directory::Account;
use crate::role::RoleStore;

/// Most accounts held; past it the least used give way. The verified access tokens are
/// bounded the same way and every userinfo call comes with one, so this holds the
/// accounts of all the tokens in use.
pub const CAPACITY: usize = 10_000;

/// An account and its roles (sorted), as read together from the store. For claims only:
/// the password fields are not kept current (password changes do not invalidate).
#[derive(Debug)]
pub struct AccountWithRoles {
    pub account: Account,
    pub roles: Vec<String>,
}

#[derive(Clone)]
pub struct AccountClaimsCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RoleStore>,
    fresh_for: Duration,
    entries: Cache<AccountId, Entry>,
    /// Counts invalidations: a read that overlapped one may have seen the account as it
    /// was before the change, so what it read is not kept. (quick_cache's `remove`
    /// also drops a pending read's placeholder today; this does not rely on it.)
    invalidations: AtomicU64,
}

#[derive(Clone)]
struct Entry {
    found: Arc<AccountWithRoles>,
    /// Taken before the read, so an entry is never younger than its data.
    read_at: Instant,
}

impl AccountClaimsCache {
    /// Entries are served for `fresh_for`, then read again; zero reads every time.
    pub fn new(store: Arc<dyn RoleStore>, fresh_for: Duration) -> Self {
        Self::with_capacity(store, fresh_for, CAPACITY)
    }

    fn with_capacity(store: Arc<dyn RoleStore>, fresh_for: Duration, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                fresh_for,
                entries: Cache::new(capacity),
                invalidations: AtomicU64::new(0),
            }),
        }
    }

    /// How long an account is served from memory.
    pub fn fresh_for(&self) -> Duration {
        self.inner.fresh_for
    }

    /// The account and its roles, from memory when read less than `fresh_for` ago.
    /// An account that does not exist is not remembered: it is looked for every time.
    pub async fn get(&self, id: &AccountId) -> Result<Option<Arc<AccountWithRoles>>> {
        self.get_at(id, Instant::now()).await
    }

    async fn get_at(&self, id: &AccountId, now: Instant) -> Result<Option<Arc<AccountWithRoles>>> {
        let inner = &*self.inner;
        if inner.fresh_for.is_zero() {
            return self.read(id).await;
        }
        let fresh = |e: &Entry| now.saturating_duration_since(e.read_at) < inner.fresh_for;
        if let Some(e) = inner.entries.get(id)
            && fresh(&e)
        {
            return Ok(Some(e.found));
        }
        // One read per account at a time: concurrent requests wait for it.
        let on_found = |_: &AccountId, e: &mut Entry| {
            if fresh(e) {
                EntryAction::Retain(Arc::clone(&e.found))
            } else {
                EntryAction::ReplaceWithGuard
            }
        };
        let guard = match inner.entries.entry_async(id, on_found).await {
            EntryResult::Retained(found) => return Ok(Some(found)),
            EntryResult::Replaced(guard, _) | EntryResult::Vacant(guard) => guard,
            // Neither is asked for (no `Remove`, no timeout): read through.
            EntryResult::Removed(..) | EntryResult::Timeout => return self.read(id).await,
        };
        let invalidations = inner.invalidations.load(Ordering::SeqCst);
        // On an error or a missing account the guard drops and nothing is kept.
        let found = self.read(id).await?;
        if let Some(found) = &found {
            let _ = guard.insert(Entry {
                found: Arc::clone(found),
                read_at: now,
            });
            if inner.invalidations.load(Ordering::SeqCst) != invalidations {
                inner.entries.remove(id);
            }
        }
        Ok(found)
    }

    async fn read(&self, id: &AccountId) -> Result<Option<Arc<AccountWithRoles>>> {
        Ok(self
            .inner
            .store
            .account_with_roles(id)
            .await?
            .map(|(account, roles)| Arc::new(AccountWithRoles { account, roles })))
    }

    /// Forgets the account, so that the next `get` reads the store. Call it after every
    /// change to what userinfo tells of the account (profile, emails, roles).
    pub fn invalidate(&self, id: &AccountId) {
        self.inner.invalidations.fetch_add(1, Ordering::SeqCst);
        self.inner.entries.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::*;
    use crate::account::{AccountKind, AccountStatus, Username};

    const WINDOW: Duration = Duration::from_secs(5);

    /// Accounts in a map, counting the reads; a read can be held half-way.
    #[derive(Default)]
    struct FakeStore {
        accounts: Mutex<HashMap<String, (Account, Vec<String>)>>,
        reads: AtomicUsize,
        hold: Mutex<Option<Arc<Hold>>>,
    }

    #[derive(Default)]
    struct Hold {
        read: Notify,
        resume: Notify,
    }

    impl FakeStore {
        fn put(&self, id: &str, given_name: &str, roles: &[&str]) {
            let account = Account {
                id: AccountId::from_string(id.into()),
                username: Username::parse("anna.bianchi").unwrap(),
                kind: AccountKind::Registered,
                status: AccountStatus::Active,
                fiscal_code: None,
                given_name: given_name.into(),
                family_name: "Bianchi".into(),
                birth_date: None,
                birth_place: None,
                sex: None,
                personal_email: None,
                institutional_email: None,
                password: None,
                password_must_change: false,
                password_expires_at: None,
                created_at: 0,
                updated_at: 0,
            };
            let roles = roles.iter().map(|r| r.to_string()).collect();
            self.accounts
                .lock()
                .unwrap()
                .insert(id.into(), (account, roles));
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl RoleStore for FakeStore {
        async fn roles_of(&self, _: &str) -> Result<Vec<String>> {
            unimplemented!()
        }
        async fn account_with_roles(
            &self,
            id: &AccountId,
        ) -> Result<Option<(Account, Vec<String>)>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let found = self.accounts.lock().unwrap().get(id.as_str()).cloned();
            let hold = self.hold.lock().unwrap().take();
            if let Some(hold) = hold {
                hold.read.notify_one();
                hold.resume.notified().await;
            }
            Ok(found)
        }
        async fn grant_role(&self, _: &str, _: &str) -> Result<()> {
            unimplemented!()
        }
        async fn revoke_role(&self, _: &str, _: &str) -> Result<bool> {
            unimplemented!()
        }
    }

    fn anna() -> AccountId {
        AccountId::from_string("acc-anna".into())
    }

    fn setup(window: Duration) -> (Arc<FakeStore>, AccountClaimsCache) {
        let store = Arc::new(FakeStore::default());
        store.put("acc-anna", "Anna", &[]);
        let cache = AccountClaimsCache::new(store.clone(), window);
        (store, cache)
    }

    async fn given_name(cache: &AccountClaimsCache, at: Instant) -> String {
        let found = cache
            .get_at(&anna(), at)
            .await
            .unwrap()
            .expect("an account");
        found.account.given_name.clone()
    }

    #[tokio::test]
    async fn an_account_read_recently_is_served_from_memory() {
        let (store, cache) = setup(WINDOW);
        let t0 = Instant::now();
        assert_eq!(given_name(&cache, t0).await, "Anna");
        store.put("acc-anna", "Annamaria", &["school_operator"]);
        let later = t0 + WINDOW - Duration::from_millis(1);
        assert_eq!(given_name(&cache, later).await, "Anna", "within the window");
        assert_eq!(store.reads(), 1);
    }

    #[tokio::test]
    async fn an_account_is_read_again_once_the_window_has_passed() {
        let (store, cache) = setup(WINDOW);
        let t0 = Instant::now();
        given_name(&cache, t0).await;
        store.put("acc-anna", "Annamaria", &["school_operator"]);
        let found = cache.get_at(&anna(), t0 + WINDOW).await.unwrap().unwrap();
        assert_eq!(found.account.given_name, "Annamaria");
        assert_eq!(found.roles, ["school_operator"]);
        assert_eq!(store.reads(), 2);
        // And the new read is what is served next.
        assert_eq!(given_name(&cache, t0 + WINDOW).await, "Annamaria");
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn an_invalidated_account_is_read_again_at_once() {
        let (store, cache) = setup(WINDOW);
        let t0 = Instant::now();
        given_name(&cache, t0).await;
        store.put("acc-anna", "Annamaria", &[]);
        cache.invalidate(&anna());
        assert_eq!(given_name(&cache, t0).await, "Annamaria");
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn a_read_overlapping_an_invalidation_is_not_kept() {
        let (store, cache) = setup(WINDOW);
        let hold = Arc::new(Hold::default());
        *store.hold.lock().unwrap() = Some(hold.clone());
        let t0 = Instant::now();
        let reading = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get_at(&anna(), t0).await.unwrap().unwrap() }
        });
        // The read has taken the old account; the change and its invalidation land
        // before the read is stored.
        hold.read.notified().await;
        store.put("acc-anna", "Annamaria", &[]);
        cache.invalidate(&anna());
        hold.resume.notify_one();
        assert_eq!(reading.await.unwrap().account.given_name, "Anna");
        assert_eq!(given_name(&cache, t0).await, "Annamaria");
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn a_missing_account_is_not_remembered() {
        let store = Arc::new(FakeStore::default());
        let cache = AccountClaimsCache::new(store.clone(), WINDOW);
        let t0 = Instant::now();
        assert!(cache.get_at(&anna(), t0).await.unwrap().is_none());
        store.put("acc-anna", "Anna", &[]);
        assert_eq!(given_name(&cache, t0).await, "Anna");
        assert_eq!(store.reads(), 2);
    }

    #[tokio::test]
    async fn a_window_of_zero_reads_the_store_every_time() {
        let (store, cache) = setup(Duration::ZERO);
        let t0 = Instant::now();
        given_name(&cache, t0).await;
        store.put("acc-anna", "Annamaria", &[]);
        assert_eq!(given_name(&cache, t0).await, "Annamaria");
        assert_eq!(given_name(&cache, t0).await, "Annamaria");
        assert_eq!(store.reads(), 3);
        assert_eq!(cache.inner.entries.len(), 0);
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let store = Arc::new(FakeStore::default());
        let cache = AccountClaimsCache::with_capacity(store.clone(), WINDOW, 16);
        let t0 = Instant::now();
        for n in 0..200 {
            let id = format!("acc-{n}");
            store.put(&id, "Anna", &[]);
            let found = cache.get_at(&AccountId::from_string(id), t0).await.unwrap();
            assert!(found.is_some());
        }
        let held = cache.inner.entries.len();
        assert!((1..=16).contains(&held), "{held} entries held");
    }
}
