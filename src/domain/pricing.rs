//! Price plans (R5, R6): graduated daily slabs priced pro rata per credit with exact decimals, and the
//! quote of one day. A day's charge is rounded once, to the currency's minor unit, half away from zero.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use super::money;

/// The most credits a quote accepts; far above any limit, low enough that no decimal can overflow.
pub const MAX_QUOTE_CREDITS: i64 = 1_000_000_000_000;

/// One slab of a plan. `up_to` is the cumulative credit count where the tier ends (inclusive);
/// `None` only on the last tier. The last tier also prices anything past its `up_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    up_to: Option<i64>,
    /// Price per `block` credits, in the plan's currency.
    #[serde(with = "rust_decimal::serde::str")]
    price: Decimal,
    /// Charged once on a day whose credits enter this tier.
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    flat: Option<Decimal>,
}

impl Tier {
    pub fn up_to(&self) -> Option<i64> {
        self.up_to
    }

    pub fn price(&self) -> Decimal {
        self.price
    }

    pub fn flat(&self) -> Option<Decimal> {
        self.flat
    }
}

/// A validated price plan: currency, block size, ordered tiers. Its fields are private and it is
/// only made valid: by `default_plan`, `from_toml`, or deserializing, which validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlanData")]
pub struct PricePlan {
    currency: String,
    block: i64,
    tiers: Vec<Tier>,
}

/// A plan as stored, before it is validated.
#[derive(Deserialize)]
struct PlanData {
    currency: String,
    block: i64,
    tiers: Vec<Tier>,
}

impl TryFrom<PlanData> for PricePlan {
    type Error = PlanError;
    fn try_from(data: PlanData) -> Result<Self, PlanError> {
        let plan = PricePlan {
            currency: data.currency,
            block: data.block,
            tiers: data.tiers,
        };
        plan.validate()?;
        Ok(plan)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("plan file is not valid TOML: {0}")]
    Syntax(String),
    #[error("currency must be a three-letter ISO 4217 code such as USD, got {0:?}")]
    Currency(String),
    #[error("block must be a whole number of credits of at least 1, got {0}")]
    Block(i64),
    #[error("a plan needs at least one tier")]
    NoTiers,
    #[error("tier {0}: up_to must be a whole number of credits above the previous tier's")]
    UpToOrder(usize),
    #[error("tier {0}: only the last tier may omit up_to")]
    OpenTierNotLast(usize),
    #[error("tier {0}: price must be a decimal of at least 0")]
    Price(usize),
    #[error("tier {0}: flat fee must be a decimal of at least 0")]
    Flat(usize),
}

/// The part of a plan file as written by people; prices may be strings or numbers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    currency: String,
    block: i64,
    tiers: Vec<TierFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    up_to: Option<i64>,
    price: toml::Value,
    flat: Option<toml::Value>,
}

fn decimal_from_toml(value: &toml::Value) -> Option<Decimal> {
    match value {
        toml::Value::String(s) => Decimal::from_str(s.trim()).ok(),
        toml::Value::Integer(i) => Some(Decimal::from(*i)),
        // A TOML float is already binary floating point; its decimal text is the best we can do,
        // and the docs ask for strings.
        toml::Value::Float(f) => Decimal::from_str(&f.to_string()).ok(),
        _ => None,
    }
}

