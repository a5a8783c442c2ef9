//! The ledger on PostgreSQL and under a noisy tenant (issue 13), in one run on 127.0.0.1, with real
//! `creditmeter serve` processes; consume at 64 connections, one credit a call:
//!   (1) PostgreSQL, one server, group commit, one hot org
//!   (2) PostgreSQL, one server, one transaction per call (`--no-group-commit`), one hot org
//!   (3) SQLite, one server, group commit, one hot org
//!   (4) PostgreSQL, one server, 100 orgs (connection i spends for org i)
//!   (5) PostgreSQL, two server processes, 100 orgs (connections alternate between them)
//!   (6) PostgreSQL, two server processes, one hot org
//! then the p99 of one org's consumes (8 connections) alone and while another org streams
//! 100,000-event NDJSON bodies, three at a time, on each backend. BENCH_ONLY=pg, sqlite or bulk
//! runs one part alone.
//!
//! PostgreSQL comes from BENCH_DATABASE_URL or TEST_DATABASE_URL (a database of its own is created
//! and dropped; run the server with fsync and synchronous_commit on, its defaults); without one
//! the PostgreSQL phases are skipped.
//!
//!     cargo bench --bench ledger          (BENCH_SECONDS=2 per phase and round, BENCH_ROUNDS=4)

#[path = "support/load.rs"]
mod load;

use std::io::Write;
use std::time::Duration;

use creditmeter::db::{self, DatabaseUrl};
use diesel::RunQueryDsl;

#[path = "../tests/it/common/serve.rs"]
mod serve;

/// A `creditmeter serve` process on the database, with or without group commit.
fn start_server(url: &str, group_commit: bool) -> serve::Server {
    let args: &[&str] = if group_commit {
        &[]
    } else {
        &["--no-group-commit"]
    };
    serve::Server::start_with(url, None, args)
}

/// A database for one phase: a SQLite file, or a fresh PostgreSQL database (dropped at the end).
struct Database {
    url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    fn sqlite() -> Database {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        Database {
            url,
            admin: None,
            _dir: Some(dir),
        }
    }

