//! creditmeter's integration tests, one binary with a module per area. Each test starts the real
//! server (the real binary where processes matter: kill -9, two servers on one database) on a
//! random port with a temporary database, and talks HTTP to it as a browser or a gateway would.

mod common;

mod alerts;
mod api;
mod browser;
mod cli;
mod details;
mod edge;
mod fuzz;
mod ledger;
mod postgres;
mod web;
