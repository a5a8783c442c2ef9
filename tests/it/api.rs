//! The gateway's JSON API over HTTP: status codes and bodies of SPEC §4, R4, R9, R12, bad input,
//! generated bodies, concurrency, and a crash with SIGKILL.

use crate::common;

use common::{TestApp, fixed};
use creditmeter::domain::allowance::Edition;
use creditmeter::domain::types::OrgId;
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: &str = "2026-03-10T12:00:00Z";

/// A standard org with 10 licences (52,500 free credits a day), UTC, and its token.
fn setup() -> (TestApp, OrgId, String) {
    let app = TestApp::builder().clock(fixed(NOW)).spawn();
    let org = app.seed_org("acme", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    (app, org.org_id, token)
}

fn consume(app: &TestApp, token: &str, body: Value) -> common::Response {
    app.api("POST", "/api/v1/consume", token, &body.to_string())
}

#[test]
fn a_bad_token_is_401_json_and_reveals_nothing() {
    let (app, _, _) = setup();
    let paths = [
        ("POST", "/api/v1/consume"),
        ("POST", "/api/v1/usage"),
        ("GET", "/api/v1/credits"),
        ("GET", "/api/v1/usage/daily"),
        ("GET", "/api/v1/ping"),
    ];
    let mut bodies = Vec::new();
    for (method, path) in paths {
        for token in [
            "",
            "cm_0000000000000000000000000000000000000000000000000000000000000000",
            "garbage",
        ] {
            let r = app.api(method, path, token, "{\"credits\": 1}");
            assert_eq!(r.status, 401, "{method} {path} {token:?}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.json()["error"], "UNAUTHORIZED");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            bodies.push(r.body);
        }
        let r = common::http::request(app.port, method, path, &[], b"");
        assert_eq!(r.status, 401);
        bodies.push(r.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every refusal reads the same"
    );
    let r = app.api("GET", "/api/v1/nope", "x", "");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[test]
fn r4_free_first_then_additional_then_refused_whole() {
    let (app, org, token) = setup();
    let r = consume(
        &app,
        &token,
        json!({"credits": 52_000, "operation": "search", "client": "web"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"allowed": true, "free_remaining": 500, "additional_remaining": 0})
    );
    assert_eq!(r.header("x-api-credits-remaining"), Some("500"));

    let r = consume(&app, &token, json!({"credits": 501}));
    assert_eq!(r.status, 429);
    let body = r.json();
    assert_eq!(
        (
            body["allowed"].clone(),
            body["error"].clone(),
            body["limit"].clone()
        ),
        (json!(false), json!("CREDITS_EXHAUSTED"), json!("free"))
    );
    assert_eq!(r.header("x-api-credits-remaining"), Some("500"));
    assert_eq!(
        r.header("retry-after"),
        Some("43200"),
        "seconds until the org's next local day"
    );

    app.set_limit(org, 1_000);
    let r = consume(&app, &token, json!({"credits": 600}));
    assert_eq!(
        r.json(),
        json!({"allowed": true, "free_remaining": 0, "additional_remaining": 900})
    );
    let r = consume(&app, &token, json!({"credits": 901}));
    assert_eq!(
        (r.status, r.json()["limit"].clone()),
        (429, json!("additional"))
    );
    let r = consume(&app, &token, json!({"credits": 900}));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-api-credits-remaining"), Some("0"));
    assert_eq!(
        app.day_totals(org, "2026-03-10"),
        (53_500, 1_000),
        "refused calls are never charged"
    );

    let today = app.api("GET", "/api/v1/credits", &token, "").json();
    assert_eq!(
        today,
        json!({"day": "2026-03-10", "free_allowance": 52_500, "used": 53_500, "free_remaining": 0,
               "additional_limit": 1_000, "additional_used": 1_000, "additional_remaining": 0})
    );
    // R11: lowering the limit below what was spent refuses further calls; what was spent stays.
    app.set_limit(org, 500);
    assert_eq!(consume(&app, &token, json!({"credits": 1})).status, 429);
    assert_eq!(app.day_totals(org, "2026-03-10"), (53_500, 1_000));
}

#[test]
fn r9_a_retried_consume_is_counted_once() {
    let (app, org, token) = setup();
    for _ in 0..5 {
        let r = consume(&app, &token, json!({"credits": 100, "id": "call-1"}));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["free_remaining"], 52_400);
    }
    assert_eq!(app.day_totals(org, "2026-03-10"), (100, 0));
}

#[test]
fn r12_metered_usage_follows_the_limit_in_force_at_each_event() {
    let (app, org, token) = setup();
    let events = json!([
        {"id": "e1", "timestamp": "2026-03-09T10:00:00Z", "credits": 52_500},
        // The day before any limit was set: only free credits could be spent.
        {"id": "e2", "timestamp": "2026-03-09T11:00:00Z", "credits": 1},
        {"id": "e1", "timestamp": "2026-03-09T10:00:00Z", "credits": 52_500},
        {"id": "e3", "timestamp": "2026-03-11T13:00:00Z", "credits": 5},
        {"id": "e4", "timestamp": "2026-03-10T09:00:00+02:00", "credits": 7, "operation": "ocr", "client": "etl"}
    ]);
    let r = app.api("POST", "/api/v1/usage", &token, &events.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"accepted": 2, "duplicates": 1, "refused": 2, "results": [
            {"id": "e1", "status": "accepted"},
            {"id": "e2", "status": "refused", "reason": "LIMIT_EXCEEDED"},
            {"id": "e1", "status": "duplicate"},
            {"id": "e3", "status": "refused", "reason": "FUTURE_TIMESTAMP"},
            {"id": "e4", "status": "accepted"}
        ]})
    );
    assert_eq!(app.day_totals(org, "2026-03-09"), (52_500, 0));
    assert_eq!(app.day_totals(org, "2026-03-10"), (7, 0));

    // With a limit set now, an event dated before it still spends only free credits (R12),
    // while one dated after it may use additional credits.
    app.set_limit(org, 100_000);
    let r = app.api_typed(
        "POST",
        "/api/v1/usage",
        &token,
        "{\"id\":\"late\",\"timestamp\":\"2026-03-09T23:00:00Z\",\"credits\":10}\n\
         {\"id\":\"e1\",\"timestamp\":\"2026-03-09T10:00:00Z\",\"credits\":52500}\n\n\
         {\"id\":\"now\",\"timestamp\":\"2026-03-10T12:00:00Z\",\"credits\":80000}\n",
        "application/x-ndjson",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        (
            body["accepted"].clone(),
            body["duplicates"].clone(),
            body["refused"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(body["results"][0]["reason"], "LIMIT_EXCEEDED");
    assert_eq!(app.day_totals(org, "2026-03-10"), (80_007, 27_507));

    let daily = app
        .api(
            "GET",
            "/api/v1/usage/daily?from=2026-03-08&to=2026-03-10",
            &token,
            "",
        )
        .json();
    assert_eq!(daily["currency"], "USD");
    assert_eq!(
        daily["days"],
        json!([
            {"day": "2026-03-08", "credits": 0, "additional": 0, "amount": "0.00"},
            {"day": "2026-03-09", "credits": 52_500, "additional": 0, "amount": "0.00"},
            // 27,507 additional credits: 3.50 + 2,507 × 0.06 / 1,000 = 3.65042 → 3.65
            {"day": "2026-03-10", "credits": 80_007, "additional": 27_507, "amount": "3.65"}
        ])
    );
    assert_eq!(daily["total_amount"], "3.65");
    let default = app.api("GET", "/api/v1/usage/daily", &token, "").json();
    assert_eq!(
        (default["from"].as_str(), default["to"].as_str()),
        (Some("2026-02-09"), Some("2026-03-10"))
    );
    assert_eq!(default["days"].as_array().unwrap().len(), 30);
    for bad in [
        "?from=2026-03-10&to=2026-03-01",
        "?from=2025-01-01&to=2026-03-01",
        "?from=yesterday&to=2026-03-01",
        "?from=2026-03-01",
        "?from=%ZZ",
    ] {
        let r = app.api("GET", &format!("/api/v1/usage/daily{bad}"), &token, "");
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("INVALID_RANGE")),
            "{bad}"
        );
    }
}

#[test]
fn r12_events_within_one_request_are_admitted_in_timestamp_order() {
    let (app, org, token) = setup();
    app.set_limit(org, 0);
    // Listed late-first; in timestamp order the early event takes the free credits.
    let events = json!([
        {"id": "late", "timestamp": "2026-03-10T11:00:00Z", "credits": 500},
        {"id": "early", "timestamp": "2026-03-10T01:00:00Z", "credits": 52_200}
    ]);
    let r = app
        .api("POST", "/api/v1/usage", &token, &events.to_string())
        .json();
    assert_eq!(
        r["results"],
        json!([{"id": "late", "status": "refused", "reason": "LIMIT_EXCEEDED"}, {"id": "early", "status": "accepted"}])
    );
}

/// Days before the first price plan have nothing charged; asking for them is not an error.
#[test]
fn daily_usage_before_the_first_plan_is_answered() {
    let (app, _, token) = setup();
    for range in [
        "from=1969-12-31&to=1969-12-31",
        "from=0001-01-01&to=0001-01-01",
    ] {
        let r = app.api("GET", &format!("/api/v1/usage/daily?{range}"), &token, "");
        assert_eq!(r.status, 200, "{range}: {}", r.body);
        assert_eq!(r.json()["total_amount"], "0.00");
    }
}

/// Media types are case-insensitive: NDJSON is recognised in any case.
#[test]
fn ndjson_is_recognised_in_any_case() {
    let (app, _, token) = setup();
    let body = format!("{{\"id\":\"nd-1\",\"timestamp\":\"{NOW}\",\"credits\":2}}\n");
    let r = app.api_typed(
        "POST",
        "/api/v1/usage",
        &token,
        &body,
        "Application/X-NDJSON",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["accepted"], 1);
}

#[test]
fn malformed_bodies_are_400_and_record_nothing() {
    let (app, org, token) = setup();
    for body in [
        "",
        "{",
        "[]x",
        "null",
        "{\"credits\": \"10\"}",
        "{\"credits\": 1.5}",
        "{\"credits\": -1}",
        "{\"credits\": 0}",
        "{\"credits\": 1000000001}",
        "{\"credits\": 1e40}",
        "{\"credits\": 99999999999999999999999}",
        "{}",
        "{\"credits\": 5, \"id\": \"\"}",
        "{\"credits\": 5, \"id\": 7}",
        "{\"credits\": 5, \"operation\": [1]}",
    ] {
        let r = app.api("POST", "/api/v1/consume", &token, body);
        assert_eq!(r.status, 400, "{body:?} gave {} {}", r.status, r.body);
        assert_eq!(r.json()["error"], "INVALID_REQUEST");
    }
    for body in [
        "{}",
        "[{\"id\": \"a\", \"credits\": 5}]",
        "[{\"id\": \"a\", \"timestamp\": \"2026-03-10T10:00:00Z\", \"credits\": 0}]",
        "[{\"id\": \"ok\", \"timestamp\": \"2026-03-10T10:00:00Z\", \"credits\": 5}, {\"id\": \"b\", \"timestamp\": \"noon\", \"credits\": 5}]",
        "[{\"id\": \"a\", \"timestamp\": \"2026-03-10T10:00:00Z\", \"credits\": -5}]",
        "[1, 2]",
    ] {
        let r = app.api("POST", "/api/v1/usage", &token, body);
        assert_eq!(r.status, 400, "{body:?} gave {} {}", r.status, r.body);
    }
    let r = app.api_typed(
        "POST",
        "/api/v1/usage",
        &token,
        "{\"id\":\"ok\",\"timestamp\":\"2026-03-10T10:00:00Z\",\"credits\":5}\nnot json\n",
        "application/x-ndjson",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("line 2"));
    assert_eq!(
        app.day_totals(org, "2026-03-10"),
        (0, 0),
        "nothing was recorded"
    );
    assert_eq!(
        app.api("GET", "/api/v1/credits", &token, "").json()["used"],
        0
    );
}

#[test]
fn the_openapi_document_matches_the_real_routes() {
    use creditmeter::domain::event::MAX_TEXT;
    use creditmeter::domain::types::MAX_CREDITS_PER_EVENT;
    let (app, _, token) = setup();
    let r = common::http::request(app.port, "GET", "/api/v1/openapi.json", &[], b"");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    // Every route the server has is documented, and nothing else.
    let mut routes: Vec<(String, String)> = creditmeter::web::API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    // Every documented call exists and needs a token (but the document itself).
    for (method, path) in &documented {
        let r = app.api(&method.to_uppercase(), path, &token, "[]");
        assert!(
            r.status != 404 && r.status != 405,
            "{method} {path} is documented but answers {}",
            r.status
        );
        if path != "/api/v1/openapi.json" {
            let anonymous = common::http::request(app.port, &method.to_uppercase(), path, &[], b"");
            assert_eq!(anonymous.status, 401, "{method} {path} must need a token");
            assert!(
                doc["paths"][path][method]["responses"]["401"].is_object(),
                "{path} documents its 401"
            );
        }
    }
    // Any other method on these paths is refused 405, naming the documented one in `Allow`.
    for path in paths.keys() {
        let allowed: Vec<String> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.to_uppercase())
            .collect();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if allowed.iter().any(|m| m == method) {
                continue;
            }
            let r = app.api(method, path, &token, "");
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some(allowed.join(", ").as_str()));
        }
    }
    // The limits come from the domain's constants.
    let schemas = &doc["components"]["schemas"];
    for body in ["ConsumeBody", "UsageEventBody"] {
        let credits = &schemas[body]["properties"]["credits"];
        assert_eq!(credits["maximum"], MAX_CREDITS_PER_EVENT, "{body}");
        assert_eq!(credits["minimum"], 1, "{body}");
        assert_eq!(
            schemas[body]["properties"]["id"]["maxLength"], MAX_TEXT,
            "{body}"
        );
    }
    assert!(
        doc["paths"]["/api/v1/usage"]["post"]["requestBody"]["description"]
            .as_str()
            .unwrap()
            .contains(&creditmeter::domain::money::group_thousands(
                creditmeter::web::api::MAX_EVENTS_PER_REQUEST as i64
            ))
    );
    // The webhook events and the budget refusal are documented (R13/R14).
    assert!(schemas["WebhookEvent"]["properties"]["data"].is_object());
    assert!(schemas["LimitName"].to_string().contains("\"budget\""));
    // The hot path's hand-written answers read back as their documented types.
    let admitted = consume(&app, &token, json!({"credits": 1}));
    let _: creditmeter::web::schema::Admitted = serde_json::from_str(&admitted.body).unwrap();
    let refused = consume(&app, &token, json!({"credits": 1_000_000_000}));
    assert_eq!(refused.status, 429);
    let _: creditmeter::web::schema::Refused = serde_json::from_str(&refused.body).unwrap();
}

