//! Org-local days (R3) and monthly billing periods (R7). The only place that converts between UTC
//! instants and org-local dates.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::types::DayRange;

/// The org-local calendar day of a UTC instant.
pub fn local_day(instant: DateTime<Utc>, zone: Tz) -> NaiveDate {
    instant.with_timezone(&zone).date_naive()
}

/// The first instant of an org-local day. Where midnight does not exist (a DST gap at midnight),
/// the day starts at the first local time that does.
pub fn day_start(local_day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut time = local_day.and_time(NaiveTime::MIN);
    for _ in 0..=24 * 4 {
        if let Some(start) = zone.from_local_datetime(&time).earliest() {
            return start.with_timezone(&Utc);
        }
        time += Duration::minutes(15);
    }
    // No zone has a gap this long; fall back to UTC midnight rather than fail.
    Utc.from_utc_datetime(&local_day.and_time(NaiveTime::MIN))
}

/// The length of an org-local day: 24 hours, or 23/25 on a daylight-saving change.
pub fn day_length(local_day: NaiveDate, zone: Tz) -> Duration {
    let next = local_day.succ_opt().unwrap_or(local_day);
    day_start(next, zone) - day_start(local_day, zone)
}

/// Whole seconds from `now` until the org's next local day begins (at least 1), for `Retry-After`.
pub fn seconds_until_next_day(now: DateTime<Utc>, zone: Tz) -> i64 {
    let today = local_day(now, zone);
    let next = today.succ_opt().unwrap_or(today);
    (day_start(next, zone) - now).num_seconds().max(1)
}

/// A date as people read it: `24 Nov 2026`.
pub fn human_date(day: NaiveDate) -> String {
    day.format("%-d %b %Y").to_string()
}

/// Parse an IANA time zone name.
pub fn parse_zone(name: &str) -> Result<Tz, UnknownZone> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| UnknownZone(name.to_string()))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown time zone {0:?}: use an IANA name such as UTC or Europe/Berlin")]
pub struct UnknownZone(pub String);

/// A monthly billing period `[start, end)` of org-local dates (R7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingPeriod {
    pub index: u32,
    pub start: NaiveDate,
    /// Exclusive; also the next billing date while the period is current.
    pub end: NaiveDate,
}

impl BillingPeriod {
    /// R7/R8: whether `local_day` belongs to the period (its start included, its end not).
    pub fn contains(&self, local_day: NaiveDate) -> bool {
        self.start <= local_day && local_day < self.end
    }

    /// The last day that belongs to the period.
    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(self.end)
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    /// The period's days as a range (a period is at most 31 days, well within a range's bound).
    pub fn days_range(&self) -> DayRange {
        DayRange::new(self.start, self.last_day())
            .unwrap_or(DayRange::ending_on(self.last_day(), 1))
    }
}

/// The start of period `index` of a cycle anchored on `anchor`: anchor + index months, clamped to
/// the month's last day (anchor 31 Jan → 28/29 Feb → 31 Mar).
pub fn period_start(anchor: NaiveDate, index: u32) -> NaiveDate {
    anchor
        .checked_add_months(Months::new(index))
        .unwrap_or(NaiveDate::MAX)
}

pub fn billing_period(anchor: NaiveDate, index: u32) -> BillingPeriod {
    BillingPeriod {
        index,
        start: period_start(anchor, index),
        end: period_start(anchor, index + 1),
    }
}

/// The billing period that contains `local_day`, or `None` before the anchor.
pub fn period_containing(anchor: NaiveDate, local_day: NaiveDate) -> Option<BillingPeriod> {
    if local_day < anchor {
        return None;
    }
    let months =
        (local_day.year() - anchor.year()) * 12 + local_day.month() as i32 - anchor.month() as i32;
    let mut index = months.max(0) as u32;
    // The estimate is right or one too high (when the day of month is before the anchor's).
    while index > 0 && period_start(anchor, index) > local_day {
        index -= 1;
    }
    while period_start(anchor, index + 1) <= local_day {
        index += 1;
    }
    Some(billing_period(anchor, index))
}

/// R7: the cycle's anchor once the limit is set to `new_limit` on `local_today`: the first value
/// above 0 anchors it on that day; every later change, to 0 included, keeps it.
pub fn anchor_after_limit_change(
    anchor: Option<NaiveDate>,
    new_limit: i64,
    local_today: NaiveDate,
) -> Option<NaiveDate> {
    match anchor {
        None if new_limit > 0 => Some(local_today),
        other => other,
    }
}