    fn postgres(admin_url: &str) -> Database {
        use diesel::Connection;
        let name = format!("cm_bench_{}", &creditmeter::secrets::random_hex_256()[..12]);
        let mut admin = diesel::PgConnection::establish(admin_url).expect("PostgreSQL reachable");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap();
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            admin: Some((admin_url.to_string(), name)),
            _dir: None,
        }
    }

    /// `count` orgs with no practical limit; their tokens.
    fn orgs(&self, count: usize) -> Vec<String> {
        let mut conn = db::connect_one(&DatabaseUrl::parse(&self.url).unwrap()).unwrap();
        let now = chrono::Utc::now();
        (0..count)
            .map(|_| {
                let org = load::unlimited_org(&mut conn, now);
                creditmeter::store::users::create_token(&mut conn, org, now).unwrap()
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        use diesel::Connection;
        if let Some((admin_url, name)) = &self.admin
            && let Ok(mut admin) = diesel::PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

/// Consume at `connections` over every server and token: connection i uses server i % servers
/// and token i % tokens.
fn consume(
    label: &str,
    servers: &[&serve::Server],
    tokens: &[String],
    connections: usize,
    duration: Duration,
) -> load::Figures {
    let requests: Vec<Vec<u8>> = tokens.iter().map(|t| load::consume_request(t)).collect();
    let count = servers.len() * tokens.len() / gcd(servers.len(), tokens.len());
    let targets: Vec<(u16, &[u8])> = (0..count)
        .map(|i| {
            (
                servers[i % servers.len()].port,
                requests[i % requests.len()].as_slice(),
            )
        })
        .collect();
    // Warm the token caches and the writer's first batch.
    load::run_targets("warm-up", &targets, connections, Duration::from_millis(300));
    let figures = load::run_targets(label, &targets, connections, duration);
    figures.print();
    assert_eq!(figures.errors, 0, "{label}: non-2xx answers");
    figures
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One org's consumes at 8 connections while `bulk_streams` threads keep posting 100,000-event
/// NDJSON bodies for another org (`BENCH_BULK_BODIES` different bodies each, default 3, made
/// before the clock starts and sent again in turn: the first round is accepted, later rounds are
/// answered duplicate).
fn under_bulk(label: &str, database: &Database, bulk_streams: usize, duration: Duration) {
    let tokens = database.orgs(2);
    let server = start_server(&database.url, true);
    let port = server.port;
    let bodies_each: usize = load::env_or("BENCH_BULK_BODIES", 3);
    let stamp = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let requests: Vec<Vec<Vec<u8>>> = (0..bulk_streams)
        .map(|stream| {
            (0..bodies_each)
                .map(|number| {
                    let body: String = (0..100_000)
                        .map(|e| format!("{{\"id\":\"b{stream}-{number}-{e}\",\"timestamp\":\"{stamp}\",\"credits\":1}}\n"))
                        .collect();
                    let head = format!(
                        "POST /api/v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                        tokens[0],
                        body.len()
                    );
                    [head.into_bytes(), body.into_bytes()].concat()
                })
                .collect()
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streams: Vec<_> = requests
        .into_iter()
        .map(|bodies| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answered = 0u64;
                for request in bodies.iter().cycle() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    tcp.write_all(request).unwrap();
                    let mut buf = Vec::new();
                    let status = load::read_response(&mut tcp, &mut buf).unwrap();
                    assert_eq!(status, 200, "bulk body refused");
                    answered += 100_000;
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let live = consume(label, &[&server], &tokens[1..], 8, duration);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: u64 = streams.into_iter().map(|s| s.join().unwrap()).sum();
    println!(
        "    meanwhile the other org's bulk: {answered} events answered; consume p99 {:.2} ms (target < 20 ms)",
        live.p99_ms
    );
}

fn main() {
    let seconds: u64 = load::env_or("BENCH_SECONDS", 2);
    let duration = Duration::from_secs(seconds);
    let postgres = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .ok();
    println!("ledger benchmark: 64 connections, {seconds} s per phase, real `serve` processes");

    // For profiling one phase alone: BENCH_ONLY=pg (phase 1) or BENCH_ONLY=sqlite (phase 3), for
    // BENCH_SECONDS, printing the writer's calls per transaction; BENCH_ORGS=100 and
    // BENCH_SERVERS=2 make it phase 4 or 5, and BENCH_CONNECTIONS changes the 64 connections.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("bulk") {
        return bulk_phases(&postgres, duration);
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let database = match (only.as_str(), &postgres) {
            ("pg", Some(admin_url)) => Database::postgres(admin_url),
            ("sqlite", _) => Database::sqlite(),
            _ => panic!("BENCH_ONLY is pg (with a PostgreSQL URL) or sqlite"),
        };
        let orgs: usize = load::env_or("BENCH_ORGS", 1);
        let tokens = database.orgs(orgs);
        let servers: Vec<serve::Server> = (0..load::env_or("BENCH_SERVERS", 1))
            .map(|_| start_server(&database.url, true))
            .collect();
        let connections = load::env_or("BENCH_CONNECTIONS", 64);
        consume(
            &format!(
                "{only}, {} server(s), {orgs} org(s), {connections} connections",
                servers.len()
            ),
            &servers.iter().collect::<Vec<_>>(),
            &tokens,
            connections,
            duration,
        );
        for server in &servers {
            load::print_batches(server.port, only.as_str());
        }
        return;
    }
    // The phases are measured in short interleaved rounds, every server started once and kept,
    // and each ratio is taken within a round, where the phases saw the same neighbours (on a shared
    // machine one phase alone swings by a third between runs); the median round is the figure.
    let rounds: usize = load::env_or("BENCH_ROUNDS", 4);
    let sqlite_db = Database::sqlite();
    let sqlite_tokens = sqlite_db.orgs(1);
    let sqlite = start_server(&sqlite_db.url, true);
    let Some(admin_url) = &postgres else {
        for _ in 0..rounds {
            consume(
                "(3) SQLite, 1 server, hot org",
                &[&sqlite],
                &sqlite_tokens,
                64,
                duration,
            );
        }
        println!("PostgreSQL phases SKIPPED: set BENCH_DATABASE_URL or TEST_DATABASE_URL");
        return bulk_phases(&postgres, duration);
    };
    let hot = Database::postgres(admin_url);
    let hot_tokens = hot.orgs(1);
    let hot_servers = [start_server(&hot.url, true), start_server(&hot.url, true)];
    let unbatched = start_server(&hot.url, false);
    let many = Database::postgres(admin_url);
    let many_tokens = many.orgs(100);
    let many_servers = [start_server(&many.url, true), start_server(&many.url, true)];
    let mut ratios: [Vec<f64>; 4] = Default::default();
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        let lite = consume(
            "(3) SQLite, 1 server, hot org",
            &[&sqlite],
            &sqlite_tokens,
            64,
            duration,
        );
        let grouped = consume(
            "(1) PostgreSQL, 1 server, hot org",
            &[&hot_servers[0]],
            &hot_tokens,
            64,
            duration,
        );
        let two_hot = consume(
            "(6) PostgreSQL, 2 servers, hot org",
            &[&hot_servers[0], &hot_servers[1]],
            &hot_tokens,
            64,
            duration,
        );
        let one_by_one = consume(
            "(2) PostgreSQL, txn per call",
            &[&unbatched],
            &hot_tokens,
            64,
            duration,
        );
        // (4) and (5) change places every round, so that neither always follows the other.
        let many_phase = |two: bool| {
            if two {
                consume(
                    "(5) PostgreSQL, 2 servers, 100 orgs",
                    &[&many_servers[0], &many_servers[1]],
                    &many_tokens,
                    64,
                    duration,
                )
            } else {
                consume(
                    "(4) PostgreSQL, 1 server, 100 orgs",
                    &[&many_servers[0]],
                    &many_tokens,
                    64,
                    duration,
                )
            }
        };
        let first = many_phase(round % 2 == 0);
        let second = many_phase(round % 2 == 1);
        let (one_many, two_many) = if round % 2 == 0 {
            (second, first)
        } else {
            (first, second)
        };
        let round_ratios = [
            grouped.rps() / one_by_one.rps(),
            grouped.rps() / lite.rps(),
            two_many.rps() / one_many.rps(),
            two_hot.rps() / grouped.rps(),
        ];
        println!(
            "    (1)/(2) = {:.1}x   (1)/(3) = {:.0}%   (5)/(4) = {:.2}x   (6)/(1) = {:.2}x",
            round_ratios[0],
            100.0 * round_ratios[1],
            round_ratios[2],
            round_ratios[3]
        );
        for (all, ratio) in ratios.iter_mut().zip(round_ratios) {
            all.push(ratio);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        }
    };
    let [one_by_one, sqlite_share, two_many, two_hot] = &mut ratios;
    println!("median of {rounds} rounds:");
    println!(
        "(1)/(2) group commit vs txn per call on PostgreSQL = {:.1}x (target >= 5x)",
        median(one_by_one)
    );
    println!(
        "(1)/(3) PostgreSQL vs SQLite, one server = {:.0}% (target >= 50%)",
        100.0 * median(sqlite_share)
    );
    println!(
        "(5)/(4) two servers vs one on 100 orgs = {:.2}x (target >= 1.0); (6)/(1) on one hot org = {:.2}x",
        median(two_many),
        median(two_hot)
    );
    for server in hot_servers.iter().chain(&many_servers) {
        load::print_batches(server.port, "PostgreSQL server");
    }
    drop((sqlite, hot_servers, unbatched, many_servers));

    bulk_phases(&postgres, duration);
}

/// One org's consumes alone, then beside another org's bulk ingest, on each backend.
fn bulk_phases(postgres: &Option<String>, duration: Duration) {
    let alone = Database::sqlite();
    under_bulk(
        "(n0) SQLite, one org's consumes, no bulk",
        &alone,
        0,
        duration,
    );
    let noisy = Database::sqlite();
    under_bulk(
        "(n1) SQLite, consumes under 3 bulk streams",
        &noisy,
        3,
        duration,
    );
    if let Some(admin_url) = postgres {
        let noisy = Database::postgres(admin_url);
        under_bulk(
            "(n2) PostgreSQL, consumes under 3 bulk streams",
            &noisy,
            3,
            duration,
        );
    }
}
