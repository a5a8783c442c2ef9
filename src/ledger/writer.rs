//! Group commit: the one task that owns usage writes. Calls queue jobs; the writer takes the first
//! job, gathers whatever else is already waiting (no waiting for company), applies them in one
//! transaction (`synchronous=FULL` on SQLite), and only then answers the jobs that are complete.
//!
//! Fairness: one transaction takes at most `org_share` requests of any one org, so a large
//! metering job is applied in slices, between other orgs' calls, and never holds the writer for
//! long. Containment: when a transaction of several jobs fails, each job is tried again alone, so
//! only the job that caused the failure is answered with an error.

use crate::domain::types::OrgId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

use super::{LedgerCache, Outcome, UsageRequest, apply_batch_cached};
use crate::clock::Clock;
use crate::db::{self, DatabaseUrl, DbConn};

/// Most requests in one transaction.
pub const MAX_BATCH_EVENTS: usize = 5_000;
/// Most requests of one org in one transaction, by backend: what keeps another org's calls,
/// waiting behind a slice of a large metering job, within a few milliseconds (measured by
/// `cargo bench --bench ledger`), while the large job still moves at over 100,000 events/s alone.
/// An event costs PostgreSQL several times what it costs SQLite.
pub const ORG_SHARE_SQLITE: usize = 250;
pub const ORG_SHARE_POSTGRES: usize = 100;
/// Jobs that may wait for the writer before callers are told to retry: those the writer has taken
/// into its queue, and those handed over but not yet taken.
pub const QUEUE_CAPACITY: usize = 16_384;
/// The hand-over channel's part of `QUEUE_CAPACITY`.
const HANDOVER: usize = 1_024;

/// Requests of one org (every caller submits one org's requests), answered together once all of
/// them are decided and committed.
struct Job {
    requests: Vec<UsageRequest>,
    /// Taken when the job is answered.
    reply: Option<oneshot::Sender<Result<Vec<Outcome>, WriterError>>>,
    /// The outcomes of the requests applied so far, in order.
    outcomes: Vec<Outcome>,
}

impl Job {
    fn new(
        requests: Vec<UsageRequest>,
        reply: oneshot::Sender<Result<Vec<Outcome>, WriterError>>,
    ) -> Self {
        Job {
            outcomes: Vec::with_capacity(requests.len()),
            requests,
            reply: Some(reply),
        }
    }

    fn org_id(&self) -> OrgId {
        self.requests.first().map_or(OrgId::new(0), |r| r.org_id)
    }

    fn remaining(&self) -> usize {
        self.requests.len() - self.outcomes.len()
    }

    /// Answer the job; it then leaves the queue.
    fn answer(&mut self, result: Result<Vec<Outcome>, WriterError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriterError {
    #[error("the usage writer is overloaded; retry shortly")]
    Overloaded,
    #[error("the usage writer has stopped")]
    Stopped,
    #[error("the batch could not be committed: {0}")]
    Batch(String),
}

/// The writer's metrics, registered by `web::metrics` for `GET /metrics`.
pub struct WriterStats {
    pub batches: Counter,
    pub jobs: Counter,
    pub events: Counter,
    pub failed_batches: Counter,
    /// PostgreSQL: batches written from the writer's cache in one statement.
    pub cached_batches: Counter,
    /// PostgreSQL: batches from the cache whose rows another writer had changed.
    pub stale_batches: Counter,
    pub largest_batch_requests: Gauge,
    /// Seconds from a batch's start to its commit.
    pub batch_seconds: Histogram,
    /// Usage requests per committed transaction.
    pub batch_requests: Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            batches: Counter::default(),
            jobs: Counter::default(),
            events: Counter::default(),
            failed_batches: Counter::default(),
            cached_batches: Counter::default(),
            stale_batches: Counter::default(),
            largest_batch_requests: Gauge::default(),
            // 50 µs to about 3 s.
            batch_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            // 1 to 8,192 requests.
            batch_requests: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
        }
    }
}

