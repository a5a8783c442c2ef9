//! The projection of a billing period's total at the current rate (View details).

use chrono::NaiveDate;

use super::calendar::BillingPeriod;

/// The period's total at the current rate: what is charged so far, plus the average of the period's
/// completed days for each day still to come (today counts as to come; with no completed day yet,
/// today's amount so far is the rate). Never less than what is charged already, today included.
/// `days` are every day of the period up to today (days without usage included, at 0) with their
/// amounts in minor units.
pub fn project_period_total(
    days: &[(NaiveDate, i64)],
    today: NaiveDate,
    period: BillingPeriod,
) -> Projected {
    let completed: Vec<i64> = days
        .iter()
        .filter(|(day, _)| *day < today)
        .map(|(_, amount)| *amount)
        .collect();
    let charged: i64 = completed.iter().sum();
    let today_amount: i64 = days
        .iter()
        .filter(|(day, _)| *day == today)
        .map(|(_, amount)| *amount)
        .sum();
    let remaining_days = (period.end - today).num_days().max(0);
    let rate = if completed.is_empty() {
        today_amount
    } else {
        charged / completed.len() as i64
    };
    Projected {
        total_minor: charged + rate.saturating_mul(remaining_days).max(today_amount),
        completed_days: completed.len() as i64,
        rate_minor: rate,
        days_to_come: remaining_days,
    }
}

/// A projection and its basis, for the page to state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projected {
    pub total_minor: i64,
    /// The period's days before today, whose average is the rate (0: today's amount is).
    pub completed_days: i64,
    /// The amount a day to come is counted at.
    pub rate_minor: i64,
    /// Today and the days after it in the period.
    pub days_to_come: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::billing_period;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn projection_adds_the_average_completed_day_for_each_day_to_come() {
        let period = billing_period(day(1), 0); // 1 Mar – 31 Mar, 31 days
        // Two completed days at 100 and 300: rate 200; today (3 Mar) and 28 more days to come.
        let days = [(day(1), 100), (day(2), 300), (day(3), 50)];
        let projected = project_period_total(&days, day(3), period);
        assert_eq!(projected.total_minor, 400 + 200 * 29);
        assert_eq!(
            (
                projected.completed_days,
                projected.rate_minor,
                projected.days_to_come
            ),
            (2, 200, 29)
        );
        // The first day: today's amount so far is the rate.
        assert_eq!(
            project_period_total(&[(day(1), 70)], day(1), period).total_minor,
            70 * 31
        );
        // On the last day only today is to come, and never less than it.
        let late = [(day(30), 10), (day(31), 500)];
        assert_eq!(
            project_period_total(&late, day(31), period).total_minor,
            10 + 500
        );
        assert_eq!(project_period_total(&[], day(5), period).total_minor, 0);
    }
}
