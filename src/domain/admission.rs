//! The order of spending (R4, R11, R12): free credits first, then additional credits up to the
//! limit; a request that would go past free + limit is refused whole. Also where a request is
//! placed (its org-local day, or why it cannot be) and the decision on it, for the ledger.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use super::alerts::{Budget, Thresholds};
use super::allowance::{Allowance, AllowanceChange, free_credits_on};

use super::calendar::{self, BillingPeriod};

/// What one org-day has spent so far, and what it may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayBudget {
    pub free_allowance: i64,
    pub free_used: i64,
    pub additional_limit: i64,
    pub additional_used: i64,
}

/// The split of an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spend {
    pub free: i64,
    pub additional: i64,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The free credits are spent and no additional credits are available (limit 0).
    Free,
    /// The additional credit limit would be passed.
    Additional,
    /// The period's charge would pass its budget, and the org stops there (R14).
    Budget,
}

impl LimitHit {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitHit::Free => "free",
            LimitHit::Additional => "additional",
            LimitHit::Budget => "budget",
        }
    }
}

impl DayBudget {
    pub fn free_remaining(&self) -> i64 {
        (self.free_allowance - self.free_used).max(0)
    }

    /// Additional credits still available; 0 when the limit was lowered below what was spent (R11).
    pub fn additional_remaining(&self) -> i64 {
        (self.additional_limit - self.additional_used).max(0)
    }

    /// Decide a request of `credits` (> 0) without changing anything.
    pub fn decide(&self, credits: i64) -> Result<Spend, LimitHit> {
        let free = credits.min(self.free_remaining());
        let additional = credits - free;
        if additional == 0 {
            return Ok(Spend { free, additional });
        }
        if additional <= self.additional_remaining() {
            Ok(Spend { free, additional })
        } else if self.additional_limit == 0 {
            Err(LimitHit::Free)
        } else {
            Err(LimitHit::Additional)
        }
    }

    /// Decide and, when admitted, spend.
    pub fn spend(&mut self, credits: i64) -> Result<Spend, LimitHit> {
        let spend = self.decide(credits)?;
        self.free_used += spend.free;
        self.additional_used += spend.additional;
        Ok(spend)
    }
}

/// Whether a request spends against the limit in force now (a live call) or at the event's time
/// (metered usage, R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Live,
    Metered,
}

/// Why the ledger refused a request. Each is decided for the request alone: one refused request
/// never fails another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Past free + limit (R4, R12).
    LimitExceeded(LimitHit),
    /// The day belongs to an issued statement (R8).
    PeriodClosed,
    /// More than `FUTURE_TOLERANCE_HOURS` ahead of now (R12).
    FutureTimestamp,
    /// No price plan is in force on the event's day (before the first plan was published).
    NoPricePlan,
    /// The event's day lies outside the years 1 to 9999 that the calendar and the store hold.
    OutOfRange,
    /// The org does not exist (any more).
    UnknownOrg,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Refusal::PeriodClosed => "PERIOD_CLOSED",
            Refusal::FutureTimestamp => "FUTURE_TIMESTAMP",
            Refusal::NoPricePlan => "NO_PRICE_PLAN",
            Refusal::OutOfRange => "OUT_OF_RANGE",
            Refusal::UnknownOrg => "UNKNOWN_ORG",
        }
    }
}

/// How far in the future an event may be dated (R12).
pub const FUTURE_TOLERANCE_HOURS: i64 = 24;

/// The latest org-local day that usage can be placed on at `now`: an event up to
/// `FUTURE_TOLERANCE_HOURS` ahead, in UTC+14, the earliest zone. A price plan may only take effect
/// after it (R6: a day that has usage is never priced by a plan published later).
pub fn latest_placeable_day(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(FUTURE_TOLERANCE_HOURS + 14)).date_naive()
}

/// R12: the order in which the events of one report (a `/usage` request, an imported file) are
/// admitted: by timestamp, events of the same instant in the order they were sent. Positions into
/// `occurred`.
pub fn admission_order(occurred: &[DateTime<Utc>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..occurred.len()).collect();
    order.sort_by_key(|&i| occurred[i]);
    order
}

/// A change of the additional limit: in force from `at` on (R2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitChange {
    pub at: DateTime<Utc>,
    pub new_limit: i64,
}

/// R12: the limit in force at `instant`, from a history sorted oldest first (0 before the first
/// change).
pub fn limit_in_force(history: &[LimitChange], instant: DateTime<Utc>) -> i64 {
    history
        .iter()
        .take_while(|c| c.at <= instant)
        .last()
        .map_or(0, |c| c.new_limit)
}

