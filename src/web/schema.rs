//! The JSON bodies of the gateway API, as the handlers read and write them; their OpenAPI schemas
//! are derived from these types (utoipa), so the document cannot drift from the handlers. Limits
//! written as literals in `#[schema]` are checked against the domain's constants by a test.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/consume`.
#[derive(Deserialize, ToSchema)]
pub struct ConsumeBody {
    /// Credits to spend now, whole.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub credits: i64,
    /// Idempotency key: a consume with an id that was admitted before is not counted again (R9).
    #[schema(min_length = 1, max_length = 200)]
    pub id: Option<String>,
    #[schema(max_length = 200)]
    pub operation: Option<String>,
    #[schema(max_length = 200)]
    pub client: Option<String>,
    #[schema(max_length = 200)]
    pub user: Option<String>,
}

/// One event of `POST /api/v1/usage` (a JSON array of them, or one per line as NDJSON).
#[derive(Deserialize, ToSchema)]
pub struct UsageEventBody {
    /// Counted once per org however often it is sent (R9).
    #[schema(min_length = 1, max_length = 200)]
    pub id: String,
    /// When the usage happened, RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub credits: i64,
    #[schema(max_length = 200)]
    pub operation: Option<String>,
    #[schema(max_length = 200)]
    pub client: Option<String>,
    #[schema(max_length = 200)]
    pub user: Option<String>,
}

/// A consume call that was admitted.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Admitted {
    /// Always true.
    pub allowed: bool,
    pub free_remaining: i64,
    pub additional_remaining: i64,
}

/// Which limit refused a consume call.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitName {
    /// Today's free credits are spent and additional credits are off.
    Free,
    /// Today's additional credit limit would be passed (R4).
    Additional,
    /// The billing period's charge would pass the org's budget, and the org stops there (R14).
    Budget,
}

/// A consume call refused whole (R4).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Refused {
    /// Always false.
    pub allowed: bool,
    /// Always `CREDITS_EXHAUSTED`.
    pub error: String,
    pub limit: LimitName,
    pub message: String,
}

/// Every error of the API.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `INVALID_REQUEST`, `INVALID_RANGE`, `UNAUTHORIZED`, `NOT_FOUND`,
    /// `OVERLOADED`, `UNAVAILABLE`, `PAYLOAD_TOO_LARGE`, `INTERNAL`, or a refusal's reason.
    pub error: String,
    pub message: String,
}

/// What became of one event.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Refused,
}

/// One event's result, in the request's order.
#[derive(Serialize, ToSchema)]
pub struct UsageResult<'a> {
    pub id: &'a str,
    pub status: EventStatus,
    /// Why a refused event was refused: `LIMIT_EXCEEDED`, `PERIOD_CLOSED`, `FUTURE_TIMESTAMP`,
    /// `NO_PRICE_PLAN`, `OUT_OF_RANGE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The answer to `POST /api/v1/usage`.
#[derive(Serialize, ToSchema)]
pub struct UsageAnswer<'a> {
    pub accepted: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub results: Vec<UsageResult<'a>>,
}

/// `GET /api/v1/credits`: the org's current local day.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Today {
    #[schema(format = Date)]
    pub day: String,
    pub free_allowance: i64,
    pub used: i64,
    pub free_remaining: i64,
    pub additional_limit: i64,
    pub additional_used: i64,
    pub additional_remaining: i64,
}

/// One day of `GET /api/v1/usage/daily`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DayAmount {
    #[schema(format = Date)]
    pub day: String,
    pub credits: i64,
    pub additional: i64,
    /// The day's charge, such as `6.80`.
    pub amount: String,
}

/// `GET /api/v1/usage/daily`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Daily {
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    pub currency: String,
    pub days: Vec<DayAmount>,
    /// The sum of the days' charges, such as `6.80`.
    pub total_amount: String,
}

/// `GET /api/v1/ping`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Pong {
    pub ok: bool,
    pub org: i64,
}

/// An event POSTed to an org's webhook (R13/R14), signed with `X-Creditmeter-Signature:
/// t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; `X-Creditmeter-Event` repeats its id.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// The same on every delivery attempt of this event: receivers deduplicate on it.
    pub id: String,
    /// `credits.threshold_crossed`, `budget.threshold_crossed` or `webhook.test`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened, RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    pub org: WebhookOrg,
    pub data: WebhookData,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookOrg {
    pub id: i64,
    pub name: String,
}

/// What the event tells, by its type.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum WebhookData {
    DailyLimit(DailyLimitCrossed),
    Budget(BudgetCrossed),
    Test(TestEventData),
}

/// `credits.threshold_crossed`: a day's additional credits reached a threshold of the daily limit.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct DailyLimitCrossed {
    /// Always `daily_limit`.
    pub kind: String,
    /// The org-local day, YYYY-MM-DD.
    #[schema(format = Date)]
    pub day: String,
    /// Percent of the limit.
    pub threshold: u32,
    pub additional_used: i64,
    pub additional_limit: i64,
}

/// `budget.threshold_crossed`: a billing period's charge reached a threshold of its budget.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BudgetCrossed {
    /// Always `budget`.
    pub kind: String,
    #[schema(format = Date)]
    pub period_start: String,
    /// The period's end (exclusive): the next billing date.
    #[schema(format = Date)]
    pub period_end: String,
    /// Percent of the budget.
    pub threshold: u32,
    /// The period's charge so far, e.g. `400.00`.
    pub charged: String,
    pub budget: String,
    pub currency: String,
}

/// `webhook.test`: sent from the Alerts page to check a receiver.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TestEventData {
    pub message: String,
}
