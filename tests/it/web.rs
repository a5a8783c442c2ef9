//! The dashboard over HTTP: a real server on a random port with a temporary database.

use crate::common;
use creditmeter::domain::types::OrgId;

use common::{Session, TestApp, fixed};
use creditmeter::domain::allowance::Edition;
use proptest::prelude::*;

const PAGES: [&str; 2] = ["/apis/credits", "/apis/credits/audit"];

fn assert_security_headers(r: &common::Response) {
    let csp = r
        .header("content-security-policy")
        .expect("CSP on every page");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn signed_out_visitors_are_sent_to_sign_in() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    for page in PAGES {
        let r = app.get(page, None);
        assert_eq!(r.status, 303, "{page}");
        // Sign-in returns to the page asked for.
        let expected = format!(
            "/login?next={}",
            page.replace('/', "%2F")
                .replace('?', "%3F")
                .replace('=', "%3D")
                .replace('&', "%26")
        );
        assert_eq!(r.header("location"), Some(expected.as_str()), "{page}");
    }
    let r = app.post_form(
        "/apis/credits/limit",
        &[("additional_limit", "1000"), ("csrf_token", "x")],
        None,
    );
    assert_eq!(r.status, 303);
    assert_eq!(app.org_limit(org.org_id), 0);
    let login = app.get("/login", None);
    assert_eq!(login.status, 200);
    assert_security_headers(&login);
    assert!(login.body.contains("name=\"csrf_token\""));
    let cookie = login.headers_named("set-cookie").join(" ");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

#[test]
fn a_plain_user_gets_403_on_every_page_and_form() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.user);
    for page in PAGES {
        let r = app.get(page, Some(&session));
        assert_eq!(r.status, 403, "{page}");
        assert!(r.body.contains("super admins and admins"), "{}", r.body);
    }
    let csrf =
        common::hidden_csrf(&app.get("/apis/credits", Some(&session)).body).unwrap_or_default();
    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[("additional_limit", "1000"), ("csrf_token", &csrf)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(app.org_limit(org.org_id), 0);
}

#[test]
fn an_admin_reads_everything_but_cannot_change_the_limit() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.admin);
    let tab = app.get("/apis/credits", Some(&session));
    assert_eq!(tab.status, 200);
    assert_security_headers(&tab);
    assert!(
        tab.body.contains("Credit details") && tab.body.contains("52,500"),
        "R1: standard with 10 licences"
    );
    assert!(
        !tab.body.contains("name=\"additional_limit\""),
        "no limit form for an admin"
    );
    assert!(tab.body.contains("Only a super admin can change"));
    assert_eq!(app.get("/apis/credits/audit", Some(&session)).status, 200);
    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[("additional_limit", "1000"), ("csrf_token", &session.csrf)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(app.org_limit(org.org_id), 0);
}

#[test]
fn r2_a_super_admin_sets_the_limit_and_sees_billing_details() {
    let app = TestApp::builder()
        .clock(fixed("2026-01-31T15:00:00Z"))
        .spawn();
    let org = app.seed_org("acme", Edition::Professional, "UTC");
    let session = app.sign_in(&org.super_admin);
    let before = app.get("/apis/credits", Some(&session));
    assert!(before.body.contains("name=\"additional_limit\""));
    assert!(
        !before.body.contains("Billing details"),
        "no billing details before a limit was ever set"
    );

    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[
            ("additional_limit", "25,000"),
            ("csrf_token", &session.csrf),
        ],
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/apis/credits"));
    assert_eq!(app.org_limit(org.org_id), 25_000);

    let flash = r
        .set_cookie("cm_flash")
        .expect("a message for the next page");
    let cookie = format!("cm_session={}; cm_flash={flash}", session.cookie);
    let after = common::http::request(
        app.port,
        "GET",
        "/apis/credits",
        &[("Cookie", &cookie)],
        b"",
    );
    assert!(
        after
            .body
            .contains("The additional credit limit is now 25,000 credits per day."),
        "{}",
        after.body
    );
    assert!(after.body.contains("Billing details"));
    // R7: anchored on 31 Jan, the next billing date is clamped to 28 Feb.
    assert!(
        after.body.contains("31 Jan 2026 – 27 Feb 2026"),
        "{}",
        after.body
    );
    assert!(after.body.contains("28 Feb 2026"));
    assert!(after.body.contains("USD 0.00"));
    assert!(after.body.contains("href=\"/apis/credits/details\""));

    let audit = app.get("/apis/credits/audit", Some(&session));
    assert!(
        audit.body.contains(&org.super_admin)
            && audit.body.contains("25,000 credits/day")
            && audit.body.contains("Off")
    );
    // Every page carries an org's own figures: none may be cached.
    assert_eq!(audit.header("cache-control"), Some("no-store"));
}

