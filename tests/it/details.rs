//! View details and its CSV over HTTP: every day row and the total, in UTC and in a far zone,
//! across a month end and a DST change; totals against the rows for random ranges; bad ranges.

use crate::common;

use common::{DetailRow, TestApp, day_rows, fixed, step};
use creditmeter::domain::allowance::Edition;
use creditmeter::domain::types::OrgId;
use proptest::prelude::*;

fn rows_of(
    app: &TestApp,
    session: &common::Session,
    query: &str,
) -> (u16, Vec<DetailRow>, String, String) {
    let r = app.get(&format!("/apis/credits/details{query}"), Some(session));
    let total = common::text_of_id(&r.body, "total-amount").unwrap_or_default();
    (r.status, day_rows(&r.body), total, r.body)
}

#[test]
fn every_day_row_and_the_total_in_utc_across_a_month_end() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T18:00:00Z"))
        .spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC"); // 52,500 free credits a day
    app.set_limit_at(org.org_id, 200_000, "2026-02-01T00:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-02-27T09:00:00Z", 52_500),
            ("2026-02-27T23:59:59Z", 80_000), // 6.80
            ("2026-02-28T00:00:00Z", 1_000),
            ("2026-03-01T10:00:00Z", 64_845), // 12,345 additional: 1.73
            ("2026-03-02T08:00:00Z", 60_000), // today, in progress: 7,500 additional: 1.05
        ],
    );
    let session = app.sign_in(&org.admin);
    let (status, rows, total, body) = rows_of(&app, &session, "?from=2026-02-26&to=2026-03-02");
    assert_eq!(status, 200);
    let expected = [
        ("2026-02-26", 0, 0, "0.00"),
        ("2026-02-27", 132_500, 80_000, "6.80"),
        ("2026-02-28", 1_000, 0, "0.00"),
        ("2026-03-01", 64_845, 12_345, "1.73"),
        ("2026-03-02", 60_000, 7_500, "1.05"),
    ];
    let expected: Vec<(String, i64, i64, String)> = expected
        .iter()
        .map(|(d, c, a, m)| (d.to_string(), *c, *a, m.to_string()))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(total, "9.58");
    assert!(body.contains("today, in progress"));
    // No parameters: the last 30 days, today included.
    let (_, rows, _, _) = rows_of(&app, &session, "");
    assert_eq!(rows.len(), 30);
    assert_eq!(rows.last().unwrap().0, "2026-03-02");
    assert_eq!(rows.first().unwrap().0, "2026-02-01");
    // Breakdowns and the chart are there for the range.
    let r = app.get(
        "/apis/credits/details?from=2026-02-26&to=2026-03-02",
        Some(&session),
    );
    assert!(
        r.body.contains("id=\"usage-by-operation\"") && r.body.contains("id=\"usage-by-client\"")
    );
    assert!(
        r.body.contains("<svg class=\"chart\"") && r.body.contains("<title id=\"chart-title\">")
    );
    let print = r
        .body
        .split("id=\"print\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(
        print.starts_with(
            "/apis/credits/details.pdf?from=2026-02-26&to=2026-03-02&disposition=inline"
        ),
        "{print}"
    );

    let csv = app.get(
        "/apis/credits/details.csv?from=2026-02-26&to=2026-03-02",
        Some(&session),
    );
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-disposition")
            .unwrap()
            .contains("creditmeter-acme-corp-2026-02-26-2026-03-02.csv")
    );
    assert_eq!(
        csv.body,
        "day,credits,additional,amount\r\n2026-02-26,0,0,0.00\r\n2026-02-27,132500,80000,6.80\r\n\
         2026-02-28,1000,0,0.00\r\n2026-03-01,64845,12345,1.73\r\n2026-03-02,60000,7500,1.05\r\n"
    );
}