impl WriterStats {
    /// A committed transaction of `jobs` jobs (or slices of jobs) and `requests` requests.
    fn record_commit(&self, jobs: usize, requests: usize, started: Instant) {
        self.batches.inc();
        self.jobs.inc_by(jobs as u64);
        self.events.inc_by(requests as u64);
        self.batch_seconds.observe(started.elapsed().as_secs_f64());
        self.batch_requests.observe(requests as f64);
    }
}

/// The writer: one lane on SQLite (one writer at a time is all it allows); on PostgreSQL a lane
/// for calls and small bodies and a lane for bulk metering, each with its own connection and
/// transactions, so a consume never waits behind a slice of another org's large body. Two lanes
/// are exact as two servers are (each batch locks the rows it decides on).
pub struct Writer {
    lanes: Vec<Lane>,
    pub stats: Arc<WriterStats>,
}

struct Lane {
    queue: SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
}

/// Jobs of more requests than this take the bulk lane, where there is one.
pub const BULK_REQUESTS: usize = 32;

impl Lane {
    fn start(
        url: &DatabaseUrl,
        clock: Clock,
        group_commit: bool,
        stats: Arc<WriterStats>,
        name: &str,
    ) -> Result<Lane, db::DbError> {
        let conn = WriterConn {
            conn: db::connect_one(url)?,
            url: url.clone(),
        };
        let (queue, jobs) = mpsc::sync_channel(HANDOVER);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(conn, jobs, clock, group_commit, &stats))
            .expect("writer thread starts");
        Ok(Lane {
            queue,
            thread: Some(thread),
        })
    }
}

impl Writer {
    /// Start the writer on its own connections. With `group_commit` off every job is its own
    /// transaction (the baseline of the benchmark).
    pub fn start(
        url: &DatabaseUrl,
        clock: Clock,
        group_commit: bool,
    ) -> Result<Writer, db::DbError> {
        let stats = Arc::new(WriterStats::default());
        let names: &[&str] = match url {
            DatabaseUrl::Sqlite(_) => &["usage-writer"],
            DatabaseUrl::Postgres(_) => &["usage-writer", "bulk-writer"],
        };
        let lanes = names
            .iter()
            .map(|name| Lane::start(url, clock, group_commit, stats.clone(), name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Writer { lanes, stats })
    }

    /// Queue a job and wait until its batch is committed.
    pub async fn submit(&self, requests: Vec<UsageRequest>) -> Result<Vec<Outcome>, WriterError> {
        let lane = if requests.len() > BULK_REQUESTS {
            self.lanes.last()
        } else {
            self.lanes.first()
        }
        .expect("a writer has a lane");
        let (reply, answer) = oneshot::channel();
        lane.queue
            .try_send(Job::new(requests, reply))
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => WriterError::Overloaded,
                mpsc::TrySendError::Disconnected(_) => WriterError::Stopped,
            })?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }
}

impl Drop for Writer {
    /// Stop taking jobs, let the lanes finish what is queued, and wait for them.
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            let (closed, _) = mpsc::sync_channel(1);
            drop(std::mem::replace(&mut lane.queue, closed));
        }
        for lane in &mut self.lanes {
            if let Some(thread) = lane.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn run(
    mut conn: WriterConn,
    jobs: Receiver<Job>,
    clock: Clock,
    group_commit: bool,
    stats: &WriterStats,
) {
    let mut cache = LedgerCache::default();
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        while pending.len() < QUEUE_CAPACITY - HANDOVER {
            match jobs.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let slices = next_batch(&pending, group_commit, org_share(&conn.conn));
        if !slices.is_empty() {
            commit_batch(&mut conn, &mut cache, clock, &mut pending, &slices, stats);
            let counts = std::mem::take(&mut cache.counts);
            stats.cached_batches.inc_by(counts.cached);
            stats.stale_batches.inc_by(counts.stale);
        }
        // Answer the jobs that are complete; the others keep their place in the queue.
        for job in pending.iter_mut().filter(|job| job.remaining() == 0) {
            let outcomes = std::mem::take(&mut job.outcomes);
            job.answer(Ok(outcomes));
        }
        pending.retain(|job| job.reply.is_some());
    }
}

/// The most requests of one org in one transaction on this connection's backend.
fn org_share(conn: &DbConn) -> usize {
    match conn {
        DbConn::Sqlite(_) => ORG_SHARE_SQLITE,
        DbConn::Postgresql(_) => ORG_SHARE_POSTGRES,
    }
}

/// A part of a queued job that goes into the next transaction: its position in the queue and how
/// many of its remaining requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    job: usize,
    count: usize,
}

