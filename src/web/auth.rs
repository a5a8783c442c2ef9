//! Sign-in and sign-out. A wrong password and an unknown email get the same answer, in about the
//! same time (an unknown email is checked against a dummy hash).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::error::page;
use super::session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SignedIn};
use super::{AppError, AppState};
use crate::secrets;
use crate::store::users;

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    csrf_token: String,
    email: String,
    error: Option<String>,
    /// The page to return to once signed in ("" for the Credits tab).
    next: String,
}

/// A page of this dashboard that sign-in may return to: `/apis/credits` or a page under it (path
/// segments of letters, digits, `-` and `_` only: no dot segment, no download, no escape that a
/// browser would decode), with a query of letters, digits and `=&_.:-` only, at most 500
/// characters. Anything else returns to the Credits tab.
pub fn safe_return(path: &str) -> Option<&str> {
    let (page, query) = path.split_once('?').unwrap_or((path, ""));
    let page_ok = page == "/apis/credits"
        || page.strip_prefix("/apis/credits/").is_some_and(|rest| {
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        });
    let query_ok = query
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "=&_.:-".contains(c));
    (path.len() <= 500 && page_ok && query_ok).then_some(path)
}

/// The sign-in form's token for the browser holding `nonce` in its cookie: an attacker who can set
/// a cookie cannot make a matching field without the servers' key.
fn login_token(state: &AppState, nonce: &str) -> String {
    secrets::hmac_hex(&state.login_key, nonce)
}

/// How long a sign-in form's (nonce, token) pair is good for; the nonce says when it was issued.
const LOGIN_FORM_SECONDS: i64 = 2 * 60 * 60;

/// The token expected for a nonce cookie, if the nonce was issued within `LOGIN_FORM_SECONDS`.
fn expected_login_token(state: &AppState, nonce: &str) -> Option<String> {
    let issued: i64 = nonce.split_once('.')?.0.parse().ok()?;
    let age = state.clock.now().timestamp() - issued;
    (0..=LOGIN_FORM_SECONDS)
        .contains(&age)
        .then(|| login_token(state, nonce))
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    email: String,
    error: Option<String>,
    next: &str,
    secure: bool,
) -> Result<HttpResponse, AppError> {
    let nonce = format!(
        "{}.{}",
        state.clock.now().timestamp(),
        secrets::random_hex_256()
    );
    let mut response = page(
        status,
        &LoginPage {
            csrf_token: login_token(state, &nonce),
            email,
            error,
            next: safe_return(next).unwrap_or_default().to_string(),
        },
    )?;
    response
        .add_cookie(&session::cookie(
            LOGIN_CSRF_COOKIE,
            nonce,
            "/login",
            secure,
            Some(CookieDuration::hours(2)),
        ))
        .map_err(AppError::internal)?;
    Ok(response)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: Option<web::Query<LoginQuery>>,
) -> Result<HttpResponse, AppError> {
    let next = query.map(|q| q.into_inner().next).unwrap_or_default();
    if req.cookie(SESSION_COOKIE).is_some() {
        // Already signed in? Go to the dashboard; a stale cookie lands back here via the extractor.
        let signed_in = SignedIn::extract(&req).await;
        if signed_in.is_ok() {
            return Ok(HttpResponse::SeeOther()
                .insert_header((
                    header::LOCATION,
                    safe_return(&next).unwrap_or("/apis/credits"),
                ))
                .finish());
        }
    }
    login_page(
        &state,
        StatusCode::OK,
        String::new(),
        None,
        &next,
        state.is_https(&req),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let expected = req
        .cookie(LOGIN_CSRF_COOKIE)
        .and_then(|c| expected_login_token(&state, c.value()))
        .unwrap_or_default();
    if session::check_csrf(&expected, &form.csrf_token).is_err() {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            form.email,
            Some("The sign-in form expired. Please try again.".into()),
            &form.next,
            state.is_https(&req),
        );
    }
    let address = session::client_address(&req, &state.trusted_proxies);
    if !state.throttle.begin_attempt(&form.email, &address) {
        return login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            form.email,
            Some("Too many failed sign-in attempts. Please wait 15 minutes and try again.".into()),
            &form.next,
            state.is_https(&req),
        );
    }
    // Guessing one email's password from many addresses is slowed down, not refused.
    let delay = state.throttle.delay_for(&form.email);
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let now = state.clock.now();
    let (email, password) = (form.email.clone(), form.password.clone());
    let session = state
        .db(move |conn| {
            let user = if email.len() <= 254 && password.len() <= 1024 {
                users::find_by_email(conn, &email)?
            } else {
                None
            };
            let verified = match &user {
                Some(u) => secrets::verify_password(&password, &u.password_hash),
                None => {
                    secrets::verify_password(&password, secrets::dummy_password_hash());
                    false
                }
            };
            match user {
                Some(u) if verified && !u.is_disabled() => Ok(users::create_session_checked(
                    conn,
                    u.id,
                    &u.password_hash,
                    now,
                )?),
                _ => Ok(None),
            }
        })
        .await?;
    let Some(session) = session else {
        tracing::info!(email = %users::normalize_email(&form.email), "sign-in refused");
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            form.email,
            Some("The email or password is not correct.".into()),
            &form.next,
            state.is_https(&req),
        );
    };
    state.throttle.record_success(&form.email, &address);
    let max_age = CookieDuration::hours(users::SESSION_HOURS);
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            safe_return(&form.next).unwrap_or("/apis/credits"),
        ))
        .cookie(session::cookie(
            SESSION_COOKIE,
            session.cookie_value,
            "/",
            state.is_https(&req),
            Some(max_age),
        ))
        .cookie(session::removal(
            LOGIN_CSRF_COOKIE,
            "/login",
            state.is_https(&req),
        ))
        .finish())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    signed_in.check_csrf(&form.csrf_token)?;
    let cookie_value = signed_in.cookie_value.clone();
    state
        .cache
        .forget_session(&secrets::token_hash(&cookie_value));
    state
        .db(move |conn| Ok(users::delete_session(conn, &cookie_value)?))
        .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(session::removal(SESSION_COOKIE, "/", state.is_https(&req)))
        .finish())
}