#[test]
fn days_follow_a_far_zone_across_its_dst_change() {
    // Auckland leaves daylight saving on 5 Apr 2026 at 03:00 (UTC+13 → UTC+12): that day lasts 25 hours.
    let app = TestApp::builder()
        .clock(fixed("2026-04-06T03:00:00Z"))
        .spawn();
    let org = app.seed_org("kiwi", Edition::Professional, "Pacific/Auckland"); // 55,000 free
    app.set_limit_at(org.org_id, 100_000, "2026-04-01T00:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-04-04T10:30:00Z", 60_000), // 4 Apr 23:30 NZDT
            ("2026-04-04T11:30:00Z", 5_000),  // 5 Apr 00:30 NZDT
            ("2026-04-05T11:30:00Z", 70_000), // 5 Apr 23:30 NZST: still the 25-hour day
            ("2026-04-05T12:30:00Z", 1_000),  // 6 Apr 00:30 NZST
        ],
    );
    let session = app.sign_in(&org.super_admin);
    let (status, rows, total, _) = rows_of(&app, &session, "?from=2026-04-04&to=2026-04-06");
    assert_eq!(status, 200);
    let got: Vec<(&str, i64, i64, &str)> = rows
        .iter()
        .map(|(d, c, a, m)| (d.as_str(), *c, *a, m.as_str()))
        .collect();
    // 5,000 additional: 0.70; 20,000 additional: 2.80.
    assert_eq!(
        got,
        [
            ("2026-04-04", 60_000, 5_000, "0.70"),
            ("2026-04-05", 75_000, 20_000, "2.80"),
            ("2026-04-06", 1_000, 0, "0.00")
        ]
    );
    assert_eq!(total, "3.50");
}

#[test]
fn bad_ranges_answer_4xx_with_a_message() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T18:00:00Z"))
        .spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let session = app.sign_in(&org.admin);
    for (query, message) in [
        ("?from=2026-02-30&to=2026-03-01", "is not a date"),
        ("?from=yesterday&to=2026-03-01", "is not a date"),
        ("?from=2026-03-05&to=2026-03-01", "is after the end date"),
        ("?from=2024-01-01&to=2025-01-01", "at most 366 days"),
        ("?from=2026-03-01", "end date"),
        ("?to=2026-03-01", "start date"),
        ("?from=%ZZ&to=1", "is not a date"),
        ("?from=2026-01-01&from=x&to=2026-01-02", "malformed"),
    ] {
        let r = app.get(&format!("/apis/credits/details{query}"), Some(&session));
        assert_eq!(r.status, 400, "{query}");
        let shown = common::text_of_id(&r.body, "range-error").unwrap_or_default();
        assert!(shown.contains(message), "{query}: {shown:?}");
        let csv = app.get(&format!("/apis/credits/details.csv{query}"), Some(&session));
        assert_eq!(csv.status, 400, "csv {query}");
    }
    // 366 days is allowed.
    assert_eq!(
        app.get(
            "/apis/credits/details?from=2024-01-01&to=2024-12-31",
            Some(&session)
        )
        .status,
        200
    );
    let user = app.sign_in(&org.user);
    assert_eq!(app.get("/apis/credits/details", Some(&user)).status, 403);
    assert_eq!(
        app.get("/apis/credits/details.csv", Some(&user)).status,
        403
    );
    assert_eq!(app.get("/apis/credits/details", None).status, 303);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_total_is_the_sum_of_the_day_rows(start in 0i64..80, len in 1i64..120) {
        let (app, session) = shared();
        let from = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(start);
        let to = from + chrono::Duration::days(len - 1);
        let (status, rows, total, _) = rows_of(app, session, &format!("?from={from}&to={to}"));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(rows.len() as i64, len);
        let cents: i64 = rows.iter().map(|r| { let (w, f) = r.3.split_once('.').unwrap(); w.parse::<i64>().unwrap() * 100 + f.parse::<i64>().unwrap() }).sum();
        prop_assert_eq!(format!("{}.{:02}", cents / 100, cents % 100), total);
    }
}

