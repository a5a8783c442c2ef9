//! The usage read model: one row per org-day and per org-day-operation-client, the idempotency keys
//! of events that came with an id (R9), and the raw events of the audit window. Pages read only the
//! rollups.

use crate::domain::types::OrgId;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Date, Text};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use crate::db::DbConn;
use crate::db::schema::{
    daily_breakdown, daily_usage, daily_user_breakdown, usage_events, usage_keys,
};
use crate::domain::types::DayRange;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = daily_usage)]
pub struct DayRow {
    pub org_id: OrgId,
    pub local_day: NaiveDate,
    pub credits: i64,
    pub free_credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
    pub plan_id: i64,
}

impl DayRow {
    /// The plan the day was charged with (R6), if it has usage.
    pub fn pinned_plan(&self) -> Option<i64> {
        (self.plan_id != 0).then_some(self.plan_id)
    }

    /// A day without usage (and not yet charged, so no plan is pinned).
    pub fn unused(org_id: OrgId, local_day: NaiveDate) -> Self {
        DayRow {
            org_id,
            local_day,
            credits: 0,
            free_credits: 0,
            additional: 0,
            amount_minor: 0,
            plan_id: 0,
        }
    }
}

pub fn day(conn: &mut DbConn, org_id: OrgId, local_day: NaiveDate) -> QueryResult<Option<DayRow>> {
    daily_usage::table
        .find((org_id, local_day))
        .select(DayRow::as_select())
        .first(conn)
        .optional()
}

/// The days of a range that have a row (days without usage have none), in order.
pub fn days_in(
    conn: &mut DbConn,
    org_id: OrgId,
    from: NaiveDate,
    to_inclusive: NaiveDate,
) -> QueryResult<Vec<DayRow>> {
    daily_usage::table
        .filter(daily_usage::org_id.eq(org_id))
        .filter(daily_usage::local_day.ge(from))
        .filter(daily_usage::local_day.le(to_inclusive))
        .order(daily_usage::local_day)
        .select(DayRow::as_select())
        .load(conn)
}

/// Every day of the range, with a zero row where nothing was used.
pub fn every_day(conn: &mut DbConn, org_id: OrgId, range: DayRange) -> QueryResult<Vec<DayRow>> {
    let stored: BTreeMap<NaiveDate, DayRow> = days_in(conn, org_id, range.from(), range.to())?
        .into_iter()
        .map(|r| (r.local_day, r))
        .collect();
    Ok(range
        .days()
        .map(|local_day| {
            stored
                .get(&local_day)
                .cloned()
                .unwrap_or_else(|| DayRow::unused(org_id, local_day))
        })
        .collect())
}

/// Write what a usage batch decided: its day rows (new counters and amount; the caller holds their
/// locks), breakdown increments (by operation and client, and by named user) and raw events. On
/// PostgreSQL the four are one statement (three data-modifying `WITH` parts and the events'
/// insert), one round trip; on SQLite, where a statement costs no round trip, each is its own
/// prepared statement, and a batch that names no user writes no user rows.
pub fn write_batch(
    conn: &mut DbConn,
    days: &[DayRow],
    breakdowns: &[BreakdownRow],
    users: &[UserBreakdownRow],
    events: &[EventInsert],
) -> QueryResult<()> {
    match conn {
        DbConn::Postgresql(c) if !events.is_empty() => {
            PgWriteBatch {
                days: PgDays::of(days),
                breakdowns: PgBreakdowns::of(breakdowns),
                users: PgUsers::of(users),
                events: PgEvents::of(events),
            }
            .execute(c)?;
        }
        _ => {
            save_days(conn, days)?;
            add_breakdowns(conn, breakdowns)?;
            add_user_breakdowns(conn, users)?;
            insert_events(conn, events)?;
        }
    }
    Ok(())
}

/// Insert new day rows or overwrite the counters of existing ones (the caller holds their locks).
pub fn save_days(conn: &mut DbConn, rows: &[DayRow]) -> QueryResult<()> {
    for chunk in rows.chunks(ROWS_PER_UPSERT) {
        crate::on_backend!(conn, c => SaveDays(chunk).execute(c))?;
    }
    Ok(())
}

/// How a batch's day rows are written: new counters and amount (the writer holds their locks).
const DAY_UPSERT: &str = " ON CONFLICT (org_id, local_day) DO UPDATE SET credits = excluded.credits, \
     free_credits = excluded.free_credits, additional = excluded.additional, \
     amount_minor = excluded.amount_minor";

/// How a batch's breakdowns are written: increments, safe under any interleaving.
const BREAKDOWN_UPSERT: &str = " ON CONFLICT (org_id, local_day, operation, client) DO UPDATE SET \
     credits = daily_breakdown.credits + excluded.credits, \
     additional = daily_breakdown.additional + excluded.additional";

/// How a batch's user breakdowns are written: increments, as for operations and clients.
const USER_UPSERT: &str = " ON CONFLICT (org_id, local_day, user_ref) DO UPDATE SET \
     credits = daily_user_breakdown.credits + excluded.credits, \
     additional = daily_user_breakdown.additional + excluded.additional";

/// Rows per multi-row upsert: seven parameters each at most, far below both backends' limits.
const ROWS_PER_UPSERT: usize = 500;