impl PricePlan {
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// Credits per priced block (prices are per block).
    pub fn block(&self) -> i64 {
        self.block
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The default plan of SPEC R5, in USD per 1,000 credits.
    pub fn default_plan() -> Self {
        let tier = |up_to: i64, price: &str| Tier {
            up_to: Some(up_to),
            price: Decimal::from_str(price).expect("literal decimal"),
            flat: None,
        };
        PricePlan {
            currency: "USD".into(),
            block: 1000,
            tiers: vec![
                tier(25_000, "0.14"),
                tier(100_000, "0.06"),
                tier(250_000, "0.05"),
                tier(500_000, "0.025"),
            ],
        }
    }

    /// Parse and validate a TOML plan file (SPEC §5).
    pub fn from_toml(text: &str) -> Result<Self, PlanError> {
        let file: PlanFile =
            toml::from_str(text).map_err(|e| PlanError::Syntax(e.message().to_string()))?;
        let mut tiers = Vec::with_capacity(file.tiers.len());
        for (i, t) in file.tiers.iter().enumerate() {
            let n = i + 1;
            let price = decimal_from_toml(&t.price).ok_or(PlanError::Price(n))?;
            let flat = match &t.flat {
                None => None,
                Some(v) => Some(decimal_from_toml(v).ok_or(PlanError::Flat(n))?),
            };
            tiers.push(Tier {
                up_to: t.up_to,
                price,
                flat,
            });
        }
        let plan = PricePlan {
            currency: file.currency.trim().to_string(),
            block: file.block,
            tiers,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Check the invariants every plan must hold; plans read back from storage are checked too.
    pub fn validate(&self) -> Result<(), PlanError> {
        let c = &self.currency;
        if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(PlanError::Currency(c.clone()));
        }
        if self.block < 1 || self.block > 1_000_000_000 {
            return Err(PlanError::Block(self.block));
        }
        if self.tiers.is_empty() {
            return Err(PlanError::NoTiers);
        }
        let mut previous = 0i64;
        let last = self.tiers.len() - 1;
        for (i, tier) in self.tiers.iter().enumerate() {
            let n = i + 1;
            match tier.up_to {
                Some(up_to) if up_to <= previous || up_to > MAX_QUOTE_CREDITS => {
                    return Err(PlanError::UpToOrder(n));
                }
                Some(up_to) => previous = up_to,
                None if i != last => return Err(PlanError::OpenTierNotLast(n)),
                None => {}
            }
            if tier.price.is_sign_negative() || tier.price > Decimal::from(1_000_000) {
                return Err(PlanError::Price(n));
            }
            if let Some(flat) = tier.flat
                && (flat.is_sign_negative() || flat > Decimal::from(1_000_000))
            {
                return Err(PlanError::Flat(n));
            }
        }
        Ok(())
    }

    /// The first credit (1-based, inclusive) and last credit (inclusive, `None` = open) of each tier.
    pub fn tier_ranges(&self) -> Vec<(i64, Option<i64>)> {
        let mut start = 1;
        self.tiers
            .iter()
            .enumerate()
            .map(|(i, tier)| {
                let end = if i + 1 == self.tiers.len() {
                    None
                } else {
                    tier.up_to
                };
                let range = (start, end);
                start = tier.up_to.map_or(start, |u| u + 1);
                range
            })
            .collect()
    }

    /// Price one day with `credits` additional credits (0 ≤ credits ≤ MAX_QUOTE_CREDITS).
    pub fn quote(&self, credits: i64) -> Quote {
        let credits = credits.clamp(0, MAX_QUOTE_CREDITS);
        let block = Decimal::from(self.block);
        let mut lines = Vec::new();
        let mut exact = Decimal::ZERO;
        for (i, (first, last)) in self.tier_ranges().into_iter().enumerate() {
            if credits < first {
                break;
            }
            let to = last.map_or(credits, |l| l.min(credits));
            let in_tier = to - first + 1;
            let tier = &self.tiers[i];
            let flat = tier.flat.unwrap_or(Decimal::ZERO);
            // Multiply before dividing so that a price per 1,000 stays exact per credit.
            let amount = Decimal::from(in_tier) * tier.price / block + flat;
            exact += amount;
            lines.push(QuoteLine {
                tier: i + 1,
                from: first,
                to,
                credits: in_tier,
                price: tier.price,
                flat,
                amount,
            });
        }
        let amount = money::round_to_minor(exact, &self.currency);
        Quote {
            credits,
            currency: self.currency.clone(),
            block: self.block,
            exact,
            amount,
            lines,
        }
    }

    /// The rounded charge of a day in minor units (cents for USD).
    pub fn day_charge_minor(&self, additional_credits: i64) -> i64 {
        let quote = self.quote(additional_credits);
        money::to_minor_units(quote.amount, &self.currency)
    }
}

/// One tier's part of a day's quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteLine {
    pub tier: usize,
    /// First credit of the day priced in this tier (1-based).
    pub from: i64,
    /// Last credit of the day priced in this tier.
    pub to: i64,
    pub credits: i64,
    pub price: Decimal,
    pub flat: Decimal,
    /// Exact, unrounded.
    pub amount: Decimal,
}

/// The price of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub credits: i64,
    pub currency: String,
    pub block: i64,
    pub exact: Decimal,
    /// `exact` rounded once to the minor unit, half away from zero.
    pub amount: Decimal,
    pub lines: Vec<QuoteLine>,
}

impl Quote {
    pub fn to_json(&self) -> serde_json::Value {
        let lines: Vec<_> = self
            .lines
            .iter()
            .map(|l| {
                serde_json::json!({
                    "tier": l.tier,
                    "from": l.from,
                    "to": l.to,
                    "credits": l.credits,
                    "price": l.price.normalize().to_string(),
                    "block": self.block,
                    "flat": money::format_exact(l.flat, &self.currency),
                    "amount": money::format_exact(l.amount, &self.currency),
                })
            })
            .collect();
        serde_json::json!({
            "credits": self.credits,
            "currency": self.currency,
            "amount": self.amount.to_string(),
            "exact": money::format_exact(self.exact, &self.currency),
            "lines": lines,
        })
    }
}

