//! Safe at the edge (issue 15): what an attacker or a careless client sends is refused with a 4xx
//! and changes nothing; the operator's CLI covers a deployment.

use serde_json::json;

use crate::common::{self, TestApp, fixed};
use creditmeter::domain::allowance::Edition;

/// Run the CLI on `url` with `stdin`: (success, stdout, stderr).
pub(crate) fn run_cli(url: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(args)
        .args(["--database", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn app() -> (TestApp, common::Seeded, String) {
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .spawn();
    let org = app.seed_org("edge", Edition::Standard, "UTC");
    let token = app.token(org.org_id);
    (app, org, token)
}

#[test]
fn dates_out_of_the_calendar_are_a_400_with_a_message() {
    let (app, org, token) = app();
    let session = app.sign_in(&org.admin);
    for range in [
        "from=1900-01-01&to=1900-01-02",
        "from=0000-01-01&to=0000-01-02",
        "from=0001-01-01&to=0001-01-02",
        "from=9999-12-30&to=9999-12-31",
    ] {
        for page in ["details", "details.csv", "details.pdf"] {
            let r = app.get(&format!("/apis/credits/{page}?{range}"), Some(&session));
            let expected = if range.contains("0000") { 400 } else { 200 };
            assert_eq!(
                r.status,
                expected,
                "{page}?{range}: {}",
                r.body.chars().take(300).collect::<String>()
            );
        }
        let r = app.api("GET", &format!("/api/v1/usage/daily?{range}"), &token, "");
        assert!(
            r.status == 200 || r.status == 400,
            "daily?{range}: {}",
            r.body
        );
        if range.contains("0000") {
            assert_eq!(r.json()["error"], "INVALID_RANGE");
        }
    }
}

#[test]
fn a_consume_body_past_a_small_limit_is_413_json_and_usage_is_bounded() {
    let (app, _, token) = app();
    let padding = "x".repeat(64 * 1024);
    let big = json!({"credits": 1, "operation": padding}).to_string();
    let r = app.api("POST", "/api/v1/consume", &token, &big);
    assert_eq!(
        r.status,
        413,
        "{}",
        r.body.chars().take(200).collect::<String>()
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "PAYLOAD_TOO_LARGE");
    // Nothing was spent, and a normal call still works.
    let ok = app.api(
        "POST",
        "/api/v1/consume",
        &token,
        &json!({"credits": 1}).to_string(),
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["free_remaining"], 52_499);
}

#[test]
fn head_works_where_get_does_and_a_wrong_method_is_405_with_allow() {
    let (app, _, token) = app();
    let r = common::http::request(app.port, "HEAD", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    let r = app.api("GET", "/api/v1/consume", &token, "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(r.json()["error"], "METHOD_NOT_ALLOWED");
    let r = app.api("DELETE", "/api/v1/credits", &token, "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert_eq!(
        app.api("GET", "/api/v1/nothing-here", &token, "").status,
        404
    );
}

/// `creditmeter backup PATH` copies a live SQLite database while the server writes: the copy reads
/// back whole and is consistent (each day's rollup equals its raw events), and PostgreSQL is sent
/// to pg_dump.
#[test]
fn backup_copies_a_live_database_consistently() {
    use std::sync::Arc;
    let (app, org, token) = app();
    let app = Arc::new(app);
    let url = app.sqlite_url();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            std::thread::spawn(move || {
                for _ in 0..150 {
                    let body = json!({"credits": 1}).to_string();
                    assert_eq!(
                        app.api("POST", "/api/v1/consume", &token, &body).status,
                        200
                    );
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(["backup", copy.to_str().unwrap(), "--database", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for w in writers {
        w.join().unwrap();
    }
    // The copy: its rollup of the day equals its raw events, and it holds at most what the live
    // database ended with.
    let copy_url =
        creditmeter::db::DatabaseUrl::parse(&format!("sqlite://{}", copy.display())).unwrap();
    let mut conn = creditmeter::db::connect_one(&copy_url).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let rollup = creditmeter::store::usage::day(&mut conn, org.org_id, day)
        .unwrap()
        .map_or(0, |d| d.credits);
    let events: i64 = {
        use creditmeter::db::schema::usage_events::dsl;
        use diesel::prelude::*;
        dsl::usage_events
            .filter(dsl::org_id.eq(org.org_id))
            .count()
            .get_result(&mut conn)
            .unwrap()
    };
    assert_eq!(rollup, events, "the copy is one instant of the database");
    assert!(rollup <= 1_200);
    assert_eq!(app.day_totals(org.org_id, "2026-03-10").0, 1_200);

    // Refusals: an existing path, a PostgreSQL URL.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(["backup", copy.to_str().unwrap(), "--database", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let pg = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args([
            "backup",
            "x.db",
            "--database",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert!(!pg.status.success());
    assert!(String::from_utf8_lossy(&pg.stderr).contains("pg_dump"));
}

/// Expired sessions are deleted by the server's upkeep timer, live ones kept.
#[test]
fn expired_sessions_are_purged_on_a_timer() {
    use diesel::prelude::*;
    let app = TestApp::builder()
        .clock(fixed("2026-03-10T12:00:00Z"))
        .close_every(std::time::Duration::from_millis(50))
        .spawn();
    let org = app.seed_org("sessions", Edition::Standard, "UTC");
    let live = app.sign_in(&org.admin);
    let user_id: i64 = {
        use creditmeter::db::schema::users::dsl;
        dsl::users
            .filter(dsl::email.eq(&org.admin))
            .select(dsl::id)
            .first(&mut *app.conn())
            .unwrap()
    };
    let long_ago = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    creditmeter::store::users::create_session(&mut app.conn(), user_id, long_ago).unwrap();
    let count = || -> i64 {
        use creditmeter::db::schema::sessions::dsl;
        dsl::sessions.count().get_result(&mut *app.conn()).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session stays"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        app.get("/apis/credits", Some(&live)).status,
        200,
        "the live one works"
    );
}

/// A leaked token: `token list` shows each token's name, creation and last use (never the token),
/// and `token revoke` makes the running server refuse it within a second while the others work.
#[test]
fn a_leaked_token_is_listed_and_revoked_within_a_second() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("tokens", Edition::Standard, "UTC");
    let url = app.sqlite_url();
    let cli = |args: &[&str]| run_cli(&url, args, "");
    let org_id = org.org_id.to_string();
    let (ok, gateway, _) = cli(&["token", "create", "--org", &org_id, "--name", "gateway eu"]);
    assert!(ok);
    let gateway = gateway.trim().to_string();
    let (_, other, _) = cli(&["token", "create", "--org", &org_id, "--name", "batch jobs"]);
    let other = other.trim().to_string();
    assert_eq!(app.api("GET", "/api/v1/ping", &gateway, "").status, 200);

    let (ok, listed, _) = cli(&["token", "list", "--org", &org_id, "--json"]);
    assert!(ok);
    let rows: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "gateway eu");
    assert!(rows[0]["last_used"].is_string(), "{listed}");
    assert!(rows[1]["last_used"].is_null(), "{listed}");
    assert!(!listed.contains(&gateway) && !listed.contains(&gateway[3..]));

    let id = rows[0]["id"].to_string();
    let (ok, _, said) = cli(&["token", "revoke", "--org", &org_id, "--id", &id]);
    assert!(ok, "{said}");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let r = app.api("GET", "/api/v1/ping", &gateway, "");
    assert_eq!(r.status, 401, "revoked within a second");
    assert_eq!(app.api("GET", "/api/v1/ping", &other, "").status, 200);
    // Revoking again, or another org's id, says so and fails.
    let (ok, _, said) = cli(&["token", "revoke", "--org", &org_id, "--id", &id]);
    assert!(!ok && said.contains("no token"), "{said}");
}

/// The operator's user commands against a running server: list, set a password (sessions end),
/// disable (sign-in refused, sessions end within a second), remove; and `org list`.
#[test]
fn a_user_who_left_is_disabled_reset_and_removed() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("people", Edition::Standard, "UTC");
    let url = app.sqlite_url();
    let cli = |args: &[&str], stdin: &str| run_cli(&url, args, stdin);
    let org_id = org.org_id.to_string();
    let (ok, listed, _) = cli(&["user", "list", "--org", &org_id, "--json"], "");
    assert!(ok);
    assert!(listed.lines().count() >= 3, "{listed}");
    assert!(listed.contains(&org.admin) && listed.contains("\"state\":\"active\""));
    let (ok, orgs, _) = cli(&["org", "list", "--json"], "");
    assert!(ok);
    assert!(
        orgs.lines()
            .any(|l| l.contains(&format!("\"id\":{org_id},"))),
        "{orgs}"
    );

    // A new password ends the user's sessions; the old password stops working.
    let before = app.sign_in(&org.admin);
    let (ok, _, said) = cli(
        &[
            "user",
            "set-password",
            "--org",
            &org_id,
            "--email",
            &org.admin,
            "--password-stdin",
        ],
        "a-brand-new-password\n",
    );
    assert!(ok, "{said}");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert_eq!(app.get("/apis/credits", Some(&before)).status, 303);
    assert!(app.try_sign_in(&org.admin, common::PASSWORD).1.is_none());
    let after = app
        .try_sign_in(&org.admin, "a-brand-new-password")
        .1
        .expect("the new password works");

    // Disabled: the session ends within a second and sign-in is refused.
    let (ok, _, said) = cli(
        &["user", "disable", "--org", &org_id, "--email", &org.admin],
        "",
    );
    assert!(ok, "{said}");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert_eq!(app.get("/apis/credits", Some(&after)).status, 303);
    assert!(
        app.try_sign_in(&org.admin, "a-brand-new-password")
            .1
            .is_none()
    );
    let (_, listed, _) = cli(&["user", "list", "--org", &org_id], "");
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&org.admin) && l.ends_with("disabled")),
        "{listed}"
    );

    // Removed; an unknown user or another org's user is a one-line error.
    let (ok, _, _) = cli(
        &["user", "remove", "--org", &org_id, "--email", &org.admin],
        "",
    );
    assert!(ok);
    let (_, listed, _) = cli(&["user", "list", "--org", &org_id], "");
    assert!(!listed.contains(&org.admin));
    let (ok, _, said) = cli(
        &["user", "disable", "--org", &org_id, "--email", &org.admin],
        "",
    );
    assert!(
        !ok && said.contains("has no user") && said.lines().count() == 1,
        "{said}"
    );
}

/// Sign-in throttling keys on (email, client address): failures from one address cannot lock an
/// email's owner out elsewhere, and behind a trusted proxy the client is the forwarded address. A
/// client that is not a trusted proxy cannot pick its address with `X-Forwarded-For`.
#[test]
fn sign_in_throttling_cannot_lock_out_others() {
    let behind_proxy = TestApp::builder().trusted_proxies(&["127.0.0.1"]).spawn();
    let org = behind_proxy.seed_org("throttle", Edition::Standard, "UTC");
    for _ in 0..5 {
        let (r, s) =
            behind_proxy.try_sign_in_from(&org.admin, "wrong-password", Some("203.0.113.7"));
        assert!(s.is_none() && r.status != 500);
    }
    let (r, s) = behind_proxy.try_sign_in_from(&org.admin, common::PASSWORD, Some("203.0.113.7"));
    assert_eq!(
        (r.status, s.is_none()),
        (429, true),
        "the attacking address waits"
    );
    let (_, s) = behind_proxy.try_sign_in_from(&org.admin, common::PASSWORD, Some("198.51.100.2"));
    assert!(s.is_some(), "the owner, elsewhere, signs in");
    // 30 failures from one client behind the proxy do not refuse the proxy's other clients.
    for i in 0..30 {
        let email = format!("nobody{i}@example.com");
        behind_proxy.try_sign_in_from(&email, "wrong-password", Some("203.0.113.9"));
    }
    let (_, s) =
        behind_proxy.try_sign_in_from(&org.super_admin, common::PASSWORD, Some("198.51.100.3"));
    assert!(s.is_some(), "another client of the same proxy signs in");

    // Without a trusted proxy the header is the client's own claim, and ignored.
    let direct = TestApp::builder().spawn();
    let org = direct.seed_org("direct", Edition::Standard, "UTC");
    for i in 0..5 {
        direct.try_sign_in_from(&org.admin, "wrong-password", Some(&format!("192.0.2.{i}")));
    }
    let (r, _) = direct.try_sign_in_from(&org.admin, common::PASSWORD, Some("192.0.2.99"));
    assert_eq!(
        r.status, 429,
        "a spoofed X-Forwarded-For does not reset the count"
    );
}

/// Behind a trusted proxy that says the request came over HTTPS, cookies are `Secure` and pages
/// send HSTS; over plain HTTP, or when an untrusted client claims HTTPS, they are not.
#[test]
fn https_through_a_trusted_proxy_gives_secure_cookies_and_hsts() {
    let check = |app: &TestApp, proto: Option<&str>, secure: bool| {
        let mut headers = vec![];
        if let Some(p) = proto {
            headers.push(("X-Forwarded-Proto", p));
        }
        let r = common::http::request(app.port, "GET", "/login", &headers, b"");
        assert_eq!(r.status, 200);
        let cookie = r.headers_named("set-cookie").join(" | ");
        assert_eq!(cookie.contains("Secure"), secure, "{proto:?}: {cookie}");
        assert_eq!(
            r.header("strict-transport-security").is_some(),
            secure,
            "{proto:?}"
        );
    };
    let proxied = TestApp::builder().trusted_proxies(&["127.0.0.1"]).spawn();
    check(&proxied, Some("https"), true);
    check(&proxied, Some("http"), false);
    check(&proxied, None, false);
    let direct = TestApp::builder().spawn();
    check(&direct, Some("https"), false);
}

/// A body that trickles in (a byte a second, by length or in chunks) is cut off at the body
/// deadline with a 4xx saying `connection: close`, and the connection ends, instead of holding a
/// request open for ever; a body sent to a route that reads none ends its connection right after
/// the answer. Other calls are answered meanwhile.
#[test]
fn a_trickling_body_is_cut_off_at_its_deadline() {
    use std::io::{Read, Write};
    let (app, _, token) = app();
    let body_time = creditmeter::web::limits::BODY_TIME;
    for (method, path, chunked) in [
        ("POST", "/api/v1/usage", false),
        ("POST", "/api/v1/usage", true),
        ("GET", "/api/v1/ping", true),
        ("GET", "/api/v1/ping", false),
    ] {
        let case = format!("{method} {path} chunked={chunked}");
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked"
        } else {
            "Content-Length: 100"
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
        )
        .unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(900)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let mut closed = false;
        while !closed {
            assert!(
                started.elapsed() < body_time * 2,
                "{case}: still open after {:?}; answered {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&answer)
            );
            let piece: &[u8] = if chunked { b"1\r\n \r\n" } else { b" " };
            let _ = stream.write_all(piece);
            match stream.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed = true,
                Err(_) => {}
            }
            assert_eq!(app.api("GET", "/api/v1/ping", &token, "").status, 200);
        }
        let head = String::from_utf8_lossy(&answer);
        if method == "GET" {
            assert!(
                head.starts_with("HTTP/1.1 200"),
                "{case}: answered {head:?}"
            );
            assert!(
                started.elapsed() < body_time,
                "{case}: {:?}",
                started.elapsed()
            );
        } else {
            assert!(head.starts_with("HTTP/1.1 4"), "{case}: answered {head:?}");
            assert!(head.contains("connection: close"), "{case}: {head}");
            assert!(started.elapsed() >= body_time, "{case}");
        }
    }
}

/// `--max-connections` bounds the connections a server holds: past it a new connection waits
/// unanswered in the listen queue, and is served as soon as a held one ends.
#[test]
fn connections_past_the_bound_wait_for_a_free_one() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let server =
        common::Server::start_with(&url, None, &["--workers", "1", "--max-connections", "2"]);
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 256];
    let early = waiting.read(&mut buf);
    assert!(early.is_err(), "answered past the bound: {early:?}");
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let n = waiting
        .read(&mut buf)
        .expect("served once a connection is free");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    for bad in ["0", "-1", "many"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
            .args([
                "serve",
                "--database",
                &url,
                &format!("--max-connections={bad}"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "--max-connections {bad} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--max-connections"));
    }
}

/// A fixed clock (CREDITMETER_NOW) on a database the real clock has run the server on would close
/// periods early and write usage at a made-up time: serve, import and statements close refuse it,
/// unless the operator passes --allow-fixed-clock (serve) or CREDITMETER_ALLOW_FIXED_CLOCK=1.
#[test]
fn a_fixed_clock_is_refused_on_a_database_the_real_clock_used() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    drop(common::Server::start(&url, None));
    let later = "2030-01-01T00:00:00Z";
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &url])
        .env("CREDITMETER_NOW", later)
        .env_remove("CREDITMETER_ALLOW_FIXED_CLOCK")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success(), "{said}");
    assert!(said.contains("--allow-fixed-clock"), "{said}");
    let close = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(["statements", "close", "--database", &url])
        .env("CREDITMETER_NOW", later)
        .env_remove("CREDITMETER_ALLOW_FIXED_CLOCK")
        .output()
        .unwrap();
    assert!(!close.status.success());
    let allowed = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args(["statements", "close", "--database", &url])
        .env("CREDITMETER_NOW", later)
        .env("CREDITMETER_ALLOW_FIXED_CLOCK", "1")
        .output()
        .unwrap();
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    // The operator's explicit choice starts the server.
    drop(common::Server::start_with(
        &url,
        Some(later),
        &["--allow-fixed-clock"],
    ));
}