/// The upserts of SQLite's write path (and of any caller writing day rows or breakdowns), several
/// rows to a statement, for either backend (the placeholders are the backend's own). Diesel caches
/// the prepared statement of each text, so a connection prepares one per row count. PostgreSQL's
/// write path uses `PgWriteBatch`, with the same conflict clauses.
struct SaveDays<'a>(&'a [DayRow]);
struct AddBreakdowns<'a>(&'a [BreakdownRow]);
struct AddUserBreakdowns<'a>(&'a [UserBreakdownRow]);

impl QueryId for SaveDays<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryId for AddBreakdowns<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryId for AddUserBreakdowns<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for SaveDays<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    NaiveDate: ToSql<Date, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO daily_usage (org_id, local_day, credits, free_credits, additional, \
             amount_minor, plan_id) VALUES ",
        );
        for (i, row) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(&row.org_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Date, _>(&row.local_day)?;
            for value in [
                &row.credits,
                &row.free_credits,
                &row.additional,
                &row.amount_minor,
                &row.plan_id,
            ] {
                out.push_sql(", ");
                out.push_bind_param::<BigInt, _>(value)?;
            }
            out.push_sql(")");
        }
        out.push_sql(DAY_UPSERT);
        Ok(())
    }
}

impl<DB> QueryFragment<DB> for AddBreakdowns<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    NaiveDate: ToSql<Date, DB>,
    String: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO daily_breakdown (org_id, local_day, operation, client, credits, \
             additional) VALUES ",
        );
        for (i, row) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(&row.org_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Date, _>(&row.local_day)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.operation)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.client)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.credits)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.additional)?;
            out.push_sql(")");
        }
        out.push_sql(BREAKDOWN_UPSERT);
        Ok(())
    }
}

impl<DB> QueryFragment<DB> for AddUserBreakdowns<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    NaiveDate: ToSql<Date, DB>,
    String: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO daily_user_breakdown (org_id, local_day, user_ref, credits, additional) \
             VALUES ",
        );
        for (i, row) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(&row.org_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Date, _>(&row.local_day)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&row.user_ref)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.credits)?;
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(&row.additional)?;
            out.push_sql(")");
        }
        out.push_sql(USER_UPSERT);
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for SaveDays<'_> {}
impl<Conn> RunQueryDsl<Conn> for AddBreakdowns<'_> {}
impl<Conn> RunQueryDsl<Conn> for AddUserBreakdowns<'_> {}

#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = daily_breakdown)]
pub struct BreakdownRow {
    pub org_id: OrgId,
    pub local_day: NaiveDate,
    pub operation: String,
    pub client: String,
    pub credits: i64,
    pub additional: i64,
}

/// Add to the breakdown counters of org-day-operation-clients, each given once.
pub fn add_breakdowns(conn: &mut DbConn, rows: &[BreakdownRow]) -> QueryResult<()> {
    for chunk in rows.chunks(ROWS_PER_UPSERT) {
        crate::on_backend!(conn, c => AddBreakdowns(chunk).execute(c))?;
    }
    Ok(())
}

/// The usage of one named user of an org on a day.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = daily_user_breakdown)]
pub struct UserBreakdownRow {
    pub org_id: OrgId,
    pub local_day: NaiveDate,
    pub user_ref: String,
    pub credits: i64,
    pub additional: i64,
}

/// Add to the counters of org-day-users, each given once.
pub fn add_user_breakdowns(conn: &mut DbConn, rows: &[UserBreakdownRow]) -> QueryResult<()> {
    for chunk in rows.chunks(ROWS_PER_UPSERT) {
        crate::on_backend!(conn, c => AddUserBreakdowns(chunk).execute(c))?;
    }
    Ok(())
}

/// The user rows (org, day, user) of a range.
pub fn user_breakdown_rows(
    conn: &mut DbConn,
    org_id: OrgId,
    range: DayRange,
) -> QueryResult<Vec<UserBreakdownRow>> {
    daily_user_breakdown::table
        .filter(daily_user_breakdown::org_id.eq(org_id))
        .filter(daily_user_breakdown::local_day.ge(range.from()))
        .filter(daily_user_breakdown::local_day.le(range.to()))
        .select(UserBreakdownRow::as_select())
        .load(conn)
}

/// The breakdown rows (org, day, operation, client) of a range.
pub fn breakdown_rows(
    conn: &mut DbConn,
    org_id: OrgId,
    range: DayRange,
) -> QueryResult<Vec<BreakdownRow>> {
    daily_breakdown::table
        .filter(daily_breakdown::org_id.eq(org_id))
        .filter(daily_breakdown::local_day.ge(range.from()))
        .filter(daily_breakdown::local_day.le(range.to()))
        .select(BreakdownRow::as_select())
        .load(conn)
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = usage_events)]
pub struct EventInsert {
    pub org_id: OrgId,
    /// The caller's id, if it gave one; such an event has a key in `usage_keys` too.
    pub event_id: Option<String>,
    pub local_day: NaiveDate,
    pub occurred_at: NaiveDateTime,
    pub credits: i64,
    pub free_credits: i64,
    pub additional: i64,
    pub operation: String,
    pub client: String,
    pub user_ref: String,
    pub recorded_at: NaiveDateTime,
}