#[test]
fn r2_forms_without_the_right_csrf_token_change_nothing() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.super_admin);
    for token in [None, Some("wrong"), Some("")] {
        let mut fields = vec![("additional_limit", "1000")];
        if let Some(t) = token {
            fields.push(("csrf_token", t));
        }
        let r = app.post_signed("/apis/credits/limit", &session, &fields);
        assert_eq!(r.status, 403, "token {token:?}");
        assert_eq!(app.org_limit(org.org_id), 0);
    }
    // Another session's token is not this session's.
    let other = app.sign_in(&org.admin);
    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[("additional_limit", "1000"), ("csrf_token", &other.csrf)],
    );
    assert_eq!(r.status, 403);
    let r = app.post_signed("/logout", &session, &[("csrf_token", "wrong")]);
    assert_eq!(r.status, 403);
    assert_eq!(
        app.get("/apis/credits", Some(&session)).status,
        200,
        "still signed in"
    );
    assert_eq!(app.org_limit(org.org_id), 0);
}

#[test]
fn r2_invalid_limits_get_a_message_and_change_nothing() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.super_admin);
    for (value, message) in [
        ("abc", "whole number"),
        ("-1", "between 0 and 500,000"),
        ("500001", "between 0 and 500,000"),
        ("12.5", "whole number"),
        ("", "Enter the additional credit limit"),
    ] {
        let r = app.post_signed(
            "/apis/credits/limit",
            &session,
            &[("additional_limit", value), ("csrf_token", &session.csrf)],
        );
        assert_eq!(r.status, 422, "{value:?}");
        assert!(r.body.contains(message), "{value:?}: {message:?} missing");
        assert!(r.body.contains("aria-invalid=\"true\""));
        assert_eq!(app.org_limit(org.org_id), 0);
    }
    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[("csrf_token", &session.csrf)],
    );
    assert_eq!(r.status, 422, "a missing field is an empty value");
}

#[test]
fn r2_a_free_edition_org_cannot_set_a_limit() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("tiny", Edition::Free, "UTC");
    let session = app.sign_in(&org.super_admin);
    let tab = app.get("/apis/credits", Some(&session));
    assert_eq!(tab.status, 200);
    assert!(tab.body.contains("5,000"));
    assert!(!tab.body.contains("name=\"additional_limit\""));
    assert!(
        tab.body
            .contains("Free edition does not include additional credits")
    );
    let r = app.post_signed(
        "/apis/credits/limit",
        &session,
        &[("additional_limit", "1000"), ("csrf_token", &session.csrf)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(app.org_limit(org.org_id), 0);
}

#[test]
fn one_orgs_users_never_see_another_orgs_data() {
    let app = TestApp::builder().spawn();
    let a = app.seed_org("alpha", Edition::Enterprise, "Europe/Berlin");
    let b = app.seed_org("beta", Edition::Standard, "UTC");
    let sa = app.sign_in(&a.super_admin);
    let r = app.post_signed(
        "/apis/credits/limit",
        &sa,
        &[("additional_limit", "77777"), ("csrf_token", &sa.csrf)],
    );
    assert_eq!(r.status, 303);
    let sb = app.sign_in(&b.super_admin);
    let tab = app.get("/apis/credits", Some(&sb));
    assert!(tab.body.contains("beta Corp") && !tab.body.contains("alpha Corp"));
    assert!(!tab.body.contains("77,777") && !tab.body.contains("77777"));
    let audit = app.get("/apis/credits/audit", Some(&sb));
    assert!(!audit.body.contains(&a.super_admin) && !audit.body.contains("77,777"));
    // B's super admin's token cannot change A's limit: the form acts on the signed-in org only.
    let r = app.post_signed(
        "/apis/credits/limit",
        &sb,
        &[("additional_limit", "5"), ("csrf_token", &sb.csrf)],
    );
    assert_eq!(r.status, 303);
    assert_eq!(app.org_limit(a.org_id), 77_777);
    assert_eq!(app.org_limit(b.org_id), 5);
}

#[test]
fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let (wrong, s1) = app.try_sign_in(&org.super_admin, "not-the-password");
    let (unknown, s2) = app.try_sign_in("nobody@nowhere.example", "not-the-password");
    assert!(s1.is_none() && s2.is_none());
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, wrong.status);
    let message =
        |r: &common::Response| common::text_of_id(&r.body, "signin-error").unwrap_or_default();
    assert_eq!(message(&wrong), "The email or password is not correct.");
    assert_eq!(message(&unknown), message(&wrong));
}

