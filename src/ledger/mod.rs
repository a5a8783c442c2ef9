//! Admission and metering: the only code that writes usage. A batch of requests (for any orgs) is
//! applied in one write transaction: each is decided in arrival order with R4/R11/R12, the touched
//! day rollups are rewritten with their amount derived from the day's plan (R5), the keys of events
//! that carry an id are kept (R9), and every admitted event is appended to the raw events. Nothing
//! is visible, and nothing may be acknowledged, before the transaction commits.

pub mod writer;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::QueryResult;
use std::collections::{HashMap, HashSet};

use crate::db::DbConn;
use crate::domain::admission::{DayBudget, LimitHit};
use crate::domain::allowance::{AllowanceChange, allowance_on};
use crate::domain::calendar;
use crate::domain::pricing::PricePlan;
use crate::store::limits::{self, LimitChangeRow};
use crate::store::orgs::{self, OrgRow};
use crate::store::usage::{self, BreakdownRow, DayRow, EventInsert};
use crate::store::{db_time, plans, statements};

/// Live calls spend against the limit in force now; metered usage against the limit in force at the
/// event's time (R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Live,
    Metered,
}

#[derive(Debug, Clone)]
pub struct UsageRequest {
    pub org_id: i64,
    pub kind: Kind,
    pub event_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub credits: i64,
    pub operation: String,
    pub client: String,
    pub user: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    LimitExceeded(LimitHit),
    PeriodClosed,
    FutureTimestamp,
    UnknownOrg,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Refusal::PeriodClosed => "PERIOD_CLOSED",
            Refusal::FutureTimestamp => "FUTURE_TIMESTAMP",
            Refusal::UnknownOrg => "UNKNOWN_ORG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        local_day: NaiveDate,
        free: i64,
        additional: i64,
        budget: DayBudget,
    },
    Duplicate {
        budget: Option<DayBudget>,
    },
    Refused {
        reason: Refusal,
        budget: Option<DayBudget>,
    },
}

/// How far in the future an event may be dated (R12).
pub const FUTURE_TOLERANCE_HOURS: i64 = 24;

struct OrgContext {
    org: OrgRow,
    allowances: Vec<AllowanceChange>,
    limit_history: Vec<LimitChangeRow>,
    closed: Vec<(NaiveDate, NaiveDate)>,
}

impl OrgContext {
    fn load(conn: &mut DbConn, org_id: i64) -> QueryResult<Option<Self>> {
        let Some(org) = orgs::find(conn, org_id)? else {
            return Ok(None);
        };
        Ok(Some(OrgContext {
            allowances: orgs::allowance_history(conn, org_id)?,
            limit_history: limits::history(conn, org_id)?,
            closed: statements::closed_periods(conn, org_id)?,
            org,
        }))
    }

    fn free_allowance(&self, local_day: NaiveDate) -> i64 {
        allowance_on(&self.allowances, local_day)
            .unwrap_or_else(|| self.org.allowance())
            .daily_free_credits()
    }

    fn is_closed(&self, local_day: NaiveDate) -> bool {
        self.closed
            .iter()
            .any(|(start, end)| *start <= local_day && local_day < *end)
    }
}

/// What the writer read in earlier batches: org contexts, day rows and plans. On SQLite it stays
/// valid while `PRAGMA data_version` is unchanged, which means no other connection committed
/// anything (this connection's own commits do not change it); on PostgreSQL it lasts one batch.
#[derive(Default)]
pub struct LedgerCache {
    data_version: Option<i64>,
    contexts: HashMap<i64, Option<OrgContext>>,
    days: HashMap<(i64, NaiveDate), DayRow>,
    plans: HashMap<i64, PricePlan>,
}

#[derive(diesel::QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

impl LedgerCache {
    /// Keep what is still true; called inside the write transaction, when nobody else can commit.
    fn revalidate(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        use diesel::RunQueryDsl;
        let version = match conn {
            DbConn::Sqlite(c) => Some(
                crate::db::CachedSql("PRAGMA data_version")
                    .get_result::<DataVersion>(c)?
                    .data_version,
            ),
            DbConn::Postgresql(_) => None,
        };
        if version.is_none() || version != self.data_version {
            *self = LedgerCache {
                data_version: version,
                ..LedgerCache::default()
            };
        }
        Ok(())
    }
}

/// Apply one batch in one write transaction and return one outcome per request, in order.
pub fn apply_batch(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[UsageRequest],
) -> QueryResult<Vec<Outcome>> {
    apply_batch_cached(conn, now, requests, &mut LedgerCache::default())
}

/// `apply_batch` for a caller that applies many batches on one connection (the writer).
pub fn apply_batch_cached(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[UsageRequest],
    cache: &mut LedgerCache,
) -> QueryResult<Vec<Outcome>> {
    let result = crate::db::write_transaction(conn, |conn| {
        cache.revalidate(conn)?;
        apply_in_transaction(conn, now, requests, cache)
    });
    if result.is_err() {
        // Rolled back: what the cache learnt in this batch is not in the database.
        *cache = LedgerCache::default();
    }
    result
}

