//! Orgs: name, time zone, edition and allowance history (R1, R11).

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;

use super::db_time;
use crate::db::DbConn;
use crate::db::schema::{allowance_changes, orgs};
use crate::domain::admission::{LimitChange, OrgRules};
use crate::domain::alerts::{Budget, Thresholds};
use crate::domain::allowance::{self, Allowance, AllowanceChange, Edition, free_credits_on};
use crate::domain::calendar;

/// A stored time zone name, read into a `Tz` or refused: never a silent UTC.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct ZoneName(String);

impl ZoneName {
    pub fn try_into(self) -> Result<Tz, calendar::UnknownZone> {
        calendar::parse_zone(&self.0)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for ZoneName
where
    DB: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        String::from_sql(bytes).map(ZoneName)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orgs)]
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    #[diesel(deserialize_as = ZoneName)]
    pub timezone: Tz,
    #[diesel(deserialize_as = String)]
    pub edition: Edition,
    pub licences: i64,
    pub add_on_credits: i64,
    pub additional_limit: i64,
    pub billing_anchor: Option<NaiveDate>,
    pub webhook_url: Option<String>,
    pub created_at: NaiveDateTime,
    pub alert_thresholds: String,
    pub budget_minor: Option<i64>,
    pub budget_stop: bool,
}

impl OrgRow {
    pub fn zone(&self) -> Tz {
        self.timezone
    }

    /// R13's thresholds (the stored text is checked when written; a row edited by hand into
    /// nonsense gets the defaults, with a warning).
    pub fn thresholds(&self) -> Thresholds {
        self.alert_thresholds.parse().unwrap_or_else(|e| {
            tracing::warn!(org = %self.id, error = %e, "stored alert thresholds are invalid; using the defaults");
            Thresholds::default()
        })
    }

    /// R14's budget, if one is set.
    pub fn budget(&self) -> Option<Budget> {
        self.budget_minor.map(|amount_minor| Budget {
            amount_minor,
            stop: self.budget_stop,
        })
    }

    pub fn edition(&self) -> Edition {
        self.edition
    }

    /// The allowance as configured now (it applies from the next local day, R11).
    pub fn allowance(&self) -> Allowance {
        Allowance {
            edition: self.edition(),
            licences: self.licences,
            add_on_credits: self.add_on_credits,
        }
    }

    pub fn local_day(&self, now: DateTime<Utc>) -> NaiveDate {
        calendar::local_day(now, self.zone())
    }

    /// The billing period that `local_day` falls in (the first one for a day before the anchor),
    /// or `None` while no additional limit was ever set (R7).
    pub fn current_period(&self, local_day: NaiveDate) -> Option<calendar::BillingPeriod> {
        calendar::current_period(self.billing_anchor, local_day)
    }
}

#[derive(Debug, Clone)]
pub struct NewOrg {
    pub name: String,
    pub zone: Tz,
    pub allowance: Allowance,
}

#[derive(Insertable)]
#[diesel(table_name = orgs)]
struct OrgInsert<'a> {
    name: &'a str,
    timezone: &'a str,
    edition: &'a str,
    licences: i64,
    add_on_credits: i64,
    created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = allowance_changes)]
struct AllowanceInsert<'a> {
    org_id: OrgId,
    effective_from: NaiveDate,
    edition: &'a str,
    licences: i64,
    add_on_credits: i64,
    changed_at: NaiveDateTime,
}

pub fn create(conn: &mut DbConn, org: &NewOrg, now: DateTime<Utc>) -> QueryResult<OrgId> {
    crate::db::write_transaction(conn, |conn| {
        let id: OrgId = diesel::insert_into(orgs::table)
            .values(OrgInsert {
                name: &org.name,
                timezone: org.zone.name(),
                edition: org.allowance.edition.as_str(),
                licences: org.allowance.licences,
                add_on_credits: org.allowance.add_on_credits,
                created_at: db_time(now),
            })
            .returning(orgs::id)
            .get_result(conn)?;
        diesel::insert_into(allowance_changes::table)
            .values(AllowanceInsert {
                org_id: id,
                effective_from: calendar::local_day(now, org.zone),
                edition: org.allowance.edition.as_str(),
                licences: org.allowance.licences,
                add_on_credits: org.allowance.add_on_credits,
                changed_at: db_time(now),
            })
            .execute(conn)?;
        Ok(id)
    })
}