#[test]
fn sign_in_needs_the_form_token_and_is_throttled() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let r = app.post_form(
        "/login",
        &[("email", &org.admin), ("password", common::PASSWORD)],
        None,
    );
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("cm_session").is_none());
    for _ in 0..5 {
        let (r, _) = app.try_sign_in(&org.admin, "guess");
        assert_eq!(r.status, 401);
    }
    let (r, session) = app.try_sign_in(&org.admin, common::PASSWORD);
    assert_eq!(r.status, 429, "throttled even with the right password");
    assert!(session.is_none());
    assert!(r.body.contains("Too many failed sign-in attempts"));
}

#[test]
fn signing_out_ends_the_session() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.admin);
    let r = app.post_signed("/logout", &session, &[("csrf_token", &session.csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    assert_eq!(app.get("/apis/credits", Some(&session)).status, 303);
    let forged = Session {
        cookie: "0".repeat(64),
        csrf: String::new(),
    };
    assert_eq!(app.get("/apis/credits", Some(&forged)).status, 303);
}

#[test]
fn unknown_pages_and_malformed_forms_are_4xx() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.super_admin);
    assert_eq!(app.get("/no/such/page", Some(&session)).status, 404);
    let cookie = format!("cm_session={}", session.cookie);
    let r = common::http::request(
        app.port,
        "POST",
        "/apis/credits/limit",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"%%%=&&&additional_limit=%ZZ",
    );
    assert!((400..500).contains(&r.status), "{}", r.status);
    assert_eq!(app.org_limit(org.org_id), 0);
    assert_eq!(app.get("/healthz", None).status, 200);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn r2_generated_limit_values_never_cause_a_5xx(value in prop_oneof![
        "\\PC{0,12}",
        "-?[0-9]{1,9}",
        "[0-9]{1,3}(,[0-9]{3}){0,2}",
        "[0-9]{0,6}\\.[0-9]{0,3}",
    ]) {
        let (app, org, session) = shared();
        let before = app.org_limit(*org);
        let r = app.post_signed("/apis/credits/limit", session, &[("additional_limit", &value), ("csrf_token", &session.csrf)]);
        prop_assert!(r.status == 303 || r.status == 422, "{:?} gave {}", value, r.status);
        let after = app.org_limit(*org);
        match creditmeter::domain::types::AdditionalLimit::parse(&value) {
            Ok(limit) => prop_assert_eq!(after, limit.get()),
            Err(_) => { prop_assert_eq!(r.status, 422); prop_assert_eq!(after, before); }
        }
    }
}

/// One server for the generated cases.
fn shared() -> &'static (TestApp, OrgId, Session) {
    static SHARED: std::sync::OnceLock<(TestApp, OrgId, Session)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let app = TestApp::builder().spawn();
        let org = app.seed_org("gen", Edition::Standard, "UTC");
        let session = app.sign_in(&org.super_admin);
        (app, org.org_id, session)
    })
}

