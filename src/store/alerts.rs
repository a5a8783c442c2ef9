//! R13/R14 records: threshold crossings, the webhook outbox with its attempts, and the audit log of
//! alert, budget and webhook settings.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use std::collections::BTreeMap;

use super::{db_time, from_db_time};
use crate::db::DbConn;
use crate::db::schema::{alerts, orgs, settings_changes, webhook_attempts, webhook_deliveries};
use crate::domain::alerts::AlertKind;
use crate::domain::types::OrgId;

/// A threshold crossed by an admission (R13): of the daily limit on a day, or of the budget in a
/// billing period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub org_id: OrgId,
    pub kind: AlertKind,
    /// The day (daily limit), or the period's first day (budget).
    pub scope_start: NaiveDate,
    /// The day after the day, or the period's end (exclusive).
    pub scope_end: NaiveDate,
    pub threshold: u32,
    /// Additional credits used that day, or the period's charge in minor units.
    pub used: i64,
    /// The limit, or the budget in minor units.
    pub of: i64,
    /// The plan's currency, for a budget.
    pub currency: Option<String>,
    pub at: DateTime<Utc>,
}

/// Record each crossing whose (org, kind, scope, threshold) has none yet, and put an event for each
/// new one in the outbox of an org with a webhook; in the caller's transaction. Returns how many
/// were new.
pub fn record_crossings(conn: &mut DbConn, crossings: &[Crossing]) -> QueryResult<usize> {
    let mut first: BTreeMap<(OrgId, AlertKind, NaiveDate, u32), &Crossing> = BTreeMap::new();
    for c in crossings {
        first
            .entry((c.org_id, c.kind, c.scope_start, c.threshold))
            .or_insert(c);
    }
    let mut new = 0;
    for crossing in first.into_values() {
        let threshold = i32::try_from(crossing.threshold).unwrap_or(i32::MAX);
        let row = (
            alerts::org_id.eq(crossing.org_id),
            alerts::kind.eq(crossing.kind.as_str()),
            alerts::scope_start.eq(crossing.scope_start),
            alerts::threshold.eq(threshold),
            alerts::crossed_at.eq(db_time(crossing.at)),
            alerts::used.eq(crossing.used),
            alerts::of_total.eq(crossing.of),
        );
        let inserted: Option<i64> = crate::on_backend!(conn, c => diesel::insert_into(alerts::table)
            .values(row)
            .on_conflict_do_nothing()
            .returning(alerts::id)
            .get_result(c)
            .optional())?;
        if inserted.is_none() {
            continue;
        }
        new += 1;
        let webhook: Option<(String, Option<String>)> = orgs::table
            .find(crossing.org_id)
            .select((orgs::name, orgs::webhook_url))
            .first(conn)
            .optional()?;
        if let Some((org_name, Some(_url))) = webhook {
            let event = crate::webhooks::crossing_event(crossing, &org_name);
            enqueue(conn, crossing.org_id, &event, crossing.at)?;
        }
    }
    Ok(new)
}

/// One event to deliver to an org's webhook.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: String,
    pub event_type: &'static str,
    pub body: String,
}

