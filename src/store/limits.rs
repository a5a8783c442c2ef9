//! The additional credit limit and its history (R2): each change is a row (who, when, old, new),
//! which is the audit log, "the limit at time t" for metering (R12), and the billing anchor (R7).

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::orgs as orgs_store;
use super::{db_time, from_db_time};
use crate::db::DbConn;
use crate::db::schema::{limit_changes, orgs};
use crate::domain::calendar;
use crate::domain::types::AdditionalLimit;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = limit_changes)]
pub struct LimitChangeRow {
    pub id: i64,
    pub org_id: OrgId,
    pub changed_at: NaiveDateTime,
    pub changed_by: String,
    pub old_limit: i64,
    pub new_limit: i64,
}

impl LimitChangeRow {
    pub fn changed_at_utc(&self) -> DateTime<Utc> {
        from_db_time(self.changed_at)
    }
}

/// Set the limit at once; the first value above 0 anchors the billing cycle on today's local date.
/// Returns the previous limit.
pub fn set(
    conn: &mut DbConn,
    org_id: OrgId,
    new_limit: AdditionalLimit,
    changed_by: &str,
    now: DateTime<Utc>,
    local_today: NaiveDate,
) -> QueryResult<i64> {
    crate::db::write_transaction(conn, |conn| {
        // No usage batch of the org is in flight while the limit changes (see `orgs::lock_shared`).
        orgs_store::lock_exclusive(conn, org_id)?;
        let (old_limit, anchor): (i64, Option<NaiveDate>) = orgs::table
            .find(org_id)
            .select((orgs::additional_limit, orgs::billing_anchor))
            .first(conn)?;
        // Saving the limit it has is no change: nothing to log, nothing to anchor.
        if old_limit == new_limit.get() {
            return Ok(old_limit);
        }
        diesel::insert_into(limit_changes::table)
            .values((
                limit_changes::org_id.eq(org_id),
                limit_changes::changed_at.eq(db_time(now)),
                limit_changes::changed_by.eq(changed_by),
                limit_changes::old_limit.eq(old_limit),
                limit_changes::new_limit.eq(new_limit.get()),
            ))
            .execute(conn)?;
        let anchor = calendar::anchor_after_limit_change(anchor, new_limit.get(), local_today);
        diesel::update(orgs::table.find(org_id))
            .set((
                orgs::additional_limit.eq(new_limit.get()),
                orgs::billing_anchor.eq(anchor),
            ))
            .execute(conn)?;
        Ok(old_limit)
    })
}

/// The most recent changes first, for the audit page.
pub fn recent(conn: &mut DbConn, org_id: OrgId, count: i64) -> QueryResult<Vec<LimitChangeRow>> {
    limit_changes::table
        .filter(limit_changes::org_id.eq(org_id))
        .order((limit_changes::changed_at.desc(), limit_changes::id.desc()))
        .limit(count)
        .select(LimitChangeRow::as_select())
        .load(conn)
}
