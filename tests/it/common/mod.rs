//! Test helpers: a real server on a random port with a temporary database, seeding through the
//! library, and signing in as a browser would.

pub mod http;
pub mod serve;
pub mod webdriver;

#[allow(unused_imports)]
pub use serve::Server;

use chrono::{DateTime, Utc};
use std::sync::mpsc;

use creditmeter::clock::Clock;
use creditmeter::db::{self, DatabaseUrl, DbPool};
use creditmeter::domain::allowance::{Allowance, Edition};
use creditmeter::domain::types::OrgId;
use creditmeter::startup::{Application, Settings};
use creditmeter::store::orgs::{self, NewOrg};
use creditmeter::store::users::{self, Role};

pub use http::Response;

pub struct TestApp {
    pub port: u16,
    pub pool: DbPool,
    pub clock: Clock,
    _dir: tempfile::TempDir,
}

pub const PASSWORD: &str = "correct-horse-battery";

/// How to start a test server: `TestApp::builder().clock(fixed("...")).spawn()`.
pub struct TestAppBuilder {
    trusted_proxies: Vec<std::net::IpAddr>,
    clock: Clock,
    close_every: Option<std::time::Duration>,
    database: Option<(DatabaseUrl, tempfile::TempDir)>,
    webhooks: Option<creditmeter::webhooks::WebhookConfig>,
}

impl TestApp {
    /// A server on 127.0.0.1:0 with a fresh SQLite file and the real clock, unless told otherwise.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            trusted_proxies: Vec::new(),
            clock: Clock::Real,
            close_every: None,
            database: None,
            webhooks: None,
        }
    }
}

impl TestAppBuilder {
    /// A fixed "now" (see `fixed`), for billing across months.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Believe `X-Forwarded-For` from these peers (the tests' own address, 127.0.0.1, acts as a
    /// reverse proxy).
    pub fn trusted_proxies(mut self, proxies: &[&str]) -> Self {
        self.trusted_proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
        self
    }

    /// The webhook worker, delivering as `config` says.
    pub fn webhooks(mut self, config: creditmeter::webhooks::WebhookConfig) -> Self {
        self.webhooks = Some(config);
        self
    }

    /// The server's own closer of billing periods, running every `every`.
    pub fn close_every(mut self, every: std::time::Duration) -> Self {
        self.close_every = Some(every);
        self
    }

    /// Another database (the PostgreSQL tests); `dir` lives as long as the app.
    pub fn database(mut self, database: DatabaseUrl, dir: tempfile::TempDir) -> Self {
        self.database = Some((database, dir));
        self
    }

    /// Start the server on its own thread and wait until it listens.
    pub fn spawn(self) -> TestApp {
        let (database, dir) = self.database.unwrap_or_else(|| {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (DatabaseUrl::parse(&url).unwrap(), dir)
        });
        let pool = db::connect(&database, 8).expect("database");
        let settings = Settings {
            bind: "127.0.0.1:0".into(),
            database,
            clock: self.clock,
            secure_cookies: false,
            workers: Some(2),
            group_commit: true,
            close_every: self.close_every,
            event_retention_days: None,
            trusted_proxies: self.trusted_proxies.clone(),
            max_connections: creditmeter::startup::DEFAULT_MAX_CONNECTIONS,
            webhooks: self.webhooks.clone(),
        };
        let (tx, rx) = mpsc::channel();
        let server_pool = pool.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app =
                    Application::build_with_pool(settings, server_pool).expect("server builds");
                tx.send(app.port()).unwrap();
                app.run().await
            })
        });
        let port = rx.recv().expect("server starts");
        TestApp {
            port,
            pool,
            clock: self.clock,
            _dir: dir,
        }
    }
}

/// One named step of a long scenario. Its name goes to the test's output, so a failure says which
/// step it was in.
pub fn step<T>(name: &str, body: impl FnOnce() -> T) -> T {
    eprintln!("step: {name}");
    body()
}

pub fn fixed(rfc3339: &str) -> Clock {
    Clock::Fixed(
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc),
    )
}

pub struct Seeded {
    pub org_id: OrgId,
    pub super_admin: String,
    pub admin: String,
    pub user: String,
}

