//! The gateway's JSON API (SPEC §4): bearer-token auth, admission, metering, remaining credits and
//! the daily usage. Errors are JSON `{"error", "message"}` with a 4xx status, never HTML.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{StatusCode, header};
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;

use super::AppState;
use crate::domain::calendar;
use crate::domain::money;
use crate::domain::types::{Credits, DayRange};
use crate::ledger::writer::WriterError;
use crate::ledger::{self, Kind, Outcome, Refusal, UsageRequest};
use crate::secrets;
use crate::store::{orgs, plans, usage, users};

/// `X-API-Credits-Remaining` on every admission answer (SPEC §4).
const CREDITS_REMAINING: HeaderName = HeaderName::from_static("x-api-credits-remaining");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Most events in one `/usage` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 100_000;
const MAX_TEXT: usize = 200;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "A valid API token is required: Authorization: Bearer <token>.",
        )
    }

    fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "The request could not be completed; nothing was recorded.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({ "error": self.code, "message": self.message }))
    }
}

impl From<WriterError> for ApiError {
    fn from(e: WriterError) -> Self {
        match e {
            WriterError::Overloaded => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", e.to_string())
            }
            WriterError::Stopped | WriterError::Batch(_) => {
                tracing::error!(error = %e, "usage not recorded");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "The usage could not be recorded. Retry: what was recorded already counts once.",
                )
            }
        }
    }
}

impl From<super::AppError> for ApiError {
    fn from(e: super::AppError) -> Self {
        ApiError::internal(e)
    }
}

/// The org an API token belongs to. A bad token is 401 and says nothing about whether an org exists.
pub struct ApiOrg {
    pub org_id: i64,
    pub zone: Tz,
}

impl FromRequest for ApiOrg {
    type Error = ApiError;
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    /// A known token is answered from the cache without leaving this call (the gateway's hot path);
    /// an unknown one is looked up on the blocking pool.
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<Data<AppState>>() else {
            return Either::Left(ready(Err(ApiError::internal("application state missing"))));
        };
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200);
        let Some(token) = token else {
            return Either::Left(ready(Err(ApiError::unauthorized())));
        };
        let hash = secrets::token_hash(token);
        if let Some(found) = state.cache.token(&hash) {
            return Either::Left(ready(Ok(ApiOrg {
                org_id: found.0,
                zone: found.1,
            })));
        }
        let state = state.clone();
        let token = token.to_string();
        Either::Right(Box::pin(async move {
            let found = state
                .db(move |conn| {
                    let Some(org_id) = users::org_for_token(conn, &token)? else {
                        return Ok(None);
                    };
                    Ok(orgs::find(conn, org_id)?.map(|org| (org.id, org.zone())))
                })
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            state.cache.put_token(hash, found);
            Ok(ApiOrg {
                org_id: found.0,
                zone: found.1,
            })
        }))
    }
}

fn check_text(field: &str, value: Option<String>, default: &str) -> Result<String, ApiError> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) => {
            Err(ApiError::invalid(format!(
                "{field} must be at most {MAX_TEXT} characters without control characters"
            )))
        }
        Some(v) if v.trim().is_empty() => Ok(default.to_string()),
        Some(v) => Ok(v),
    }
}

fn check_id(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(v)
            if v.is_empty() || v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) =>
        {
            Err(ApiError::invalid(format!(
                "id must be 1 to {MAX_TEXT} characters without control characters"
            )))
        }
        Some(v) => Ok(Some(v)),
    }
}

fn check_credits(value: i64) -> Result<i64, ApiError> {
    Credits::new(value)
        .map(Credits::get)
        .map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize)]
struct ConsumeBody {
    credits: i64,
    id: Option<String>,
    operation: Option<String>,
    client: Option<String>,
    user: Option<String>,
}

