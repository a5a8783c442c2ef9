//! The Credits tab's figures and `GET /api/v1/credits`: today's budget of an org and, once a limit
//! was ever set, its current billing period and the amount charged in it so far.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;

use crate::db::DbConn;
use crate::domain::admission::DayBudget;
use crate::domain::calendar::{self, BillingPeriod};
use crate::store::orgs::{self, OrgRow};
use crate::store::{plans, usage};

/// Today's credits of an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    pub local_day: NaiveDate,
    pub budget: DayBudget,
}

/// The current billing period (R7) and what it has charged so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billing {
    pub period: BillingPeriod,
    pub amount_so_far_minor: i64,
    pub currency: String,
}

/// Everything the Credits tab shows of an org's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditsSummary {
    pub today: Today,
    pub billing: Option<Billing>,
}

/// R1/R2/R4: today's budget: the day's free allowance, the limit in force now, what is spent.
pub fn today(conn: &mut DbConn, org: &OrgRow, now: DateTime<Utc>) -> QueryResult<Today> {
    let local_day = calendar::local_day(now, org.zone());
    let row = usage::day(conn, org.id, local_day)?;
    let free_allowance = orgs::free_allowance_on(conn, org, local_day)?;
    Ok(Today {
        local_day,
        budget: DayBudget {
            free_allowance,
            free_used: row.as_ref().map_or(0, |r| r.free_credits),
            additional_limit: org.additional_limit,
            additional_used: row.as_ref().map_or(0, |r| r.additional),
        },
    })
}

pub fn summary(conn: &mut DbConn, org: &OrgRow, now: DateTime<Utc>) -> QueryResult<CreditsSummary> {
    let today = today(conn, org, now)?;
    let billing = match calendar::current_period(org.billing_anchor, today.local_day) {
        Some(period) => {
            let amount_so_far_minor =
                usage::amount_between(conn, org.id, period.start, period.end)?;
            // Every plan of a period has one currency (`plans::publish`): today's says it.
            let (_, plan) = plans::for_day(conn, today.local_day)?;
            Some(Billing {
                period,
                amount_so_far_minor,
                currency: plan.currency().to_string(),
            })
        }
        None => None,
    };
    Ok(CreditsSummary { today, billing })
}
