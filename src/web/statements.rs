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
}

#[derive(Template)]
#[template(path = "credits/statements.html")]
struct StatementsPage {
    chrome: Chrome,
    items: Vec<StatementItem>,
}

pub async fn list(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, AppError> {
    signed_in.require_credits_access()?;
    let org = signed_in.org.clone();
    let found = state
        .db(move |conn| Ok(statement::list(conn, &org)?))
        .await?;
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
        })
        .collect();
    page(
        StatusCode::OK,
        &StatementsPage {
            chrome: Chrome::new(&signed_in, "statements"),
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
