//! R13/R14 against the real server: threshold crossings recorded once and delivered to a signed
//! webhook through failures and a hanging receiver; the budget cap refusing the call that would
//! pass it, restarting with the next period; the settings forms and their audit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, TestApp, fixed, text_of_id};
use creditmeter::domain::allowance::Edition;
use creditmeter::webhooks::WebhookConfig;
use serde_json::{Value, json};

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub signature: String,
    pub event: String,
    pub body: String,
    pub answered: u16,
}

/// A webhook receiver on 127.0.0.1 that fails its first `fail` requests with 500, hangs (never
/// answers) on the next `hang`, and answers 200 after that.
pub(crate) struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(fail: usize, hang: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut headers = HashMap::new();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap_or(0);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap_or(());
                    let answered = if n < fail {
                        500
                    } else if n < fail + hang {
                        0
                    } else {
                        200
                    };
                    seen.lock().unwrap().push(Received {
                        signature: headers
                            .get("x-creditmeter-signature")
                            .cloned()
                            .unwrap_or_default(),
                        event: headers
                            .get("x-creditmeter-event")
                            .cloned()
                            .unwrap_or_default(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                        answered,
                    });
                    if answered == 0 {
                        std::thread::sleep(Duration::from_secs(5));
                    }
                    if answered != 0 {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                });
            }
        });
        Receiver { port, got }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/creditmeter", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// What a receiver does with `X-Creditmeter-Signature`: the HMAC of "t.body" matches, and t is
/// within `tolerance` of the receiver's clock (so a replay of an old request is refused).
fn verify(secret: &str, header: &str, body: &str, now: i64, tolerance: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let expected = creditmeter::secrets::hmac_hex(secret, &format!("{t}.{body}"));
    creditmeter::secrets::constant_time_eq(&expected, v1) && (now - t).abs() <= tolerance
}

fn fast_webhooks() -> WebhookConfig {
    WebhookConfig {
        allow_private: true,
        retry_base: Duration::from_millis(200),
        max_attempts: 8,
        timeout: Duration::from_secs(1),
    }
}

