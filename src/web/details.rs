//! View details: per-day usage and amounts for a range (the last 30 days by default) with a chart,
//! breakdowns by operation and client and the current period's projection; the same days as CSV
//! and as a PDF statement. Each handler parses, asks `report::details`, and renders.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::chart::{Chart, chart};
use super::chrome::Chrome;
use super::range::{RangeQuery, parse_range, range_query};
use super::respond::{self, page, slug};
use super::session::SignedIn;
use super::{AppError, AppState};
use crate::domain::calendar::human_date;
use crate::domain::money::{display_amount, format_minor, group_thousands};
use crate::domain::types::DayRange;
use crate::report::details::{self, DetailsReport, Share, largest};

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

/// What the page shows of the range's figures; absent when the range was not understood.
struct Figures {
    range_text: String,
    query: String,
    rows: Vec<RowView>,
    total_credits: String,
    total_additional: String,
    total_amount: String,
    total_amount_plain: String,
    currency: String,
    chart: Chart,
    by_operation: Vec<(String, String, String, String)>,
    by_client: Vec<(String, String, String, String)>,
    by_user: Vec<(String, String, String, String)>,
    period_text: Option<String>,
    period_so_far: String,
    projection: Option<String>,
    projection_basis: Option<String>,
}

#[derive(Template)]
#[template(path = "credits/details.html")]
struct DetailsPage {
    chrome: Chrome,
    error: Option<String>,
    from: String,
    to: String,
    zone: String,
    figures: Option<Figures>,
    last_30_query: String,
    period_query: Option<String>,
    previous_query: Option<String>,
}

/// Rows of a cost breakdown on the page before the rest is summed up in one row (the CSV has all).
const SHOWN: usize = 25;

fn shares(list: &[Share], currency: &str) -> Vec<(String, String, String, String)> {
    list.iter()
        .map(|s| {
            (
                s.name.clone(),
                group_thousands(s.credits),
                group_thousands(s.additional),
                format_minor(s.amount_minor, currency),
            )
        })
        .collect()
}

fn figures(report: &DetailsReport) -> Figures {
    let days = &report.days;
    let c = &days.currency;
    let rows = days
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
            amount: format_minor(l.amount_minor, c),
            in_progress: l.in_progress,
        })
        .collect();
    let range = days.range;
    Figures {
        range_text: format!(
            "{} – {} ({} days)",
            human_date(range.from()),
            human_date(range.to()),
            range.day_count()
        ),
        query: range_query(range),
        rows,
        total_credits: group_thousands(days.totals.credits),
        total_additional: group_thousands(days.totals.additional),
        total_amount: display_amount(days.totals.amount_minor, c),
        total_amount_plain: format_minor(days.totals.amount_minor, c),
        currency: c.clone(),
        chart: chart(&days.lines),
        by_operation: shares(&largest(&report.costs.by_operation, SHOWN, "operations"), c),
        by_client: shares(&largest(&report.costs.by_client, SHOWN, "clients"), c),
        by_user: shares(&largest(&report.costs.by_user, SHOWN, "users"), c),
        period_text: report.projection.map(|p| {
            format!(
                "{} – {}",
                human_date(p.period.start),
                human_date(p.period.last_day())
            )
        }),
        period_so_far: report
            .projection
            .map_or_else(String::new, |p| display_amount(p.so_far_minor, c)),
        projection: report
            .projection
            .map(|p| display_amount(p.projected_minor, c)),
        projection_basis: report.projection.map(|p| {
            let b = p.basis;
            let days = |n: i64| if n == 1 { "1 day".to_string() } else { format!("{n} days") };
            if b.completed_days == 0 {
                format!(
                    "Basis: today's amount so far ({}) for each of the {} left in the period, today included; no full day yet.",
                    display_amount(b.rate_minor, c),
                    days(b.days_to_come)
                )
            } else {
                format!(
                    "Basis: the average of the {} so far this period ({} a day) for each of the {} left, today included.",
                    if b.completed_days == 1 { "1 full day".to_string() } else { format!("{} full days", b.completed_days) },
                    display_amount(b.rate_minor, c),
                    days(b.days_to_come)
                )
            }
        }),
    }
}

