//! R13/R14: alert thresholds and the budget of a billing period, and when a threshold is crossed.

use std::fmt;
use std::str::FromStr;

/// The percentages an org is alerted at, ascending and without repeats (R13; default 50, 80, 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds(Vec<u32>);

/// The most thresholds an org may set.
pub const MAX_THRESHOLDS: usize = 10;
/// The highest threshold: past the limit (lowered under what was spent) or the budget.
pub const MAX_THRESHOLD: u32 = 1000;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds(vec![50, 80, 100])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdsError(String);

impl FromStr for Thresholds {
    type Err = ThresholdsError;

    /// Whole percentages separated by commas or spaces ("50, 80, 100"); empty means no alerts.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut values = Vec::new();
        for part in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            let part = part.trim().trim_end_matches('%');
            if part.len() > 6 {
                return Err(ThresholdsError(format!(
                    "“{}…” is out of range: each threshold is 1 to {MAX_THRESHOLD}%",
                    part.chars().take(6).collect::<String>()
                )));
            }
            let value: u32 = part.parse().map_err(|_| {
                ThresholdsError(format!(
                    "“{part}” is not a whole percentage: write thresholds like 50, 80, 100"
                ))
            })?;
            if !(1..=MAX_THRESHOLD).contains(&value) {
                return Err(ThresholdsError(format!(
                    "{value}% is out of range: each threshold is 1 to {MAX_THRESHOLD}%"
                )));
            }
            values.push(value);
        }
        values.sort_unstable();
        values.dedup();
        if values.len() > MAX_THRESHOLDS {
            return Err(ThresholdsError(format!(
                "at most {MAX_THRESHOLDS} thresholds, not {}",
                values.len()
            )));
        }
        Ok(Thresholds(values))
    }
}

impl fmt::Display for Thresholds {
    /// As stored and shown: "50,80,100".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Thresholds {
    pub fn values(&self) -> &[u32] {
        &self.0
    }

    /// The thresholds a total crosses as it goes from `before` to `after` of `of` (a limit or a
    /// budget): those with `before < t% of it <= after`. Nothing is crossed of a total of 0.
    pub fn crossed(&self, before: i64, after: i64, of: i64) -> impl Iterator<Item = u32> + '_ {
        let (before, after, of) = (i128::from(before), i128::from(after), i128::from(of));
        self.0.iter().copied().filter(move |&t| {
            let mark = i128::from(t) * of;
            of > 0 && before * 100 < mark && mark <= after * 100
        })
    }
}

/// What a threshold is a percentage of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// The day's additional credits, of the daily additional limit (per org-local day).
    DailyLimit,
    /// The amount charged in a billing period, of its budget (per period).
    Budget,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DailyLimit => "daily_limit",
            AlertKind::Budget => "budget",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "daily_limit" => Some(AlertKind::DailyLimit),
            "budget" => Some(AlertKind::Budget),
            _ => None,
        }
    }
}

/// R14: an org's budget for each billing period, in the plan currency's minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub amount_minor: i64,
    /// Refuse a call whose admission would raise the period's charge above the budget.
    pub stop: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r13_thresholds_parse_sorted_and_refuse_nonsense() {
        assert_eq!(
            "100, 50,80 ,50%\t20"
                .parse::<Thresholds>()
                .unwrap()
                .to_string(),
            "20,50,80,100"
        );
        assert_eq!("".parse::<Thresholds>().unwrap().values(), &[] as &[u32]);
        for bad in [
            "0",
            "1001",
            "fifty",
            "50,-1",
            "1.5",
            "1,2,3,4,5,6,7,8,9,10,11",
        ] {
            assert!(bad.parse::<Thresholds>().is_err(), "{bad}");
        }
    }

    #[test]
    fn r13_a_threshold_is_crossed_once_on_the_way_up() {
        let t = Thresholds::default();
        let crossed = |b, a, of| t.crossed(b, a, of).collect::<Vec<_>>();
        assert_eq!(crossed(0, 499, 1000), Vec::<u32>::new());
        assert_eq!(crossed(0, 500, 1000), vec![50]);
        assert_eq!(crossed(500, 800, 1000), vec![80]);
        assert_eq!(crossed(499, 1000, 1000), vec![50, 80, 100]);
        assert_eq!(crossed(1000, 2000, 1000), Vec::<u32>::new());
        assert_eq!(crossed(0, 10, 0), Vec::<u32>::new());
        // 80% of 3 credits is 2.4: crossed by the third credit, not the second.
        assert_eq!(crossed(1, 2, 3), vec![50]);
        assert_eq!(crossed(2, 3, 3), vec![80, 100]);
    }
}
