//! PDF statements: a pure function from a `StatementDoc` to PDF bytes (printpdf, A4, text in
//! every script through `typeset`). The daily table breaks across pages with its header
//! repeated; every page says "page x of y"; text is real text, so `pdftotext` finds every day,
//! amount and name.

pub mod documents;
mod typeset;

use typeset::Typesetter;

use printpdf::{
    Color, DateTime as PdfDate, Line, LinePoint, Mm, Op, PdfDocument, PdfPage, PdfSaveOptions,
    Point, Pt, Rect, Rgb,
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
    /// Cost by operation, client and user, each adding up to the total.
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
/// Width of a breakdown's name column, and the step between its wrapped lines.
const NAME_WIDTH: f32 = 190.0;
const NAME_LINE: f32 = 11.5;
/// Right edges of the numeric columns.
const COLUMNS: [f32; 3] = [330.0, 440.0, PAGE_W - MARGIN];

fn grey(level: f32) -> Color {
    Color::Rgb(Rgb::new(level, level, level, None))
}

fn brand() -> Color {
    Color::Rgb(Rgb::new(0.12, 0.23, 0.41, None))
}

struct Canvas {
    ts: Typesetter,
    /// The pages laid out so far, and the one being laid out.
    pages: Vec<Vec<Op>>,
    ops: Vec<Op>,
}

impl Canvas {
    fn new() -> Self {
        Canvas {
            ts: Typesetter::take(),
            pages: Vec::new(),
            ops: Vec::new(),
        }
    }

    fn break_page(&mut self) {
        let page = std::mem::take(&mut self.ops);
        self.pages.push(page);
    }

    fn width(&mut self, text: &str, size: f32, bold: bool) -> f32 {
        self.ts.width(text, size, bold)
    }

    /// `text` cut with an ellipsis to fit `width` points at `size`: the longest prefix that fits,
    /// found by halving.
    fn fit(&mut self, text: &str, width: f32, size: f32) -> String {
        if self.width(text, size, false) <= width {
            return text.to_string();
        }
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let cut = |n: usize| format!("{}\u{2026}", text[..ends[n]].trim_end());
        // `fits(0)` holds (an ellipsis alone); find the largest `n` with `fits(n)`.
        let (mut low, mut high) = (0, ends.len());
        while high - low > 1 {
            let mid = (low + high) / 2;
            if self.ts.trial_width(&cut(mid), size, false) <= width {
                low = mid;
            } else {
                high = mid;
            }
        }
        cut(low)
    }

    /// `text` in lines of at most `width` points, broken after the last character of a line for
    /// which `breaks_after` holds, else (a run longer than a line) between any two characters.
    /// Widths are the sum of the characters' own, which kerning only makes smaller.
    fn wrap(
        &mut self,
        text: &str,
        width: f32,
        size: f32,
        breaks_after: fn(char) -> bool,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut line_width = 0.0;
        // Where `line` may break: just after its last break character.
        let mut break_at: Option<usize> = None;
        for ch in text.chars() {
            let advance = self.ts.char_width(ch, size, false);
            if line_width + advance > width && !line.is_empty() {
                let at = break_at.filter(|i| *i < line.len()).unwrap_or(line.len());
                let rest = line.split_off(at);
                lines.push(std::mem::replace(&mut line, rest).trim_end().to_string());
                line_width = line
                    .chars()
                    .map(|c| self.ts.char_width(c, size, false))
                    .sum();
                break_at = None;
            }
            line.push(ch);
            line_width += advance;
            if breaks_after(ch) {
                break_at = Some(line.len());
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        lines
    }

    /// A name in lines of at most `width` points, broken after a space or a separator
    /// (`- . _ / @ : ,`) where the line has one, else between any two characters.
    fn wrap_name(&mut self, text: &str, width: f32, size: f32) -> Vec<String> {
        self.wrap(text, width, size, |c| {
            matches!(c, ' ' | '-' | '.' | '_' | '/' | '@' | ':' | ',')
        })
    }

    /// A small grey paragraph from `y` down, wrapped to the text width; returns the `y` of the
    /// line after it.
    fn caption(&mut self, mut y: f32, text: &str) -> f32 {
        for line in self.wrap(text, PAGE_W - 2.0 * MARGIN, 8.5, |c| c == ' ') {
            self.text(MARGIN, y, 8.5, false, grey(0.35), &line);
            y -= 11.0;
        }
        y
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: Color, text: &str) {
        let line = self.ts.line(text, size, bold);
        self.ops.push(Op::SetFillColor { col: color });
        self.ts.draw(&line, x, y, &mut self.ops);
    }

    fn right(&mut self, right_edge: f32, y: f32, size: f32, bold: bool, text: &str) {
        let line = self.ts.line(text, size, bold);
        self.ops.push(Op::SetFillColor { col: grey(0.1) });
        self.ts
            .draw(&line, right_edge - line.width, y, &mut self.ops);
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
    // The whole name, however long: the footer and the continued pages may cut it.
    for line in c.wrap_name(&doc.org_name, PAGE_W - 2.0 * MARGIN, 12.0) {
        c.text(MARGIN, y, 12.0, false, grey(0.15), &line);
        y -= 15.0;
    }
    y -= 7.0;
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
    let room = PAGE_W - 2.0 * MARGIN - c.width(&page_label, 8.0, false) - 12.0;
    let left = format!(
        "{} - {} - generated {}",
        typeset::isolate(&doc.org_name),
        doc.range,
        doc.generated
    );
    let left = c.fit(&left, room, 8.0);
    c.text(MARGIN, FOOTER_Y, 8.0, false, grey(0.4), &left);
    c.right(PAGE_W - MARGIN, FOOTER_Y, 8.0, false, &page_label);
}

/// A plan's heading, caption and slab table from `y` down; returns the `y` below it.
fn slab_table(c: &mut Canvas, mut y: f32, plan: &PlanSection) -> f32 {
    c.text(MARGIN, y, 12.0, true, grey(0.1), &plan.heading);
    y -= 14.0;
    y = c.caption(y, &plan.caption) - 7.0;
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
    let mut c = Canvas::new();
    let mut y = heading(&mut c, doc);
    c.text(MARGIN, y, 12.0, true, grey(0.1), "Daily usage");
    y -= 20.0;
    y = table_header(&mut c, y, &doc.currency);
    for line in &doc.lines {
        if y < bottom {
            c.break_page();
            y = PAGE_H - MARGIN - 6.0;
            let continued = format!(
                "{} - {} (continued)",
                typeset::isolate(&doc.org_name),
                doc.range
            );
            let continued = c.fit(&continued, PAGE_W - 2.0 * MARGIN, 9.0);
            c.text(MARGIN, y, 9.0, false, grey(0.35), &continued);
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
        c.break_page();
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
            c.break_page();
            y = PAGE_H - MARGIN - 6.0;
        }
        c.text(MARGIN, y, 12.0, true, grey(0.1), &section.heading);
        y -= 14.0;
        y = c.caption(y, &section.caption) - 7.0;
        y = table_header_named(&mut c, y, &doc.currency, &section.name_header);
        for cells in &section.rows {
            // A long name wraps rather than being cut: names that differ only at the end
            // (`…-eu-west-1`, `…-eu-west-2`) stay told apart.
            let name = c.wrap_name(&cells[0], NAME_WIDTH, BODY);
            let more = NAME_LINE * (name.len() as f32 - 1.0);
            if y - more < bottom {
                c.break_page();
                y = PAGE_H - MARGIN - 6.0;
                y = table_header_named(&mut c, y, &doc.currency, &section.name_header);
            }
            row(
                &mut c,
                y,
                [&name[0], &cells[1], &cells[2], &cells[3]],
                false,
            );
            for (k, line) in name.iter().enumerate().skip(1) {
                let below = y - NAME_LINE * k as f32;
                c.text(MARGIN + 6.0, below, BODY, false, grey(0.1), line);
            }
            c.rule(y - more - 4.5, 0.3, 0.85);
            y -= ROW_H + more;
        }
        y -= 24.0;
    }
    for plan in &doc.plans {
        let slab_height = 40.0 + ROW_H * (plan.slabs.len() as f32 + 1.0) + 30.0;
        if y - slab_height < bottom {
            c.break_page();
            y = PAGE_H - MARGIN - 6.0;
        }
        y = slab_table(&mut c, y, plan) - 14.0;
    }
    y -= 10.0;
    if y - 22.0 < bottom {
        c.break_page();
        y = PAGE_H - MARGIN - 6.0;
    }
    c.caption(y, &doc.note);
    c.break_page();

    let mut bodies = std::mem::take(&mut c.pages);
    let count = bodies.len();
    for (i, body) in bodies.iter_mut().enumerate() {
        c.ops = std::mem::take(body);
        footer(&mut c, doc, i + 1, count);
        *body = std::mem::take(&mut c.ops);
    }
    let mut pdf = PdfDocument::new(&doc.title);
    if let Ok(date) = PdfDate::from_unix_timestamp(doc.generated_unix) {
        pdf.metadata.info.creation_date = date;
        pdf.metadata.info.modification_date = date;
        pdf.metadata.info.metadata_date = date;
    }
    pdf.metadata.info.creator = "creditmeter".into();
    pdf.metadata.info.producer = "creditmeter".into();
    c.ts.embed(&mut pdf, &mut bodies);
    let pdf_pages: Vec<PdfPage> = bodies
        .into_iter()
        .map(|ops| PdfPage::new(Mm(210.0), Mm(297.0), ops))
        .collect();
    let mut warnings = Vec::new();
    let options = PdfSaveOptions {
        optimize: false,
        ..PdfSaveOptions::default()
    };
    let mut document = pdf
        .with_pages(pdf_pages)
        .to_lopdf_document(&options, &mut warnings);
    compress(&mut document);
    let mut bytes = Vec::new();
    document
        .save_to(&mut bytes)
        .expect("a PDF is written to memory");
    bytes
}

/// Deflate every stream at the fast level: a third the time of the best level, for PDFs a few
/// percent larger.
fn compress(document: &mut lopdf::Document) {
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;
    for object in document.objects.values_mut() {
        if let lopdf::Object::Stream(stream) = object {
            if !stream.allows_compression || stream.dict.get(b"Filter").is_ok() {
                continue;
            }
            let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
            if encoder.write_all(&stream.content).is_err() {
                continue;
            }
            if let Ok(deflated) = encoder.finish()
                && deflated.len() < stream.content.len()
            {
                stream.dict.set("Filter", "FlateDecode");
                stream.set_content(deflated);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Canvas;

    #[test]
    fn a_long_name_wraps_after_separators_and_keeps_every_character() {
        let mut c = Canvas::new();
        let name = "client-2-eu-west-1.internal.example.com/gateway/v2/alpha";
        let lines = c.wrap_name(name, 100.0, 9.5);
        assert!(lines.len() > 2, "{lines:?}");
        assert_eq!(lines.concat(), name);
        for line in &lines {
            assert!(c.width(line, 9.5, false) <= 100.0, "{line}");
        }
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.ends_with(['-', '.', '/'])),
            "{lines:?}"
        );
        // Without a separator a name breaks between any two characters.
        let cjk = "株式会社".repeat(10);
        let lines = c.wrap_name(&cjk, 60.0, 9.5);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), cjk);
        assert_eq!(c.wrap_name("", 60.0, 9.5), [""]);
    }
}
