//! The Alerts page (R13/R14): threshold and budget crossings, webhook deliveries with their
//! attempts, and the super admin's settings: thresholds, budget, webhook URL and secret, a test
//! event, "retry now".

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::chrome::Chrome;
use super::respond::page;
use super::session::SignedIn;
use super::{AppError, AppState};
use crate::db::schema::orgs;
use crate::domain::alerts::{AlertKind, Thresholds};
use crate::domain::calendar::{self, human_date};
use crate::domain::money::{display_amount, from_minor_units, group_thousands, minor_digits};
use crate::report::credits;
use crate::store::alerts::{self as store, Setting};
use crate::store::plans;

/// The largest budget accepted, in major units.
const MAX_BUDGET: i64 = 1_000_000_000;

pub struct CrossingView {
    pub when: String,
    pub what: String,
    pub figures: String,
}

pub struct AttemptView {
    pub when: String,
    pub result: String,
    pub latency: String,
}

pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub created: String,
    pub state: String,
    pub next_attempt: Option<String>,
    pub attempts: Vec<AttemptView>,
    pub can_retry: bool,
}

/// What the form fields show, and an error for one of them.
#[derive(Default)]
struct Forms {
    thresholds: Option<String>,
    budget: Option<String>,
    budget_stop: Option<bool>,
    webhook_url: Option<String>,
    error: Option<(&'static str, String)>,
    message: Option<String>,
    new_secret: Option<String>,
}

#[derive(Template)]
#[template(path = "credits/alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    zone: String,
    can_edit: bool,
    edit_note: Option<String>,
    currency: String,
    thresholds: String,
    budget: String,
    budget_stop: bool,
    budget_status: Option<String>,
    webhook_url: String,
    has_secret: bool,
    error_field: &'static str,
    error: Option<String>,
    message: Option<String>,
    new_secret: Option<String>,
    crossings: Vec<CrossingView>,
    deliveries: Vec<DeliveryView>,
}

fn when(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .format("%-d %b %Y, %H:%M:%S %Z")
        .to_string()
}

/// A crossing in words, for the pages.
pub fn describe_crossing(row: &store::AlertRow, currency: &str) -> (String, String) {
    match AlertKind::parse(&row.kind) {
        Some(AlertKind::Budget) => (
            format!(
                "{}% of the budget of the period from {}",
                row.threshold,
                human_date(row.scope_start)
            ),
            format!(
                "{} charged of {}",
                display_amount(row.used, currency),
                display_amount(row.of_total, currency)
            ),
        ),
        _ => (
            format!(
                "{}% of the daily additional limit on {}",
                row.threshold,
                human_date(row.scope_start)
            ),
            format!(
                "{} of {} additional credits",
                group_thousands(row.used),
                group_thousands(row.of_total)
            ),
        ),
    }
}

async fn render(
    state: &AppState,
    signed_in: SignedIn,
    status: StatusCode,
    forms: Forms,
) -> Result<HttpResponse, AppError> {
    let org = signed_in.org.clone();
    let now = state.clock.now();
    let (settings, crossings, deliveries, summary, currency) = state
        .db(move |conn| {
            let settings = store::settings(conn, org.id)?;
            let crossings = store::recent_alerts(conn, org.id, 200)?;
            let deliveries = store::recent_deliveries(conn, org.id, 100)?;
            let summary = credits::summary(conn, &org, now)?;
            let day = calendar::local_day(now, org.zone());
            let (_, plan) = plans::for_day(conn, day)?;
            Ok((
                settings,
                crossings,
                deliveries,
                summary,
                plan.currency().to_string(),
            ))
        })
        .await?;
    let zone = signed_in.org.zone();
    let budget_status = match (settings.budget_minor, &summary.billing) {
        (Some(budget), Some(billing)) => Some(format!(
            "This period ({} – {}): {} charged of {}{}.",
            human_date(billing.period.start),
            human_date(billing.period.last_day()),
            display_amount(billing.amount_so_far_minor, &currency),
            display_amount(budget, &currency),
            if budget > 0 {
                format!(
                    " ({}%)",
                    i128::from(billing.amount_so_far_minor) * 100 / i128::from(budget)
                )
            } else {
                String::new()
            }
        )),
        (Some(budget), None) => Some(format!(
            "Budget {} per billing period; no period has started yet.",
            display_amount(budget, &currency)
        )),
        _ => None,
    };
    let edit_note = signed_in.limit_change_refusal().map(|r| r.to_string());
    let (error_field, error) = match forms.error {
        Some((field, message)) => (field, Some(message)),
        None => ("", None),
    };
    let view = AlertsPage {
        chrome: Chrome::new(&signed_in, "alerts"),
        zone: zone.name().to_string(),
        can_edit: edit_note.is_none(),
        edit_note,
        thresholds: forms
            .thresholds
            .unwrap_or_else(|| settings.thresholds.replace(',', ", ")),
        budget: forms.budget.unwrap_or_else(|| {
            settings.budget_minor.map_or(String::new(), |b| {
                from_minor_units(b, &currency).to_string()
            })
        }),
        budget_stop: forms.budget_stop.unwrap_or(settings.budget_stop),
        budget_status,
        webhook_url: forms
            .webhook_url
            .unwrap_or_else(|| settings.webhook_url.clone().unwrap_or_default()),
        has_secret: settings.has_secret,
        error_field,
        error,
        message: forms.message,
        new_secret: forms.new_secret,
        crossings: crossings
            .iter()
            .map(|row| {
                let (what, figures) = describe_crossing(row, &currency);
                CrossingView {
                    when: when(crate::store::from_db_time(row.crossed_at), zone),
                    what,
                    figures,
                }
            })
            .collect(),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                can_retry: d.state != store::State::Delivered.as_str(),
                next_attempt: (d.state == store::State::Pending.as_str())
                    .then(|| when(d.next_attempt_at, zone)),
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                created: when(d.created_at, zone),
                state: d.state,
                attempts: d
                    .attempts
                    .iter()
                    .map(|a| AttemptView {
                        when: when(a.at, zone),
                        result: match (&a.error, a.status_code) {
                            (None, Some(code)) => format!("{code} delivered"),
                            (Some(error), _) => error.clone(),
                            (None, None) => "delivered".into(),
                        },
                        latency: format!("{} ms", group_thousands(a.latency_ms)),
                    })
                    .collect(),
            })
            .collect(),
        currency,
    };
    page(status, &view)
}

