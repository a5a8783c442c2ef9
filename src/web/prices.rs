//! The Credits tab's Prices card: the slabs of the plan in force with where today's additional
//! credits sit on them, the price of the next 1,000 credits, the most a full day can cost at the
//! current limit, and the what-if estimator (a limit and a daily use, or the last 30 days, priced
//! as the ledger would bill them). A GET form: nothing is saved.

use chrono::NaiveDate;
use serde::Deserialize;

use super::AppError;
use crate::db::DbConn;
use crate::domain::admission;
use crate::domain::allowance::free_credits_on;
use crate::domain::calendar::{self, human_date};
use crate::domain::estimate::{self, PatternDay};
use crate::domain::money::{display_amount, group_thousands};
use crate::domain::pricing::PricePlan;
use crate::domain::types::{AdditionalLimit, DayRange};
use crate::report::credits::CreditsSummary;
use crate::store::orgs::{self, OrgRow};
use crate::store::usage;

/// The largest daily use the estimator takes.
const MAX_DAILY_USE: i64 = 1_000_000_000;
/// Days of the "like the last 30 days" pattern.
const PATTERN_DAYS: i64 = 30;

/// The estimator's query, as typed.
#[derive(Deserialize, Default)]
pub struct EstimateQuery {
    pub est_limit: Option<String>,
    pub est_daily: Option<String>,
    /// `daily` (a steady use) or `last30`.
    pub est_pattern: Option<String>,
}

pub struct SlabRow {
    pub range: String,
    pub price: String,
    pub current: bool,
}

pub struct PricesView {
    pub currency: String,
    pub block: String,
    pub slabs: Vec<SlabRow>,
    pub today_additional: String,
    pub next_thousand: Option<String>,
    pub full_day_at_limit: Option<String>,
    /// The form's values, as typed or defaulted.
    pub est_limit: String,
    pub est_daily: String,
    pub est_last30: bool,
    pub estimate: Option<String>,
    pub estimate_days: Option<String>,
    pub estimate_error: Option<String>,
}