fn shared() -> &'static (TestApp, common::Session) {
    static SHARED: std::sync::OnceLock<(TestApp, common::Session)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let app = TestApp::builder()
            .clock(fixed("2026-03-31T12:00:00Z"))
            .spawn();
        let org = app.seed_org("prop", Edition::Enterprise, "America/Sao_Paulo"); // 60,000 free
        app.set_limit_at(org.org_id, 500_000, "2025-12-01T00:00:00Z");
        let days: Vec<(String, i64)> = (0..89)
            .map(|d| {
                let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                    + chrono::Duration::days(d);
                (format!("{day}T15:00:00Z"), 60_000 + (d * 7_919) % 250_000)
            })
            .collect();
        let events: Vec<(&str, i64)> = days.iter().map(|(t, c)| (t.as_str(), *c)).collect();
        app.record(org.org_id, &events);
        let session = app.sign_in(&org.admin);
        (app, session)
    })
}

/// The text of a PDF, page by page, via poppler's pdftotext; `None` (with a note) where it is missing.
pub(crate) fn pdf_pages(bytes: &[u8]) -> Option<Vec<String>> {
    if std::process::Command::new("pdftotext")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install poppler-utils (see .ci/run)"
        );
        eprintln!("SKIPPED: PDF text checks need pdftotext (apt-get install poppler-utils)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split('\u{c}')
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn the_pdf_statement_has_every_day_and_the_total() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T18:00:00Z"))
        .spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 200_000, "2026-02-01T00:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-02-27T09:00:00Z", 132_500),
            ("2026-03-01T10:00:00Z", 64_845),
        ],
    );
    let session = app.sign_in(&org.admin);
    let r = app.get(
        "/apis/credits/details.pdf?from=2026-02-26&to=2026-03-02",
        Some(&session),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(
        r.header("content-disposition"),
        Some(
            "attachment; filename=\"creditmeter-acme-corp-2026-02-26-2026-03-02.pdf\"; filename*=UTF-8''creditmeter-acme-corp-2026-02-26-2026-03-02.pdf"
        )
    );
    let raw = common::http::request(
        app.port,
        "GET",
        "/apis/credits/details.pdf?from=2026-02-26&to=2026-03-02&disposition=inline",
        &[("Cookie", &format!("cm_session={}", session.cookie))],
        b"",
    );
    assert!(
        raw.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    let bytes = pdf_bytes(&app, &session, "?from=2026-02-26&to=2026-03-02");
    assert!(bytes.starts_with(b"%PDF"));
    let Some(pages) = pdf_pages(&bytes) else {
        return;
    };
    assert_eq!(pages.len(), 1);
    let text = &pages[0];
    for expected in [
        "acme Corp",
        "26 Feb 2026 - 2 Mar 2026 (5 days)",
        "Page 1 of 1",
        "Total",
        "USD 8.53",
        "first",
        "25,000",
    ] {
        let expected = if expected == "first" {
            "1 to 25,000"
        } else {
            expected
        };
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    for (day, amount) in [
        ("26 Feb 2026", "0.00"),
        ("27 Feb 2026", "6.80"),
        ("28 Feb 2026", "0.00"),
        ("1 Mar 2026", "1.73"),
        ("2 Mar 2026", "0.00"),
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.contains(day)
                    && l.contains("Credits used").eq(&false)
                    && !["Range", "Billing", "Generated", "generated"]
                        .iter()
                        .any(|w| l.contains(w))
            })
            .unwrap_or_else(|| panic!("{day} missing:\n{text}"));
        assert!(line.trim_end().ends_with(amount), "{day}: {line}");
    }
    assert!(text.contains("today, in progress"));
    // Look at it: target/screenshots/statement-*.png where pdftoppm is installed.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("statement-5-days.pdf"), &bytes).unwrap();
}