/// Who changes a setting, of which org, when.
struct Editor {
    org_id: crate::domain::types::OrgId,
    who: String,
    now: DateTime<Utc>,
}

/// Only a super admin of a paid edition changes alert settings (as the limit, R2).
fn require_editor(
    state: &AppState,
    signed_in: &SignedIn,
    csrf_token: &str,
) -> Result<Editor, AppError> {
    signed_in.require_credits_access()?;
    signed_in.check_csrf(csrf_token)?;
    if let Some(reason) = signed_in.limit_change_refusal() {
        return Err(AppError::Forbidden(reason.to_string()));
    }
    Ok(Editor {
        org_id: signed_in.org.id,
        who: signed_in.user.email.clone(),
        now: state.clock.now(),
    })
}

fn back(message: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/apis/credits/alerts?saved={message}"),
        ))
        .finish()
}

#[derive(Deserialize)]
pub struct ThresholdsForm {
    #[serde(default)]
    thresholds: String,
    #[serde(default)]
    csrf_token: String,
    /// `credits` when sent from the Credits tab, which it returns to.
    #[serde(default)]
    from: String,
}

/// After a saved setting: back to the Credits tab (with its message) when the form was there,
/// else to the Alerts page.
fn saved(req: &HttpRequest, state: &AppState, from: &str, code: &str) -> HttpResponse {
    if from == "credits" {
        super::credits::redirect_with_flash(req, state, &format!("alerts-{code}"))
    } else {
        back(code)
    }
}

pub async fn set_thresholds(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<ThresholdsForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, who, now } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let thresholds: Thresholds = match form.thresholds.parse() {
        Ok(t) => t,
        Err(e) => {
            let forms = Forms {
                thresholds: Some(form.thresholds.chars().take(80).collect()),
                error: Some(("thresholds", e.to_string())),
                ..Forms::default()
            };
            return render(&state, signed_in, StatusCode::UNPROCESSABLE_ENTITY, forms).await;
        }
    };
    let new = thresholds.to_string();
    state
        .db(move |conn| {
            Ok(store::change_setting(
                conn,
                store::Change {
                    org_id,
                    by: &who,
                    now,
                },
                Setting::Thresholds,
                |s| s.thresholds.clone(),
                new.clone(),
                |conn| {
                    diesel::update(orgs::table.find(org_id))
                        .set(orgs::alert_thresholds.eq(&new))
                        .execute(conn)
                },
            )?)
        })
        .await?;
    state.cache.invalidate_org(org_id);
    Ok(saved(&req, &state, &form.from, "thresholds"))
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    budget: String,
    #[serde(default)]
    budget_stop: Option<String>,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    from: String,
}

/// A budget as typed, in the plan's currency: blank for none, else an amount with at most the
/// currency's decimals.
fn parse_budget(text: &str, currency: &str) -> Result<Option<i64>, String> {
    let text = text.trim().replace(',', "");
    if text.is_empty() {
        return Ok(None);
    }
    let amount: Decimal = text
        .parse()
        .map_err(|_| format!("“{text}” is not an amount: write it like 500 or 500.00."))?;
    if amount.is_sign_negative() || amount > Decimal::from(MAX_BUDGET) {
        return Err(format!(
            "The budget is an amount from 0 to {} {currency}.",
            group_thousands(MAX_BUDGET)
        ));
    }
    let digits = minor_digits(currency);
    if amount.normalize().scale() > digits {
        return Err(format!(
            "{currency} amounts have at most {digits} decimals."
        ));
    }
    Ok(Some(crate::domain::money::to_minor_units(amount, currency)))
}

