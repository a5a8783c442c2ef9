//! Users and their roles, sign-in sessions, and API tokens (stored only as hashes).

use crate::domain::types::OrgId;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::db_time;
use crate::db::DbConn;
use crate::db::schema::{api_tokens, sessions, users};
pub use crate::domain::access::{Role, UnknownRole};
use crate::secrets;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub org_id: OrgId,
    pub email: String,
    #[diesel(deserialize_as = String)]
    pub role: Role,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    /// Set by `user disable`: the user cannot sign in and has no sessions.
    pub disabled_at: Option<NaiveDateTime>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// An org's users, oldest first.
pub fn users_of(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Vec<UserRow>> {
    users::table
        .filter(users::org_id.eq(org_id))
        .order(users::id)
        .select(UserRow::as_select())
        .load(conn)
}

/// A user of an org by email, or `None` (also for another org's user).
pub fn find_in_org(conn: &mut DbConn, org_id: OrgId, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::org_id.eq(org_id))
        .filter(users::email.eq(normalize_email(email)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

/// Delete every session of a user (they sign in again; every server stops accepting the old
/// cookies within a second, the lifetime of its session cache).
pub fn end_sessions(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Disable a user and end their sessions.
pub fn disable(conn: &mut DbConn, user_id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        diesel::update(users::table.find(user_id))
            .set(users::disabled_at.eq(Some(db_time(now))))
            .execute(conn)?;
        end_sessions(conn, user_id)?;
        Ok(())
    })
}

/// Remove a user and their sessions.
pub fn remove(conn: &mut DbConn, user_id: i64) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        end_sessions(conn, user_id)?;
        diesel::delete(users::table.find(user_id)).execute(conn)?;
        Ok(())
    })
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct UserInsert<'a> {
    org_id: OrgId,
    email: &'a str,
    role: &'a str,
    password_hash: &'a str,
    created_at: NaiveDateTime,
}

/// Emails are compared without regard to case and surrounding space.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn add(
    conn: &mut DbConn,
    org_id: OrgId,
    email: &str,
    role: Role,
    password_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    diesel::insert_into(users::table)
        .values(UserInsert {
            org_id,
            email: &normalize_email(email),
            role: role.as_str(),
            password_hash,
            created_at: db_time(now),
        })
        .returning(users::id)
        .get_result(conn)
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(normalize_email(email)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn create_token(conn: &mut DbConn, org_id: OrgId, now: DateTime<Utc>) -> QueryResult<String> {
    create_named_token(conn, org_id, None, now)
}

/// Create a token with an optional name (for `token list`); the token is returned once, only its
/// hash is stored.
pub fn create_named_token(
    conn: &mut DbConn,
    org_id: OrgId,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<String> {
    let token = secrets::new_api_token();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::org_id.eq(org_id),
            api_tokens::token_hash.eq(secrets::token_hash(&token)),
            api_tokens::created_at.eq(db_time(now)),
            api_tokens::name.eq(name),
        ))
        .execute(conn)?;
    Ok(token)
}

/// How often a token's last use is written: a read answered from the database (the API's token
/// cache lives a second) writes it at most once a minute.
const LAST_USE_PRECISION_SECONDS: i64 = 60;

/// A presented token that was found: its org, and its id when its last use is worth writing down
/// (`note_token_use`, off the request's path).
pub struct TokenUse {
    pub org_id: OrgId,
    pub stale_id: Option<i64>,
}

/// The org a presented API token belongs to. The lookup is by the token's SHA-256, so the time it
/// takes says nothing about how much of a stored token matched. Reads only.
pub fn org_for_token(
    conn: &mut DbConn,
    token: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<TokenUse>> {
    let hash = secrets::token_hash(token);
    let found: Option<(i64, OrgId, String, Option<NaiveDateTime>)> = api_tokens::table
        .filter(api_tokens::token_hash.eq(&hash))
        .select((
            api_tokens::id,
            api_tokens::org_id,
            api_tokens::token_hash,
            api_tokens::last_used_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, org_id, stored, last_used)) = found else {
        return Ok(None);
    };
    if !secrets::constant_time_eq(&stored, &hash) {
        return Ok(None);
    }
    let stale =
        last_used.is_none_or(|at| (db_time(now) - at).num_seconds() >= LAST_USE_PRECISION_SECONDS);
    Ok(Some(TokenUse {
        org_id,
        stale_id: stale.then_some(id),
    }))
}

/// Write down that a token was used at `now` (for `token list`).
pub fn note_token_use(conn: &mut DbConn, id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(db_time(now)))
        .execute(conn)?;
    Ok(())
}

