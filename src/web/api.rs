//! The gateway's JSON API (SPEC §4): bearer-token auth, admission, metering, remaining credits and
//! the daily usage. Errors are JSON `{"error", "message"}` with a 4xx status, never HTML.

use crate::domain::types::OrgId;
use actix_web::http::header;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
use serde_json::json;

use super::range::parse_range;
use super::schema::{
    Admitted, ConsumeBody, Daily, DayAmount, ErrorBody, EventStatus, Pong, Refused, Today,
    UsageAnswer, UsageEventBody, UsageResult,
};
use super::{AppError, AppState};
use crate::domain::admission::{self, LimitHit};
use crate::domain::calendar;
use crate::domain::event::{EventFields, RawCredits, UsageEvent};
use crate::domain::money;
use crate::ledger::{Kind, Outcome, Refusal, UsageRequest};
use crate::report::{credits, details};
use crate::secrets;
use crate::store::{orgs, users};

/// `X-API-Credits-Remaining` on every admission answer (SPEC §4).
const CREDITS_REMAINING: HeaderName = HeaderName::from_static("x-api-credits-remaining");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Most events in one `/usage` request.
pub const MAX_EVENTS_PER_REQUEST: usize = 100_000;

/// The org an API token belongs to. A bad token is 401 and says nothing about whether an org exists.
pub struct ApiOrg {
    pub org_id: OrgId,
    pub zone: Tz,
}

impl FromRequest for ApiOrg {
    type Error = AppError;
    type Future =
        Either<Ready<Result<Self, AppError>>, LocalBoxFuture<'static, Result<Self, AppError>>>;

    /// A known token is answered from the cache without leaving this call (the gateway's hot path);
    /// an unknown one is looked up on the blocking pool.
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<Data<AppState>>() else {
            return Either::Left(ready(Err(AppError::internal("application state missing"))));
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
            return Either::Left(ready(Err(AppError::Unauthorized)));
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
            let now = state.clock.now();
            let (found, stale_id) = state
                .db(move |conn| {
                    let Some(used) = users::org_for_token(conn, &token, now)? else {
                        return Ok(None);
                    };
                    let org = orgs::find(conn, used.org_id)?;
                    Ok(org.map(|org| ((org.id, org.zone()), used.stale_id)))
                })
                .await?
                .ok_or(AppError::Unauthorized)?;
            state.cache.put_token(hash, found);
            // The last use is bookkeeping: written after the answer, and a failure only logged.
            if let Some(id) = stale_id {
                let state = state.clone();
                actix_web::rt::spawn(async move {
                    let noted = state
                        .db(move |conn| Ok(users::note_token_use(conn, id, now)?))
                        .await;
                    if let Err(e) = noted {
                        tracing::debug!(error = %e, "a token's last use was not written");
                    }
                });
            }
            Ok(ApiOrg {
                org_id: found.0,
                zone: found.1,
            })
        }))
    }
}

/// `POST /api/v1/consume`: spend credits now, atomically, or refuse the call whole (R4).
#[utoipa::path(
    post,
    path = "/api/v1/consume",
    summary = "Spend credits now, atomically: free credits first, then additional credits up to the limit",
    request_body = ConsumeBody,
    responses(
        (status = 200, description = "Admitted", body = Admitted,
            headers(("X-API-Credits-Remaining" = i64, description = "Free plus additional credits left today"))),
        (status = 429, description = "Refused whole: the day's free credits plus the additional limit would be passed", body = Refused,
            headers(
                ("Retry-After" = i64, description = "Seconds until the org's next local day"),
                ("X-API-Credits-Remaining" = i64, description = "Free plus additional credits left today"))),
        (status = 400, description = "Malformed body or credits out of range; nothing recorded", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 409, description = "The call cannot be placed (its reason is the error code)", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB; nothing recorded", body = ErrorBody),
        (status = 503, description = "Not recorded; retry", body = ErrorBody),
    )
)]
pub async fn consume(
    state: Data<AppState>,
    org: ApiOrg,
    body: Bytes,
) -> Result<HttpResponse, AppError> {
    let parsed: ConsumeBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::invalid(format!("invalid body: {e}")))?;
    let now = state.clock.now();
    let fields = EventFields {
        id: parsed.id.as_deref(),
        timestamp: None,
        credits: RawCredits::Number(parsed.credits),
        operation: parsed.operation.as_deref(),
        client: parsed.client.as_deref(),
        user: parsed.user.as_deref(),
    };
    let event =
        UsageEvent::parse(fields, Kind::Live, now).map_err(|e| AppError::invalid(e.to_string()))?;
    let request = UsageRequest::new(org.org_id, Kind::Live, event);
    let submitted = std::time::Instant::now();
    let outcome = state
        .writer
        .submit(vec![request])
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("the writer gave no outcome"))?;
    state.cache.invalidate_credits(org.org_id);
    match outcome {
        Outcome::Accepted { budget, .. }
        | Outcome::Duplicate {
            budget: Some(budget),
        } => {
            state.metrics.admission(true, submitted.elapsed());
            // The hot path: written out rather than serialized (`schema::Admitted`; a test reads it
            // back as one).
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
            state.metrics.admission(false, submitted.elapsed());
            let total = budget.map_or(0, |b| b.free_remaining() + b.additional_remaining());
            let retry_after = match hit {
                LimitHit::Budget => seconds_until_next_period(&state, org.org_id, now).await?,
                _ => calendar::seconds_until_next_day(now, org.zone),
            };
            Ok(HttpResponse::TooManyRequests()
                .insert_header((CREDITS_REMAINING, HeaderValue::from(total)))
                .insert_header((header::RETRY_AFTER, retry_after.to_string()))
                .json(json!({
                    "allowed": false,
                    "error": "CREDITS_EXHAUSTED",
                    "limit": hit.as_str(),
                    "message": match hit {
                        LimitHit::Free => "Today's free credits are spent and no additional credits are available.",
                        LimitHit::Additional => "This call would pass today's additional credit limit.",
                        LimitHit::Budget => "This call would take this billing period's charge past its budget.",
                    },
                })))
        }
        Outcome::Refused {
            reason: Refusal::UnknownOrg,
            ..
        } => Err(AppError::Unauthorized),
        Outcome::Refused { reason, .. } => Err(AppError::Conflict {
            code: reason.code(),
            message: "The call could not be admitted.".into(),
        }),
        Outcome::Duplicate { budget: None } => {
            Err(AppError::internal("a duplicate consume without a budget"))
        }
    }
}

