//! Group commit: the one task that owns usage writes. Calls queue jobs; the writer takes the first
//! job, drains whatever else is already waiting (no waiting for company), applies them all in one
//! transaction (`synchronous=FULL`), and only then answers every job of the batch. A batch that
//! fails answers each of its jobs with an error and leaves nothing behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

use super::{LedgerCache, Outcome, UsageRequest, apply_batch_cached};
use crate::clock::Clock;
use crate::db::{self, DatabaseUrl, DbConn};

/// Most events in one transaction; a larger job still goes through whole, alone.
pub const MAX_BATCH_EVENTS: usize = 20_000;
/// Jobs that may wait for the writer before callers are told to retry.
pub const QUEUE_CAPACITY: usize = 16_384;

struct Job {
    requests: Vec<UsageRequest>,
    reply: oneshot::Sender<Result<Vec<Outcome>, WriterError>>,
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

/// Counters for /metrics.
#[derive(Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub jobs: AtomicU64,
    pub events: AtomicU64,
    pub failed_batches: AtomicU64,
    pub largest_batch_requests: AtomicU64,
}

pub struct Writer {
    queue: SyncSender<Job>,
    pub stats: Arc<WriterStats>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start the writer on its own connection. With `group_commit` off every job is its own
    /// transaction (the baseline of the benchmark).
    pub fn start(
        url: &DatabaseUrl,
        clock: Clock,
        group_commit: bool,
    ) -> Result<Writer, db::DbError> {
        let conn = db::connect_one(url)?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(conn, jobs, clock, group_commit, &thread_stats))
            .expect("writer thread starts");
        Ok(Writer {
            queue,
            stats,
            thread: Some(thread),
        })
    }

    /// Queue a job and wait until its batch is committed.
    pub async fn submit(&self, requests: Vec<UsageRequest>) -> Result<Vec<Outcome>, WriterError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Job { requests, reply })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => WriterError::Overloaded,
                mpsc::TrySendError::Disconnected(_) => WriterError::Stopped,
            })?;
        answer.await.map_err(|_| WriterError::Stopped)?
    }

    /// Submit from blocking code (the CLI import).
    pub fn submit_blocking(
        &self,
        requests: Vec<UsageRequest>,
    ) -> Result<Vec<Outcome>, WriterError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { requests, reply })
            .map_err(|_| WriterError::Stopped)?;
        answer.blocking_recv().map_err(|_| WriterError::Stopped)?
    }
}

impl Drop for Writer {
    /// Stop taking jobs, let the writer finish what is queued, and wait for it.
    fn drop(&mut self) {
        let (closed, _) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    mut conn: DbConn,
    jobs: Receiver<Job>,
    clock: Clock,
    group_commit: bool,
    stats: &WriterStats,
) {
    let mut cache = LedgerCache::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut events = batch[0].requests.len();
        while group_commit && events < MAX_BATCH_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.requests.len();
                    batch.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_batch(&mut conn, &mut cache, clock, batch, stats);
    }
}

fn commit_batch(
    conn: &mut DbConn,
    cache: &mut LedgerCache,
    clock: Clock,
    batch: Vec<Job>,
    stats: &WriterStats,
) {
    let sizes: Vec<usize> = batch.iter().map(|j| j.requests.len()).collect();
    let mut replies = Vec::with_capacity(batch.len());
    let mut requests = Vec::with_capacity(sizes.iter().sum());
    for job in batch {
        requests.extend(job.requests);
        replies.push(job.reply);
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .jobs
        .fetch_add(replies.len() as u64, Ordering::Relaxed);
    stats
        .events
        .fetch_add(requests.len() as u64, Ordering::Relaxed);
    stats
        .largest_batch_requests
        .fetch_max(requests.len() as u64, Ordering::Relaxed);
    match apply_batch_cached(conn, clock.now(), &requests, cache) {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
            }
        }
        Err(e) => {
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, jobs = replies.len(), "usage batch failed; nothing of it was written");
            for reply in replies {
                let _ = reply.send(Err(WriterError::Batch(e.to_string())));
            }
        }
    }
}
