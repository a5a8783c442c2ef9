//! creditmeter: pay-as-you-go API credits with a daily free allowance, additional credits priced on
//! graduated daily slabs, monthly billing, a server-rendered dashboard and a JSON API.

pub mod billing;
pub mod cli;
pub mod clock;
pub mod db;
pub mod demo;
pub mod domain;
pub mod import;
pub mod ledger;
pub mod pdf;
pub mod report;
pub mod secrets;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod webhooks;

/// Every admission allocates on an HTTP worker and frees on the usage writer (and back); glibc's
/// malloc is slow at that, mimalloc is not. Set here so the binary, tests and benchmarks all use it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