#[test]
fn sixty_four_clients_spend_exactly_the_remaining_credits() {
    let (app, org, token) = setup();
    app.set_limit(org, 7_500); // free 52,500 + 7,500 = 60,000 = 600 calls of 100
    let app = std::sync::Arc::new(app);
    let handles: Vec<_> = (0..64)
        .map(|client| {
            let (app, token) = (app.clone(), token.clone());
            std::thread::spawn(move || {
                let mut allowed = 0i64;
                for call in 0..12 {
                    let r = consume(
                        &app,
                        &token,
                        json!({"credits": 100, "id": format!("c{client}-{call}")}),
                    );
                    match r.status {
                        200 => allowed += 1,
                        429 => assert_eq!(r.json()["error"], "CREDITS_EXHAUSTED"),
                        other => panic!("unexpected {other}: {}", r.body),
                    }
                }
                allowed
            })
        })
        .collect();
    let allowed: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(allowed, 600, "exactly the remaining credits were admitted");
    assert_eq!(
        app.day_totals(org, "2026-03-10"),
        (60_000, 7_500),
        "stored totals match the 200s"
    );
    assert_eq!(consume(&app, &token, json!({"credits": 1})).status, 429);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_bodies_never_produce_a_5xx(body in arbitrary_json(), ndjson in any::<bool>()) {
        let (app, _, token) = shared();
        let text = body.to_string();
        let r = app.api("POST", "/api/v1/consume", token, &text);
        prop_assert!(r.status < 500, "consume {} gave {} {}", text, r.status, r.body);
        let content_type = if ndjson { "application/x-ndjson" } else { "application/json" };
        let r = app.api_typed("POST", "/api/v1/usage", token, &text, content_type);
        prop_assert!(r.status < 500, "usage {} gave {} {}", text, r.status, r.body);
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!("2026-03-10T10:00:00Z")),
    ];
    let event = (
        prop_oneof![Just(json!("x")), "\\PC{0,8}".prop_map(Value::from), any::<i64>().prop_map(Value::from)],
        prop_oneof![Just(json!("2026-03-10T10:00:00Z")), Just(json!("2030-01-01T00:00:00Z")), "\\PC{0,8}".prop_map(Value::from)],
        prop_oneof![any::<i64>().prop_map(Value::from), (1i64..100_000).prop_map(Value::from), Just(json!("5"))],
    )
        .prop_map(|(id, timestamp, credits)| json!({"id": id, "timestamp": timestamp, "credits": credits}));
    let shaped = prop_oneof![
        event.clone(),
        proptest::collection::vec(event, 0..5).prop_map(Value::from),
        (prop_oneof![any::<i64>().prop_map(Value::from), Just(json!(10))])
            .prop_map(|c| json!({"credits": c, "id": "p"})),
    ];
    let anything = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![shaped, anything]
}

