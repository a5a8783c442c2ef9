//! The ledger under every interleaving (SPEC R4, R9, R10, R12, §6 Isolation): two server processes
//! on one database (a SQLite file, and PostgreSQL when TEST_DATABASE_URL names a server), kill -9
//! mid-load, refused ids that come again, events the ledger cannot place, a noisy tenant; and
//! (in `model`) a reference model of R4/R9/R11/R12 that the real servers are checked against.

use crate::common;
use creditmeter::domain::types::OrgId;
#[path = "ledger/model.rs"]
mod model;

use chrono::{DateTime, Utc};
use common::{Server, api_at, set_limit};
use creditmeter::db::{self, DatabaseUrl, DbConn};
use creditmeter::domain::allowance::{Allowance, Edition};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The fixed clock of these tests' servers.
const NOW: &str = "2026-03-10T12:00:00Z";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// A database for one test: a SQLite file, or a PostgreSQL database of its own.
pub enum TestDb {
    Sqlite(tempfile::TempDir, String),
    Postgres(common::TempDatabase),
}

impl TestDb {
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite(_, url) => url,
            TestDb::Postgres(temp) => &temp.url,
        }
    }

    pub fn conn(&self) -> DbConn {
        db::connect_one(&DatabaseUrl::parse(self.url()).unwrap()).unwrap()
    }
}

/// A SQLite file always; a PostgreSQL database too when TEST_DATABASE_URL is set.
pub fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let mut all = vec![TestDb::Sqlite(dir, url)];
    all.extend(common::TempDatabase::create().map(TestDb::Postgres));
    all
}

/// An org and an API token for it.
pub fn create_org(
    conn: &mut DbConn,
    edition: Edition,
    licences: i64,
    zone: &str,
    at: DateTime<Utc>,
) -> (OrgId, String) {
    let org = creditmeter::store::orgs::NewOrg {
        name: format!("{edition} org"),
        zone: zone.parse().unwrap(),
        allowance: Allowance {
            edition,
            licences,
            add_on_credits: 0,
        },
    };
    let org_id = creditmeter::store::orgs::create(conn, &org, at).unwrap();
    let token = creditmeter::store::users::create_token(conn, org_id, at).unwrap();
    (org_id, token)
}

fn consume(port: u16, token: &str, body: Value) -> common::Response {
    api_at(port, "POST", "/api/v1/consume", token, &body.to_string())
}

fn used_today(port: u16, token: &str) -> i64 {
    api_at(port, "GET", "/api/v1/credits", token, "").json()["used"]
        .as_i64()
        .unwrap()
}