/// R6: which plan prices which day. Plans are published with the day they take effect; the plan
/// in force on a day is the latest that took effect by then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSchedule {
    /// `(effective_from, plan id)`, oldest first.
    entries: Vec<(NaiveDate, i64)>,
}

impl PlanSchedule {
    pub fn new(mut entries: Vec<(NaiveDate, i64)>) -> Self {
        entries.sort();
        PlanSchedule { entries }
    }

    /// The plan in force on `local_day`, or `None` before the first plan (usage dated then cannot
    /// be charged and is refused, `NO_PRICE_PLAN`).
    pub fn in_force_on(&self, local_day: NaiveDate) -> Option<i64> {
        let taken = self.entries.partition_point(|(from, _)| *from <= local_day);
        taken.checked_sub(1).map(|i| self.entries[i].1)
    }

    /// R6: the plan that prices `local_day`: the one pinned on its row when the day was charged
    /// (a charged day is never re-priced), else the one in force on it. A day before the first
    /// plan, which nothing can be charged on, is shown with the first plan.
    pub fn plan_of_day(&self, pinned: Option<i64>, local_day: NaiveDate) -> Option<i64> {
        pinned
            .or_else(|| self.in_force_on(local_day))
            .or_else(|| self.entries.first().map(|(_, id)| *id))
    }
}

/// The plans that priced a run of days, each with the days it priced, in order of first use.
/// `days` is `(local_day, plan)` in day order.
pub fn plans_in_use(days: impl IntoIterator<Item = (NaiveDate, i64)>) -> Vec<PlanUse> {
    let mut uses: Vec<PlanUse> = Vec::new();
    for (local_day, plan_id) in days {
        match uses.iter_mut().find(|u| u.plan_id == plan_id) {
            Some(found) => {
                found.first_day = found.first_day.min(local_day);
                found.last_day = found.last_day.max(local_day);
                found.days += 1;
            }
            None => uses.push(PlanUse {
                plan_id,
                first_day: local_day,
                last_day: local_day,
                days: 1,
            }),
        }
    }
    uses
}

