//! The View details chart: one stacked bar per day (free credits, then additional), or per week or
//! month for long ranges, drawn as SVG coordinates for the template, with axis labels and a text
//! description for screen readers.

use chrono::{Datelike, NaiveDate};

use crate::domain::calendar::human_date;
use crate::domain::money::group_thousands;
use crate::report::DayLine;

pub struct Bar {
    pub x: String,
    pub width: String,
    pub free_y: String,
    pub free_h: String,
    pub add_y: String,
    pub add_h: String,
    pub title: String,
}

pub struct AxisLabel {
    pub x: String,
    pub text: String,
    pub anchor: &'static str,
}

pub struct Chart {
    pub bars: Vec<Bar>,
    pub labels: Vec<AxisLabel>,
    pub max_text: String,
    pub half_text: String,
    pub description: String,
    /// Nothing was used in the range: the page says so instead of drawing an empty axis.
    pub empty: bool,
    /// What one bar is: "day", "week" or "month".
    pub unit: &'static str,
}

const CHART_W: f64 = 900.0;
const CHART_H: f64 = 220.0;
const CHART_LEFT: f64 = 72.0;
const CHART_TOP: f64 = 10.0;

/// Ranges longer than this many days are drawn a bar per week, so that bars stay readable.
const DAYS_AS_DAYS: usize = 62;
/// And longer than this, a bar per calendar month.
const DAYS_AS_WEEKS: usize = 140;

/// One bar: the days it sums up.
struct Bucket {
    first: NaiveDate,
    last: NaiveDate,
    credits: i64,
    additional: i64,
}

/// The days of a range, a bucket per day, per week (from Monday) or per month.
fn buckets(lines: &[DayLine]) -> (Vec<Bucket>, &'static str) {
    let (unit, key): (&'static str, fn(NaiveDate) -> NaiveDate) = if lines.len() <= DAYS_AS_DAYS {
        ("day", |d| d)
    } else if lines.len() <= DAYS_AS_WEEKS {
        ("week", |d| {
            d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday()))
        })
    } else {
        ("month", |d| d.with_day(1).unwrap_or(d))
    };
    let mut out: Vec<(NaiveDate, Bucket)> = Vec::new();
    for line in lines {
        let k = key(line.local_day);
        match out.last_mut() {
            Some((last_key, bucket)) if *last_key == k => {
                bucket.last = line.local_day;
                bucket.credits += line.credits;
                bucket.additional += line.additional;
            }
            _ => out.push((
                k,
                Bucket {
                    first: line.local_day,
                    last: line.local_day,
                    credits: line.credits,
                    additional: line.additional,
                },
            )),
        }
    }
    (out.into_iter().map(|(_, b)| b).collect(), unit)
}

/// The chart of a range's days: a stacked bar (free, then additional credits) per day, or per
/// week or month for long ranges, on a scale from the data.
pub fn chart(lines: &[DayLine]) -> Chart {
    let (buckets, unit) = buckets(lines);
    // Coordinates for drawing only: credits are exact integers everywhere else.
    let max = buckets.iter().map(|b| b.credits).max().unwrap_or(0);
    let scale_max = nice_ceiling(max.max(1));
    let plot_w = CHART_W - CHART_LEFT - 8.0;
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar_w = (slot * 0.75).max(0.5);
    let y = |v: i64| CHART_TOP + CHART_H - (v as f64 / scale_max as f64) * CHART_H;
    let spans_years = match (lines.first(), lines.last()) {
        (Some(a), Some(b)) => a.local_day.year() != b.local_day.year(),
        _ => false,
    };
    let name = |b: &Bucket| match unit {
        "day" => human_date(b.first),
        "week" => format!("{} – {}", human_date(b.first), human_date(b.last)),
        _ => b.first.format("%B %Y").to_string(),
    };
    let bars = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let free = b.credits - b.additional;
            let x = CHART_LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
            let free_top = y(free);
            let add_top = y(b.credits);
            Bar {
                x: format!("{x:.2}"),
                width: format!("{bar_w:.2}"),
                free_y: format!("{free_top:.2}"),
                free_h: format!("{:.2}", (CHART_TOP + CHART_H - free_top).max(0.0)),
                add_y: format!("{add_top:.2}"),
                add_h: format!("{:.2}", (free_top - add_top).max(0.0)),
                title: format!(
                    "{}: {} credits, {} additional",
                    name(b),
                    group_thousands(b.credits),
                    group_thousands(b.additional)
                ),
            }
        })
        .collect();
    let step = (buckets.len() / 5).max(1);
    let labels = buckets
        .iter()
        .enumerate()
        .filter(|(i, _)| (i % step == 0 && buckets.len() - i > step / 2) || *i + 1 == buckets.len())
        .map(|(i, b)| {
            // The first and last labels stay inside the chart.
            let (x, anchor) = if i == 0 {
                (CHART_LEFT, "start")
            } else if i + 1 == buckets.len() {
                (CHART_W - 8.0, "end")
            } else {
                (CHART_LEFT + i as f64 * slot + slot / 2.0, "middle")
            };
            let format = match (unit, spans_years) {
                ("month", true) => "%b %Y",
                ("month", false) => "%b",
                (_, true) => "%-d %b %Y",
                (_, false) => "%-d %b",
            };
            AxisLabel {
                x: format!("{x:.2}"),
                text: b.first.format(format).to_string(),
                anchor,
            }
        })
        .collect();
    let busiest = buckets.iter().max_by_key(|b| b.credits);
    let description = match busiest {
        Some(b) if b.credits > 0 => format!(
            "Credits used per {unit}. The busiest {unit} was {} with {} credits, {} of them additional.",
            name(b),
            group_thousands(b.credits),
            group_thousands(b.additional)
        ),
        _ => "Credits used per day. No credits were used in this range.".into(),
    };
    Chart {
        bars,
        labels,
        max_text: compact(scale_max),
        half_text: if scale_max % 2 == 0 {
            compact(scale_max / 2)
        } else {
            format!("{}.5", scale_max / 2)
        },
        description,
        empty: max == 0,
        unit,
    }
}