fn shared() -> &'static (TestApp, OrgId, String) {
    static SHARED: std::sync::OnceLock<(TestApp, OrgId, String)> = std::sync::OnceLock::new();
    SHARED.get_or_init(setup)
}

#[test]
fn r10_acknowledged_consumes_survive_sigkill() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (db_url, org_id, token) = big_org_database(dir.path());
    let mut server = common::Server::start(&db_url, None);
    let port = server.port;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let clients = common::consume_until_gone(vec![port], &token, 16, 3, stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill(); // SIGKILL, mid-load
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap_or_default())
        .collect();
    assert!(
        acknowledged.len() > 50,
        "the load ran ({} acknowledged)",
        acknowledged.len()
    );

    let mut server = common::Server::start(&db_url, None);
    let port = server.port;
    let auth = format!("Bearer {token}");
    let today = common::http::request(
        port,
        "GET",
        "/api/v1/credits",
        &[("Authorization", &auth)],
        b"",
    )
    .json();
    server.kill();
    let used = today["used"].as_i64().unwrap();
    assert!(
        used >= 3 * acknowledged.len() as i64,
        "used {used} < acknowledged {}",
        acknowledged.len()
    );
    assert_all_recorded(&db_url, org_id, &acknowledged);
    // The rollup agrees with the events that made it to disk (acknowledged or not).
    let mut conn =
        creditmeter::db::connect_one(&creditmeter::db::DatabaseUrl::parse(&db_url).unwrap())
            .unwrap();
    let all: i64 = {
        use creditmeter::db::schema::usage_events::dsl;
        use diesel::prelude::*;
        dsl::usage_events
            .filter(dsl::org_id.eq(org_id))
            .select(dsl::credits)
            .load::<i64>(&mut conn)
            .unwrap()
            .iter()
            .sum()
    };
    assert_eq!(all, used);
}

