//! A usage event as callers send it: a live call (`/api/v1/consume`) or usage reported after the
//! fact (`/api/v1/usage`, the CSV import). One parse, so all three accept and refuse the same
//! things with the same words.

use chrono::{DateTime, Utc};

use super::admission::Kind;
use super::types::{Credits, MAX_CREDITS_PER_EVENT};

/// Most characters in an id or a label.
pub const MAX_TEXT: usize = 200;
/// The operation and client of an event that names none.
pub const UNSPECIFIED: &str = "unspecified";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("id is required")]
    MissingId,
    #[error("id is empty")]
    EmptyId,
    #[error("{0} is longer than {MAX_TEXT} characters")]
    TooLong(&'static str),
    #[error("{0} contains a control character")]
    ControlCharacter(&'static str),
    #[error("timestamp {0:?} is not an RFC 3339 time such as 2026-03-01T12:00:00Z")]
    Timestamp(String),
    #[error(
        "credits {0} is not a whole number from 1 to {max}",
        max = super::money::group_thousands(MAX_CREDITS_PER_EVENT)
    )]
    Credits(String),
}

/// A caller's id for an event (R9): 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    pub fn parse(raw: &str) -> Result<Self, EventError> {
        if raw.is_empty() {
            return Err(EventError::EmptyId);
        }
        check_text("id", raw)?;
        Ok(EventId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An operation, client or user name: at most 200 characters, no control characters; a blank one
/// is the label's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(
        field: &'static str,
        raw: Option<&str>,
        default: &str,
    ) -> Result<Self, EventError> {
        match raw {
            Some(value) => {
                check_text(field, value)?;
                if value.trim().is_empty() {
                    Ok(Label(default.to_string()))
                } else {
                    Ok(Label(value.to_string()))
                }
            }
            None => Ok(Label(default.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_text(field: &'static str, value: &str) -> Result<(), EventError> {
    if value.chars().count() > MAX_TEXT {
        Err(EventError::TooLong(field))
    } else if value.chars().any(char::is_control) {
        Err(EventError::ControlCharacter(field))
    } else {
        Ok(())
    }
}

/// An event's credits as sent: a JSON number, or the text of a CSV cell.
#[derive(Debug, Clone, Copy)]
pub enum RawCredits<'a> {
    Number(i64),
    Text(&'a str),
}

/// The fields of an event as sent, before they are checked.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub id: Option<&'a str>,
    /// Ignored for a live call, which happens now.
    pub timestamp: Option<&'a str>,
    pub credits: RawCredits<'a>,
    pub operation: Option<&'a str>,
    pub client: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// A checked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub id: Option<EventId>,
    pub occurred_at: DateTime<Utc>,
    pub credits: Credits,
    pub operation: Label,
    pub client: Label,
    pub user: Label,
}

impl UsageEvent {
    /// Check an event's fields. A live call happens `now` and may have an id; usage reported
    /// after the fact needs an id (R9) and an RFC 3339 timestamp (R12).
    pub fn parse(
        fields: EventFields<'_>,
        kind: Kind,
        now: DateTime<Utc>,
    ) -> Result<UsageEvent, EventError> {
        let id = match (fields.id, kind) {
            (Some(id), _) => Some(EventId::parse(id)?),
            (None, Kind::Live) => None,
            (None, Kind::Metered) => return Err(EventError::MissingId),
        };
        let occurred_at = match kind {
            Kind::Live => now,
            Kind::Metered => {
                let raw = fields.timestamp.unwrap_or_default();
                DateTime::parse_from_rfc3339(raw.trim())
                    .map_err(|_| EventError::Timestamp(raw.chars().take(40).collect()))?
                    .with_timezone(&Utc)
            }
        };
        let credits = match fields.credits {
            RawCredits::Number(n) => {
                Credits::new(n).map_err(|_| EventError::Credits(n.to_string()))
            }
            RawCredits::Text(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| Credits::new(n).ok())
                .ok_or_else(|| {
                    EventError::Credits(format!("{:?}", text.chars().take(40).collect::<String>()))
                }),
        }?;
        Ok(UsageEvent {
            id,
            occurred_at,
            credits,
            operation: Label::parse("operation", fields.operation, UNSPECIFIED)?,
            client: Label::parse("client", fields.client, UNSPECIFIED)?,
            user: Label::parse("user", fields.user, "")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fields<'a>(credits: RawCredits<'a>) -> EventFields<'a> {
        EventFields {
            id: Some("e1"),
            timestamp: Some("2026-03-01T12:00:00+01:00"),
            credits,
            operation: None,
            client: Some("  "),
            user: Some("ann"),
        }
    }

    #[test]
    fn events_parse_the_same_for_every_caller() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let metered =
            UsageEvent::parse(fields(RawCredits::Text(" 12 ")), Kind::Metered, now).unwrap();
        assert_eq!(
            metered.occurred_at,
            Utc.with_ymd_and_hms(2026, 3, 1, 11, 0, 0).unwrap()
        );
        assert_eq!(metered.credits.get(), 12);
        assert_eq!(metered.operation.as_str(), UNSPECIFIED);
        assert_eq!(metered.client.as_str(), UNSPECIFIED);
        assert_eq!(metered.user.as_str(), "ann");
        let live = UsageEvent::parse(
            EventFields {
                id: None,
                ..fields(RawCredits::Number(5))
            },
            Kind::Live,
            now,
        )
        .unwrap();
        assert_eq!((live.id, live.occurred_at), (None, now));

        let refused = |f: EventFields, kind| UsageEvent::parse(f, kind, now).unwrap_err();
        let base = fields(RawCredits::Number(1));
        assert_eq!(
            refused(EventFields { id: None, ..base }, Kind::Metered),
            EventError::MissingId
        );
        assert_eq!(
            refused(
                EventFields {
                    id: Some(""),
                    ..base
                },
                Kind::Live
            ),
            EventError::EmptyId
        );
        let long = "x".repeat(MAX_TEXT + 1);
        assert_eq!(
            refused(
                EventFields {
                    id: Some(&long),
                    ..base
                },
                Kind::Live
            ),
            EventError::TooLong("id")
        );
        assert_eq!(
            refused(
                EventFields {
                    client: Some("a\u{7}b"),
                    ..base
                },
                Kind::Metered
            ),
            EventError::ControlCharacter("client")
        );
        assert_eq!(
            refused(
                EventFields {
                    timestamp: Some("yesterday"),
                    ..base
                },
                Kind::Metered
            ),
            EventError::Timestamp("yesterday".into())
        );
        for bad in [
            RawCredits::Number(0),
            RawCredits::Number(1_000_000_001),
            RawCredits::Text("1.5"),
            RawCredits::Text("-3"),
        ] {
            assert!(matches!(
                refused(
                    EventFields {
                        credits: bad,
                        ..base
                    },
                    Kind::Metered
                ),
                EventError::Credits(_)
            ));
        }
    }
}