/// R14: a call refused at the budget may succeed once the next billing period starts.
async fn seconds_until_next_period(
    state: &AppState,
    org_id: OrgId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<i64, AppError> {
    let org = state
        .db(move |conn| Ok(crate::store::orgs::find(conn, org_id)?))
        .await?
        .ok_or(AppError::Unauthorized)?;
    let zone = org.zone();
    let today = calendar::local_day(now, zone);
    Ok(match calendar::current_period(org.billing_anchor, today) {
        Some(period) => (calendar::day_start(period.end, zone) - now)
            .num_seconds()
            .max(1),
        None => calendar::seconds_until_next_day(now, zone),
    })
}

/// Parse a `/usage` body (JSON array, or NDJSON) into requests; any bad event makes it all 400.
fn parse_usage(org_id: OrgId, body: &[u8], ndjson: bool) -> Result<Vec<UsageRequest>, AppError> {
    let events: Vec<UsageEventBody> = if ndjson {
        let text =
            std::str::from_utf8(body).map_err(|_| AppError::invalid("the body is not UTF-8"))?;
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if events.len() == MAX_EVENTS_PER_REQUEST {
                return Err(AppError::invalid(format!(
                    "at most {MAX_EVENTS_PER_REQUEST} events per request"
                )));
            }
            let event = serde_json::from_str(line)
                .map_err(|e| AppError::invalid(format!("line {}: {e}", n + 1)))?;
            events.push(event);
        }
        events
    } else {
        serde_json::from_slice(body).map_err(|e| {
            AppError::invalid(format!("the body must be a JSON array of events: {e}"))
        })?
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(AppError::invalid(format!(
            "at most {MAX_EVENTS_PER_REQUEST} events per request"
        )));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let fields = EventFields {
                id: Some(&e.id),
                timestamp: Some(&e.timestamp),
                credits: RawCredits::Number(e.credits),
                operation: e.operation.as_deref(),
                client: e.client.as_deref(),
                user: e.user.as_deref(),
            };
            // Metered events carry their own time; `now` is not used.
            let event = UsageEvent::parse(fields, Kind::Metered, DateTime::<Utc>::MIN_UTC)
                .map_err(|m| {
                    AppError::invalid(format!(
                        "event {} ({:?}): {m}",
                        i + 1,
                        e.id.chars().take(40).collect::<String>()
                    ))
                })?;
            Ok(UsageRequest::new(org_id, Kind::Metered, event))
        })
        .collect()
}

