//! The same product on PostgreSQL: runs when TEST_DATABASE_URL names a server (any database on it;
//! each run creates and drops a database of its own), and says so when it is skipped.
//! `.ci/run` starts a throwaway local server for it.

use crate::common;

use common::{TempDatabase, step};
use creditmeter::db::DatabaseUrl;
use creditmeter::domain::allowance::Edition;
use diesel::RunQueryDsl;
use serde_json::json;

#[test]
fn the_product_works_on_postgresql() {
    let Some(temp) = TempDatabase::create() else {
        return;
    };
    let database = DatabaseUrl::parse(&temp.url).unwrap();
    let app = common::TestApp::builder()
        .clock(common::fixed("2026-03-10T12:00:00Z"))
        .database(database, tempfile::tempdir().unwrap())
        .spawn();
    let app = std::sync::Arc::new(app);
    let org = app.seed_org("pg", Edition::Standard, "Europe/Berlin"); // 52,500 free
    let token = app.token(org.org_id);
    let session = app.sign_in(&org.super_admin);
    let consume =
        |body: serde_json::Value| app.api("POST", "/api/v1/consume", &token, &body.to_string());

    step(
        "admission: free first, then refused whole; idempotent",
        || {
            assert_eq!(
                consume(json!({"credits": 52_000, "id": "a"})).json()["free_remaining"],
                500
            );
            assert_eq!(consume(json!({"credits": 52_000, "id": "a"})).status, 200);
            assert_eq!(consume(json!({"credits": 501})).status, 429);
        },
    );

    step(
        "the limit through the form; additional credits and their price",
        || {
            let r = app.post_signed(
                "/apis/credits/limit",
                &session,
                &[
                    ("additional_limit", "100000"),
                    ("csrf_token", &session.csrf),
                ],
            );
            assert_eq!(r.status, 303);
            let r = app
                .api(
                    "POST",
                    "/api/v1/usage",
                    &token,
                    &json!([{"id": "m1", "timestamp": "2026-03-10T12:00:00Z", "credits": 80_500},
                    {"id": "m1", "timestamp": "2026-03-10T12:00:00Z", "credits": 80_500}])
                    .to_string(),
                )
                .json();
            assert_eq!(
                (r["accepted"].clone(), r["duplicates"].clone()),
                (json!(1), json!(1))
            );
            assert_eq!(app.day_totals(org.org_id, "2026-03-10"), (132_500, 80_000));
            let page = app.get(
                "/apis/credits/details?from=2026-03-09&to=2026-03-10",
                Some(&session),
            );
            assert_eq!(
                common::text_of_id(&page.body, "total-amount").as_deref(),
                Some("6.80")
            );
        },
    );

    step(
        "concurrent consumes spend exactly the remaining credits",
        || {
            let handles: Vec<_> = (0..16)
                .map(|c| {
                    let (app, token) = (app.clone(), token.clone());
                    std::thread::spawn(move || {
                        (0..20)
                            .filter(|i| {
                                let body = json!({"credits": 1_000, "id": format!("c{c}-{i}")})
                                    .to_string();
                                app.api("POST", "/api/v1/consume", &token, &body).status == 200
                            })
                            .count()
                    })
                })
                .collect();
            let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(allowed, 20, "20,000 additional credits were left");
            assert_eq!(app.day_totals(org.org_id, "2026-03-10"), (152_500, 100_000));
        },
    );

    step(
        "statements: close past periods once, refuse late usage, list them",
        || {
            app.set_limit_at(org.org_id, 100_000, "2026-01-01T08:00:00Z");
            let mut conn = app.conn();
            diesel::sql_query(format!(
                "UPDATE orgs SET billing_anchor = '2026-01-01' WHERE id = {}",
                org.org_id
            ))
            .execute(&mut *conn)
            .unwrap();
            let issued = creditmeter::billing::close_due(&mut conn, app.clock.now(), None).unwrap();
            assert_eq!(issued.len(), 2);
            assert!(
                creditmeter::billing::close_due(&mut conn, app.clock.now(), None)
                    .unwrap()
                    .is_empty()
            );
            let r = app
                .api(
                    "POST",
                    "/api/v1/usage",
                    &token,
                    &json!([{"id": "late", "timestamp": "2026-02-10T10:00:00Z", "credits": 1}])
                        .to_string(),
                )
                .json();
            assert_eq!(r["results"][0]["reason"], "PERIOD_CLOSED");
            assert_eq!(
                app.get("/apis/credits/statements", Some(&session)).status,
                200
            );
        },
    );

    step(
        "growth: closed periods' keys are gone; the audit window is pruned",
        || {
            let mut conn = app.conn();
            let keys_before_march: i64 = {
                use creditmeter::db::schema::usage_keys::dsl;
                use diesel::prelude::*;
                dsl::usage_keys
                    .filter(dsl::org_id.eq(org.org_id))
                    .filter(dsl::local_day.lt(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()))
                    .count()
                    .get_result(&mut *conn)
                    .unwrap()
            };
            assert_eq!(keys_before_march, 0);
            let events = |conn: &mut creditmeter::db::DbConn| -> i64 {
                use creditmeter::db::schema::usage_events::dsl;
                use diesel::prelude::*;
                dsl::usage_events.count().get_result(conn).unwrap()
            };
            let before = events(&mut conn);
            assert!(before > 0);
            let far_future = chrono::NaiveDate::from_ymd_opt(2100, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            let pruned = creditmeter::store::usage::prune_events(&mut conn, far_future).unwrap();
            assert_eq!((pruned as i64, events(&mut conn)), (before, 0));
        },
    );
}

/// The binary carries its own libpq and OpenSSL (nothing to install): a database URL with
/// `sslmode=require` connects over TLS, and the server runs on it. `.ci/run` starts its PostgreSQL
/// with TLS on (a self-signed certificate); a server without TLS skips this test outside CI.
#[test]
fn tls_to_postgresql_with_sslmode_require() {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};
    let Some(temp) = TempDatabase::create() else {
        return;
    };
    let mut plain = creditmeter::db::connect_one(&DatabaseUrl::parse(&temp.url).unwrap()).unwrap();
    let server_tls: String = diesel::select(sql::<Text>("current_setting('ssl')"))
        .get_result(&mut plain)
        .unwrap();
    if server_tls != "on" {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the CI's PostgreSQL must have TLS on (.ci/run)"
        );
        eprintln!("SKIPPED: the PostgreSQL at TEST_DATABASE_URL has no TLS (ssl = {server_tls})");
        return;
    }
    let url = format!("{}?sslmode=require", temp.url);
    let mut conn = creditmeter::db::connect_one(&DatabaseUrl::parse(&url).unwrap())
        .expect("a TLS connection with sslmode=require");
    let encrypted: bool = diesel::select(sql::<Bool>(
        "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert!(encrypted, "the connection is encrypted");

    // The server itself, on the same URL.
    let token = standard_org(&mut conn, "TLS");
    let server = common::Server::start(&url, None);
    let r = common::api_at(
        server.port,
        "POST",
        "/api/v1/consume",
        &token,
        r#"{"credits": 5}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The usage writer survives the loss of its connection (a database restart, a failover, an idle
/// timeout): the next call is answered, on a new connection. (It tries the connection before a
/// batch from its cache, whose one statement could not tell a loss before it from one during it.)
#[test]
fn the_usage_writer_reconnects_after_losing_its_connection() {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    let Some(temp) = TempDatabase::create() else {
        return;
    };
    let mut conn = creditmeter::db::connect_one(&DatabaseUrl::parse(&temp.url).unwrap()).unwrap();
    let token = standard_org(&mut conn, "Reconnect");
    let server = common::Server::start(&temp.url, None);
    let consume = |id: &str| {
        common::api_at(
            server.port,
            "POST",
            "/api/v1/consume",
            &token,
            &json!({"credits": 1, "id": id}).to_string(),
        )
    };
    assert_eq!(consume("before").status, 200);
    let ended: i64 = diesel::select(sql::<BigInt>(
        "(SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid())",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert!(ended > 0, "the server's connections were ended");
    // Lost while idle: wait until the ended backends are gone.
    let others = |conn: &mut creditmeter::db::DbConn| -> i64 {
        diesel::select(sql::<BigInt>(
            "(SELECT count(*) FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid())",
        ))
        .get_result(conn)
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while others(&mut conn) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let r = consume("after");
    assert_eq!(r.status, 200, "answered on a new connection: {}", r.body);
    let r = common::api_at(server.port, "GET", "/api/v1/credits", &token, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["used"], 2);
}

/// A standard org (50,000 free credits a day) created now, and an API token for it.
fn standard_org(conn: &mut creditmeter::db::DbConn, name: &str) -> String {
    let now = chrono::Utc::now();
    let org = creditmeter::store::orgs::NewOrg {
        name: name.into(),
        zone: chrono_tz::UTC,
        allowance: creditmeter::domain::allowance::Allowance {
            edition: Edition::Standard,
            licences: 0,
            add_on_credits: 0,
        },
    };
    let org_id = creditmeter::store::orgs::create(conn, &org, now).unwrap();
    creditmeter::store::users::create_token(conn, org_id, now).unwrap()
}
