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
            disposition_header(disposition, name),
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
            disposition_header("attachment", name),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// `Content-Disposition` for a file name in any script (RFC 6266): an ASCII `filename` for old
/// clients beside `filename*=UTF-8''…` with the name itself.
fn disposition_header(disposition: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .flat_map(ascii_fold)
        .collect::<String>()
        .split('-')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// A character of a file name as ASCII: itself, a Latin letter without its accent, or a dash.
fn ascii_fold(ch: char) -> Vec<char> {
    const FOLDS: [(&str, &str); 14] = [
        ("àáâãäåā", "a"),
        ("çćč", "c"),
        ("èéêëēę", "e"),
        ("ìíîïī", "i"),
        ("ñń", "n"),
        ("òóôõöøō", "o"),
        ("ùúûüū", "u"),
        ("ýÿ", "y"),
        ("śš", "s"),
        ("źżž", "z"),
        ("ł", "l"),
        ("ß", "ss"),
        ("æ", "ae"),
        ("œ", "oe"),
    ];
    if ch.is_ascii_alphanumeric() || ch == '.' {
        return vec![ch.to_ascii_lowercase()];
    }
    let lower = ch.to_lowercase().next().unwrap_or(ch);
    FOLDS
        .iter()
        .find(|(from, _)| from.contains(lower))
        .map_or(vec!['-'], |(_, to)| to.chars().collect())
}

/// A file-name slug of the org's name, in its own script: letters and digits, lowercased, words
/// joined by dashes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars() {
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    // At most 60 characters: a file name stays well under the 255 bytes file systems allow.
    let out: String = out.chars().take(60).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "org".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_keep_every_script_with_an_ascii_fallback() {
        let name = format!(
            "creditmeter-{}-2026-03.pdf",
            slug("Müller & Söhne 株式会社 مؤسسة")
        );
        assert_eq!(name, "creditmeter-müller-söhne-株式会社-مؤسسة-2026-03.pdf");
        let header = disposition_header("attachment", &name);
        assert!(
            header.starts_with("attachment; filename=\"creditmeter-muller-sohne-2026-03.pdf\"; filename*=UTF-8''creditmeter-m%C3%BCller-s%C3%B6hne-"),
            "{header}"
        );
        assert!(header.is_ascii());
    }
}