fn consume(app: &TestApp, token: &str, credits: i64) -> common::Response {
    app.api(
        "POST",
        "/api/v1/consume",
        token,
        &json!({ "credits": credits }).to_string(),
    )
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

/// Consume latencies of `calls` calls of 1 credit, for the report (never asserted).
fn consume_latencies(app: &TestApp, token: &str, calls: usize) -> Vec<Duration> {
    (0..calls)
        .map(|_| {
            let started = Instant::now();
            let r = consume(app, token, 1);
            assert!(r.status == 200 || r.status == 429, "{}", r.body);
            started.elapsed()
        })
        .collect()
}

#[test]
fn each_threshold_is_delivered_once_signed_through_failures_and_a_hang() {
    let receiver = Receiver::start(2, 1);
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .webhooks(fast_webhooks())
        .spawn();
    let org = app.seed_org("hooked", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    let quiet = app.seed_org("quiet", Edition::Standard, "UTC");
    let quiet_token = app.token(quiet.org_id);
    app.set_limit(org.org_id, 1000);
    let session = app.sign_in(&org.super_admin);

    let secret = common::step(
        "the super admin sets the webhook URL and sees the secret once",
        || {
            let r = app.post_signed(
                "/apis/credits/alerts/webhook",
                &session,
                &[
                    ("webhook_url", &receiver.url()),
                    ("csrf_token", &session.csrf),
                ],
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let secret = text_of_id(&r.body, "webhook-secret").expect("the secret is shown");
            assert!(secret.starts_with("whsec_"), "{secret}");
            let again = app.get("/apis/credits/alerts", Some(&session));
            assert!(
                !again.body.contains(&secret),
                "the secret is shown once only"
            );
            secret
        },
    );

    let baseline = consume_latencies(&app, &quiet_token, 300);

    common::step(
        "free credits, then 20 calls of 50 from 4 threads cross 50, 80 and 100%",
        || {
            assert_eq!(consume(&app, &token, 52_500).status, 200);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..5 {
                            assert_eq!(consume(&app, &token, 50).status, 200);
                        }
                    });
                }
            });
            assert_eq!(app.day_totals(org.org_id, "2026-03-10"), (53_500, 1000));
            let refused = consume(&app, &token, 1);
            assert_eq!(refused.status, 429);
        },
    );

    // While the receiver fails and hangs, another org's calls go on.
    let during = consume_latencies(&app, &quiet_token, 300);
    eprintln!(
        "consume p99 of another org: {:?} before the alerts, {:?} while deliveries fail and hang",
        p99(baseline),
        p99(during)
    );

    let delivered = common::step("each event arrives, and is answered 2xx, once", || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = receiver.received();
            let ok: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
            if ok.len() >= 3 {
                std::thread::sleep(Duration::from_secs(2));
                break;
            }
            assert!(Instant::now() < deadline, "only {got:#?} after 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let got = receiver.received();
        let mut ok: HashMap<String, usize> = HashMap::new();
        for r in got.iter().filter(|r| r.answered == 200) {
            *ok.entry(r.event.clone()).or_default() += 1;
        }
        assert_eq!(ok.len(), 3, "{got:#?}");
        assert!(ok.values().all(|&n| n == 1), "{ok:?}");
        got.into_iter()
            .filter(|r| r.answered == 200)
            .collect::<Vec<_>>()
    });

    common::step(
        "the events say which threshold and day, and their signature verifies",
        || {
            let mut thresholds: Vec<i64> = delivered
                .iter()
                .map(|r| {
                    let v: Value = serde_json::from_str(&r.body).unwrap();
                    assert_eq!(v["type"], "credits.threshold_crossed");
                    assert_eq!(v["id"], r.event.as_str());
                    assert_eq!(v["org"]["id"], org.org_id.get());
                    assert_eq!(v["data"]["day"], "2026-03-10");
                    assert_eq!(v["data"]["additional_limit"], 1000);
                    let now = chrono::Utc::now().timestamp();
                    assert!(verify(&secret, &r.signature, &r.body, now, 300), "{r:?}");
                    // A replay: the same request long after, or with a fresh t, is refused.
                    assert!(!verify(&secret, &r.signature, &r.body, now + 600, 300));
                    let fresh = r.signature.replacen("t=", &format!("t={}", now + 1), 1);
                    assert!(!verify(&secret, &fresh, &r.body, now, 300));
                    assert!(!verify("whsec_other", &r.signature, &r.body, now, 300));
                    v["data"]["threshold"].as_i64().unwrap()
                })
                .collect();
            thresholds.sort();
            assert_eq!(thresholds, [50, 80, 100]);
        },
    );

    common::step(
        "the Alerts page shows the crossings and every attempt",
        || {
            let page = app.get("/apis/credits/alerts", Some(&session));
            assert_eq!(page.status, 200);
            for t in ["50%", "80%", "100%"] {
                assert!(
                    page.body
                        .contains(&format!("{t} of the daily additional limit on 10 Mar 2026")),
                    "{t}: {}",
                    page.body
                );
            }
            assert_eq!(page.body.matches("data-state=\"delivered\"").count(), 3);
            assert!(
                page.body.contains("answered 500"),
                "failed attempts are listed"
            );
            let tab = app.get("/apis/credits", Some(&session));
            assert!(tab.body.contains("100% of the daily additional limit"));
        },
    );

    common::step(
        "the crossings are recorded once, whatever was retried",
        || {
            use creditmeter::db::schema::alerts;
            use diesel::prelude::*;
            let count: i64 = alerts::table
                .filter(alerts::org_id.eq(org.org_id))
                .count()
                .get_result(&mut *app.conn())
                .unwrap();
            assert_eq!(count, 3);
        },
    );
}