/// Which of these (org, event id) pairs are stored already, looked up in chunks.
pub fn existing_event_ids<'a>(
    conn: &mut DbConn,
    keys: impl Iterator<Item = (OrgId, &'a str)>,
) -> QueryResult<std::collections::HashSet<(OrgId, String)>> {
    let mut by_org: BTreeMap<OrgId, Vec<&str>> = BTreeMap::new();
    for (org_id, id) in keys {
        by_org.entry(org_id).or_default().push(id);
    }
    let mut found = std::collections::HashSet::new();
    for (org_id, ids) in by_org {
        for chunk in ids.chunks(500) {
            let stored: Vec<String> = usage_keys::table
                .filter(usage_keys::org_id.eq(org_id))
                .filter(usage_keys::event_id.eq_any(chunk))
                .select(usage_keys::event_id)
                .load(conn)?;
            found.extend(stored.into_iter().map(|id| (org_id, id)));
        }
    }
    Ok(found)
}

/// Claim the idempotency keys of a batch (R9), given in one sorted order: insert those not stored
/// yet and return them. A key returned is this transaction's until it commits; a key not returned
/// was admitted before. On PostgreSQL, a key that another transaction has inserted but not yet
/// committed makes this insert wait for that transaction's end, and then it counts as admitted
/// (committed) or is claimed here (rolled back or released), so an id is never admitted twice and
/// its second inserter never fails. The caller releases the keys of requests it then refuses.
pub fn claim_keys(
    conn: &mut DbConn,
    keys: &[(OrgId, &str, NaiveDate)],
) -> QueryResult<HashSet<(OrgId, String)>> {
    let mut claimed = HashSet::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(claimed);
    }
    match conn {
        DbConn::Sqlite(c) => {
            for chunk in keys.chunks(KEYS_PER_STATEMENT) {
                claimed.extend(ClaimKeys(chunk).load::<(OrgId, String)>(c)?);
            }
        }
        DbConn::Postgresql(c) => claimed.extend(PgClaimKeys::of(keys).load::<(OrgId, String)>(c)?),
    }
    Ok(claimed)
}

/// Give claimed keys back (their requests were refused): the ids stay unused.
pub fn release_keys(conn: &mut DbConn, org_id: OrgId, ids: &[&str]) -> QueryResult<()> {
    for chunk in ids.chunks(KEYS_PER_STATEMENT) {
        diesel::delete(
            usage_keys::table
                .filter(usage_keys::org_id.eq(org_id))
                .filter(usage_keys::event_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Move a claimed key to the day its request was admitted on (a batch can refuse an id on one day
/// and admit it, later in the same batch, on another).
pub fn move_key(
    conn: &mut DbConn,
    org_id: OrgId,
    id: &str,
    local_day: NaiveDate,
) -> QueryResult<()> {
    diesel::update(usage_keys::table.find((org_id, id)))
        .set(usage_keys::local_day.eq(local_day))
        .execute(conn)?;
    Ok(())
}

/// Read the day rows of a batch, given in one sorted order, and lock them until the transaction
/// ends: a missing row is created, pinned to `plan_id`, the plan in force that day (R6); an
/// existing one keeps its plan. On PostgreSQL the upsert's row locks make every other process's
/// batch on the same org-days wait, and what it returns is the last committed state (not the
/// statement's snapshot), so each batch decides on what the previous one left. On SQLite the
/// write transaction holds the database's one write lock already.
pub fn lock_days(conn: &mut DbConn, days: &[(OrgId, NaiveDate, i64)]) -> QueryResult<Vec<DayRow>> {
    let mut rows = Vec::with_capacity(days.len());
    for chunk in days.chunks(KEYS_PER_STATEMENT) {
        let found: Vec<(OrgId, NaiveDate, i64, i64, i64, i64, i64)> =
            crate::on_backend!(conn, c => LockDays(chunk).load(c))?;
        rows.extend(found.into_iter().map(
            |(org_id, local_day, credits, free_credits, additional, amount_minor, plan_id)| {
                DayRow {
                    org_id,
                    local_day,
                    credits,
                    free_credits,
                    additional,
                    amount_minor,
                    plan_id,
                }
            },
        ));
    }
    Ok(rows)
}

/// PostgreSQL's forms of the two largest statements of the write path: one array parameter per
/// column, unnested into rows in their order, so that the statement's text, and so its prepared
/// plan, is the same for any number of rows (a `VALUES` list of a thousand rows took PostgreSQL
/// longer to parse and bind than to execute).
struct PgClaimKeys<'a> {
    org_ids: Vec<i64>,
    ids: Vec<&'a str>,
    days: Vec<NaiveDate>,
}

impl<'a> PgClaimKeys<'a> {
    fn of(keys: &[(OrgId, &'a str, NaiveDate)]) -> Self {
        PgClaimKeys {
            org_ids: keys.iter().map(|k| k.0.get()).collect(),
            ids: keys.iter().map(|k| k.1).collect(),
            days: keys.iter().map(|k| k.2).collect(),
        }
    }
}

impl PgClaimKeys<'_> {
    /// The keys' insert, taking only the rows `WHERE` `guard` holds when a guard is given; a key
    /// that exists already is left as it is.
    fn walk_insert<'b>(
        &'b self,
        guard: &'static str,
        mut out: AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::Array;
        out.push_sql("INSERT INTO usage_keys (org_id, event_id, local_day) SELECT * FROM UNNEST(");
        out.push_bind_param::<Array<BigInt>, _>(&self.org_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Date>, _>(&self.days)?;
        out.push_sql(")");
        out.push_sql(guard);
        out.push_sql(" ON CONFLICT (org_id, event_id) DO NOTHING");
        Ok(())
    }
}

impl QueryFragment<diesel::pg::Pg> for PgClaimKeys<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        self.walk_insert("", out.reborrow())?;
        out.push_sql(" RETURNING org_id, event_id");
        Ok(())
    }
}

impl QueryId for PgClaimKeys<'_> {
    type QueryId = PgClaimKeys<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for PgClaimKeys<'_> {
    type SqlType = (BigInt, Text);
}

impl RunQueryDsl<diesel::PgConnection> for PgClaimKeys<'_> {}

struct PgEvents<'a> {
    org_ids: Vec<i64>,
    event_ids: Vec<Option<&'a str>>,
    days: Vec<NaiveDate>,
    occurred_at: Vec<NaiveDateTime>,
    credits: Vec<i64>,
    free_credits: Vec<i64>,
    additional: Vec<i64>,
    operations: Vec<&'a str>,
    clients: Vec<&'a str>,
    users: Vec<&'a str>,
    recorded_at: Vec<NaiveDateTime>,
}

impl<'a> PgEvents<'a> {
    fn of(events: &'a [EventInsert]) -> Self {
        PgEvents {
            org_ids: events.iter().map(|e| e.org_id.get()).collect(),
            event_ids: events.iter().map(|e| e.event_id.as_deref()).collect(),
            days: events.iter().map(|e| e.local_day).collect(),
            occurred_at: events.iter().map(|e| e.occurred_at).collect(),
            credits: events.iter().map(|e| e.credits).collect(),
            free_credits: events.iter().map(|e| e.free_credits).collect(),
            additional: events.iter().map(|e| e.additional).collect(),
            operations: events.iter().map(|e| e.operation.as_str()).collect(),
            clients: events.iter().map(|e| e.client.as_str()).collect(),
            users: events.iter().map(|e| e.user_ref.as_str()).collect(),
            recorded_at: events.iter().map(|e| e.recorded_at).collect(),
        }
    }
}

impl QueryFragment<diesel::pg::Pg> for PgEvents<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, Nullable, Timestamp};
        out.push_sql(
            "INSERT INTO usage_events (org_id, event_id, local_day, occurred_at, credits, \
             free_credits, additional, operation, client, user_ref, recorded_at) SELECT * FROM UNNEST(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.org_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.event_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Date>, _>(&self.days)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.occurred_at)?;
        for column in [&self.credits, &self.free_credits, &self.additional] {
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(column)?;
        }
        for column in [&self.operations, &self.clients, &self.users] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(column)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.recorded_at)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for PgEvents<'_> {
    type QueryId = PgEvents<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::PgConnection> for PgEvents<'_> {}