pub async fn details_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let now = state.clock.now();
    let today = signed_in.org.local_day(now);
    let current = signed_in.org.current_period(today);
    let period_query = current.map(|p| format!("from={}&to={}", p.start, p.last_day()));
    // The period before this one (R7), for stepping back a month at a time.
    let previous_query = current
        .filter(|p| p.index > 0)
        .zip(signed_in.org.billing_anchor)
        .map(|(p, anchor)| crate::domain::calendar::billing_period(anchor, p.index - 1))
        .map(|p| format!("from={}&to={}", p.start, p.last_day()));
    let mut view = DetailsPage {
        chrome: Chrome::new(&signed_in, "details"),
        error: None,
        from: String::new(),
        to: String::new(),
        zone: signed_in.org.zone().name().to_string(),
        figures: None,
        last_30_query: range_query(DayRange::ending_on(today, 30)),
        period_query,
        previous_query,
    };
    let range = match parse_range(req.query_string(), today) {
        Ok(range) => range,
        Err(message) => {
            let typed = RangeQuery::raw(req.query_string());
            view.error = Some(message);
            view.from = typed.from.unwrap_or_default().chars().take(40).collect();
            view.to = typed.to.unwrap_or_default().chars().take(40).collect();
            return page(StatusCode::BAD_REQUEST, &view);
        }
    };
    let org = signed_in.org.clone();
    let report = state
        .db(move |conn| Ok(details::details(conn, &org, range, now)?))
        .await?;
    view.from = range.from().to_string();
    view.to = range.to().to_string();
    view.figures = Some(figures(&report));
    page(StatusCode::OK, &view)
}

/// The report of an export's range; a range that is not understood is a 400 page.
async fn export_report(
    req: &HttpRequest,
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<DetailsReport, AppError> {
    signed_in.require_credits_access()?;
    let now = state.clock.now();
    let range = parse_range(req.query_string(), signed_in.org.local_day(now))
        .map_err(AppError::bad_request)?;
    let org = signed_in.org.clone();
    state
        .db(move |conn| Ok(details::details(conn, &org, range, now)?))
        .await
}

fn file_name(report: &DetailsReport, extension: &str) -> String {
    format!(
        "creditmeter-{}-{}-{}.{extension}",
        slug(&report.org_name),
        report.days.range.from(),
        report.days.range.to()
    )
}

/// A name as a spreadsheet cell: one that a spreadsheet would take for a formula (starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, which shows it as text.
fn spreadsheet_safe(name: &str) -> String {
    if name.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{name}")
    } else {
        name.to_string()
    }
}

/// One CSV row (SPEC §3): `day,credits,additional,amount`, the amount as `6.80`.
#[derive(serde::Serialize)]
struct CsvRow {
    day: chrono::NaiveDate,
    credits: i64,
    additional: i64,
    amount: String,
}

pub async fn details_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    let report = export_report(&req, &state, &signed_in).await?;
    let currency = &report.days.currency;
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // `by=operation`, `by=client` or `by=user`: the cost breakdown instead of the days.
    let by = req
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("by="));
    if let Some(by) = by {
        let (shares, name) = match by {
            "operation" => (&report.costs.by_operation, "operation"),
            "client" => (&report.costs.by_client, "client"),
            "user" => (&report.costs.by_user, "user"),
            _ => return Err(AppError::invalid("by= takes operation, client or user")),
        };
        writer.write_record([name, "credits", "additional", "amount"])?;
        for share in shares {
            writer.write_record([
                spreadsheet_safe(&share.name),
                share.credits.to_string(),
                share.additional.to_string(),
                format_minor(share.amount_minor, currency),
            ])?;
        }
        let body = writer
            .into_inner()
            .map_err(|e| AppError::internal(e.into_error()))?;
        return Ok(respond::csv(
            &file_name(&report, &format!("{by}.csv")),
            body,
        ));
    }
    for l in &report.days.lines {
        writer.serialize(CsvRow {
            day: l.local_day,
            credits: l.credits,
            additional: l.additional,
            amount: format_minor(l.amount_minor, currency),
        })?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| AppError::internal(e.into_error()))?;
    Ok(respond::csv(&file_name(&report, "csv"), body))
}

pub async fn details_pdf(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    let report = export_report(&req, &state, &signed_in).await?;
    let name = file_name(&report, "pdf");
    let bytes =
        web::block(move || crate::pdf::render(&crate::pdf::documents::details_document(&report)))
            .await?;
    Ok(respond::pdf(&req, &name, bytes))
}