/// Login CSRF: a cookie and a field that an attacker chose to be equal are refused; the form's
/// token is bound to its cookie with the servers' key, so a token from another browser's cookie
/// does not fit either.
#[test]
fn a_sign_in_with_an_attacker_chosen_token_is_refused() {
    let app = TestApp::builder().spawn();
    let org = app.seed_org("csrf", Edition::Standard, "UTC");
    let chosen = "a".repeat(64);
    let cookie = format!("cm_login_csrf={chosen}");
    let r = app.post_form(
        "/login",
        &[
            ("email", org.admin.as_str()),
            ("password", common::PASSWORD),
            ("csrf_token", &chosen),
        ],
        Some(&cookie),
    );
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("cm_session").is_none());
    // A real form's token with another cookie.
    let form = app.get("/login", None);
    let token = common::hidden_csrf(&form.body).unwrap();
    let r = app.post_form(
        "/login",
        &[
            ("email", org.admin.as_str()),
            ("password", common::PASSWORD),
            ("csrf_token", &token),
        ],
        Some(&cookie),
    );
    assert_eq!(r.status, 403);
    // A genuine pair (nonce and its token under the servers' key) that is older than two hours
    // is refused: a planted pair cannot be replayed for ever.
    let key: String = {
        use creditmeter::db::schema::server_keys::dsl;
        use diesel::prelude::*;
        dsl::server_keys
            .filter(dsl::name.eq("login_csrf"))
            .select(dsl::key_hex)
            .first(&mut *app.conn())
            .unwrap()
    };
    let stale = format!(
        "{}.{}",
        chrono::Utc::now().timestamp() - 3 * 3600,
        "b".repeat(64)
    );
    let r = app.post_form(
        "/login",
        &[
            ("email", org.admin.as_str()),
            ("password", common::PASSWORD),
            ("csrf_token", &creditmeter::secrets::hmac_hex(&key, &stale)),
        ],
        Some(&format!("cm_login_csrf={stale}")),
    );
    assert_eq!(r.status, 403, "a three-hour-old pair");
    let fresh = format!("{}.{}", chrono::Utc::now().timestamp(), "b".repeat(64));
    let r = app.post_form(
        "/login",
        &[
            ("email", org.admin.as_str()),
            ("password", common::PASSWORD),
            ("csrf_token", &creditmeter::secrets::hmac_hex(&key, &fresh)),
        ],
        Some(&format!("cm_login_csrf={fresh}")),
    );
    assert_eq!(r.status, 303, "a fresh pair made with the key");
    // The form as served works.
    assert!(app.try_sign_in(&org.admin, common::PASSWORD).1.is_some());
}
