//! Orgs: name, time zone, edition and allowance history (R1, R11), webhook.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;

use super::db_time;
use crate::db::DbConn;
use crate::db::schema::{allowance_changes, orgs};
use crate::domain::allowance::{Allowance, AllowanceChange, Edition, allowance_on};
use crate::domain::calendar;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orgs)]
pub struct OrgRow {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub edition: String,
    pub licences: i64,
    pub add_on_credits: i64,
    pub additional_limit: i64,
    pub billing_anchor: Option<NaiveDate>,
    pub webhook_url: Option<String>,
    pub created_at: NaiveDateTime,
}

impl OrgRow {
    /// The org's zone; values are validated when written, so the fallback is never expected.
    pub fn zone(&self) -> Tz {
        calendar::parse_zone(&self.timezone).unwrap_or(chrono_tz::UTC)
    }

    pub fn edition(&self) -> Edition {
        self.edition.parse().unwrap_or(Edition::Free)
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
        self.billing_anchor.map(|anchor| {
            calendar::period_containing(anchor, local_day)
                .unwrap_or_else(|| calendar::billing_period(anchor, 0))
        })
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
    org_id: i64,
    effective_from: NaiveDate,
    edition: &'a str,
    licences: i64,
    add_on_credits: i64,
    changed_at: NaiveDateTime,
}

pub fn create(conn: &mut DbConn, org: &NewOrg, now: DateTime<Utc>) -> QueryResult<i64> {
    crate::db::write_transaction(conn, |conn| {
        let id: i64 = diesel::insert_into(orgs::table)
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

pub fn find(conn: &mut DbConn, org_id: i64) -> QueryResult<Option<OrgRow>> {
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
    /// `Some(None)` removes the webhook.
    pub webhook_url: Option<Option<String>>,
}

/// Apply an update. A change of edition, licences or add-on credits takes effect from the org's
/// next local day (R11); name, zone and webhook at once.
pub fn update(
    conn: &mut DbConn,
    org_id: i64,
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
        if let Some(webhook) = &change.webhook_url {
            diesel::update(orgs::table.find(org_id))
                .set(orgs::webhook_url.eq(webhook))
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
            let effective_from = calendar::local_day(now, zone)
                .succ_opt()
                .unwrap_or(NaiveDate::MAX);
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
pub fn allowance_history(conn: &mut DbConn, org_id: i64) -> QueryResult<Vec<AllowanceChange>> {
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
    Ok(rows
        .into_iter()
        .map(
            |(effective_from, edition, licences, add_on_credits)| AllowanceChange {
                effective_from,
                allowance: Allowance {
                    edition: edition.parse().unwrap_or(Edition::Free),
                    licences,
                    add_on_credits,
                },
            },
        )
        .collect())
}

/// The daily free credits of one org-local day (R1, R11).
pub fn free_allowance_on(
    conn: &mut DbConn,
    org: &OrgRow,
    local_day: NaiveDate,
) -> QueryResult<i64> {
    let history = allowance_history(conn, org.id)?;
    Ok(allowance_on(&history, local_day)
        .unwrap_or_else(|| org.allowance())
        .daily_free_credits())
}
