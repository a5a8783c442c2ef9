//! View details: per-day usage and amounts for a range (the last 30 days by default) with a chart,
//! breakdowns by operation and client, the projection of the current billing period, and the same
//! rows as CSV. The PDF statement is built from the same `DetailsView`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};

use super::api::parse_range;
use super::credits::{Chrome, human_date};
use super::error::page;
use super::session::SignedIn;
use super::{AppError, AppState};
use crate::db::DbConn;
use crate::domain::calendar;
use crate::domain::money::{display_amount, format_minor, group_thousands};
use crate::domain::pricing::PricePlan;
use crate::domain::types::DayRange;
use crate::store::orgs::OrgRow;
use crate::store::{plans, usage};

/// One day of the range, as every export shows it.
#[derive(Clone)]
pub struct DayLine {
    pub local_day: NaiveDate,
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
    pub in_progress: bool,
}

/// Everything the page, the CSV and the PDF show for a range.
pub struct DetailsView {
    pub org_name: String,
    pub zone: String,
    pub range: DayRange,
    pub today: NaiveDate,
    pub currency: String,
    pub plan: PricePlan,
    pub lines: Vec<DayLine>,
    pub total_credits: i64,
    pub total_additional: i64,
    pub total_minor: i64,
    pub by_operation: Vec<(String, i64, i64)>,
    pub by_client: Vec<(String, i64, i64)>,
    pub period: Option<calendar::BillingPeriod>,
    pub period_so_far_minor: i64,
    pub projection_minor: Option<i64>,
    pub generated_at: DateTime<Utc>,
}

pub fn load_details(
    conn: &mut DbConn,
    org: &OrgRow,
    range: DayRange,
    now: DateTime<Utc>,
) -> Result<DetailsView, AppError> {
    let today = org.local_day(now);
    let rows = usage::every_day(conn, org.id, range)?;
    let (_, plan) = plans::for_day(conn, range.to.min(today).max(range.from))?;
    let breakdown = usage::breakdown(conn, org.id, range)?;
    let lines: Vec<DayLine> = rows
        .iter()
        .map(|r| DayLine {
            local_day: r.local_day,
            credits: r.credits,
            additional: r.additional,
            amount_minor: r.amount_minor,
            in_progress: r.local_day == today,
        })
        .collect();
    let period = org.current_period(today);
    let (period_so_far_minor, projection_minor) = match period {
        Some(p) => {
            let days = usage::every_day(
                conn,
                org.id,
                DayRange {
                    from: p.start,
                    to: today.max(p.start),
                },
            )?;
            let so_far: i64 = days.iter().map(|d| d.amount_minor).sum();
            (so_far, Some(project(&days, today, p)))
        }
        None => (0, None),
    };
    Ok(DetailsView {
        org_name: org.name.clone(),
        zone: org.timezone.clone(),
        range,
        today,
        currency: plan.currency.clone(),
        plan,
        total_credits: lines.iter().map(|l| l.credits).sum(),
        total_additional: lines.iter().map(|l| l.additional).sum(),
        total_minor: lines.iter().map(|l| l.amount_minor).sum(),
        lines,
        by_operation: breakdown.by_operation,
        by_client: breakdown.by_client,
        period,
        period_so_far_minor,
        projection_minor,
        generated_at: now,
    })
}

/// The period's total at the current rate: what is charged so far, plus the average of the period's
/// completed days for each day still to come (today counts as to come; with no completed day yet,
/// today's amount so far is the rate).
fn project(days: &[usage::DayRow], today: NaiveDate, period: calendar::BillingPeriod) -> i64 {
    let completed: Vec<i64> = days
        .iter()
        .filter(|d| d.local_day < today)
        .map(|d| d.amount_minor)
        .collect();
    let charged: i64 = completed.iter().sum();
    let today_amount: i64 = days
        .iter()
        .filter(|d| d.local_day == today)
        .map(|d| d.amount_minor)
        .sum();
    let remaining_days = (period.end - today).num_days().max(0);
    let rate = if completed.is_empty() {
        today_amount
    } else {
        charged / completed.len() as i64
    };
    charged + (rate * remaining_days).max(today_amount)
}

/// A file-name-safe slug of the org's name.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "org".into() } else { out }
}

pub struct RowView {
    pub day: String,
    pub short_label: String,
    pub year: String,
    pub weekday: String,
    pub credits: i64,
    pub credits_text: String,
    pub additional: i64,
    pub additional_text: String,
    pub amount: String,
    pub in_progress: bool,
}

