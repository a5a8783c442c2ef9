//! Issued monthly statements (R7, R8): the list, and one statement with its frozen lines, the plans
//! that priced them (each with its days) and its stored total, checked against the lines.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use super::{DayLine, PricedBy, Totals, corrupt, plan_of, plans_of};
use crate::db::DbConn;
use crate::domain::calendar::{self, BillingPeriod};
use crate::domain::types::DayRange;
use crate::store::orgs::OrgRow;
use crate::store::statements::{self, StatementRow};
use crate::store::{from_db_time, plans};

/// A statement in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementItem {
    pub number: String,
    pub period: BillingPeriod,
    pub total_minor: i64,
    pub currency: String,
    pub issued_at: DateTime<Utc>,
}

/// One issued statement, as its PDF shows it.
#[derive(Debug, Clone)]
pub struct StatementReport {
    pub item: StatementItem,
    pub lines: Vec<DayLine>,
    pub totals: Totals,
    pub plans: Vec<PricedBy>,
    /// Cost by operation, client and user over the statement's days.
    pub costs: super::details::Costs,
}

fn item(org: &OrgRow, row: &StatementRow) -> StatementItem {
    StatementItem {
        number: row.number.clone(),
        period: calendar::issued_period(org.billing_anchor, row.period_start, row.period_end),
        total_minor: row.total_minor,
        currency: row.currency.clone(),
        issued_at: from_db_time(row.issued_at),
    }
}

/// The org's statements, the latest first.
pub fn list(conn: &mut DbConn, org: &OrgRow) -> QueryResult<Vec<StatementItem>> {
    Ok(statements::list(conn, org.id)?
        .iter()
        .map(|row| item(org, row))
        .collect())
}

/// One of the org's statements by number, or `None` (also for another org's number).
pub fn by_number(
    conn: &mut DbConn,
    org: &OrgRow,
    number: &str,
) -> QueryResult<Option<StatementReport>> {
    let Some(row) = statements::by_number(conn, org.id, number)? else {
        return Ok(None);
    };
    let schedule = plans::schedule(conn)?;
    let lines = row
        .lines()?
        .into_iter()
        .map(|l| {
            Ok(DayLine {
                plan_id: plan_of(&schedule, l.plan_id, l.day)?,
                local_day: l.day,
                credits: l.credits,
                additional: l.additional,
                amount_minor: l.amount_minor,
                in_progress: false,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    // An issued statement keeps the currency it was issued in, whatever its plans say (R8).
    let (plans, _) = plans_of(conn, &lines)?;
    let totals = Totals::of(&lines);
    if totals.amount_minor != row.total_minor {
        return Err(corrupt(format!(
            "statement {} says {} but its lines add up to {}",
            row.number, row.total_minor, totals.amount_minor
        )));
    }
    let item = item(org, &row);
    let days = DayRange::new(item.period.start, item.period.last_day())
        .map_err(|e| corrupt(e.to_string()))?;
    let costs = super::details::costs(conn, org.id, days, &lines)?;
    Ok(Some(StatementReport {
        item,
        lines,
        totals,
        plans,
        costs,
    }))
}
