//! A fuzz run over every input of the product (issue 15): form fields, query parameters, path
//! parameters, JSON and NDJSON bodies and content types, on every route, against one real server.
//! Every answer must be below 500, and a refused request must change nothing (the day's usage, the
//! limit). `FUZZ_CASES` sets the number of generated requests (2,000 by default, as `.ci/run`
//! runs it; `FUZZ_CASES=100000 cargo test --test it fuzz -- --nocapture` for a long run); the
//! count and the statuses seen are printed.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;

use crate::common::{self, TestApp, fixed, http};
use creditmeter::domain::allowance::Edition;

/// Text a user or an attacker may type: anything printable, control characters, separators,
/// percent escapes, long runs, numbers at the edges.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[ -~]{0,40}",
        "[\\x00-\\x1f%&=+;#?/\\\\\"'<>]{0,12}",
        Just(String::new()),
        Just("9".repeat(400)),
        (any::<i64>()).prop_map(|n| n.to_string()),
        Just("2026-03-10".to_string()),
        Just("0000-01-01".to_string()),
        Just("-1".to_string()),
        Just("1e9".to_string()),
        Just("%00%ff".to_string()),
    ]
}

/// One generated request: method, path with query, headers, body.
#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// Form fields; the CSRF token is added when sent: the right one, or `Some(text)`.
    Form(Vec<(String, String)>, Option<String>),
}

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Body,
    /// Signed in (pages) or with the org's token (API).
    authenticated: bool,
}

pub(crate) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn request() -> impl Strategy<Value = Request> {
    let method = prop_oneof![
        4 => Just("GET".to_string()),
        4 => Just("POST".to_string()),
        1 => Just("PUT".to_string()),
        1 => Just("DELETE".to_string()),
        1 => Just("HEAD".to_string()),
    ];
    let path = prop_oneof![
        4 => Just("/api/v1/consume".to_string()),
        4 => Just("/api/v1/usage".to_string()),
        1 => Just("/api/v1/credits".to_string()),
        3 => (text(), text()).prop_map(|(f, t)| format!("/api/v1/usage/daily?from={}&to={}", percent(&f), percent(&t))),
        3 => (text(), text(), prop_oneof![Just("details"), Just("details.csv"), Just("details.pdf")])
            .prop_map(|(f, t, p)| format!("/apis/credits/{p}?from={}&to={}", percent(&f), percent(&t))),
        1 => "[a-zA-Z0-9=&%_.+-]{0,40}".prop_map(|q| format!("/apis/credits/details?{q}")),
        1 => text().prop_map(|n| format!("/apis/credits/statements/{}.pdf", percent(&n))),
        4 => Just("/apis/credits/limit".to_string()),
        2 => prop_oneof![
            Just("thresholds"),
            Just("budget"),
            Just("webhook"),
            Just("secret"),
            Just("test")
        ]
        .prop_map(|p| format!("/apis/credits/alerts/{p}")),
        1 => text().prop_map(|id| format!("/apis/credits/alerts/deliveries/{}/retry", percent(&id))),
        1 => text().prop_map(|q| format!("/apis/credits/alerts?saved={}", percent(&q))),
        1 => Just("/apis/credits".to_string()),
        1 => Just("/apis/credits/audit".to_string()),
        1 => Just("/apis/credits/statements".to_string()),
        3 => Just("/login".to_string()),
        1 => Just("/logout".to_string()),
        1 => Just("/healthz".to_string()),
        1 => Just("/metrics".to_string()),
        1 => text().prop_map(|p| format!("/{}", percent(&p))),
        1 => text().prop_map(|p| format!("/api/v1/{}", percent(&p))),
    ];
    let json_body = prop_oneof![
        (text(), text(), text()).prop_map(|(c, id, op)| {
            format!(
                "{{\"credits\": {c}, \"id\": {}, \"operation\": {}}}",
                serde_json::json!(id),
                serde_json::json!(op)
            )
            .into_bytes()
        }),
        (any::<i64>(), text(), text()).prop_map(|(c, id, at)| {
            serde_json::json!([{"id": id, "timestamp": at, "credits": c}])
                .to_string()
                .into_bytes()
        }),
        (1i64..100, text()).prop_map(|(c, id)| serde_json::json!({"credits": c, "id": id})
            .to_string()
            .into_bytes()),
    ];
    let csrf = prop_oneof![Just(None), text().prop_map(Some)];
    let form_body = prop_oneof![
        (text(), csrf.clone())
            .prop_map(|(limit, csrf)| Body::Form(vec![("additional_limit".into(), limit)], csrf)),
        (text(), text(), csrf.clone()).prop_map(|(e, p, csrf)| {
            Body::Form(vec![("email".into(), e), ("password".into(), p)], csrf)
        }),
        (text(), csrf.clone())
            .prop_map(|(t, csrf)| Body::Form(vec![("thresholds".into(), t)], csrf)),
        (text(), text(), csrf.clone()).prop_map(|(b, stop, csrf)| {
            Body::Form(
                vec![("budget".into(), b), ("budget_stop".into(), stop)],
                csrf,
            )
        }),
        (text(), csrf).prop_map(|(url, csrf)| Body::Form(vec![("webhook_url".into(), url)], csrf)),
    ];
    let body = prop_oneof![
        3 => json_body.prop_map(Body::Bytes),
        3 => form_body,
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Body::Bytes),
        1 => Just(Body::Bytes(Vec::new())),
    ];
    let content_type = prop_oneof![
        Just(Some("application/json".to_string())),
        Just(Some("application/x-ndjson".to_string())),
        Just(Some("application/x-www-form-urlencoded".to_string())),
        Just(None),
        text().prop_map(Some),
    ];
    (method, path, content_type, body, any::<bool>()).prop_map(
        |(method, path, content_type, body, authenticated)| Request {
            method,
            path,
            content_type,
            body,
            authenticated,
        },
    )
}