pub struct Bar {
    pub x: String,
    pub width: String,
    pub free_y: String,
    pub free_h: String,
    pub add_y: String,
    pub add_h: String,
    pub title: String,
}

pub struct AxisLabel {
    pub x: String,
    pub text: String,
    pub anchor: &'static str,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    pub labels: Vec<AxisLabel>,
    pub max_text: String,
    pub half_text: String,
    pub description: String,
}

const CHART_W: f64 = 900.0;
const CHART_H: f64 = 220.0;
const CHART_LEFT: f64 = 72.0;
const CHART_TOP: f64 = 10.0;

fn chart(lines: &[DayLine]) -> Chart {
    // Coordinates for drawing only: credits are exact integers everywhere else.
    let max = lines.iter().map(|l| l.credits).max().unwrap_or(0).max(1);
    let scale_max = nice_ceiling(max);
    let plot_w = CHART_W - CHART_LEFT - 8.0;
    let slot = plot_w / lines.len().max(1) as f64;
    let bar_w = (slot * 0.75).max(0.5);
    let y = |v: i64| CHART_TOP + CHART_H - (v as f64 / scale_max as f64) * CHART_H;
    let bars = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let free = l.credits - l.additional;
            let x = CHART_LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
            let free_top = y(free);
            let add_top = y(l.credits);
            Bar {
                x: format!("{x:.2}"),
                width: format!("{bar_w:.2}"),
                free_y: format!("{free_top:.2}"),
                free_h: format!("{:.2}", (CHART_TOP + CHART_H - free_top).max(0.0)),
                add_y: format!("{add_top:.2}"),
                add_h: format!("{:.2}", (free_top - add_top).max(0.0)),
                title: format!(
                    "{}: {} credits, {} additional",
                    human_date(l.local_day),
                    group_thousands(l.credits),
                    group_thousands(l.additional)
                ),
            }
        })
        .collect();
    let step = (lines.len() / 5).max(1);
    let labels = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| (i % step == 0 && lines.len() - i > step / 2) || *i + 1 == lines.len())
        .map(|(i, l)| {
            // The first and last labels stay inside the chart.
            let (x, anchor) = if i == 0 {
                (CHART_LEFT, "start")
            } else if i + 1 == lines.len() {
                (CHART_W - 8.0, "end")
            } else {
                (CHART_LEFT + i as f64 * slot + slot / 2.0, "middle")
            };
            AxisLabel {
                x: format!("{x:.2}"),
                text: l.local_day.format("%-d %b").to_string(),
                anchor,
            }
        })
        .collect();
    let busiest = lines.iter().max_by_key(|l| l.credits);
    let description = match busiest {
        Some(b) if b.credits > 0 => format!(
            "Credits used per day. The busiest day was {} with {} credits, {} of them additional.",
            human_date(b.local_day),
            group_thousands(b.credits),
            group_thousands(b.additional)
        ),
        _ => "Credits used per day. No credits were used in this range.".into(),
    };
    Chart {
        bars,
        labels,
        max_text: compact(scale_max),
        half_text: compact(scale_max / 2),
        description,
    }
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: i64) -> i64 {
    let mut power = 1i64;
    while power.saturating_mul(10) <= value {
        power *= 10;
    }
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * power)
        .find(|c| *c >= value)
        .unwrap_or(value)
}

fn compact(value: i64) -> String {
    if value >= 1_000_000 && value % 100_000 == 0 {
        format!("{}.{}M", value / 1_000_000, (value % 1_000_000) / 100_000).replace(".0M", "M")
    } else if value >= 1_000 && value % 1_000 == 0 {
        format!("{}k", value / 1_000)
    } else {
        group_thousands(value)
    }
}

#[derive(Template)]
#[template(path = "credits/details.html")]
struct DetailsPage {
    chrome: Chrome,
    error: Option<String>,
    from: String,
    to: String,
    zone: String,
    range_text: String,
    query: String,
    rows: Vec<RowView>,
    total_credits: String,
    total_additional: String,
    total_amount: String,
    total_amount_plain: String,
    currency: String,
    chart: Option<Chart>,
    by_operation: Vec<(String, String, String)>,
    by_client: Vec<(String, String, String)>,
    period_text: Option<String>,
    period_so_far: String,
    projection: Option<String>,
    last_30_query: String,
    period_query: Option<String>,
}