struct PgDays {
    org_ids: Vec<i64>,
    days: Vec<NaiveDate>,
    credits: Vec<i64>,
    free_credits: Vec<i64>,
    additional: Vec<i64>,
    amounts: Vec<i64>,
    plan_ids: Vec<i64>,
}

impl PgDays {
    fn of(rows: &[DayRow]) -> Self {
        PgDays {
            org_ids: rows.iter().map(|r| r.org_id.get()).collect(),
            days: rows.iter().map(|r| r.local_day).collect(),
            credits: rows.iter().map(|r| r.credits).collect(),
            free_credits: rows.iter().map(|r| r.free_credits).collect(),
            additional: rows.iter().map(|r| r.additional).collect(),
            amounts: rows.iter().map(|r| r.amount_minor).collect(),
            plan_ids: rows.iter().map(|r| r.plan_id).collect(),
        }
    }

    /// The seven columns as `UNNEST` arguments, in the table's order.
    fn walk_columns<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::Array;
        out.push_bind_param::<Array<BigInt>, _>(&self.org_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Date>, _>(&self.days)?;
        for column in [
            &self.credits,
            &self.free_credits,
            &self.additional,
            &self.amounts,
            &self.plan_ids,
        ] {
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(column)?;
        }
        Ok(())
    }
}

struct PgBreakdowns<'a> {
    org_ids: Vec<i64>,
    days: Vec<NaiveDate>,
    operations: Vec<&'a str>,
    clients: Vec<&'a str>,
    credits: Vec<i64>,
    additional: Vec<i64>,
}

impl<'a> PgBreakdowns<'a> {
    fn of(rows: &'a [BreakdownRow]) -> Self {
        PgBreakdowns {
            org_ids: rows.iter().map(|r| r.org_id.get()).collect(),
            days: rows.iter().map(|r| r.local_day).collect(),
            operations: rows.iter().map(|r| r.operation.as_str()).collect(),
            clients: rows.iter().map(|r| r.client.as_str()).collect(),
            credits: rows.iter().map(|r| r.credits).collect(),
            additional: rows.iter().map(|r| r.additional).collect(),
        }
    }
}

struct PgUsers<'a> {
    org_ids: Vec<i64>,
    days: Vec<NaiveDate>,
    users: Vec<&'a str>,
    credits: Vec<i64>,
    additional: Vec<i64>,
}

impl<'a> PgUsers<'a> {
    fn of(rows: &'a [UserBreakdownRow]) -> Self {
        PgUsers {
            org_ids: rows.iter().map(|r| r.org_id.get()).collect(),
            days: rows.iter().map(|r| r.local_day).collect(),
            users: rows.iter().map(|r| r.user_ref.as_str()).collect(),
            credits: rows.iter().map(|r| r.credits).collect(),
            additional: rows.iter().map(|r| r.additional).collect(),
        }
    }
}

/// A batch's writes in one PostgreSQL statement; the text is the same for any number of rows.
struct PgWriteBatch<'a> {
    days: PgDays,
    breakdowns: PgBreakdowns<'a>,
    users: PgUsers<'a>,
    events: PgEvents<'a>,
}