/// Run `clients` threads, each calling `call(client, n)` for its share of `0..calls`, and count
/// the statuses they saw.
fn run_clients(
    clients: usize,
    calls: usize,
    call: impl Fn(usize, usize) -> u16 + Send + Sync + 'static,
) -> std::collections::BTreeMap<u16, usize> {
    let call = Arc::new(call);
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let call = call.clone();
            std::thread::spawn(move || {
                (client..calls)
                    .step_by(clients)
                    .map(|n| call(client, n))
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for handle in handles {
        for status in handle.join().unwrap() {
            *seen.entry(status).or_default() += 1;
        }
    }
    seen
}

/// Issue 13, row 1 (R4 across processes): two servers on one database, 64 clients, a standard org
/// with 50,000 free credits and a limit of 30,000: exactly 800 calls of 100 fit.
#[test]
fn r4_two_servers_never_pass_the_limit_and_record_every_admitted_call() {
    for db in databases() {
        let mut conn = db.conn();
        let (org_id, token) = create_org(&mut conn, Edition::Standard, 0, "UTC", now());
        set_limit(&mut conn, org_id, 30_000, now());
        let servers = [
            Server::start(db.url(), Some(NOW)),
            Server::start(db.url(), Some(NOW)),
        ];
        let ports = [servers[0].port, servers[1].port];
        let auth = token.clone();
        let seen = run_clients(64, 1_040, move |client, n| {
            consume(
                ports[client % 2],
                &auth,
                json!({"credits": 100, "id": format!("r1-{n}")}),
            )
            .status
        });
        assert_eq!(
            seen,
            [(200, 800), (429, 240)].into(),
            "{}: 80,000 credits admitted, the rest refused whole",
            db.url()
        );
        for port in ports {
            assert_eq!(used_today(port, &token), 80_000);
        }
        model::assert_ledger_consistent(&mut conn);
        if db.url().starts_with("postgres") {
            // Each server's cached day row goes stale as the other writes it: the check caught it.
            let stale: u64 = ports.iter().map(|port| writer_paths(*port).1).sum();
            assert!(stale > 0, "no batch from the cache was found stale");
        }
    }
}

/// `(cached, stale)`: a server's batches written from its writer's cache in one statement, and
/// those whose statement found the cached rows changed (PostgreSQL; both 0 on SQLite).
fn writer_paths(port: u16) -> (u64, u64) {
    (
        metric(port, "creditmeter_writer_cached_batches_total"),
        metric(port, "creditmeter_writer_stale_batches_total"),
    )
}

/// The value of an unlabelled metric on a server's `/metrics`.
fn metric(port: u16, name: &str) -> u64 {
    let metrics = common::http::request(port, "GET", "/metrics", &[], b"").body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// R13/R14 across processes: two servers on one database, 32 clients, an org whose budget of
/// 5.00 stops calls and whose webhook listens: exactly the calls that fit the budget are admitted,
/// each threshold crossing is recorded once, and each event is delivered once although both
/// servers' workers read the same outbox.
#[test]
fn r14_two_servers_never_pass_a_budget_and_send_each_alert_once() {
    use creditmeter::db::schema::{alerts, orgs};
    use diesel::prelude::*;
    for db in databases() {
        let receiver = crate::alerts::Receiver::start(0, 0);
        let mut conn = db.conn();
        let (org_id, token) = create_org(&mut conn, Edition::Standard, 0, "UTC", now());
        set_limit(&mut conn, org_id, 500_000, now());
        diesel::update(orgs::table.find(org_id))
            .set((
                orgs::budget_minor.eq(Some(500)),
                orgs::budget_stop.eq(true),
                orgs::webhook_url.eq(Some(receiver.url())),
            ))
            .execute(&mut conn)
            .unwrap();
        creditmeter::store::alerts::new_webhook_secret(&mut conn, org_id, "test", now()).unwrap();
        let flags = ["--webhook-allow-private", "--webhook-retry-base", "1"];
        let servers = [
            Server::start_with(db.url(), Some(NOW), &flags),
            Server::start_with(db.url(), Some(NOW), &flags),
        ];
        let ports = [servers[0].port, servers[1].port];
        let auth = token.clone();
        let seen = run_clients(32, 1_200, move |client, n| {
            consume(
                ports[client % 2],
                &auth,
                json!({"credits": 100, "id": format!("b-{n}")}),
            )
            .status
        });
        // 50,000 free, then 50,000 additional cost exactly 3.50 + 1.50 = 5.00.
        assert_eq!(seen, [(200, 1000), (429, 200)].into(), "{}", db.url());
        let day = creditmeter::store::usage::day(&mut conn, org_id, now().date_naive())
            .unwrap()
            .unwrap();
        assert_eq!((day.additional, day.amount_minor), (50_000, 500));
        let recorded: i64 = alerts::table
            .filter(alerts::org_id.eq(org_id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(recorded, 3, "50, 80 and 100% of the budget, once each");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while receiver.received().len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                receiver.received()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let got = receiver.received();
        let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.event.as_str()).collect();
        assert_eq!((got.len(), ids.len()), (3, 3), "{}: {got:?}", db.url());

        // Two days of one period at once, for ten orgs: live calls today and metered usage for
        // yesterday, of 1,000 credits each (0.14). Their batches lock different day rows; the
        // budget of 0.50 holds over both days: three additional calls (0.42) fit, a fourth never.
        let five_days_ago = now() - chrono::Duration::days(5);
        let spread: Vec<(OrgId, String)> = (0..10)
            .map(|_| {
                let (org, token) =
                    create_org(&mut conn, Edition::Standard, 0, "UTC", five_days_ago);
                set_limit(&mut conn, org, 500_000, five_days_ago);
                diesel::update(orgs::table.find(org))
                    .set((orgs::budget_minor.eq(Some(50)), orgs::budget_stop.eq(true)))
                    .execute(&mut conn)
                    .unwrap();
                (org, token)
            })
            .collect();
        let tokens: Vec<String> = spread.iter().map(|(_, t)| t.clone()).collect();
        run_clients(40, 2_400, move |client, n| {
            // Client c always calls org c % 10; one kind goes to each server.
            let (port, token) = (ports[(client / 10) % 2], &tokens[n % 10]);
            if client % 4 < 2 {
                consume(
                    port,
                    token,
                    json!({"credits": 1000, "id": format!("s-{n}")}),
                )
                .status
            } else {
                let event = json!([{"id": format!("s-{n}"), "timestamp": "2026-03-09T12:00:00Z", "credits": 1000}]);
                api_at(port, "POST", "/api/v1/usage", token, &event.to_string()).status
            }
        });
        for (org, _) in &spread {
            let days = creditmeter::store::usage::days_in(
                &mut conn,
                *org,
                now().date_naive() - chrono::Duration::days(1),
                now().date_naive(),
            )
            .unwrap();
            let additional: i64 = days.iter().map(|d| d.additional).sum();
            let charged: i64 = days.iter().map(|d| d.amount_minor).sum();
            assert_eq!((additional, charged), (3_000, 42), "{}: {days:?}", db.url());
        }
        model::assert_ledger_consistent(&mut conn);
    }
}

/// Issue 13, row 2 (R10 across processes): two servers, 16 clients, one server killed (SIGKILL)
/// mid-load: every consume either server acknowledged is recorded, and counted once.
#[test]
fn r10_two_servers_lose_nothing_acknowledged_when_one_is_killed() {
    for db in databases() {
        let mut conn = db.conn();
        let (org_id, token) = create_org(&mut conn, Edition::Ultimate, 1_000_000, "UTC", now());
        let mut doomed = Server::start(db.url(), Some(NOW));
        let survivor = Server::start(db.url(), Some(NOW));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = common::consume_until_gone(
            vec![doomed.port, survivor.port],
            &token,
            16,
            3,
            stop.clone(),
        );
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        doomed.kill();
        std::thread::sleep(std::time::Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        let acknowledged: Vec<String> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        assert!(
            acknowledged.len() > 100,
            "the load ran ({})",
            acknowledged.len()
        );
        let stored = creditmeter::store::usage::existing_event_ids(
            &mut conn,
            acknowledged.iter().map(|id| (org_id, id.as_str())),
        )
        .unwrap();
        assert_eq!(
            stored.len(),
            acknowledged.len(),
            "{}: every acknowledged consume is recorded",
            db.url()
        );
        assert!(used_today(survivor.port, &token) >= 3 * acknowledged.len() as i64);
        model::assert_ledger_consistent(&mut conn);
    }
}

/// Issue 13, row 3 (R9): `duplicate` means "admitted before"; a refused id is decided afresh.
#[test]
fn r9_a_refused_id_is_decided_afresh_and_an_admitted_one_counts_once() {
    for db in databases() {
        let mut conn = db.conn();
        let (org_id, token) = create_org(&mut conn, Edition::Standard, 0, "UTC", now()); // 50,000 free
        let server = Server::start(db.url(), Some(NOW));
        let port = server.port;
        let report =
            |body: Value| api_at(port, "POST", "/api/v1/usage", &token, &body.to_string()).json();
        let twice = json!([{"id": "d1", "timestamp": NOW, "credits": 60_000},
                           {"id": "d1", "timestamp": NOW, "credits": 3}]);
        let r = report(twice.clone());
        assert_eq!(r["results"][0]["status"], "refused");
        assert_eq!(r["results"][0]["reason"], "LIMIT_EXCEEDED");
        assert_eq!(r["results"][1]["status"], "accepted", "{r}");
        let r = report(twice);
        assert_eq!(
            (r["duplicates"].clone(), r["accepted"].clone()),
            (json!(2), json!(0))
        );
        assert_eq!(used_today(port, &token), 3);

        // Exhaust the free credits; 32 clients then retry refused ids: nothing is charged.
        assert_eq!(
            consume(port, &token, json!({"credits": 49_997, "id": "all"})).status,
            200
        );
        // 32 clients, 320 calls of one credit, over four ids.
        let retry_four_ids = || {
            let auth = token.clone();
            run_clients(32, 320, move |_, n| {
                let body = json!({"credits": 1, "id": format!("z{}", n % 4)});
                consume(port, &auth, body).status
            })
        };
        assert_eq!(retry_four_ids(), [(429, 320)].into());
        assert_eq!(used_today(port, &token), 50_000);

        // With a limit, the same ids are admitted, once each.
        set_limit(&mut conn, org_id, 10, now());
        assert_eq!(retry_four_ids(), [(200, 320)].into());
        let r = api_at(port, "GET", "/api/v1/credits", &token, "").json();
        assert_eq!(
            (r["used"].clone(), r["additional_used"].clone()),
            (json!(50_004), json!(4))
        );
        model::assert_ledger_consistent(&mut conn);
        // On PostgreSQL batches from the cache that repeated an admitted id, or were decided on
        // the limit before it changed, were found stale and decided again.
        let (cached, stale) = writer_paths(port);
        if db.url().starts_with("postgres") {
            assert!(stale > 0, "cached {cached}, stale {stale}");
        } else {
            assert_eq!((cached, stale), (0, 0));
        }
    }
}

/// Issue 13, row 4 (§6 Isolation): one org keeps reporting events the ledger cannot place (before
/// the first price plan, a year the calendar cannot hold) while another org consumes: those events
/// are refused by themselves, with a reason, and nobody else's call fails.
#[test]
fn an_event_that_cannot_be_placed_is_refused_alone() {
    for db in databases() {
        let mut conn = db.conn();
        let (_, poisoner) = create_org(&mut conn, Edition::Standard, 0, "America/New_York", now());
        let (_, victim) = create_org(&mut conn, Edition::Ultimate, 1_000_000, "UTC", now());
        let server = Server::start(db.url(), Some(NOW));
        let port = server.port;
        let stop = Arc::new(AtomicBool::new(false));
        let poison = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!([
                        {"id": format!("old{sent}"), "timestamp": "1900-01-01T00:00:00Z", "credits": 1},
                        {"id": format!("zero{sent}"), "timestamp": "0000-01-01T00:00:00Z", "credits": 1},
                        {"id": format!("good{sent}"), "timestamp": NOW, "credits": 1},
                    ]);
                    let r = api_at(port, "POST", "/api/v1/usage", &poisoner, &body.to_string());
                    assert_eq!(r.status, 200, "{}", r.body);
                    let r = r.json();
                    assert_eq!(r["results"][0]["reason"], "NO_PRICE_PLAN");
                    assert_eq!(r["results"][1]["reason"], "OUT_OF_RANGE");
                    assert_eq!(r["results"][2]["status"], "accepted");
                    sent += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                sent
            })
        };
        let auth = victim.clone();
        let seen = run_clients(16, 3_200, move |_, _| {
            consume(port, &auth, json!({"credits": 1})).status
        });
        stop.store(true, Ordering::Relaxed);
        let sent = poison.join().unwrap();
        assert!(sent > 10, "the poisoner ran ({sent} requests)");
        assert_eq!(seen, [(200, 3_200)].into(), "{}", db.url());
        assert_eq!(used_today(port, &victim), 3_200);
        model::assert_ledger_consistent(&mut conn);
    }
}

/// Issue 13, row 4, for the CSV import: the row that cannot be placed is refused with its line
/// number, and the good rows around it are kept.
#[test]
fn import_refuses_an_unplaceable_row_by_its_line_and_keeps_the_rest() {
    let db = databases().remove(0);
    let mut conn = db.conn();
    let (org_id, _) = create_org(&mut conn, Edition::Standard, 0, "UTC", now());
    let csv = db_dir_file(&db, "usage.csv");
    std::fs::write(
        &csv,
        "id,timestamp,credits\na,2026-03-10T10:00:00Z,5\nb,1900-01-01T00:00:00Z,7\nc,2026-03-09T10:00:00Z,11\nd,1899-06-01T00:00:00Z,2\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"))
        .args([
            "import",
            csv.to_str().unwrap(),
            "--org",
            &org_id.to_string(),
        ])
        .args(["--database", db.url()])
        .env("CREDITMETER_NOW", NOW)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Reported in the file's order, though the rows are applied in time order.
    let third = stderr.find("line 3: refused NO_PRICE_PLAN");
    let fifth = stderr.find("line 5: refused NO_PRICE_PLAN");
    assert!(third.is_some() && third < fifth, "{stderr}");
    assert!(stderr.contains("2 accepted"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "refused rows fail the import");
    let mut day = |d: &str| {
        creditmeter::store::usage::day(&mut conn, org_id, d.parse().unwrap())
            .unwrap()
            .map_or(0, |r| r.credits)
    };
    assert_eq!((day("2026-03-10"), day("2026-03-09")), (5, 11));
}

fn db_dir_file(db: &TestDb, name: &str) -> std::path::PathBuf {
    match db {
        TestDb::Sqlite(dir, _) => dir.path().join(name),
        TestDb::Postgres(_) => std::env::temp_dir().join(name),
    }
}

/// Issue 13, row 5 (§6 Isolation, fairness): one org streams 100,000-event bodies, three at a
/// time, while another consumes: every call of both is answered, and no transaction carries more
/// than the bulk org's share (the bulk is applied in slices between the other org's calls). The
/// latency figures are measured by `cargo bench --bench ledger`.
#[test]
fn bulk_metering_of_one_org_is_sliced_between_other_orgs_calls() {
    for db in databases() {
        let mut conn = db.conn();
        let (_, bulk) = create_org(&mut conn, Edition::Ultimate, 1_000_000, "UTC", now());
        let (_, live) = create_org(&mut conn, Edition::Ultimate, 1_000_000, "UTC", now());
        let server = Server::start(db.url(), Some(NOW));
        let port = server.port;
        let streams: Vec<_> = (0..3)
            .map(|stream| {
                let bulk = bulk.clone();
                std::thread::spawn(move || {
                    let body: String = (0..100_000)
                        .map(|i| {
                            format!(
                                "{{\"id\":\"s{stream}-{i}\",\"timestamp\":\"{NOW}\",\"credits\":1}}\n"
                            )
                        })
                        .collect();
                    let auth = format!("Bearer {bulk}");
                    let r = common::http::request(
                        port,
                        "POST",
                        "/api/v1/usage",
                        &[("Authorization", &auth), ("Content-Type", "application/x-ndjson")],
                        body.as_bytes(),
                    );
                    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
                    r.json()["accepted"].as_i64().unwrap()
                })
            })
            .collect();
        let auth = live.clone();
        let live_clients = 8;
        let seen = run_clients(live_clients, 2_000, move |_, _| {
            consume(port, &auth, json!({"credits": 1})).status
        });
        let accepted: i64 = streams.into_iter().map(|s| s.join().unwrap()).sum();
        assert_eq!(accepted, 300_000);
        assert_eq!(seen, [(200, 2_000)].into());
        let largest = metric(port, "creditmeter_writer_largest_batch_calls") as usize;
        // The bulk org's share of a transaction, and at most one call of each live client.
        let share = if db.url().starts_with("postgres") {
            creditmeter::ledger::writer::ORG_SHARE_POSTGRES
        } else {
            creditmeter::ledger::writer::ORG_SHARE_SQLITE
        };
        assert!(
            largest <= share + live_clients,
            "a transaction carried {largest} requests"
        );
        assert_eq!(used_today(port, &bulk), 300_000);
        assert_eq!(used_today(port, &live), 2_000);
        if db.url().starts_with("postgres") {
            // The calls' lane decided most of its batches on its cached rows.
            let (cached, stale) = writer_paths(port);
            assert!(cached > 100, "cached {cached}, stale {stale}");
        }
    }
}

/// R9 across a billing date: an id keeps counting once after its period's statement is issued.
/// A consume retried just past the billing date lands in the new period, an event dated before
/// the billing anchor belongs to no statement, and an event moves to another local day when the
/// org's zone changes: each still finds its key (keys are forgotten one period late).
#[test]
fn r9_an_id_counts_once_across_a_billing_date_and_a_zone_change() {
    use creditmeter::store::orgs::{OrgUpdate, update};
    for db in databases() {
        let mut conn = db.conn();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (org_id, token) = create_org(
            &mut conn,
            Edition::Standard,
            0,
            "UTC",
            at("2026-03-01T00:00:00Z"),
        );
        let report = |port: u16, id: &str, when: &str| {
            let body = json!([{"id": id, "timestamp": when, "credits": 1_234}]).to_string();
            let r = api_at(port, "POST", "/api/v1/usage", &token, &body).json();
            let result = &r["results"][0];
            result["reason"]
                .as_str()
                .unwrap_or(result["status"].as_str().unwrap())
                .to_string()
        };
        {
            let before_anchor = Server::start(db.url(), Some("2026-03-05T12:00:00Z"));
            assert_eq!(
                report(before_anchor.port, "pre-anchor", "2026-03-05T10:00:00Z"),
                "accepted"
            );
        }
        set_limit(&mut conn, org_id, 1_000, at("2026-03-10T09:00:00Z")); // anchor 2026-03-10
        {
            let last_minute = Server::start(db.url(), Some("2026-04-09T23:59:00Z"));
            let port = last_minute.port;
            assert_eq!(
                consume(port, &token, json!({"credits": 500, "id": "call-c1"})).status,
                200
            );
            assert_eq!(
                report(port, "zone-move", "2026-04-09T20:00:00Z"),
                "accepted"
            );
        }
        let issued =
            creditmeter::billing::close_due(&mut conn, at("2026-04-10T00:00:30Z"), None).unwrap();
        assert_eq!(issued.len(), 1, "the period [03-10, 04-10) is closed");

        let next_period = Server::start(db.url(), Some("2026-04-10T00:01:00Z"));
        let port = next_period.port;
        assert_eq!(
            consume(port, &token, json!({"credits": 500, "id": "call-c1"})).status,
            200
        );
        assert_eq!(
            used_today(port, &token),
            0,
            "the retried consume is not charged again"
        );
        assert_eq!(
            report(port, "pre-anchor", "2026-03-05T10:00:00Z"),
            "duplicate"
        );
        assert_eq!(
            report(port, "late", "2026-04-09T10:00:00Z"),
            "PERIOD_CLOSED"
        );
        let change = OrgUpdate {
            zone: Some("Pacific/Kiritimati".parse().unwrap()),
            ..Default::default()
        };
        update(&mut conn, org_id, &change, at("2026-04-10T00:01:00Z")).unwrap();
        // 2026-04-09T20:00Z is 04-10 in Kiritimati (UTC+14): an open day now, but counted already.
        assert_eq!(
            report(port, "zone-move", "2026-04-09T20:00:00Z"),
            "duplicate"
        );
        model::assert_ledger_consistent(&mut conn);
    }
}
