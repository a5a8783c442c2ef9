//! View details: the days of a range with their amounts and plans (the page, the CSV, the PDF and
//! `/api/v1/usage/daily`), usage by operation and by client, and the current period's projection.

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::QueryResult;

use super::{DayLine, PricedBy, Totals, plan_of, plans_of};
use crate::db::DbConn;
use crate::domain::calendar::{self, BillingPeriod};
use crate::domain::projection::{Projected, project_period_total};
use crate::domain::types::DayRange;
use crate::store::orgs::OrgRow;
use crate::store::{plans, usage};

/// The days of a range: one line per day (days without usage included), their totals, and the
/// plans that price them.
#[derive(Debug, Clone)]
pub struct Days {
    pub range: DayRange,
    pub lines: Vec<DayLine>,
    pub totals: Totals,
    pub plans: Vec<PricedBy>,
    pub currency: String,
}

/// Credits, additional credits and cost of one operation or client over the range: each day's
/// charge shared out in proportion to its additional credits that day (`domain::allocation`), so
/// that the shares of all operations (or clients) add up to the range's total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: String,
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
}

/// The shares of a range by `key` (operation or client), largest use first.
fn shares_by(
    rows: &[usage::BreakdownRow],
    lines: &[super::DayLine],
    key: impl Fn(&usage::BreakdownRow) -> &str,
) -> Vec<Share> {
    use std::collections::BTreeMap;
    let mut days: BTreeMap<NaiveDate, BTreeMap<&str, (i64, i64)>> = BTreeMap::new();
    for row in rows {
        let entry = days
            .entry(row.local_day)
            .or_default()
            .entry(key(row))
            .or_default();
        entry.0 += row.credits;
        entry.1 += row.additional;
    }
    let mut totals: BTreeMap<String, Share> = BTreeMap::new();
    fn total_of<'t>(totals: &'t mut BTreeMap<String, Share>, name: &str) -> &'t mut Share {
        totals.entry(name.to_string()).or_insert_with(|| Share {
            name: name.to_string(),
            credits: 0,
            additional: 0,
            amount_minor: 0,
        })
    }
    for line in lines {
        let entries: Vec<(&str, (i64, i64))> = days
            .get(&line.local_day)
            .map(|d| d.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        let weights: Vec<i64> = entries.iter().map(|(_, (_, a))| *a).collect();
        let parts = crate::domain::allocation::share_out(line.amount_minor, &weights);
        for ((name, (credits, additional)), part) in entries.iter().zip(&parts) {
            let share = total_of(&mut totals, name);
            share.credits += credits;
            share.additional += additional;
            share.amount_minor += part;
        }
        // A charged day without a breakdown of its additional credits (none recorded) is shown
        // as unspecified, so the lines still add up.
        let unshared = line.amount_minor - parts.iter().sum::<i64>();
        if unshared != 0 {
            total_of(&mut totals, crate::domain::event::UNSPECIFIED).amount_minor += unshared;
        }
    }
    let mut list: Vec<Share> = totals.into_values().collect();
    list.sort_by(|a, b| b.credits.cmp(&a.credits).then_with(|| a.name.cmp(&b.name)));
    list
}

/// The current billing period, its charges so far and their projection to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub period: BillingPeriod,
    pub so_far_minor: i64,
    pub projected_minor: i64,
    pub basis: Projected,
}

/// Everything View details shows for a range.
#[derive(Debug, Clone)]
pub struct DetailsReport {
    pub org_name: String,
    pub zone: Tz,
    pub today: NaiveDate,
    pub days: Days,
    pub by_operation: Vec<Share>,
    pub by_client: Vec<Share>,
    /// `None` while no limit was ever set (R7).
    pub projection: Option<Projection>,
    pub generated_at: DateTime<Utc>,
}

/// The days of `range` for an org whose local today is `today`.
pub fn days(
    conn: &mut DbConn,
    org_id: OrgId,
    range: DayRange,
    today: NaiveDate,
) -> QueryResult<Days> {
    let schedule = plans::schedule(conn)?;
    let lines = usage::every_day(conn, org_id, range)?
        .into_iter()
        .map(|row| {
            Ok(DayLine {
                plan_id: plan_of(&schedule, row.pinned_plan(), row.local_day)?,
                local_day: row.local_day,
                credits: row.credits,
                additional: row.additional,
                amount_minor: row.amount_minor,
                in_progress: row.local_day == today,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    let (plans, currency) = plans_of(conn, &lines)?;
    Ok(Days {
        range,
        totals: Totals::of(&lines),
        lines,
        plans,
        currency,
    })
}

pub fn details(
    conn: &mut DbConn,
    org: &OrgRow,
    range: DayRange,
    now: DateTime<Utc>,
) -> QueryResult<DetailsReport> {
    let zone = org.zone();
    let today = calendar::local_day(now, zone);
    let days = days(conn, org.id, range, today)?;
    let rows = usage::breakdown_rows(conn, org.id, range)?;
    let by_operation = shares_by(&rows, &days.lines, |r| &r.operation);
    let by_client = shares_by(&rows, &days.lines, |r| &r.client);
    let projection = match calendar::current_period(org.billing_anchor, today) {
        Some(period) => {
            let up_to_today = DayRange::new(period.start, today.max(period.start))
                .map_err(|e| super::corrupt(e.to_string()))?;
            let so_far: Vec<(NaiveDate, i64)> = usage::every_day(conn, org.id, up_to_today)?
                .iter()
                .map(|d| (d.local_day, d.amount_minor))
                .collect();
            let charged = super::charged_in_period(conn, org.id, period)?;
            let basis = project_period_total(&so_far, today, period);
            Some(Projection {
                period,
                so_far_minor: charged,
                projected_minor: basis.total_minor.max(charged),
                basis,
            })
        }
        None => None,
    };
    Ok(DetailsReport {
        org_name: org.name.clone(),
        zone,
        today,
        days,
        by_operation,
        by_client,
        projection,
        generated_at: now,
    })
}