/// Put an event in the outbox, due at once.
pub fn enqueue(
    conn: &mut DbConn,
    org_id: OrgId,
    event: &OutboxEvent,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::org_id.eq(org_id),
            webhook_deliveries::event_id.eq(&event.id),
            webhook_deliveries::event_type.eq(event.event_type),
            webhook_deliveries::body.eq(&event.body),
            webhook_deliveries::created_at.eq(db_time(now)),
            webhook_deliveries::state.eq(State::Pending.as_str()),
            webhook_deliveries::next_attempt_at.eq(db_time(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed (or the org has no webhook any more).
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

/// A delivery due now, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub org_id: OrgId,
    pub event_id: String,
    pub body: String,
    pub attempts: i32,
}

/// Up to `limit` pending deliveries due at `now`, not leased by a worker and not of the orgs in
/// `busy` (an org with an attempt in flight waits its turn without hiding other orgs' events),
/// oldest first.
pub fn due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    busy: &[OrgId],
    limit: i64,
) -> QueryResult<Vec<Due>> {
    let now = db_time(now);
    let rows: Vec<(i64, OrgId, String, String, i32)> = webhook_deliveries::table
        .filter(webhook_deliveries::state.eq(State::Pending.as_str()))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .filter(
            webhook_deliveries::lease_until
                .is_null()
                .or(webhook_deliveries::lease_until.lt(now)),
        )
        .filter(webhook_deliveries::org_id.ne_all(busy))
        .order((webhook_deliveries::next_attempt_at, webhook_deliveries::id))
        .limit(limit)
        .select((
            webhook_deliveries::id,
            webhook_deliveries::org_id,
            webhook_deliveries::event_id,
            webhook_deliveries::body,
            webhook_deliveries::attempts,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, org_id, event_id, body, attempts)| Due {
            id,
            org_id,
            event_id,
            body,
            attempts,
        })
        .collect())
}

/// Take a due delivery for one attempt until `lease_until`, under a token of its own: true for the
/// one worker (of any server) whose update found it still due, free and as it was read.
pub fn lease(
    conn: &mut DbConn,
    due: &Due,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    token: &str,
) -> QueryResult<bool> {
    let now = db_time(now);
    let taken = diesel::update(
        webhook_deliveries::table
            .find(due.id)
            .filter(webhook_deliveries::state.eq(State::Pending.as_str()))
            .filter(webhook_deliveries::next_attempt_at.le(now))
            .filter(webhook_deliveries::attempts.eq(due.attempts))
            .filter(
                webhook_deliveries::lease_until
                    .is_null()
                    .or(webhook_deliveries::lease_until.lt(now)),
            ),
    )
    .set((
        webhook_deliveries::lease_until.eq(db_time(lease_until)),
        webhook_deliveries::lease_token.eq(token),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// The org's webhook URL and secret, if it has a URL.
pub fn webhook_of(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Option<(String, String)>> {
    let found: Option<(Option<String>, Option<String>)> = orgs::table
        .find(org_id)
        .select((orgs::webhook_url, orgs::webhook_secret))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((Some(url), secret)) => Some((url, secret.unwrap_or_default())),
        _ => None,
    })
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// Log an attempt and, if `token` still holds the delivery's lease, move it on: delivered, due
/// again at `retry_at`, or failed. An attempt whose lease was lost (it ran out and another worker
/// took the delivery, or "retry now" reset it) is logged and changes nothing else.
pub fn finish_attempt(
    conn: &mut DbConn,
    id: i64,
    token: &str,
    attempt: &Attempt,
    outcome: State,
    retry_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::delivery_id.eq(id),
                webhook_attempts::attempted_at.eq(db_time(attempt.at)),
                webhook_attempts::status_code.eq(attempt.status_code.map(i32::from)),
                webhook_attempts::latency_ms.eq(attempt.latency_ms),
                webhook_attempts::error.eq(attempt.error.as_deref()),
            ))
            .execute(conn)?;
        let finished = (outcome != State::Pending).then(|| db_time(attempt.at));
        diesel::update(
            webhook_deliveries::table
                .find(id)
                .filter(webhook_deliveries::lease_token.eq(token))
                .filter(webhook_deliveries::state.eq(State::Pending.as_str())),
        )
        .set((
            webhook_deliveries::state.eq(outcome.as_str()),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::next_attempt_at.eq(db_time(retry_at.unwrap_or(attempt.at))),
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::lease_token.eq(None::<String>),
            webhook_deliveries::finished_at.eq(finished),
        ))
        .execute(conn)?;
        Ok(())
    })
}