/// A browser-like session: its cookie and the CSRF token the pages carry.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    pub fn conn(&self) -> db::PooledConn {
        self.pool.get().unwrap()
    }

    /// An org with a super admin, an admin and a plain user (emails prefixed by `slug`).
    pub fn seed_org(&self, slug: &str, edition: Edition, zone: &str) -> Seeded {
        let mut conn = self.conn();
        let now = self.clock.now();
        let org = NewOrg {
            name: format!("{slug} Corp"),
            zone: zone.parse().unwrap(),
            allowance: Allowance {
                edition,
                licences: 10,
                add_on_credits: 0,
            },
        };
        let org_id = orgs::create(&mut conn, &org, now).unwrap();
        let hash = creditmeter::secrets::hash_password(PASSWORD).unwrap();
        let emails = [
            ("super", Role::SuperAdmin),
            ("admin", Role::Admin),
            ("user", Role::User),
        ]
        .map(|(who, role)| {
            let email = format!("{who}@{slug}.example");
            users::add(&mut conn, org_id, &email, role, &hash, now).unwrap();
            email
        });
        let [super_admin, admin, user] = emails;
        Seeded {
            org_id,
            super_admin,
            admin,
            user,
        }
    }

    pub fn get(&self, path: &str, session: Option<&Session>) -> Response {
        let cookie = session
            .map(|s| format!("cm_session={}", s.cookie))
            .unwrap_or_default();
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("Cookie", cookie.as_str())]
        };
        http::request(self.port, "GET", path, &headers, b"")
    }

    pub fn post_form(&self, path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Response {
        let body = http::form_encode(fields);
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(c) = cookie {
            headers.push(("Cookie", c));
        }
        http::request(self.port, "POST", path, &headers, body.as_bytes())
    }

    /// Sign in through the form; the answer of the POST comes back too.
    pub fn try_sign_in(&self, email: &str, password: &str) -> (Response, Option<Session>) {
        self.try_sign_in_from(email, password, None)
    }

    /// `try_sign_in` through a proxy that says the client is `forwarded_for`.
    pub fn try_sign_in_from(
        &self,
        email: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> (Response, Option<Session>) {
        let form = self.get("/login", None);
        let login_csrf = form
            .set_cookie("cm_login_csrf")
            .expect("login form sets its CSRF cookie");
        let token = hidden_csrf(&form.body).expect("login form has csrf_token");
        let cookie = format!("cm_login_csrf={login_csrf}");
        let body = http::form_encode(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
        ]);
        let mut headers = vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookie.as_str()),
        ];
        if let Some(client) = forwarded_for {
            headers.push(("X-Forwarded-For", client));
        }
        let answer = http::request(self.port, "POST", "/login", &headers, body.as_bytes());
        let session = answer
            .set_cookie("cm_session")
            .filter(|v| !v.is_empty())
            .map(|cookie| {
                let page = self.get(
                    "/apis/credits",
                    Some(&Session {
                        cookie: cookie.clone(),
                        csrf: String::new(),
                    }),
                );
                let csrf = hidden_csrf(&page.body).unwrap_or_default();
                Session { cookie, csrf }
            });
        (answer, session)
    }

    pub fn sign_in(&self, email: &str) -> Session {
        let (answer, session) = self.try_sign_in(email, PASSWORD);
        session.unwrap_or_else(|| {
            panic!(
                "sign-in of {email} failed: {} {}",
                answer.status, answer.body
            )
        })
    }

    pub fn post_signed(&self, path: &str, session: &Session, fields: &[(&str, &str)]) -> Response {
        self.post_form(
            path,
            fields,
            Some(&format!("cm_session={}", session.cookie)),
        )
    }

    pub fn org_limit(&self, org_id: OrgId) -> i64 {
        orgs::find(&mut self.conn(), org_id)
            .unwrap()
            .unwrap()
            .additional_limit
    }
}

/// The value of the first hidden `csrf_token` field of a page.
pub fn hidden_csrf(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")?;
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The text of the element with `id`, tags stripped (good enough for our own pages).
pub fn text_of_id(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let open_end = at + html[at..].find('>')? + 1;
    let close = open_end + html[open_end..].find("</")?;
    Some(html[open_end..close].trim().to_string())
}

impl TestApp {
    pub fn token(&self, org_id: OrgId) -> String {
        users::create_token(&mut self.conn(), org_id, self.clock.now()).unwrap()
    }

    /// A JSON API call with a bearer token.
    pub fn api(&self, method: &str, path: &str, token: &str, body: &str) -> Response {
        self.api_typed(method, path, token, body, "application/json")
    }

    pub fn api_typed(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
        content_type: &str,
    ) -> Response {
        let auth = format!("Bearer {token}");
        http::request(
            self.port,
            method,
            path,
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body.as_bytes(),
        )
    }

    pub fn set_limit(&self, org_id: OrgId, limit: i64) {
        self.set_limit_at(org_id, limit, &self.clock.now().to_rfc3339());
    }

    /// Stored (credits, additional) of one org-day.
    pub fn day_totals(&self, org_id: OrgId, day: &str) -> (i64, i64) {
        let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        creditmeter::store::usage::day(&mut self.conn(), org_id, day)
            .unwrap()
            .map_or((0, 0), |r| (r.credits, r.additional))
    }
}

/// A row of the View details table: day, credits, additional credits, amount.
pub type DetailRow = (String, i64, i64, String);

/// The `data-*` hooks of the View details table.
pub fn day_rows(html: &str) -> Vec<DetailRow> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[at..at + tag[at..].find('"')?].to_string())
    };
    html.split("<tr ")
        .skip(1)
        .filter_map(|chunk| {
            let tag = &chunk[..chunk.find('>')?];
            let day = attr(tag, "data-day")?;
            Some((
                day,
                attr(tag, "data-credits")?.parse().ok()?,
                attr(tag, "data-additional")?.parse().ok()?,
                attr(tag, "data-amount")?,
            ))
        })
        .collect()
}

