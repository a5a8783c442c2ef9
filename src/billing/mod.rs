//! Closing billing periods (R7, R8): every period of an org whose end has come is closed once, with
//! a statement of its frozen daily lines and their total. Closing again finds the statement issued
//! and issues nothing; from then on the ledger refuses usage for the period's days.

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;

use crate::db::DbConn;
use crate::domain::calendar;
use crate::report;
use crate::store::statements::{self, StatementLine};
use crate::store::{orgs, usage};

/// Close every due period of every org. `as_of` overrides each org's local today. Two queries
/// find what is due (the orgs, and the end of each org's last statement); each due period is then
/// one transaction.
pub fn close_due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    as_of: Option<NaiveDate>,
) -> QueryResult<Vec<String>> {
    let mut issued = Vec::new();
    let closed_until = statements::closed_until_by_org(conn)?;
    for org in orgs::list(conn)? {
        let Some(anchor) = org.billing_anchor else {
            continue;
        };
        let today = as_of.unwrap_or_else(|| org.local_day(now));
        for period in calendar::periods_due(anchor, closed_until.get(&org.id).copied(), today) {
            if let Some(number) = close_period(conn, org.id, anchor, period, now)? {
                tracing::info!(org = %org.id, %number, start = %period.start, end = %period.end, "statement issued");
                issued.push(number);
            }
        }
    }
    Ok(issued)
}

/// Issue the statement of one ended period, unless it is issued already. The org's row is locked
/// first: no usage batch of the org is in flight while the lines are frozen, and every later batch
/// sees the statement and refuses the period's days (R8). Two closers (the server's timer and the
/// CLI, or two servers) therefore issue it once.
fn close_period(
    conn: &mut DbConn,
    org_id: OrgId,
    anchor: NaiveDate,
    period: calendar::BillingPeriod,
    now: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    crate::db::write_transaction(conn, |conn| {
        orgs::lock_exclusive(conn, org_id)?;
        if statements::find(conn, org_id, period.start)?.is_some() {
            return Ok(None);
        }
        let days = report::details::days(conn, org_id, period.days_range(), period.end)?;
        let lines: Vec<StatementLine> = days
            .lines
            .iter()
            .map(|l| StatementLine {
                day: l.local_day,
                credits: l.credits,
                additional: l.additional,
                amount_minor: l.amount_minor,
                plan_id: Some(l.plan_id),
            })
            .collect();
        let number = statements::insert(
            conn,
            org_id,
            (period.start, period.end),
            &days.currency,
            &lines,
            now,
        )?;
        // SPEC §6 Growth: keys go once their day is closed, but one period late. A consume is
        // placed on the day it arrives, so a retry just past the billing date lands in the new
        // period; an event moves to another local day when the org's zone changes. Both must still
        // find their key. Days before the anchor belong to no statement: their keys stay.
        if let Some(previous) = period.index.checked_sub(1) {
            let previous = calendar::billing_period(anchor, previous);
            usage::forget_keys(conn, org_id, previous.start, previous.end)?;
        }
        Ok(Some(number))
    })
}