impl QueryFragment<diesel::pg::Pg> for PgWriteBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        walk_upserts(
            &self.days,
            &self.breakdowns,
            &self.users,
            "",
            out.reborrow(),
        )?;
        out.push_sql(" ");
        self.events.walk_ast(out.reborrow())
    }
}

/// The three upserts of a batch as `WITH` parts (`days`, `breakdowns`, `user_counts`), each
/// inserting only `WHERE` `guard` holds when a guard is given.
fn walk_upserts<'b>(
    days: &'b PgDays,
    breakdowns: &'b PgBreakdowns<'_>,
    users: &'b PgUsers<'_>,
    guard: &'static str,
    mut out: AstPass<'_, 'b, diesel::pg::Pg>,
) -> QueryResult<()> {
    use diesel::sql_types::Array;
    out.push_sql(
        "days AS (INSERT INTO daily_usage (org_id, local_day, credits, free_credits, additional, \
         amount_minor, plan_id) SELECT * FROM UNNEST(",
    );
    days.walk_columns(out.reborrow())?;
    out.push_sql(")");
    out.push_sql(guard);
    out.push_sql(DAY_UPSERT);
    out.push_sql(
        "), breakdowns AS (INSERT INTO daily_breakdown (org_id, local_day, operation, client, \
         credits, additional) SELECT * FROM UNNEST(",
    );
    out.push_bind_param::<Array<BigInt>, _>(&breakdowns.org_ids)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Date>, _>(&breakdowns.days)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&breakdowns.operations)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&breakdowns.clients)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<BigInt>, _>(&breakdowns.credits)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<BigInt>, _>(&breakdowns.additional)?;
    out.push_sql(")");
    out.push_sql(guard);
    out.push_sql(BREAKDOWN_UPSERT);
    out.push_sql(
        "), user_counts AS (INSERT INTO daily_user_breakdown (org_id, local_day, user_ref, \
         credits, additional) SELECT * FROM UNNEST(",
    );
    out.push_bind_param::<Array<BigInt>, _>(&users.org_ids)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Date>, _>(&users.days)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&users.users)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<BigInt>, _>(&users.credits)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<BigInt>, _>(&users.additional)?;
    out.push_sql(")");
    out.push_sql(guard);
    out.push_sql(USER_UPSERT);
    out.push_sql(")");
    Ok(())
}

impl QueryId for PgWriteBatch<'_> {
    type QueryId = PgWriteBatch<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::PgConnection> for PgWriteBatch<'_> {}

/// What a batch decided on from the writer's cache instead of reading it under lock: the org
/// rules' versions and the day rows as cached (`write_cached` checks them).
pub struct Cached<'a> {
    pub versions: &'a [(OrgId, i64)],
    pub days: &'a [DayRow],
}

/// Write a batch decided on `cached` (PostgreSQL) as one statement, in its own transaction: it
/// share-locks the org rows and locks the day rows, in the order every batch locks; checks that
/// the versions and the rows are as cached; claims `keys` (the ids the batch admitted, each with
/// its day) and checks that every one is new; and only then writes. When a check fails it fails
/// with an error for which `is_stale` holds, and writes nothing.
pub fn write_cached(
    conn: &mut DbConn,
    cached: Cached<'_>,
    days: &[DayRow],
    breakdowns: &[BreakdownRow],
    users: &[UserBreakdownRow],
    events: &[EventInsert],
    keys: &[(OrgId, &str, NaiveDate)],
) -> QueryResult<()> {
    let DbConn::Postgresql(c) = conn else {
        return Err(diesel::result::Error::QueryBuilderError(
            "a cached batch is a PostgreSQL statement".into(),
        ));
    };
    PgCachedBatch {
        version_orgs: cached.versions.iter().map(|(id, _)| id.get()).collect(),
        versions: cached.versions.iter().map(|(_, v)| *v).collect(),
        checked: PgDays::of(cached.days),
        keys: PgClaimKeys::of(keys),
        days: PgDays::of(days),
        breakdowns: PgBreakdowns::of(breakdowns),
        users: PgUsers::of(users),
        events: PgEvents::of(events),
    }
    .execute(c)?;
    Ok(())
}

/// Whether a statement that is its own transaction surely did not commit: the server answered
/// with an error on a connection still open. A lost connection, or no answer (diesel reports a
/// missing result as `UnableToSendCommand` too), leaves the outcome unknown.
pub fn failed_before_commit(error: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind::{ClosedConnection, UnableToSendCommand};
    matches!(error, diesel::result::Error::DatabaseError(kind, _)
        if !matches!(kind, ClosedConnection | UnableToSendCommand))
}

/// Whether nothing says the connection is lost, learnt without a round trip (PostgreSQL): what
/// the server sent unasked is read, without waiting, and a connection the server closed while
/// idle (it sends an error and closes) shows as an error. SQLite's is always alive.
pub fn connection_alive(conn: &mut DbConn) -> bool {
    match conn {
        // Reading twice: the first read takes a termination message, the second sees the close.
        DbConn::Postgresql(c) => (0..2).all(|_| {
            c.notifications_iter()
                .next()
                .is_none_or(|notification| notification.is_ok())
        }),
        DbConn::Sqlite(_) => true,
    }
}

/// Whether a cached batch failed its checks (and so wrote nothing).
pub fn is_stale(error: &diesel::result::Error) -> bool {
    matches!(error, diesel::result::Error::DatabaseError(_, info)
        if info.message().starts_with("stale batch:"))
}

