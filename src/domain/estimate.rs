//! What a super admin can foresee before saving anything: where a day sits on the price slabs, the
//! price of the next credits, and a period's cost at a limit and a pattern of use, exact to the
//! cent under R4 and R5 (free credits first, additional credits up to the limit, each day priced
//! on the slabs and rounded once).

use super::pricing::PricePlan;

/// One day of a pattern: its free allowance and the credits it would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternDay {
    pub free_allowance: i64,
    pub credits: i64,
}

/// The cost of a pattern of days at a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// The additional credits each day would be charged for (at most the limit).
    pub additional: Vec<i64>,
    /// Each day's charge, rounded once (R5), in minor units.
    pub day_charges_minor: Vec<i64>,
    /// Their sum: what the days would be billed.
    pub total_minor: i64,
    /// Days whose use would pass free + limit: calls past it would be refused (R4), not charged.
    pub days_capped: usize,
}

/// R4/R5 for a pattern of days at `limit`: each day spends its free allowance first, then
/// additional credits up to the limit (a day whose use passes free + limit is charged the limit:
/// the calls past it are refused, so the estimate is an upper bound of what it would be billed,
/// exact when no call is refused), each day priced on `plan` and rounded once.
pub fn estimate(plan: &PricePlan, limit: i64, days: &[PatternDay]) -> Estimate {
    let additional: Vec<i64> = days
        .iter()
        .map(|d| (d.credits - d.free_allowance).clamp(0, limit.max(0)))
        .collect();
    let day_charges_minor: Vec<i64> = additional
        .iter()
        .map(|a| plan.day_charge_minor(*a))
        .collect();
    Estimate {
        total_minor: day_charges_minor.iter().sum(),
        days_capped: days
            .iter()
            .filter(|d| d.credits - d.free_allowance > limit.max(0))
            .count(),
        additional,
        day_charges_minor,
    }
}

/// Where `additional` credits of a day sit on the plan's slabs: the index of the tier the next
/// credit falls in.
pub fn current_tier(plan: &PricePlan, additional: i64) -> usize {
    let next = additional + 1;
    plan.tier_ranges()
        .iter()
        .position(|(first, last)| next >= *first && last.is_none_or(|l| next <= l))
        .unwrap_or(plan.tiers().len().saturating_sub(1))
}

/// What `more` credits cost now, on a day that has used `additional` already: the difference of
/// the day's rounded charges (what the bill would show).
pub fn price_of_more(plan: &PricePlan, additional: i64, more: i64) -> i64 {
    plan.day_charge_minor(additional + more) - plan.day_charge_minor(additional)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_is_free_first_then_additional_up_to_the_limit_each_day_rounded_once() {
        let plan = PricePlan::default_plan();
        let day = |credits| PatternDay {
            free_allowance: 50_000,
            credits,
        };
        // 80,000 additional → 6.80; 12,345 → 1.73; nothing past free → 0; capped at the limit.
        let e = estimate(
            &plan,
            100_000,
            &[day(130_000), day(62_345), day(40_000), day(400_000)],
        );
        assert_eq!(e.additional, [80_000, 12_345, 0, 100_000]);
        assert_eq!(e.day_charges_minor, [680, 173, 0, 800]);
        assert_eq!(e.total_minor, 680 + 173 + 800);
        assert_eq!(e.days_capped, 1);
        // One rounding per day, not per period: 1 credit a day is 0.00 every day.
        let tiny = estimate(&plan, 10, &vec![day(50_001); 31]);
        assert_eq!(tiny.total_minor, 0);
        assert_eq!(estimate(&plan, 0, &[day(90_000)]).total_minor, 0);
    }

    #[test]
    fn the_next_credits_cost_what_the_bill_would_show() {
        let plan = PricePlan::default_plan();
        assert_eq!(current_tier(&plan, 0), 0);
        assert_eq!(current_tier(&plan, 24_999), 0);
        assert_eq!(current_tier(&plan, 25_000), 1);
        assert_eq!(current_tier(&plan, 600_000), 3);
        // 1,000 in the first slab: 0.14; across 25,000: 500 × 0.14 + 500 × 0.06 = 0.10.
        assert_eq!(price_of_more(&plan, 0, 1_000), 14);
        assert_eq!(price_of_more(&plan, 24_500, 1_000), 10);
    }
}