#[test]
fn sigterm_finishes_in_flight_calls_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, org_id, token) = big_org_database(dir.path());
    let mut server = common::Server::start(&db_url, None);
    let port = server.port;
    let clients = common::consume_until_gone(vec![port], &token, 8, 1, Default::default());
    std::thread::sleep(std::time::Duration::from_millis(800));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "a clean exit after SIGTERM, got {status:?}"
    );
    let acknowledged: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap_or_default())
        .collect();
    assert!(
        acknowledged.len() > 20,
        "the load ran ({} acknowledged)",
        acknowledged.len()
    );
    assert_all_recorded(&db_url, org_id, &acknowledged);
}

/// A database file with one Ultimate org (no practical free limit) and its token.
fn big_org_database(dir: &std::path::Path) -> (String, OrgId, String) {
    use creditmeter::db::{self, DatabaseUrl};
    let db_url = format!("sqlite://{}", dir.join("live.db").display());
    let mut conn = db::connect_one(&DatabaseUrl::parse(&db_url).unwrap()).unwrap();
    let now = chrono::Utc::now();
    let org = creditmeter::store::orgs::NewOrg {
        name: "Live".into(),
        zone: chrono_tz::UTC,
        allowance: creditmeter::domain::allowance::Allowance {
            edition: Edition::Ultimate,
            licences: 1_000_000,
            add_on_credits: 0,
        },
    };
    let org_id = creditmeter::store::orgs::create(&mut conn, &org, now).unwrap();
    (
        db_url.clone(),
        org_id,
        creditmeter::store::users::create_token(&mut conn, org_id, now).unwrap(),
    )
}