/// `write_cached`'s statement. Its `verdict` part locks the org rows (in id order) and then the
/// day rows (in key order) as it counts those whose version and columns are as cached; every write
/// part inserts only if the verdict held, and the main query, which runs before the parts it does
/// not read, fails unless the verdict held and every key was new.
struct PgCachedBatch<'a> {
    version_orgs: Vec<i64>,
    versions: Vec<i64>,
    checked: PgDays,
    keys: PgClaimKeys<'a>,
    days: PgDays,
    breakdowns: PgBreakdowns<'a>,
    users: PgUsers<'a>,
    events: PgEvents<'a>,
}

impl QueryFragment<diesel::pg::Pg> for PgCachedBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::Array;
        const HELD: &str = " WHERE (SELECT held FROM verdict)";
        out.push_sql("WITH locked_orgs AS (SELECT id, rules_version FROM orgs WHERE id = ANY(");
        out.push_bind_param::<Array<BigInt>, _>(&self.version_orgs)?;
        out.push_sql(
            ") ORDER BY id FOR SHARE), locked_days AS (SELECT org_id, local_day, credits, \
             free_credits, additional, amount_minor, plan_id FROM daily_usage \
             WHERE (org_id, local_day) IN (SELECT * FROM UNNEST(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.checked.org_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Date>, _>(&self.checked.days)?;
        out.push_sql(
            ")) ORDER BY org_id, local_day FOR UPDATE), verdict AS (SELECT CASE WHEN \
             (SELECT count(*) FROM locked_orgs JOIN UNNEST(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.version_orgs)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.versions)?;
        out.push_sql(
            ") AS v (id, version) ON locked_orgs.id = v.id \
             AND locked_orgs.rules_version = v.version) = cardinality(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.version_orgs)?;
        out.push_sql(") THEN (SELECT count(*) FROM locked_days d JOIN UNNEST(");
        self.checked.walk_columns(out.reborrow())?;
        out.push_sql(
            ") AS e (org_id, local_day, credits, free_credits, additional, amount_minor, \
             plan_id) ON (d.org_id, d.local_day, d.credits, d.free_credits, d.additional, \
             d.amount_minor, d.plan_id) = (e.org_id, e.local_day, e.credits, e.free_credits, \
             e.additional, e.amount_minor, e.plan_id)) = cardinality(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.checked.org_ids)?;
        out.push_sql(") ELSE false END AS held), keys AS (");
        self.keys.walk_insert(HELD, out.reborrow())?;
        out.push_sql(" RETURNING 1), ");
        walk_upserts(
            &self.days,
            &self.breakdowns,
            &self.users,
            HELD,
            out.reborrow(),
        )?;
        out.push_sql(", events AS (");
        self.events.walk_ast(out.reborrow())?;
        out.push_sql(HELD);
        out.push_sql(
            ") SELECT CASE WHEN (SELECT held FROM verdict) AND (SELECT count(*) FROM keys) = \
             cardinality(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.keys.org_ids)?;
        out.push_sql(") THEN true ELSE creditmeter_stale_batch() END");
        Ok(())
    }
}

impl QueryId for PgCachedBatch<'_> {
    type QueryId = PgCachedBatch<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::PgConnection> for PgCachedBatch<'_> {}

/// Rows per key or day statement: three parameters each, far below both backends' limits.
const KEYS_PER_STATEMENT: usize = 500;

struct ClaimKeys<'a>(&'a [(OrgId, &'a str, NaiveDate)]);
struct LockDays<'a>(&'a [(OrgId, NaiveDate, i64)]);

impl<DB> QueryFragment<DB> for ClaimKeys<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
    NaiveDate: ToSql<Date, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO usage_keys (org_id, event_id, local_day) VALUES ");
        for (i, (org_id, id, local_day)) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(org_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(id)?;
            out.push_sql(", ");
            out.push_bind_param::<Date, _>(local_day)?;
            out.push_sql(")");
        }
        out.push_sql(" ON CONFLICT (org_id, event_id) DO NOTHING RETURNING org_id, event_id");
        Ok(())
    }
}

impl<DB> QueryFragment<DB> for LockDays<'_>
where
    DB: Backend,
    i64: ToSql<BigInt, DB>,
    NaiveDate: ToSql<Date, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO daily_usage (org_id, local_day, credits, free_credits, additional, \
             amount_minor, plan_id) VALUES ",
        );
        for (i, (org_id, local_day, plan_id)) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<BigInt, _>(org_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Date, _>(local_day)?;
            out.push_sql(", 0, 0, 0, 0, ");
            out.push_bind_param::<BigInt, _>(plan_id)?;
            out.push_sql(")");
        }
        out.push_sql(
            " ON CONFLICT (org_id, local_day) DO UPDATE SET plan_id = daily_usage.plan_id \
             RETURNING org_id, local_day, credits, free_credits, additional, amount_minor, plan_id",
        );
        Ok(())
    }
}

impl QueryId for ClaimKeys<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryId for LockDays<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for ClaimKeys<'_> {
    type SqlType = (BigInt, Text);
}

impl Query for LockDays<'_> {
    type SqlType = (BigInt, Date, BigInt, BigInt, BigInt, BigInt, BigInt);
}

impl<Conn> RunQueryDsl<Conn> for ClaimKeys<'_> {}
impl<Conn> RunQueryDsl<Conn> for LockDays<'_> {}

