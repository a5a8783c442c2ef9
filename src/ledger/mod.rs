//! Admission and metering: the only code that writes usage. A batch of requests (for any orgs) is
//! applied in one write transaction, in three steps: `read` places every request on its org-day and
//! locks and reads what the decisions need (the orgs' rules, the ids' keys, the day rows, in that
//! order and each sorted, so two processes' batches never wait for each other in a cycle);
//! `decide` runs the pure rules of `domain::admission` request by request, in arrival order,
//! collecting the batch's writes; `flush` writes them. Nothing is visible, and nothing may be
//! acknowledged, before the transaction commits.
//!
//! On PostgreSQL, where every statement is a round trip, a batch whose orgs' rules and day rows
//! the writer holds from its own earlier batches is decided on those and written as one statement
//! in its own transaction (`apply_from_cache`): the statement takes the same locks in the same
//! order, checks that what the batch decided on is still so, and writes nothing when it is not;
//! the batch is then decided again the long way. No decision on a row another process changed is
//! ever committed.

pub mod writer;

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::db::DbConn;
use crate::domain::admission::{self, DayBudget, Decision, OrgRules, Spend};
pub use crate::domain::admission::{FUTURE_TOLERANCE_HOURS, Kind, Refusal};
use crate::domain::alerts::AlertKind;
use crate::domain::calendar::{self, BillingPeriod};
use crate::domain::event::{EventId, UsageEvent};
use crate::domain::pricing::{PlanSchedule, PricePlan};
use crate::store::alerts::Crossing;
use crate::store::orgs;
use crate::store::usage::{self, BreakdownRow, DayRow, EventInsert, UserBreakdownRow};
use crate::store::{alerts, db_time, plans};

#[derive(Debug, Clone)]
pub struct UsageRequest {
    pub org_id: OrgId,
    pub kind: Kind,
    pub event_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub credits: i64,
    pub operation: String,
    pub client: String,
    pub user: String,
}