/// Every acknowledged id is stored.
fn assert_all_recorded(db_url: &str, org_id: OrgId, acknowledged: &[String]) {
    use creditmeter::db::{self, DatabaseUrl};
    let mut conn = db::connect_one(&DatabaseUrl::parse(db_url).unwrap()).unwrap();
    let stored = creditmeter::store::usage::existing_event_ids(
        &mut conn,
        acknowledged.iter().map(|id| (org_id, id.as_str())),
    )
    .unwrap();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "every acknowledged consume is recorded"
    );
}

/// SPEC §6 Growth: `serve` prunes raw events past the audit window (`--event-retention-days`,
/// default 90) by itself; the rollups stay.
#[test]
fn serve_prunes_raw_events_past_the_audit_window() {
    use creditmeter::db::schema::usage_events::dsl;
    use creditmeter::db::{self, DatabaseUrl};
    use diesel::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let (db_url, org_id, _) = big_org_database(dir.path());
    let url = DatabaseUrl::parse(&db_url).unwrap();
    let mut conn = db::connect_one(&url).unwrap();
    let now = chrono::Utc::now();
    let events: Vec<creditmeter::store::usage::EventInsert> = [200, 91, 89, 0]
        .iter()
        .map(|days_ago| {
            let at = (now - chrono::Duration::days(*days_ago)).naive_utc();
            creditmeter::store::usage::EventInsert {
                org_id,
                event_id: Some(format!("{days_ago}-days-ago")),
                local_day: at.date(),
                occurred_at: at,
                credits: 1,
                free_credits: 1,
                additional: 0,
                operation: "op".into(),
                client: "c".into(),
                user_ref: String::new(),
                recorded_at: at,
            }
        })
        .collect();
    db::write_transaction(&mut conn, |c| {
        creditmeter::store::usage::insert_events(c, &events)
    })
    .unwrap();
    let mut server = common::Server::start(&db_url, None);
    let kept = |conn: &mut creditmeter::db::DbConn| -> Vec<Option<String>> {
        dsl::usage_events
            .order(dsl::id)
            .select(dsl::event_id)
            .load(conn)
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kept(&mut conn).len() > 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill();
    assert_eq!(
        kept(&mut conn),
        [
            Some("89-days-ago".to_string()),
            Some("0-days-ago".to_string())
        ]
    );
}

/// Stored values that break their rules (a zone that is not one, an unknown edition or role, a
/// statement whose lines cannot be read) fail loudly with a 500 and a logged reason, never a
/// silent default (UTC, Free, User, an empty statement); other orgs are unaffected.
#[test]
fn corrupt_rows_fail_loudly_instead_of_falling_back() {
    use diesel::RunQueryDsl;
    let (app, org_id, token) = setup();
    let other = app.seed_org("other", Edition::Standard, "UTC");
    let other_token = app.token(other.org_id);
    for corruption in [
        format!("UPDATE orgs SET timezone = 'Mars/Olympus' WHERE id = {org_id}"),
        format!("UPDATE orgs SET edition = 'platinum' WHERE id = {org_id}"),
    ] {
        diesel::sql_query(&corruption)
            .execute(&mut *app.conn())
            .unwrap();
        let r = app.api("GET", "/api/v1/credits", &token, "");
        assert_eq!(r.status, 500, "{corruption}: {}", r.body);
        assert_eq!(r.json()["error"], "INTERNAL");
        assert!(!r.body.contains("Mars") && !r.body.contains("platinum"));
        let ok = app.api("GET", "/api/v1/credits", &other_token, "");
        assert_eq!(ok.status, 200, "another org is unaffected");
        diesel::sql_query(format!(
            "UPDATE orgs SET timezone = 'UTC', edition = 'standard' WHERE id = {org_id}"
        ))
        .execute(&mut *app.conn())
        .unwrap();
    }
    assert_eq!(app.api("GET", "/api/v1/credits", &token, "").status, 200);
}

#[test]
fn metrics_have_latency_histograms_by_route_and_the_writer_figures() {
    let (app, _, token) = setup();
    assert_eq!(consume(&app, &token, json!({"credits": 1})).status, 200);
    assert_eq!(
        app.api("GET", "/api/v1/no-such-call", &token, "").status,
        404
    );
    let r = common::http::request(app.port, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    for expected in [
        "creditmeter_admissions_total{result=\"allowed\"} 1\n",
        "# TYPE creditmeter_http_request_duration_seconds histogram\n",
        "creditmeter_http_request_duration_seconds_count{route=\"/api/v1/consume\",method=\"POST\",status=\"200\"} 1\n",
        // An unknown path is counted under its scope's default route, not under its own name.
        "creditmeter_http_request_duration_seconds_count{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n",
        "creditmeter_admission_duration_seconds_count 1\n",
        "creditmeter_writer_batches_total 1\n",
        "creditmeter_writer_batch_requests_count 1\n",
        "creditmeter_writer_batch_duration_seconds_bucket{le=\"+Inf\"} 1\n",
        "creditmeter_writer_largest_batch_calls 1\n",
    ] {
        assert!(
            r.body.contains(expected),
            "{expected:?} missing:\n{}",
            r.body
        );
    }
    assert!(!r.body.contains("no-such-call"));
}
