//! Daily free credits (R1) and how allowance changes take effect (R11).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edition {
    Free,
    Standard,
    Professional,
    Enterprise,
    Ultimate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown edition {0:?}: use free, standard, professional, enterprise or ultimate")]
pub struct UnknownEdition(pub String);

impl Edition {
    pub const ALL: [Edition; 5] = [
        Edition::Free,
        Edition::Standard,
        Edition::Professional,
        Edition::Enterprise,
        Edition::Ultimate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Free => "free",
            Edition::Standard => "standard",
            Edition::Professional => "professional",
            Edition::Enterprise => "enterprise",
            Edition::Ultimate => "ultimate",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Edition::Free => "Free",
            Edition::Standard => "Standard",
            Edition::Professional => "Professional",
            Edition::Enterprise => "Enterprise",
            Edition::Ultimate => "Ultimate",
        }
    }

    fn base(self) -> i64 {
        match self {
            Edition::Free => 5_000,
            _ => 50_000,
        }
    }

    fn per_licence(self) -> i64 {
        match self {
            Edition::Free => 0,
            Edition::Standard => 250,
            Edition::Professional => 500,
            Edition::Enterprise => 1_000,
            Edition::Ultimate => 2_000,
        }
    }

    fn maximum(self) -> Option<i64> {
        match self {
            Edition::Free => Some(5_000),
            Edition::Standard => Some(100_000),
            Edition::Professional => Some(3_000_000),
            Edition::Enterprise => Some(5_000_000),
            Edition::Ultimate => None,
        }
    }

    /// Only paid editions may buy additional credits (R1, R2).
    pub fn may_buy_additional(self) -> bool {
        self != Edition::Free
    }
}

impl FromStr for Edition {
    type Err = UnknownEdition;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Edition::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownEdition(s.to_string()))
    }
}

/// A stored edition that is not one: an error, never a silent `Free`.
impl TryFrom<String> for Edition {
    type Error = UnknownEdition;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an org's daily free credits are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub edition: Edition,
    pub licences: i64,
    pub add_on_credits: i64,
}

impl Allowance {
    /// R1: `min(base + licences × per_licence + add_on_credits, maximum)`.
    pub fn daily_free_credits(&self) -> i64 {
        let raw = self
            .edition
            .base()
            .saturating_add(
                self.licences
                    .max(0)
                    .saturating_mul(self.edition.per_licence()),
            )
            .saturating_add(self.add_on_credits.max(0));
        match self.edition.maximum() {
            Some(max) => raw.min(max),
            None => raw,
        }
    }
}

/// An allowance in force from an org-local day on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowanceChange {
    pub effective_from: NaiveDate,
    pub allowance: Allowance,
}

/// R1/R11: the free credits of `local_day`, from the org's history, or from its allowance as
/// configured now when it has no history.
pub fn free_credits_on(
    history: &[AllowanceChange],
    current: Allowance,
    local_day: NaiveDate,
) -> i64 {
    allowance_on(history, local_day)
        .unwrap_or(current)
        .daily_free_credits()
}

/// R11: the first org-local day a change of edition, licences or add-on credits made at `now`
/// applies to: the org's next local day.
pub fn change_effective_from(now: DateTime<Utc>, zone: Tz) -> NaiveDate {
    crate::domain::calendar::local_day(now, zone)
        .succ_opt()
        .unwrap_or(NaiveDate::MAX)
}

/// R11: the allowance of `local_day` from the org's history (sorted by `effective_from`; the first
/// entry is the allowance at creation, which also covers every day before it).
pub fn allowance_on(history: &[AllowanceChange], local_day: NaiveDate) -> Option<Allowance> {
    let first = history.first()?;
    Some(
        history
            .iter()
            .take_while(|c| c.effective_from <= local_day)
            .last()
            .unwrap_or(first)
            .allowance,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(edition: Edition, licences: i64, add_on: i64) -> i64 {
        Allowance {
            edition,
            licences,
            add_on_credits: add_on,
        }
        .daily_free_credits()
    }

    #[test]
    fn r11_allowance_changes_apply_from_the_next_local_day() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 23, 30, 0).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(change_effective_from(now, chrono_tz::UTC), day(2026, 3, 2));
        assert_eq!(
            change_effective_from(now, chrono_tz::Asia::Tokyo),
            day(2026, 3, 3)
        );
    }

    #[test]
    fn r1_daily_free_credits_per_edition() {
        assert_eq!(free(Edition::Standard, 10, 0), 52_500);
        assert_eq!(free(Edition::Free, 100, 0), 5_000);
        assert_eq!(free(Edition::Free, 0, 10_000), 5_000);
        assert_eq!(free(Edition::Standard, 1_000, 0), 100_000);
        assert_eq!(free(Edition::Professional, 10, 1_000), 56_000);
        assert_eq!(free(Edition::Professional, 100_000, 0), 3_000_000);
        assert_eq!(free(Edition::Enterprise, 20_000, 0), 5_000_000);
        assert_eq!(free(Edition::Ultimate, 10_000, 5), 20_050_005);
    }

    #[test]
    fn editions_parse_and_refuse_unknown_names() {
        assert_eq!("Professional".parse::<Edition>(), Ok(Edition::Professional));
        assert!(
            "gold"
                .parse::<Edition>()
                .unwrap_err()
                .to_string()
                .contains("unknown edition")
        );
        assert!(!Edition::Free.may_buy_additional());
        assert!(Edition::Standard.may_buy_additional());
    }

    #[test]
    fn r11_changes_apply_from_their_day_and_creation_covers_the_past() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let at = |edition, licences| Allowance {
            edition,
            licences,
            add_on_credits: 0,
        };
        let history = [
            AllowanceChange {
                effective_from: day(10),
                allowance: at(Edition::Standard, 0),
            },
            AllowanceChange {
                effective_from: day(15),
                allowance: at(Edition::Standard, 10),
            },
        ];
        assert_eq!(allowance_on(&history, day(1)).unwrap().licences, 0);
        assert_eq!(allowance_on(&history, day(14)).unwrap().licences, 0);
        assert_eq!(allowance_on(&history, day(15)).unwrap().licences, 10);
        assert_eq!(allowance_on(&[], day(15)), None);
    }
}