/// A plan and the span of days it priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanUse {
    pub plan_id: i64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub days: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amount(credits: i64) -> String {
        PricePlan::default_plan().quote(credits).amount.to_string()
    }

    #[test]
    fn r6_a_stored_plan_is_validated_when_read() {
        let stored = serde_json::to_string(&PricePlan::default_plan()).unwrap();
        let read: PricePlan = serde_json::from_str(&stored).unwrap();
        assert_eq!(read, PricePlan::default_plan());
        let broken = stored.replace("\"block\":1000", "\"block\":0");
        assert_ne!(broken, stored);
        assert!(serde_json::from_str::<PricePlan>(&broken).is_err());
    }

    #[test]
    fn r6_plan_of_a_day_is_the_pinned_one_else_the_one_in_force() {
        let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
        let schedule = PlanSchedule::new(vec![(day(3, 15), 2), (day(1, 1), 1)]);
        assert_eq!(schedule.in_force_on(day(1, 1) - chrono::Days::new(1)), None);
        assert_eq!(schedule.in_force_on(day(3, 14)), Some(1));
        assert_eq!(schedule.in_force_on(day(3, 15)), Some(2));
        // A charged day keeps its plan.
        assert_eq!(schedule.plan_of_day(Some(1), day(3, 20)), Some(1));
        assert_eq!(schedule.plan_of_day(None, day(3, 20)), Some(2));
        // Before the first plan: shown with the first.
        assert_eq!(
            schedule.plan_of_day(None, day(1, 1) - chrono::Days::new(9)),
            Some(1)
        );
        assert_eq!(PlanSchedule::default().plan_of_day(None, day(3, 1)), None);
        let uses = plans_in_use([(day(3, 13), 1), (day(3, 14), 1), (day(3, 15), 2)]);
        assert_eq!(uses.len(), 2);
        assert_eq!(
            (
                uses[0].plan_id,
                uses[0].first_day,
                uses[0].last_day,
                uses[0].days
            ),
            (1, day(3, 13), day(3, 14), 2)
        );
        assert_eq!((uses[1].plan_id, uses[1].days), (2, 1));
    }

    #[test]
    fn r5_worked_values() {
        assert_eq!(amount(80_000), "6.80");
        assert_eq!(amount(12_345), "1.73");
        assert_eq!(amount(100_000), "8.00");
        assert_eq!(amount(500_000), "21.75");
        assert_eq!(amount(1), "0.00");
        assert_eq!(amount(0), "0.00");
        let q = PricePlan::default_plan().quote(12_345);
        assert_eq!(q.exact.normalize().to_string(), "1.7283");
        let q = PricePlan::default_plan().quote(80_000);
        let lines: Vec<_> = q
            .lines
            .iter()
            .map(|l| money::format_exact(l.amount, "USD"))
            .collect();
        assert_eq!(lines, ["3.50", "3.30"]);
    }

    #[test]
    fn r5_last_tier_prices_past_its_end() {
        // 500,001 credits: one more credit at 0.025 per 1,000.
        let q = PricePlan::default_plan().quote(500_001);
        assert_eq!(q.exact.normalize().to_string(), "21.750025");
        assert_eq!(q.lines.last().unwrap().to, 500_001);
    }

    #[test]
    fn r6_flat_fee_is_charged_when_a_day_enters_the_tier() {
        let plan = PricePlan::from_toml(
            "currency = \"EUR\"\nblock = 100\n[[tiers]]\nup_to = 1000\nprice = \"0.50\"\n[[tiers]]\nprice = \"0.10\"\nflat = \"2.00\"\n",
        )
        .unwrap();
        assert_eq!(plan.quote(1000).amount.to_string(), "5.00");
        assert_eq!(plan.quote(1001).exact.normalize().to_string(), "7.001");
        assert_eq!(plan.quote(1001).amount.to_string(), "7.00");
    }

    #[test]
    fn r6_malformed_plans_are_refused_with_reasons() {
        let cases = [
            ("currency = 1", "not valid TOML"),
            (
                "currency = \"usd\"\nblock = 1000\n[[tiers]]\nprice = \"1\"",
                "currency",
            ),
            (
                "currency = \"USD\"\nblock = 0\n[[tiers]]\nprice = \"1\"",
                "block",
            ),
            (
                "currency = \"USD\"\nblock = 10\ntiers = []",
                "at least one tier",
            ),
            (
                "currency = \"USD\"\nblock = 10\n[[tiers]]\nup_to = 10\nprice = \"1\"\n[[tiers]]\nup_to = 5\nprice = \"1\"",
                "up_to",
            ),
            (
                "currency = \"USD\"\nblock = 10\n[[tiers]]\nprice = \"1\"\n[[tiers]]\nup_to = 5\nprice = \"1\"",
                "only the last tier",
            ),
            (
                "currency = \"USD\"\nblock = 10\n[[tiers]]\nprice = \"-1\"",
                "price",
            ),
            (
                "currency = \"USD\"\nblock = 10\n[[tiers]]\nprice = \"abc\"",
                "price",
            ),
            (
                "currency = \"USD\"\nblock = 10\n[[tiers]]\nprice = \"1\"\nflat = \"x\"",
                "flat",
            ),
        ];
        for (text, expected) in cases {
            let err = PricePlan::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }

    proptest! {
        #[test]
        fn amount_never_decreases_as_credits_grow(a in 0i64..2_000_000, extra in 0i64..100_000) {
            let plan = PricePlan::default_plan();
            prop_assert!(plan.quote(a).exact <= plan.quote(a + extra).exact);
            prop_assert!(plan.quote(a).amount <= plan.quote(a + extra).amount);
        }

        #[test]
        fn tier_lines_add_up_to_the_exact_amount(credits in 0i64..3_000_000) {
            let q = PricePlan::default_plan().quote(credits);
            let sum: Decimal = q.lines.iter().map(|l| l.amount).sum();
            prop_assert_eq!(sum, q.exact);
        }

        #[test]
        fn tier_boundaries_neither_skip_nor_double_count(
            credits in 0i64..3_000_000,
            bounds in proptest::collection::btree_set(1i64..1_000_000, 0..6),
        ) {
            let mut tiers: Vec<Tier> = bounds.iter().map(|&b| Tier {
                up_to: Some(b), price: Decimal::new(b % 97, 2), flat: None,
            }).collect();
            tiers.push(Tier { up_to: None, price: Decimal::new(3, 2), flat: None });
            let plan = PricePlan { currency: "USD".into(), block: 1000, tiers };
            plan.validate().unwrap();
            let q = plan.quote(credits);
            let counted: i64 = q.lines.iter().map(|l| l.credits).sum();
            prop_assert_eq!(counted, credits);
            let mut next = 1;
            for line in &q.lines {
                prop_assert_eq!(line.from, next);
                prop_assert!(line.to >= line.from);
                next = line.to + 1;
            }
        }
    }
}
