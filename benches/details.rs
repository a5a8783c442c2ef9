//! View details benchmark (issue 6): a generated database of 1,000 orgs with 400 days of history
//! each; the 366-day page and the 366-day PDF, p50 and p99, first with 1 million usage events
//! stored, then with 10 million. Pages read the per-day rollups only, so their cost should not
//! grow with the events.
//!
//!     cargo bench --bench details      (BENCH_EVENTS_MILLIONS=10, BENCH_SECONDS=5; the database
//!                                       is generated in a temporary directory: ~3 GB at 10 M)

#[path = "support/load.rs"]
mod load;

use chrono::{Duration, NaiveDate, Utc};
use std::time::Instant;

use creditmeter::clock::Clock;
use creditmeter::db::DbConn;
use creditmeter::domain::allowance::{Allowance, Edition};
use creditmeter::domain::pricing::PricePlan;
use creditmeter::domain::types::OrgId;
use creditmeter::startup::Settings;
use creditmeter::store::usage::{self, BreakdownRow, DayRow, EventInsert};
use creditmeter::store::{orgs, users};

const ORGS: i64 = 1_000;
const DAYS: i64 = 400;

fn first_day(today: NaiveDate) -> NaiveDate {
    today - Duration::days(DAYS - 1)
}

/// 400 days of rollups for every org: what the ledger would have written.
fn generate_rollups(conn: &mut DbConn, today: NaiveDate) {
    let plan = PricePlan::default_plan();
    let free = 52_500;
    creditmeter::db::write_transaction(conn, |conn| -> diesel::QueryResult<()> {
        for org_id in 1..=ORGS {
            for d in 0..DAYS {
                let local_day = first_day(today) + Duration::days(d);
                let additional = (org_id * 7_919 + d * 104_729) % 180_000;
                let org_id = OrgId::new(org_id);
                let row = DayRow {
                    org_id,
                    local_day,
                    credits: free + additional,
                    free_credits: free,
                    additional,
                    amount_minor: plan.day_charge_minor(additional),
                    plan_id: 1,
                };
                usage::save_days(conn, std::slice::from_ref(&row))?;
                let breakdowns =
                    [("search", 3), ("ocr", 1)].map(|(operation, share)| BreakdownRow {
                        org_id,
                        local_day,
                        operation: operation.into(),
                        client: "web".into(),
                        credits: row.credits * share / 4,
                        additional: row.additional * share / 4,
                    });
                usage::add_breakdowns(conn, &breakdowns)?;
            }
        }
        Ok(())
    })
    .unwrap();
}

/// Raw events spread over the orgs and days, numbered from `from` to `to`.
fn generate_events(conn: &mut DbConn, today: NaiveDate, from: u64, to: u64) {
    let now = Utc::now().naive_utc();
    let mut next = from;
    while next < to {
        let end = (next + 200_000).min(to);
        let events: Vec<EventInsert> = (next..end)
            .map(|n| {
                let org_id = OrgId::new((n % ORGS as u64) as i64 + 1);
                let local_day =
                    first_day(today) + Duration::days(((n / ORGS as u64) % DAYS as u64) as i64);
                EventInsert {
                    org_id,
                    event_id: Some(format!("gen-{n}")),
                    local_day,
                    occurred_at: local_day.and_hms_opt(12, 0, 0).unwrap(),
                    credits: 100,
                    free_credits: 100,
                    additional: 0,
                    operation: "search".into(),
                    client: "web".into(),
                    user_ref: String::new(),
                    recorded_at: now,
                }
            })
            .collect();
        creditmeter::db::write_transaction(conn, |conn| usage::insert_events(conn, &events))
            .unwrap();
        next = end;
    }
}

fn main() {
    let millions: u64 = load::env_or("BENCH_EVENTS_MILLIONS", 10);
    let seconds: u64 = load::env_or("BENCH_SECONDS", 5);
    let (_dir, database, pool) = load::temp_database("big.db", 8);
    let now = Utc::now();
    let started = Instant::now();
    let mut conn = pool.get().unwrap();
    let created = now - Duration::days(DAYS + 5);
    for i in 1..=ORGS {
        let org = orgs::NewOrg {
            name: format!("Org {i}"),
            zone: chrono_tz::UTC,
            allowance: Allowance {
                edition: Edition::Standard,
                licences: 10,
                add_on_credits: 0,
            },
        };
        orgs::create(&mut conn, &org, created).unwrap();
    }
    let today = now.date_naive();
    generate_rollups(&mut conn, today);
    let org_id = OrgId::new(500);
    let hash = creditmeter::secrets::hash_password("bench-password").unwrap();
    let user = users::add(
        &mut conn,
        org_id,
        "bench@org500.example",
        users::Role::Admin,
        &hash,
        now,
    )
    .unwrap();
    let session = users::create_session(&mut conn, user, now).unwrap();
    generate_events(&mut conn, today, 0, 1_000_000.min(millions * 1_000_000));
    println!(
        "generated {ORGS} orgs x {DAYS} days and {} events in {:.0} s",
        1_000_000.min(millions * 1_000_000),
        started.elapsed().as_secs_f64()
    );

    let settings = Settings {
        bind: "127.0.0.1:0".into(),
        database,
        clock: Clock::Real,
        secure_cookies: false,
        workers: Some(2),
        group_commit: true,
        close_every: None,
        event_retention_days: None,
        trusted_proxies: Vec::new(),
        max_connections: creditmeter::startup::DEFAULT_MAX_CONNECTIONS,
        webhooks: None,
    };
    let server_pool = pool.clone();
    let port = load::start_server(settings, server_pool);
    let range = format!("from={}&to={today}", today - Duration::days(365));
    let cookie = format!("Cookie: cm_session={}\r\n", session.cookie_value);
    let page = load::get_request(&format!("/apis/credits/details?{range}"), &cookie);
    let pdf = load::get_request(&format!("/apis/credits/details.pdf?{range}"), &cookie);
    let duration = std::time::Duration::from_secs(seconds);

    load::run(
        "warm-up",
        port,
        1,
        std::time::Duration::from_millis(500),
        &page,
    );
    println!("one connection, sequential requests, {seconds} s each:");
    let page_1m = load::run("366-day page, 1 M events", port, 1, duration, &page);
    page_1m.print();
    let pdf_1m = load::run("366-day PDF, 1 M events", port, 1, duration, &pdf);
    pdf_1m.print();
    if millions <= 1 {
        return;
    }
    let grow = Instant::now();
    generate_events(&mut conn, today, 1_000_000, millions * 1_000_000);
    println!(
        "added events up to {} M in {:.0} s",
        millions,
        grow.elapsed().as_secs_f64()
    );
    load::run(
        "warm-up",
        port,
        1,
        std::time::Duration::from_millis(500),
        &page,
    );
    let page_big = load::run(
        &format!("366-day page, {millions} M events"),
        port,
        1,
        duration,
        &page,
    );
    page_big.print();
    let pdf_big = load::run(
        &format!("366-day PDF, {millions} M events"),
        port,
        1,
        duration,
        &pdf,
    );
    pdf_big.print();
    println!(
        "page p50 {:.2} ms (target < 5 ms), PDF p50 {:.2} ms (target < 50 ms); page p50 at {millions} M / 1 M events = {:.2} (target within 0.8..1.2)",
        page_big.p50_ms,
        pdf_big.p50_ms,
        page_big.p50_ms / page_1m.p50_ms
    );
}