fn pdf_bytes(app: &TestApp, session: &common::Session, query: &str) -> Vec<u8> {
    app.get_bytes(&format!("/apis/credits/details.pdf{query}"), session)
}

#[test]
fn a_366_day_pdf_has_several_pages_each_with_the_table_header() {
    let (app, session) = shared();
    let bytes = pdf_bytes(app, session, "?from=2025-03-31&to=2026-03-31");
    let Some(pages) = pdf_pages(&bytes) else {
        return;
    };
    assert!(pages.len() >= 5, "{} pages", pages.len());
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Page {} of {}", i + 1, pages.len())),
            "page {}:\n{page}",
            i + 1
        );
        if i + 1 < pages.len() {
            assert!(
                page.contains("Credits used") && page.contains("Additional credits"),
                "page {} lacks the table header",
                i + 1
            );
        }
    }
    let all = pages.join("\n");
    let mut day = chrono::NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
    while day <= chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap() {
        assert!(
            all.contains(&format!("{}", day.format("%-d %b %Y"))),
            "{day} missing"
        );
        day = day.succ_opt().unwrap();
    }
    let r = app.get(
        "/apis/credits/details?from=2025-03-31&to=2026-03-31",
        Some(session),
    );
    let total = common::text_of_id(&r.body, "total-amount").unwrap();
    assert!(
        all.contains(&format!("USD {total}")),
        "total {total} missing"
    );
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots/statement-366-days.pdf"),
        &bytes,
    )
    .unwrap();
}

fn statements_of(app: &TestApp, org_id: OrgId) -> Vec<(String, String, String, i64)> {
    creditmeter::store::statements::list(&mut app.conn(), org_id)
        .unwrap()
        .into_iter()
        .rev()
        .map(|s| {
            (
                s.number,
                s.period_start.to_string(),
                s.period_end.to_string(),
                s.total_minor,
            )
        })
        .collect()
}

#[test]
fn r7_periods_anchored_on_the_29th_to_31st_close_on_clamped_dates() {
    let app = TestApp::builder()
        .clock(fixed("2026-04-01T12:00:00Z"))
        .spawn();
    let mut orgs = Vec::new();
    for (slug, day) in [("d29", 29), ("d30", 30), ("d31", 31)] {
        let org = app.seed_org(slug, Edition::Standard, "UTC");
        app.set_limit_at(org.org_id, 10_000, &format!("2026-01-{day}T10:00:00Z"));
        orgs.push(org.org_id);
    }
    let issued = creditmeter::billing::close_due(&mut app.conn(), app.clock.now(), None).unwrap();
    assert_eq!(issued.len(), 6);
    let s = |org: OrgId, start: &str, end: &str| {
        (
            format!("CM-{org}-{}", start.replace('-', "")),
            start.to_string(),
            end.to_string(),
            0,
        )
    };
    assert_eq!(
        statements_of(&app, orgs[0]),
        [
            s(orgs[0], "2026-01-29", "2026-02-28"),
            s(orgs[0], "2026-02-28", "2026-03-29")
        ]
    );
    assert_eq!(
        statements_of(&app, orgs[1]),
        [
            s(orgs[1], "2026-01-30", "2026-02-28"),
            s(orgs[1], "2026-02-28", "2026-03-30")
        ]
    );
    assert_eq!(
        statements_of(&app, orgs[2]),
        [
            s(orgs[2], "2026-01-31", "2026-02-28"),
            s(orgs[2], "2026-02-28", "2026-03-31")
        ]
    );
}

