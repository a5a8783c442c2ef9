//! Issued monthly statements (R7, R8): frozen lines and total per (org, period), never changed.

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::db_time;
use crate::db::DbConn;
use crate::db::schema::statements;

/// For every org with a statement, the end of its last closed period.
pub fn closed_until_by_org(
    conn: &mut DbConn,
) -> QueryResult<std::collections::HashMap<OrgId, NaiveDate>> {
    use diesel::dsl::max;
    let rows: Vec<(OrgId, Option<NaiveDate>)> = statements::table
        .group_by(statements::org_id)
        .select((statements::org_id, max(statements::period_end)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(org_id, end)| Some((org_id, end?)))
        .collect())
}

/// One frozen day of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub day: NaiveDate,
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
    /// The plan that priced the day (R6); statements issued before plans were frozen with their
    /// lines have none, and show the plan in force on the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = statements)]
pub struct StatementRow {
    pub id: i64,
    pub org_id: OrgId,
    pub number: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub currency: String,
    pub total_minor: i64,
    pub lines_json: String,
    pub issued_at: NaiveDateTime,
}

impl StatementRow {
    /// The frozen lines; stored lines that cannot be read are an error, never an empty statement.
    pub fn lines(&self) -> QueryResult<Vec<StatementLine>> {
        serde_json::from_str(&self.lines_json)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    }
}

/// The statement number of an org's period: stable, so closing twice finds the same one.
pub fn number_for(org_id: OrgId, period_start: NaiveDate) -> String {
    format!("CM-{org_id}-{}", period_start.format("%Y%m%d"))
}

pub fn find(
    conn: &mut DbConn,
    org_id: OrgId,
    period_start: NaiveDate,
) -> QueryResult<Option<StatementRow>> {
    statements::table
        .filter(statements::org_id.eq(org_id))
        .filter(statements::period_start.eq(period_start))
        .select(StatementRow::as_select())
        .first(conn)
        .optional()
}

pub fn by_number(
    conn: &mut DbConn,
    org_id: OrgId,
    number: &str,
) -> QueryResult<Option<StatementRow>> {
    statements::table
        .filter(statements::org_id.eq(org_id))
        .filter(statements::number.eq(number))
        .select(StatementRow::as_select())
        .first(conn)
        .optional()
}

pub fn list(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Vec<StatementRow>> {
    statements::table
        .filter(statements::org_id.eq(org_id))
        .order(statements::period_start.desc())
        .select(StatementRow::as_select())
        .load(conn)
}

/// Insert an issued statement; the caller holds the write transaction and checked it is new.
pub fn insert(
    conn: &mut DbConn,
    org_id: OrgId,
    period: (NaiveDate, NaiveDate),
    currency: &str,
    lines: &[StatementLine],
    now: DateTime<Utc>,
) -> QueryResult<String> {
    let number = number_for(org_id, period.0);
    let lines_json = serde_json::to_string(lines)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    diesel::insert_into(statements::table)
        .values((
            statements::org_id.eq(org_id),
            statements::number.eq(&number),
            statements::period_start.eq(period.0),
            statements::period_end.eq(period.1),
            statements::currency.eq(currency),
            statements::total_minor.eq(lines.iter().map(|l| l.amount_minor).sum::<i64>()),
            statements::lines_json.eq(lines_json),
            statements::issued_at.eq(db_time(now)),
        ))
        .execute(conn)?;
    Ok(number)
}