pub async fn set_budget(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<BudgetForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, who, now } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let day = signed_in.org.local_day(now);
    let currency = state
        .db(move |conn| Ok(plans::for_day(conn, day)?.1.currency().to_string()))
        .await?;
    let stop = form.budget_stop.is_some();
    let budget = match parse_budget(&form.budget, &currency) {
        Ok(b) => b,
        Err(message) => {
            let forms = Forms {
                budget: Some(form.budget.chars().take(40).collect()),
                budget_stop: Some(stop),
                error: Some(("budget", message)),
                ..Forms::default()
            };
            return render(&state, signed_in, StatusCode::UNPROCESSABLE_ENTITY, forms).await;
        }
    };
    // The amount and "stop" are one setting: a batch never sees one changed without the other.
    let shown = move |budget: Option<i64>, stop: bool| match budget {
        None => "none".to_string(),
        Some(b) if stop => format!("{}, calls stop at it", display_amount(b, &currency)),
        Some(b) => display_amount(b, &currency),
    };
    state
        .db(move |conn| {
            Ok(store::change_setting(
                conn,
                store::Change {
                    org_id,
                    by: &who,
                    now,
                },
                Setting::Budget,
                |s| shown(s.budget_minor, s.budget_stop),
                shown(budget, stop),
                |conn| {
                    diesel::update(orgs::table.find(org_id))
                        .set((orgs::budget_minor.eq(budget), orgs::budget_stop.eq(stop)))
                        .execute(conn)
                },
            )?)
        })
        .await?;
    state.cache.invalidate_org(org_id);
    Ok(saved(&req, &state, &form.from, "budget"))
}

#[derive(Deserialize)]
pub struct WebhookForm {
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn set_webhook(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<WebhookForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, who, now } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let url = form.webhook_url.trim().to_string();
    if !url.is_empty()
        && let Err(message) = crate::webhooks::check_url(&url)
    {
        let forms = Forms {
            webhook_url: Some(url.chars().take(200).collect()),
            error: Some(("webhook_url", message)),
            ..Forms::default()
        };
        return render(&state, signed_in, StatusCode::UNPROCESSABLE_ENTITY, forms).await;
    }
    let new_url = (!url.is_empty()).then_some(url);
    let new_secret = state
        .db(move |conn| {
            store::set_webhook_url(conn, org_id, new_url.as_deref(), &who, now)?;
            // A first URL gets a secret at once, shown once.
            if new_url.is_some() && !store::settings(conn, org_id)?.has_secret {
                return Ok(Some(store::new_webhook_secret(conn, org_id, &who, now)?));
            }
            Ok(None)
        })
        .await?;
    match new_secret {
        Some(secret) => {
            let forms = Forms {
                message: Some("The webhook URL is saved.".into()),
                new_secret: Some(secret),
                ..Forms::default()
            };
            render(&state, signed_in, StatusCode::OK, forms).await
        }
        None => Ok(back("webhook")),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn rotate_secret(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, who, now } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let secret = state
        .db(move |conn| Ok(store::new_webhook_secret(conn, org_id, &who, now)?))
        .await?;
    let forms = Forms {
        message: Some("A new signing secret is in force; the old one no longer signs.".into()),
        new_secret: Some(secret),
        ..Forms::default()
    };
    render(&state, signed_in, StatusCode::OK, forms).await
}

pub async fn send_test(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, now, .. } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let name = signed_in.org.name.clone();
    let queued = state
        .db(move |conn| {
            if store::webhook_of(conn, org_id)?.is_none() {
                return Ok(false);
            }
            let event = crate::webhooks::test_event(org_id, &name, now);
            store::enqueue(conn, org_id, &event, Utc::now())?;
            Ok(true)
        })
        .await?;
    if !queued {
        let forms = Forms {
            error: Some(("webhook_url", "Set a webhook URL first.".into())),
            ..Forms::default()
        };
        return render(&state, signed_in, StatusCode::UNPROCESSABLE_ENTITY, forms).await;
    }
    Ok(back("test"))
}

pub async fn retry_now(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let Editor { org_id, .. } = require_editor(&state, &signed_in, &form.csrf_token)?;
    let id: i64 = path.parse().map_err(|_| AppError::NotFound)?;
    let found = state
        .db(move |conn| Ok(store::retry_now(conn, org_id, id, Utc::now())?))
        .await?;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(back("retry"))
}

/// The message after a redirect, from its `saved` code.
pub fn saved_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "thresholds" => "The alert thresholds are saved.",
        "budget" => "The budget is saved.",
        "webhook" => "The webhook URL is saved.",
        "test" => "A test event is queued; its delivery shows below within seconds.",
        "retry" => "The delivery is queued to be sent again now.",
        _ => return None,
    })
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

pub async fn alerts_page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let forms = Forms {
        message: query
            .saved
            .as_deref()
            .and_then(saved_message)
            .map(str::to_string),
        ..Forms::default()
    };
    render(&state, signed_in, StatusCode::OK, forms).await
}
