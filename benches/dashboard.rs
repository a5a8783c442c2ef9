//! Dashboard benchmark (issue 4): the signed-in Credits tab on the demo database at 32 concurrent
//! keep-alive connections, against a static file served by the same server, in the same run.
//!
//!     cargo bench --bench dashboard            (BENCH_SECONDS=10 for longer runs)

#[path = "support/load.rs"]
mod load;

use std::time::Duration;

use creditmeter::clock::Clock;
use creditmeter::startup::Settings;
use creditmeter::store::users;

fn main() {
    let seconds: u64 = load::env_or("BENCH_SECONDS", 5);
    let (_dir, database, pool) = load::temp_database("bench.db", 16);
    let clock = Clock::Real;
    let demo = creditmeter::demo::load(&mut pool.get().unwrap(), clock.now()).expect("demo data");
    let owner = users::find_by_email(&mut pool.get().unwrap(), demo.users[0].email)
        .unwrap()
        .unwrap();
    let session = users::create_session(&mut pool.get().unwrap(), owner.id, clock.now()).unwrap();

    let settings = Settings {
        bind: "127.0.0.1:0".into(),
        database,
        clock,
        secure_cookies: false,
        workers: None,
        group_commit: true,
        close_every: None,
        event_retention_days: None,
        trusted_proxies: Vec::new(),
        max_connections: creditmeter::startup::DEFAULT_MAX_CONNECTIONS,
        webhooks: None,
    };
    let server_pool = pool.clone();
    let port = load::start_server(settings, server_pool);
    let cookie = format!("Cookie: cm_session={}\r\n", session.cookie_value);
    let tab = load::get_request("/apis/credits", &cookie);
    let file = load::get_request("/static/ping.txt", "");
    let duration = Duration::from_secs(seconds);
    let connections = 32;

    // Warm up both paths, then measure them back to back.
    load::run("warm-up", port, 4, Duration::from_millis(500), &tab);
    load::run("warm-up", port, 4, Duration::from_millis(500), &file);
    println!(
        "dashboard benchmark: {connections} connections, {seconds} s each, demo database ({} events)",
        demo.events
    );
    let static_file = load::run(
        "static file /static/ping.txt",
        port,
        connections,
        duration,
        &file,
    );
    static_file.print();
    let credits = load::run(
        "Credits tab /apis/credits",
        port,
        connections,
        duration,
        &tab,
    );
    credits.print();
    assert_eq!(credits.errors, 0, "the Credits tab answered with errors");
    println!(
        "Credits tab throughput = {:.0}% of the static file (target >= 50%); p99 {:.2} ms (target < 10 ms)",
        100.0 * credits.rps() / static_file.rps(),
        credits.p99_ms
    );
}
