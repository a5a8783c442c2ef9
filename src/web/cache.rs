//! A short-lived in-process cache for the dashboard's hot reads: signed-in sessions and each org's
//! Credits-tab figures. Writes made by this process (limit changes, sign-out, admitted usage)
//! invalidate at once; writes by other processes (CLI, other servers on PostgreSQL) show within the
//! TTL, one second by default.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Eq + Hash, V> TtlMap<K, V> {
    fn new() -> Self {
        TtlMap {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<Arc<V>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) -> Arc<V> {
        let value = Arc::new(value);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        map.insert(key, (Instant::now(), value.clone()));
        value
    }

    fn remove<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
    {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }

    fn remove_where(&self, keep: impl Fn(&K, &V) -> bool) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, (_, v)| keep(k, v));
    }
}

pub struct ReadCache<C> {
    ttl: Duration,
    sessions: TtlMap<String, SessionEntry>,
    credits: TtlMap<i64, C>,
    /// API token hash → (org id, org time zone).
    tokens: TtlMap<String, (i64, chrono_tz::Tz)>,
}

impl<C> ReadCache<C> {
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            sessions: TtlMap::new(),
            credits: TtlMap::new(),
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

    pub fn credits(&self, org_id: i64) -> Option<Arc<C>> {
        self.credits.get(&org_id, self.ttl)
    }

    pub fn put_credits(&self, org_id: i64, value: C) -> Arc<C> {
        self.credits.put(org_id, value, self.ttl)
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
    }

    /// Drop everything cached about an org (its sessions carry the org row too).
    pub fn invalidate_org(&self, org_id: i64) {
        self.credits.remove(&org_id);
        self.sessions.remove_where(|_, s| s.org.id != org_id);
    }
}
