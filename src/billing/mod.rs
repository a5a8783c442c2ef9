//! Closing billing periods (R7, R8): every period of an org whose end has come is closed once, with
//! a statement of its frozen daily lines and their total. Closing again finds the statement issued
//! and issues nothing; from then on the ledger refuses usage for the period's days.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryResult;

use crate::db::DbConn;
use crate::domain::calendar;
use crate::domain::types::DayRange;
use crate::store::statements::{self, StatementLine};
use crate::store::{orgs, plans, usage};

/// Close every due period of every org. `as_of` overrides each org's local today.
pub fn close_due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    as_of: Option<NaiveDate>,
) -> QueryResult<Vec<String>> {
    let mut issued = Vec::new();
    for org in orgs::list(conn)? {
        let Some(anchor) = org.billing_anchor else {
            continue;
        };
        let today = as_of.unwrap_or_else(|| org.local_day(now));
        let mut index = 0;
        loop {
            let period = calendar::billing_period(anchor, index);
            if period.end > today {
                break;
            }
            // One transaction per period: the check and the insert are one step, so two closers
            // (the server's timer and the CLI, or two servers) issue it once.
            let number =
                crate::db::write_transaction(conn, |conn| -> QueryResult<Option<String>> {
                    if statements::find(conn, org.id, period.start)?.is_some() {
                        return Ok(None);
                    }
                    let range = DayRange {
                        from: period.start,
                        to: period.last_day(),
                    };
                    let lines: Vec<StatementLine> = usage::every_day(conn, org.id, range)?
                        .into_iter()
                        .map(|r| StatementLine {
                            day: r.local_day,
                            credits: r.credits,
                            additional: r.additional,
                            amount_minor: r.amount_minor,
                        })
                        .collect();
                    let (_, plan) = plans::for_day(conn, period.last_day())?;
                    let number = statements::insert(
                        conn,
                        org.id,
                        (period.start, period.end),
                        &plan.currency,
                        &lines,
                        now,
                    )?;
                    // The period's idempotency keys are no longer needed (SPEC §6 Growth).
                    usage::forget_keys(conn, org.id, period.end)?;
                    Ok(Some(number))
                })?;
            if let Some(number) = number {
                tracing::info!(org = org.id, %number, start = %period.start, end = %period.end, "statement issued");
                issued.push(number);
            }
            index += 1;
        }
    }
    Ok(issued)
}
