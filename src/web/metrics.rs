//! `GET /metrics` in the OpenMetrics text format, written by prometheus-client: consume calls and
//! metered events by result, every request's latency by route, method and status, the admission
//! latency of consume, and the usage writer's transactions (count, size, duration).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;

use super::{AppError, AppState};
use crate::ledger::writer::WriterStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern (`/apis/credits/statements/{file}`), never the raw path, so the number
    /// of series stays bounded whatever paths clients send.
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

/// 50 µs to about 3 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    admissions: Family<ResultLabel, Counter>,
    events: Family<ResultLabel, Counter>,
    requests: Family<RouteLabels, Histogram, fn() -> Histogram>,
    admission_seconds: Histogram,
}

impl Metrics {
    pub fn new(writer: &WriterStats) -> Self {
        let mut registry = Registry::with_prefix("creditmeter");
        let admissions = Family::<ResultLabel, Counter>::default();
        registry.register("admissions", "Consume calls by result.", admissions.clone());
        let events = Family::<ResultLabel, Counter>::default();
        registry.register("usage_events", "Metered events by result.", events.clone());
        let requests = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route, method and status.",
            requests.clone(),
        );
        let admission_seconds = latency_histogram();
        registry.register(
            "admission_duration_seconds",
            "Time a consume call waits for its decision to be committed.",
            admission_seconds.clone(),
        );
        registry.register(
            "writer_batches",
            "Transactions committed by the usage writer.",
            writer.batches.clone(),
        );
        registry.register(
            "writer_jobs",
            "Jobs (HTTP calls, imports), or slices of a large job, carried by those transactions.",
            writer.jobs.clone(),
        );
        registry.register(
            "writer_events",
            "Usage requests carried by those transactions.",
            writer.events.clone(),
        );
        registry.register(
            "writer_failed_batches",
            "Batches rolled back.",
            writer.failed_batches.clone(),
        );
        registry.register(
            "writer_cached_batches",
            "PostgreSQL: batches decided on the writer's cached rows and written in one statement.",
            writer.cached_batches.clone(),
        );
        registry.register(
            "writer_stale_batches",
            "PostgreSQL: batches from the cache whose rows another writer had changed, decided again.",
            writer.stale_batches.clone(),
        );
        registry.register(
            "writer_largest_batch_calls",
            "Most usage requests in one transaction so far.",
            writer.largest_batch_requests.clone(),
        );
        registry.register(
            "writer_batch_duration_seconds",
            "Time from a batch's start to its commit.",
            writer.batch_seconds.clone(),
        );
        registry.register(
            "writer_batch_requests",
            "Usage requests per committed transaction.",
            writer.batch_requests.clone(),
        );
        Metrics {
            registry,
            admissions,
            events,
            requests,
            admission_seconds,
        }
    }

    /// A consume call's result and how long it waited for its decision.
    pub fn admission(&self, allowed: bool, waited: std::time::Duration) {
        let result = if allowed { "allowed" } else { "refused" };
        self.admissions.get_or_create(&ResultLabel { result }).inc();
        self.admission_seconds.observe(waited.as_secs_f64());
    }

    /// The results of a metering call.
    pub fn metered(&self, accepted: u64, refused: u64) {
        self.events
            .get_or_create(&ResultLabel { result: "accepted" })
            .inc_by(accepted);
        self.events
            .get_or_create(&ResultLabel { result: "refused" })
            .inc_by(refused);
    }
}

/// Middleware: time every request by its route's pattern.
pub async fn time_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Any token is a method to HTTP: names outside the standard few are counted as one.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let response = next.call(req).await?;
    if let Some(state) = state {
        let labels = RouteLabels {
            route: response
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".into()),
            method,
            status: response.status().as_u16(),
        };
        state
            .metrics
            .requests
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// `GET /metrics`.
pub async fn serve(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry)
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}
