//! The HTTP layer: every route in one place, shared state, security headers, static files.
//! Handlers are thin: parse input into domain types, call the store or ledger, render.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cache;
pub mod chart;
pub mod chrome;
pub mod credits;
pub mod details;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod prices;
pub mod range;
pub mod respond;
pub mod schema;
pub mod session;
pub mod statements;

use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{HttpResponse, web};

use std::sync::Arc;

use crate::clock::Clock;
use crate::db::{DbConn, DbPool};
use crate::ledger::writer::Writer;
pub use error::AppError;

pub struct AppState {
    pub pool: DbPool,
    pub clock: Clock,
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` is believed (see `session::client_address`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The key that binds the sign-in form's token to its cookie (shared by every server of the
    /// database, `store::server_key`).
    pub login_key: String,
    pub throttle: session::SignInThrottle,
    pub cache: cache::ReadCache,
    pub writer: Arc<Writer>,
    pub metrics: metrics::Metrics,
}

impl AppState {
    pub fn new(pool: DbPool, writer: Arc<Writer>, clock: Clock, secure_cookies: bool) -> Self {
        AppState {
            metrics: metrics::Metrics::new(&writer.stats),
            writer,
            pool,
            clock,
            secure_cookies,
            trusted_proxies: Vec::new(),
            login_key: String::new(),
            throttle: session::SignInThrottle::default(),
            cache: cache::ReadCache::new(cache::DEFAULT_TTL),
        }
    }

    /// Whether a request reached us over HTTPS: always with `--secure-cookies`, else when a trusted
    /// proxy says so (`X-Forwarded-Proto: https`). Cookies are then `Secure`, and pages send HSTS.
    pub fn is_https(&self, req: &actix_web::HttpRequest) -> bool {
        if self.secure_cookies {
            return true;
        }
        let from_proxy = req
            .peer_addr()
            .is_some_and(|peer| self.trusted_proxies.contains(&peer.ip().to_canonical()));
        // The nearest proxy's word is the last value (proxies append).
        from_proxy
            && req
                .headers()
                .get_all("x-forwarded-proto")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// Run blocking database work on the blocking thread pool.
    pub async fn db<T, F>(&self, work: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await?
    }
}

/// The Content-Security-Policy of every page: no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The JSON API's routes, from one list: the scope is built from it, and `API_ROUTES` names each
/// (method, path) for the test that checks them against the OpenAPI document.
/// Each route has the largest body it reads (`PayloadConfig`; past it, 413), and a route's path
/// called with another method is 405 with `Allow`.
macro_rules! api_routes {
    ($(($method:ident, $path:literal, $handler:expr, $body_limit:expr)),* $(,)?) => {
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), concat!("/api/v1", $path))),*];

        fn api_routes(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.service(
                web::resource($path)
                    .app_data(web::PayloadConfig::new($body_limit))
                    .route(web::$method().to($handler))
                    .default_service(web::to(|| async {
                        Err::<HttpResponse, _>(AppError::MethodNotAllowed(
                            stringify!($method).to_ascii_uppercase(),
                        ))
                    })),
            ))*
        }
    };
}

/// The most a consume body may hold: its fields are a few hundred bytes at most.
pub const MAX_CONSUME_BODY: usize = 16 * 1024;
/// The most a metering body may hold (100,000 events of about 600 bytes).
pub const MAX_USAGE_BODY: usize = 64 * 1024 * 1024;
/// The body limit of calls that read none.
const NO_BODY: usize = 16 * 1024;

api_routes![
    (post, "/consume", api::consume, MAX_CONSUME_BODY),
    (post, "/usage", api::report_usage, MAX_USAGE_BODY),
    (get, "/credits", api::credits, NO_BODY),
    (get, "/usage/daily", api::daily, NO_BODY),
    (get, "/ping", api::ping, NO_BODY),
    (get, "/openapi.json", openapi::serve, NO_BODY),
];

/// Every route of the application.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        api_routes(web::scope("/api/v1"))
            .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
            .wrap(ErrorHandlers::new().default_handler(error::json_errors))
            .wrap(from_fn(metrics::time_requests))
            .wrap(from_fn(strict_transport_security))
            .wrap(from_fn(limits::body_deadline))
            .default_service(web::to(api::not_found)),
    );
    cfg.service(
        web::scope("")
            .wrap(
                DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                    .add((header::REFERRER_POLICY, "same-origin")),
            )
            .wrap(from_fn(metrics::time_requests))
            .wrap(from_fn(strict_transport_security))
            .wrap(from_fn(limits::body_deadline))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(auth::login_form))
            .route("/login", web::post().to(auth::login))
            .route("/logout", web::post().to(auth::logout))
            .route("/apis/credits", web::get().to(credits::credits_tab))
            .route("/apis/credits/limit", web::post().to(credits::set_limit))
            .route("/apis/credits/audit", web::get().to(credits::audit))
            .route("/apis/credits/alerts", web::get().to(alerts::alerts_page))
            .route(
                "/apis/credits/alerts/thresholds",
                web::post().to(alerts::set_thresholds),
            )
            .route(
                "/apis/credits/alerts/budget",
                web::post().to(alerts::set_budget),
            )
            .route(
                "/apis/credits/alerts/webhook",
                web::post().to(alerts::set_webhook),
            )
            .route(
                "/apis/credits/alerts/secret",
                web::post().to(alerts::rotate_secret),
            )
            .route(
                "/apis/credits/alerts/test",
                web::post().to(alerts::send_test),
            )
            .route(
                "/apis/credits/alerts/deliveries/{id}/retry",
                web::post().to(alerts::retry_now),
            )
            .route(
                "/apis/credits/details",
                web::get().to(details::details_page),
            )
            .route(
                "/apis/credits/details.csv",
                web::get().to(details::details_csv),
            )
            .route(
                "/apis/credits/details.pdf",
                web::get().to(details::details_pdf),
            )
            .route("/apis/credits/statements", web::get().to(statements::list))
            .route(
                "/apis/credits/statements/{file}",
                web::get().to(statements::pdf),
            )
            .route("/healthz", web::get().to(healthz))
            .route("/healthz", web::head().to(healthz))
            .route("/metrics", web::get().to(metrics::serve))
            .route("/static/app.css", web::get().to(stylesheet))
            .route("/favicon.svg", web::get().to(favicon))
            .route("/favicon.ico", web::get().to(favicon))
            .route("/static/ping.txt", web::get().to(ping))
            .default_service(web::to(not_found)),
    );
}

/// `Strict-Transport-Security` on every page that was served over HTTPS (see `AppState::is_https`).
async fn strict_transport_security(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.is_https(req.request()));
    let mut response = next.call(req).await?;
    if https {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000"),
        );
    }
    Ok(response)
}

async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/apis/credits"))
        .finish()
}

async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    state
        .db(|conn| crate::store::ping(conn).map_err(|e| AppError::Unavailable(e.into())))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n"))
}

const STYLESHEET: &str = include_str!("../../static/app.css");

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

/// The tab icon (SVG; also answered for `/favicon.ico`, which browsers ask for by themselves).
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(include_str!("../../static/favicon.svg"))
}

/// A small static file, the baseline of the dashboard benchmark.
async fn ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(include_str!("../../static/ping.txt"))
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}
