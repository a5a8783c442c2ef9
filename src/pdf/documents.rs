//! The two PDF documents, built from the report layer's views: a View details range and an issued
//! monthly statement. Everything is formatted for people here; `render` only lays it out.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{BreakdownSection, PlanSection, StatementDoc, StatementLine};
use crate::domain::calendar::human_date;
use crate::domain::money::{display_amount, format_exact, format_minor, group_thousands};
use crate::domain::pricing::PricePlan;
use crate::report::details::{Costs, DetailsReport, largest};
use crate::report::statement::StatementReport;
use crate::report::{DayLine, PricedBy, Totals};

/// The plan's slabs as people read them: ("1 to 25,000", "0.14"), ..., ("500,001 and above", ...).
pub fn slab_rows(plan: &PricePlan) -> Vec<(String, String)> {
    let ranges = plan.tier_ranges();
    plan.tiers()
        .iter()
        .zip(ranges)
        .map(|(tier, (first, last))| {
            let credits = match last {
                Some(last) => format!("{} to {}", group_thousands(first), group_thousands(last)),
                None => format!("{} and above", group_thousands(first)),
            };
            let mut price = format_exact(tier.price(), plan.currency());
            if let Some(flat) = tier.flat().filter(|f| !f.is_zero()) {
                price = format!("{price} + {} flat", format_exact(flat, plan.currency()));
            }
            (credits, price)
        })
        .collect()
}

/// The slab table of each plan; with several, each says which days it priced.
fn plan_sections(plans: &[PricedBy]) -> Vec<PlanSection> {
    plans
        .iter()
        .map(|priced| {
            let plan = &priced.plan;
            let heading = if plans.len() == 1 {
                "Price plan in force".to_string()
            } else {
                let days = if priced.days == 1 { "day" } else { "days" };
                format!(
                    "Price plan of {} - {} ({} {days})",
                    human_date(priced.first_day),
                    human_date(priced.last_day),
                    priced.days
                )
            };
            PlanSection {
                heading,
                slabs: slab_rows(plan),
                caption: format!(
                    "Additional credits used in a day are priced on these slabs, pro rata per credit; slabs restart every day. Prices per {} credits.",
                    group_thousands(plan.block())
                ),
                price_header: format!(
                    "Price per {} ({})",
                    group_thousands(plan.block()),
                    plan.currency()
                ),
            }
        })
        .collect()
}

fn lines(lines: &[DayLine], currency: &str) -> Vec<StatementLine> {
    lines
        .iter()
        .map(|l| StatementLine {
            day: format!("{} {}", l.local_day.format("%a"), human_date(l.local_day)),
            credits: group_thousands(l.credits),
            additional: group_thousands(l.additional),
            amount: format_minor(l.amount_minor, currency),
            in_progress: l.in_progress,
        })
        .collect()
}

fn generated(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%-d %b %Y %H:%M %Z")
        .to_string()
}

/// The usage statement of a View details range.
pub fn details_document(report: &DetailsReport) -> StatementDoc {
    let days = &report.days;
    let c = &days.currency;
    let Totals {
        credits,
        additional,
        amount_minor,
    } = days.totals;
    StatementDoc {
        title: "Usage statement".into(),
        number: String::new(),
        org_name: report.org_name.clone(),
        range: format!(
            "{} - {} ({} days)",
            human_date(days.range.from()),
            human_date(days.range.to()),
            days.range.day_count()
        ),
        billing_period: report
            .projection
            .map(|p| {
                format!(
                    "{} - {} (next billing date {})",
                    human_date(p.period.start),
                    human_date(p.period.last_day()),
                    human_date(p.period.end)
                )
            })
            .unwrap_or_else(|| "no additional credits were set up".into()),
        zone: report.zone.name().to_string(),
        generated: generated(report.generated_at, report.zone),
        generated_unix: report.generated_at.timestamp(),
        currency: c.clone(),
        lines: lines(&days.lines, c),
        total_credits: group_thousands(credits),
        total_additional: group_thousands(additional),
        total: display_amount(amount_minor, c),
        plans: plan_sections(&days.plans),
        breakdowns: breakdowns(&report.costs, c),
        note: "A day's charge is rounded once, to the cent; the total is the sum of the days. Today's amount is so far, not final.".into(),
    }
}

/// Rows of a cost breakdown in a PDF before the rest is summed up in one row (the CSV has all).
const SHOWN: usize = 25;

/// The cost tables of a document: by operation, client and user, each adding up to the total.
fn breakdowns(costs: &Costs, c: &str) -> Vec<BreakdownSection> {
    [
        ("Cost by operation", "Operation", &costs.by_operation, "operations"),
        ("Cost by client", "Client", &costs.by_client, "clients"),
        ("Cost by user", "User", &costs.by_user, "users"),
    ]
    .into_iter()
    .filter(|(_, _, shares, _)| !shares.is_empty())
    .map(|(heading, name, shares, plural)| BreakdownSection {
        heading: heading.into(),
        name_header: name.into(),
        rows: largest(shares, SHOWN, plural)
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    group_thousands(s.credits),
                    group_thousands(s.additional),
                    format_minor(s.amount_minor, c),
                ]
            })
            .collect(),
        caption: "Each day's amount shared out in proportion to additional credits that day; the rows add up to the total.".into(),
    })
    .collect()
}

/// An issued monthly statement of an org.
pub fn statement_document(report: &StatementReport, org_name: &str, zone: Tz) -> StatementDoc {
    let item = &report.item;
    let c = &item.currency;
    let (start, last) = (item.period.start, item.period.last_day());
    StatementDoc {
        title: "Monthly statement".into(),
        number: format!("Statement {}", item.number),
        org_name: org_name.to_string(),
        range: format!(
            "{} - {} ({} days)",
            human_date(start),
            human_date(last),
            report.lines.len()
        ),
        // The day it was issued, as the Statements page says it (the billing date, unless the
        // server closed the period later).
        billing_period: format!(
            "{} - {}, issued {}",
            human_date(start),
            human_date(last),
            human_date(item.issued_at.with_timezone(&zone).date_naive())
        ),
        zone: zone.name().to_string(),
        generated: generated(item.issued_at, zone),
        generated_unix: item.issued_at.timestamp(),
        currency: c.clone(),
        lines: lines(&report.lines, c),
        total_credits: group_thousands(report.totals.credits),
        total_additional: group_thousands(report.totals.additional),
        total: display_amount(item.total_minor, c),
        plans: plan_sections(&report.plans),
        breakdowns: breakdowns(&report.costs, c),
        note: "Issued statements never change. A day's charge is rounded once, to the cent; the total is the sum of the days.".into(),
    }
}
