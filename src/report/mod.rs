//! The read model between `store` and `web`: what the Credits tab, View details (the page, its CSV,
//! `/api/v1/usage/daily` and the PDF) and issued statements show, built from the rollups with every
//! rule taken from `domain`. Nothing here formats for people; `web` and `pdf` do.

pub mod credits;
pub mod details;
pub mod statement;

use crate::domain::types::OrgId;
use chrono::NaiveDate;
use diesel::QueryResult;

use crate::db::DbConn;
use crate::domain::pricing::{self, PlanSchedule, PricePlan};
use crate::store::plans;

/// One day as every report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLine {
    pub local_day: NaiveDate,
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
    /// Today: its amount is so far, not final.
    pub in_progress: bool,
    /// The plan that prices the day (R6).
    pub plan_id: i64,
}

/// The sums of a run of days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
}

impl Totals {
    pub fn of(lines: &[DayLine]) -> Totals {
        lines.iter().fold(Totals::default(), |t, l| Totals {
            credits: t.credits + l.credits,
            additional: t.additional + l.additional,
            amount_minor: t.amount_minor + l.amount_minor,
        })
    }
}

/// A plan with the days it priced in a report.
#[derive(Debug, Clone)]
pub struct PricedBy {
    pub plan: PricePlan,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub days: usize,
}

/// The plans that price `lines`, in order of first use, and the one currency they share.
fn plans_of(conn: &mut DbConn, lines: &[DayLine]) -> QueryResult<(Vec<PricedBy>, String)> {
    let uses = pricing::plans_in_use(lines.iter().map(|l| (l.local_day, l.plan_id)));
    let mut priced = Vec::with_capacity(uses.len());
    for found in uses {
        priced.push(PricedBy {
            plan: plans::by_id(conn, found.plan_id)?,
            first_day: found.first_day,
            last_day: found.last_day,
            days: found.days,
        });
    }
    let currency = one_currency(priced.iter().map(|p| p.plan.currency()))?;
    Ok((priced, currency))
}

/// The currency of a report: its plans' one currency. Plans cannot change currency since
/// `plans::publish` refuses it; a database that switched currency before that check keeps working
/// and shows the currency of its last plan, as statements of that time were issued in, with a
/// warning in the log.
fn one_currency<'a>(currencies: impl Iterator<Item = &'a str>) -> QueryResult<String> {
    let currencies: Vec<&str> = currencies.collect();
    let last = currencies
        .last()
        .ok_or_else(|| corrupt("a report without days has no currency".into()))?;
    if let Some(other) = currencies.iter().find(|c| *c != last) {
        tracing::warn!(
            currencies = %format!("{other}, {last}"),
            "days priced by plans in two currencies (published before plans kept one currency)"
        );
    }
    Ok(last.to_string())
}

/// What a billing period has charged so far: every day of it that has usage, days reported ahead
/// of today included (the Credits tab and View details say the same).
fn charged_in_period(
    conn: &mut DbConn,
    org_id: OrgId,
    period: crate::domain::calendar::BillingPeriod,
) -> QueryResult<i64> {
    crate::store::usage::amount_between(conn, org_id, period.start, period.end)
}

/// Stored data that breaks a rule it was written under: a loud error, never a silent default.
pub fn corrupt(message: String) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(message.into())
}

/// The plan that prices each day, from the plan its row pins, else the schedule.
fn plan_of(schedule: &PlanSchedule, pinned: Option<i64>, local_day: NaiveDate) -> QueryResult<i64> {
    schedule
        .plan_of_day(pinned, local_day)
        .ok_or_else(|| corrupt("no price plan is published".into()))
}
