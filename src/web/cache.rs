//! A short-lived in-process cache for the hot reads: signed-in sessions, API tokens, each org's
//! Credits-tab figures and its today (`GET /api/v1/credits`, which a gateway may call before every
//! request). Writes made by this process (limit changes, sign-out, admitted usage) invalidate at
//! once; writes by other processes (CLI, other servers on PostgreSQL) show within the TTL, one
//! second by default.

use crate::domain::types::OrgId;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::report::credits::{CreditsSummary, Today};
use crate::store::orgs::OrgRow;
use crate::store::users::UserRow;

pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// A session as the extractor needs it.
#[derive(Clone)]
pub struct SessionEntry {
    pub user: UserRow,
    pub org: OrgRow,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A map whose entries expire after a TTL. Invalidations are numbered: a reader takes the number
/// before it reads the database (`generation`) and its value is put only if the key was not
/// invalidated since (`put_unless_invalidated`), so a value read before a write of this process is
/// never cached after it.
struct TtlMap<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    slots: HashMap<K, Slot<V>>,
    /// Invalidations so far.
    invalidations: u64,
    /// `invalidations` when slots were last pruned (a pruned slot forgets when it was invalidated).
    pruned_at: u64,
}

struct Slot<V> {
    /// The number of the key's last invalidation.
    invalidated: u64,
    value: Option<(Instant, Arc<V>)>,
}

impl<K: Eq + Hash, V> TtlMap<K, V> {
    fn new() -> Self {
        TtlMap {
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                invalidations: 0,
                pruned_at: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<Arc<V>> {
        self.lock()
            .slots
            .get(key)
            .and_then(|slot| slot.value.as_ref())
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    /// Take before reading what `put_unless_invalidated` will put.
    fn generation(&self) -> u64 {
        self.lock().invalidations
    }

    /// Put a value read after `generation` was taken, unless the key was invalidated since.
    fn put_unless_invalidated(&self, key: K, generation: u64, value: V, ttl: Duration) -> Arc<V> {
        let value = Arc::new(value);
        let mut inner = self.lock();
        inner.prune(ttl);
        let fresh = match inner.slots.get(&key) {
            Some(slot) => slot.invalidated <= generation,
            None => inner.pruned_at <= generation,
        };
        if fresh {
            let slot = inner.slots.entry(key).or_insert(Slot {
                invalidated: 0,
                value: None,
            });
            slot.value = Some((Instant::now(), value.clone()));
        }
        value
    }

    fn remove(&self, key: K) {
        let mut inner = self.lock();
        inner.invalidations += 1;
        let number = inner.invalidations;
        let slot = inner.slots.entry(key).or_insert(Slot {
            invalidated: 0,
            value: None,
        });
        slot.invalidated = number;
        slot.value = None;
    }

    fn remove_where(&self, keep: impl Fn(&K, &V) -> bool) {
        let mut inner = self.lock();
        inner.invalidations += 1;
        let number = inner.invalidations;
        for (key, slot) in inner.slots.iter_mut() {
            if slot.value.as_ref().is_some_and(|(_, v)| !keep(key, v)) {
                slot.invalidated = number;
                slot.value = None;
            }
        }
    }
}

impl<K: Eq + Hash, V> Inner<K, V> {
    fn prune(&mut self, ttl: Duration) {
        if self.slots.len() > 10_000 {
            self.slots.retain(|_, slot| {
                slot.value
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() < ttl)
            });
            self.pruned_at = self.invalidations;
        }
    }
}

pub struct ReadCache {
    ttl: Duration,
    sessions: TtlMap<String, SessionEntry>,
    credits: TtlMap<OrgId, CreditsSummary>,
    today: TtlMap<OrgId, Today>,
    /// API token hash → (org id, org time zone).
    tokens: TtlMap<String, (OrgId, chrono_tz::Tz)>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            sessions: TtlMap::new(),
            credits: TtlMap::new(),
            today: TtlMap::new(),
            tokens: TtlMap::new(),
        }
    }