fn breakdown_rows(list: &[(String, i64, i64)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(name, c, a)| (name.clone(), group_thousands(*c), group_thousands(*a)))
        .collect()
}

fn range_query(range: DayRange) -> String {
    format!("from={}&to={}", range.from, range.to)
}

pub async fn details_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let now = state.clock.now();
    let today = signed_in.org.local_day(now);
    let chrome = Chrome::new(&signed_in, "details");
    let period = signed_in.org.current_period(today);
    let period_query = period.map(|p| format!("from={}&to={}", p.start, p.last_day()));
    let last_30_query = range_query(DayRange::ending_on(today, 30));
    let range = match parse_range(req.query_string(), today) {
        Ok(range) => range,
        Err(message) => {
            let raw =
                actix_web::web::Query::<super::api::RangeQuery>::from_query(req.query_string())
                    .ok();
            let (from, to) = raw
                .map(|q| {
                    (
                        q.from.clone().unwrap_or_default(),
                        q.to.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            let page_view = DetailsPage {
                chrome,
                error: Some(message),
                from: from.chars().take(40).collect(),
                to: to.chars().take(40).collect(),
                zone: signed_in.org.timezone.clone(),
                range_text: String::new(),
                query: String::new(),
                rows: Vec::new(),
                total_credits: String::new(),
                total_additional: String::new(),
                total_amount: String::new(),
                total_amount_plain: String::new(),
                currency: String::new(),
                chart: None,
                by_operation: Vec::new(),
                by_client: Vec::new(),
                period_text: None,
                period_so_far: String::new(),
                projection: None,
                last_30_query,
                period_query,
            };
            return page(StatusCode::BAD_REQUEST, &page_view);
        }
    };
    let org = signed_in.org.clone();
    let view = state
        .db(move |conn| load_details(conn, &org, range, now))
        .await?;
    let c = view.currency.clone();
    let rows = view
        .lines
        .iter()
        .map(|l| RowView {
            day: l.local_day.to_string(),
            short_label: l.local_day.format("%-d %b").to_string(),
            year: l.local_day.format("%Y").to_string(),
            weekday: l.local_day.format("%a").to_string(),
            credits: l.credits,
            credits_text: group_thousands(l.credits),
            additional: l.additional,
            additional_text: group_thousands(l.additional),
            amount: format_minor(l.amount_minor, &c),
            in_progress: l.in_progress,
        })
        .collect();
    let page_view = DetailsPage {
        chrome,
        error: None,
        from: range.from.to_string(),
        to: range.to.to_string(),
        zone: view.zone.clone(),
        range_text: format!(
            "{} – {} ({} days)",
            human_date(range.from),
            human_date(range.to),
            range.day_count()
        ),
        query: range_query(range),
        rows,
        total_credits: group_thousands(view.total_credits),
        total_additional: group_thousands(view.total_additional),
        total_amount: display_amount(view.total_minor, &c),
        total_amount_plain: format_minor(view.total_minor, &c),
        currency: c.clone(),
        chart: Some(chart(&view.lines)),
        by_operation: breakdown_rows(&view.by_operation),
        by_client: breakdown_rows(&view.by_client),
        period_text: view
            .period
            .map(|p| format!("{} – {}", human_date(p.start), human_date(p.last_day()))),
        period_so_far: display_amount(view.period_so_far_minor, &c),
        projection: view.projection_minor.map(|m| display_amount(m, &c)),
        last_30_query,
        period_query,
    };
    page(StatusCode::OK, &page_view)
}

/// A range for an export, or a 400 page.
async fn export_view(
    req: &HttpRequest,
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<DetailsView, AppError> {
    signed_in.require_credits_access()?;
    let now = state.clock.now();
    let range = parse_range(req.query_string(), signed_in.org.local_day(now))
        .map_err(AppError::BadRequest)?;
    let org = signed_in.org.clone();
    state
        .db(move |conn| load_details(conn, &org, range, now))
        .await
}

pub fn file_name(view: &DetailsView, extension: &str) -> String {
    format!(
        "creditmeter-{}-{}-{}.{extension}",
        slug(&view.org_name),
        view.range.from,
        view.range.to
    )
}

pub async fn details_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    let view = export_view(&req, &state, &signed_in).await?;
    let mut body = String::from("day,credits,additional,amount\r\n");
    for l in &view.lines {
        body.push_str(&format!(
            "{},{},{},{}\r\n",
            l.local_day,
            l.credits,
            l.additional,
            format_minor(l.amount_minor, &view.currency)
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file_name(&view, "csv")),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// The plan's slabs as people read them: ("1 to 25,000", "0.14"), ..., ("500,001 and above", ...).
pub fn slab_rows(plan: &PricePlan) -> Vec<(String, String)> {
    let ranges = plan.tier_ranges();
    plan.tiers
        .iter()
        .zip(ranges)
        .map(|(tier, (first, last))| {
            let credits = match last {
                Some(last) => format!("{} to {}", group_thousands(first), group_thousands(last)),
                None => format!("{} and above", group_thousands(first)),
            };
            let mut price = crate::domain::money::format_exact(tier.price, &plan.currency);
            if let Some(flat) = tier.flat.filter(|f| !f.is_zero()) {
                price = format!(
                    "{price} + {} flat",
                    crate::domain::money::format_exact(flat, &plan.currency)
                );
            }
            (credits, price)
        })
        .collect()
}

/// One day of a PDF statement, formatted as every statement shows it.
pub fn statement_line(
    local_day: NaiveDate,
    credits: i64,
    additional: i64,
    amount_minor: i64,
    currency: &str,
    in_progress: bool,
) -> crate::pdf::StatementLine {
    crate::pdf::StatementLine {
        day: format!("{} {}", local_day.format("%a"), human_date(local_day)),
        credits: group_thousands(credits),
        additional: group_thousands(additional),
        amount: format_minor(amount_minor, currency),
        in_progress,
    }
}

/// The slab table of a statement, with its caption and price header.
pub fn plan_section(plan: &PricePlan) -> crate::pdf::PlanSection {
    crate::pdf::PlanSection {
        slabs: slab_rows(plan),
        caption: format!(
            "Additional credits used in a day are priced on these slabs, pro rata per credit; slabs restart every day. Prices per {} credits.",
            group_thousands(plan.block)
        ),
        price_header: format!(
            "Price per {} ({})",
            group_thousands(plan.block),
            plan.currency
        ),
    }
}

/// The statement document of a View details range.
pub fn statement_doc(view: &DetailsView, zone: chrono_tz::Tz) -> crate::pdf::StatementDoc {
    let c = &view.currency;
    crate::pdf::StatementDoc {
        title: "Usage statement".into(),
        number: String::new(),
        org_name: view.org_name.clone(),
        range: format!("{} - {} ({} days)", human_date(view.range.from), human_date(view.range.to), view.range.day_count()),
        billing_period: view
            .period
            .map(|p| format!("{} - {} (next billing date {})", human_date(p.start), human_date(p.last_day()), human_date(p.end)))
            .unwrap_or_else(|| "no additional credits were set up".into()),
        zone: view.zone.clone(),
        generated: view.generated_at.with_timezone(&zone).format("%-d %b %Y %H:%M %Z").to_string(),
        generated_unix: view.generated_at.timestamp(),
        currency: c.clone(),
        lines: view
            .lines
            .iter()
            .map(|l| statement_line(l.local_day, l.credits, l.additional, l.amount_minor, c, l.in_progress))
            .collect(),
        total_credits: group_thousands(view.total_credits),
        total_additional: group_thousands(view.total_additional),
        total: display_amount(view.total_minor, c),
        plan: plan_section(&view.plan),
        note: "A day's charge is rounded once, to the cent; the total is the sum of the days. Today's amount is so far, not final.".into(),
    }
}

/// Serve PDF bytes as a download, or inline for printing (`?disposition=inline`).
pub fn pdf_response(req: &HttpRequest, name: &str, bytes: Vec<u8>) -> HttpResponse {
    let inline = req
        .query_string()
        .split('&')
        .any(|p| p == "disposition=inline");
    let disposition = if inline { "inline" } else { "attachment" };
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // A PDF is not a page: the viewer needs no script or plugin policy, only no framing.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .body(bytes)
}

pub async fn details_pdf(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    let view = export_view(&req, &state, &signed_in).await?;
    let zone = signed_in.org.zone();
    let name = file_name(&view, "pdf");
    let bytes = web::block(move || crate::pdf::render(&statement_doc(&view, zone)))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(pdf_response(&req, &name, bytes))
}