impl UsageRequest {
    /// A checked event of an org, for the ledger.
    pub fn new(org_id: OrgId, kind: Kind, event: UsageEvent) -> Self {
        UsageRequest {
            org_id,
            kind,
            event_id: event.id.map(EventId::into_string),
            occurred_at: event.occurred_at,
            credits: event.credits.get(),
            operation: event.operation.into_string(),
            client: event.client.into_string(),
            user: event.user.into_string(),
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

/// What the writer read in earlier batches. On SQLite all of it stays valid while `PRAGMA
/// data_version` is unchanged, which means no other connection committed anything (this
/// connection's own commits do not change it). On PostgreSQL the long way reads day rows and keys
/// again, under lock, in every batch, and keeps an org's rules while its `rules_version`, read
/// under the batch's share lock, is unchanged; a batch from the cache decides on the cached rules
/// and day rows, and its statement checks them under lock. On both, plans by id (never changed
/// once published) and which plan prices a day that usage can be placed on already (a plan may
/// only be published for a later day) are kept.
#[derive(Default)]
pub struct LedgerCache {
    /// PostgreSQL: batches left to go the long way, after a batch from the cache found its rows
    /// changed (another process or lane writes the same org-days).
    skip_cached: u32,
    /// How batches went since the writer last took the counts; kept across `reset`.
    pub counts: PathCounts,
    data_version: Option<i64>,
    rules: HashMap<OrgId, Option<OrgRules>>,
    /// On PostgreSQL, the `rules_version` each org's cached rules were read at.
    rules_versions: HashMap<OrgId, i64>,
    days: HashMap<(OrgId, NaiveDate), DayRow>,
    /// The billing periods (org, first day) whose every day row is in `days`: those of orgs with a
    /// budget (R14), whose decisions need the period's charge.
    periods: HashSet<(OrgId, NaiveDate)>,
    plans: HashMap<i64, PricePlan>,
    /// The plans' schedule, and the last day it can answer for: a plan is only published for a day
    /// after `admission::latest_placeable_day` of its publication, so a schedule read at `t`
    /// answers every day up to `latest_placeable_day(t)`.
    schedule: Option<(PlanSchedule, NaiveDate)>,
}

/// Most day rows the writer keeps between batches (a few megabytes); past it, it starts afresh.
const DAYS_CACHED: usize = 50_000;

/// Batches that go the long way after a batch from the cache found its rows changed.
const SKIP_AFTER_STALE: u32 = 16;

#[derive(diesel::QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

/// Batches written from the cache in one statement (PostgreSQL), and those whose statement found
/// the cached rows changed and went the long way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathCounts {
    pub cached: u64,
    pub stale: u64,
}

impl LedgerCache {
    /// Forget everything read (after a rollback, or a commit of unknown outcome), keeping the counts.
    fn reset(&mut self) {
        *self = LedgerCache {
            counts: self.counts,
            ..LedgerCache::default()
        };
    }

    /// Keep what is still true; called inside the write transaction.
    fn revalidate(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        use diesel::RunQueryDsl;
        match conn {
            DbConn::Sqlite(c) => {
                let version = crate::db::CachedSql("PRAGMA data_version")
                    .get_result::<DataVersion>(c)?
                    .data_version;
                if Some(version) != self.data_version {
                    self.reset();
                    self.data_version = Some(version);
                }
            }
            // Day rows are read again under lock (`read`); rules are checked against their
            // version under lock (`read_rules`).
            DbConn::Postgresql(_) => self.periods.clear(),
        }
        Ok(())
    }

    /// Keep the day rows within `DAYS_CACHED` (after a batch).
    fn trim(&mut self) {
        if self.days.len() > DAYS_CACHED {
            self.days.clear();
            self.periods.clear();
        }
    }

    /// R6: the plan in force on `local_day` (which the day row pins when it is first charged).
    fn plan_in_force(
        &mut self,
        conn: &mut DbConn,
        now: DateTime<Utc>,
        local_day: NaiveDate,
    ) -> QueryResult<Option<i64>> {
        let fresh = matches!(&self.schedule, Some((_, through)) if local_day <= *through);
        if !fresh {
            let through = admission::latest_placeable_day(now);
            self.schedule = Some((plans::schedule(conn)?, through));
        }
        Ok(self
            .schedule
            .as_ref()
            .and_then(|(schedule, _)| schedule.in_force_on(local_day)))
    }

    fn plan(&mut self, conn: &mut DbConn, plan_id: i64) -> QueryResult<&PricePlan> {
        Ok(match self.plans.entry(plan_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(plans::by_id(conn, plan_id)?),
        })
    }
}

/// Apply one batch in one write transaction and return one outcome per request, in order.
pub fn apply_batch(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[UsageRequest],
) -> QueryResult<Vec<Outcome>> {
    let requests: Vec<&UsageRequest> = requests.iter().collect();
    apply_batch_cached(conn, now, &requests, &mut LedgerCache::default()).map_err(|e| e.error)
}

/// A batch that was not applied, or whose commit has an unknown outcome.
#[derive(Debug)]
pub struct BatchError {
    pub error: diesel::result::Error,
    /// The batch was decided and written and COMMIT was sent, but it failed or went unanswered
    /// (a connection lost at that moment): the batch may be committed. It must not be applied
    /// again, or a call without an id would count twice.
    pub commit_unknown: bool,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// `apply_batch` for a caller that applies many batches on one connection (the writer).
pub fn apply_batch_cached(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[&UsageRequest],
    cache: &mut LedgerCache,
) -> Result<Vec<Outcome>, BatchError> {
    if let Some(outcomes) = apply_from_cache(conn, now, requests, cache)? {
        cache.trim();
        return Ok(outcomes);
    }
    let mut written = false;
    let result = crate::db::write_transaction(conn, |conn| {
        cache.revalidate(conn)?;
        let placed = read(conn, now, requests, cache)?;
        let (outcomes, writes) = decide(now, requests, &placed, cache);
        writes.flush(conn, &placed, cache)?;
        written = true;
        Ok(outcomes)
    });
    cache.trim();
    result.map_err(|error| {
        // Rolled back (or unknown): what the cache learnt in this batch may not be in the database.
        cache.reset();
        BatchError {
            error,
            commit_unknown: written,
        }
    })
}

/// On PostgreSQL, when the cache holds every org's rules (with their version; no budget, whose
/// decisions read a whole period) and every day row the batch touches: decide on those, and write
/// with `usage::write_cached`, one round trip. `None` when the batch must go the long way: the
/// cache lacks something, the statement found it stale, or the batch refused an id or crossed an
/// alert threshold (the long way claims and gives back keys, and records crossings).
fn apply_from_cache(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[&UsageRequest],
    cache: &mut LedgerCache,
) -> Result<Option<Vec<Outcome>>, BatchError> {
    if !matches!(conn, DbConn::Postgresql(_)) {
        return Ok(None);
    }
    if cache.skip_cached > 0 {
        cache.skip_cached -= 1;
        return Ok(None);
    }
    // A connection lost while idle (the server restarted or failed over, an idle timeout) would
    // fail the one statement with an outcome the writer cannot know: take the long way, whose
    // BEGIN fails first, and the writer reconnects and applies the batch.
    if !usage::connection_alive(conn) {
        return Ok(None);
    }
    let org_ids: BTreeSet<OrgId> = requests.iter().map(|r| r.org_id).collect();
    let cached = |id: &OrgId| match cache.rules.get(id) {
        Some(Some(rules)) => rules.budget.is_none() && cache.rules_versions.contains_key(id),
        _ => false,
    };
    if !org_ids.iter().all(cached) {
        return Ok(None);
    }
    let placement = place_all(conn, now, requests, cache).map_err(|error| BatchError {
        error,
        commit_unknown: false,
    })?;
    let mut claimed: HashMap<OrgId, HashMap<String, NaiveDate>> = HashMap::new();
    for ((org_id, id), day) in placement.key_days {
        claimed.entry(org_id).or_default().insert(id, day);
    }
    let Some(expected) = placement
        .days
        .keys()
        .map(|key| cache.days.get(key).cloned())
        .collect::<Option<Vec<DayRow>>>()
    else {
        return Ok(None);
    };
    let closed = placement.closed;
    let placed = Placed {
        places: placement.places,
        claimed,
    };
    let (outcomes, mut writes) = decide(now, requests, &placed, cache);
    let ids_admitted = requests.iter().zip(&placed.places).all(|(request, place)| {
        match (&request.event_id, place) {
            (Some(id), Ok(_)) => writes.admitted.contains_key(&(request.org_id, id.as_str())),
            _ => true,
        }
    });
    let restore = |cache: &mut LedgerCache| {
        for row in &expected {
            cache.days.insert((row.org_id, row.local_day), row.clone());
        }
    };
    if !ids_admitted || !writes.crossings.is_empty() {
        restore(cache);
        return Ok(None);
    }
    let versions: Vec<(OrgId, i64)> = org_ids
        .iter()
        .map(|id| (*id, cache.rules_versions[id]))
        .collect();
    let cached = usage::Cached {
        versions: &versions,
        days: &expected,
    };
    let rows = match writes.rows(conn, cache) {
        Ok(rows) => rows,
        Err(error) => {
            cache.reset();
            return Err(BatchError {
                error,
                commit_unknown: false,
            });
        }
    };
    match writes.flush_cached(conn, cached, rows) {
        Ok(()) => {
            cache.counts.cached += 1;
            closed.log();
            Ok(Some(outcomes))
        }
        Err(error) if usage::is_stale(&error) => {
            restore(cache);
            cache.counts.stale += 1;
            cache.skip_cached = SKIP_AFTER_STALE;
            Ok(None)
        }
        Err(error) => {
            cache.reset();
            let commit_unknown = !usage::failed_before_commit(&error);
            Err(BatchError {
                error,
                commit_unknown,
            })
        }
    }
}

/// Where each request of a batch goes (its org-day, or why it cannot go anywhere), and the keys
/// the batch claimed.
struct Placed {
    places: Vec<Result<NaiveDate, Refusal>>,
    /// The keys this batch inserted (ids not admitted before), by org, with the day each was
    /// claimed with: the first day its id was placed on in the batch.
    claimed: HashMap<OrgId, HashMap<String, NaiveDate>>,
}

impl Placed {
    fn claimed(&self, org_id: OrgId, id: &str) -> bool {
        self.claimed
            .get(&org_id)
            .is_some_and(|ids| ids.contains_key(id))
    }
}

/// Place every request and lock and read what deciding needs, in the order every batch locks:
/// the orgs' rows (shared) with their rules, the touched day rows (locked, created where missing),
/// the ids' keys (claimed).
fn read(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[&UsageRequest],
    cache: &mut LedgerCache,
) -> QueryResult<Placed> {
    let org_ids: BTreeSet<OrgId> = requests.iter().map(|r| r.org_id).collect();
    let org_ids: Vec<OrgId> = org_ids.into_iter().collect();
    read_rules(conn, &org_ids, cache)?;
    // R14: orgs with a budget are decided on a whole period; their batches are serialized across
    // processes, in the lock order: after the org rows, before day rows and keys.
    let budget_orgs: Vec<OrgId> = org_ids
        .iter()
        .copied()
        .filter(|id| matches!(cache.rules.get(id), Some(Some(r)) if r.budget.is_some()))
        .collect();
    if !budget_orgs.is_empty() {
        orgs::lock_budget(conn, &budget_orgs)?;
    }
    let Placement {
        places,
        days,
        key_days,
        closed,
    } = place_all(conn, now, requests, cache)?;
    closed.log();

    // SQLite's cache is current (`LedgerCache::revalidate`); on PostgreSQL every touched row is
    // locked and read in every batch that goes this way.
    let postgres = matches!(conn, DbConn::Postgresql(_));
    let to_lock: Vec<(OrgId, NaiveDate, i64)> = days
        .into_iter()
        .filter(|(key, _)| postgres || !cache.days.contains_key(key))
        .map(|((org_id, local_day), plan_id)| (org_id, local_day, plan_id))
        .collect();
    for row in usage::lock_days(conn, &to_lock)? {
        cache.days.insert((row.org_id, row.local_day), row);
    }

    let keys: Vec<(OrgId, &str, NaiveDate)> = key_days
        .iter()
        .map(|((org_id, id), day)| (*org_id, id.as_str(), *day))
        .collect();
    let mut claimed: HashMap<OrgId, HashMap<String, NaiveDate>> = HashMap::new();
    for key in usage::claim_keys(conn, &keys)? {
        let day = *key_days.get(&key).ok_or_else(|| {
            diesel::result::Error::QueryBuilderError("a claimed key that was not asked for".into())
        })?;
        claimed.entry(key.0).or_default().insert(key.1, day);
    }
    read_budget_periods(conn, requests, &places, cache)?;
    Ok(Placed { places, claimed })
}

/// R14: the billing period a day of an org with a budget belongs to (none before the anchor).
fn budget_period(rules: &OrgRules, local_day: NaiveDate) -> Option<BillingPeriod> {
    rules.budget?;
    calendar::period_containing(rules.anchor?, local_day)
}

/// For the orgs with a budget: read every day row of the periods the batch touches (once per
/// period while the cache holds), and the plans that price every day of those periods (a day row
/// made in this batch may be the first priced by a newly published plan).
fn read_budget_periods(
    conn: &mut DbConn,
    requests: &[&UsageRequest],
    places: &[Result<NaiveDate, Refusal>],
    cache: &mut LedgerCache,
) -> QueryResult<()> {
    let mut periods: BTreeSet<(OrgId, NaiveDate, NaiveDate)> = BTreeSet::new();
    for (request, place) in requests.iter().zip(places) {
        let (Ok(day), Some(Some(rules))) = (place, cache.rules.get(&request.org_id)) else {
            continue;
        };
        if let Some(period) = budget_period(rules, *day) {
            periods.insert((request.org_id, period.start, period.end));
        }
    }
    for (org_id, start, end) in periods {
        if cache.periods.insert((org_id, start)) {
            let last = end.pred_opt().unwrap_or(start);
            for row in usage::days_in(conn, org_id, start, last)? {
                cache.days.insert((org_id, row.local_day), row);
            }
        }
        let mut day = start;
        while day < end {
            if let Some(plan_id) = cache.days.get(&(org_id, day)).and_then(DayRow::pinned_plan) {
                cache.plan(conn, plan_id)?;
            }
            day = day.succ_opt().unwrap_or(end);
        }
    }
    Ok(())
}

/// Take the share lock on the orgs' rows and make sure the cache holds their current rules: on
/// PostgreSQL those whose version moved (or that are not cached) are read again; on SQLite the
/// cache is current already (`LedgerCache::revalidate`) and only what is missing is read.
fn read_rules(conn: &mut DbConn, org_ids: &[OrgId], cache: &mut LedgerCache) -> QueryResult<()> {
    if let Some(versions) = orgs::lock_shared(conn, org_ids)? {
        for org_id in org_ids {
            match versions.get(org_id) {
                Some(version) if cache.rules_versions.get(org_id) == Some(version) => {}
                Some(version) => {
                    cache.rules.remove(org_id);
                    cache.rules_versions.insert(*org_id, *version);
                }
                None => {
                    cache.rules.insert(*org_id, None);
                    cache.rules_versions.remove(org_id);
                }
            }
        }
    }
    let missing: Vec<OrgId> = org_ids
        .iter()
        .copied()
        .filter(|id| !cache.rules.contains_key(id))
        .collect();
    if !missing.is_empty() {
        let mut found = orgs::rules_of(conn, &missing)?;
        for id in missing {
            cache.rules.insert(id, found.remove(&id));
        }
    }
    Ok(())
}

/// Where a request goes: its org-local day and the plan that prices it, or why it goes nowhere.
type Place = Result<(NaiveDate, i64), Refusal>;

/// Per org: how many requests of a batch were refused for a closed period, and the first one's
/// time.
#[derive(Default)]
struct Closed(BTreeMap<OrgId, (usize, DateTime<Utc>)>);

impl Closed {
    /// R8: usage for a closed period is refused and logged, once per org and batch (a caller can
    /// send it by the hundred thousand).
    fn log(&self) {
        for (org, (count, first_at)) in &self.0 {
            tracing::warn!(org = %org, count, first_at = %first_at, "usage refused: its billing period is closed");
        }
    }
}

/// Every request of a batch placed (`place`), with what the places touch.
struct Placement {
    /// Each request's org-local day, or why it has none, in order.
    places: Vec<Result<NaiveDate, Refusal>>,
    /// The org-days placed on, each with the plan that prices it, in lock order.
    days: BTreeMap<(OrgId, NaiveDate), i64>,
    /// The ids placed, each with the first day it was placed on, in lock order.
    key_days: BTreeMap<(OrgId, String), NaiveDate>,
    closed: Closed,
}

/// Place every request of a batch, in order.
fn place_all(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    requests: &[&UsageRequest],
    cache: &mut LedgerCache,
) -> QueryResult<Placement> {
    let mut placement = Placement {
        places: Vec::with_capacity(requests.len()),
        days: BTreeMap::new(),
        key_days: BTreeMap::new(),
        closed: Closed::default(),
    };
    for request in requests {
        match place(conn, now, request, cache)? {
            Ok((local_day, plan_id)) => {
                placement
                    .days
                    .entry((request.org_id, local_day))
                    .or_insert(plan_id);
                if let Some(id) = &request.event_id {
                    placement
                        .key_days
                        .entry((request.org_id, id.clone()))
                        .or_insert(local_day);
                }
                placement.places.push(Ok(local_day));
            }
            Err(refusal) => {
                if refusal == Refusal::PeriodClosed {
                    placement
                        .closed
                        .0
                        .entry(request.org_id)
                        .or_insert((0, request.occurred_at))
                        .0 += 1;
                }
                placement.places.push(Err(refusal));
            }
        }
    }
    Ok(placement)
}

/// The org-local day of one request and the plan that prices it, or why it has none (each refusal
/// logged at debug level; `Closed` sums up those for closed periods as a warning).
fn place(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    request: &UsageRequest,
    cache: &mut LedgerCache,
) -> QueryResult<Place> {
    let placed = match cache.rules.get(&request.org_id).and_then(Option::as_ref) {
        None => Err(Refusal::UnknownOrg),
        Some(rules) => rules.place(now, request.occurred_at),
    };
    let placed = match placed {
        Ok(local_day) => cache
            .plan_in_force(conn, now, local_day)?
            .map(|plan_id| (local_day, plan_id))
            .ok_or(Refusal::NoPricePlan),
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = placed {
        tracing::debug!(org = %request.org_id, event = ?request.event_id, at = %request.occurred_at, reason = refusal.code(), "usage refused");
    }
    Ok(placed)
}

/// The rows a batch writes: changed day rows, breakdown increments, user breakdown increments.
type Rows = (Vec<DayRow>, Vec<BreakdownRow>, Vec<UserBreakdownRow>);

/// What a batch writes, collected while deciding.
#[derive(Default)]
struct Writes<'r> {
    /// Day rows whose counters changed (the new values are in the cache).
    days: BTreeSet<(OrgId, NaiveDate)>,
    breakdown: BTreeMap<(OrgId, NaiveDate, &'r str, &'r str), (i64, i64)>,
    /// Usage of named users; what names no user is the day's remainder ("unspecified").
    users: BTreeMap<(OrgId, NaiveDate, &'r str), (i64, i64)>,
    events: Vec<EventInsert>,
    /// The ids admitted in this batch, with their day.
    admitted: HashMap<(OrgId, &'r str), NaiveDate>,
    /// Thresholds crossed in this batch (R13), recorded once each in the same transaction.
    crossings: Vec<Crossing>,
}

/// Decide every placed request in arrival order (R4, R9, R11, R12).
fn decide<'r>(
    now: DateTime<Utc>,
    requests: &[&'r UsageRequest],
    placed: &Placed,
    cache: &mut LedgerCache,
) -> (Vec<Outcome>, Writes<'r>) {
    let mut writes = Writes::default();
    let mut outcomes = Vec::with_capacity(requests.len());
    for (request, place) in requests.iter().copied().zip(&placed.places) {
        let local_day = match place {
            Ok(day) => *day,
            Err(reason) => {
                outcomes.push(Outcome::Refused {
                    reason: *reason,
                    budget: None,
                });
                continue;
            }
        };
        let rules = cache.rules[&request.org_id]
            .as_ref()
            .expect("a placed request's org has rules");
        // R14: what the period's other days were charged, for an org with a budget.
        let period = budget_period(rules, local_day).map(|period| {
            let mut others = 0i64;
            let mut day = period.start;
            while day < period.end {
                if day != local_day {
                    others += cache
                        .days
                        .get(&(request.org_id, day))
                        .map_or(0, |row| row.amount_minor);
                }
                day = day.succ_opt().unwrap_or(period.end);
            }
            (period, others)
        });
        let row = cache
            .days
            .get_mut(&(request.org_id, local_day))
            .expect("a placed request's day is read");
        let plan = period.and_then(|_| cache.plans.get(&row.plan_id));
        let mut budget = rules.budget(
            request.kind,
            request.occurred_at,
            local_day,
            row.free_credits,
            row.additional,
        );
        let id = request.event_id.as_deref();
        let admitted_before = id.is_some_and(|id| {
            writes.admitted.contains_key(&(request.org_id, id))
                || !placed.claimed(request.org_id, id)
        });
        let fits_budget = |_: &DayBudget, spend: Spend| match (rules.budget, period, plan) {
            (Some(cap), Some((_, others)), Some(plan)) if cap.stop => admission::within_budget(
                cap.amount_minor,
                others,
                plan.day_charge_minor(row.additional),
                plan.day_charge_minor(row.additional + spend.additional),
            ),
            // A day of a budget's period is always read with its plan (`read_budget_periods`);
            // were it not, the call could not be priced, so it is not admitted past the budget.
            (Some(cap), Some(_), None) => !cap.stop,
            _ => true,
        };
        let decision =
            admission::decide(&mut budget, request.credits, admitted_before, fits_budget);
        outcomes.push(match decision {
            Decision::AlreadyCounted => Outcome::Duplicate {
                budget: Some(budget),
            },
            Decision::Refused(hit) => Outcome::Refused {
                reason: Refusal::LimitExceeded(hit),
                budget: Some(budget),
            },
            Decision::Admitted(spend) => {
                let additional_before = row.additional;
                row.credits += request.credits;
                row.free_credits += spend.free;
                row.additional += spend.additional;
                if spend.additional > 0 {
                    let of = budget.additional_limit;
                    for threshold in rules
                        .thresholds
                        .crossed(additional_before, row.additional, of)
                    {
                        writes.crossings.push(Crossing {
                            org_id: request.org_id,
                            kind: AlertKind::DailyLimit,
                            scope_start: local_day,
                            scope_end: local_day.succ_opt().unwrap_or(local_day),
                            threshold,
                            used: row.additional,
                            of,
                            currency: None,
                            at: now,
                        });
                    }
                    if let (Some(cap), Some((period, others)), Some(plan)) =
                        (rules.budget, period, plan)
                    {
                        let before = others + row.amount_minor;
                        row.amount_minor = plan.day_charge_minor(row.additional);
                        let after = others + row.amount_minor;
                        for threshold in rules.thresholds.crossed(before, after, cap.amount_minor) {
                            writes.crossings.push(Crossing {
                                org_id: request.org_id,
                                kind: AlertKind::Budget,
                                scope_start: period.start,
                                scope_end: period.end,
                                threshold,
                                used: after,
                                of: cap.amount_minor,
                                currency: Some(plan.currency().to_string()),
                                at: now,
                            });
                        }
                    }
                }
                writes.admit(request, local_day, spend, now);
                Outcome::Accepted {
                    local_day,
                    free: spend.free,
                    additional: spend.additional,
                    budget,
                }
            }
        });
    }
    (outcomes, writes)
}

impl<'r> Writes<'r> {
    fn admit(
        &mut self,
        request: &'r UsageRequest,
        local_day: NaiveDate,
        spend: Spend,
        now: DateTime<Utc>,
    ) {
        self.days.insert((request.org_id, local_day));
        let counters = self
            .breakdown
            .entry((
                request.org_id,
                local_day,
                request.operation.as_str(),
                request.client.as_str(),
            ))
            .or_default();
        counters.0 += request.credits;
        counters.1 += spend.additional;
        if !request.user.is_empty() {
            let counters = self
                .users
                .entry((request.org_id, local_day, request.user.as_str()))
                .or_default();
            counters.0 += request.credits;
            counters.1 += spend.additional;
        }
        if let Some(id) = request.event_id.as_deref() {
            self.admitted.insert((request.org_id, id), local_day);
        }
        self.events.push(EventInsert {
            org_id: request.org_id,
            event_id: request.event_id.clone(),
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
    }

    /// The rows the batch writes: its changed day rows, with their amount derived from the pinned
    /// plan (one rounding per day, R5), and its breakdown increments.
    fn rows(&mut self, conn: &mut DbConn, cache: &mut LedgerCache) -> QueryResult<Rows> {
        for key in &self.days {
            let (plan_id, additional) = (cache.days[key].plan_id, cache.days[key].additional);
            let amount_minor = cache.plan(conn, plan_id)?.day_charge_minor(additional);
            cache
                .days
                .get_mut(key)
                .expect("a changed day is read")
                .amount_minor = amount_minor;
        }
        let days: Vec<DayRow> = self
            .days
            .iter()
            .map(|key| cache.days[key].clone())
            .collect();
        let breakdowns: Vec<BreakdownRow> = std::mem::take(&mut self.breakdown)
            .into_iter()
            .map(
                |((org_id, local_day, operation, client), (credits, additional))| BreakdownRow {
                    org_id,
                    local_day,
                    operation: operation.to_string(),
                    client: client.to_string(),
                    credits,
                    additional,
                },
            )
            .collect();
        let users: Vec<UserBreakdownRow> = std::mem::take(&mut self.users)
            .into_iter()
            .map(
                |((org_id, local_day, user), (credits, additional))| UserBreakdownRow {
                    org_id,
                    local_day,
                    user_ref: user.to_string(),
                    credits,
                    additional,
                },
            )
            .collect();
        Ok((days, breakdowns, users))
    }

    /// Write a batch decided on `cached` rules and rows (its `rows` made), with the keys of the ids
    /// it admitted, in one statement that checks them (`usage::write_cached`).
    fn flush_cached(
        self,
        conn: &mut DbConn,
        cached: usage::Cached<'_>,
        (days, breakdowns, users): Rows,
    ) -> QueryResult<()> {
        // Sorted, as every batch claims keys, so two batches never wait for each other's keys.
        let mut keys: Vec<(OrgId, &str, NaiveDate)> = self
            .admitted
            .iter()
            .map(|((org_id, id), day)| (*org_id, *id, *day))
            .collect();
        keys.sort_unstable();
        usage::write_cached(
            conn,
            cached,
            &days,
            &breakdowns,
            &users,
            &self.events,
            &keys,
        )
    }

    /// Write the batch: day rows, breakdown increments, raw events, thresholds crossed, and the
    /// keys of refused ids given back.
    fn flush(
        mut self,
        conn: &mut DbConn,
        placed: &Placed,
        cache: &mut LedgerCache,
    ) -> QueryResult<()> {
        let (days, breakdowns, users) = self.rows(conn, cache)?;
        usage::write_batch(conn, &days, &breakdowns, &users, &self.events)?;
        if !self.crossings.is_empty() {
            alerts::record_crossings(conn, &self.crossings)?;
        }
        let mut released: BTreeMap<OrgId, Vec<&str>> = BTreeMap::new();
        for (org_id, ids) in &placed.claimed {
            for (id, claimed_day) in ids {
                match self.admitted.get(&(*org_id, id.as_str())) {
                    None => released.entry(*org_id).or_default().push(id),
                    Some(day) if day != claimed_day => {
                        usage::move_key(conn, *org_id, id, *day)?;
                    }
                    Some(_) => {}
                }
            }
        }
        for (org_id, ids) in released {
            usage::release_keys(conn, org_id, &ids)?;
        }
        Ok(())
    }
}