/// What the ledger needs to know of an org to place and decide its requests.
#[derive(Debug, Clone)]
pub struct OrgRules {
    pub zone: Tz,
    /// The limit in force now, for live calls (R2: a change applies at once).
    pub additional_limit: i64,
    /// The allowance history (R11); its first entry also covers the days before it.
    pub allowances: Vec<AllowanceChange>,
    /// The allowance as configured now: used only when the history is empty.
    pub current_allowance: Allowance,
    pub limit_history: Vec<LimitChange>,
    /// The periods with an issued statement (R8).
    pub closed: Vec<BillingPeriod>,
    /// The first day of the billing cycle (R7), once the limit was ever above 0.
    pub anchor: Option<NaiveDate>,
    /// What the org is alerted at (R13).
    pub thresholds: Thresholds,
    /// The budget of each billing period (R14).
    pub budget: Option<Budget>,
}

impl OrgRules {
    /// R1/R11: the free credits of one org-local day.
    pub fn free_allowance(&self, local_day: NaiveDate) -> i64 {
        free_credits_on(&self.allowances, self.current_allowance, local_day)
    }

    /// The limit a request spends against: now for a live call, at its time for metered usage.
    pub fn limit_for(&self, kind: Kind, occurred_at: DateTime<Utc>) -> i64 {
        match kind {
            Kind::Live => self.additional_limit,
            Kind::Metered => limit_in_force(&self.limit_history, occurred_at),
        }
    }

    /// R8: whether `local_day` belongs to an issued statement.
    pub fn is_closed(&self, local_day: NaiveDate) -> bool {
        self.closed.iter().any(|p| p.contains(local_day))
    }

    /// The org-local day a request at `occurred_at` belongs to, or why it cannot be placed.
    pub fn place(
        &self,
        now: DateTime<Utc>,
        occurred_at: DateTime<Utc>,
    ) -> Result<NaiveDate, Refusal> {
        if occurred_at > now + Duration::hours(FUTURE_TOLERANCE_HOURS) {
            return Err(Refusal::FutureTimestamp);
        }
        let local_day = calendar::local_day(occurred_at, self.zone);
        if !(1..=9999).contains(&local_day.year()) {
            return Err(Refusal::OutOfRange);
        }
        if self.is_closed(local_day) {
            return Err(Refusal::PeriodClosed);
        }
        Ok(local_day)
    }

    /// The budget of an org-local day that has spent `free_used` and `additional_used` so far.
    pub fn budget(
        &self,
        kind: Kind,
        occurred_at: DateTime<Utc>,
        local_day: NaiveDate,
        free_used: i64,
        additional_used: i64,
    ) -> DayBudget {
        DayBudget {
            free_allowance: self.free_allowance(local_day),
            free_used,
            additional_limit: self.limit_for(kind, occurred_at),
            additional_used,
        }
    }
}

/// The decision on one placed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted(Spend),
    /// Its id was admitted before (R9): counted already, not again.
    AlreadyCounted,
    Refused(LimitHit),
}

/// R4/R9/R12/R14 for one placed request: a request whose id was already admitted is not counted
/// again; otherwise it spends from `budget` or is refused whole, also when it spends additional
/// credits that `fits_budget` says would take the period's charge past its budget. A refused id
/// stays unused, so the same id is decided afresh when it comes again.
pub fn decide(
    budget: &mut DayBudget,
    credits: i64,
    id_admitted_before: bool,
    fits_budget: impl FnOnce(&DayBudget, Spend) -> bool,
) -> Decision {
    if id_admitted_before {
        return Decision::AlreadyCounted;
    }
    match budget.decide(credits) {
        Err(hit) => Decision::Refused(hit),
        Ok(spend) if spend.additional > 0 && !fits_budget(budget, spend) => {
            Decision::Refused(LimitHit::Budget)
        }
        Ok(spend) => {
            budget.free_used += spend.free;
            budget.additional_used += spend.additional;
            Decision::Admitted(spend)
        }
    }
}