#[test]
fn r8_closing_twice_issues_once_and_late_usage_is_refused() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T12:00:00Z"))
        .spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 100_000, "2026-02-01T08:00:00Z");
    app.record(
        org.org_id,
        &[
            ("2026-02-10T10:00:00Z", 132_500),
            ("2026-02-28T23:00:00Z", 65_000),
            ("2026-03-01T10:00:00Z", 60_000),
        ],
    );
    let db = creditmeter::store::orgs::find(&mut app.conn(), org.org_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        db.billing_anchor,
        chrono::NaiveDate::from_ymd_opt(2026, 2, 1)
    );
    // Closing on demand, twice, from the CLI: one statement.
    let url = {
        use diesel::prelude::*;
        #[derive(diesel::QueryableByName)]
        struct F {
            #[diesel(sql_type = diesel::sql_types::Text)]
            file: String,
        }
        let f: F = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .get_result(&mut *app.conn())
            .unwrap();
        format!("sqlite://{}", f.file)
    };
    let close_at = |now: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
            .args(["statements", "close", "--database", &url])
            .env("CREDITMETER_NOW", now)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let close = || close_at("2026-03-02T12:00:00Z");
    let number = format!("CM-{}-20260201", org.org_id);
    let keys = |app: &TestApp| -> Vec<String> {
        use creditmeter::db::schema::usage_keys::dsl;
        use diesel::prelude::*;
        dsl::usage_keys
            .filter(dsl::org_id.eq(org.org_id))
            .order(dsl::event_id)
            .select(dsl::event_id)
            .load(&mut *app.conn())
            .unwrap()
    };
    let frozen = step("closing twice from the CLI issues one statement", || {
        assert_eq!(keys(&app).len(), 3);
        assert_eq!(close(), number);
        assert_eq!(close(), "", "closing twice issues once");
        // The closed period's idempotency keys stay one period longer (a consume retried past the
        // billing date lands in the next period); they go when that period is closed in turn.
        assert_eq!(keys(&app).len(), 3);
        // 80,000 additional (6.80) + 12,500 additional (3.50 + 0.06 × ... = 1.75): 8.55.
        let issued = statements_of(&app, org.org_id);
        assert_eq!(
            issued,
            [(
                number.clone(),
                "2026-02-01".to_string(),
                "2026-03-01".to_string(),
                855
            )]
        );
        let frozen =
            creditmeter::store::statements::by_number(&mut app.conn(), org.org_id, &number)
                .unwrap()
                .unwrap();
        assert_eq!(frozen.lines().unwrap().len(), 28);
        assert_eq!(
            frozen
                .lines()
                .unwrap()
                .iter()
                .map(|l| l.amount_minor)
                .sum::<i64>(),
            frozen.total_minor
        );
        frozen
    });

    step(
        "R8: usage for a day of the issued statement is refused and changes nothing",
        || {
            let token = app.token(org.org_id);
            let body = serde_json::json!([
                {"id": "late", "timestamp": "2026-02-20T10:00:00Z", "credits": 10},
                {"id": "fine", "timestamp": "2026-03-01T11:00:00Z", "credits": 10},
                // A retry of an event of the closed period, whose key is gone: still never counted twice.
                {"id": "seed-2026-02-10T10:00:00Z-0", "timestamp": "2026-02-10T10:00:00Z", "credits": 132500}
            ]);
            let r = app
                .api("POST", "/api/v1/usage", &token, &body.to_string())
                .json();
            assert_eq!(
                r["results"][0],
                serde_json::json!({"id": "late", "status": "refused", "reason": "PERIOD_CLOSED"})
            );
            assert_eq!(r["results"][1]["status"], "accepted");
            assert_eq!(r["results"][2]["reason"], "PERIOD_CLOSED");
            assert_eq!(app.day_totals(org.org_id, "2026-02-20"), (0, 0));
            let again =
                creditmeter::store::statements::by_number(&mut app.conn(), org.org_id, &number)
                    .unwrap()
                    .unwrap();
            assert_eq!(
                (again.total_minor, again.lines_json),
                (frozen.total_minor, frozen.lines_json.clone())
            );
        },
    );

    let session = step(
        "the list page, and another org cannot see the statement",
        || {
            let session = app.sign_in(&org.admin);
            let page = app.get("/apis/credits/statements", Some(&session));
            assert_eq!(page.status, 200);
            assert!(
                page.body.contains(&format!("data-number=\"{number}\""))
                    && page.body.contains("USD 8.55")
            );
            assert_eq!(
                app.get("/apis/credits/statements/CM-999-1.pdf", Some(&session))
                    .status,
                404
            );
            let other = app.seed_org("other", Edition::Standard, "UTC");
            let stranger = app.sign_in(&other.admin);
            assert_eq!(
                app.get(
                    &format!("/apis/credits/statements/{number}.pdf"),
                    Some(&stranger)
                )
                .status,
                404,
                "another org's statement"
            );
            session
        },
    );
    step(
        "closing the next period drops February's keys; March's stay",
        || {
            assert_eq!(
                close_at("2026-04-02T12:00:00Z"),
                format!("CM-{}-20260301", org.org_id)
            );
            assert_eq!(keys(&app), ["fine", "seed-2026-03-01T10:00:00Z-2"]);
        },
    );
    step("the statement's PDF", || {
        let bytes = app.get_bytes(&format!("/apis/credits/statements/{number}.pdf"), &session);
        let Some(pages) = pdf_pages(&bytes) else {
            return;
        };
        let text = pages.join("\n");
        assert!(
            text.contains(&format!("Statement {number}"))
                && text.contains("USD 8.55")
                && text.contains("10 Feb 2026")
                && text.contains("28 Feb 2026")
        );
        // One issue date: the list's is the PDF's.
        let list = app.get("/apis/credits/statements", Some(&session)).body;
        let row = list
            .split(&format!("data-number=\"{number}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap();
        let cells: Vec<&str> = row
            .split("<td")
            .skip(1)
            .filter_map(|c| c.split_once('>').and_then(|(_, t)| t.split("</td>").next()))
            .collect();
        let issued = cells[3];
        assert!(
            text.contains(&format!("issued {issued}")),
            "{issued} in {text}"
        );
    });
}

#[test]
fn r7_the_server_closes_due_periods_by_itself() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T12:00:00Z"))
        .close_every(std::time::Duration::from_millis(100))
        .spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 1_000, "2026-02-01T08:00:00Z");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while statements_of(&app, org.org_id).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no statement was issued"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        statements_of(&app, org.org_id).len(),
        1,
        "one statement, however often the closer runs"
    );
}