/// Issue 17's small things: no token in a GET URL, a favicon, a skip link, sign-in returning to
/// the page asked for (and never to another site), no no-op audit entries, a malformed date
/// kept in its input, the projection's basis stated.
#[test]
fn the_dashboard_minds_the_small_things() {
    use crate::common::http;
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("small", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 100_000, "2026-03-01T08:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-03-08T10:00:00Z", 60_000),
            ("2026-03-09T10:00:00Z", 62_500),
        ],
    );
    let session = app.sign_in(&org.super_admin);

    let page = app.get("/apis/credits/details", Some(&session)).body;
    let range_form = page
        .split("<form method=\"get\"")
        .nth(1)
        .and_then(|f| f.split("</form>").next())
        .expect("the range form");
    assert!(!range_form.contains("csrf_token"), "no token in a GET URL");
    assert!(page.contains("class=\"skip-link\" href=\"#main\"") && page.contains("id=\"main\""));
    assert!(page.contains("rel=\"icon\""));
    let basis = common::text_of_id(&page, "projection-basis").expect("the basis is stated");
    assert!(
        basis.contains("average of the 9 full days") && basis.contains("22 days left"),
        "{basis}"
    );
    let icon = http::request(app.port, "GET", "/favicon.ico", &[], b"");
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));

    // A malformed date stays in its input, beside its message.
    let bad = app.get(
        "/apis/credits/details?from=2026-02-30&to=2026-03-05",
        Some(&session),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("value=\"2026-02-30\"") && bad.body.contains("value=\"2026-03-05\""));
    assert!(bad.body.contains("type=\"text\""));

    // Sign-in returns to the page asked for, and only to a page of this dashboard.
    let asked = "/apis/credits/details?from=2026-03-01&to=2026-03-05";
    let away = http::request(app.port, "GET", asked, &[], b"");
    assert_eq!(away.status, 303);
    let login_at = away.header("location").unwrap().to_string();
    assert!(
        login_at.starts_with("/login?next=%2Fapis%2Fcredits%2Fdetails"),
        "{login_at}"
    );
    for (next, lands) in [
        (asked, asked),
        ("//evil.example/x", "/apis/credits"),
        ("https://evil.example/", "/apis/credits"),
        ("/apis/credits/../../logout", "/apis/credits"),
        ("/apis/credits/%2e%2e/%2e%2e/metrics", "/apis/credits"),
        (
            "/apis/credits/details.csv?from=2026-03-01&to=2026-03-05",
            "/apis/credits",
        ),
        ("/apis/credits@evil.example", "/apis/credits"),
        ("/apis/creditsX", "/apis/credits"),
        ("/apis/credits/\u{e9}", "/apis/credits"),
        (
            "/apis/credits/alerts?saved=budget",
            "/apis/credits/alerts?saved=budget",
        ),
        ("/metrics", "/apis/credits"),
    ] {
        let form = app.get(&format!("/login?next={}", crate::fuzz::percent(next)), None);
        let nonce = form.set_cookie("cm_login_csrf").unwrap();
        let token = common::hidden_csrf(&form.body).unwrap();
        let body = http::form_encode(&[
            ("email", &org.admin),
            ("password", common::PASSWORD),
            ("csrf_token", &token),
            ("next", next),
        ]);
        let cookie = format!("cm_login_csrf={nonce}");
        let r = http::request(
            app.port,
            "POST",
            "/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some(lands), "{next}");
    }

    // Saving the limit it has is not a change, and the message says so.
    for _ in 0..2 {
        let r = app.post_signed(
            "/apis/credits/limit",
            &session,
            &[
                ("additional_limit", "100000"),
                ("csrf_token", &session.csrf),
            ],
        );
        assert_eq!(r.status, 303);
        let flash = r.set_cookie("cm_flash").unwrap();
        let cookies = format!("cm_session={}; cm_flash={flash}", session.cookie);
        let tab = http::request(
            app.port,
            "GET",
            "/apis/credits",
            &[("Cookie", &cookies)],
            b"",
        );
        assert!(
            tab.body.contains("stays at 100,000 credits per day"),
            "{flash}"
        );
    }
    let audit = app.get("/apis/credits/audit", Some(&session)).body;
    assert_eq!(audit.matches("100,000 credits/day").count(), 1, "{audit}");

    // The error page offers the Credits tab, not a sign-in, to whoever sees it.
    let missing = app.get("/apis/credits/nowhere", Some(&session));
    assert_eq!(missing.status, 404);
    assert!(!missing.body.contains("href=\"/login\""));
}

