//! The Credits tab (credit details, the limit form, billing details) and the audit log.

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::chrome::Chrome;
use super::respond::page;
use super::session::{self, SignedIn};
use super::{AppError, AppState};
use crate::domain::calendar::human_date;
use crate::domain::money::{display_amount, group_thousands};
use crate::domain::types::AdditionalLimit;
use crate::report::credits;
use crate::store::limits;

const FLASH_COOKIE: &str = "cm_flash";

#[derive(Clone)]
pub struct BillingView {
    pub period: String,
    pub next_billing_date: String,
    pub amount_so_far: String,
}

#[derive(Template)]
#[template(path = "credits/tab.html")]
struct CreditsTab {
    chrome: Chrome,
    today: String,
    zone: String,
    edition: &'static str,
    free_allowance: String,
    used_today: String,
    unused_today: String,
    free_used: i64,
    free_used_text: String,
    free_max: i64,
    limit_on: bool,
    additional_limit: String,
    additional_used: String,
    additional_remaining: String,
    additional_used_raw: i64,
    additional_max: i64,
    can_edit: bool,
    edit_note: Option<String>,
    form_value: String,
    form_error: Option<String>,
    flash: Option<String>,
    billing: Option<BillingView>,
    alerts: AlertsView,
    prices: super::prices::PricesView,
}

/// The Credits tab's alerts card: the settings in a sentence, the budget's state, the latest
/// crossings.
pub struct AlertsView {
    pub thresholds: String,
    pub budget: Option<String>,
    /// Why calls that need additional credits are refused now, if the budget stops them.
    pub budget_stop_reason: Option<String>,
    pub latest: Vec<(String, String)>,
    /// The forms' values: thresholds as typed ("50, 80, 100"), the budget ("" for none).
    pub thresholds_value: String,
    pub budget_value: String,
    pub budget_stop: bool,
    pub currency: String,
}

fn alerts_view(
    conn: &mut crate::db::DbConn,
    org: &crate::store::orgs::OrgRow,
    data: &credits::CreditsSummary,
    plan: &crate::domain::pricing::PricePlan,
) -> Result<AlertsView, AppError> {
    let currency = plan.currency().to_string();
    let thresholds = org.thresholds();
    let latest = crate::store::alerts::recent_alerts(conn, org.id, 5)?
        .iter()
        .map(|row| super::alerts::describe_crossing(row, &currency))
        .collect();
    let budget = org.budget();
    let budget_stop_reason = match (budget, &data.billing) {
        (Some(cap), Some(billing)) if cap.stop => {
            let additional = data.today.budget.additional_used;
            let next_thousand =
                plan.day_charge_minor(additional + 1000) - plan.day_charge_minor(additional);
            (billing.amount_so_far_minor + next_thousand > cap.amount_minor).then(|| {
                format!(
                    "This period has been charged {} of its {} budget: calls that need additional credits are refused until {} (the next billing date), unless the budget is raised.",
                    display_amount(billing.amount_so_far_minor, &currency),
                    display_amount(cap.amount_minor, &currency),
                    human_date(billing.period.end)
                )
            })
        }
        _ => None,
    };
    Ok(AlertsView {
        thresholds: if thresholds.values().is_empty() {
            "none".into()
        } else {
            thresholds.to_string().replace(',', ", ") + " %"
        },
        budget: budget.map(|cap| {
            format!(
                "{} per billing period{}",
                display_amount(cap.amount_minor, &currency),
                if cap.stop { ", calls stop at it" } else { "" }
            )
        }),
        budget_stop_reason,
        latest,
        thresholds_value: thresholds.to_string().replace(',', ", "),
        budget_value: budget.map_or(String::new(), |cap| {
            crate::domain::money::from_minor_units(cap.amount_minor, &currency).to_string()
        }),
        budget_stop: budget.is_some_and(|cap| cap.stop),
        currency,
    })
}

