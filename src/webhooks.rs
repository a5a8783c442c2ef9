//! Webhook events (R13/R14): their JSON bodies, their signature, and the background worker that
//! delivers the outbox with back-off, away from admission and one org's receiver never holding up
//! another's.
//!
//! A delivery is one POST of the event's body with `X-Creditmeter-Signature: t=<unix>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">` (the org's secret as the key) and `X-Creditmeter-Event: <id>`. A
//! 2xx answer delivers it; anything else (another status, a refused connection, a timeout) is a
//! failed attempt, retried after `retry_base × 4^(attempt-1)` (at most 6 hours) scaled by a
//! random 0.5 to 1.0, until `max_attempts` attempts failed. Retry times are on the real clock even
//! under `CREDITMETER_NOW`: a receiver checks `t` against its own clock.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::DbPool;
use crate::domain::alerts::AlertKind;
use crate::domain::calendar::human_date;
use crate::domain::money::format_minor;
use crate::domain::types::OrgId;
use crate::store::alerts::{self as outbox, Attempt, Crossing, OutboxEvent, State};
use crate::web::schema::{
    BudgetCrossed, DailyLimitCrossed, TestEventData, WebhookData, WebhookEvent, WebhookOrg,
};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Deliver to loopback, private, link-local and other non-public addresses (tests, on-premise
    /// receivers). Off by default.
    pub allow_private: bool,
    /// The wait after the first failed attempt; each later one waits four times longer.
    pub retry_base: Duration,
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: u32,
    /// The most one attempt may take, connection and answer included.
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            allow_private: false,
            retry_base: Duration::from_secs(30),
            max_attempts: 8,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The longest wait between two attempts.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(6 * 3600);
/// Attempts in flight at once on one server (each org has at most one).
pub const MAX_IN_FLIGHT: usize = 32;
/// What a lease gives an attempt beyond its timeout: the waits for a database connection.
const LEASE_MARGIN: Duration = Duration::from_secs(90);
/// How often the worker looks for due deliveries.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The wait before the attempt after `failed` failed attempts, before jitter.
pub fn retry_wait(base: Duration, failed: u32) -> Duration {
    let factor = 4u32.saturating_pow(failed.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_RETRY_WAIT)
}

fn new_event_id() -> String {
    format!("evt_{}", &crate::secrets::random_hex_256()[..32])
}

fn event(
    org_id: OrgId,
    org_name: &str,
    event_type: &'static str,
    at: DateTime<Utc>,
    data: WebhookData,
) -> OutboxEvent {
    let id = new_event_id();
    let body = WebhookEvent {
        id: id.clone(),
        event_type: event_type.to_string(),
        created_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        org: WebhookOrg {
            id: org_id.get(),
            name: org_name.to_string(),
        },
        data,
    };
    OutboxEvent {
        id,
        event_type,
        body: serde_json::to_string(&body).expect("an event serializes"),
    }
}

/// The event telling that a threshold was crossed.
pub fn crossing_event(crossing: &Crossing, org_name: &str) -> OutboxEvent {
    let (event_type, data) = match crossing.kind {
        AlertKind::DailyLimit => (
            "credits.threshold_crossed",
            WebhookData::DailyLimit(DailyLimitCrossed {
                kind: crossing.kind.as_str().into(),
                day: crossing.scope_start.to_string(),
                threshold: crossing.threshold,
                additional_used: crossing.used,
                additional_limit: crossing.of,
            }),
        ),
        AlertKind::Budget => {
            let currency = crossing.currency.as_deref().unwrap_or("USD");
            (
                "budget.threshold_crossed",
                WebhookData::Budget(BudgetCrossed {
                    kind: crossing.kind.as_str().into(),
                    period_start: crossing.scope_start.to_string(),
                    period_end: crossing.scope_end.to_string(),
                    threshold: crossing.threshold,
                    charged: format_minor(crossing.used, currency),
                    budget: format_minor(crossing.of, currency),
                    currency: currency.into(),
                }),
            )
        }
    };
    event(crossing.org_id, org_name, event_type, crossing.at, data)
}

/// The event a super admin sends to check their receiver.
pub fn test_event(org_id: OrgId, org_name: &str, now: DateTime<Utc>) -> OutboxEvent {
    let data = WebhookData::Test(TestEventData {
        message: format!("A test event sent on {}.", human_date(now.date_naive())),
    });
    event(org_id, org_name, "webhook.test", now, data)
}

/// The `X-Creditmeter-Signature` value of `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: i64, body: &str) -> String {
    let mac = crate::secrets::hmac_hex(secret, &format!("{unix_seconds}.{body}"));
    format!("t={unix_seconds},v1={mac}")
}