pub fn find(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Option<OrgRow>> {
    orgs::table
        .find(org_id)
        .select(OrgRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<OrgRow>> {
    orgs::table
        .order(orgs::id)
        .select(OrgRow::as_select())
        .load(conn)
}

/// What `org update` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrgUpdate {
    pub name: Option<String>,
    pub edition: Option<Edition>,
    pub licences: Option<i64>,
    pub add_on_credits: Option<i64>,
    pub zone: Option<Tz>,
}

/// Apply an update. A change of edition, licences or add-on credits takes effect from the org's
/// next local day (R11); name, zone and webhook at once.
pub fn update(
    conn: &mut DbConn,
    org_id: OrgId,
    change: &OrgUpdate,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        let org = orgs::table
            .find(org_id)
            .select(OrgRow::as_select())
            .first(conn)?;
        if let Some(name) = &change.name {
            diesel::update(orgs::table.find(org_id))
                .set(orgs::name.eq(name))
                .execute(conn)?;
        }
        if let Some(zone) = change.zone {
            diesel::update(orgs::table.find(org_id))
                .set(orgs::timezone.eq(zone.name()))
                .execute(conn)?;
        }
        if change.edition.is_some() || change.licences.is_some() || change.add_on_credits.is_some()
        {
            let current = org.allowance();
            let next = Allowance {
                edition: change.edition.unwrap_or(current.edition),
                licences: change.licences.unwrap_or(current.licences),
                add_on_credits: change.add_on_credits.unwrap_or(current.add_on_credits),
            };
            diesel::update(orgs::table.find(org_id))
                .set((
                    orgs::edition.eq(next.edition.as_str()),
                    orgs::licences.eq(next.licences),
                    orgs::add_on_credits.eq(next.add_on_credits),
                ))
                .execute(conn)?;
            let zone = change.zone.unwrap_or(org.zone());
            let effective_from = allowance::change_effective_from(now, zone);
            diesel::delete(
                allowance_changes::table
                    .filter(allowance_changes::org_id.eq(org_id))
                    .filter(allowance_changes::effective_from.eq(effective_from)),
            )
            .execute(conn)?;
            diesel::insert_into(allowance_changes::table)
                .values(AllowanceInsert {
                    org_id,
                    effective_from,
                    edition: next.edition.as_str(),
                    licences: next.licences,
                    add_on_credits: next.add_on_credits,
                    changed_at: db_time(now),
                })
                .execute(conn)?;
        }
        Ok(())
    })
}