/// `POST /api/v1/consume`: spend credits now, atomically, or refuse the call whole (R4).
pub async fn consume(
    state: Data<AppState>,
    org: ApiOrg,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let parsed: ConsumeBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid body: {e}")))?;
    let request = UsageRequest {
        org_id: org.org_id,
        kind: Kind::Live,
        event_id: check_id(parsed.id)?,
        occurred_at: state.clock.now(),
        credits: check_credits(parsed.credits)?,
        operation: check_text("operation", parsed.operation, "unspecified")?,
        client: check_text("client", parsed.client, "unspecified")?,
        user: check_text("user", parsed.user, "")?,
    };
    let now = request.occurred_at;
    let outcome = state
        .writer
        .submit(vec![request])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no outcome"))?;
    state.cache.invalidate_credits(org.org_id);
    match outcome {
        Outcome::Accepted { budget, .. }
        | Outcome::Duplicate {
            budget: Some(budget),
        } => {
            state
                .metrics
                .admissions_allowed
                .fetch_add(1, Ordering::Relaxed);
            // The hot path: written out rather than built as a JSON value.
            let (free, additional) = (budget.free_remaining(), budget.additional_remaining());
            let body = format!(
                "{{\"allowed\":true,\"free_remaining\":{free},\"additional_remaining\":{additional}}}"
            );
            Ok(HttpResponse::Ok()
                .insert_header((CREDITS_REMAINING, HeaderValue::from(free + additional)))
                .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
                .body(body))
        }
        Outcome::Refused {
            reason: Refusal::LimitExceeded(hit),
            budget,
        } => {
            state
                .metrics
                .admissions_refused
                .fetch_add(1, Ordering::Relaxed);
            let total = budget.map_or(0, |b| b.free_remaining() + b.additional_remaining());
            Ok(HttpResponse::TooManyRequests()
                .insert_header((CREDITS_REMAINING, HeaderValue::from(total)))
                .insert_header((header::RETRY_AFTER, calendar::seconds_until_next_day(now, org.zone).to_string()))
                .json(json!({
                    "allowed": false,
                    "error": "CREDITS_EXHAUSTED",
                    "limit": hit.as_str(),
                    "message": match hit.as_str() {
                        "free" => "Today's free credits are spent and no additional credits are available.",
                        _ => "This call would pass today's additional credit limit.",
                    },
                })))
        }
        Outcome::Refused {
            reason: Refusal::UnknownOrg,
            ..
        } => Err(ApiError::unauthorized()),
        Outcome::Refused { reason, .. } => Err(ApiError::new(
            StatusCode::CONFLICT,
            reason.code(),
            "The call could not be admitted.",
        )),
        Outcome::Duplicate { budget: None } => {
            Err(ApiError::internal("duplicate without a budget"))
        }
    }
}

#[derive(Deserialize)]
struct UsageEventBody {
    id: String,
    timestamp: String,
    credits: i64,
    operation: Option<String>,
    client: Option<String>,
    user: Option<String>,
}

/// Parse a `/usage` body (JSON array, or NDJSON) into requests; any bad event makes it all 400.
fn parse_usage(org_id: i64, body: &[u8], ndjson: bool) -> Result<Vec<UsageRequest>, ApiError> {
    let events: Vec<UsageEventBody> = if ndjson {
        let text =
            std::str::from_utf8(body).map_err(|_| ApiError::invalid("the body is not UTF-8"))?;
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if events.len() == MAX_EVENTS_PER_REQUEST {
                return Err(ApiError::invalid(format!(
                    "at most {MAX_EVENTS_PER_REQUEST} events per request"
                )));
            }
            let event = serde_json::from_str(line)
                .map_err(|e| ApiError::invalid(format!("line {}: {e}", n + 1)))?;
            events.push(event);
        }
        events
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(format!("the body must be a JSON array of events: {e}"))
        })?
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "at most {MAX_EVENTS_PER_REQUEST} events per request"
        )));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |m: String| {
                ApiError::invalid(format!(
                    "event {} ({:?}): {m}",
                    i + 1,
                    e.id.chars().take(40).collect::<String>()
                ))
            };
            let occurred_at = DateTime::parse_from_rfc3339(e.timestamp.trim())
                .map_err(|_| {
                    at(format!(
                        "timestamp {:?} is not an RFC 3339 time",
                        e.timestamp
                    ))
                })?
                .with_timezone(&Utc);
            Ok(UsageRequest {
                org_id,
                kind: Kind::Metered,
                event_id: Some(
                    check_id(Some(e.id.clone()))
                        .map_err(|x| at(x.message))?
                        .unwrap_or_default(),
                ),
                occurred_at,
                credits: check_credits(e.credits).map_err(|x| at(x.message))?,
                operation: check_text("operation", e.operation.clone(), "unspecified")
                    .map_err(|x| at(x.message))?,
                client: check_text("client", e.client.clone(), "unspecified")
                    .map_err(|x| at(x.message))?,
                user: check_text("user", e.user.clone(), "").map_err(|x| at(x.message))?,
            })
        })
        .collect()
}

