//! Validated newtypes: values that can only be built valid.

use chrono::NaiveDate;

/// The additional credit limit of R2: a whole number of credits per day, 0 (off) to 500,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AdditionalLimit(i64);

pub const MAX_ADDITIONAL_LIMIT: i64 = 500_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("Enter the additional credit limit as a whole number of credits per day.")]
    Empty,
    #[error("The additional credit limit must be a whole number of credits, such as 25000.")]
    NotWhole,
    #[error("The additional credit limit must be between 0 and 500,000 credits per day.")]
    OutOfRange,
}

impl AdditionalLimit {
    pub const OFF: AdditionalLimit = AdditionalLimit(0);

    /// Parse a form or CLI value; thousands separators (`25,000` or `25 000`) are accepted.
    pub fn parse(input: &str) -> Result<Self, LimitError> {
        let cleaned: String = input
            .trim()
            .chars()
            .filter(|c| *c != ',' && *c != '_' && *c != ' ')
            .collect();
        if cleaned.is_empty() {
            return Err(LimitError::Empty);
        }
        let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
        if let Some(rest) = digits.strip_prefix('-') {
            return if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
                Err(LimitError::OutOfRange)
            } else {
                Err(LimitError::NotWhole)
            };
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(LimitError::NotWhole);
        }
        match digits.parse::<i64>() {
            Ok(value) => Self::new(value),
            Err(_) => Err(LimitError::OutOfRange),
        }
    }

    pub fn new(value: i64) -> Result<Self, LimitError> {
        if (0..=MAX_ADDITIONAL_LIMIT).contains(&value) {
            Ok(AdditionalLimit(value))
        } else {
            Err(LimitError::OutOfRange)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A positive number of credits for one call or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits(i64);

/// The most credits a single call or event may carry.
pub const MAX_CREDITS_PER_EVENT: i64 = 1_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("credits must be a whole number from 1 to 1,000,000,000")]
pub struct CreditsError;

impl Credits {
    pub fn new(value: i64) -> Result<Self, CreditsError> {
        if (1..=MAX_CREDITS_PER_EVENT).contains(&value) {
            Ok(Credits(value))
        } else {
            Err(CreditsError)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// An org's name: 1 to 200 characters, no control characters (the rule of event labels: a name is
/// shown on pages, in PDFs and in logs).
pub fn check_org_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 {
        Err("--name must be 1 to 200 characters".into())
    } else if name.chars().any(char::is_control) {
        Err("--name must not contain control characters (line breaks, tabs, ...)".into())
    } else {
        Ok(name.to_string())
    }
}

/// An org's id, never mixed up with another number (a user's id, a count, a limit). Stored as a
/// BIGINT; the Diesel derives map it, nothing here does I/O.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::BigInt)]
#[serde(transparent)]
pub struct OrgId(i64);

impl OrgId {
    pub const fn new(raw: i64) -> Self {
        OrgId(raw)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for OrgId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(OrgId)
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for OrgId
where
    DB: diesel::backend::Backend,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for OrgId
where
    DB: diesel::backend::Backend,
    i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        i64::from_sql(bytes).map(OrgId)
    }
}

/// An inclusive range of org-local days, at most 366 long (SPEC §3). Its fields are private: a
/// range is only made by `new` or `ending_on`, so it is always valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    from: NaiveDate,
    to: NaiveDate,
}

pub const MAX_RANGE_DAYS: i64 = 366;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("{0:?} is not a date: use the form YYYY-MM-DD, such as 2026-03-01.")]
    Malformed(String),
    #[error("The start date {from} is after the end date {to}.")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("A range may span at most 366 days; {days} were asked for.")]
    TooLong { days: i64 },
    #[error("{0} is outside the calendar: use a date from 0001-01-01 to 9999-12-31.")]
    OutOfCalendar(NaiveDate),
}

impl DayRange {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, RangeError> {
        if from > to {
            return Err(RangeError::Reversed { from, to });
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_RANGE_DAYS {
            return Err(RangeError::TooLong { days });
        }
        Ok(DayRange { from, to })
    }

    pub fn parse_date(input: &str) -> Result<NaiveDate, RangeError> {
        let trimmed = input.trim();
        if trimmed.len() != 10 {
            return Err(RangeError::Malformed(input.chars().take(40).collect()));
        }
        let day = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
            .map_err(|_| RangeError::Malformed(input.chars().take(40).collect()))?;
        // Both databases hold these years (PostgreSQL has no year 0).
        if !(1..=9999).contains(&chrono::Datelike::year(&day)) {
            return Err(RangeError::OutOfCalendar(day));
        }
        Ok(day)
    }

    /// The `days` days that end on `last` (inclusive).
    pub fn ending_on(last: NaiveDate, days: i64) -> Self {
        let from = last - chrono::Duration::days(days.clamp(1, MAX_RANGE_DAYS) - 1);
        DayRange { from, to: last }
    }

    /// The first day.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The last day (included).
    pub fn to(&self) -> NaiveDate {
        self.to
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// Days in the range, both ends counted: never zero (`from <= to` is checked on creation).
    pub fn day_count(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_limit_values() {
        assert_eq!(AdditionalLimit::parse("25000").unwrap().get(), 25_000);
        assert_eq!(AdditionalLimit::parse(" 25,000 ").unwrap().get(), 25_000);
        assert_eq!(AdditionalLimit::parse("0").unwrap().get(), 0);
        assert_eq!(AdditionalLimit::parse("500000").unwrap().get(), 500_000);
        assert_eq!(
            AdditionalLimit::parse("500001"),
            Err(LimitError::OutOfRange)
        );
        assert_eq!(AdditionalLimit::parse("-1"), Err(LimitError::OutOfRange));
        assert_eq!(AdditionalLimit::parse("abc"), Err(LimitError::NotWhole));
        assert_eq!(AdditionalLimit::parse("12.5"), Err(LimitError::NotWhole));
        assert_eq!(AdditionalLimit::parse(""), Err(LimitError::Empty));
        assert_eq!(
            AdditionalLimit::parse("99999999999999999999999"),
            Err(LimitError::OutOfRange)
        );
        assert_eq!(AdditionalLimit::parse("-"), Err(LimitError::NotWhole));
    }

    #[test]
    fn day_ranges() {
        let d = |s| DayRange::parse_date(s).unwrap();
        assert!(DayRange::new(d("2026-01-01"), d("2026-12-31")).is_ok());
        assert!(DayRange::new(d("2024-01-01"), d("2024-12-31")).is_ok()); // 366 days
        assert!(matches!(
            DayRange::new(d("2024-01-01"), d("2025-01-01")),
            Err(RangeError::TooLong { days: 367 })
        ));
        assert!(matches!(
            DayRange::new(d("2026-02-02"), d("2026-02-01")),
            Err(RangeError::Reversed { .. })
        ));
        assert!(DayRange::parse_date("2026-02-30").is_err());
        assert!(DayRange::parse_date("20260201").is_err());
        assert_eq!(
            DayRange::ending_on(d("2026-03-30"), 30).from(),
            d("2026-03-01")
        );
        assert_eq!(DayRange::ending_on(d("2026-03-30"), 30).days().count(), 30);
    }
}