/// The Prices card: the slab the next credit falls in, the next 1,000 credits' price, and the
/// what-if estimator, whose figure is what the ledger then bills for that pattern, to the cent.
#[test]
fn the_estimator_is_what_the_ledger_then_charges() {
    use creditmeter::domain::money::display_amount;
    use creditmeter::ledger::{self, Kind, UsageRequest};
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("estimates", Edition::Standard, "UTC");
    // The last 30 full days (8 Feb – 9 Mar): an uneven pattern, in calls of 1,000 credits.
    let pattern: Vec<(chrono::NaiveDate, i64)> = (0..30)
        .map(|i| {
            let day =
                chrono::NaiveDate::from_ymd_opt(2026, 2, 8).unwrap() + chrono::Duration::days(i);
            (day, 1_000 * (40 + (i * 37) % 60))
        })
        .collect();
    // Usage in calls of 500 credits, which divide the free allowance (52,500) and the limits: the
    // ledger admits them until the limit, as a gateway's calls would be (a call that straddles the
    // limit is refused whole, R4, which an estimate by day cannot know of).
    let replay = |org_id, days: &[(chrono::NaiveDate, i64)]| {
        let requests: Vec<UsageRequest> = days
            .iter()
            .flat_map(|(day, credits)| {
                (0..credits / 500).map(move |n| UsageRequest {
                    org_id,
                    kind: Kind::Metered,
                    event_id: Some(format!("{day}-{n}")),
                    occurred_at: day.and_hms_opt(1, 0, 0).unwrap().and_utc()
                        + chrono::Duration::seconds(n),
                    credits: 500,
                    operation: String::new(),
                    client: String::new(),
                    user: String::new(),
                })
            })
            .collect();
        ledger::apply_batch(&mut app.conn(), app.clock.now(), &requests).unwrap();
    };
    let charged = |org_id, from: chrono::NaiveDate, to: chrono::NaiveDate| -> i64 {
        creditmeter::store::usage::days_in(&mut app.conn(), org_id, from, to)
            .unwrap()
            .iter()
            .map(|d| d.amount_minor)
            .sum()
    };
    app.set_limit_at(org.org_id, 100_000, "2026-02-01T00:00:00Z");
    replay(org.org_id, &pattern);
    let session = app.sign_in(&org.super_admin);

    let tab = app.get("/apis/credits", Some(&session)).body;
    assert!(tab.contains("today&#x27;s next credit") || tab.contains("today's next credit"));
    assert_eq!(
        common::text_of_id(&tab, "next-thousand").unwrap(),
        "The next 1,000 additional credits today cost USD 0.14."
    );
    assert!(
        common::text_of_id(&tab, "full-day")
            .unwrap()
            .contains("USD 8.00")
    );

    let estimate = |query: &str| {
        let page = app.get(&format!("/apis/credits?{query}"), Some(&session));
        assert_eq!(page.status, 200, "{query}");
        common::text_of_id(&page.body, "estimate-total").unwrap()
    };

    // A steady 130,000 credits a day at a limit of 60,000, over a 31-day period like this one.
    let steady = estimate("est_limit=60000&est_daily=130000&est_pattern=daily");
    let twin = app.seed_org("twin", Edition::Standard, "UTC");
    app.set_limit_at(twin.org_id, 60_000, "2025-12-01T00:00:00Z");
    let january: Vec<(chrono::NaiveDate, i64)> = (0..31)
        .map(|i| {
            (
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(i),
                130_000,
            )
        })
        .collect();
    replay(twin.org_id, &january);
    let billed = charged(
        twin.org_id,
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
    );
    assert_eq!(
        steady,
        format!(
            "{} at a daily limit of 60,000",
            display_amount(billed, "USD")
        )
    );

    // Like the last 30 days, at a limit of 20,000.
    let like = estimate("est_limit=20000&est_pattern=last30");
    let twin2 = app.seed_org("twin2", Edition::Standard, "UTC");
    app.set_limit_at(twin2.org_id, 20_000, "2026-02-01T00:00:00Z");
    replay(twin2.org_id, &pattern);
    let billed = charged(twin2.org_id, pattern[0].0, pattern[29].0);
    assert!(billed > 0);
    assert_eq!(
        like,
        format!(
            "{} at a daily limit of 20,000",
            display_amount(billed, "USD")
        )
    );

    // A pattern whose days used all the limit allowed then is a lower bound, and says so.
    let capped = app.seed_org("capped", Edition::Standard, "UTC");
    replay(capped.org_id, &pattern[..5]);
    let capped_session = app.sign_in(&capped.super_admin);
    let page = app.get(
        "/apis/credits?est_limit=100000&est_pattern=last30",
        Some(&capped_session),
    );
    let total = common::text_of_id(&page.body, "estimate-total").unwrap();
    assert!(total.starts_with("At least "), "{total}");

    // Bad input: a 400 with the message, nothing else changed.
    for bad in [
        "est_limit=600000&est_daily=1",
        "est_limit=abc&est_daily=1",
        "est_limit=1000&est_daily=-5",
        "est_limit=1000&est_daily=",
        "est_limit=1000&est_daily=99999999999",
    ] {
        let page = app.get(&format!("/apis/credits?{bad}"), Some(&session));
        assert_eq!(page.status, 400, "{bad}");
        assert!(
            common::text_of_id(&page.body, "estimate-error").is_some(),
            "{bad}"
        );
    }
    assert_eq!(
        app.org_limit(org.org_id),
        100_000,
        "an estimate saves nothing"
    );
}