#[test]
fn fuzz_every_input_gets_a_4xx_or_a_success_and_refusals_change_nothing() {
    let cases: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("fuzz", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    let session = app.sign_in(&org.super_admin);
    let auth_header = format!("Bearer {token}");
    // A sign-in form as served (its nonce cookie and token), for forms sent with the right token.
    let login = app.get("/login", None);
    let login_nonce = login.set_cookie("cm_login_csrf").unwrap();
    let login_token = common::hidden_csrf(&login.body).unwrap();
    let cookie = format!("cm_session={}; cm_login_csrf={login_nonce}", session.cookie);
    let statuses: std::cell::RefCell<BTreeMap<u16, u32>> = Default::default();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let result = runner.run(&request(), |r| {
        let before = (
            app.day_totals(org.org_id, "2026-03-10"),
            app.org_limit(org.org_id),
            creditmeter::store::alerts::settings(&mut app.conn(), org.org_id).unwrap(),
        );
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = &r.content_type
            && ct.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            headers.push(("Content-Type", ct));
        }
        if r.authenticated {
            headers.push(("Authorization", &auth_header));
            headers.push(("Cookie", &cookie));
        }
        // Every generated path is a valid URI (text is percent-encoded where it goes).
        prop_assert!(
            ureq::http::Uri::try_from(r.path.as_str()).is_ok(),
            "{}",
            r.path
        );
        let body = match &r.body {
            Body::Bytes(bytes) => bytes.clone(),
            Body::Form(fields, csrf) => {
                let right = if r.path.starts_with("/login") {
                    login_token.clone()
                } else {
                    session.csrf.clone()
                };
                let token = csrf.clone().unwrap_or(right);
                let mut fields: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                fields.push(("csrf_token", &token));
                http::form_encode(&fields).into_bytes()
            }
        };
        let (status, _, _) = http::request_bytes(app.port, &r.method, &r.path, &headers, &body);
        *statuses.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(status < 500, "{} {} answered {status}", r.method, r.path);
        if status >= 400 {
            let after = (
                app.day_totals(org.org_id, "2026-03-10"),
                app.org_limit(org.org_id),
                creditmeter::store::alerts::settings(&mut app.conn(), org.org_id).unwrap(),
            );
            prop_assert_eq!(
                before,
                after,
                "a refused {} {} changed something",
                r.method,
                r.path
            );
        }
        Ok(())
    });
    let statuses = statuses.into_inner();
    eprintln!(
        "fuzz: {cases} generated requests in {:.1} s; statuses {statuses:?}",
        started.elapsed().as_secs_f64()
    );
    result.unwrap();
    assert!(
        statuses.values().sum::<u32>() > cases / 2,
        "most requests were sent"
    );
    // The server still works.
    assert_eq!(
        common::http::request(app.port, "GET", "/healthz", &[], b"").status,
        200
    );
}