async fn render_tab(
    state: &AppState,
    signed_in: SignedIn,
    status: StatusCode,
    form_value: Option<String>,
    form_error: Option<String>,
    flash: Option<String>,
    query: &str,
) -> Result<HttpResponse, AppError> {
    let org = signed_in.org.clone();
    let now = state.clock.now();
    let data = match state.cache.credits(org.id) {
        Ok(data) => data,
        Err(generation) => {
            let org_id = org.id;
            let data = state
                .db(move |conn| Ok(credits::summary(conn, &org, now)?))
                .await?;
            state.cache.put_credits(org_id, generation, data)
        }
    };
    let (alerts, (prices, estimate_refused)) = {
        let (org, data, query) = (signed_in.org.clone(), data.clone(), query.to_string());
        state
            .db(move |conn| {
                // Today's plan, read once for both cards.
                let (_, plan) = crate::store::plans::for_day(conn, data.today.local_day)?;
                Ok((
                    alerts_view(conn, &org, &data, &plan)?,
                    super::prices::prices_view(conn, &org, &data, &plan, &query)?,
                ))
            })
            .await?
    };
    let status = if estimate_refused && status == StatusCode::OK {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let b = data.today.budget;
    let billing = data.billing.as_ref().map(|billing| BillingView {
        period: format!(
            "{} – {}",
            human_date(billing.period.start),
            human_date(billing.period.last_day())
        ),
        next_billing_date: human_date(billing.period.end),
        amount_so_far: display_amount(billing.amount_so_far_minor, &billing.currency),
    });
    let used_today = b.free_used + b.additional_used;
    let edit_note = signed_in.limit_change_refusal().map(|r| r.to_string());
    let tab = CreditsTab {
        chrome: Chrome::new(&signed_in, "credits"),
        today: human_date(data.today.local_day),
        zone: signed_in.org.zone().name().to_string(),
        edition: signed_in.org.edition().label(),
        free_allowance: group_thousands(b.free_allowance),
        used_today: group_thousands(used_today),
        unused_today: group_thousands(b.free_remaining()),
        free_used: b.free_used.min(b.free_allowance),
        free_used_text: group_thousands(b.free_used),
        free_max: b.free_allowance.max(1),
        limit_on: b.additional_limit > 0,
        additional_limit: group_thousands(b.additional_limit),
        additional_used: group_thousands(b.additional_used),
        additional_remaining: group_thousands(b.additional_remaining()),
        additional_used_raw: b.additional_used.min(b.additional_limit),
        additional_max: b.additional_limit.max(1),
        can_edit: edit_note.is_none(),
        edit_note,
        form_value: form_value.unwrap_or_else(|| b.additional_limit.to_string()),
        form_error,
        flash,
        billing,
        alerts,
        prices,
    };
    page(status, &tab)
}

pub async fn credits_tab(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let flash = req
        .cookie(FLASH_COOKIE)
        .and_then(|c| flash_message(c.value()));
    let mut response = render_tab(
        &state,
        signed_in,
        StatusCode::OK,
        None,
        None,
        flash.clone(),
        req.query_string(),
    )
    .await?;
    if flash.is_some() {
        response
            .add_removal_cookie(&session::removal(
                FLASH_COOKIE,
                "/apis/credits",
                state.is_https(&req),
            ))
            .map_err(AppError::internal)?;
    }
    Ok(response)
}

/// A 303 to the Credits tab that shows the message of `code` once.
pub fn redirect_with_flash(req: &HttpRequest, state: &AppState, code: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/apis/credits"))
        .cookie(session::cookie(
            FLASH_COOKIE,
            code.to_string(),
            "/apis/credits",
            state.is_https(req),
            Some(CookieDuration::minutes(5)),
        ))
        .finish()
}

/// The flash cookie carries only a code and a number; the text is made here.
fn flash_message(value: &str) -> Option<String> {
    if let Some(code) = value.strip_prefix("alerts-") {
        return super::alerts::saved_message(code).map(str::to_string);
    }
    if let Some(same) = value.strip_prefix("limit-same-") {
        let limit: i64 = same.parse().ok()?;
        return Some(format!(
            "The additional credit limit stays at {} credits per day: nothing changed.",
            group_thousands(limit)
        ));
    }
    let limit: i64 = value.strip_prefix("limit-")?.parse().ok()?;
    Some(if limit == 0 {
        "Additional credits are now off: calls stop when the daily free credits are spent."
            .to_string()
    } else {
        format!(
            "The additional credit limit is now {} credits per day.",
            group_thousands(limit)
        )
    })
}

#[derive(Deserialize)]
pub struct LimitForm {
    #[serde(default)]
    additional_limit: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn set_limit(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<LimitForm>,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    signed_in.check_csrf(&form.csrf_token)?;
    if let Some(reason) = signed_in.limit_change_refusal() {
        return Err(AppError::Forbidden(reason.to_string()));
    }
    let limit = match AdditionalLimit::parse(&form.additional_limit) {
        Ok(limit) => limit,
        Err(e) => {
            let value: String = form.additional_limit.chars().take(40).collect();
            return render_tab(
                &state,
                signed_in,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(value),
                Some(e.to_string()),
                None,
                "",
            )
            .await;
        }
    };
    let now = state.clock.now();
    let org_id = signed_in.org.id;
    let local_today = signed_in.org.local_day(now);
    let who = signed_in.user.email.clone();
    let old = state
        .db(move |conn| Ok(limits::set(conn, org_id, limit, &who, now, local_today)?))
        .await?;
    if old == limit.get() {
        return Ok(redirect_with_flash(
            &req,
            &state,
            &format!("limit-same-{}", limit.get()),
        ));
    }
    state.cache.invalidate_org(org_id);
    tracing::info!(org = %org_id, user = %signed_in.user.email, limit = limit.get(), "additional limit changed");
    Ok(redirect_with_flash(
        &req,
        &state,
        &format!("limit-{}", limit.get()),
    ))
}

pub struct AuditRow {
    pub when: String,
    pub who: String,
    pub what: String,
    pub old_value: String,
    pub new_value: String,
}

#[derive(Template)]
#[template(path = "credits/audit.html")]
struct AuditPage {
    chrome: Chrome,
    zone: String,
    rows: Vec<AuditRow>,
}

pub async fn audit(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let org_id = signed_in.org.id;
    let (changes, settings) = state
        .db(move |conn| {
            Ok((
                limits::recent(conn, org_id, 500)?,
                crate::store::alerts::setting_changes(conn, org_id, 500)?,
            ))
        })
        .await?;
    let zone = signed_in.org.zone();
    let shown = |at: chrono::DateTime<chrono::Utc>| {
        at.with_timezone(&zone)
            .format("%-d %b %Y, %H:%M %Z")
            .to_string()
    };
    let mut dated: Vec<(chrono::DateTime<chrono::Utc>, AuditRow)> = changes
        .iter()
        .map(|c| {
            (
                c.changed_at_utc(),
                AuditRow {
                    when: shown(c.changed_at_utc()),
                    who: c.changed_by.clone(),
                    what: "Additional credit limit".into(),
                    old_value: limit_text(c.old_limit),
                    new_value: limit_text(c.new_limit),
                },
            )
        })
        .collect();
    dated.extend(settings.into_iter().map(|c| {
        let at = crate::store::from_db_time(c.changed_at);
        let mut what = c.setting;
        if let Some(first) = what.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        (
            at,
            AuditRow {
                when: shown(at),
                who: c.changed_by,
                what,
                old_value: c.old_value,
                new_value: c.new_value,
            },
        )
    }));
    // Newest first; a stable sort keeps each source's own order within one instant.
    dated.sort_by_key(|row| std::cmp::Reverse(row.0));
    let rows = dated.into_iter().map(|(_, row)| row).collect();
    page(
        StatusCode::OK,
        &AuditPage {
            chrome: Chrome::new(&signed_in, "audit"),
            zone: zone.name().to_string(),
            rows,
        },
    )
}

fn limit_text(limit: i64) -> String {
    if limit == 0 {
        "Off".into()
    } else {
        format!("{} credits/day", group_thousands(limit))
    }
}
