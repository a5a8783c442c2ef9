//! The `from`/`to` query of View details, its exports and `/api/v1/usage/daily`.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::domain::types::DayRange;

/// The raw query, for re-showing what was typed next to its error.
#[derive(Deserialize, Default)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl RangeQuery {
    /// The query as typed, or empty when it cannot be read at all.
    pub fn raw(query: &str) -> RangeQuery {
        actix_web::web::Query::<RangeQuery>::from_query(query)
            .map(|q| q.into_inner())
            .unwrap_or_default()
    }
}

/// A range from `from`/`to` (both or neither); neither = the last 30 days, today included.
pub fn parse_range(query: &str, today: NaiveDate) -> Result<DayRange, String> {
    let q: RangeQuery = actix_web::web::Query::<RangeQuery>::from_query(query)
        .map_err(|_| "The query string is malformed.".to_string())?
        .into_inner();
    let from = q.from.filter(|s| !s.trim().is_empty());
    let to = q.to.filter(|s| !s.trim().is_empty());
    match (from, to) {
        (None, None) => Ok(DayRange::ending_on(today, 30)),
        (Some(from), Some(to)) => {
            let from = DayRange::parse_date(&from).map_err(|e| e.to_string())?;
            let to = DayRange::parse_date(&to).map_err(|e| e.to_string())?;
            DayRange::new(from, to).map_err(|e| e.to_string())
        }
        (Some(_), None) => Err("Give an end date (to) as well as a start date.".into()),
        (None, Some(_)) => Err("Give a start date (from) as well as an end date.".into()),
    }
}

/// The query string of a range, for links.
pub fn range_query(range: DayRange) -> String {
    format!("from={}&to={}", range.from(), range.to())
}
