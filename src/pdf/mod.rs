//! PDF statements: a pure function from a `StatementDoc` to PDF bytes (printpdf, builtin
//! Helvetica, A4). The daily table breaks across pages with its header repeated; every page says
//! "page x of y"; text is real text, so `pdftotext` finds every day and amount.

pub mod documents;

use printpdf::{
    BuiltinFont, Color, DateTime as PdfDate, Line, LinePoint, Mm, Op, PdfDocument, PdfFontHandle,
    PdfPage, PdfSaveOptions, Point, Pt, Rect, Rgb, TextItem,
};

/// Everything a statement shows, already formatted for people.
pub struct StatementDoc {
    pub title: String,
    /// e.g. "Statement CM-1-2026-03" for issued statements; empty for a range export.
    pub number: String,
    pub org_name: String,
    pub range: String,
    pub billing_period: String,
    pub zone: String,
    pub generated: String,
    pub generated_unix: i64,
    pub currency: String,
    pub lines: Vec<StatementLine>,
    pub total_credits: String,
    pub total_additional: String,
    pub total: String,
    /// The slab table of each plan that priced the days, in order of first use.
    pub plans: Vec<PlanSection>,
    /// Cost by operation and by client (range exports), each adding up to the total.
    pub breakdowns: Vec<BreakdownSection>,
    pub note: String,
}

/// A cost breakdown: (name, credits, additional, amount) rows under a heading.
pub struct BreakdownSection {
    pub heading: String,
    /// The first column's header: "Operation" or "Client".
    pub name_header: String,
    pub rows: Vec<[String; 4]>,
    pub caption: String,
}

/// The slab table of a plan.
pub struct PlanSection {
    /// "Price plan in force", or the days it priced when several did.
    pub heading: String,
    /// (credits of the tier, price per block) rows.
    pub slabs: Vec<(String, String)>,
    pub caption: String,
    pub price_header: String,
}

pub struct StatementLine {
    pub day: String,
    pub credits: String,
    pub additional: String,
    pub amount: String,
    pub in_progress: bool,
}

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 48.0;
const ROW_H: f32 = 15.0;
const BODY: f32 = 9.5;
const FOOTER_Y: f32 = 30.0;
/// Right edges of the numeric columns.
const COLUMNS: [f32; 3] = [330.0, 440.0, PAGE_W - MARGIN];

/// `text` cut with an ellipsis to fit `width` points at `size`.
fn fit(text: &str, width: f32, size: f32) -> String {
    if text_width(text, size, false) <= width {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}..."), size, false) > width {
        cut.pop();
    }
    format!("{cut}...")
}

/// Width of text in builtin Helvetica, from its metrics for the characters we print most.
fn text_width(text: &str, size: f32, bold: bool) -> f32 {
    let em: f32 = text
        .chars()
        .map(|c| match c {
            '0'..='9' => 0.556,
            ',' | '.' | ' ' | ':' => 0.278,
            '-' => 0.333,
            'A'..='Z' => {
                if bold {
                    0.72
                } else {
                    0.667
                }
            }
            'i' | 'l' | 'j' => 0.222,
            'm' | 'w' => 0.833,
            _ => {
                if bold {
                    0.611
                } else {
                    0.556
                }
            }
        })
        .sum();
    em * size
}

fn grey(level: f32) -> Color {
    Color::Rgb(Rgb::new(level, level, level, None))
}

fn brand() -> Color {
    Color::Rgb(Rgb::new(0.12, 0.23, 0.41, None))
}

struct Canvas {
    ops: Vec<Op>,
}

impl Canvas {
    fn new() -> Self {
        Canvas { ops: Vec::new() }
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: Color, text: &str) {
        let font = if bold {
            BuiltinFont::HelveticaBold
        } else {
            BuiltinFont::Helvetica
        };
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFillColor { col: color },
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point { x: Pt(x), y: Pt(y) },
            },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_string())],
            },
            Op::EndTextSection,
        ]);
    }

    fn right(&mut self, right_edge: f32, y: f32, size: f32, bold: bool, text: &str) {
        let x = right_edge - text_width(text, size, bold);
        self.text(x, y, size, bold, grey(0.1), text);
    }

    fn rule(&mut self, y: f32, thickness: f32, level: f32) {
        self.ops.extend([
            Op::SetOutlineColor { col: grey(level) },
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawLine {
                line: Line {
                    points: vec![
                        LinePoint {
                            p: Point {
                                x: Pt(MARGIN),
                                y: Pt(y),
                            },
                            bezier: false,
                        },
                        LinePoint {
                            p: Point {
                                x: Pt(PAGE_W - MARGIN),
                                y: Pt(y),
                            },
                            bezier: false,
                        },
                    ],
                    is_closed: false,
                },
            },
        ]);
    }

    fn band(&mut self, y: f32, height: f32, color: Color) {
        self.ops.push(Op::SetFillColor { col: color });
        self.ops.push(Op::DrawRectangle {
            rectangle: Rect::from_xywh(Pt(MARGIN), Pt(y), Pt(PAGE_W - 2.0 * MARGIN), Pt(height)),
        });
    }
}

