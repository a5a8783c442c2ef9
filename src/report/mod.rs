//! The read model between `store` and `web`: what the Credits tab, View details (the page, its CSV,
//! `/api/v1/usage/daily` and the PDF) and issued statements show, built from the rollups with every
//! rule taken from `domain`. Nothing here formats for people; `web` and `pdf` do.

pub mod credits;
pub mod details;
pub mod statement;

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
    let currency = one_currency(priced.iter().map(|p| p.plan.currency.as_str()))?;
    Ok((priced, currency))
}

/// The one currency of a report's plans. Plans never change currency (`plans::publish` refuses
/// it), so a report that finds two reads data it cannot add up, and says so.
fn one_currency<'a>(mut currencies: impl Iterator<Item = &'a str>) -> QueryResult<String> {
    let first = currencies
        .next()
        .ok_or_else(|| corrupt("a report without days has no currency".into()))?
        .to_string();
    match currencies.find(|c| *c != first) {
        None => Ok(first),
        Some(other) => Err(corrupt(format!(
            "the days are priced in {first} and {other}: amounts in two currencies cannot be added up"
        ))),
    }
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
