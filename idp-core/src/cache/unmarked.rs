//! Keys known to be unmarked, remembered by one instance so that checking a revocation
//! mark (every introspection, every userinfo call) costs no round trip to the shared
//! cache while nothing is revoked.
//!
//! Only absence is remembered: a key seen unmarked may be marked at any moment by any
//! instance, and the instance that marks it tells the others (Redis pub/sub, see
//! [`super::redis`]). So what is remembered is only served while those messages are
//! being received, and is forgotten:
//! - for one key, when a message says it was marked (or this instance marks it);
//! - for all keys, when the subscription starts, and when it is lost (messages may have
//!   been missed);
//! - in any case once it is older than [`UnmarkedKeys::max_age`], which bounds how long
//!   a mark can go unseen if the subscription breaks without the connection noticing.
//!
//! A lookup in the shared cache that overlapped a forgetting may have read the key
//! before it was marked: what it read is not remembered. Each lookup takes a ticket
//! (the count of forgettings) before asking, and remembers its answer only if no
//! forgetting happened meanwhile, checked again after storing it (a forgetting counts
//! itself before it removes anything, so one that the second check misses removes what
//! was stored).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

/// Taken before a lookup in the shared cache; see [`UnmarkedKeys::remember`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Ticket {
    /// Forgettings so far when the lookup asked.
    forgettings: u64,
    /// When it asked: what it read is no younger, so a key's age counts from here.
    asked_at: Instant,
}

pub(super) struct UnmarkedKeys {
    /// Each key with when it was seen unmarked.
    keys: Cache<String, Instant>,
    /// Forgettings so far (one per key message, one per clearing).
    forgettings: AtomicU64,
    /// Whether the messages that say a key was marked are being received.
    listening: AtomicBool,
    max_age: Duration,
}

impl UnmarkedKeys {
    /// Remembers at most `capacity` keys (the least used give way), each for at most
    /// `max_age`; serves nothing until [`UnmarkedKeys::listen`].
    pub(super) fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            keys: Cache::new(capacity),
            forgettings: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            max_age,
        }
    }

    /// Whether every one of `keys` is known to be unmarked: listening, and each seen
    /// unmarked less than `max_age` ago.
    pub(super) fn all_unmarked(&self, keys: &[&str]) -> bool {
        if !self.is_listening() {
            return false;
        }
        keys.iter().all(|key| {
            self.keys
                .get(*key)
                .is_some_and(|seen| seen.elapsed() < self.max_age)
        })
    }

    /// Whether the messages that say a key was marked are being received.
    pub(super) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// To take before asking the shared cache.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket {
            forgettings: self.forgettings(),
            asked_at: Instant::now(),
        }
    }

    fn forgettings(&self) -> u64 {
        self.forgettings.load(Ordering::SeqCst)
    }

    /// `keys` were all found unmarked by a lookup that took `ticket` before asking:
    /// remembered, unless a forgetting happened since (or nothing is being received).
    pub(super) fn remember(&self, ticket: Ticket, keys: &[&str]) {
        if !self.is_listening() || self.forgettings() != ticket.forgettings {
            return;
        }
        for key in keys {
            self.keys.insert((*key).to_string(), ticket.asked_at);
        }
        if self.forgettings() != ticket.forgettings {
            // A forgetting ran while storing: it may have removed before we stored.
            for key in keys {
                self.keys.remove(*key);
            }
        }
    }

    /// `key` was marked.
    pub(super) fn forget(&self, key: &str) {
        self.forgettings.fetch_add(1, Ordering::SeqCst);
        self.keys.remove(key);
    }

    /// Messages are being received from now on (the subscription is confirmed): what
    /// was remembered before may have missed some, so it goes.
    pub(super) fn listen(&self) {
        self.forget_all();
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Messages may be missed from now on (the subscription is lost): nothing is served
    /// or remembered until [`UnmarkedKeys::listen`].
    pub(super) fn deafen(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.forget_all();
    }

    /// Everything may have been marked (an announcement that names no key).
    pub(super) fn forget_all(&self) {
        self.forgettings.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> UnmarkedKeys {
        let u = UnmarkedKeys::new(100, Duration::from_secs(60));
        u.listen();
        u
    }

    #[test]
    fn serves_what_a_quiet_lookup_found() {
        let u = listening();
        assert!(!u.all_unmarked(&["a"]));
        let t = u.ticket();
        u.remember(t, &["a", "b"]);
        assert!(u.all_unmarked(&["a"]));
        assert!(u.all_unmarked(&["a", "b"]));
        assert!(!u.all_unmarked(&["a", "c"]), "every key must be known");
    }

    #[test]
    fn a_marked_key_is_forgotten_and_the_others_kept() {
        let u = listening();
        u.remember(u.ticket(), &["a", "b"]);
        u.forget("a");
        assert!(!u.all_unmarked(&["a"]));
        assert!(u.all_unmarked(&["b"]));
    }

    #[test]
    fn a_lookup_that_overlapped_a_forgetting_is_not_remembered() {
        let u = listening();
        let t = u.ticket();
        // Marked (anywhere) after the lookup asked, before it answered.
        u.forget("a");
        u.remember(t, &["a"]);
        assert!(!u.all_unmarked(&["a"]));
        // Any forgetting counts, whichever key: the lookup cannot tell.
        let t = u.ticket();
        u.forget("z");
        u.remember(t, &["a"]);
        assert!(!u.all_unmarked(&["a"]));
    }

    #[test]
    fn nothing_is_served_or_kept_while_not_listening() {
        let u = UnmarkedKeys::new(100, Duration::from_secs(60));
        u.remember(u.ticket(), &["a"]);
        assert!(!u.all_unmarked(&["a"]), "not listening yet");
        u.listen();
        assert!(!u.all_unmarked(&["a"]));
        u.remember(u.ticket(), &["a"]);
        assert!(u.all_unmarked(&["a"]));
        u.deafen();
        assert!(!u.all_unmarked(&["a"]), "lost: forgotten");
        let t = u.ticket();
        u.remember(t, &["a"]);
        u.listen();
        assert!(
            !u.all_unmarked(&["a"]),
            "what was read while deaf is dropped"
        );
        u.remember(t, &["a"]);
        assert!(
            !u.all_unmarked(&["a"]),
            "a ticket from before listening is stale"
        );
    }

    #[test]
    fn a_key_is_remembered_for_max_age_at_most() {
        let u = UnmarkedKeys::new(100, Duration::from_millis(50));
        u.listen();
        u.remember(u.ticket(), &["a"]);
        assert!(u.all_unmarked(&["a"]));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!u.all_unmarked(&["a"]));
        // The age counts from when the lookup asked, not from when it answered.
        let t = u.ticket();
        std::thread::sleep(Duration::from_millis(80));
        u.remember(t, &["b"]);
        assert!(!u.all_unmarked(&["b"]));
    }
}
