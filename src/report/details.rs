//! View details: the days of a range with their amounts and plans (the page, the CSV, the PDF and
//! `/api/v1/usage/daily`), usage by operation, by client and by user, and the current period's
//! projection.

use crate::domain::types::OrgId;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::QueryResult;

use super::{DayLine, PricedBy, Totals, plan_of, plans_of};
use crate::db::DbConn;
use crate::domain::calendar::{self, BillingPeriod};
use crate::domain::projection::{Projected, project_period_total};
use crate::domain::types::DayRange;
use crate::store::orgs::OrgRow;
use crate::store::{plans, usage};

/// The days of a range: one line per day (days without usage included), their totals, and the
/// plans that price them.
#[derive(Debug, Clone)]
pub struct Days {
    pub range: DayRange,
    pub lines: Vec<DayLine>,
    pub totals: Totals,
    pub plans: Vec<PricedBy>,
    pub currency: String,
}

/// Credits, additional credits and cost of one operation or client over the range: each day's
/// charge shared out in proportion to its additional credits that day (`domain::allocation`), so
/// that the shares of all operations (or clients) add up to the range's total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: String,
    pub credits: i64,
    pub additional: i64,
    pub amount_minor: i64,
}

/// The shares of a range from its (day, name, credits, additional) rows, largest use first. What
/// no row of a day names (a day without rows, or the usage that named no user) is "unspecified",
/// so the shares add up to the range's total.
fn shares_by<'r>(
    rows: impl Iterator<Item = (NaiveDate, &'r str, i64, i64)>,
    lines: &[super::DayLine],
) -> Vec<Share> {
    use crate::domain::event::UNSPECIFIED;
    use std::collections::BTreeMap;
    let mut days: BTreeMap<NaiveDate, BTreeMap<&str, (i64, i64)>> = BTreeMap::new();
    for (day, name, credits, additional) in rows {
        let entry = days.entry(day).or_default().entry(name).or_default();
        entry.0 += credits;
        entry.1 += additional;
    }
    let mut totals: BTreeMap<String, Share> = BTreeMap::new();
    fn total_of<'t>(totals: &'t mut BTreeMap<String, Share>, name: &str) -> &'t mut Share {
        totals.entry(name.to_string()).or_insert_with(|| Share {
            name: name.to_string(),
            credits: 0,
            additional: 0,
            amount_minor: 0,
        })
    }
    for line in lines {
        let mut entries: Vec<(&str, (i64, i64))> = days
            .get(&line.local_day)
            .map(|d| d.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        let named_credits: i64 = entries.iter().map(|(_, (c, _))| c).sum();
        let named_additional: i64 = entries.iter().map(|(_, (_, a))| a).sum();
        if line.credits > named_credits || line.additional > named_additional {
            entries.push((
                UNSPECIFIED,
                (
                    (line.credits - named_credits).max(0),
                    (line.additional - named_additional).max(0),
                ),
            ));
        }
        let weights: Vec<i64> = entries.iter().map(|(_, (_, a))| *a).collect();
        let parts = crate::domain::allocation::share_out(line.amount_minor, &weights);
        for ((name, (credits, additional)), part) in entries.iter().zip(&parts) {
            let share = total_of(&mut totals, name);
            share.credits += credits;
            share.additional += additional;
            share.amount_minor += part;
        }
        // A charged day with no additional credits to share by (none recorded) goes to
        // unspecified whole, so the lines still add up.
        let unshared = line.amount_minor - parts.iter().sum::<i64>();
        if unshared != 0 {
            total_of(&mut totals, UNSPECIFIED).amount_minor += unshared;
        }
    }
    let mut list: Vec<Share> = totals
        .into_values()
        .filter(|s| s.credits != 0 || s.amount_minor != 0)
        .collect();
    list.sort_by(|a, b| b.credits.cmp(&a.credits).then_with(|| a.name.cmp(&b.name)));
    list
}

/// Cost by operation, by client and by user of a range's days; `by_user` is empty when no usage
/// of the range names a user.
#[derive(Debug, Clone, Default)]
pub struct Costs {
    pub by_operation: Vec<Share>,
    pub by_client: Vec<Share>,
    pub by_user: Vec<Share>,
}

/// The costs of `lines`, the days of `range`, from the breakdowns kept beside the day rows.
pub fn costs(
    conn: &mut DbConn,
    org_id: OrgId,
    range: DayRange,
    lines: &[super::DayLine],
) -> QueryResult<Costs> {
    let rows = usage::breakdown_rows(conn, org_id, range)?;
    let rows_by = |key: fn(&usage::BreakdownRow) -> &str| {
        rows.iter()
            .map(move |r| (r.local_day, key(r), r.credits, r.additional))
    };
    let users = usage::user_breakdown_rows(conn, org_id, range)?;
    // Cost by user only where some usage names a user: all "unspecified" says nothing.
    let by_user = if users.is_empty() {
        Vec::new()
    } else {
        shares_by(
            users
                .iter()
                .map(|r| (r.local_day, r.user_ref.as_str(), r.credits, r.additional)),
            lines,
        )
    };
    Ok(Costs {
        by_operation: shares_by(rows_by(|r| &r.operation), lines),
        by_client: shares_by(rows_by(|r| &r.client), lines),
        by_user,
    })
}