/// Period navigation: the Statements page lists the period in progress and links each period to
/// its days; View details steps to the previous period; a statement's days add up to its total.
#[test]
fn periods_link_to_their_days_and_add_up() {
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-20T12:00:00Z"))
        .spawn();
    let org = app.seed_org("periods", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 100_000, "2026-01-10T08:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-01-20T10:00:00Z", 80_000),
            ("2026-02-15T10:00:00Z", 70_000),
            ("2026-03-12T10:00:00Z", 60_000),
        ],
    );
    creditmeter::billing::close_due(&mut app.conn(), app.clock.now(), None).unwrap();
    let session = app.sign_in(&org.admin);
    let list = app
        .get("/apis/credits/statements", Some(&session))
        .body
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let open = common::text_of_id(&list, "open-period").unwrap_or_default();
    assert!(list.contains("In progress"), "{list}");
    assert!(
        list.contains("10 Mar 2026 – 9 Apr 2026") && list.contains("on 10 Apr 2026"),
        "{open}"
    );
    assert!(list.contains("/apis/credits/details?from=2026-03-10&to=2026-03-20"));
    assert!(
        list.contains("USD 1.05"),
        "so far this period: 7,500 additional credits"
    );
    for (from, to, total) in [
        ("2026-01-10", "2026-02-09", "USD 3.65"),
        ("2026-02-10", "2026-03-09", "USD 2.45"),
    ] {
        assert!(list.contains(&format!("from={from}&to={to}")), "{from}");
        assert!(list.contains(total), "{total}");
        let days = app.get(
            &format!("/apis/credits/details?from={from}&to={to}"),
            Some(&session),
        );
        assert_eq!(
            format!(
                "USD {}",
                common::text_of_id(&days.body, "total-amount").unwrap()
            ),
            total,
            "the statement's days add up to it"
        );
    }
    let details = app
        .get("/apis/credits/details", Some(&session))
        .body
        .replace("&#38;", "&");
    let previous = details
        .split("id=\"previous-period\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .unwrap();
    assert!(
        previous.starts_with("/apis/credits/details?from=2026-02-10&to=2026-03-09"),
        "{previous}"
    );
}