fn apply_in_transaction(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[UsageRequest],
    cache: &mut LedgerCache,
) -> QueryResult<Vec<Outcome>> {
    let LedgerCache {
        contexts,
        days,
        plans: plan_cache,
        ..
    } = cache;
    let mut dirty: HashSet<(i64, NaiveDate)> = HashSet::new();
    let mut seen_ids: HashSet<(i64, String)> = HashSet::new();
    let mut breakdown: HashMap<(i64, NaiveDate, &str, &str), (i64, i64)> = HashMap::new();
    let mut events: Vec<EventInsert> = Vec::new();
    let mut outcomes = Vec::with_capacity(requests.len());
    let known_ids = usage::existing_event_ids(
        conn,
        requests
            .iter()
            .filter_map(|r| Some((r.org_id, r.event_id.as_deref()?))),
    )?;

    for request in requests {
        if let std::collections::hash_map::Entry::Vacant(e) = contexts.entry(request.org_id) {
            e.insert(OrgContext::load(conn, request.org_id)?);
        }
        let Some(ctx) = contexts.get(&request.org_id).and_then(Option::as_ref) else {
            outcomes.push(Outcome::Refused {
                reason: Refusal::UnknownOrg,
                budget: None,
            });
            continue;
        };
        let local_day = ctx.org.local_day(request.occurred_at);
        let limit = match request.kind {
            Kind::Live => ctx.org.additional_limit,
            Kind::Metered => limits::limit_at(&ctx.limit_history, request.occurred_at),
        };
        if request.occurred_at > now + Duration::hours(FUTURE_TOLERANCE_HOURS) {
            outcomes.push(Outcome::Refused {
                reason: Refusal::FutureTimestamp,
                budget: None,
            });
            continue;
        }
        if ctx.is_closed(local_day) {
            tracing::warn!(org = request.org_id, %local_day, event = ?request.event_id, "usage refused: period closed");
            outcomes.push(Outcome::Refused {
                reason: Refusal::PeriodClosed,
                budget: None,
            });
            continue;
        }
        let key = (request.org_id, local_day);
        if let std::collections::hash_map::Entry::Vacant(e) = days.entry(key) {
            let row = usage::day(conn, request.org_id, local_day)?
                .unwrap_or_else(|| DayRow::unused(request.org_id, local_day));
            e.insert(row);
        }
        let row = days.get_mut(&key).expect("inserted above");
        let budget = DayBudget {
            free_allowance: ctx.free_allowance(local_day),
            free_used: row.free_credits,
            additional_limit: limit,
            additional_used: row.additional,
        };
        let event_id = match &request.event_id {
            Some(id) => {
                let seen = (request.org_id, id.clone());
                if seen_ids.contains(&seen) || known_ids.contains(&seen) {
                    outcomes.push(Outcome::Duplicate {
                        budget: Some(budget),
                    });
                    continue;
                }
                seen_ids.insert(seen);
                Some(id.clone())
            }
            // A call without an id has no key to keep: it can never be retried as the same.
            None => None,
        };
        match budget.decide(request.credits) {
            Err(hit) => outcomes.push(Outcome::Refused {
                reason: Refusal::LimitExceeded(hit),
                budget: Some(budget),
            }),
            Ok(spend) => {
                row.free_credits += spend.free;
                row.additional += spend.additional;
                row.credits += request.credits;
                dirty.insert(key);
                let counters = breakdown
                    .entry((
                        request.org_id,
                        local_day,
                        request.operation.as_str(),
                        request.client.as_str(),
                    ))
                    .or_default();
                counters.0 += request.credits;
                counters.1 += spend.additional;
                events.push(EventInsert {
                    org_id: request.org_id,
                    event_id,
                    local_day,
                    occurred_at: db_time(request.occurred_at),
                    credits: request.credits,
                    free_credits: spend.free,
                    additional: spend.additional,
                    operation: request.operation.clone(),
                    client: request.client.clone(),
                    user_ref: request.user.clone(),
                    recorded_at: db_time(now),
                });
                let budget = DayBudget {
                    free_used: budget.free_used + spend.free,
                    additional_used: budget.additional_used + spend.additional,
                    ..budget
                };
                outcomes.push(Outcome::Accepted {
                    local_day,
                    free: spend.free,
                    additional: spend.additional,
                    budget,
                });
            }
        }
    }

    for key in dirty {
        let row = days.get_mut(&key).expect("a dirty day is loaded");
        if row.plan_id == 0 {
            let (plan_id, plan) = plans::for_day(conn, row.local_day)?;
            row.plan_id = plan_id;
            plan_cache.entry(plan_id).or_insert(plan);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = plan_cache.entry(row.plan_id) {
            let plan = plans::by_id(conn, row.plan_id)?;
            e.insert(plan);
        }
        // The day's amount is derived from its additional total: one rounding per day (R5).
        row.amount_minor = plan_cache[&row.plan_id].day_charge_minor(row.additional);
        usage::save_day(conn, row)?;
    }
    for ((org_id, local_day, operation, client), (credits, additional)) in breakdown {
        usage::add_breakdown(
            conn,
            &BreakdownRow {
                org_id,
                local_day,
                operation: operation.to_string(),
                client: client.to_string(),
                credits,
                additional,
            },
        )?;
    }
    usage::insert_events(conn, &events)?;
    Ok(outcomes)
}

/// The budget of an org's current local day, read without writing (for `GET /api/v1/credits` and
/// the Credits tab).
pub fn today_budget(
    conn: &mut DbConn,
    org: &OrgRow,
    now: DateTime<Utc>,
) -> QueryResult<(NaiveDate, DayBudget)> {
    let local_day = calendar::local_day(now, org.zone());
    let row = usage::day(conn, org.id, local_day)?;
    let free_allowance = orgs::free_allowance_on(conn, org, local_day)?;
    Ok((
        local_day,
        DayBudget {
            free_allowance,
            free_used: row.as_ref().map_or(0, |r| r.free_credits),
            additional_limit: org.additional_limit,
            additional_used: row.as_ref().map_or(0, |r| r.additional),
        },
    ))
}