/// The next transaction's slices, in queue order: every org gets at most `org_share` requests and
/// the whole at most `MAX_BATCH_EVENTS`. A job waits while an earlier job of its org has used the
/// org's share, so each org's requests are applied in the order they came. Without group commit,
/// one job (or one share of it) a transaction.
fn next_batch(pending: &VecDeque<Job>, group_commit: bool, org_share: usize) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut total = 0;
    let mut org_used: HashMap<OrgId, usize> = HashMap::new();
    for (index, job) in pending.iter().enumerate() {
        let used = org_used.entry(job.org_id()).or_default();
        let count = job
            .remaining()
            .min(org_share - *used)
            .min(MAX_BATCH_EVENTS - total);
        if count < job.remaining() {
            // The rest of this job waits for the next transaction, and so do the org's later jobs.
            *used = org_share;
        } else {
            *used += count;
        }
        if count == 0 {
            continue;
        }
        slices.push(Slice { job: index, count });
        total += count;
        if !group_commit || total == MAX_BATCH_EVENTS {
            break;
        }
    }
    slices
}

/// The writer's one connection, replaced when it is lost (the database restarted or failed over,
/// an idle timeout): without that, every later batch would fail until the process restarts.
struct WriterConn {
    conn: DbConn,
    url: DatabaseUrl,
}

impl WriterConn {
    /// After a failed batch: whether the connection had to be replaced (and was). A connection
    /// that answers a probe, and whose transaction state Diesel still trusts, is kept.
    fn heal(&mut self, error: &diesel::result::Error) -> bool {
        use diesel::connection::SimpleConnection;
        let broken = matches!(error, diesel::result::Error::BrokenTransactionManager)
            || self.conn.batch_execute("SELECT 1").is_err();
        if !broken {
            return false;
        }
        match db::connect_one(&self.url) {
            Ok(fresh) => {
                tracing::warn!("the usage writer's database connection was lost; reconnected");
                self.conn = fresh;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the usage writer cannot reconnect to the database");
                false
            }
        }
    }
}