#[test]
fn r6_a_statement_priced_by_two_plans_shows_each_plan_with_its_days() {
    use creditmeter::domain::pricing::PricePlan;
    use creditmeter::store::plans;
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T12:00:00Z"))
        .spawn();
    let org = app.seed_org("two plans", Edition::Standard, "UTC");
    app.set_limit_at(org.org_id, 100_000, "2026-02-01T08:00:00Z");
    let utc = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 2, d).unwrap();
    // Published on 5 Feb, in force from 15 Feb: 1.00 per 1,000 credits, one tier.
    let plan = |currency: &str| {
        PricePlan::from_toml(&format!(
            "currency = \"{currency}\"\nblock = 1000\n[[tiers]]\nprice = \"1.00\"\n"
        ))
        .unwrap()
    };
    let published_at = utc("2026-02-05T00:00:00Z");
    plans::publish(&mut app.conn(), &plan("USD"), day(15), published_at).unwrap();
    // One currency: a plan in another is refused with its reason.
    let refused = plans::publish(&mut app.conn(), &plan("EUR"), day(20), published_at);
    assert!(
        matches!(refused, Err(plans::PublishError::Currency { .. })),
        "{refused:?}"
    );
    // 52,500 free, then 10,000 additional credits on each side: 1.40 on the default plan, 10.00
    // on the new one.
    app.record(
        org.org_id,
        &[
            ("2026-02-10T10:00:00Z", 62_500),
            ("2026-02-20T10:00:00Z", 62_500),
        ],
    );
    let issued =
        creditmeter::billing::close_due(&mut app.conn(), utc("2026-03-02T12:00:00Z"), None)
            .unwrap();
    let number = format!("CM-{}-20260201", org.org_id);
    assert_eq!(issued, std::slice::from_ref(&number));
    assert_eq!(statements_of(&app, org.org_id)[0].3, 1140);
    let session = app.sign_in(&org.admin);
    let statement = app.get_bytes(&format!("/apis/credits/statements/{number}.pdf"), &session);
    // A statement issued before lines carried their plan still prints, with the plans in force.
    let legacy = {
        use diesel::RunQueryDsl;
        let row = creditmeter::store::statements::by_number(&mut app.conn(), org.org_id, &number)
            .unwrap()
            .unwrap();
        let mut lines: serde_json::Value = serde_json::from_str(&row.lines_json).unwrap();
        for line in lines.as_array_mut().unwrap() {
            line.as_object_mut().unwrap().remove("plan_id");
        }
        diesel::sql_query(format!(
            "UPDATE statements SET lines_json = '{}' WHERE id = {}",
            lines, row.id
        ))
        .execute(&mut *app.conn())
        .unwrap();
        app.get_bytes(&format!("/apis/credits/statements/{number}.pdf"), &session)
    };
    assert_eq!(
        pdf_pages(&legacy),
        pdf_pages(&statement),
        "the same text (the PDFs' random ids differ)"
    );
    let details = app.get_bytes(
        "/apis/credits/details.pdf?from=2026-02-01&to=2026-02-28",
        &session,
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("statement-two-plans.pdf"), &statement).unwrap();
    for bytes in [statement, details] {
        let Some(pages) = pdf_pages(&bytes) else {
            return;
        };
        let text = pages.join("\n");
        assert!(
            text.contains("Price plan of 1 Feb 2026 - 14 Feb 2026 (14 days)")
                && text.contains("Price plan of 15 Feb 2026 - 28 Feb 2026 (14 days)")
                && text.contains("0.14")
                && text.contains("1.00")
                && text.contains("USD 11.40"),
            "{text}"
        );
        assert!(!text.contains("Price plan in force"), "{text}");
    }
}

