//! Price plans by effective date (R6). A day is priced with the plan in force on it; the day's
//! rollup row pins the plan it was first charged with, so a charged day is never re-priced.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;

use super::db_time;
use crate::db::DbConn;
use crate::db::schema::price_plans;
use crate::domain::pricing::{PlanSchedule, PricePlan};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "the effective date {0} has already begun somewhere, or usage can already be reported for it (events up to 24 hours ahead are accepted): a plan may only take effect after {1}"
    )]
    NotInFuture(NaiveDate, NaiveDate),
    #[error("a plan already takes effect on {0}")]
    Exists(NaiveDate),
    #[error(
        "the plan is in {new} but prices are in {current}: a billing period priced in two currencies could not be added up, so a plan keeps the currency of the plans before it"
    )]
    Currency { current: String, new: String },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

fn decode(json: &str) -> QueryResult<PricePlan> {
    // Deserializing validates the plan (`PricePlan`'s `TryFrom<PlanData>`).
    serde_json::from_str(json).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

/// Every plan's effective day and id: the schedule that says which plan prices which day.
pub fn schedule(conn: &mut DbConn) -> QueryResult<PlanSchedule> {
    let entries: Vec<(NaiveDate, i64)> = price_plans::table
        .select((price_plans::effective_from, price_plans::id))
        .load(conn)?;
    Ok(PlanSchedule::new(entries))
}

/// The plan that prices `local_day` when no day row pins one (`PlanSchedule::plan_of_day`).
pub fn for_day(conn: &mut DbConn, local_day: NaiveDate) -> QueryResult<(i64, PricePlan)> {
    let id = schedule(conn)?
        .plan_of_day(None, local_day)
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((id, by_id(conn, id)?))
}

pub fn by_id(conn: &mut DbConn, plan_id: i64) -> QueryResult<PricePlan> {
    let json: String = price_plans::table
        .find(plan_id)
        .select(price_plans::plan_json)
        .first(conn)?;
    decode(&json)
}

/// Publish a plan effective from `effective_from`, which must not have begun in any time zone.
pub fn publish(
    conn: &mut DbConn,
    plan: &PricePlan,
    effective_from: NaiveDate,
    now: DateTime<Utc>,
) -> Result<i64, PublishError> {
    let json = serde_json::to_string(plan)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    crate::db::write_transaction(conn, |conn| {
        // One publication at a time (on SQLite the write transaction is already alone): the checks
        // below hold when the plan commits.
        if let DbConn::Postgresql(c) = conn {
            use diesel::connection::SimpleConnection;
            c.batch_execute("LOCK TABLE price_plans IN EXCLUSIVE MODE")?;
        }
        let latest = crate::domain::admission::latest_placeable_day(now);
        if effective_from <= latest {
            return Err(PublishError::NotInFuture(effective_from, latest));
        }
        let taken: i64 = price_plans::table
            .filter(price_plans::effective_from.eq(effective_from))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(PublishError::Exists(effective_from));
        }
        let latest: Option<String> = price_plans::table
            .order(price_plans::effective_from.desc())
            .select(price_plans::plan_json)
            .first(conn)
            .optional()?;
        if let Some(latest) = latest {
            let current = decode(&latest)?.currency().to_string();
            if current != plan.currency() {
                return Err(PublishError::Currency {
                    current,
                    new: plan.currency().to_string(),
                });
            }
        }
        Ok(diesel::insert_into(price_plans::table)
            .values((
                price_plans::effective_from.eq(effective_from),
                price_plans::plan_json.eq(json),
                price_plans::published_at.eq(db_time(now)),
            ))
            .returning(price_plans::id)
            .get_result(conn)?)
    })
}