/// Apply the slices in one transaction. If it fails before its COMMIT, and it held several jobs or
/// its connection was lost and replaced, apply each job's slice alone, so that a job is answered
/// with an error only for a failure of its own. A batch whose COMMIT failed or went unanswered may
/// be committed: it is never applied again (a call without an id would count twice), and its jobs
/// are answered with an error. A job whose slice fails leaves the queue (slices it had committed
/// before stay: each event of a metering job carries an id, so a retry counts them once).
fn commit_batch(
    conn: &mut WriterConn,
    cache: &mut LedgerCache,
    clock: Clock,
    pending: &mut VecDeque<Job>,
    slices: &[Slice],
    stats: &WriterStats,
) {
    let requests: Vec<&UsageRequest> = slices
        .iter()
        .flat_map(|slice| requests_of(pending, slice))
        .collect();
    stats
        .largest_batch_requests
        .inner()
        .fetch_max(requests.len() as i64, Ordering::Relaxed);
    let started = Instant::now();
    let failure = match apply_batch_cached(&mut conn.conn, clock.now(), &requests, cache) {
        Ok(outcomes) => {
            stats.record_commit(slices.len(), requests.len(), started);
            drop(requests);
            let mut outcomes = outcomes.into_iter();
            for slice in slices {
                let job = &mut pending[slice.job];
                job.outcomes.extend(outcomes.by_ref().take(slice.count));
            }
            return;
        }
        Err(failure) => failure,
    };
    drop(requests);
    stats.failed_batches.inc();
    let reconnected = conn.heal(&failure.error);
    if failure.commit_unknown || (slices.len() == 1 && !reconnected) {
        for slice in slices {
            fail(&mut pending[slice.job], &failure.error);
        }
        return;
    }
    tracing::warn!(error = %failure, jobs = slices.len(), "usage batch failed; trying each job alone");
    for slice in slices {
        let alone = requests_of(pending, slice);
        let started = Instant::now();
        match apply_batch_cached(&mut conn.conn, clock.now(), &alone, cache) {
            Ok(outcomes) => {
                stats.record_commit(1, alone.len(), started);
                drop(alone);
                pending[slice.job].outcomes.extend(outcomes);
            }
            Err(failure) => {
                drop(alone);
                stats.failed_batches.inc();
                conn.heal(&failure.error);
                fail(&mut pending[slice.job], &failure.error);
            }
        }
    }
}

/// The requests of a slice: the next `count` of its job that are not decided yet.
fn requests_of<'a>(pending: &'a VecDeque<Job>, slice: &Slice) -> Vec<&'a UsageRequest> {
    let job = &pending[slice.job];
    let done = job.outcomes.len();
    job.requests[done..done + slice.count].iter().collect()
}

/// Answer a job with the error of its failed slice; it leaves the queue.
fn fail(job: &mut Job, error: &diesel::result::Error) {
    tracing::error!(error = %error, org = %job.org_id(), requests = job.requests.len(), "usage not recorded");
    job.answer(Err(WriterError::Batch(error.to_string())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Kind;

    const SHARE: usize = ORG_SHARE_SQLITE;

    fn job(org_id: i64, requests: usize) -> Job {
        let org_id = OrgId::new(org_id);
        let request = UsageRequest {
            org_id,
            kind: Kind::Live,
            event_id: None,
            occurred_at: chrono::Utc::now(),
            credits: 1,
            operation: String::new(),
            client: String::new(),
            user: String::new(),
        };
        Job::new(vec![request; requests], oneshot::channel().0)
    }

    fn batch(jobs: Vec<Job>, group_commit: bool) -> Vec<(usize, usize)> {
        next_batch(&jobs.into(), group_commit, SHARE)
            .into_iter()
            .map(|s| (s.job, s.count))
            .collect()
    }

    #[test]
    fn many_calls_of_one_org_share_a_transaction() {
        let calls = (0..64).map(|_| job(1, 1)).collect();
        assert_eq!(
            batch(calls, true),
            (0..64).map(|i| (i, 1)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_large_job_takes_one_share_and_holds_back_its_org_only() {
        let jobs = vec![job(1, 100_000), job(1, 1), job(2, 1), job(2, 3_000)];
        assert_eq!(batch(jobs, true), [(0, SHARE), (2, 1), (3, SHARE - 1)]);
    }

    #[test]
    fn a_transaction_is_bounded_in_all() {
        let jobs = (0..40).map(|org| job(org, SHARE)).collect();
        let slices = batch(jobs, true);
        assert_eq!(slices.len(), MAX_BATCH_EVENTS / SHARE);
        assert_eq!(slices.iter().map(|s| s.1).sum::<usize>(), MAX_BATCH_EVENTS);
    }

    #[test]
    fn without_group_commit_one_job_a_transaction() {
        let jobs = vec![job(1, 1), job(2, 1)];
        assert_eq!(batch(jobs, false), [(0, 1)]);
    }
}
