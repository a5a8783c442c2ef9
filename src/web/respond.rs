//! Responses that several routes send the same way: a page, a download (PDF or CSV), and the file
//! names of downloads.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::AppError;

/// Render a template as a page with a status. Every page is either the sign-in form (with its
/// CSRF token) or an org's own figures, so none may be kept by a browser or proxy cache.
pub fn page<T: Template>(status: StatusCode, template: &T) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(template.render()?))
}

/// Serve PDF bytes as a download, or inline for printing (`?disposition=inline`).
pub fn pdf(req: &HttpRequest, name: &str, bytes: Vec<u8>) -> HttpResponse {
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

/// Serve CSV text as a download.
pub fn csv(name: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
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
