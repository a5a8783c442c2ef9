//! The web layer's one error type and its policy. Every failure becomes a response with a 4xx or
//! 5xx status: on dashboard pages an HTML page (or a redirect to sign-in), under `/api/v1` a JSON
//! `{"error", "message"}` (see `json_errors`, the scope's middleware). User input never causes a
//! 500; a resource that is only briefly missing (a database connection, the usage writer) is a 503,
//! never a 500. Internal details keep their source chain and are logged, never shown.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde_json::json;

use crate::ledger::writer::WriterError;

pub use super::respond::page;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A page needs a session: the browser is sent to sign in.
    /// With the page that was asked for, which sign-in returns to.
    #[error("not signed in")]
    SignInRequired(Option<String>),
    /// An API call needs a valid bearer token.
    #[error("A valid API token is required: Authorization: Bearer <token>.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("There is no page at this address.")]
    NotFound,
    /// The path exists with other methods, listed for the `Allow` header.
    #[error("This call takes {0} only.")]
    MethodNotAllowed(String),
    /// Input that cannot be used; `code` names the error in JSON answers.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A request the current state refuses (JSON code: the reason's code).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    TooManyRequests(String),
    #[error("no database connection is available")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// A dependency that is briefly out of reach (the database answering a health check).
    #[error("unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the usage could not be recorded")]
    Writer(#[from] WriterError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("template error")]
    Template(#[from] askama::Error),
    #[error("the worker pool is not running")]
    Blocking(#[from] actix_web::error::BlockingError),
    #[error("CSV error")]
    Csv(#[from] csv::Error),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// Input the API cannot use.
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code: "INVALID_REQUEST",
            message: message.into(),
        }
    }

    /// Input a page cannot use.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::invalid(message)
    }

    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(source.into())
    }

    /// The code of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::SignInRequired(_) | AppError::Unauthorized => "UNAUTHORIZED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound => "NOT_FOUND",
            AppError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            AppError::BadRequest { code, .. } | AppError::Conflict { code, .. } => code,
            AppError::TooManyRequests(_) => "TOO_MANY_REQUESTS",
            AppError::Writer(WriterError::Overloaded) => "OVERLOADED",
            AppError::Pool(_) | AppError::Unavailable(_) | AppError::Writer(_) => "UNAVAILABLE",
            AppError::Database(e) if is_unavailable(e) => "UNAVAILABLE",
            AppError::Database(_)
            | AppError::Template(_)
            | AppError::Blocking(_)
            | AppError::Csv(_)
            | AppError::Internal(_) => "INTERNAL",
        }
    }

    /// What a user is told: the error itself when it is about their request, a general sentence
    /// when it is ours.
    fn public_message(&self) -> String {
        match self {
            AppError::Writer(WriterError::Overloaded) => WriterError::Overloaded.to_string(),
            AppError::Writer(_) => {
                "The usage could not be recorded. Retry: what was recorded already counts once."
                    .into()
            }
            AppError::Pool(_) | AppError::Unavailable(_) => {
                "The service is briefly unavailable; nothing was recorded. Retry in a moment."
                    .into()
            }
            e if e.status_code().is_server_error() => {
                "The request could not be completed; nothing was recorded.".into()
            }
            e => e.to_string(),
        }
    }

    /// Log what the user is not told: every 5xx, with its whole source chain.
    fn log(&self) {
        if self.status_code().is_server_error() {
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(self);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!(error = %chain, code = self.code(), "request failed");
        }
    }

    /// The JSON answer of the API scope.
    pub fn json_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, AppError::Unauthorized | AppError::SignInRequired(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let AppError::MethodNotAllowed(allow) = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        let message = match self {
            AppError::NotFound => "There is no such API call.".to_string(),
            other => other.public_message(),
        };
        response.json(json!({ "error": self.code(), "message": message }))
    }
}

/// A database error that means the database is out of reach rather than the query wrong.
fn is_unavailable(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
        | Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)
        | Error::BrokenTransactionManager => true,
        // SQLite's busy timeout ran out: another connection holds the write lock.
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        _ => false,
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
            AppError::SignInRequired(_) => StatusCode::SEE_OTHER,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Pool(_) | AppError::Unavailable(_) | AppError::Writer(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Database(e) if is_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_)
            | AppError::Template(_)
            | AppError::Blocking(_)
            | AppError::Csv(_)
            | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page; the API scope replaces it with `json_response` (see `json_errors`).
    fn error_response(&self) -> HttpResponse {
        self.log();
        if let AppError::SignInRequired(asked) = self {
            let location = match asked.as_deref().and_then(super::auth::safe_return) {
                Some(path) => format!(
                    "/login?{}",
                    serde_urlencoded::to_string([("next", path)]).unwrap_or_default()
                ),
                None => "/login".to_string(),
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let status = self.status_code();
        let title = match status {
            StatusCode::FORBIDDEN => "Access denied",
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "Bad request",
        };
        let message = if status.is_server_error() {
            "The request could not be completed. Please try again in a moment.".to_string()
        } else {
            self.public_message()
        };
        let page = ErrorPage {
            title,
            message: &message,
            status: status.as_u16(),
        };
        let body = page.render().unwrap_or_else(|_| message.clone());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}

/// The API scope's error renderer (`ErrorHandlers::default_handler`): an `AppError` becomes its
/// JSON answer; any other error of the framework (a body too large, a malformed header) becomes
/// JSON with a code from its status. Answers that a handler built itself, such as consume's 429,
/// pass unchanged.
pub fn json_errors<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let Some(error) = res.response().error() else {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    };
    let json = match error.as_error::<AppError>() {
        Some(app) => app.json_response(),
        None => {
            let status = res.status();
            let code = match status {
                StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
                s if s.is_server_error() => "INTERNAL",
                _ => "INVALID_REQUEST",
            };
            let message = if status.is_server_error() {
                "The request could not be completed; nothing was recorded.".to_string()
            } else {
                error.to_string()
            };
            HttpResponse::build(status).json(json!({ "error": code, "message": message }))
        }
    };
    // Keep what the scope added to every answer (nosniff, a challenge), not the old body's type.
    let mut json = json;
    for (name, value) in res.response().headers() {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && !json.headers().contains_key(name)
        {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    let res: ServiceResponse<BoxBody> = ServiceResponse::new(req, json);
    Ok(ErrorHandlerResponse::Response(
        res.map_into_right_body::<B>(),
    ))
}