/// The top of the scale: the first of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 and 10 times a power of
/// ten that is at least `value` (a peak of 260k gets 300k, not 500k); whole numbers below 10.
fn nice_ceiling(value: i64) -> i64 {
    if value <= 10 {
        return [1, 2, 4, 6, 8, 10]
            .into_iter()
            .find(|c| *c >= value)
            .unwrap_or(10);
    }
    let mut power = 1i64;
    while power.saturating_mul(10) <= value {
        power *= 10;
    }
    // power ≥ 10 here, so the tenths are whole.
    [10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100]
        .iter()
        .map(|m| m * (power / 10))
        .find(|c| *c >= value)
        .unwrap_or(value)
}

fn compact(value: i64) -> String {
    if value >= 1_000_000 && value % 100_000 == 0 {
        format!("{}.{}M", value / 1_000_000, (value % 1_000_000) / 100_000).replace(".0M", "M")
    } else if value >= 1_000 && value % 1_000 == 0 {
        format!("{}k", value / 1_000)
    } else if value >= 1_000 && value % 100 == 0 {
        format!("{}.{}k", value / 1_000, (value % 1_000) / 100)
    } else {
        group_thousands(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(day: NaiveDate, credits: i64) -> DayLine {
        DayLine {
            local_day: day,
            credits,
            additional: credits / 4,
            amount_minor: 0,
            in_progress: false,
            plan_id: 0,
        }
    }

    #[test]
    fn the_scale_follows_the_data() {
        assert_eq!(nice_ceiling(260_000), 300_000);
        assert_eq!(nice_ceiling(500_000), 500_000);
        assert_eq!(nice_ceiling(1_050), 1_200);
        assert_eq!(nice_ceiling(7), 8);
        assert_eq!(compact(300_000), "300k");
        assert_eq!(compact(150_000), "150k");
        assert_eq!(compact(1_200_000), "1.2M");
        assert_eq!(compact(600), "600");
        let one = chart(&[line(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), 1)]);
        assert_eq!(
            (one.max_text.as_str(), one.half_text.as_str()),
            ("1", "0.5")
        );
    }

    #[test]
    fn long_ranges_are_drawn_by_week_or_month_with_years() {
        let from = NaiveDate::from_ymd_opt(2025, 11, 30).unwrap();
        let days = |n: i64| -> Vec<DayLine> {
            (0..n)
                .map(|i| line(from + chrono::Duration::days(i), 1000))
                .collect()
        };
        let short = chart(&days(40));
        assert_eq!((short.unit, short.bars.len()), ("day", 40));
        assert!(
            short
                .labels
                .iter()
                .all(|l| l.text.ends_with("2025") || l.text.ends_with("2026"))
        );
        let weeks = chart(&days(100));
        assert_eq!(weeks.unit, "week");
        assert_eq!(
            weeks.bars.len(),
            16,
            "30 Nov 2025 is a Sunday: 1 + 14 full weeks + 1"
        );
        let year = chart(&days(366));
        assert_eq!((year.unit, year.bars.len()), ("month", 13));
        assert_eq!(year.labels[0].text, "Nov 2025");
        assert!(!year.empty);
        let nothing: Vec<DayLine> = (0..30)
            .map(|i| line(from + chrono::Duration::days(i), 0))
            .collect();
        let empty = chart(&nothing);
        assert!(empty.empty);
        assert!(empty.description.contains("No credits were used"));
    }
}