/// Cost by operation and client: each day's amount shared out by additional credits, to the cent,
/// the lines adding up to the total, on the page and in the CSV.
#[test]
fn cost_by_operation_and_client_adds_up_to_the_total() {
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("costs", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 100_000, "2026-03-01T08:00:00Z");
    // `record` alternates search and ocr. 9 Mar: search 60,000 (7,500 additional), then ocr
    // 30,000 (all additional): 37,500 additional cost 4.25, shared 0.85 and 3.40.
    app.record(
        org.org_id,
        &[
            ("2026-03-09T10:00:00Z", 60_000),
            ("2026-03-09T11:00:00Z", 30_000),
            ("2026-03-08T10:00:00Z", 55_001),
            ("2026-03-08T11:00:00Z", 1),
            ("2026-03-08T12:00:00Z", 1),
        ],
    );
    let session = app.sign_in(&org.admin);
    let range = "from=2026-03-08&to=2026-03-09";
    let page = app.get(&format!("/apis/credits/details?{range}"), Some(&session));
    assert!(
        common::text_of_id(&page.body, "cost-rule")
            .unwrap()
            .contains("in proportion")
    );
    let csv = |by: &str| -> Vec<(String, i64)> {
        let r = app.get(
            &format!("/apis/credits/details.csv?{range}&by={by}"),
            Some(&session),
        );
        assert_eq!(r.status, 200);
        let mut lines = r.body.lines();
        assert_eq!(
            lines.next(),
            Some(format!("{by},credits,additional,amount").as_str())
        );
        lines
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                let cents: i64 = cells[3].replace('.', "").parse().unwrap();
                (cells[0].to_string(), cents)
            })
            .collect()
    };
    let total: i64 = common::text_of_id(&page.body, "total-amount")
        .unwrap()
        .replace('.', "")
        .parse()
        .unwrap();
    let by_operation = csv("operation");
    // 8 Mar: 55,001 + 1 + 1 → 2,503 additional (0.35): search 2,502 and ocr 1 share 0.35.
    assert_eq!(total, 425 + 35);
    assert_eq!(by_operation.iter().map(|(_, c)| c).sum::<i64>(), total);
    assert_eq!(
        by_operation,
        [("search".to_string(), 85 + 35), ("ocr".to_string(), 340)]
    );
    assert_eq!(csv("client").iter().map(|(_, c)| c).sum::<i64>(), total);
    // The PDF shows the same breakdowns.
    let pdf = app.get_bytes(&format!("/apis/credits/details.pdf?{range}"), &session);
    if let Some(pages) = crate::details::pdf_pages(&pdf) {
        let text = pages.join("\n");
        assert!(
            text.contains("Cost by operation") && text.contains("Cost by client"),
            "{text}"
        );
        assert!(text.contains("1.20") && text.contains("3.40"), "{text}");
    }
    // A name a spreadsheet would run as a formula is written as text.
    let token = app.token(org.org_id);
    let r = app.api(
        "POST",
        "/api/v1/usage",
        &token,
        r#"[{"id": "f", "timestamp": "2026-03-09T12:00:00Z", "credits": 10, "operation": "=HYPERLINK(\"http://x\")"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let raw = app.get(
        &format!("/apis/credits/details.csv?{range}&by=operation"),
        Some(&session),
    );
    assert!(
        raw.body.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{}",
        raw.body
    );
    let bad = app.get(
        &format!("/apis/credits/details.csv?{range}&by=team"),
        Some(&session),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("operation, client or user"),
        "{}",
        bad.body
    );
}

