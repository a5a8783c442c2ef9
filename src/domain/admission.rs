//! The order of spending (R4, R11, R12): free credits first, then additional credits up to the
//! limit; a request that would go past free + limit is refused whole.

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
}

impl LimitHit {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitHit::Free => "free",
            LimitHit::Additional => "additional",
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