/// R7: the billing period the dashboard shows on `local_day`: the one containing it, the first
/// one for a day before the anchor, and none while no limit was ever set.
pub fn current_period(anchor: Option<NaiveDate>, local_day: NaiveDate) -> Option<BillingPeriod> {
    anchor.map(|anchor| {
        period_containing(anchor, local_day).unwrap_or_else(|| billing_period(anchor, 0))
    })
}

/// R8: the issued period `[start, end)` of a cycle anchored on `anchor`, as a `BillingPeriod`.
pub fn issued_period(anchor: Option<NaiveDate>, start: NaiveDate, end: NaiveDate) -> BillingPeriod {
    let index = anchor
        .and_then(|anchor| period_containing(anchor, start))
        .map_or(0, |p| p.index);
    BillingPeriod { index, start, end }
}

/// R7: the periods of a cycle that have ended by `today` and have no statement yet, oldest first.
/// `closed_until` is the end of the last period with a statement (periods are closed in order).
pub fn periods_due(
    anchor: NaiveDate,
    closed_until: Option<NaiveDate>,
    today: NaiveDate,
) -> Vec<BillingPeriod> {
    let first = closed_until
        .and_then(|end| period_containing(anchor, end))
        .map_or(0, |p| p.index);
    (first..)
        .map(|index| billing_period(anchor, index))
        .take_while(|p| p.end <= today)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn r7_periods_due_start_after_the_last_statement() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%F").unwrap();
        let anchor = d("2026-01-31");
        let starts = |closed: Option<&str>, today: &str| -> Vec<NaiveDate> {
            periods_due(anchor, closed.map(d), d(today))
                .iter()
                .map(|p| p.start)
                .collect()
        };
        assert!(starts(None, "2026-02-27").is_empty());
        assert_eq!(starts(None, "2026-02-28"), [d("2026-01-31")]);
        assert_eq!(
            starts(None, "2026-04-30"),
            [d("2026-01-31"), d("2026-02-28"), d("2026-03-31")]
        );
        assert_eq!(starts(Some("2026-03-31"), "2026-04-30"), [d("2026-03-31")]);
        assert!(starts(Some("2026-04-30"), "2026-04-30").is_empty());
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn r3_local_day_follows_the_org_zone() {
        let instant = Utc.with_ymd_and_hms(2026, 3, 1, 23, 30, 0).unwrap();
        assert_eq!(local_day(instant, chrono_tz::UTC), date(2026, 3, 1));
        assert_eq!(local_day(instant, chrono_tz::Asia::Tokyo), date(2026, 3, 2));
        assert_eq!(
            local_day(instant, chrono_tz::America::Los_Angeles),
            date(2026, 3, 1)
        );
    }

    #[test]
    fn r3_dst_days_last_23_and_25_hours() {
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(day_length(date(2026, 3, 29), berlin), Duration::hours(23));
        assert_eq!(day_length(date(2026, 10, 25), berlin), Duration::hours(25));
        assert_eq!(day_length(date(2026, 7, 1), berlin), Duration::hours(24));
        // Santiago skips midnight itself on its spring change.
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(day_length(date(2026, 9, 6), santiago), Duration::hours(23));
    }

    #[test]
    fn r7_billing_anchor_is_the_day_the_limit_first_goes_above_zero() {
        let today = date(2026, 3, 10);
        assert_eq!(anchor_after_limit_change(None, 0, today), None);
        assert_eq!(anchor_after_limit_change(None, 1, today), Some(today));
        let anchor = Some(date(2026, 1, 5));
        assert_eq!(anchor_after_limit_change(anchor, 0, today), anchor);
        assert_eq!(anchor_after_limit_change(anchor, 90_000, today), anchor);
    }

    #[test]
    fn r7_current_period_before_and_after_the_anchor() {
        assert_eq!(current_period(None, date(2026, 3, 1)), None);
        let anchor = Some(date(2026, 3, 10));
        let first = billing_period(date(2026, 3, 10), 0);
        assert_eq!(current_period(anchor, date(2026, 3, 1)), Some(first));
        assert_eq!(current_period(anchor, date(2026, 4, 9)), Some(first));
        assert_eq!(
            current_period(anchor, date(2026, 4, 10)).map(|p| p.index),
            Some(1)
        );
    }

    #[test]
    fn r8_period_membership_includes_its_start_and_excludes_its_end() {
        let p = issued_period(
            Some(date(2026, 1, 31)),
            date(2026, 2, 28),
            date(2026, 3, 31),
        );
        assert_eq!(p.index, 1);
        assert!(!p.contains(date(2026, 2, 27)));
        assert!(p.contains(date(2026, 2, 28)));
        assert!(p.contains(date(2026, 3, 30)));
        assert!(!p.contains(date(2026, 3, 31)));
        assert_eq!(p.last_day(), date(2026, 3, 30));
    }

    #[test]
    fn r7_anchor_on_the_31st_clamps_to_month_ends() {
        let anchor = date(2026, 1, 31);
        assert_eq!(period_start(anchor, 1), date(2026, 2, 28));
        assert_eq!(period_start(anchor, 2), date(2026, 3, 31));
        assert_eq!(period_start(date(2028, 1, 31), 1), date(2028, 2, 29));
        let p = period_containing(anchor, date(2026, 3, 15)).unwrap();
        assert_eq!(
            (p.index, p.start, p.end),
            (1, date(2026, 2, 28), date(2026, 3, 31))
        );
        assert_eq!(period_containing(anchor, date(2026, 1, 30)), None);
    }

    #[test]
    fn seconds_until_next_day_in_zone() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 23, 0, 0).unwrap();
        assert_eq!(seconds_until_next_day(now, chrono_tz::UTC), 3600);
    }

    proptest! {
        #[test]
        fn r7_periods_tile_time_without_gap_or_overlap(
            year in 2023i32..2030, month in 1u32..=12, day in 1u32..=31, offset in 0i64..1500,
        ) {
            let anchor = NaiveDate::from_ymd_opt(year, month, day)
                .unwrap_or_else(|| NaiveDate::from_ymd_opt(year, month, 1).unwrap()
                    .checked_add_months(Months::new(1)).unwrap().pred_opt().unwrap());
            let local_day = anchor + Duration::days(offset);
            let period = period_containing(anchor, local_day).unwrap();
            prop_assert!(period.contains(local_day));
            prop_assert!(period.start < period.end);
            // Neighbours touch: no gap, no overlap.
            if period.index > 0 {
                prop_assert_eq!(billing_period(anchor, period.index - 1).end, period.start);
                prop_assert!(!billing_period(anchor, period.index - 1).contains(local_day));
            }
            prop_assert_eq!(billing_period(anchor, period.index + 1).start, period.end);
            prop_assert!(!billing_period(anchor, period.index + 1).contains(local_day));
            // A period is a calendar month long: 28 to 31 days.
            prop_assert!((28..=31).contains(&period.days()));
        }

        #[test]
        fn r7_every_anchor_day_tiles_consecutive_days(anchor_day in 1u32..=31, year in 2023i32..2030) {
            // Walk two years day by day: each day is in exactly the period that follows the last one.
            let anchor = NaiveDate::from_ymd_opt(year, 1, anchor_day).unwrap();
            let mut current = period_containing(anchor, anchor).unwrap();
            prop_assert_eq!(current.index, 0);
            let mut local_day = anchor;
            for _ in 0..800 {
                local_day = local_day.succ_opt().unwrap();
                let p = period_containing(anchor, local_day).unwrap();
                if p != current {
                    prop_assert_eq!(p.index, current.index + 1);
                    prop_assert_eq!(p.start, current.end);
                    prop_assert_eq!(p.start, local_day);
                    current = p;
                }
            }
        }

        #[test]
        fn r3_every_local_day_lasts_23_24_or_25_hours(offset in 0i64..3000, zone_index in 0usize..6) {
            let zones = [
                chrono_tz::Europe::Berlin, chrono_tz::America::New_York, chrono_tz::Australia::Sydney,
                chrono_tz::America::Santiago, chrono_tz::Australia::Lord_Howe, chrono_tz::Asia::Kolkata,
            ];
            let zone = zones[zone_index];
            let local_day = date(2024, 1, 1) + Duration::days(offset);
            let hours = day_length(local_day, zone).num_minutes();
            // Lord Howe shifts by 30 minutes; every other zone here by an hour.
            prop_assert!((23 * 60..=25 * 60).contains(&hours), "{} lasts {} minutes", local_day, hours);
            if zone != chrono_tz::Australia::Lord_Howe {
                prop_assert!([23 * 60, 24 * 60, 25 * 60].contains(&hours));
            }
            // The day's instants map back to the day.
            let start = day_start(local_day, zone);
            prop_assert_eq!(super::local_day(start, zone), local_day);
            prop_assert_eq!(super::local_day(start - Duration::seconds(1), zone), local_day.pred_opt().unwrap());
        }
    }
}