/// The card, and whether the estimator's input was refused (the page is then a 400).
pub fn prices_view(
    conn: &mut DbConn,
    org: &OrgRow,
    data: &CreditsSummary,
    plan: &PricePlan,
    query: &str,
) -> Result<(PricesView, bool), AppError> {
    let today = data.today.local_day;
    let currency = plan.currency().to_string();
    let budget = data.today.budget;
    let tier = estimate::current_tier(plan, budget.additional_used);
    let ranges = plan.tier_ranges();
    let slabs = ranges
        .iter()
        .zip(plan.tiers())
        .enumerate()
        .map(|(i, ((first, last), t))| SlabRow {
            range: match last {
                Some(last) if *first == 1 => format!("first {}", group_thousands(*last)),
                Some(last) => format!("{} – {}", group_thousands(*first), group_thousands(*last)),
                None => format!("{} and more", group_thousands(*first)),
            },
            price: match t.flat() {
                Some(flat) => format!(
                    "{} + {} {} when the day enters it",
                    t.price(),
                    flat,
                    currency
                ),
                None => t.price().to_string(),
            },
            current: i == tier && budget.additional_limit > 0,
        })
        .collect();
    let room = budget.additional_remaining();
    let next_thousand = (budget.additional_limit > 0).then(|| {
        if room >= 1000 {
            format!(
                "The next 1,000 additional credits today cost {}.",
                display_amount(
                    estimate::price_of_more(plan, budget.additional_used, 1000),
                    &currency
                )
            )
        } else {
            format!(
                "Today's limit leaves {} additional credits: calls past it are refused, not charged.",
                group_thousands(room)
            )
        }
    });
    let full_day_at_limit = (budget.additional_limit > 0).then(|| {
        format!(
            "A full day at the current limit ({} additional credits) costs at most {}.",
            group_thousands(budget.additional_limit),
            display_amount(plan.day_charge_minor(budget.additional_limit), &currency)
        )
    });

    let q: EstimateQuery = actix_web::web::Query::<EstimateQuery>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let asked = q.est_limit.is_some() || q.est_daily.is_some() || q.est_pattern.is_some();
    let last30 = q.est_pattern.as_deref() == Some("last30");
    let mut view = PricesView {
        block: group_thousands(plan.block()),
        slabs,
        today_additional: group_thousands(budget.additional_used),
        next_thousand,
        full_day_at_limit,
        est_limit: q
            .est_limit
            .clone()
            .unwrap_or_else(|| budget.additional_limit.to_string())
            .chars()
            .take(20)
            .collect(),
        est_daily: q
            .est_daily
            .clone()
            .unwrap_or_default()
            .chars()
            .take(20)
            .collect(),
        est_last30: last30,
        estimate: None,
        estimate_days: None,
        estimate_error: None,
        currency: currency.clone(),
    };
    if !asked {
        return Ok((view, false));
    }
    let limit = match AdditionalLimit::parse(q.est_limit.as_deref().unwrap_or_default()) {
        Ok(limit) => limit.get(),
        Err(e) => {
            view.estimate_error = Some(format!("Daily limit: {e}"));
            return Ok((view, true));
        }
    };
    let history = orgs::allowance_history(conn, org.id)?;
    let free_on = |day: NaiveDate| free_credits_on(&history, org.allowance(), day);
    // Days of the pattern that used all that was allowed then: their calls past it were refused,
    // so the demand of those days is not known, and the estimate is a lower bound.
    let mut full_days = 0usize;
    let (days, basis): (Vec<PatternDay>, String) = if last30 {
        let last = today.pred_opt().unwrap_or(today);
        let range = DayRange::ending_on(last, PATTERN_DAYS);
        let history = orgs::rules_of(conn, &[org.id])?
            .remove(&org.id)
            .map(|r| r.limit_history)
            .unwrap_or_default();
        let zone = org.zone();
        let days = usage::every_day(conn, org.id, range)?
            .iter()
            .map(|d| {
                let free_allowance = free_on(d.local_day);
                let day_end =
                    calendar::day_start(d.local_day.succ_opt().unwrap_or(d.local_day), zone)
                        - chrono::Duration::seconds(1);
                let limit_then = admission::limit_in_force(&history, day_end);
                if d.credits > 0 && d.credits >= free_allowance + limit_then {
                    full_days += 1;
                }
                PatternDay {
                    free_allowance,
                    credits: d.credits,
                }
            })
            .collect();
        (
            days,
            format!(
                "the credits used on each of the last 30 full days ({} – {})",
                human_date(range.from()),
                human_date(range.to())
            ),
        )
    } else {
        let daily = match parse_daily(q.est_daily.as_deref().unwrap_or_default()) {
            Ok(daily) => daily,
            Err(message) => {
                view.estimate_error = Some(message);
                return Ok((view, true));
            }
        };
        let (count, span) = match &data.billing {
            Some(billing) => (
                billing.period.days(),
                format!(
                    "a {}-day billing period like this one ({} – {})",
                    billing.period.days(),
                    human_date(billing.period.start),
                    human_date(billing.period.last_day())
                ),
            ),
            None => (30, "30 days".to_string()),
        };
        let day = PatternDay {
            free_allowance: free_on(today),
            credits: daily,
        };
        (
            vec![day; usize::try_from(count).unwrap_or(30)],
            format!(
                "{} credits a day for {span}, {} of them free each day",
                group_thousands(daily),
                group_thousands(day.free_allowance)
            ),
        )
    };
    let result = estimate::estimate(plan, limit, &days);
    view.estimate = Some(format!(
        "{}{} at a daily limit of {}",
        if full_days > 0 { "At least " } else { "" },
        display_amount(result.total_minor, &currency),
        group_thousands(limit)
    ));
    let additional: i64 = result.additional.iter().sum();
    let mut detail = format!(
        "For {basis}: {} additional credits in all, each day priced on the slabs and rounded once.",
        group_thousands(additional)
    );
    if result.days_capped > 0 {
        detail.push_str(&format!(
            " On {} of the days use would pass the limit: those calls would be refused, not charged.",
            result.days_capped
        ));
    }
    if full_days > 0 {
        detail.push_str(&format!(
            " On {full_days} of those days use reached what the limit then allowed: calls past it were refused, so their demand is not in the pattern and the cost may be higher."
        ));
    }
    view.estimate_days = Some(detail);
    Ok((view, false))
}

fn parse_daily(text: &str) -> Result<i64, String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ',' | '_') && !c.is_whitespace())
        .collect();
    match cleaned.parse::<i64>() {
        Ok(n) if (0..=MAX_DAILY_USE).contains(&n) => Ok(n),
        Ok(_) => Err(format!(
            "Credits a day: a whole number from 0 to {}.",
            group_thousands(MAX_DAILY_USE)
        )),
        Err(_) if cleaned.is_empty() => {
            Err("Credits a day: enter the credits you expect to use in a day.".into())
        }
        Err(_) => Err("Credits a day: a whole number, like 120000.".into()),
    }
}