fn table_header(c: &mut Canvas, y: f32, currency: &str) -> f32 {
    table_header_named(c, y, currency, "Day")
}

fn table_header_named(c: &mut Canvas, y: f32, currency: &str, first: &str) -> f32 {
    c.band(
        y - 5.0,
        ROW_H + 2.0,
        Color::Rgb(Rgb::new(0.91, 0.93, 0.96, None)),
    );
    c.text(MARGIN + 6.0, y, BODY, true, grey(0.1), first);
    c.right(COLUMNS[0], y, BODY, true, "Credits used");
    c.right(COLUMNS[1], y, BODY, true, "Additional credits");
    c.right(
        COLUMNS[2] - 6.0,
        y,
        BODY,
        true,
        &format!("Amount ({currency})"),
    );
    y - ROW_H - 3.0
}

fn row(c: &mut Canvas, y: f32, cells: [&str; 4], bold: bool) {
    c.text(MARGIN + 6.0, y, BODY, bold, grey(0.1), cells[0]);
    c.right(COLUMNS[0], y, BODY, bold, cells[1]);
    c.right(COLUMNS[1], y, BODY, bold, cells[2]);
    c.right(COLUMNS[2] - 6.0, y, BODY, bold, cells[3]);
}

/// The first page's heading; returns where the table starts.
fn heading(c: &mut Canvas, doc: &StatementDoc) -> f32 {
    let mut y = PAGE_H - MARGIN - 6.0;
    c.text(MARGIN, y, 10.0, true, brand(), "creditmeter");
    if !doc.number.is_empty() {
        c.right(PAGE_W - MARGIN, y, 10.0, true, &doc.number);
    }
    y -= 28.0;
    c.text(MARGIN, y, 20.0, true, grey(0.1), &doc.title);
    y -= 20.0;
    c.text(MARGIN, y, 12.0, false, grey(0.15), &doc.org_name);
    y -= 22.0;
    let facts = [
        ("Range", doc.range.as_str()),
        ("Billing period", doc.billing_period.as_str()),
        ("Time zone", doc.zone.as_str()),
        ("Generated", doc.generated.as_str()),
    ];
    for (label, value) in facts {
        c.text(MARGIN, y, BODY, true, grey(0.35), label);
        c.text(MARGIN + 90.0, y, BODY, false, grey(0.1), value);
        y -= 13.0;
    }
    y -= 8.0;
    c.band(y - 30.0, 40.0, Color::Rgb(Rgb::new(0.95, 0.96, 0.98, None)));
    let boxes = [
        ("Credits used", &doc.total_credits),
        ("Additional credits", &doc.total_additional),
        ("Total amount", &doc.total),
    ];
    for (i, (label, value)) in boxes.iter().enumerate() {
        let x = MARGIN + 10.0 + i as f32 * 165.0;
        c.text(x, y - 4.0, 8.5, false, grey(0.35), label);
        c.text(x, y - 21.0, 13.0, true, grey(0.1), value);
    }
    y - 58.0
}

fn footer(c: &mut Canvas, doc: &StatementDoc, page: usize, pages: usize) {
    c.rule(FOOTER_Y + 12.0, 0.5, 0.75);
    let page_label = format!("Page {page} of {pages}");
    // The left text gives way to the page number (a long org name is cut, not overprinted).
    let room = PAGE_W - 2.0 * MARGIN - text_width(&page_label, 8.0, false) - 12.0;
    let left = format!(
        "{} - {} - generated {}",
        doc.org_name, doc.range, doc.generated
    );
    c.text(
        MARGIN,
        FOOTER_Y,
        8.0,
        false,
        grey(0.4),
        &fit(&left, room, 8.0),
    );
    c.right(PAGE_W - MARGIN, FOOTER_Y, 8.0, false, &page_label);
}

/// A plan's heading, caption and slab table from `y` down; returns the `y` below it.
fn slab_table(c: &mut Canvas, mut y: f32, plan: &PlanSection) -> f32 {
    c.text(MARGIN, y, 12.0, true, grey(0.1), &plan.heading);
    y -= 14.0;
    c.text(MARGIN, y, 8.5, false, grey(0.35), &plan.caption);
    y -= 18.0;
    c.band(
        y - 5.0,
        ROW_H + 2.0,
        Color::Rgb(Rgb::new(0.91, 0.93, 0.96, None)),
    );
    c.text(
        MARGIN + 6.0,
        y,
        BODY,
        true,
        grey(0.1),
        "Additional credits in the day",
    );
    c.right(COLUMNS[2] - 6.0, y, BODY, true, &plan.price_header);
    y -= ROW_H + 3.0;
    for (tier, price) in &plan.slabs {
        c.text(MARGIN + 6.0, y, BODY, false, grey(0.1), tier);
        c.right(COLUMNS[2] - 6.0, y, BODY, false, price);
        c.rule(y - 4.5, 0.3, 0.85);
        y -= ROW_H;
    }
    y
}

