//! Build the HTTP application: bind the listener (port 0 in tests), expose the port, run.

use actix_web::dev::Server;
use actix_web::web::Data;
use actix_web::{App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;

use crate::ledger::writer::Writer;

use crate::clock::Clock;
use crate::db::{self, DatabaseUrl, DbPool};
use crate::web::{AppState, configure};

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database: DatabaseUrl,
    pub clock: Clock,
    /// Mark cookies `Secure` (when served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    pub workers: Option<usize>,
    /// Batch concurrent usage writes into one transaction (off only to measure the difference).
    pub group_commit: bool,
    /// How often the server closes due billing periods and prunes raw events by itself (`None`:
    /// never; tests).
    pub close_every: Option<std::time::Duration>,
    /// The audit window: raw usage events older than this many days are pruned (`None`: kept).
    pub event_retention_days: Option<u32>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the sign-in throttle).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Open client connections the server holds at once; past it, new ones wait to be accepted.
    pub max_connections: usize,
    /// The webhook worker and how it delivers (`None`: no worker; tests that do not need one).
    pub webhooks: Option<crate::webhooks::WebhookConfig>,
}

/// The most client connections a server holds at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Time a client has to send a request's head, and an idle kept-alive connection is kept.
pub const HEAD_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Time an answered connection whose body went unread is still read from before it is closed.
pub const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    clock: crate::clock::Clock,
    close_every: Option<std::time::Duration>,
    event_retention_days: Option<u32>,
    webhooks: Option<crate::webhooks::WebhookConfig>,
}

impl Application {
    /// Migrate the database, bind, and build the server (it runs when awaited).
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.database, 16)?;
        Self::build_with_pool(settings, pool)
    }

    pub fn build_with_pool(settings: Settings, pool: DbPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let writer = Arc::new(Writer::start(
            &settings.database,
            settings.clock,
            settings.group_commit,
        )?);
        let mut state = AppState::new(
            pool.clone(),
            writer,
            settings.clock,
            settings.secure_cookies,
        );
        state.trusted_proxies = settings.trusted_proxies.clone();
        let mut conn = pool.get()?;
        state.login_key = crate::store::server_key(&mut conn, "login_csrf")?;
        drop(conn);
        let state = Data::new(state);
        let workers = settings
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        // actix counts connections per worker thread; the setting is for the whole server.
        let per_worker = settings.max_connections.div_ceil(workers).max(1);
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
                .workers(workers)
                .max_connections(per_worker)
                .client_request_timeout(HEAD_TIME)
                .keep_alive(HEAD_TIME)
                .client_disconnect_timeout(LINGER_TIME)
                .listen(listener)?
                .shutdown_timeout(30);
        Ok(Application {
            port,
            server: server.run(),
            pool,
            clock: settings.clock,
            close_every: settings.close_every,
            event_retention_days: settings.event_retention_days,
            webhooks: settings.webhooks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    pub async fn run(self) -> std::io::Result<()> {
        if let Some(config) = self.webhooks {
            crate::webhooks::start(self.pool.clone(), config);
        }
        if let Some(every) = self.close_every {
            actix_web::rt::spawn(maintain_forever(
                self.pool.clone(),
                self.clock,
                every,
                self.event_retention_days,
            ));
        }
        self.server.await
    }
}

/// The server's own upkeep: due billing periods get their statements without an operator (R7),
/// raw events past the audit window are pruned (SPEC §6 Growth), and expired sessions deleted.
async fn maintain_forever(
    pool: DbPool,
    clock: crate::clock::Clock,
    every: std::time::Duration,
    event_retention_days: Option<u32>,
) {
    loop {
        let pool = pool.clone();
        let done = actix_web::web::block(move || -> anyhow::Result<(Vec<String>, usize, usize)> {
            let mut conn = pool.get()?;
            let now = clock.now();
            let issued = crate::billing::close_due(&mut conn, now, None)?;
            let pruned = match event_retention_days {
                Some(days) => crate::store::usage::prune_events(
                    &mut conn,
                    crate::store::db_time(now - chrono::Duration::days(i64::from(days))),
                )?,
                None => 0,
            };
            let sessions = crate::store::users::purge_expired_sessions(&mut conn, now)?;
            Ok((issued, pruned, sessions))
        })
        .await;
        match done {
            Ok(Ok((issued, pruned, sessions))) => {
                if sessions > 0 {
                    tracing::debug!(count = sessions, "expired sessions deleted");
                }
                if !issued.is_empty() {
                    tracing::info!(count = issued.len(), "billing periods closed");
                }
                if pruned > 0 {
                    tracing::info!(
                        count = pruned,
                        "raw usage events past the audit window pruned"
                    );
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "server upkeep failed; will retry"),
            Err(e) => tracing::error!(error = %e, "server upkeep failed; will retry"),
        }
        actix_web::rt::time::sleep(every).await;
    }
}