/// Why a webhook URL is refused, in a sentence for the form.
pub fn check_url(url: &str) -> Result<(), String> {
    let trimmed = url.trim();
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or("The webhook URL must start with https:// or http://.")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || trimmed.chars().any(char::is_whitespace) {
        return Err("The webhook URL needs a host name, and no user name or spaces.".into());
    }
    if trimmed.len() > 2000 || trimmed.chars().any(char::is_control) {
        return Err("The webhook URL is too long or has control characters.".into());
    }
    Ok(())
}

/// Whether deliveries may go to this address by default: public unicast only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            // Forms that carry an IPv4 address: mapped, compatible, NAT64 (64:ff9b::/96), 6to4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                ))
            };
            // ::/96: unspecified, loopback and the deprecated IPv4-compatible form.
            if seg[..6] == [0; 6] {
                return false;
            }
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public(embedded(seg[6], seg[7]));
            }
            if seg[0] == 0x2002 {
                return is_public(embedded(seg[1], seg[2]));
            }
            let first = seg[0];
            !(v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x64 && seg[1] == 0xff9b)
                || (first == 0x2001 && seg[1] == 0)
                || (first == 0x2001 && seg[1] == 0x0db8)
                || (first == 0x0100 && seg[1..4] == [0, 0, 0]))
        }
    }
}

/// Resolves a receiver's host and keeps only the addresses a delivery may go to: the check is on
/// the addresses the connection then uses, so a name that resolves differently later (DNS
/// rebinding) cannot slip through.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
    inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let all = self.inner.resolve(uri, config, timeout)?;
        if self.allow_private {
            return Ok(all);
        }
        let mut kept = self.empty();
        for addr in all.iter().filter(|a| is_public(a.ip())) {
            kept.push(*addr);
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the receiver's address is loopback, private or link-local (see --webhook-allow-private)",
            )));
        }
        Ok(kept)
    }
}

fn agent(config: &WebhookConfig) -> ureq::Agent {
    let settings = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        // A proxy from the environment would be the address checked, not the receiver's.
        .proxy(None)
        .user_agent("creditmeter-webhooks/1")
        .build();
    ureq::Agent::with_parts(
        settings,
        ureq::unversioned::transport::DefaultConnector::default(),
        GuardedResolver {
            allow_private: config.allow_private,
            inner: ureq::unversioned::resolver::DefaultResolver::default(),
        },
    )
}

/// POST one event; what the attempt came to.
fn send(agent: &ureq::Agent, url: &str, secret: &str, event_id: &str, body: &str) -> Attempt {
    let at = Utc::now();
    let started = Instant::now();
    let sent = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Creditmeter-Event", event_id)
        .header(
            "X-Creditmeter-Signature",
            signature(secret, at.timestamp(), body),
        )
        .send(body);
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            Attempt {
                at,
                status_code: Some(status),
                latency_ms,
                error: (!(200..300).contains(&status)).then(|| format!("answered {status}")),
            }
        }
        Err(error) => Attempt {
            at,
            status_code: None,
            latency_ms,
            error: Some(error.to_string()),
        },
    }
}

/// Start the delivery worker on its own threads: one that finds due deliveries, and one per
/// attempt in flight (at most `MAX_IN_FLIGHT`, one per org).
pub fn start(pool: DbPool, config: WebhookConfig) {
    let in_flight: InFlight = Arc::default();
    let agent = agent(&config);
    // An attempt that ends wakes the finder, so an org's next event need not wait for a poll.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            loop {
                let _ = finished.recv_timeout(POLL_EVERY);
                let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    dispatch(&pool, &config, &agent, &in_flight, &done)
                }));
                match found {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "webhook worker: cannot read the outbox")
                    }
                    Err(_) => tracing::error!("webhook worker: the finder panicked; it goes on"),
                }
            }
        })
        .expect("a thread for the webhook worker");
}

/// The orgs with an attempt in flight on this server.
type InFlight = Arc<Mutex<HashSet<OrgId>>>;

fn flying(in_flight: &InFlight) -> std::sync::MutexGuard<'_, HashSet<OrgId>> {
    // A set of ids stays consistent even if a holder panicked.
    in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Frees an org's slot when its attempt ends, however it ends, and wakes the finder.
struct Slot {
    org_id: OrgId,
    in_flight: InFlight,
    done: std::sync::mpsc::Sender<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        flying(&self.in_flight).remove(&self.org_id);
        let _ = self.done.send(());
    }
}

