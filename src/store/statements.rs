//! Issued monthly statements (R7, R8): frozen lines and total per (org, period).

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::statements;

/// The `[start, end)` periods of an org that have an issued statement.
pub fn closed_periods(conn: &mut DbConn, org_id: i64) -> QueryResult<Vec<(NaiveDate, NaiveDate)>> {
    statements::table
        .filter(statements::org_id.eq(org_id))
        .order(statements::period_start)
        .select((statements::period_start, statements::period_end))
        .load(conn)
}
