//! The View details chart: one stacked bar per day (free credits, then additional), drawn as SVG
//! coordinates for the template, with axis labels and a text description for screen readers.

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
}

const CHART_W: f64 = 900.0;
const CHART_H: f64 = 220.0;
const CHART_LEFT: f64 = 72.0;
const CHART_TOP: f64 = 10.0;

/// The chart of a range's days: a stacked bar per day (free, then additional credits).
pub fn chart(lines: &[DayLine]) -> Chart {
    // Coordinates for drawing only: credits are exact integers everywhere else.
    let max = lines.iter().map(|l| l.credits).max().unwrap_or(0).max(1);
    let scale_max = nice_ceiling(max);
    let plot_w = CHART_W - CHART_LEFT - 8.0;
    let slot = plot_w / lines.len().max(1) as f64;
    let bar_w = (slot * 0.75).max(0.5);
    let y = |v: i64| CHART_TOP + CHART_H - (v as f64 / scale_max as f64) * CHART_H;
    let bars = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let free = l.credits - l.additional;
            let x = CHART_LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
            let free_top = y(free);
            let add_top = y(l.credits);
            Bar {
                x: format!("{x:.2}"),
                width: format!("{bar_w:.2}"),
                free_y: format!("{free_top:.2}"),
                free_h: format!("{:.2}", (CHART_TOP + CHART_H - free_top).max(0.0)),
                add_y: format!("{add_top:.2}"),
                add_h: format!("{:.2}", (free_top - add_top).max(0.0)),
                title: format!(
                    "{}: {} credits, {} additional",
                    human_date(l.local_day),
                    group_thousands(l.credits),
                    group_thousands(l.additional)
                ),
            }
        })
        .collect();
    let step = (lines.len() / 5).max(1);
    let labels = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| (i % step == 0 && lines.len() - i > step / 2) || *i + 1 == lines.len())
        .map(|(i, l)| {
            // The first and last labels stay inside the chart.
            let (x, anchor) = if i == 0 {
                (CHART_LEFT, "start")
            } else if i + 1 == lines.len() {
                (CHART_W - 8.0, "end")
            } else {
                (CHART_LEFT + i as f64 * slot + slot / 2.0, "middle")
            };
            AxisLabel {
                x: format!("{x:.2}"),
                text: l.local_day.format("%-d %b").to_string(),
                anchor,
            }
        })
        .collect();
    let busiest = lines.iter().max_by_key(|l| l.credits);
    let description = match busiest {
        Some(b) if b.credits > 0 => format!(
            "Credits used per day. The busiest day was {} with {} credits, {} of them additional.",
            human_date(b.local_day),
            group_thousands(b.credits),
            group_thousands(b.additional)
        ),
        _ => "Credits used per day. No credits were used in this range.".into(),
    };
    Chart {
        bars,
        labels,
        max_text: compact(scale_max),
        half_text: compact(scale_max / 2),
        description,
    }
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: i64) -> i64 {
    let mut power = 1i64;
    while power.saturating_mul(10) <= value {
        power *= 10;
    }
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * power)
        .find(|c| *c >= value)
        .unwrap_or(value)
}

fn compact(value: i64) -> String {
    if value >= 1_000_000 && value % 100_000 == 0 {
        format!("{}.{}M", value / 1_000_000, (value % 1_000_000) / 100_000).replace(".0M", "M")
    } else if value >= 1_000 && value % 1_000 == 0 {
        format!("{}k", value / 1_000)
    } else {
        group_thousands(value)
    }
}