/// The org's allowance history, oldest first.
pub fn allowance_history(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Vec<AllowanceChange>> {
    let rows: Vec<(NaiveDate, String, i64, i64)> = allowance_changes::table
        .filter(allowance_changes::org_id.eq(org_id))
        .order((allowance_changes::effective_from, allowance_changes::id))
        .select((
            allowance_changes::effective_from,
            allowance_changes::edition,
            allowance_changes::licences,
            allowance_changes::add_on_credits,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(effective_from, edition, licences, add_on_credits)| {
            allowance_change(effective_from, &edition, licences, add_on_credits)
        })
        .collect()
}

/// An `allowance_changes` row as the domain's change; an unknown edition is an error.
fn allowance_change(
    effective_from: NaiveDate,
    edition: &str,
    licences: i64,
    add_on_credits: i64,
) -> QueryResult<AllowanceChange> {
    Ok(AllowanceChange {
        effective_from,
        allowance: Allowance {
            edition: edition
                .parse()
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?,
            licences,
            add_on_credits,
        },
    })
}

/// The daily free credits of one org-local day (R1, R11).
pub fn free_allowance_on(
    conn: &mut DbConn,
    org: &OrgRow,
    local_day: NaiveDate,
) -> QueryResult<i64> {
    let history = allowance_history(conn, org.id)?;
    Ok(free_credits_on(&history, org.allowance(), local_day))
}

/// Take a share lock on the rows of these orgs until the transaction ends, and read the version
/// of their rules (PostgreSQL; on SQLite the write transaction already holds the database's one
/// write lock, and this returns `None`). The usage writer takes it before it uses the orgs' rules:
/// a limit change or a statement from another process then waits for the batch, and the batch
/// sees every change committed before it (a change raises `rules_version`, by trigger). Rows are
/// locked in id order, so two batches never wait for each other in a cycle. An org that does not
/// exist has no version.
pub fn lock_shared(
    conn: &mut DbConn,
    org_ids: &[OrgId],
) -> QueryResult<Option<std::collections::HashMap<OrgId, i64>>> {
    match conn {
        DbConn::Postgresql(c) => Ok(Some(
            orgs::table
                .filter(orgs::id.eq_any(org_ids))
                .order(orgs::id)
                .select((orgs::id, orgs::rules_version))
                .for_share()
                .load::<(OrgId, i64)>(c)?
                .into_iter()
                .collect(),
        )),
        DbConn::Sqlite(_) => Ok(None),
    }
}

/// Serialize the usage batches of these orgs (with a budget, R14) across processes until the
/// transaction ends (PostgreSQL: a transaction-scoped advisory lock per org, taken in id order after
/// the share locks; on SQLite the write lock serializes every batch already). A budget's decisions
/// read every day of a period, more than the rows a batch locks.
pub fn lock_budget(conn: &mut DbConn, org_ids: &[OrgId]) -> QueryResult<()> {
    /// The advisory lock class of budget orgs ("cred"); an org id past 32 bits shares a lock with
    /// another org's, which only serializes the two.
    const BUDGET_LOCKS: i32 = 0x6372_6564;
    if let DbConn::Postgresql(c) = conn {
        let mut ids: Vec<i64> = org_ids.iter().map(|id| id.get()).collect();
        ids.sort_unstable();
        for id in ids {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind::<diesel::sql_types::Integer, _>(BUDGET_LOCKS)
                .bind::<diesel::sql_types::Integer, _>(id as i32)
                .execute(c)?;
        }
    }
    Ok(())
}

/// Take the exclusive lock on an org's row until the transaction ends (PostgreSQL; see
/// `lock_shared`): for closing a period while no usage batch of the org is in flight.
pub fn lock_exclusive(conn: &mut DbConn, org_id: OrgId) -> QueryResult<()> {
    if let DbConn::Postgresql(c) = conn {
        orgs::table
            .find(org_id)
            .select(orgs::id)
            .for_update()
            .load::<i64>(c)?;
    }
    Ok(())
}

/// The ledger's rules of each of these orgs (those that exist), read in four queries whatever
/// their number: zone, current limit and allowance, allowance and limit histories, closed periods.
pub fn rules_of(
    conn: &mut DbConn,
    org_ids: &[OrgId],
) -> QueryResult<std::collections::HashMap<OrgId, OrgRules>> {
    use crate::db::schema::{limit_changes, statements};
    let rows: Vec<OrgRow> = orgs::table
        .filter(orgs::id.eq_any(org_ids))
        .select(OrgRow::as_select())
        .load(conn)?;
    let anchors: std::collections::HashMap<OrgId, Option<NaiveDate>> = rows
        .iter()
        .map(|org| (org.id, org.billing_anchor))
        .collect();
    let mut rules: std::collections::HashMap<OrgId, OrgRules> = rows
        .into_iter()
        .map(|org| {
            let rules = OrgRules {
                zone: org.zone(),
                additional_limit: org.additional_limit,
                allowances: Vec::new(),
                current_allowance: org.allowance(),
                limit_history: Vec::new(),
                closed: Vec::new(),
                anchor: org.billing_anchor,
                thresholds: org.thresholds(),
                budget: org.budget(),
            };
            (org.id, rules)
        })
        .collect();
    let allowances: Vec<(OrgId, NaiveDate, String, i64, i64)> = allowance_changes::table
        .filter(allowance_changes::org_id.eq_any(org_ids))
        .order((
            allowance_changes::org_id,
            allowance_changes::effective_from,
            allowance_changes::id,
        ))
        .select((
            allowance_changes::org_id,
            allowance_changes::effective_from,
            allowance_changes::edition,
            allowance_changes::licences,
            allowance_changes::add_on_credits,
        ))
        .load(conn)?;
    for (org_id, effective_from, edition, licences, add_on_credits) in allowances {
        if let Some(r) = rules.get_mut(&org_id) {
            r.allowances.push(allowance_change(
                effective_from,
                &edition,
                licences,
                add_on_credits,
            )?);
        }
    }
    let limits: Vec<(OrgId, NaiveDateTime, i64)> = limit_changes::table
        .filter(limit_changes::org_id.eq_any(org_ids))
        .order((
            limit_changes::org_id,
            limit_changes::changed_at,
            limit_changes::id,
        ))
        .select((
            limit_changes::org_id,
            limit_changes::changed_at,
            limit_changes::new_limit,
        ))
        .load(conn)?;
    for (org_id, changed_at, new_limit) in limits {
        if let Some(r) = rules.get_mut(&org_id) {
            r.limit_history.push(LimitChange {
                at: super::from_db_time(changed_at),
                new_limit,
            });
        }
    }
    let closed: Vec<(OrgId, NaiveDate, NaiveDate)> = statements::table
        .filter(statements::org_id.eq_any(org_ids))
        .order((statements::org_id, statements::period_start))
        .select((
            statements::org_id,
            statements::period_start,
            statements::period_end,
        ))
        .load(conn)?;
    for (org_id, start, end) in closed {
        if let Some(r) = rules.get_mut(&org_id) {
            let anchor = anchors.get(&org_id).copied().flatten();
            r.closed.push(calendar::issued_period(anchor, start, end));
        }
    }
    Ok(rules)
}