/// R14: a spend is refused when it would raise the period's charge (its other days' charges plus
/// the day's, each rounded once, R5) above the budget; one that leaves the rounded charge as it
/// was passes, also under a budget lowered below what was charged already.
pub fn within_budget(
    budget_minor: i64,
    other_days_minor: i64,
    day_before_minor: i64,
    day_after_minor: i64,
) -> bool {
    day_after_minor <= day_before_minor
        || other_days_minor.saturating_add(day_after_minor) <= budget_minor
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn budget(free_allowance: i64, additional_limit: i64) -> DayBudget {
        DayBudget {
            free_allowance,
            free_used: 0,
            additional_limit,
            additional_used: 0,
        }
    }

    #[test]
    fn r14_a_spend_that_raises_the_charge_past_the_budget_is_refused_whole() {
        let mut day = budget(100, 1_000);
        let charge = |additional: i64| additional; // a cent per credit, for the test
        let decide_with = |day: &mut DayBudget, credits, cap: i64| {
            decide(day, credits, false, |d, spend| {
                within_budget(
                    cap,
                    40,
                    charge(d.additional_used),
                    charge(d.additional_used + spend.additional),
                )
            })
        };
        assert!(matches!(
            decide_with(&mut day, 150, 100),
            Decision::Admitted(_)
        ));
        assert_eq!(
            decide_with(&mut day, 11, 100),
            Decision::Refused(LimitHit::Budget)
        );
        assert_eq!(day.additional_used, 50, "a refused spend changes nothing");
        assert!(matches!(
            decide_with(&mut day, 10, 100),
            Decision::Admitted(_)
        ));
        // Free credits never meet the budget; a budget lowered below the charge stops the rest.
        let mut fresh = budget(100, 1_000);
        assert!(matches!(
            decide_with(&mut fresh, 100, 0),
            Decision::Admitted(_)
        ));
        assert_eq!(
            decide_with(&mut fresh, 1, 0),
            Decision::Refused(LimitHit::Budget)
        );
    }

    #[test]
    fn r12_events_of_one_report_are_admitted_in_timestamp_order() {
        use chrono::TimeZone;
        let at = |h| Utc.with_ymd_and_hms(2026, 3, 10, h, 0, 0).unwrap();
        assert_eq!(admission_order(&[at(9), at(7), at(9), at(8)]), [1, 3, 0, 2]);
        assert!(admission_order(&[]).is_empty());
    }

    #[test]
    fn r12_the_limit_in_force_at_a_time() {
        use chrono::TimeZone;
        let at = |h| Utc.with_ymd_and_hms(2026, 3, 10, h, 0, 0).unwrap();
        let history = [
            LimitChange {
                at: at(8),
                new_limit: 10_000,
            },
            LimitChange {
                at: at(12),
                new_limit: 0,
            },
            LimitChange {
                at: at(12),
                new_limit: 30_000,
            },
        ];
        assert_eq!(
            limit_in_force(&history, at(7)),
            0,
            "before the first change"
        );
        assert_eq!(
            limit_in_force(&history, at(8)),
            10_000,
            "from the change's instant"
        );
        assert_eq!(limit_in_force(&history, at(11)), 10_000);
        assert_eq!(
            limit_in_force(&history, at(12)),
            30_000,
            "the later of two at one instant"
        );
        assert_eq!(limit_in_force(&[], at(12)), 0);
    }

    #[test]
    fn r4_free_first_then_additional_then_refused_whole() {
        let mut day = budget(100, 50);
        assert_eq!(
            day.spend(80),
            Ok(Spend {
                free: 80,
                additional: 0
            })
        );
        assert_eq!(
            day.spend(40),
            Ok(Spend {
                free: 20,
                additional: 20
            })
        );
        assert_eq!(day.spend(31), Err(LimitHit::Additional));
        assert_eq!((day.free_used, day.additional_used), (100, 20));
        assert_eq!(
            day.spend(30),
            Ok(Spend {
                free: 0,
                additional: 30
            })
        );
        assert_eq!(day.spend(1), Err(LimitHit::Additional));
    }

    #[test]
    fn r4_without_a_limit_the_free_limit_is_hit() {
        let mut day = budget(10, 0);
        assert_eq!(day.spend(11), Err(LimitHit::Free));
        assert_eq!(
            day.spend(10),
            Ok(Spend {
                free: 10,
                additional: 0
            })
        );
        assert_eq!(day.spend(1), Err(LimitHit::Free));
    }

    #[test]
    fn r11_lowering_the_limit_below_spent_refuses_further_calls() {
        let mut day = DayBudget {
            free_allowance: 10,
            free_used: 10,
            additional_limit: 5,
            additional_used: 8,
        };
        assert_eq!(day.additional_remaining(), 0);
        assert_eq!(day.spend(1), Err(LimitHit::Additional));
    }

    proptest! {
        #[test]
        fn r4_never_spends_past_free_plus_limit(
            free in 0i64..1000, limit in 0i64..1000, calls in proptest::collection::vec(1i64..300, 0..50),
        ) {
            let mut day = budget(free, limit);
            let mut admitted = 0;
            for c in calls {
                if let Ok(s) = day.spend(c) {
                    prop_assert_eq!(s.free + s.additional, c);
                    admitted += c;
                }
            }
            prop_assert!(day.free_used <= free);
            prop_assert!(day.additional_used <= limit);
            prop_assert_eq!(day.free_used + day.additional_used, admitted);
            // Additional credits are spent only once free ones are gone.
            prop_assert!(day.additional_used == 0 || day.free_used == free);
        }
    }
}