/// Cost by user: each day's amount shared by the additional credits of each named user, usage
/// that names no user as "unspecified", and the rows adding up to the total on the page, in the
/// CSV, in the range PDF and in the issued statement's PDF.
#[test]
fn cost_by_user_adds_up_with_the_unnamed_as_unspecified() {
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("users", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 200_000, "2026-03-01T08:00:00Z");
    let token = app.token(org.org_id);
    // Ann spends the free allowance and more; then Bob 20,000 and 10,000 named by no one, all
    // additional.
    let r = app.api(
        "POST",
        "/api/v1/usage",
        &token,
        r#"[{"id": "a", "timestamp": "2026-03-09T10:00:00Z", "credits": 60000, "user": "ann"},
            {"id": "b", "timestamp": "2026-03-09T11:00:00Z", "credits": 20000, "user": "bob"},
            {"id": "c", "timestamp": "2026-03-09T12:00:00Z", "credits": 10000},
            {"id": "d", "timestamp": "2026-03-08T12:00:00Z", "credits": 7, "user": "bob"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A consume names its user too.
    let r = app.api(
        "POST",
        "/api/v1/consume",
        &token,
        r#"{"credits": 3000, "user": "zoë"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let session = app.sign_in(&org.admin);
    let range = "from=2026-03-08&to=2026-03-10";
    let csv = app.get(
        &format!("/apis/credits/details.csv?{range}&by=user"),
        Some(&session),
    );
    assert_eq!(csv.status, 200);
    let rows: Vec<(String, i64, i64, i64)> = csv
        .body
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
                cells[3].replace('.', "").parse().unwrap(),
            )
        })
        .collect();
    let row = |name: &str| rows.iter().find(|r| r.0 == name).cloned().unwrap();
    let page = app.get(&format!("/apis/credits/details?{range}"), Some(&session));
    let total: i64 = common::text_of_id(&page.body, "total-amount")
        .unwrap()
        .replace('.', "")
        .parse()
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.3).sum::<i64>(), total, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), 93_007, "{rows:?}");
    assert_eq!((row("bob").1, row("bob").2), (20_007, 20_000));
    assert_eq!(
        (row("unspecified").1, row("unspecified").2),
        (10_000, 10_000)
    );
    assert_eq!(
        (row("zoë").1, row("zoë").2),
        (3_000, 0),
        "within the free allowance"
    );
    assert_eq!(row("ann").1, 60_000);
    // On 9 Mar Bob's additional credits are twice the unnamed ones: so is his share, to the cent.
    let day_9 = total - row("zoë").3;
    assert!(
        (row("bob").3 - 2 * row("unspecified").3).abs() <= 2
            && row("bob").3 + row("unspecified").3 + row("ann").3 == day_9,
        "{rows:?} of {day_9}"
    );
    // The page lists the same rows.
    let table = page.body.split("id=\"usage-by-user\"").nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    for (name, ..) in &rows {
        assert!(
            table.contains(&format!("data-label=\"User\">{name}<")),
            "{name} in {table}"
        );
    }
    // The range PDF and the statement's PDF have the table too.
    let pdf = app.get_bytes(&format!("/apis/credits/details.pdf?{range}"), &session);
    let issued = creditmeter::billing::close_due(
        &mut app.conn(),
        chrono::DateTime::parse_from_rfc3339("2026-04-02T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
        None,
    )
    .unwrap();
    assert_eq!(issued.len(), 1);
    let statement = app.get_bytes(
        &format!("/apis/credits/statements/{}.pdf", issued[0]),
        &session,
    );
    for bytes in [pdf, statement] {
        if let Some(pages) = crate::details::pdf_pages(&bytes) {
            let text = pages.join("\n");
            assert!(
                text.contains("Cost by user")
                    && text.contains("unspecified")
                    && text.contains("zoë"),
                "{text}"
            );
            let bob = text
                .lines()
                .find(|l| l.trim_start().starts_with("bob"))
                .unwrap();
            assert!(
                bob.contains(&format!("{}.{:02}", row("bob").3 / 100, row("bob").3 % 100)),
                "{bob}"
            );
        }
    }
}
