//! Database access: one connection enum over SQLite and PostgreSQL, its r2d2 pool (the backend
//! picked from the URL scheme), SQLite PRAGMAs on every connection, and embedded migrations.

pub mod schema;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; the store's queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Postgresql(PgConnection),
}

/// A database URL, parsed: `sqlite://PATH` or `postgres://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(DbError::BadUrl(url.to_string()));
            }
            return Ok(DatabaseUrl::Sqlite(path.to_string()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        Err(DbError::BadUrl(url.to_string()))
    }
}

/// SQLite settings applied to every connection: WAL, `synchronous=FULL` (R10), foreign keys, and a
/// busy timeout so that readers and the writer wait for each other instead of failing.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// Opens connections of the backend the URL names.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Manager { url }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => PgConnection::establish(url)
                .map(DbConn::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

pub type DbPool = Pool<Manager>;
pub type PooledConn = PooledConnection<Manager>;

/// Open (creating a SQLite file if needed), migrate, and pool.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> Result<DbPool, DbError> {
    let manager = Manager::new(url.clone());
    let mut first = manager
        .connect()
        .map_err(|e| DbError::Connect(e.to_string()))?;
    run_migrations(&mut first)?;
    drop(first);
    Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .map_err(|e| DbError::Connect(e.to_string()))
}

/// Open one connection, migrated, outside any pool (CLI commands, the ledger's writer).
pub fn connect_one(url: &DatabaseUrl) -> Result<DbConn, DbError> {
    let mut conn = Manager::new(url.clone())
        .connect()
        .map_err(|e| DbError::Connect(e.to_string()))?;
    run_migrations(&mut conn)?;
    Ok(conn)
}

/// One connection without running migrations (`backup`: it must change nothing).
pub fn connect_unmigrated(url: &DatabaseUrl) -> Result<DbConn, DbError> {
    Manager::new(url.clone())
        .connect()
        .map_err(|e| DbError::Connect(e.to_string()))
}

pub fn run_migrations(conn: &mut DbConn) -> Result<(), DbError> {
    let result = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConn::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| DbError::Migrate(e.to_string()))
}

/// Run `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so that a transaction that
/// reads before it writes never fails to upgrade its lock; on PostgreSQL an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConn::Sqlite(_) => {
            on_sqlite(conn, |c| CachedSql("BEGIN IMMEDIATE").execute(c))?;
            match f(conn) {
                Ok(value) => match on_sqlite(conn, |c| CachedSql("COMMIT").execute(c)) {
                    Ok(_) => Ok(value),
                    Err(e) => {
                        let _ = conn.batch_execute("ROLLBACK");
                        Err(e.into())
                    }
                },
                Err(e) => {
                    let _ = conn.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        }
        DbConn::Postgresql(_) => conn.transaction(f),
    }
}

/// Run `f` on the SQLite connection inside `conn` (callers have matched it already).
fn on_sqlite<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    match conn {
        DbConn::Sqlite(c) => f(c),
        DbConn::Postgresql(_) => Err(diesel::result::Error::QueryBuilderError(
            "a SQLite statement on a PostgreSQL connection".into(),
        )),
    }
}

/// A fixed SQL text whose prepared statement SQLite keeps for the connection's life (Diesel never
/// caches `sql_query`): for the statements the writer runs in every batch.
#[derive(Debug, Clone, Copy)]
pub struct CachedSql(pub &'static str);

impl diesel::query_builder::QueryId for CachedSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for CachedSql {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> diesel::QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl diesel::query_builder::Query for CachedSql {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::RunQueryDsl<SqliteConnection> for CachedSql {}

/// Run the same query text on the concrete backend, for the few statements the multi-backend layer
/// cannot express (upserts, multi-row inserts): `on_backend!(conn, c => query.execute(c))`.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgresql($c) => $body,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Nullable, Text};

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Stored {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        event_id: Option<String>,
    }

    /// A database from before keys and raw events were apart keeps every caller's key, and the
    /// ids the server had generated become "no id".
    #[test]
    fn keys_move_out_of_raw_events_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        for _ in 0..2 {
            conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        }
        conn.batch_execute(
            "INSERT INTO orgs (name, edition, created_at) VALUES
               ('A', 'enterprise', '2026-11-01 00:00:00'), ('B', 'enterprise', '2026-11-01 00:00:00');
             INSERT INTO usage_events VALUES
               (1, 'retry-me', '2026-11-20', '2026-11-20 10:00:00', 5, 5, 0, 'op', 'c', '', '2026-11-20 10:00:00'),
               (1, char(1) || 'abcdef000000000001', '2026-11-20', '2026-11-20 10:00:01', 2, 2, 0, 'op', 'c', '', '2026-11-20 10:00:01'),
               (2, 'retry-me', '2026-11-21', '2026-11-21 10:00:00', 7, 0, 7, 'op', 'c', '', '2026-11-21 10:00:00');",
        )
        .unwrap();
        conn.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();

        let events: Vec<Stored> =
            diesel::sql_query("SELECT org_id, event_id FROM usage_events ORDER BY id")
                .load(&mut conn)
                .unwrap();
        let expected =
            [(1, Some("retry-me")), (1, None), (2, Some("retry-me"))].map(|(org_id, id)| Stored {
                org_id,
                event_id: id.map(str::to_string),
            });
        assert_eq!(events, expected);
        let keys: Vec<Stored> =
            diesel::sql_query("SELECT org_id, event_id FROM usage_keys ORDER BY org_id")
                .load(&mut conn)
                .unwrap();
        assert_eq!(
            keys,
            [&expected[0], &expected[2]].map(|s| Stored {
                org_id: s.org_id,
                event_id: s.event_id.clone()
            })
        );
    }
}
