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
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role
    }
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
    let token = secrets::new_api_token();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::org_id.eq(org_id),
            api_tokens::token_hash.eq(secrets::token_hash(&token)),
            api_tokens::created_at.eq(db_time(now)),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The org a presented API token belongs to. The lookup is by the token's SHA-256, so the time it
/// takes says nothing about how much of a stored token matched.
pub fn org_for_token(conn: &mut DbConn, token: &str) -> QueryResult<Option<OrgId>> {
    let hash = secrets::token_hash(token);
    let found: Option<(OrgId, String)> = api_tokens::table
        .filter(api_tokens::token_hash.eq(&hash))
        .select((api_tokens::org_id, api_tokens::token_hash))
        .first(conn)
        .optional()?;
    Ok(found
        .filter(|(_, stored)| secrets::constant_time_eq(stored, &hash))
        .map(|(org_id, _)| org_id))
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

pub fn set_password(conn: &mut DbConn, email: &str, password_hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::email.eq(normalize_email(email))))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)
}