#[test]
fn the_budget_refuses_the_call_that_would_pass_it_and_restarts_next_period() {
    // Anchored 10 Feb: the period runs 10 Feb to 10 Mar; now is its last evening.
    let app = TestApp::builder()
        .clock(fixed("2026-03-09T20:00:00Z"))
        .spawn();
    let org = app.seed_org("capped", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    app.set_limit_at(org.org_id, 500_000, "2026-02-10T09:00:00Z");
    let session = app.sign_in(&org.super_admin);
    let r = app.post_signed(
        "/apis/credits/alerts/budget",
        &session,
        &[
            ("budget", "1.00"),
            ("budget_stop", "on"),
            ("csrf_token", &session.csrf),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);

    common::step(
        "R5 prices each day once: 7,178 additional credits cost 1.00, 7,179 cost 1.01",
        || {
            assert_eq!(consume(&app, &token, 52_500).status, 200);
            for _ in 0..7 {
                assert_eq!(consume(&app, &token, 1000).status, 200);
            }
            let refused = consume(&app, &token, 1000);
            assert_eq!(refused.status, 429, "{}", refused.body);
            let v = refused.json();
            assert_eq!(v["limit"], "budget");
            assert_eq!(v["allowed"], false);
            let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
            assert_eq!(
                retry,
                4 * 3600,
                "until the next period starts, 10 Mar 00:00 UTC"
            );
            assert_eq!(consume(&app, &token, 178).status, 200);
            assert_eq!(consume(&app, &token, 1).status, 429);
            assert_eq!(
                app.day_totals(org.org_id, "2026-03-09"),
                (52_500 + 7178, 7178)
            );
            let day = creditmeter::store::usage::day(
                &mut app.conn(),
                org.org_id,
                chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
            )
            .unwrap()
            .unwrap();
            assert_eq!(day.amount_minor, 100, "nothing refused was charged");
        },
    );

    common::step(
        "metered usage too: refused today, accepted in the next period",
        || {
            let r = app.api(
                "POST",
                "/api/v1/usage",
                &token,
                &json!([
                    {"id": "late", "timestamp": "2026-03-09T21:00:00Z", "credits": 100},
                    {"id": "next", "timestamp": "2026-03-10T01:00:00Z", "credits": 59_000},
                ])
                .to_string(),
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            assert_eq!(v["results"][0]["status"], "refused");
            assert_eq!(v["results"][0]["reason"], "LIMIT_EXCEEDED");
            assert_eq!(v["results"][1]["status"], "accepted", "{v}");
            // 6,500 additional credits cost 0.91: within the new period's budget.
            assert_eq!(app.day_totals(org.org_id, "2026-03-10"), (59_000, 6_500));
        },
    );

    common::step("the Credits tab says why calls stop", || {
        let tab = app.get("/apis/credits", Some(&session));
        let why = text_of_id(&tab.body, "budget-stop").expect("a reason is shown");
        assert!(why.contains("USD 1.00"), "{why}");
        assert!(why.contains("10 Mar 2026"), "{why}");
    });

    common::step("a budget crossing was recorded for each threshold", || {
        let page = app.get("/apis/credits/alerts", Some(&session));
        for t in ["50%", "80%", "100%"] {
            assert!(
                page.body
                    .contains(&format!("{t} of the budget of the period from 10 Feb 2026")),
                "{t}"
            );
        }
    });
}

#[test]
fn alert_settings_refuse_bad_input_and_are_audited() {
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("settings", Edition::Standard, "UTC");
    let session = app.sign_in(&org.super_admin);
    let before = app.get("/apis/credits/alerts", Some(&session)).body;
    for (path, field, value) in [
        ("/apis/credits/alerts/thresholds", "thresholds", "fifty"),
        ("/apis/credits/alerts/thresholds", "thresholds", "0, 50"),
        (
            "/apis/credits/alerts/thresholds",
            "thresholds",
            "1,2,3,4,5,6,7,8,9,10,11",
        ),
        ("/apis/credits/alerts/budget", "budget", "-5"),
        ("/apis/credits/alerts/budget", "budget", "1.005"),
        ("/apis/credits/alerts/budget", "budget", "lots"),
        ("/apis/credits/alerts/budget", "budget", "99999999999"),
        (
            "/apis/credits/alerts/webhook",
            "webhook_url",
            "ftp://x.example",
        ),
        (
            "/apis/credits/alerts/webhook",
            "webhook_url",
            "https://user@x.example/",
        ),
        (
            "/apis/credits/alerts/webhook",
            "webhook_url",
            "javascript:alert(1)",
        ),
    ] {
        let r = app.post_signed(
            path,
            &session,
            &[(field, value), ("csrf_token", &session.csrf)],
        );
        assert_eq!(r.status, 422, "{path} {value}: {}", r.body);
        assert!(
            text_of_id(&r.body, "form-error").is_some_and(|m| !m.is_empty()),
            "{path} {value}"
        );
    }
    let r = app.post_signed(
        "/apis/credits/alerts/thresholds",
        &session,
        &[("thresholds", "90"), ("csrf_token", "wrong")],
    );
    assert_eq!(r.status, 403);
    let admin = app.sign_in(&org.admin);
    let r = app.post_signed(
        "/apis/credits/alerts/thresholds",
        &admin,
        &[("thresholds", "90"), ("csrf_token", &admin.csrf)],
    );
    assert_eq!(r.status, 403);
    let user = app.sign_in(&org.user);
    assert_eq!(app.get("/apis/credits/alerts", Some(&user)).status, 403);
    let after = app.get("/apis/credits/alerts", Some(&session)).body;
    assert_eq!(
        after.replace(&session.csrf, ""),
        before.replace(&session.csrf, ""),
        "refused changes changed nothing"
    );

    for _ in 0..2 {
        let r = app.post_signed(
            "/apis/credits/alerts/thresholds",
            &session,
            &[("thresholds", "75 ,25"), ("csrf_token", &session.csrf)],
        );
        assert_eq!(r.status, 303);
    }
    let page = app.get("/apis/credits/alerts", Some(&session));
    assert!(page.body.contains("value=\"25, 75\""), "{}", page.body);
    let audit = app.get("/apis/credits/audit", Some(&session));
    assert_eq!(
        audit.body.matches("Alert thresholds").count(),
        1,
        "an unchanged save logs nothing: {}",
        audit.body
    );
    assert!(audit.body.contains("50,80,100") && audit.body.contains("25,75"));
    // From the Credits tab's forms, back to the Credits tab with a message.
    let r = app.post_signed(
        "/apis/credits/alerts/budget",
        &session,
        &[
            ("budget", "250"),
            ("budget_stop", "on"),
            ("from", "credits"),
            ("csrf_token", &session.csrf),
        ],
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/apis/credits"));
    let cookie = r.set_cookie("cm_flash").expect("a message");
    let cookies = format!("cm_session={}; cm_flash={cookie}", session.cookie);
    let tab = common::http::request(
        app.port,
        "GET",
        "/apis/credits",
        &[("Cookie", &cookies)],
        b"",
    );
    assert!(tab.body.contains("The budget is saved."), "{}", tab.body);
    assert!(
        tab.body.contains("value=\"250.00\""),
        "the form shows the budget"
    );
    assert!(
        tab.body
            .contains("USD 250.00 per billing period, calls stop at it")
    );
    // An admin reads the settings without forms.
    let read_only = app.get("/apis/credits/alerts", Some(&admin));
    assert_eq!(read_only.status, 200);
    assert!(
        !read_only
            .body
            .contains("action=\"/apis/credits/alerts/thresholds\"")
    );
}

#[test]
fn deliveries_to_private_addresses_are_refused_unless_allowed() {
    let receiver = Receiver::start(0, 0);
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .webhooks(WebhookConfig {
            allow_private: false,
            max_attempts: 1,
            ..fast_webhooks()
        })
        .spawn();
    let org = app.seed_org("private", Edition::Standard, "UTC");
    let session = app.sign_in(&org.super_admin);
    let r = app.post_signed(
        "/apis/credits/alerts/webhook",
        &session,
        &[
            ("webhook_url", &receiver.url()),
            ("csrf_token", &session.csrf),
        ],
    );
    assert_eq!(r.status, 200);
    let r = app.post_signed(
        "/apis/credits/alerts/test",
        &session,
        &[("csrf_token", &session.csrf)],
    );
    assert_eq!(r.status, 303);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = app.get("/apis/credits/alerts", Some(&session)).body;
        if page.contains("data-state=\"failed\"") {
            assert!(page.contains("loopback, private or link-local"), "{page}");
            break;
        }
        assert!(Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(receiver.received().is_empty(), "nothing reached 127.0.0.1");
}

#[test]
fn org_update_with_a_webhook_url_prints_its_secret_once() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("cli-hook", Edition::Standard, "UTC");
    let (url, id) = (app.sqlite_url(), org.org_id.get().to_string());
    let update = |hook: &str| {
        crate::edge::run_cli(
            &url,
            &["org", "update", "--org", &id, "--webhook-url", hook],
            "",
        )
    };
    for bad in ["ftp://x.example", "https://", "https://a@b/"] {
        let (ok, out, err) = update(bad);
        assert!(!ok && out.is_empty(), "{bad}");
        assert!(err.contains("--webhook-url"), "{err}");
    }
    let (ok, out, err) = update("https://hooks.example.com/creditmeter");
    assert!(ok, "{err}");
    assert!(
        out.trim().starts_with("whsec_") && out.lines().count() == 1,
        "{out}"
    );
    let (ok, again, _) = update("https://hooks.example.com/other");
    assert!(ok && again.is_empty(), "the secret is shown once: {again}");
    let settings = creditmeter::store::alerts::settings(&mut app.conn(), org.org_id).unwrap();
    assert_eq!(
        settings.webhook_url.as_deref(),
        Some("https://hooks.example.com/other")
    );
}

/// One org's receiver that hangs holds only that org's deliveries: another org's test events are
/// delivered meanwhile. "Retry now" sends a failed delivery again at once.
#[test]
fn a_hanging_receiver_holds_up_no_other_org_and_retry_now_resends() {
    let hanging = Receiver::start(0, 1000);
    let healthy = Receiver::start(0, 0);
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .webhooks(WebhookConfig {
            timeout: Duration::from_secs(3),
            max_attempts: 1,
            ..fast_webhooks()
        })
        .spawn();
    let slow = app.seed_org("slow", Edition::Standard, "UTC");
    let fast = app.seed_org("fast", Edition::Standard, "UTC");
    let slow_session = app.sign_in(&slow.super_admin);
    let fast_session = app.sign_in(&fast.super_admin);
    for (session, receiver) in [(&slow_session, &hanging), (&fast_session, &healthy)] {
        let r = app.post_signed(
            "/apis/credits/alerts/webhook",
            session,
            &[
                ("webhook_url", &receiver.url()),
                ("csrf_token", &session.csrf),
            ],
        );
        assert_eq!(r.status, 200);
    }
    let test_event = |session: &common::Session| {
        let r = app.post_signed(
            "/apis/credits/alerts/test",
            session,
            &[("csrf_token", &session.csrf)],
        );
        assert_eq!(r.status, 303);
    };
    for _ in 0..3 {
        test_event(&slow_session);
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    for _ in 0..5 {
        test_event(&fast_session);
    }
    while healthy.received().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other org's events wait behind a hanging receiver: {:?}",
            healthy.received()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "5 events of another org delivered in {:?} while a receiver hangs",
        started.elapsed()
    );

    common::step("a failed delivery is sent again by retry now", || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let page = loop {
            let page = app.get("/apis/credits/alerts", Some(&slow_session)).body;
            if page.matches("data-state=\"failed\"").count() == 3 {
                break page;
            }
            assert!(Instant::now() < deadline, "{page}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let action = page
            .split("action=\"")
            .find(|a| a.starts_with("/apis/credits/alerts/deliveries/"))
            .and_then(|a| a.split('"').next())
            .expect("a retry button")
            .to_string();
        let before = hanging.received().len();
        let r = app.post_signed(
            &action,
            &slow_session,
            &[("csrf_token", &slow_session.csrf)],
        );
        assert_eq!(r.status, 303);
        let deadline = Instant::now() + Duration::from_secs(5);
        while hanging.received().len() == before {
            assert!(Instant::now() < deadline, "not sent again");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Another org's delivery cannot be retried through this org.
        let foreign = app.post_signed(
            &action,
            &fast_session,
            &[("csrf_token", &fast_session.csrf)],
        );
        assert_eq!(foreign.status, 404);
    });
}

/// A budget holds over a period whose days two plans price: the first day under a new plan, met
/// after the writer has read the period, is charged at that plan.
#[test]
fn a_day_priced_by_a_new_plan_counts_against_the_budget() {
    use creditmeter::domain::pricing::PricePlan;
    use creditmeter::store::plans;
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("replanned", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    app.set_limit_at(org.org_id, 500_000, "2026-03-05T08:00:00Z");
    let expensive =
        PricePlan::from_toml("currency = \"USD\"\nblock = 1000\n[[tiers]]\nprice = \"1.00\"\n")
            .unwrap();
    let published = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let from = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    plans::publish(&mut app.conn(), &expensive, from, published).unwrap();
    let session = app.sign_in(&org.super_admin);
    let r = app.post_signed(
        "/apis/credits/alerts/budget",
        &session,
        &[
            ("budget", "2"),
            ("budget_stop", "on"),
            ("csrf_token", &session.csrf),
        ],
    );
    assert_eq!(r.status, 303);
    let usage = |id: &str, at: &str, credits: i64| {
        let body = json!([{"id": id, "timestamp": at, "credits": credits}]).to_string();
        let r = app.api("POST", "/api/v1/usage", &token, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["results"][0]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // 52,500 free a day. 8 Mar, the default plan: 1,000 additional credits cost 0.14.
    assert_eq!(usage("a", "2026-03-08T10:00:00Z", 53_500), "accepted");
    // 10 Mar, the new plan: 10,000 additional credits would cost 10.00, 1,000 cost 1.00.
    assert_eq!(usage("b", "2026-03-10T10:00:00Z", 62_500), "refused");
    assert_eq!(usage("c", "2026-03-10T10:00:00Z", 53_500), "accepted");
    assert_eq!(usage("d", "2026-03-10T11:00:00Z", 1_000), "refused");
    let charged: i64 = creditmeter::store::usage::days_in(
        &mut app.conn(),
        org.org_id,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 5).unwrap(),
        from,
    )
    .unwrap()
    .iter()
    .map(|d| d.amount_minor)
    .sum();
    assert_eq!(charged, 114);
}

/// The outbox's leases: one worker at a time takes a due delivery, not before its retry time, and
/// only the lease's holder moves it on.
#[test]
fn only_the_holder_of_a_lease_records_a_delivery() {
    use creditmeter::store::alerts::{self as outbox, Attempt, State};
    let app = TestApp::builder().spawn();
    let org = app.seed_org("leases", Edition::Standard, "UTC");
    let mut conn = app.conn();
    let now = chrono::Utc::now();
    let event = creditmeter::webhooks::test_event(org.org_id, "leases", now);
    outbox::enqueue(&mut conn, org.org_id, &event, now).unwrap();
    let later = now + chrono::Duration::seconds(1);
    let due = outbox::due(&mut conn, later, &[], 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(
        outbox::due(&mut conn, later, &[org.org_id], 10)
            .unwrap()
            .is_empty(),
        "a busy org waits"
    );
    let until = later + chrono::Duration::seconds(60);
    assert!(outbox::lease(&mut conn, &due[0], later, until, "first").unwrap());
    assert!(
        !outbox::lease(&mut conn, &due[0], later, until, "second").unwrap(),
        "held"
    );
    let failed = Attempt {
        at: later,
        status_code: Some(500),
        latency_ms: 3,
        error: Some("answered 500".into()),
    };
    // A worker whose lease was taken over changes nothing but the log.
    outbox::finish_attempt(&mut conn, due[0].id, "second", &failed, State::Failed, None).unwrap();
    let retry_at = later + chrono::Duration::seconds(30);
    outbox::finish_attempt(
        &mut conn,
        due[0].id,
        "first",
        &failed,
        State::Pending,
        Some(retry_at),
    )
    .unwrap();
    let rows = outbox::recent_deliveries(&mut conn, org.org_id, 10).unwrap();
    assert_eq!(
        (rows[0].state.as_str(), rows[0].attempts.len()),
        ("pending", 2)
    );
    // Not due again before its retry time, whoever read it earlier.
    assert!(!outbox::lease(&mut conn, &due[0], later, until, "third").unwrap());
    assert!(outbox::due(&mut conn, later, &[], 10).unwrap().is_empty());
    let again = outbox::due(&mut conn, retry_at, &[], 10).unwrap();
    assert_eq!(again[0].attempts, 1);
    assert!(outbox::lease(&mut conn, &again[0], retry_at, until, "third").unwrap());
}
