//! Issued monthly statements: the list and each statement as a PDF.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::chrome::Chrome;
use super::respond::{self, page, slug};
use super::session::SignedIn;
use super::{AppError, AppState};
use crate::domain::calendar::human_date;
use crate::domain::money::display_amount;
use crate::report::statement;

pub struct StatementItem {
    pub number: String,
    pub period: String,
    pub total: String,
    pub issued: String,
    /// The View details query of the statement's days.
    pub days_query: String,
}

/// The billing period in progress: what it has charged so far, and when it is billed.
pub struct OpenPeriod {
    pub period: String,
    pub so_far: String,
    pub billing_date: String,
    pub days_query: String,
}

#[derive(Template)]
#[template(path = "credits/statements.html")]
struct StatementsPage {
    chrome: Chrome,
    open: Option<OpenPeriod>,
    items: Vec<StatementItem>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let org = signed_in.org.clone();
    let now = state.clock.now();
    let (found, summary) = state
        .db(move |conn| {
            Ok((
                statement::list(conn, &org)?,
                crate::report::credits::summary(conn, &org, now)?,
            ))
        })
        .await?;
    let open = summary.billing.map(|b| OpenPeriod {
        period: format!(
            "{} – {}",
            human_date(b.period.start),
            human_date(b.period.last_day())
        ),
        so_far: display_amount(b.amount_so_far_minor, &b.currency),
        billing_date: human_date(b.period.end),
        days_query: format!(
            "from={}&to={}",
            b.period.start,
            summary.today.local_day.max(b.period.start)
        ),
    });
    let zone = signed_in.org.zone();
    let items = found
        .iter()
        .map(|s| StatementItem {
            number: s.number.clone(),
            period: format!(
                "{} – {}",
                human_date(s.period.start),
                human_date(s.period.last_day())
            ),
            total: display_amount(s.total_minor, &s.currency),
            issued: human_date(s.issued_at.with_timezone(&zone).date_naive()),
            days_query: format!("from={}&to={}", s.period.start, s.period.last_day()),
        })
        .collect();
    page(
        StatusCode::OK,
        &StatementsPage {
            chrome: Chrome::new(&signed_in, "statements"),
            open,
            items,
        },
    )
}

pub async fn pdf(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    file: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let number = file
        .strip_suffix(".pdf")
        .filter(|n| n.len() <= 64)
        .ok_or(AppError::NotFound)?
        .to_string();
    let org = signed_in.org.clone();
    let report = state
        .db(move |conn| statement::by_number(conn, &org, &number)?.ok_or(AppError::NotFound))
        .await?;
    let name = format!(
        "creditmeter-{}-{}.pdf",
        slug(&signed_in.org.name),
        report.item.number
    );
    let (org_name, zone) = (signed_in.org.name.clone(), signed_in.org.zone());
    let bytes = web::block(move || {
        crate::pdf::render(&crate::pdf::documents::statement_document(
            &report, &org_name, zone,
        ))
    })
    .await?;
    Ok(respond::pdf(&req, &name, bytes))
}