/// The first `shown` shares, then one row for the rest ("312 other users") so that the lines
/// still add up to the total: what a page or a PDF lists; the CSV has every share.
pub fn largest(list: &[Share], shown: usize, noun_plural: &str) -> Vec<Share> {
    use crate::domain::event::UNSPECIFIED;
    // "unspecified" is shown on its own, never summed up with the others.
    let (unspecified, named): (Vec<&Share>, Vec<&Share>) =
        list.iter().partition(|s| s.name == UNSPECIFIED);
    if named.len() <= shown + 1 {
        return list.to_vec();
    }
    let (head, tail) = named.split_at(shown);
    let mut out: Vec<Share> = head
        .iter()
        .chain(&unspecified)
        .map(|s| (*s).clone())
        .collect();
    out.sort_by(|a, b| b.credits.cmp(&a.credits).then_with(|| a.name.cmp(&b.name)));
    out.push(Share {
        name: format!("{} other {noun_plural}", tail.len()),
        credits: tail.iter().map(|s| s.credits).sum(),
        additional: tail.iter().map(|s| s.additional).sum(),
        amount_minor: tail.iter().map(|s| s.amount_minor).sum(),
    });
    out
}

/// The current billing period, its charges so far and their projection to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    pub period: BillingPeriod,
    pub so_far_minor: i64,
    pub projected_minor: i64,
    pub basis: Projected,
}

/// Everything View details shows for a range.
#[derive(Debug, Clone)]
pub struct DetailsReport {
    pub org_name: String,
    pub zone: Tz,
    pub today: NaiveDate,
    pub days: Days,
    pub costs: Costs,
    /// `None` while no limit was ever set (R7).
    pub projection: Option<Projection>,
    pub generated_at: DateTime<Utc>,
}

/// The days of `range` for an org whose local today is `today`.
pub fn days(
    conn: &mut DbConn,
    org_id: OrgId,
    range: DayRange,
    today: NaiveDate,
) -> QueryResult<Days> {
    let schedule = plans::schedule(conn)?;
    let lines = usage::every_day(conn, org_id, range)?
        .into_iter()
        .map(|row| {
            Ok(DayLine {
                plan_id: plan_of(&schedule, row.pinned_plan(), row.local_day)?,
                local_day: row.local_day,
                credits: row.credits,
                additional: row.additional,
                amount_minor: row.amount_minor,
                in_progress: row.local_day == today,
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    let (plans, currency) = plans_of(conn, &lines)?;
    Ok(Days {
        range,
        totals: Totals::of(&lines),
        lines,
        plans,
        currency,
    })
}

pub fn details(
    conn: &mut DbConn,
    org: &OrgRow,
    range: DayRange,
    now: DateTime<Utc>,
) -> QueryResult<DetailsReport> {
    let zone = org.zone();
    let today = calendar::local_day(now, zone);
    let days = days(conn, org.id, range, today)?;
    let costs = costs(conn, org.id, range, &days.lines)?;
    let projection = match calendar::current_period(org.billing_anchor, today) {
        Some(period) => {
            let up_to_today = DayRange::new(period.start, today.max(period.start))
                .map_err(|e| super::corrupt(e.to_string()))?;
            let so_far: Vec<(NaiveDate, i64)> = usage::every_day(conn, org.id, up_to_today)?
                .iter()
                .map(|d| (d.local_day, d.amount_minor))
                .collect();
            let charged = super::charged_in_period(conn, org.id, period)?;
            let basis = project_period_total(&so_far, today, period);
            Some(Projection {
                period,
                so_far_minor: charged,
                projected_minor: basis.total_minor.max(charged),
                basis,
            })
        }
        None => None,
    };
    Ok(DetailsReport {
        org_name: org.name.clone(),
        zone,
        today,
        days,
        costs,
        projection,
        generated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(day: u32, credits: i64, additional: i64, amount_minor: i64) -> DayLine {
        DayLine {
            local_day: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
            credits,
            additional,
            amount_minor,
            in_progress: false,
            plan_id: 1,
        }
    }

    #[test]
    fn usage_no_row_names_is_unspecified_and_the_shares_add_up() {
        let lines = [line(1, 90_000, 30_000, 380), line(2, 60_000, 10_000, 140)];
        let day = lines[0].local_day;
        // Only Bob is named on day 1; day 2 has no rows at all.
        let shares = shares_by([(day, "bob", 20_000, 20_000)].into_iter(), &lines);
        let named = |n: &str| shares.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(named("bob").amount_minor, 253);
        let unspecified = named("unspecified");
        assert_eq!(
            (
                unspecified.credits,
                unspecified.additional,
                unspecified.amount_minor
            ),
            (130_000, 20_000, 127 + 140)
        );
        assert_eq!(shares.iter().map(|s| s.amount_minor).sum::<i64>(), 520);
    }

    #[test]
    fn the_largest_are_listed_and_the_rest_summed_in_one_row() {
        let list: Vec<Share> = (0..30)
            .map(|i| Share {
                name: format!("u{i}"),
                credits: 100 - i,
                additional: 10,
                amount_minor: 7,
            })
            .collect();
        let shown = largest(&list, 25, "users");
        assert_eq!(shown.len(), 26);
        assert_eq!(shown[25].name, "5 other users");
        assert_eq!(shown.iter().map(|s| s.amount_minor).sum::<i64>(), 210);
        assert_eq!(
            shown.iter().map(|s| s.credits).sum::<i64>(),
            list.iter().map(|s| s.credits).sum::<i64>()
        );
        // "unspecified" keeps its own row.
        let mut with_unnamed = list.clone();
        with_unnamed[29].name = "unspecified".into();
        let shown = largest(&with_unnamed, 25, "users");
        assert_eq!(shown.len(), 27);
        assert_eq!(shown[25].name, "unspecified");
        assert_eq!(shown[26].name, "4 other users");
        // One more than shown is listed, not summed up as "1 other".
        assert_eq!(largest(&list[..26], 25, "users").len(), 26);
        assert_eq!(largest(&list[..26], 25, "users")[25].name, "u25");
    }
}