/// Store raw events in the caller's transaction (their keys are claimed apart: `claim_keys`).
pub fn insert_events(conn: &mut DbConn, events: &[EventInsert]) -> QueryResult<()> {
    match conn {
        DbConn::Sqlite(c) => {
            let mut previous: Option<(&EventInsert, &EventTexts)> = None;
            let mut texts: Vec<EventTexts> = Vec::with_capacity(events.len());
            for e in events {
                let t = EventTexts::of(e, previous);
                texts.push(t);
                previous = Some((e, texts.last().expect("pushed")));
            }
            for (chunk, texts) in events
                .chunks(SQLITE_ROWS_PER_INSERT)
                .zip(texts.chunks(SQLITE_ROWS_PER_INSERT))
            {
                SqliteRows(chunk, texts).execute(c)?;
            }
        }
        DbConn::Postgresql(c) if !events.is_empty() => {
            PgEvents::of(events).execute(c)?;
        }
        DbConn::Postgresql(_) => {}
    }
    Ok(())
}

/// Rows per multi-row INSERT on SQLite: 11 columns at most, well under its bound-variable limit.
const SQLITE_ROWS_PER_INSERT: usize = 200;

/// Diesel stores SQLite dates and timestamps as text; the write path formats them itself. The day
/// and the recording time mostly repeat from one event of a batch to the next and are shared.
struct EventTexts {
    local_day: Rc<str>,
    occurred_at: String,
    recorded_at: Rc<str>,
}

impl EventTexts {
    fn of(e: &EventInsert, previous: Option<(&EventInsert, &EventTexts)>) -> Self {
        EventTexts {
            local_day: match previous.filter(|(p, _)| p.local_day == e.local_day) {
                Some((_, t)) => t.local_day.clone(),
                None => super::sqlite_date(e.local_day).into(),
            },
            occurred_at: super::sqlite_timestamp(e.occurred_at),
            recorded_at: match previous.filter(|(p, _)| p.recorded_at == e.recorded_at) {
                Some((_, t)) => t.recorded_at.clone(),
                None => super::sqlite_timestamp(e.recorded_at).into(),
            },
        }
    }
}

/// A row of a multi-row INSERT on SQLite, with its date texts formatted beforehand.
trait SqliteRow {
    type Texts;
    const INSERT: &'static str;
    fn bind<'b>(
        &'b self,
        texts: &'b Self::Texts,
        out: &mut AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()>;
}

impl SqliteRow for EventInsert {
    type Texts = EventTexts;
    const INSERT: &'static str = "INSERT INTO usage_events (org_id, event_id, local_day, \
         occurred_at, credits, free_credits, additional, operation, client, user_ref, recorded_at) \
         VALUES ";
    fn bind<'b>(
        &'b self,
        texts: &'b EventTexts,
        out: &mut AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_bind_param::<BigInt, _>(&self.org_id)?;
        out.push_sql(",");
        out.push_bind_param::<diesel::sql_types::Nullable<Text>, _>(&self.event_id)?;
        out.push_sql(",");
        out.push_bind_param::<Text, _>(&*texts.local_day)?;
        out.push_sql(",");
        out.push_bind_param::<Text, _>(&texts.occurred_at)?;
        for value in [&self.credits, &self.free_credits, &self.additional] {
            out.push_sql(",");
            out.push_bind_param::<BigInt, _>(value)?;
        }
        for value in [&self.operation, &self.client, &self.user_ref] {
            out.push_sql(",");
            out.push_bind_param::<Text, _>(value)?;
        }
        out.push_sql(",");
        out.push_bind_param::<Text, _>(&*texts.recorded_at)?;
        Ok(())
    }
}

/// A multi-row INSERT on SQLite, written out because Diesel wraps its SQLite batch insert in a
/// transaction of its own, which cannot nest in the ledger's. Its text depends only on the table
/// and the row count, so SQLite's prepared statement is kept and reused for batches of that size.
struct SqliteRows<'a, R: SqliteRow>(&'a [R], &'a [R::Texts]);