/// Lay out the statement and return the PDF file.
pub fn render(doc: &StatementDoc) -> Vec<u8> {
    let bottom = FOOTER_Y + 30.0;
    let mut pages: Vec<Canvas> = Vec::new();
    let mut c = Canvas::new();
    let mut y = heading(&mut c, doc);
    c.text(MARGIN, y, 12.0, true, grey(0.1), "Daily usage");
    y -= 20.0;
    y = table_header(&mut c, y, &doc.currency);
    for line in &doc.lines {
        if y < bottom {
            pages.push(std::mem::replace(&mut c, Canvas::new()));
            y = PAGE_H - MARGIN - 6.0;
            c.text(
                MARGIN,
                y,
                9.0,
                false,
                grey(0.35),
                &format!("{} - {} (continued)", doc.org_name, doc.range),
            );
            y -= 22.0;
            y = table_header(&mut c, y, &doc.currency);
        }
        let day = if line.in_progress {
            format!("{} (today, in progress)", line.day)
        } else {
            line.day.clone()
        };
        row(
            &mut c,
            y,
            [&day, &line.credits, &line.additional, &line.amount],
            false,
        );
        c.rule(y - 4.5, 0.3, 0.85);
        y -= ROW_H;
    }
    // Totals, then each slab table; each moves to a new page rather than splitting.
    if y < bottom + 10.0 {
        pages.push(std::mem::replace(&mut c, Canvas::new()));
        y = PAGE_H - MARGIN - 6.0;
    }
    c.rule(y + ROW_H - 4.0, 1.2, 0.1);
    row(
        &mut c,
        y - 2.0,
        [
            "Total",
            &doc.total_credits,
            &doc.total_additional,
            &doc.total,
        ],
        true,
    );
    y -= ROW_H + 24.0;
    for section in &doc.breakdowns {
        // A heading and a few rows stay together; longer tables continue on the next page.
        if y - (40.0 + ROW_H * 3.0) < bottom {
            pages.push(std::mem::replace(&mut c, Canvas::new()));
            y = PAGE_H - MARGIN - 6.0;
        }
        c.text(MARGIN, y, 12.0, true, grey(0.1), &section.heading);
        y -= 14.0;
        c.text(MARGIN, y, 8.5, false, grey(0.35), &section.caption);
        y -= 18.0;
        y = table_header_named(&mut c, y, &doc.currency, &section.name_header);
        for cells in &section.rows {
            if y < bottom {
                pages.push(std::mem::replace(&mut c, Canvas::new()));
                y = PAGE_H - MARGIN - 6.0;
                y = table_header_named(&mut c, y, &doc.currency, &section.name_header);
            }
            let name = fit(&cells[0], COLUMNS[0] - 110.0 - MARGIN, BODY);
            row(&mut c, y, [&name, &cells[1], &cells[2], &cells[3]], false);
            c.rule(y - 4.5, 0.3, 0.85);
            y -= ROW_H;
        }
        y -= 24.0;
    }
    for plan in &doc.plans {
        let slab_height = 40.0 + ROW_H * (plan.slabs.len() as f32 + 1.0) + 30.0;
        if y - slab_height < bottom {
            pages.push(std::mem::replace(&mut c, Canvas::new()));
            y = PAGE_H - MARGIN - 6.0;
        }
        y = slab_table(&mut c, y, plan) - 14.0;
    }
    y -= 10.0;
    c.text(MARGIN, y, 8.5, false, grey(0.35), &doc.note);
    pages.push(c);

    let count = pages.len();
    let pdf_pages: Vec<PdfPage> = pages
        .into_iter()
        .enumerate()
        .map(|(i, mut page)| {
            footer(&mut page, doc, i + 1, count);
            PdfPage::new(Mm(210.0), Mm(297.0), page.ops)
        })
        .collect();
    let mut pdf = PdfDocument::new(&doc.title);
    if let Ok(date) = PdfDate::from_unix_timestamp(doc.generated_unix) {
        pdf.metadata.info.creation_date = date;
        pdf.metadata.info.modification_date = date;
        pdf.metadata.info.metadata_date = date;
    }
    pdf.metadata.info.creator = "creditmeter".into();
    pdf.metadata.info.producer = "creditmeter".into();
    let mut warnings = Vec::new();
    pdf.with_pages(pdf_pages)
        .save(&PdfSaveOptions::default(), &mut warnings)
}
