//! End-to-end in headless Chromium: sign in, set a limit through the form, read billing details.
//! Screenshots land in target/screenshots/ at 1280 and 375 px.

use crate::common;

use chrono::{Duration, Months};
use common::{TestApp, webdriver};
use creditmeter::domain::allowance::Edition;
use creditmeter::domain::calendar;
use creditmeter::ledger::{self, Kind, UsageRequest};

/// Sign in through the form, as a person would.
fn sign_in(browser: &webdriver::Browser, base: &str, email: &str) {
    browser.goto(&format!("{base}/login"));
    browser.type_into("#email", email);
    browser.type_into("#password", common::PASSWORD);
    browser.click("button[type=submit]");
    browser.wait_for_url("/apis/credits");
}

#[test]
fn a_super_admin_sets_a_limit_in_the_browser_and_sees_billing_details() {
    let Some(browser) = webdriver::start(1280, 1300) else {
        return;
    };
    let app = TestApp::builder().spawn();
    let org = app.seed_org("acme", Edition::Professional, "America/New_York");
    let base = format!("http://127.0.0.1:{}", app.port);

    browser.goto(&format!("{base}/apis/credits"));
    browser.wait_for_url("/login?next=%2Fapis%2Fcredits");
    browser.screenshot("login-1280");
    browser.type_into("#email", &org.super_admin);
    browser.type_into("#password", common::PASSWORD);
    browser.click("button[type=submit]");
    browser.wait_for_url("/apis/credits");
    assert!(!browser.source().contains("Billing details"));

    browser.type_into("#additional_limit", "abc");
    browser.click(".limit-form button[type=submit]");
    browser.wait_for_url("/apis/credits/limit");
    assert!(browser.text("#limit-error").contains("whole number"));
    browser.screenshot("credits-error-1280");

    browser.type_into("#additional_limit", "40000");
    browser.click(".limit-form button[type=submit]");
    browser.wait_for_url("/apis/credits");
    assert!(
        browser
            .text(".alert-success")
            .contains("40,000 credits per day")
    );
    assert!(browser.text("#billing-details").contains("Billing details"));

    // R7: anchored today (org-local), so the next billing date is one month on.
    let now = app.clock.now();
    let zone = calendar::parse_zone("America/New_York").unwrap();
    let today = calendar::local_day(now, zone);
    let next = today.checked_add_months(Months::new(1)).unwrap();
    let billing = browser.text("section[aria-labelledby=billing-details]");
    assert!(billing.contains("Next billing date"), "{billing}");
    assert!(
        billing.contains(&next.format("%-d %b %Y").to_string()),
        "{billing}"
    );
    assert!(billing.contains(&format!(
        "{} – {}",
        today.format("%-d %b %Y"),
        (next - Duration::days(1)).format("%-d %b %Y")
    )));

    // Some usage today, through the admission code, then look at the page at both widths.
    let requests: Vec<UsageRequest> = (0..14)
        .map(|i| UsageRequest {
            org_id: org.org_id,
            kind: Kind::Live,
            event_id: Some(format!("e2e-{i}")),
            occurred_at: now,
            credits: 5_000,
            operation: "search".into(),
            client: "web-app".into(),
            user: String::new(),
        })
        .collect();
    ledger::apply_batch(&mut app.conn(), now, &requests).unwrap();
    // Written behind the server's back: the dashboard's read cache shows it within its TTL.
    std::thread::sleep(
        creditmeter::web::cache::DEFAULT_TTL + std::time::Duration::from_millis(100),
    );
    browser.goto(&format!("{base}/apis/credits"));
    let details = browser.text("section[aria-labelledby=credit-details]");
    assert!(details.contains("70,000"), "credits used today: {details}");
    assert!(
        details.contains("15,000"),
        "additional credits used today: {details}"
    );
    let billing = browser.text("section[aria-labelledby=billing-details]");
    assert!(
        billing.contains("USD 2.10"),
        "15,000 additional credits cost 2.10: {billing}"
    );
    browser.screenshot("credits-1280");
    browser.resize(375, 1400);
    browser.assert_fits_width();
    browser.screenshot("credits-375");
    browser.goto(&format!("{base}/apis/credits/audit"));
    assert!(browser.text("#audit-log").contains("40,000 credits/day"));
    browser.screenshot("audit-375");

    // View details, from the link on the Credits tab.
    browser.resize(1280, 2200);
    browser.goto(&format!("{base}/apis/credits"));
    browser.click("#view-details");
    browser.wait_for_url("/apis/credits/details");
    let rows = browser
        .script("return document.querySelectorAll('#daily-usage tbody tr[data-day]').length;");
    assert_eq!(
        rows,
        serde_json::json!(30),
        "the last 30 days, today included"
    );
    let today_row = browser.text("#daily-usage tr.in-progress");
    assert!(today_row.contains("in progress"), "{today_row}");
    assert_eq!(browser.text("#total-amount"), "2.10");
    browser.screenshot("details-1280");
    browser.resize(375, 2400);
    browser.assert_fits_width();
    browser.screenshot("details-375");
}

