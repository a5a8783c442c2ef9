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
    /// How often the server closes due billing periods by itself (`None`: never; tests).
    pub close_every: Option<std::time::Duration>,
}

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    clock: crate::clock::Clock,
    close_every: Option<std::time::Duration>,
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
        let state = Data::new(AppState::new(
            pool.clone(),
            writer,
            settings.clock,
            settings.secure_cookies,
        ));
        let mut server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(configure))
                .listen(listener)?
                .shutdown_timeout(30);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            pool,
            clock: settings.clock,
            close_every: settings.close_every,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    pub async fn run(self) -> std::io::Result<()> {
        if let Some(every) = self.close_every {
            actix_web::rt::spawn(close_periods_forever(self.pool.clone(), self.clock, every));
        }
        self.server.await
    }
}

/// The server's own closer: due billing periods get their statements without an operator (R7).
async fn close_periods_forever(
    pool: DbPool,
    clock: crate::clock::Clock,
    every: std::time::Duration,
) {
    loop {
        let pool = pool.clone();
        let closed = actix_web::web::block(move || -> anyhow::Result<Vec<String>> {
            let mut conn = pool.get()?;
            Ok(crate::billing::close_due(&mut conn, clock.now(), None)?)
        })
        .await;
        match closed {
            Ok(Ok(numbers)) if !numbers.is_empty() => {
                tracing::info!(count = numbers.len(), "billing periods closed")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "closing billing periods failed; will retry"),
            Err(e) => tracing::error!(error = %e, "closing billing periods failed; will retry"),
            _ => {}
        }
        actix_web::rt::time::sleep(every).await;
    }
}