/// A token as `token list` shows it (never the token itself).
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: i64,
    pub org_id: OrgId,
    pub name: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

pub fn tokens_of(conn: &mut DbConn, org_id: OrgId) -> QueryResult<Vec<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::org_id.eq(org_id))
        .order(api_tokens::id)
        .select(TokenRow::as_select())
        .load(conn)
}

/// Delete a token of an org; returns whether it existed. Every server refuses it within a second
/// (the API's token cache lives that long).
pub fn revoke_token(conn: &mut DbConn, org_id: OrgId, id: i64) -> QueryResult<bool> {
    let deleted = diesel::delete(
        api_tokens::table
            .filter(api_tokens::org_id.eq(org_id))
            .filter(api_tokens::id.eq(id)),
    )
    .execute(conn)?;
    Ok(deleted > 0)
}

pub const SESSION_HOURS: i64 = 12;

/// A signed-in session: the cookie value is returned once; only its hash is stored.
pub struct NewSession {
    pub cookie_value: String,
    pub csrf_token: String,
}

/// Delete the sessions that have expired by `now`; returns how many.
pub fn purge_expired_sessions(conn: &mut DbConn, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(db_time(now)))).execute(conn)
}

pub fn create_session(
    conn: &mut DbConn,
    user_id: i64,
    now: DateTime<Utc>,
) -> QueryResult<NewSession> {
    let cookie_value = secrets::random_hex_256();
    let csrf_token = secrets::random_hex_256();
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(secrets::token_hash(&cookie_value)),
            sessions::user_id.eq(user_id),
            sessions::csrf_token.eq(&csrf_token),
            sessions::created_at.eq(db_time(now)),
            sessions::expires_at.eq(db_time(now + Duration::hours(SESSION_HOURS))),
        ))
        .execute(conn)?;
    Ok(NewSession {
        cookie_value,
        csrf_token,
    })
}

/// Create a session for a user whose password was just checked against `checked_hash`, unless the
/// password changed or the user was disabled meanwhile (a sign-in with a leaked password racing a
/// reset must not outlive the reset).
pub fn create_session_checked(
    conn: &mut DbConn,
    user_id: i64,
    checked_hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<NewSession>> {
    crate::db::write_transaction(conn, |conn| {
        let current: Option<(String, Option<NaiveDateTime>)> = users::table
            .find(user_id)
            .select((users::password_hash, users::disabled_at))
            .first(conn)
            .optional()?;
        match current {
            Some((hash, None)) if hash == checked_hash => {
                Ok(Some(create_session(conn, user_id, now)?))
            }
            _ => Ok(None),
        }
    })
}

/// The user, CSRF token and expiry of a live session.
pub fn session_user(
    conn: &mut DbConn,
    cookie_value: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<(UserRow, String, DateTime<Utc>)>> {
    let found: Option<(UserRow, String, NaiveDateTime)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(secrets::token_hash(cookie_value)))
        .filter(sessions::expires_at.gt(db_time(now)))
        .filter(users::disabled_at.is_null())
        .select((
            UserRow::as_select(),
            sessions::csrf_token,
            sessions::expires_at,
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(user, csrf, expires)| (user, csrf, super::from_db_time(expires))))
}

pub fn delete_session(conn: &mut DbConn, cookie_value: &str) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(sessions::token_hash.eq(secrets::token_hash(cookie_value))),
    )
    .execute(conn)
}

/// Set a user's password and end their sessions (a reset after a leak must sign everyone out).
pub fn set_password(conn: &mut DbConn, email: &str, password_hash: &str) -> QueryResult<usize> {
    crate::db::write_transaction(conn, |conn| {
        let changed = diesel::update(users::table.filter(users::email.eq(normalize_email(email))))
            .set(users::password_hash.eq(password_hash))
            .execute(conn)?;
        if let Some(user) = find_by_email(conn, email)? {
            end_sessions(conn, user.id)?;
        }
        Ok(changed)
    })
}
