//! A short-lived in-process cache for the hot reads: signed-in sessions, API tokens, each org's
//! Credits-tab figures and its today (`GET /api/v1/credits`, which a gateway may call before every
//! request). Writes made by this process (limit changes, sign-out, admitted usage) invalidate at
//! once; writes by other processes (CLI, other servers on PostgreSQL) show within the TTL, one
//! second by default.

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

/// A map whose entries expire after a TTL. Each key has a generation, raised when the key is
/// invalidated: a value read from the database before an invalidation is not put after it.
struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, Slot<V>>>,
}

struct Slot<V> {
    generation: u64,
    value: Option<(Instant, Arc<V>)>,
}

impl<K: Eq + Hash, V> TtlMap<K, V> {
    fn new() -> Self {
        TtlMap {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<Arc<V>> {
        self.lock()
            .get(key)
            .and_then(|slot| slot.value.as_ref())
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    /// The key's generation now; pass it to `put_unless_invalidated` after reading the value.
    fn generation(&self, key: &K) -> u64 {
        self.lock().get(key).map_or(0, |slot| slot.generation)
    }

    fn put(&self, key: K, value: V, ttl: Duration) -> Arc<V> {
        let value = Arc::new(value);
        let mut map = self.lock();
        Self::prune(&mut map, ttl);
        let slot = map.entry(key).or_insert(Slot {
            generation: 0,
            value: None,
        });
        slot.value = Some((Instant::now(), value.clone()));
        value
    }

    /// Put a value read when the key had `generation`, unless it was invalidated since.
    fn put_unless_invalidated(&self, key: K, generation: u64, value: V, ttl: Duration) -> Arc<V> {
        let value = Arc::new(value);
        let mut map = self.lock();
        Self::prune(&mut map, ttl);
        let slot = map.entry(key).or_insert(Slot {
            generation: 0,
            value: None,
        });
        if slot.generation == generation {
            slot.value = Some((Instant::now(), value.clone()));
        }
        value
    }

    fn prune(map: &mut HashMap<K, Slot<V>>, ttl: Duration) {
        if map.len() > 10_000 {
            map.retain(|_, slot| {
                slot.value
                    .as_ref()
                    .is_some_and(|(at, _)| at.elapsed() < ttl)
            });
        }
    }

    fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
    {
        if let Some(slot) = self.lock().get_mut(key) {
            slot.generation += 1;
            slot.value = None;
        }
    }

    fn remove_where(&self, keep: impl Fn(&K, &V) -> bool) {
        for (key, slot) in self.lock().iter_mut() {
            if slot.value.as_ref().is_some_and(|(_, v)| !keep(key, v)) {
                slot.generation += 1;
                slot.value = None;
            }
        }
    }
}

pub struct ReadCache {
    ttl: Duration,
    sessions: TtlMap<String, SessionEntry>,
    credits: TtlMap<i64, CreditsSummary>,
    today: TtlMap<i64, Today>,
    /// API token hash → (org id, org time zone).
    tokens: TtlMap<String, (i64, chrono_tz::Tz)>,
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

    pub fn put_session(&self, cookie_hash: String, entry: SessionEntry) -> Arc<SessionEntry> {
        self.sessions.put(cookie_hash, entry, self.ttl)
    }

    pub fn forget_session(&self, cookie_hash: &str) {
        self.sessions.remove(cookie_hash);
    }

    /// An org's cached Credits-tab figures, or the generation to put fresh ones with.
    pub fn credits(&self, org_id: i64) -> Result<Arc<CreditsSummary>, u64> {
        self.credits
            .get(&org_id, self.ttl)
            .ok_or_else(|| self.credits.generation(&org_id))
    }

    pub fn put_credits(
        &self,
        org_id: i64,
        generation: u64,
        value: CreditsSummary,
    ) -> Arc<CreditsSummary> {
        self.credits
            .put_unless_invalidated(org_id, generation, value, self.ttl)
    }

    /// An org's cached today if it is still the org's `local_day`, or the generation to put a
    /// fresh one with.
    pub fn today(&self, org_id: i64, local_day: chrono::NaiveDate) -> Result<Arc<Today>, u64> {
        self.today
            .get(&org_id, self.ttl)
            .filter(|today| today.local_day == local_day)
            .ok_or_else(|| self.today.generation(&org_id))
    }

    pub fn put_today(&self, org_id: i64, generation: u64, value: Today) -> Arc<Today> {
        self.today
            .put_unless_invalidated(org_id, generation, value, self.ttl)
    }

    pub fn token(&self, token_hash: &String) -> Option<Arc<(i64, chrono_tz::Tz)>> {
        self.tokens.get(token_hash, self.ttl)
    }

    pub fn put_token(
        &self,
        token_hash: String,
        org: (i64, chrono_tz::Tz),
    ) -> Arc<(i64, chrono_tz::Tz)> {
        self.tokens.put(token_hash, org, self.ttl)
    }

    /// Usage was admitted for an org: its Credits-tab figures are out of date.
    pub fn invalidate_credits(&self, org_id: i64) {
        self.credits.remove(&org_id);
        self.today.remove(&org_id);
    }

    /// Drop everything cached about an org (its sessions carry the org row too).
    pub fn invalidate_org(&self, org_id: i64) {
        self.credits.remove(&org_id);
        self.today.remove(&org_id);
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
        let before = map.generation(&1);
        map.put(1, "old", ttl);
        // A write of this process: the read that started before it must not be cached.
        map.remove(&1);
        map.put_unless_invalidated(1, before, "read before the write", ttl);
        assert_eq!(map.get(&1, ttl), None);
        let after = map.generation(&1);
        map.put_unless_invalidated(1, after, "read after the write", ttl);
        assert_eq!(map.get(&1, ttl).as_deref(), Some(&"read after the write"));
        assert_eq!(map.get(&1, Duration::ZERO), None, "expired");
    }
}