fn dispatch(
    pool: &DbPool,
    config: &WebhookConfig,
    agent: &ureq::Agent,
    in_flight: &InFlight,
    done: &std::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let busy: Vec<OrgId> = flying(in_flight).iter().copied().collect();
    if busy.len() >= MAX_IN_FLIGHT {
        return Ok(());
    }
    let mut conn = pool.get()?;
    let now = Utc::now();
    // Long enough for an attempt and the connections it waits for; a lease that runs out lets
    // another worker send again (at least once), and the first attempt's outcome is then ignored.
    let lease_until = now
        + chrono::Duration::from_std(config.timeout + LEASE_MARGIN)
            .unwrap_or(chrono::Duration::MAX);
    for due in outbox::due(&mut conn, now, &busy, MAX_IN_FLIGHT as i64)? {
        let token = crate::secrets::random_hex_256();
        {
            let mut flying = flying(in_flight);
            if flying.len() >= MAX_IN_FLIGHT || flying.contains(&due.org_id) {
                continue;
            }
            if !outbox::lease(&mut conn, &due, now, lease_until, &token)? {
                continue;
            }
            flying.insert(due.org_id);
        }
        let slot = Slot {
            org_id: due.org_id,
            in_flight: in_flight.clone(),
            done: done.clone(),
        };
        let (pool, config, agent) = (pool.clone(), config.clone(), agent.clone());
        std::thread::spawn(move || {
            let _slot = slot;
            let org_id = due.org_id;
            if let Err(e) = attempt(&pool, &config, &agent, due, &token) {
                tracing::warn!(org = %org_id, error = %e, "webhook worker: cannot record an attempt");
            }
        });
    }
    Ok(())
}

fn attempt(
    pool: &DbPool,
    config: &WebhookConfig,
    agent: &ureq::Agent,
    due: outbox::Due,
    token: &str,
) -> anyhow::Result<()> {
    let webhook = {
        let mut conn = pool.get()?;
        outbox::webhook_of(&mut conn, due.org_id)?
    };
    // Without a URL or a secret nothing is sent, and waiting would not change that.
    let sendable = matches!(&webhook, Some((_, secret)) if !secret.is_empty());
    let result = match &webhook {
        Some((url, secret)) if !secret.is_empty() => {
            send(agent, url, secret, &due.event_id, &due.body)
        }
        Some(_) => Attempt {
            at: Utc::now(),
            status_code: None,
            latency_ms: 0,
            error: Some("the webhook has no signing secret: make one on the Alerts page".into()),
        },
        None => Attempt {
            at: Utc::now(),
            status_code: None,
            latency_ms: 0,
            error: Some("the org has no webhook URL".into()),
        },
    };
    let failed = u32::try_from(due.attempts).unwrap_or(0) + 1;
    let (state, retry_at) = if result.error.is_none() {
        (State::Delivered, None)
    } else if !sendable || failed >= config.max_attempts {
        (State::Failed, None)
    } else {
        let wait = retry_wait(config.retry_base, failed).mul_f64(0.5 + rand::random::<f64>() / 2.0);
        let at = result.at + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        (State::Pending, Some(at))
    };
    match (&state, &result.error) {
        (State::Delivered, _) => {
            tracing::info!(org = %due.org_id, event = %due.event_id, latency_ms = result.latency_ms, "webhook delivered")
        }
        (_, Some(error)) => {
            tracing::warn!(org = %due.org_id, event = %due.event_id, attempt = failed, error = %error, "webhook attempt failed")
        }
        _ => {}
    }
    let mut conn = pool.get()?;
    outbox::finish_attempt(&mut conn, due.id, token, &result, state, retry_at)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r13_retries_back_off_four_times_longer_up_to_a_cap() {
        let base = Duration::from_secs(30);
        assert_eq!(retry_wait(base, 1), Duration::from_secs(30));
        assert_eq!(retry_wait(base, 2), Duration::from_secs(120));
        assert_eq!(retry_wait(base, 3), Duration::from_secs(480));
        assert_eq!(retry_wait(base, 40), MAX_RETRY_WAIT);
    }

    #[test]
    fn r13_the_signature_is_an_hmac_of_the_time_and_the_body() {
        let signed = signature("secret", 1_700_000_000, "{}");
        let expected = crate::secrets::hmac_hex("secret", "1700000000.{}");
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn r13_deliveries_go_to_public_addresses_only_by_default() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:0a00:0001::1",
            "fec0::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn r13_webhook_urls_are_http_or_https_with_a_host() {
        assert!(check_url("https://hooks.example.com/creditmeter").is_ok());
        assert!(check_url("http://10.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://user@host/",
            "file:///etc/passwd",
            "https://a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