/// `POST /api/v1/usage`: record usage that already happened (R12), one result per event.
pub async fn report_usage(
    req: HttpRequest,
    state: Data<AppState>,
    org: ApiOrg,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-ndjson"));
    // Parsing a large body takes milliseconds: it runs on the blocking pool, not on the HTTP
    // worker that other orgs' calls share.
    let org_id = org.org_id;
    let (order, ids, sorted) = actix_web::web::block(move || {
        let requests = parse_usage(org_id, &body, ndjson)?;
        // Within one request, events are admitted in timestamp order; results keep the request's
        // order.
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| requests[i].occurred_at);
        let ids: Vec<String> = requests
            .iter()
            .map(|r| r.event_id.clone().unwrap_or_default())
            .collect();
        let sorted: Vec<UsageRequest> = order.iter().map(|&i| requests[i].clone()).collect();
        Ok::<_, ApiError>((order, ids, sorted))
    })
    .await
    .map_err(ApiError::internal)??;
    let outcomes = if sorted.is_empty() {
        Vec::new()
    } else {
        state.writer.submit(sorted).await?
    };
    state.cache.invalidate_credits(org.org_id);
    // As large as the request: written on the blocking pool too.
    let (body, accepted, refused) = actix_web::web::block(move || {
        let mut results: Vec<Option<UsageResult>> = (0..ids.len()).map(|_| None).collect();
        for (position, outcome) in order.into_iter().zip(outcomes) {
            let (status, reason) = match outcome {
                Outcome::Accepted { .. } => ("accepted", None),
                Outcome::Duplicate { .. } => ("duplicate", None),
                Outcome::Refused { reason, .. } => ("refused", Some(reason.code())),
            };
            results[position] = Some(UsageResult {
                id: &ids[position],
                status,
                reason,
            });
        }
        let count = |status: &str| {
            results
                .iter()
                .flatten()
                .filter(|r| r.status == status)
                .count() as u64
        };
        let answer = UsageAnswer {
            accepted: count("accepted"),
            duplicates: count("duplicate"),
            refused: count("refused"),
            results: results.into_iter().flatten().collect(),
        };
        serde_json::to_vec(&answer).map(|body| (body, answer.accepted, answer.refused))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    state
        .metrics
        .events_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    state
        .metrics
        .events_refused
        .fetch_add(refused, Ordering::Relaxed);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
        .body(body))
}

/// The answer to `POST /api/v1/usage`.
#[derive(serde::Serialize)]
struct UsageAnswer<'a> {
    accepted: u64,
    duplicates: u64,
    refused: u64,
    results: Vec<UsageResult<'a>>,
}

/// One event's result, in the request's order.
#[derive(serde::Serialize)]
struct UsageResult<'a> {
    id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// `GET /api/v1/credits`: the org's today.
pub async fn credits(state: Data<AppState>, org: ApiOrg) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let org_id = org.org_id;
    let (day, budget) = state
        .db(move |conn| {
            let org = orgs::find(conn, org_id)?.ok_or(super::AppError::NotFound)?;
            Ok(ledger::today_budget(conn, &org, now)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "day": day.to_string(),
        "free_allowance": budget.free_allowance,
        "used": budget.free_used + budget.additional_used,
        "free_remaining": budget.free_remaining(),
        "additional_limit": budget.additional_limit,
        "additional_used": budget.additional_used,
        "additional_remaining": budget.additional_remaining(),
    })))
}

#[derive(Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A range from `from`/`to` (both or neither); neither = the last 30 days, today included.
pub fn parse_range(query: &str, today: chrono::NaiveDate) -> Result<DayRange, String> {
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

/// `GET /api/v1/usage/daily?from=&to=`: the View details data.
pub async fn daily(
    req: HttpRequest,
    state: Data<AppState>,
    org: ApiOrg,
) -> Result<HttpResponse, ApiError> {
    let today = calendar::local_day(state.clock.now(), org.zone);
    let range = parse_range(req.query_string(), today)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_RANGE", m))?;
    let org_id = org.org_id;
    let (rows, currency) = state
        .db(move |conn| {
            let rows = usage::every_day(conn, org_id, range)?;
            let (_, plan) = plans::for_day(conn, range.to)?;
            Ok((rows, plan.currency))
        })
        .await?;
    let total: i64 = rows.iter().map(|r| r.amount_minor).sum();
    let days: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "day": r.local_day.to_string(),
                "credits": r.credits,
                "additional": r.additional,
                "amount": money::format_minor(r.amount_minor, &currency),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "currency": currency,
        "days": days,
        "total_amount": money::format_minor(total, &currency),
    })))
}

/// `GET /api/v1/ping`: authenticated, touches nothing; the HTTP ceiling of the benchmarks.
pub async fn ping(org: ApiOrg) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "ok": true, "org": org.org_id }))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "There is no such API call.",
    ))
}