/// "Retry now": a pending or failed delivery of the org is due at once, with attempts to spare.
/// False when there is no such delivery of this org.
pub fn retry_now(
    conn: &mut DbConn,
    org_id: OrgId,
    id: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(
        webhook_deliveries::table
            .find(id)
            .filter(webhook_deliveries::org_id.eq(org_id))
            .filter(webhook_deliveries::state.ne(State::Delivered.as_str())),
    )
    .set((
        webhook_deliveries::state.eq(State::Pending.as_str()),
        webhook_deliveries::next_attempt_at.eq(db_time(now)),
        webhook_deliveries::attempts.eq(0),
        webhook_deliveries::finished_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
        webhook_deliveries::lease_token.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// A recorded crossing, for the pages.
#[derive(Debug, Clone, Queryable)]
pub struct AlertRow {
    pub id: i64,
    pub kind: String,
    pub scope_start: NaiveDate,
    pub threshold: i32,
    pub crossed_at: NaiveDateTime,
    pub used: i64,
    pub of_total: i64,
}

/// The org's latest crossings, newest first.
pub fn recent_alerts(conn: &mut DbConn, org_id: OrgId, limit: i64) -> QueryResult<Vec<AlertRow>> {
    alerts::table
        .filter(alerts::org_id.eq(org_id))
        .order((alerts::crossed_at.desc(), alerts::id.desc()))
        .limit(limit)
        .select((
            alerts::id,
            alerts::kind,
            alerts::scope_start,
            alerts::threshold,
            alerts::crossed_at,
            alerts::used,
            alerts::of_total,
        ))
        .load(conn)
}

/// (delivery, attempted at, status, latency in ms, error), as stored.
type AttemptRow = (i64, NaiveDateTime, Option<i32>, i64, Option<String>);

/// A delivery with its attempts, for the Alerts page.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub state: String,
    pub next_attempt_at: DateTime<Utc>,
    pub attempts: Vec<Attempt>,
}

/// The org's latest deliveries, newest first, each with its attempts in order.
pub fn recent_deliveries(
    conn: &mut DbConn,
    org_id: OrgId,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let rows: Vec<(i64, String, String, NaiveDateTime, String, NaiveDateTime)> =
        webhook_deliveries::table
            .filter(webhook_deliveries::org_id.eq(org_id))
            .order(webhook_deliveries::id.desc())
            .limit(limit)
            .select((
                webhook_deliveries::id,
                webhook_deliveries::event_id,
                webhook_deliveries::event_type,
                webhook_deliveries::created_at,
                webhook_deliveries::state,
                webhook_deliveries::next_attempt_at,
            ))
            .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let attempts: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::id))
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempted_at,
            webhook_attempts::status_code,
            webhook_attempts::latency_ms,
            webhook_attempts::error,
        ))
        .load(conn)?;
    let mut by_delivery: BTreeMap<i64, Vec<Attempt>> = BTreeMap::new();
    for (delivery, at, status, latency_ms, error) in attempts {
        by_delivery.entry(delivery).or_default().push(Attempt {
            at: from_db_time(at),
            status_code: status.and_then(|s| u16::try_from(s).ok()),
            latency_ms,
            error,
        });
    }
    Ok(rows
        .into_iter()
        .map(
            |(id, event_id, event_type, created_at, state, next_attempt_at)| DeliveryRow {
                attempts: by_delivery.remove(&id).unwrap_or_default(),
                id,
                event_id,
                event_type,
                created_at: from_db_time(created_at),
                state,
                next_attempt_at: from_db_time(next_attempt_at),
            },
        )
        .collect())
}

/// A setting that the audit log follows, besides the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Thresholds,
    Budget,
    WebhookUrl,
    WebhookSecret,
}

impl Setting {
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Thresholds => "alert thresholds",
            Setting::Budget => "budget",
            Setting::WebhookUrl => "webhook URL",
            Setting::WebhookSecret => "webhook secret",
        }
    }
}

/// The alert settings of an org as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub thresholds: String,
    pub budget_minor: Option<i64>,
    pub budget_stop: bool,
    pub webhook_url: Option<String>,
    pub has_secret: bool,
}