/// `POST /api/v1/usage`: record usage that already happened (R12), one result per event.
#[utoipa::path(
    post,
    path = "/api/v1/usage",
    summary = "Record usage that already happened (R12): admitted in timestamp order with the limit in force at each event's time",
    request_body(content(
        (Vec<UsageEventBody> = "application/json"),
        (UsageEventBody = "application/x-ndjson"),
    ), description = "At most 100,000 events: a JSON array, or one event per line (NDJSON)"),
    responses(
        (status = 200, description = "One result per event, in the request's order", body = UsageAnswer),
        (status = 400, description = "Malformed body; nothing recorded", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 413, description = "Body over 64 MiB; nothing recorded", body = ErrorBody),
        (status = 503, description = "Not recorded; retry (what was recorded counts once)", body = ErrorBody),
    )
)]
pub async fn report_usage(
    req: HttpRequest,
    state: Data<AppState>,
    org: ApiOrg,
    body: Bytes,
) -> Result<HttpResponse, AppError> {
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
        // Results keep the request's order.
        let times: Vec<_> = requests.iter().map(|r| r.occurred_at).collect();
        let order = admission::admission_order(&times);
        let ids: Vec<String> = requests
            .iter()
            .map(|r| r.event_id.clone().unwrap_or_default())
            .collect();
        let sorted: Vec<UsageRequest> = order.iter().map(|&i| requests[i].clone()).collect();
        Ok::<_, AppError>((order, ids, sorted))
    })
    .await??;
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
                Outcome::Accepted { .. } => (EventStatus::Accepted, None),
                Outcome::Duplicate { .. } => (EventStatus::Duplicate, None),
                Outcome::Refused { reason, .. } => (EventStatus::Refused, Some(reason.code())),
            };
            results[position] = Some(UsageResult {
                id: &ids[position],
                status,
                reason,
            });
        }
        let count = |wanted: fn(&EventStatus) -> bool| {
            results
                .iter()
                .flatten()
                .filter(|r| wanted(&r.status))
                .count() as u64
        };
        let answer = UsageAnswer {
            accepted: count(|s| matches!(s, EventStatus::Accepted)),
            duplicates: count(|s| matches!(s, EventStatus::Duplicate)),
            refused: count(|s| matches!(s, EventStatus::Refused)),
            results: results.into_iter().flatten().collect(),
        };
        serde_json::to_vec(&answer).map(|body| (body, answer.accepted, answer.refused))
    })
    .await?
    .map_err(AppError::internal)?;
    state.metrics.metered(accepted, refused);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, APPLICATION_JSON))
        .body(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/credits",
    summary = "The org's credits for its current local day",
    responses(
        (status = 200, description = "Today", body = Today),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
/// `GET /api/v1/credits`: the org's today, from the read cache when this process has not written
/// for the org since (see `web::cache`).
pub async fn credits(state: Data<AppState>, org: ApiOrg) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let org_id = org.org_id;
    let today = match state
        .cache
        .today(org_id, calendar::local_day(now, org.zone))
    {
        Ok(today) => today,
        Err(generation) => {
            let today = state
                .db(move |conn| {
                    let org = orgs::find(conn, org_id)?.ok_or(AppError::Unauthorized)?;
                    Ok(credits::today(conn, &org, now)?)
                })
                .await?;
            state.cache.put_today(org_id, generation, today)
        }
    };
    let budget = today.budget;
    Ok(HttpResponse::Ok().json(Today {
        day: today.local_day.to_string(),
        free_allowance: budget.free_allowance,
        used: budget.free_used + budget.additional_used,
        free_remaining: budget.free_remaining(),
        additional_limit: budget.additional_limit,
        additional_used: budget.additional_used,
        additional_remaining: budget.additional_remaining(),
    }))
}

/// `GET /api/v1/usage/daily?from=&to=`: the View details data.
#[utoipa::path(
    get,
    path = "/api/v1/usage/daily",
    summary = "Per-day usage and amounts; no parameters = the last 30 days, today included",
    params(
        ("from" = Option<String>, Query, format = Date, description = "First day, YYYY-MM-DD (with to)"),
        ("to" = Option<String>, Query, format = Date, description = "Last day, YYYY-MM-DD (with from); at most 366 days"),
    ),
    responses(
        (status = 200, description = "Days", body = Daily),
        (status = 400, description = "Malformed dates, from after to, or more than 366 days", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
pub async fn daily(
    req: HttpRequest,
    state: Data<AppState>,
    org: ApiOrg,
) -> Result<HttpResponse, AppError> {
    let today = calendar::local_day(state.clock.now(), org.zone);
    let range = parse_range(req.query_string(), today).map_err(|message| AppError::BadRequest {
        code: "INVALID_RANGE",
        message,
    })?;
    let org_id = org.org_id;
    let days = state
        .db(move |conn| Ok(details::days(conn, org_id, range, today)?))
        .await?;
    let currency = &days.currency;
    Ok(HttpResponse::Ok().json(Daily {
        from: range.from().to_string(),
        to: range.to().to_string(),
        currency: currency.clone(),
        days: days
            .lines
            .iter()
            .map(|l| DayAmount {
                day: l.local_day.to_string(),
                credits: l.credits,
                additional: l.additional,
                amount: money::format_minor(l.amount_minor, currency),
            })
            .collect(),
        total_amount: money::format_minor(days.totals.amount_minor, currency),
    }))
}

/// `GET /api/v1/ping`: authenticated, touches nothing; the HTTP ceiling of the benchmarks.
#[utoipa::path(
    get,
    path = "/api/v1/ping",
    summary = "Checks the token and does nothing else",
    responses(
        (status = 200, description = "Token accepted", body = Pong),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    )
)]
pub async fn ping(org: ApiOrg) -> HttpResponse {
    HttpResponse::Ok().json(Pong {
        ok: true,
        org: org.org_id.get(),
    })
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}
