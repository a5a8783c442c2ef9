//! The usage writer alone, without HTTP: batches of live consumes applied with
//! `ledger::apply_batch_cached` on one SQLite connection, as the writer thread does. Prints CPU time
//! per call and per transaction, with the transaction's fsync (synchronous=FULL) and without it
//! (synchronous=OFF), so that what the writer itself costs can be told apart from the disk.
//!
//!     cargo bench --bench writer        (BENCH_BATCH=25 BENCH_BATCHES=20000)

#[path = "support/load.rs"]
mod load;

use std::time::Instant;

use creditmeter::db::{self, DbConn};
use creditmeter::ledger::{self, Kind, LedgerCache, UsageRequest};
use diesel::connection::SimpleConnection;

fn main() {
    let batch = load::env_or("BENCH_BATCH", 25usize);
    let batches = load::env_or("BENCH_BATCHES", 20_000usize);
    for synchronous in ["OFF", "FULL"] {
        let dir = tempfile::tempdir().unwrap();
        let url =
            db::DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("w.db").display()))
                .unwrap();
        let mut conn: DbConn = db::connect_one(&url).unwrap();
        conn.batch_execute(&format!("PRAGMA synchronous = {synchronous}"))
            .unwrap();
        let now = chrono::Utc::now();
        let org_id = load::unlimited_org(&mut conn, now);
        let requests: Vec<UsageRequest> = (0..batch)
            .map(|_| UsageRequest {
                org_id,
                kind: Kind::Live,
                event_id: None,
                occurred_at: now,
                credits: 1,
                operation: "search".into(),
                client: "bench".into(),
                user: String::new(),
            })
            .collect();
        let requests: Vec<&UsageRequest> = requests.iter().collect();
        let mut cache = LedgerCache::default();
        let runs = if synchronous == "FULL" {
            batches / 4
        } else {
            batches
        };
        let (start, cpu) = (Instant::now(), load::thread_cpu_seconds());
        for _ in 0..runs {
            let outcomes =
                ledger::apply_batch_cached(&mut conn, chrono::Utc::now(), &requests, &mut cache)
                    .unwrap();
            assert_eq!(outcomes.len(), batch);
        }
        let (wall, cpu) = (
            start.elapsed().as_secs_f64(),
            load::thread_cpu_seconds() - cpu,
        );
        let calls = (runs * batch) as f64;
        println!(
            "synchronous={synchronous:<4} {runs} transactions of {batch}: {:6.2} µs CPU per call, {:7.1} µs CPU and {:7.1} µs wall per transaction",
            cpu * 1e6 / calls,
            cpu * 1e6 / runs as f64,
            wall * 1e6 / runs as f64
        );
    }
}