    /// A cached session by the hash of its cookie, if fresh and not expired at `now`.
    pub fn session(&self, cookie_hash: &String, now: DateTime<Utc>) -> Option<Arc<SessionEntry>> {
        self.sessions
            .get(cookie_hash, self.ttl)
            .filter(|s| s.expires_at > now)
    }

    /// The generation to put a session read from the database with.
    pub fn session_generation(&self) -> u64 {
        self.sessions.generation()
    }

    pub fn put_session(
        &self,
        cookie_hash: String,
        generation: u64,
        entry: SessionEntry,
    ) -> Arc<SessionEntry> {
        self.sessions
            .put_unless_invalidated(cookie_hash, generation, entry, self.ttl)
    }

    pub fn forget_session(&self, cookie_hash: &str) {
        self.sessions.remove(cookie_hash.to_string());
    }

    /// An org's cached Credits-tab figures, or the generation to put fresh ones with.
    pub fn credits(&self, org_id: OrgId) -> Result<Arc<CreditsSummary>, u64> {
        self.credits
            .get(&org_id, self.ttl)
            .ok_or_else(|| self.credits.generation())
    }

    pub fn put_credits(
        &self,
        org_id: OrgId,
        generation: u64,
        value: CreditsSummary,
    ) -> Arc<CreditsSummary> {
        self.credits
            .put_unless_invalidated(org_id, generation, value, self.ttl)
    }

    /// An org's cached today if it is still the org's `local_day`, or the generation to put a
    /// fresh one with.
    pub fn today(&self, org_id: OrgId, local_day: chrono::NaiveDate) -> Result<Arc<Today>, u64> {
        self.today
            .get(&org_id, self.ttl)
            .filter(|today| today.local_day == local_day)
            .ok_or_else(|| self.today.generation())
    }

    pub fn put_today(&self, org_id: OrgId, generation: u64, value: Today) -> Arc<Today> {
        self.today
            .put_unless_invalidated(org_id, generation, value, self.ttl)
    }

    pub fn token(&self, token_hash: &String) -> Option<Arc<(OrgId, chrono_tz::Tz)>> {
        self.tokens.get(token_hash, self.ttl)
    }

    pub fn put_token(
        &self,
        token_hash: String,
        org: (OrgId, chrono_tz::Tz),
    ) -> Arc<(OrgId, chrono_tz::Tz)> {
        let generation = self.tokens.generation();
        self.tokens
            .put_unless_invalidated(token_hash, generation, org, self.ttl)
    }

    /// Usage was admitted for an org: its Credits-tab figures are out of date.
    pub fn invalidate_credits(&self, org_id: OrgId) {
        self.credits.remove(org_id);
        self.today.remove(org_id);
    }

    /// Drop everything cached about an org (its sessions carry the org row too).
    pub fn invalidate_org(&self, org_id: OrgId) {
        self.credits.remove(org_id);
        self.today.remove(org_id);
        self.sessions.remove_where(|_, s| s.org.id != org_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_an_invalidation_is_not_put_after_it() {
        let map: TtlMap<i64, &str> = TtlMap::new();
        let ttl = Duration::from_secs(60);
        // The first read of a key, with a write of this process while it reads.
        let before = map.generation();
        map.remove(1);
        map.put_unless_invalidated(1, before, "read before the write", ttl);
        assert_eq!(map.get(&1, ttl), None);
        let after = map.generation();
        map.put_unless_invalidated(1, after, "read after the write", ttl);
        assert_eq!(map.get(&1, ttl).as_deref(), Some(&"read after the write"));
        assert_eq!(map.get(&1, Duration::ZERO), None, "expired");
        // Another key's write does not hold this one back.
        let read = map.generation();
        map.remove(2);
        map.put_unless_invalidated(3, read, "other key", ttl);
        assert_eq!(map.get(&3, ttl).as_deref(), Some(&"other key"));
        // After pruning, a read older than the prune is not put (its invalidation is forgotten).
        let old = map.generation();
        for key in 100..10_102 {
            map.remove(key);
        }
        map.put_unless_invalidated(4, map.generation(), "prunes", ttl);
        map.put_unless_invalidated(5, old, "older than the prune", ttl);
        assert_eq!(map.get(&5, ttl), None);
    }
}