/// Set an org's limit as of `at`, as the limit form does (the history records it).
pub fn set_limit(conn: &mut db::DbConn, org_id: OrgId, limit: i64, at: DateTime<Utc>) {
    let org = orgs::find(conn, org_id).unwrap().unwrap();
    creditmeter::store::limits::set(
        conn,
        org_id,
        creditmeter::domain::types::AdditionalLimit::new(limit).unwrap(),
        "test",
        at,
        org.local_day(at),
    )
    .unwrap();
}

impl TestApp {
    /// The `sqlite://` URL of the app's database file, for the CLI.
    pub fn sqlite_url(&self) -> String {
        use diesel::prelude::*;
        #[derive(diesel::QueryableByName)]
        struct File {
            #[diesel(sql_type = diesel::sql_types::Text)]
            file: String,
        }
        let found: File =
            diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .get_result(&mut *self.conn())
                .unwrap();
        format!("sqlite://{}", found.file)
    }

    /// Set an org's limit as of `at` (RFC 3339), as the limit history records it.
    pub fn set_limit_at(&self, org_id: OrgId, limit: i64, at: &str) {
        let at = DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc);
        set_limit(&mut self.conn(), org_id, limit, at);
    }

    /// Record metered usage through the ledger: (RFC 3339 time, credits).
    pub fn record(&self, org_id: OrgId, events: &[(&str, i64)]) {
        use creditmeter::ledger::{self, Kind, UsageRequest};
        let requests: Vec<UsageRequest> = events
            .iter()
            .enumerate()
            .map(|(i, (at, credits))| UsageRequest {
                org_id,
                kind: Kind::Metered,
                event_id: Some(format!("seed-{at}-{i}")),
                occurred_at: DateTime::parse_from_rfc3339(at)
                    .unwrap()
                    .with_timezone(&Utc),
                credits: *credits,
                operation: if i % 2 == 0 {
                    "search".into()
                } else {
                    "ocr".into()
                },
                client: "seed".into(),
                user: String::new(),
            })
            .collect();
        let outcomes = ledger::apply_batch(&mut self.conn(), self.clock.now(), &requests).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ledger::Outcome::Accepted { .. })),
            "{outcomes:?}"
        );
    }
}

impl TestApp {
    /// The raw body of a signed-in GET (PDFs are binary; the test client reads text).
    pub fn get_bytes(&self, path: &str, session: &Session) -> Vec<u8> {
        let cookie = format!("cm_session={}", session.cookie);
        http::request_bytes(self.port, "GET", path, &[("Cookie", &cookie)], b"").2
    }
}

/// A PostgreSQL database of its own on the server TEST_DATABASE_URL names, dropped at the end;
/// `None` (and a SKIPPED line) when the variable is unset.
pub struct TempDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TempDatabase {
    pub fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED: PostgreSQL tests need TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB (unset here)"
            );
            return None;
        };
        let name = format!("cm_test_{}", &creditmeter::secrets::random_hex_256()[..12]);
        let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&admin_url)
            .expect("TEST_DATABASE_URL reachable");
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("CREATE DATABASE {name}")),
            &mut admin,
        )
        .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(TempDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            <diesel::PgConnection as diesel::Connection>::establish(&self.admin_url)
        {
            let _ = diesel::RunQueryDsl::execute(
                diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )),
                &mut admin,
            );
        }
    }
}

/// An API call with a bearer token to any port.
pub fn api_at(port: u16, method: &str, path: &str, token: &str, body: &str) -> Response {
    let auth = format!("Bearer {token}");
    http::request(
        port,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// `clients` threads consuming `credits` a call with fresh ids, each on `ports[client % n]`, until
/// their server stops answering or `stop` is set; the ids each acknowledged.
pub fn consume_until_gone(
    ports: Vec<u16>,
    token: &str,
    clients: usize,
    credits: i64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..clients)
        .map(|client| {
            let (token, stop) = (token.to_string(), stop.clone());
            let port = ports[client % ports.len()];
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for call in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("k{client}-{call}");
                    let body = serde_json::json!({"credits": credits, "id": id}).to_string();
                    let sent = std::panic::catch_unwind(|| {
                        api_at(port, "POST", "/api/v1/consume", &token, &body)
                    });
                    match sent {
                        Ok(r) if r.status == 200 => acknowledged.push(id),
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.body),
                        Err(_) => break, // the server is gone
                    }
                }
                acknowledged
            })
        })
        .collect()
}