pub fn settings(conn: &mut DbConn, org_id: OrgId) -> QueryResult<AlertSettings> {
    let (thresholds, budget_minor, budget_stop, webhook_url, secret): (
        String,
        Option<i64>,
        bool,
        Option<String>,
        Option<String>,
    ) = orgs::table
        .find(org_id)
        .select((
            orgs::alert_thresholds,
            orgs::budget_minor,
            orgs::budget_stop,
            orgs::webhook_url,
            orgs::webhook_secret,
        ))
        .first(conn)?;
    Ok(AlertSettings {
        thresholds,
        budget_minor,
        budget_stop,
        webhook_url,
        has_secret: secret.is_some(),
    })
}

/// Whose setting changes, who changes it, and when.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub org_id: OrgId,
    pub by: &'a str,
    pub now: DateTime<Utc>,
}

/// One audited change of a setting, in one transaction: the org's row is locked (PostgreSQL), its
/// current value read by `current` from the settings as they are then, and, when `new` differs,
/// written by `apply` and logged with the old and new values. False when nothing changed.
pub fn change_setting(
    conn: &mut DbConn,
    change: Change<'_>,
    setting: Setting,
    current: impl FnOnce(&AlertSettings) -> String,
    new: String,
    apply: impl FnOnce(&mut DbConn) -> QueryResult<usize>,
) -> QueryResult<bool> {
    let Change { org_id, by, now } = change;
    crate::db::write_transaction(conn, |conn| {
        super::orgs::lock_exclusive(conn, org_id)?;
        let old = current(&settings(conn, org_id)?);
        if old == new {
            return Ok(false);
        }
        apply(conn)?;
        diesel::insert_into(settings_changes::table)
            .values((
                settings_changes::org_id.eq(org_id),
                settings_changes::changed_at.eq(db_time(now)),
                settings_changes::changed_by.eq(by),
                settings_changes::setting.eq(setting.as_str()),
                settings_changes::old_value.eq(&old),
                settings_changes::new_value.eq(&new),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Set or remove the org's webhook URL, audited.
pub fn set_webhook_url(
    conn: &mut DbConn,
    org_id: OrgId,
    url: Option<&str>,
    by: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    change_setting(
        conn,
        Change { org_id, by, now },
        Setting::WebhookUrl,
        |s| s.webhook_url.clone().unwrap_or_else(|| "none".into()),
        url.unwrap_or("none").to_string(),
        |conn| {
            diesel::update(orgs::table.find(org_id))
                .set(orgs::webhook_url.eq(url))
                .execute(conn)
        },
    )
}

/// A logged change of a setting, for the audit page.
#[derive(Debug, Clone, Queryable)]
pub struct SettingChange {
    pub changed_at: NaiveDateTime,
    pub changed_by: String,
    pub setting: String,
    pub old_value: String,
    pub new_value: String,
}

/// The org's latest `limit` setting changes, newest first.
pub fn setting_changes(
    conn: &mut DbConn,
    org_id: OrgId,
    limit: i64,
) -> QueryResult<Vec<SettingChange>> {
    settings_changes::table
        .filter(settings_changes::org_id.eq(org_id))
        .limit(limit)
        .order((
            settings_changes::changed_at.desc(),
            settings_changes::id.desc(),
        ))
        .select((
            settings_changes::changed_at,
            settings_changes::changed_by,
            settings_changes::setting,
            settings_changes::old_value,
            settings_changes::new_value,
        ))
        .load(conn)
}

/// A new signing secret for the org's webhook, in force at once and logged as changed (its value
/// never is). Returned to be shown once.
pub fn new_webhook_secret(
    conn: &mut DbConn,
    org_id: OrgId,
    by: &str,
    now: DateTime<Utc>,
) -> QueryResult<String> {
    let secret = format!("whsec_{}", crate::secrets::random_hex_256());
    let stored = secret.clone();
    change_setting(
        conn,
        Change { org_id, by, now },
        Setting::WebhookSecret,
        |s| if s.has_secret { "set" } else { "none" }.to_string(),
        format!("new secret ({})", now.format("%Y-%m-%d %H:%M:%S UTC")),
        |conn| {
            diesel::update(orgs::table.find(org_id))
                .set(orgs::webhook_secret.eq(Some(&stored)))
                .execute(conn)
        },
    )?;
    Ok(secret)
}