/// The fonts of a PDF as pdffonts lists them: (name, embedded, subset) per font.
fn pdf_fonts(bytes: &[u8]) -> Vec<(String, bool, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("pdffonts")
        .arg(&path)
        .output()
        .expect("pdffonts comes with pdftotext (poppler-utils)");
    assert!(out.status.success());
    // name, type words, encoding, emb, sub, uni, object id, generation.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let n = words.len();
            (
                words[0].to_string(),
                words[n - 5] == "yes",
                words[n - 4] == "yes",
            )
        })
        .collect()
}

/// Names in Latin, Greek, Cyrillic, CJK and Arabic print in every PDF with embedded subset fonts,
/// and `pdftotext` gives each back as written (Arabic in its logical, right-to-left order).
#[test]
fn every_script_prints_in_the_pdfs_and_reads_back() {
    use creditmeter::ledger::{self, Kind, UsageRequest};
    let app = TestApp::builder()
        .clock(fixed("2026-03-02T18:00:00Z"))
        .spawn();
    let org = app.seed_org("scripts", Edition::Standard, "UTC");
    // Longer than a line of the heading: it wraps there, whole.
    let name = "Müller & Söhne 株式会社 مؤسسة النور Σοφία Москва 한국 Industrieanlagen und \
                Maschinenbau Gesellschaft mit beschränkter Haftung, Zweigniederlassung Nord";
    creditmeter::store::orgs::update(
        &mut app.conn(),
        org.org_id,
        &creditmeter::store::orgs::OrgUpdate {
            name: Some(name.into()),
            ..Default::default()
        },
        app.clock.now(),
    )
    .unwrap();
    app.set_limit_at(org.org_id, 200_000, "2026-02-01T00:00:00Z");
    let names = [
        ("検索", "東京-gateway", "李小龙"),
        ("تقرير", "клиент-1", "محمد"),
        ("résumé", "Ωmega", "Σωκράτης"),
    ];
    // Clients whose long names differ only at their end: wrapped in the PDFs, not cut.
    let client_of = |i: usize| {
        format!(
            "{}.eu-west-1.internal.example.com/gateway/v2/{}",
            names[i].1,
            ["alpha", "bravo", "charlie"][i]
        )
    };
    let requests: Vec<UsageRequest> = (0..12)
        .map(|i| UsageRequest {
            org_id: org.org_id,
            kind: Kind::Metered,
            event_id: Some(format!("s-{i}")),
            occurred_at: chrono::DateTime::parse_from_rfc3339("2026-02-20T10:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc)
                + chrono::Duration::hours(i),
            credits: 15_000,
            operation: names[i as usize % 3].0.to_string(),
            client: client_of(i as usize % 3),
            user: names[i as usize % 3].2.to_string(),
        })
        .collect();
    ledger::apply_batch(&mut app.conn(), app.clock.now(), &requests).unwrap();
    let issued = creditmeter::billing::close_due(&mut app.conn(), app.clock.now(), None).unwrap();
    assert_eq!(issued.len(), 1);
    let session = app.sign_in(&org.admin);
    let statement = app.get_bytes(
        &format!("/apis/credits/statements/{}.pdf", issued[0]),
        &session,
    );
    let details = app.get_bytes(
        "/apis/credits/details.pdf?from=2026-02-01&to=2026-02-28",
        &session,
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scripts-statement.pdf"), &statement).unwrap();
    std::fs::write(dir.join("scripts-details.pdf"), &details).unwrap();
    for (what, bytes) in [("statement", &statement), ("details", &details)] {
        // Subsets: the CJK face alone is 4 MB whole.
        assert!(bytes.len() < 400_000, "{what}: {} bytes", bytes.len());
        let Some(pages) = pdf_pages(bytes) else {
            return;
        };
        // pdftotext marks a right-to-left run with U+202B ... U+202C and moves the space at its
        // end; every character comes back in the order it was written.
        let text: String = pages
            .join("\n")
            .chars()
            .filter(|c| !('\u{202a}'..='\u{202e}').contains(c))
            .collect();
        let bare = |s: &str| s.split_whitespace().collect::<String>();
        // The heading's lines: the name, wrapped, then "Range".
        let heading: String = text
            .lines()
            .skip_while(|l| !l.contains("Müller"))
            .take_while(|l| !l.contains("Range"))
            .collect();
        assert!(
            bare(&heading).starts_with(&bare(name)),
            "{what}: the name as written in {heading:?}"
        );
        assert!(
            !text.contains('?'),
            "{what}: no replacement marks in {text}"
        );
        let fonts = pdf_fonts(bytes);
        assert!(!fonts.is_empty());
        for (font, embedded, subset) in &fonts {
            assert!(*embedded && *subset, "{what}: {font} embedded and subset");
        }
        assert!(
            fonts
                .iter()
                .any(|(f, ..)| f.ends_with("+DroidSansFallback"))
                && fonts.iter().any(|(f, ..)| f.ends_with("+DejaVuSans")),
            "{what}: {fonts:?}"
        );
    }
    // The cost tables of both PDFs, with every name as written.
    for bytes in [&details, &statement] {
        let text = pdf_pages(bytes).unwrap().join("\n");
        assert!(text.contains("Cost by user"), "{text}");
        for (i, (operation, client, user)) in names.iter().enumerate() {
            let tail = ["alpha", "bravo", "charlie"][i];
            assert!(
                text.contains(operation)
                    && text.contains(&format!("{client}.eu-west-1"))
                    && text.contains(&format!("v2/{tail}"))
                    && text.contains(user),
                "{operation}, {} and {user} in {text}",
                client_of(i)
            );
        }
    }
}
