//! Pure business rules of creditmeter: no I/O, no clock, no SQL, no HTTP.
//! Everything here takes `now` or a `local_day` as an argument, which makes the rules testable
//! across months and time zones.

pub mod access;
pub mod admission;
pub mod alerts;
pub mod allocation;
pub mod allowance;
pub mod calendar;
pub mod estimate;
pub mod event;
pub mod money;
pub mod pricing;
pub mod projection;
pub mod types;
