//! Issued monthly statements: the list and each statement as a PDF.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::credits::{Chrome, human_date};
use super::details::{pdf_response, plan_section, statement_line};
use super::error::page;
use super::session::SignedIn;
use super::{AppError, AppState};
use crate::domain::money::{display_amount, group_thousands};
use crate::store::{plans, statements};

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
    let org_id = signed_in.org.id;
    let rows = state
        .db(move |conn| Ok(statements::list(conn, org_id)?))
        .await?;
    let zone = signed_in.org.zone();
    let items = rows
        .iter()
        .map(|s| StatementItem {
            number: s.number.clone(),
            period: format!(
                "{} – {}",
                human_date(s.period_start),
                human_date(s.period_end.pred_opt().unwrap_or(s.period_end))
            ),
            total: display_amount(s.total_minor, &s.currency),
            issued: crate::store::from_db_time(s.issued_at)
                .with_timezone(&zone)
                .format("%-d %b %Y")
                .to_string(),
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
        .ok_or(AppError::NotFound)?
        .to_string();
    if number.len() > 64 {
        return Err(AppError::NotFound);
    }
    let org = signed_in.org.clone();
    let (row, plan) = state
        .db(move |conn| {
            let row = statements::by_number(conn, org.id, &number)?.ok_or(AppError::NotFound)?;
            let (_, plan) = plans::for_day(conn, row.period_start)?;
            Ok((row, plan))
        })
        .await?;
    let zone = signed_in.org.zone();
    let c = row.currency.clone();
    let lines = row.lines();
    let last = row.period_end.pred_opt().unwrap_or(row.period_end);
    let doc = crate::pdf::StatementDoc {
        title: "Monthly statement".into(),
        number: format!("Statement {}", row.number),
        org_name: signed_in.org.name.clone(),
        range: format!("{} - {} ({} days)", human_date(row.period_start), human_date(last), lines.len()),
        billing_period: format!("{} - {}, issued {}", human_date(row.period_start), human_date(last), human_date(row.period_end)),
        zone: signed_in.org.timezone.clone(),
        generated: crate::store::from_db_time(row.issued_at).with_timezone(&zone).format("%-d %b %Y %H:%M %Z").to_string(),
        generated_unix: crate::store::from_db_time(row.issued_at).timestamp(),
        currency: c.clone(),
        lines: lines
            .iter()
            .map(|l| statement_line(l.day, l.credits, l.additional, l.amount_minor, &c, false))
            .collect(),
        total_credits: group_thousands(lines.iter().map(|l| l.credits).sum()),
        total_additional: group_thousands(lines.iter().map(|l| l.additional).sum()),
        total: display_amount(row.total_minor, &c),
        plan: plan_section(&plan),
        note: "Issued statements never change. A day's charge is rounded once, to the cent; the total is the sum of the days.".into(),
    };
    let name = format!(
        "creditmeter-{}-{}.pdf",
        super::details::slug(&signed_in.org.name),
        row.number
    );
    let bytes = web::block(move || crate::pdf::render(&doc))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(pdf_response(&req, &name, bytes))
}
