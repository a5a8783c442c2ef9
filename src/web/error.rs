//! The web layer's error policy: every failure becomes a page (or a redirect to sign-in) with a 4xx
//! or 5xx status; user input never causes a 500, and internal details are logged, not shown.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not signed in")]
    SignInRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("page not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::SignInRequired => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::SignInRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
        }
        let (title, message) = match self {
            AppError::Forbidden(m) => ("Access denied", m.as_str()),
            AppError::NotFound => ("Page not found", "There is no page at this address."),
            AppError::BadRequest(m) => ("Bad request", m.as_str()),
            AppError::TooManyRequests(m) => ("Too many attempts", m.as_str()),
            AppError::Unavailable(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    "Something went wrong",
                    "The request could not be completed. Please try again in a moment.",
                )
            }
            AppError::SignInRequired => unreachable!("handled above"),
        };
        let status = self.status_code();
        let page = ErrorPage {
            title,
            message,
            status: status.as_u16(),
        };
        let body = page.render().unwrap_or_else(|_| message.to_string());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}

/// Render a template as a page with a status. Every page is either the sign-in form (with its
/// CSRF token) or an org's own figures, so none may be kept by a browser or proxy cache.
pub fn page<T: Template>(status: StatusCode, template: &T) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(template.render()?))
}
