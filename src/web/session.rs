//! Sign-in sessions (a random cookie whose hash is stored), the signed-in extractor with its role
//! checks, CSRF checks, and the sign-in throttle.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cache::SessionEntry;
use super::{AppError, AppState};
use crate::domain::access::{self, LimitChangeRefused};
use crate::secrets;
use crate::store::orgs::{self, OrgRow};
use crate::store::users::{self, Role, UserRow};

pub const SESSION_COOKIE: &str = "cm_session";
pub const LOGIN_CSRF_COOKIE: &str = "cm_login_csrf";

/// A signed-in user with their org and the session's CSRF token.
pub struct SignedIn {
    pub user: UserRow,
    pub org: OrgRow,
    pub csrf_token: String,
    pub cookie_value: String,
}

impl SignedIn {
    pub fn role(&self) -> Role {
        self.user.role()
    }

    /// Super admins and admins only (SPEC §1); other users get 403.
    pub fn require_credits_access(&self) -> Result<(), AppError> {
        if self.role().sees_credits() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "The Credits tab is for super admins and admins of your organisation. Ask your super admin for access.".into(),
            ))
        }
    }

    /// Why this user may not change the additional limit, if they may not (R2).
    pub fn limit_change_refusal(&self) -> Option<LimitChangeRefused> {
        access::may_change_limit(self.role(), self.org.edition()).err()
    }

    pub fn check_csrf(&self, given: &str) -> Result<(), AppError> {
        check_csrf(&self.csrf_token, given)
    }
}

pub fn check_csrf(expected: &str, given: &str) -> Result<(), AppError> {
    if !expected.is_empty() && secrets::constant_time_eq(expected, given.trim()) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This form has expired or did not come from this site. Reload the page and try again."
                .into(),
        ))
    }
}

impl FromRequest for SignedIn {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        // A page asked for without a session is where sign-in returns to.
        let asked = (req.method() == actix_web::http::Method::GET)
            .then(|| req.uri().path_and_query().map(|p| p.as_str().to_string()))
            .flatten();
        let signed_in = async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let cookie_value = cookie
                .filter(|c| c.len() == 64)
                .ok_or(AppError::SignInRequired(None))?;
            let now = state.clock.now();
            let cookie_hash = secrets::token_hash(&cookie_value);
            let entry = match state.cache.session(&cookie_hash, now) {
                Some(entry) => entry,
                None => {
                    let lookup = cookie_value.clone();
                    let generation = state.cache.session_generation();
                    let entry = state
                        .db(move |conn| {
                            let found = users::session_user(conn, &lookup, now)?
                                .ok_or(AppError::SignInRequired(None))?;
                            let (user, csrf_token, expires_at) = found;
                            let org = orgs::find(conn, user.org_id)?
                                .ok_or(AppError::SignInRequired(None))?;
                            Ok(SessionEntry {
                                user,
                                org,
                                csrf_token,
                                expires_at,
                            })
                        })
                        .await?;
                    state.cache.put_session(cookie_hash, generation, entry)
                }
            };
            let SessionEntry {
                user,
                org,
                csrf_token,
                ..
            } = (*entry).clone();
            Ok(SignedIn {
                user,
                org,
                csrf_token,
                cookie_value,
            })
        };
        Box::pin(async move {
            signed_in.await.map_err(|e| match e {
                AppError::SignInRequired(_) => AppError::SignInRequired(asked),
                other => other,
            })
        })
    }
}

/// A cookie with the flags every cookie of ours carries.
pub fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
    max_age: Option<CookieDuration>,
) -> Cookie<'static> {
    let mut builder = Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure);
    if let Some(age) = max_age {
        builder = builder.max_age(age);
    }
    builder.finish()
}

pub fn removal(name: &'static str, path: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(
        name,
        String::new(),
        path,
        secure,
        Some(CookieDuration::ZERO),
    );
    c.make_removal();
    c
}

/// Failed sign-ins per email and per client address within a window; past the limit further
/// attempts are refused until the window ends.
/// One address entry of `X-Forwarded-For`: `ip`, `ip:port` or `[ipv6]:port`.
fn forwarded_ip(entry: &str) -> Option<std::net::IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest address
/// in `X-Forwarded-For` that is not one. Walking from the right stops at an entry that cannot be
/// read (what is left of it is the client's own claim), at the proxy that appended it. IPv4
/// addresses seen through IPv6 sockets count as IPv4.
pub fn client_address(req: &actix_web::HttpRequest, trusted: &[std::net::IpAddr]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip().to_canonical()) else {
        return String::new();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match forwarded_ip(entry) {
            Some(ip) if trusted.contains(&ip) => client = ip,
            Some(ip) => return ip.to_string(),
            None => break,
        }
    }
    client.to_string()
}

/// The throttle's bucket of an address: an IPv6 client owns a whole /64, so it is one bucket.
fn address_bucket(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => address.to_string(),
    }
}

pub struct SignInThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Failed sign-ins for one email from one address before that pair waits out the window.
pub const MAX_FAILURES_PER_EMAIL: u32 = 5;
/// Failed sign-ins for one email, from all addresses, before each further attempt is slowed down
/// (never refused: whoever knows an email cannot lock its owner out).
pub const SLOW_DOWN_AFTER: u32 = 10;
pub const MAX_FAILURES_PER_ADDRESS: u32 = 30;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl SignInThrottle {
    fn keys(email: &str, address: &str) -> [(String, u32); 2] {
        let address = address_bucket(address);
        [
            (
                format!("pair:{address}:{}", Self::email_part(email)),
                MAX_FAILURES_PER_EMAIL,
            ),
            (format!("addr:{address}"), MAX_FAILURES_PER_ADDRESS),
        ]
    }

    /// The email as a key: normalized, and no longer than an email can be (the form's field is not).
    fn email_part(email: &str) -> String {
        users::normalize_email(email).chars().take(254).collect()
    }

    fn email_key(email: &str) -> String {
        format!("email:{}", Self::email_part(email))
    }

    /// How long to wait before checking a password for `email`: nothing at first, then a quarter
    /// second more per failure past `SLOW_DOWN_AFTER`, at most 5 s.
    pub fn delay_for(&self, email: &str) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let failures = match map.get(&Self::email_key(email)) {
            Some((count, since)) if since.elapsed() < THROTTLE_WINDOW => *count,
            _ => 0,
        };
        Duration::from_millis(250 * u64::from(failures.saturating_sub(SLOW_DOWN_AFTER).min(20)))
    }

    /// Start an attempt: whether it is allowed, and if so it counts as a failure at once (under
    /// the same lock), so that attempts sent in parallel cannot all pass before any is counted. A
    /// successful sign-in clears its counts (`record_success`).
    pub fn begin_attempt(&self, email: &str, address: &str) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let allowed = Self::keys(email, address)
            .iter()
            .all(|(key, max)| match map.get(key) {
                Some((count, since)) if since.elapsed() < THROTTLE_WINDOW => count < max,
                _ => true,
            });
        if !allowed {
            return false;
        }
        if map.len() > 50_000 {
            map.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        }
        let keys = Self::keys(email, address).map(|(key, _)| key);
        for key in keys.into_iter().chain([Self::email_key(email)]) {
            let entry = map.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= THROTTLE_WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
        true
    }

    pub fn record_success(&self, email: &str, address: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&Self::email_key(email));
        let [(pair, _), (addr, _)] = Self::keys(email, address);
        map.remove(&pair);
        // This attempt counted against its address when it began; a success takes it back.
        if let Some((count, _)) = map.get_mut(&addr) {
            *count = count.saturating_sub(1);
        }
    }
}
