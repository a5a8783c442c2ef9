//! All SQL lives here: one file per aggregate, with its row structs, forms and queries. Functions
//! return `QueryResult`; callers translate errors at their boundary.

pub mod limits;
pub mod orgs;
pub mod plans;
pub mod statements;
pub mod usage;
pub mod users;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Timestamps are stored in UTC without an offset.
pub fn db_time(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc()
}

pub fn from_db_time(stored: NaiveDateTime) -> DateTime<Utc> {
    stored.and_utc()
}