/// The Alerts page in the browser: the super admin sets thresholds, a budget that stops calls and a
/// webhook; calls cross the thresholds; the page lists crossings and deliveries, and the Credits
/// tab says why calls stop. Both pages at 1280 and 375 px.
#[test]
fn a_super_admin_sets_alerts_and_a_budget_in_the_browser() {
    let Some(browser) = webdriver::start(1280, 1600) else {
        return;
    };
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-20T15:00:00Z"))
        .webhooks(creditmeter::webhooks::WebhookConfig {
            allow_private: true,
            retry_base: std::time::Duration::from_millis(200),
            max_attempts: 2,
            timeout: std::time::Duration::from_secs(1),
        })
        .spawn();
    let org = app.seed_org("acme", Edition::Professional, "Europe/Berlin");
    app.set_limit_at(org.org_id, 100_000, "2026-03-01T08:00:00Z");
    let token = app.token(org.org_id);
    let base = format!("http://127.0.0.1:{}", app.port);
    sign_in(&browser, &base, &org.super_admin);

    browser.goto(&format!("{base}/apis/credits/alerts"));
    browser.type_into("#thresholds", "25, 50, 90");
    browser.click("form[action$=thresholds] button");
    browser.wait_for_url("saved=thresholds");
    browser.type_into("#budget", "6.00");
    browser.click("input[name=budget_stop]");
    browser.click("form[action$=budget] button");
    browser.wait_for_url("saved=budget");
    assert!(browser.text(".alert-success").contains("budget is saved"));
    // Nothing listens on port 9 of 127.0.0.1: deliveries fail and are listed with their errors.
    browser.type_into("#webhook_url", "http://127.0.0.1:9/hooks");
    browser.click("form[action$=webhook] button");
    browser.wait_for_url("/apis/credits/alerts/webhook");
    assert!(browser.text("#webhook-secret").starts_with("whsec_"));

    // 55,000 free, then additional credits charged 2.10, 5.30, 5.90 (of 6.00); 20,000 more would
    // charge 7.10 and are refused; 1,600 more charge 6.00 exactly.
    for credits in [70_000, 40_000, 10_000] {
        let body = format!(r#"{{"credits": {credits}, "operation": "search"}}"#);
        let r = app.api("POST", "/api/v1/consume", &token, &body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let refused = app.api("POST", "/api/v1/consume", &token, r#"{"credits": 20000}"#);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["limit"], "budget");
    let last = app.api("POST", "/api/v1/consume", &token, r#"{"credits": 1600}"#);
    assert_eq!(last.status, 200, "{}", last.body);
    std::thread::sleep(std::time::Duration::from_secs(3));

    browser.goto(&format!("{base}/apis/credits/alerts"));
    let crossings = browser.text("#crossings");
    assert!(crossings.contains("90% of the budget"), "{crossings}");
    assert!(
        crossings.contains("50% of the daily additional limit"),
        "{crossings}"
    );
    assert!(browser.text("#deliveries").contains("failed"));
    browser.screenshot("alerts-1280");
    browser.resize(375, 2400);
    browser.assert_fits_width();
    browser.screenshot("alerts-375");
    browser.goto(&format!("{base}/apis/credits"));
    let why = browser.text("#budget-stop");
    assert!(why.contains("USD 6.00 of its USD 6.00 budget"), "{why}");
    browser.assert_fits_width();
    browser.screenshot("credits-alerts-375");
    browser.resize(1280, 1600);
    browser.screenshot("credits-alerts-1280");
}

/// Every page at 375 px with nothing cut off (tables stack their rows), and View details laid out
/// for print with every column, the org and the total once.
#[test]
fn every_page_fits_a_phone_and_view_details_prints_whole() {
    let Some(browser) = webdriver::start(1280, 1400) else {
        return;
    };
    browser.resize(375, 1400);
    let app = TestApp::builder()
        .clock(common::fixed("2026-03-20T15:00:00Z"))
        .spawn();
    let org = app.seed_org("muller", Edition::Professional, "Europe/Berlin");
    creditmeter::store::orgs::update(
        &mut app.conn(),
        org.org_id,
        &creditmeter::store::orgs::OrgUpdate {
            name: Some("Müller & Söhne Industrieanlagen und Maschinenbau".into()),
            ..Default::default()
        },
        app.clock.now(),
    )
    .unwrap();
    app.set_limit_at(org.org_id, 100_000, "2026-01-10T08:00:00Z");
    let requests: Vec<UsageRequest> = (1..=60)
        .map(|i| UsageRequest {
            org_id: org.org_id,
            kind: Kind::Metered,
            event_id: Some(format!("p-{i}")),
            occurred_at: app.clock.now() - Duration::days(i % 65),
            credits: 20_000 + (i * 7919) % 90_000,
            operation: format!("operation-with-a-rather-long-name-{}", i % 3),
            client: format!("client-{}-eu-west-1.internal.example.com", i % 4),
            // Long, unbroken user names, and some usage that names no user.
            user: match i % 4 {
                0 => String::new(),
                n => format!("service-account-{n}@a-very-long-project-name.iam.example.com"),
            },
        })
        .collect();
    ledger::apply_batch(&mut app.conn(), app.clock.now(), &requests).unwrap();
    creditmeter::billing::close_due(&mut app.conn(), app.clock.now(), None).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port);
    sign_in(&browser, &base, &org.super_admin);
    // Long values in the audit log and the alerts.
    app.set_limit(org.org_id, 250_000);
    let session = app.sign_in(&org.super_admin);
    app.post_signed(
        "/apis/credits/alerts/webhook",
        &session,
        &[
            ("webhook_url", "https://hooks.example.com/a/very/long/path/that/keeps/going/creditmeter?token=abcdefghijklmnopqrstuvwxyz"),
            ("csrf_token", &session.csrf),
        ],
    );
    for page in [
        "/apis/credits",
        "/apis/credits/details",
        "/apis/credits/details?from=2026-01-15&to=2026-03-20",
        "/apis/credits/details?from=2025-03-21&to=2026-03-20",
        "/apis/credits/details?from=2024-01-01&to=2024-01-31",
        "/apis/credits/statements",
        "/apis/credits/alerts",
        "/apis/credits/audit",
        "/apis/credits/nowhere",
    ] {
        browser.goto(&format!("{base}{page}"));
        browser.assert_nothing_cut_off(page);
        if !page.contains('?') {
            browser.screenshot(&format!("page{}-375", page.replace('/', "-")));
        }
    }
    // The cost tables, further down View details: by operation and client, then by user.
    browser.goto(&format!(
        "{base}/apis/credits/details?from=2026-01-15&to=2026-03-20"
    ));
    for (width, height) in [(375, 1400), (1280, 1000)] {
        browser.resize(width, height);
        browser.script("document.getElementById('cost-rule').scrollIntoView(); return 0;");
        browser.screenshot(&format!("details-costs-{width}"));
        browser.script("document.getElementById('by-user').scrollIntoView(); return 0;");
        browser.screenshot(&format!("details-by-user-{width}"));
    }
    browser.resize(375, 1400);
    // A refused limit on a phone's screen: the field with its message has the focus, in view.
    browser.resize(375, 700);
    browser.goto(&format!("{base}/apis/credits"));
    browser.type_into("#additional_limit", "lots");
    browser.click(".limit-form button[type=submit]");
    browser.wait_for_url("/apis/credits/limit");
    let focus = browser.script(
        r#"const f = document.activeElement, r = f.getBoundingClientRect(),
                 e = document.querySelector('#limit-error').getBoundingClientRect();
           return [f.id, r.top >= 0 && r.bottom <= innerHeight, e.bottom <= innerHeight];"#,
    );
    assert_eq!(focus, serde_json::json!(["additional_limit", true, true]));
    browser.screenshot("credits-error-375");
    browser.resize(375, 1400);
    // The PDFs as pictures (pdftoppm), to look at beside the pages.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let number = format!("CM-{}-20260210", org.org_id);
    for (path, name) in [
        (
            "/apis/credits/details.pdf?from=2026-02-19&to=2026-03-20".to_string(),
            "details-pdf",
        ),
        (
            format!("/apis/credits/statements/{number}.pdf"),
            "statement-pdf",
        ),
    ] {
        let bytes = app.get_bytes(&path, &session);
        assert!(bytes.starts_with(b"%PDF"), "{path}");
        let file = shots.join(format!("{name}.pdf"));
        std::fs::write(&file, &bytes).unwrap();
        let _ = std::process::Command::new("pdftoppm")
            .args(["-png", "-r", "70"])
            .arg(&file)
            .arg(shots.join(name))
            .status();
    }

    // axe-core on every page, at 1280 px.
    browser.resize(1280, 1400);
    for page in [
        "/apis/credits",
        "/apis/credits/details",
        "/apis/credits/statements",
        "/apis/credits/alerts",
        "/apis/credits/audit",
        "/apis/credits/nowhere",
    ] {
        browser.goto(&format!("{base}{page}"));
        browser.screenshot(&format!("page{}-1280", page.replace('/', "-")));
        if let Some(violations) = browser.axe_violations() {
            assert!(violations.is_empty(), "{page}: {violations:#?}");
        }
    }
    // The check finds what it should: an image without a text alternative.
    browser.script("document.body.appendChild(document.createElement('img')); return 1;");
    if let Some(violations) = browser.axe_violations() {
        assert!(
            violations.iter().any(|v| v.starts_with("image-alt")),
            "{violations:?}"
        );
    }
    browser.resize(375, 1400);
    browser.goto(&format!("{base}/apis/credits/statements"));
    browser.screenshot("statements-375");
    browser.goto(&format!(
        "{base}/apis/credits/details?from=2024-01-01&to=2024-01-31"
    ));
    assert!(
        browser
            .text("#chart-empty")
            .contains("No credits were used")
    );
    browser.resize(1280, 1400);
    browser.goto(&format!(
        "{base}/apis/credits/details?from=2025-03-21&to=2026-03-20"
    ));
    assert_eq!(browser.text("#chart-heading"), "Credits per month");
    browser.screenshot("details-366-1280");
    browser.resize(375, 1400);
    browser.goto(&format!("{base}/apis/credits/audit"));
    browser.screenshot("audit-375");
    browser.resize(1280, 1400);
    browser.assert_nothing_cut_off("/apis/credits/audit at 1280");
    browser.screenshot("audit-1280");

    // Print: A4-ish width, every column of the daily table visible, the org named, one total.
    browser.resize(800, 1400);
    browser.goto(&format!("{base}/apis/credits/details"));
    browser.emulate_print(true);
    browser.assert_nothing_cut_off("View details, printed");
    let visible = browser.script(
        r#"const t = document.querySelector('#daily-usage');
        const right = t.getBoundingClientRect().right;
        return [right <= document.documentElement.clientWidth,
                getComputedStyle(document.querySelector('#print-org')).display,
                getComputedStyle(document.querySelector('tfoot')).display,
                getComputedStyle(document.querySelector('.topbar')).display];"#,
    );
    assert_eq!(
        visible,
        serde_json::json!([true, "block", "table-row-group", "none"])
    );
    browser.screenshot("details-print");
    browser.emulate_print(false);

    // Dark mode, from the system's setting: every page at both widths, nothing cut off.
    browser.emulate_media("", true);
    for (page, name) in [
        ("/apis/credits", "credits"),
        ("/apis/credits/details", "details"),
        ("/apis/credits/statements", "statements"),
        ("/apis/credits/alerts", "alerts"),
        ("/apis/credits/audit", "audit"),
    ] {
        for width in [1280, 375] {
            browser.resize(width, 1400);
            browser.goto(&format!("{base}{page}"));
            browser.assert_nothing_cut_off(page);
            browser.screenshot(&format!("{name}-dark-{width}"));
        }
    }
    let background = browser.script("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(background, serde_json::json!("rgb(15, 20, 28)"));
    browser.emulate_media("", false);
}
