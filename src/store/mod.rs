//! All SQL lives here: one file per aggregate, with its row structs, forms and queries. Functions
//! return `QueryResult`; callers translate errors at their boundary.

pub mod alerts;
pub mod limits;
pub mod orgs;
pub mod plans;
pub mod statements;
pub mod usage;
pub mod users;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

/// A key every server of this database shares, made (256 random bits) on first use.
pub fn server_key(conn: &mut crate::db::DbConn, name: &str) -> diesel::QueryResult<String> {
    use crate::db::schema::server_keys;
    use diesel::prelude::*;
    let read = |conn: &mut crate::db::DbConn| {
        server_keys::table
            .filter(server_keys::name.eq(name))
            .select(server_keys::key_hex)
            .first::<String>(conn)
            .optional()
    };
    if let Some(key) = read(conn)? {
        return Ok(key);
    }
    let fresh = crate::secrets::random_hex_256();
    let inserted = diesel::insert_into(server_keys::table)
        .values((server_keys::name.eq(name), server_keys::key_hex.eq(&fresh)))
        .execute(conn);
    match inserted {
        // Another server made it first: theirs is the key.
        Ok(_)
        | Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => read(conn)?.ok_or(diesel::result::Error::NotFound),
        Err(e) => Err(e),
    }
}

/// Note that the real clock runs the server on this database now.
pub fn mark_real_clock(
    conn: &mut crate::db::DbConn,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    use crate::db::schema::clock_marks;
    use diesel::prelude::*;
    crate::db::write_transaction(conn, |conn| {
        diesel::delete(clock_marks::table.filter(clock_marks::name.eq("real"))).execute(conn)?;
        diesel::insert_into(clock_marks::table)
            .values((
                clock_marks::name.eq("real"),
                clock_marks::at.eq(db_time(now)),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// When the real clock last ran the server on this database, if ever.
pub fn real_clock_mark(conn: &mut crate::db::DbConn) -> diesel::QueryResult<Option<DateTime<Utc>>> {
    use crate::db::schema::clock_marks;
    use diesel::prelude::*;
    let at: Option<NaiveDateTime> = clock_marks::table
        .filter(clock_marks::name.eq("real"))
        .select(clock_marks::at)
        .first(conn)
        .optional()?;
    Ok(at.map(from_db_time))
}

/// Write a consistent copy of a SQLite database to `path` (`VACUUM INTO`: one read transaction).
pub fn backup_into(conn: &mut crate::db::DbConn, path: &str) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!("VACUUM INTO '{}'", path.replace('\'', "''")))
}

/// SQLite's own check of a database file: `ok`, or an error saying what is wrong.
pub fn integrity_check(conn: &mut crate::db::DbConn) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let found: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(conn)?;
    match found.first().map(|c| c.integrity_check.as_str()) {
        Some("ok") => Ok(()),
        other => Err(diesel::result::Error::DeserializationError(
            format!("integrity check: {}", other.unwrap_or("no answer")).into(),
        )),
    }
}

/// One round trip to the database (the health check).
pub fn ping(conn: &mut crate::db::DbConn) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
}

/// Timestamps are stored in UTC without an offset.
pub fn db_time(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc()
}

pub fn from_db_time(stored: NaiveDateTime) -> DateTime<Utc> {
    stored.and_utc()
}

/// A date as Diesel stores it on SQLite (`%F`), written out by hand for the write path: with
/// chrono's format strings instead, `cargo bench --bench writer` spends 35% more CPU per call.
pub fn sqlite_date(day: NaiveDate) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, day);
    out
}

/// A timestamp as Diesel stores it on SQLite (`%F %T%.f`: no fraction, or 3, 6 or 9 digits).
pub fn sqlite_timestamp(t: NaiveDateTime) -> String {
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        // Outside what the fast path writes (leap seconds, years past 9999): chrono's own.
        return t.format("%F %T%.f").to_string();
    }
    let mut out = String::with_capacity(29);
    push_date(&mut out, t.date());
    out.push(' ');
    push_digits(&mut out, t.hour(), 2);
    out.push(':');
    push_digits(&mut out, t.minute(), 2);
    out.push(':');
    push_digits(&mut out, t.second(), 2);
    if nanos != 0 {
        out.push('.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(&mut out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(&mut out, nanos / 1_000, 6);
        } else {
            push_digits(&mut out, nanos, 9);
        }
    }
    out
}

fn push_date(out: &mut String, day: NaiveDate) {
    if !(0..=9999).contains(&day.year()) {
        out.push_str(&day.format("%F").to_string());
        return;
    }
    push_digits(out, day.year() as u32, 4);
    out.push('-');
    push_digits(out, day.month(), 2);
    out.push('-');
    push_digits(out, day.day(), 2);
}

/// `value` in exactly `width` decimal digits (it is known to fit).
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        divisor /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sqlite_texts_are_what_chrono_writes(
            days in -800_000i64..3_700_000,
            seconds in 0u32..86_400,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|m| m * 1_000_000),
                (0u32..1_000_000).prop_map(|u| u * 1_000),
                0u32..1_000_000_000,
                1_000_000_000u32..2_000_000_000,
            ],
        ) {
            let day = NaiveDate::from_num_days_from_ce_opt(days as i32).unwrap();
            prop_assert_eq!(sqlite_date(day), day.format("%F").to_string());
            if let Some(time) = chrono::NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos) {
                let t = day.and_time(time);
                prop_assert_eq!(sqlite_timestamp(t), t.format("%F %T%.f").to_string());
            }
        }
    }
}
