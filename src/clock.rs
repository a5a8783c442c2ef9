//! The one source of "now": the real clock, or a fixed instant from `CREDITMETER_NOW` for tests of
//! billing across months. Created at start and passed to whoever needs it.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Real,
    Fixed(DateTime<Utc>),
}

#[derive(Debug, thiserror::Error)]
#[error("CREDITMETER_NOW must be an RFC 3339 time such as 2026-03-01T12:00:00Z, got {0:?}")]
pub struct ClockError(String);

impl Clock {
    /// `CREDITMETER_NOW` when set (fixed, it does not advance), else the real clock.
    pub fn from_env() -> Result<Self, ClockError> {
        match std::env::var("CREDITMETER_NOW") {
            Ok(value) if !value.trim().is_empty() => DateTime::parse_from_rfc3339(value.trim())
                .map(|t| Clock::Fixed(t.with_timezone(&Utc)))
                .map_err(|_| ClockError(value)),
            _ => Ok(Clock::Real),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Real => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }
}