impl<R: SqliteRow> QueryId for SqliteRows<'_, R> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<R: SqliteRow> QueryFragment<diesel::sqlite::Sqlite> for SqliteRows<'_, R> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        out.push_sql(R::INSERT);
        for (i, (row, texts)) in self.0.iter().zip(self.1).enumerate() {
            out.push_sql(if i == 0 { "(" } else { ",(" });
            row.bind(texts, &mut out)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl<R: SqliteRow> RunQueryDsl<diesel::SqliteConnection> for SqliteRows<'_, R> {}

/// Drop an org's idempotency keys of the days in `[from, until)` (a period closed a period ago:
/// see `billing::close_due`).
pub fn forget_keys(
    conn: &mut DbConn,
    org_id: OrgId,
    from: NaiveDate,
    until: NaiveDate,
) -> QueryResult<usize> {
    diesel::delete(
        usage_keys::table
            .filter(usage_keys::org_id.eq(org_id))
            .filter(usage_keys::local_day.ge(from))
            .filter(usage_keys::local_day.lt(until)),
    )
    .execute(conn)
}

/// Raw events deleted per transaction when the audit window is pruned, so that the usage writer
/// never waits long behind the pruning.
const PRUNE_CHUNK: i64 = 5_000;

/// Delete the raw events recorded before `cutoff` (the end of the audit window), oldest first, in
/// short transactions. Events are appended in arrival order, so those to delete are exactly the
/// ids from the oldest up to the first id recorded at or after the cutoff; finding it reads only
/// the old rows on SQLite (in id order, stopping at the first young one) and uses the
/// `recorded_at` index on PostgreSQL. Each chunk is bounded on both sides: once the table is
/// empty SQLite numbers a new event from 1 again, and an event the writer appends between two
/// chunks must not fall inside the range. Returns how many were deleted.
pub fn prune_events(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    use diesel::dsl::{max, min};
    let (oldest, last): (Option<i64>, Option<i64>) = usage_events::table
        .select((min(usage_events::id), max(usage_events::id)))
        .first(conn)?;
    let (Some(oldest), Some(last)) = (oldest, last) else {
        return Ok(0);
    };
    let first_kept: Option<i64> = usage_events::table
        .filter(usage_events::recorded_at.ge(cutoff))
        .select(min(usage_events::id))
        .first(conn)?;
    // Nothing inside the window: everything up to the last event goes.
    let boundary = first_kept.unwrap_or(last + 1);
    let mut deleted = 0;
    let mut lower = oldest;
    while lower < boundary {
        let upper = boundary.min(lower + PRUNE_CHUNK);
        deleted += crate::db::write_transaction(conn, |conn| {
            diesel::delete(
                usage_events::table
                    .filter(usage_events::id.ge(lower))
                    .filter(usage_events::id.lt(upper)),
            )
            .execute(conn)
        })?;
        lower = upper;
    }
    Ok(deleted)
}

/// Sum of the rounded day charges of `[from, to_exclusive)`, in minor units.
pub fn amount_between(
    conn: &mut DbConn,
    org_id: OrgId,
    from: NaiveDate,
    to_exclusive: NaiveDate,
) -> QueryResult<i64> {
    let amounts: Vec<i64> = daily_usage::table
        .filter(daily_usage::org_id.eq(org_id))
        .filter(daily_usage::local_day.ge(from))
        .filter(daily_usage::local_day.lt(to_exclusive))
        .select(daily_usage::amount_minor)
        .load(conn)?;
    Ok(amounts.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, DatabaseUrl};
    use crate::domain::allowance::{Allowance, Edition};
    use chrono::{DateTime, TimeZone, Utc};

    /// One free credit, spent and recorded at `at`, in a UTC org.
    fn event(org_id: OrgId, id: Option<&str>, at: DateTime<Utc>) -> EventInsert {
        EventInsert {
            org_id,
            event_id: id.map(str::to_string),
            local_day: at.date_naive(),
            occurred_at: at.naive_utc(),
            credits: 1,
            free_credits: 1,
            additional: 0,
            operation: "op".into(),
            client: "c".into(),
            user_ref: String::new(),
            recorded_at: at.naive_utc(),
        }
    }

    #[test]
    fn pruning_keeps_the_audit_window_and_the_keys_of_open_periods() {
        let dir = tempfile::tempdir().unwrap();
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("p.db").display())).unwrap();
        let mut conn = db::connect_one(&url).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let org = crate::store::orgs::NewOrg {
            name: "P".into(),
            zone: chrono_tz::UTC,
            allowance: Allowance {
                edition: Edition::Enterprise,
                licences: 1,
                add_on_credits: 0,
            },
        };
        let org_id = crate::store::orgs::create(&mut conn, &org, now).unwrap();
        // 12,000 events, one an hour back from now (more than two pruning chunks), every tenth
        // with an id.
        let events: Vec<EventInsert> = (0..12_000i64)
            .rev()
            .map(|h| {
                let at = now - chrono::Duration::hours(h);
                let id = format!("e{h}");
                event(org_id, (h % 10 == 0).then_some(id.as_str()), at)
            })
            .collect();
        let keys: Vec<(OrgId, &str, NaiveDate)> = events
            .iter()
            .filter_map(|e| Some((e.org_id, e.event_id.as_deref()?, e.local_day)))
            .collect();
        db::write_transaction(&mut conn, |c| {
            insert_events(c, &events)?;
            claim_keys(c, &keys).map(|_| ())
        })
        .unwrap();

        let cutoff = (now - chrono::Duration::days(90)).naive_utc();
        let deleted = prune_events(&mut conn, cutoff).unwrap();
        let kept: Vec<NaiveDateTime> = usage_events::table
            .select(usage_events::recorded_at)
            .load(&mut conn)
            .unwrap();
        assert_eq!(
            kept.len(),
            90 * 24 + 1,
            "the last 90 days, both ends included"
        );
        assert_eq!(deleted + kept.len(), 12_000);
        assert!(kept.iter().all(|&t| t >= cutoff));
        assert_eq!(
            prune_events(&mut conn, cutoff).unwrap(),
            0,
            "pruning again finds nothing"
        );

        // Keys outlive the raw events until their period is closed.
        let key_count =
            |conn: &mut DbConn| -> i64 { usage_keys::table.count().get_result(conn).unwrap() };
        assert_eq!(key_count(&mut conn), 1_200);
        let until = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        forget_keys(&mut conn, org_id, NaiveDate::MIN, until).unwrap();
        let days: Vec<NaiveDate> = usage_keys::table
            .select(usage_keys::local_day)
            .load(&mut conn)
            .unwrap();
        assert!(!days.is_empty() && days.iter().all(|&d| d >= until));
        assert_eq!(days.len() as i64, key_count(&mut conn));
        // A cutoff after the last event prunes everything that is left.
        let later = (now + chrono::Duration::days(1)).naive_utc();
        assert_eq!(prune_events(&mut conn, later).unwrap(), 90 * 24 + 1);
    }
}
