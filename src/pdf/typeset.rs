//! Text in every script for the PDFs. Three embedded faces (DejaVu Sans and DejaVu Sans Bold for
//! Latin, Greek, Cyrillic, Arabic and Hebrew; Droid Sans Fallback for Chinese, Japanese and
//! Korean) are chosen per character. Each run is shaped by allsorts (Arabic joining forms,
//! ligatures, kerning) and placed in visual order by the Unicode bidi algorithm. At the end each
//! face is cut down to the glyphs the document uses and embedded.
//!
//! Text extraction gets the characters back: every glyph carries the text it came from (the
//! font's `ToUnicode` map). Right-to-left runs are drawn in visual order, as a PDF must, and
//! readers (poppler's `pdftotext`, pdf.js, pdfium) put them back into logical order. `ActualText`
//! spans are not used: poppler reverses their text a second time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use allsorts::binary::read::ReadScope;
use allsorts::font::MatchingPresentation;
use allsorts::font_data::{DynamicFontTableProvider, FontData};
use allsorts::glyph_position::{GlyphLayout, TextDirection};
use allsorts::gsub::{FeatureMask, FeatureMaskExt};
use allsorts::subset::{CmapTarget, SubsetProfile, subset};
use allsorts::{Font, tag};
use printpdf::{Codepoint, FontId, Op, ParsedFont, PdfDocument, PdfFont, PdfFontHandle, Pt};
use unicode_bidi::BidiInfo;

struct FaceFile {
    bytes: &'static [u8],
    /// The PostScript name the embedded subset is called by (after its subset tag).
    name: &'static str,
    /// The resource name on the page.
    id: &'static str,
}

const REGULAR: usize = 0;
const BOLD: usize = 1;
const CJK: usize = 2;

const FACES: [FaceFile; 3] = [
    FaceFile {
        bytes: include_bytes!("../../fonts/DejaVuSans.ttf"),
        name: "DejaVuSans",
        id: "FDejaVuSans",
    },
    FaceFile {
        bytes: include_bytes!("../../fonts/DejaVuSans-Bold.ttf"),
        name: "DejaVuSans-Bold",
        id: "FDejaVuSansBold",
    },
    FaceFile {
        bytes: include_bytes!("../../fonts/DroidSansFallback.ttf"),
        name: "DroidSansFallback",
        id: "FDroidSansFallback",
    },
];

struct Face {
    font: Font<DynamicFontTableProvider<'static>>,
    units_per_em: f32,
    /// Glyphs drawn so far, with the text each stands for.
    used: BTreeMap<u16, String>,
}

/// One line of text, shaped and laid out left to right, at a size.
pub struct Line {
    /// Advance width in points.
    pub width: f32,
    size: f32,
    shaped: Arc<Shaped>,
}

/// A shaped text, in ems: the same for every size.
struct Shaped {
    width: f32,
    runs: Vec<Run>,
}

/// Glyphs of one face, from `x` ems after the line's start.
struct Run {
    face: usize,
    x: f32,
    glyphs: Vec<Codepoint>,
}

/// Shaped texts kept for reuse, by text and weight; cleared when it grows past this many.
const SHAPED_KEPT: usize = 4_000;
/// Idle typesetters kept; a burst of concurrent documents makes more, and the rest are dropped.
const IDLE_KEPT: usize = 4;

pub struct Typesetter {
    faces: Vec<Face>,
    shaped: HashMap<(String, bool), Arc<Shaped>>,
}

/// Typesetters between documents: parsing the faces and their layout tables, and shaping the
/// same dates and figures again, would cost a document more than laying it out.
static IDLE: Mutex<Vec<Typesetter>> = Mutex::new(Vec::new());

impl Default for Typesetter {
    fn default() -> Self {
        Self::new()
    }
}

fn provider(file: &FaceFile) -> DynamicFontTableProvider<'static> {
    ReadScope::new(file.bytes)
        .read::<FontData<'static>>()
        .expect("the embedded fonts parse")
        .table_provider(0)
        .expect("the embedded fonts have a face")
}

impl Typesetter {
    pub fn new() -> Self {
        let faces = FACES
            .iter()
            .map(|file| {
                let font = Font::new(provider(file)).expect("the embedded fonts load");
                let units_per_em = f32::from(font.head_table.units_per_em);
                Face {
                    font,
                    units_per_em,
                    used: BTreeMap::new(),
                }
            })
            .collect();
        Typesetter {
            faces,
            shaped: HashMap::new(),
        }
    }

    /// An idle typesetter, or a new one.
    pub fn take() -> Self {
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        idle.unwrap_or_default()
    }

    /// Keep this typesetter for the next document.
    fn give_back(mut self) {
        for face in &mut self.faces {
            face.used.clear();
        }
        if self.shaped.len() > SHAPED_KEPT {
            self.shaped.clear();
        }
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_KEPT {
            idle.push(self);
        }
    }

    fn has(&mut self, face: usize, ch: char) -> bool {
        self.faces[face]
            .font
            .lookup_glyph_index(ch, MatchingPresentation::NotRequired, None)
            .0
            != 0
    }

    /// The face for `ch`: the Latin face (regular or bold) where it has the character, else
    /// the CJK face where that has it, else the Latin face's missing-glyph box.
    fn face_for(&mut self, ch: char, latin: usize) -> usize {
        if self.has(latin, ch) || !self.has(CJK, ch) {
            latin
        } else {
            CJK
        }
    }

    /// Width of `text` in points.
    pub fn width(&mut self, text: &str, size: f32, bold: bool) -> f32 {
        self.line(text, size, bold).width
    }

    /// Width of one character on its own, in points (a line's width is about the sum of its
    /// characters' widths; kerning makes it a little less).
    pub fn char_width(&mut self, ch: char, size: f32, bold: bool) -> f32 {
        let mut buffer = [0u8; 4];
        self.line(ch.encode_utf8(&mut buffer), size, bold).width
    }

    /// Width of `text` in points, shaped without keeping it (for trial cuts of a long text).
    pub fn trial_width(&mut self, text: &str, size: f32, bold: bool) -> f32 {
        match self.shaped.get(&(text.to_string(), bold)) {
            Some(shaped) => shaped.width * size,
            None => self.shape_line(text, bold).width * size,
        }
    }

    /// Shape `text` as one line.
    pub fn line(&mut self, text: &str, size: f32, bold: bool) -> Line {
        let key = (text.to_string(), bold);
        let shaped = match self.shaped.get(&key) {
            Some(shaped) => shaped.clone(),
            None => {
                let shaped = Arc::new(self.shape_line(text, bold));
                self.shaped.insert(key, shaped.clone());
                shaped
            }
        };
        Line {
            width: shaped.width * size,
            size,
            shaped,
        }
    }

    fn shape_line(&mut self, text: &str, bold: bool) -> Shaped {
        let text: String = text
            .chars()
            .map(|c| {
                if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let latin = if bold { BOLD } else { REGULAR };
        // Every line of these documents reads left to right, whatever script it starts with: a
        // footer that begins with an Arabic name keeps its parts in their order.
        let bidi = BidiInfo::new(&text, Some(unicode_bidi::Level::ltr()));
        // Runs of one direction, in visual order.
        let mut visual: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
        if bidi.has_rtl() {
            for para in &bidi.paragraphs {
                let (levels, runs) = bidi.visual_runs(para, para.range.clone());
                visual.extend(runs.into_iter().map(|r| {
                    let rtl = levels[r.start].is_rtl();
                    (r, rtl)
                }));
            }
        } else {
            visual.push((0..text.len(), false));
        }
        let mut runs = Vec::new();
        let mut x = 0.0;
        for (range, rtl) in visual {
            let mut segments = self.segments(&text[range], latin);
            if rtl {
                segments.reverse();
            }
            for (face, piece) in segments {
                let (glyphs, advance, lead) = self.shape(face, piece, rtl);
                runs.push(Run {
                    face,
                    x: x + lead,
                    glyphs,
                });
                x += advance;
            }
        }
        Shaped { width: x, runs }
    }

    /// `text` cut into pieces of one face each. Spaces and punctuation stay with the face
    /// before them when it has them.
    fn segments<'t>(&mut self, text: &'t str, latin: usize) -> Vec<(usize, &'t str)> {
        let mut out: Vec<(usize, &'t str)> = Vec::new();
        let mut start = 0;
        let mut current: Option<usize> = None;
        for (i, ch) in text.char_indices() {
            let face = match current {
                Some(face) if !ch.is_alphanumeric() && self.has(face, ch) => face,
                _ => self.face_for(ch, latin),
            };
            if current != Some(face) {
                if let Some(previous) = current {
                    out.push((previous, &text[start..i]));
                }
                start = i;
                current = Some(face);
            }
        }
        if let Some(face) = current {
            out.push((face, &text[start..]));
        }
        out
    }

    /// Glyphs of `piece` in one face, left to right, their advance in ems, and where the first
    /// glyph starts (its x offset, a mark's) in ems.
    fn shape(&mut self, face: usize, piece: &str, rtl: bool) -> (Vec<Codepoint>, f32, f32) {
        // Bidi controls have done their work in the ordering; they draw nothing.
        let piece: String = piece.chars().filter(|c| !is_bidi_control(*c)).collect();
        let piece = piece.as_str();
        let script = script_of(piece);
        let entry = &mut self.faces[face];
        let raw = entry
            .font
            .map_glyphs(piece, script, MatchingPresentation::NotRequired);
        let mut infos = match entry.font.shape(
            raw,
            script,
            None,
            FeatureMask::default_mask(),
            &[],
            None,
            true,
        ) {
            Ok(infos) => infos,
            // Shaping applies what it can before an error; what it has is still drawable.
            Err((_, infos)) => infos,
        };
        let direction = if rtl {
            TextDirection::RightToLeft
        } else {
            TextDirection::LeftToRight
        };
        let mut positions = GlyphLayout::new(&mut entry.font, &infos, direction, false)
            .glyph_positions()
            .unwrap_or_default();
        if positions.len() != infos.len() {
            positions = infos
                .iter()
                .map(|info| {
                    let mut position = allsorts::glyph_position::GlyphPosition::default();
                    position.hori_advance = i32::from(
                        entry
                            .font
                            .horizontal_advance(info.glyph.glyph_index)
                            .unwrap_or(0),
                    );
                    position
                })
                .collect();
        }
        if rtl {
            infos.reverse();
            positions.reverse();
        }
        let scale = 1000.0 / entry.units_per_em;
        let mut glyphs = Vec::with_capacity(infos.len());
        let mut advance = 0i32;
        for (i, (info, position)) in infos.iter().zip(&positions).enumerate() {
            let gid = info.glyph.glyph_index;
            // The PDF moves by the glyph's own width; the offset after it makes up the
            // difference to the shaped advance, and places the next glyph's x offset.
            let width = i32::from(entry.font.horizontal_advance(gid).unwrap_or(0));
            let next_x = positions.get(i + 1).map_or(0, |p| p.x_offset);
            let adjust = width - position.hori_advance + position.x_offset - next_x;
            // A missing glyph prints as a box and reads back as U+FFFD, not as the character
            // it does not show.
            let text: String = if gid == 0 {
                "\u{FFFD}".into()
            } else {
                info.glyph.unicodes.iter().collect()
            };
            glyphs.push(Codepoint::with_cid(gid, adjust as f32 * scale, text));
            advance += position.hori_advance;
        }
        let lead = positions.first().map_or(0, |p| p.x_offset) as f32 / entry.units_per_em;
        (glyphs, advance as f32 / entry.units_per_em, lead)
    }

    /// Ops that draw `line` with its start at (`x`, `y`), in the fill colour already set.
    pub fn draw(&mut self, line: &Line, x: f32, y: f32, ops: &mut Vec<Op>) {
        for run in &line.shaped.runs {
            if run.glyphs.is_empty() {
                continue;
            }
            let used = &mut self.faces[run.face].used;
            for glyph in &run.glyphs {
                let text = glyph.cid.clone().unwrap_or_default();
                used.entry(glyph.gid).or_insert(text);
            }
            ops.extend([
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::External(FontId(FACES[run.face].id.to_string())),
                    size: Pt(line.size),
                },
                Op::SetTextCursor {
                    pos: printpdf::Point {
                        x: Pt(x + run.x * line.size),
                        y: Pt(y),
                    },
                },
                Op::ShowText {
                    items: vec![printpdf::TextItem::GlyphIds(run.glyphs.clone())],
                },
                Op::EndTextSection,
            ]);
        }
    }

    /// Cut each face down to the glyphs drawn, renumber the glyphs in `pages` to match, and
    /// add the faces to `pdf`. The typesetter is kept for the next document.
    pub fn embed(self, pdf: &mut PdfDocument, pages: &mut [Vec<Op>]) {
        let mut renumber: BTreeMap<String, BTreeMap<u16, u16>> = BTreeMap::new();
        for (index, face) in self.faces.iter().enumerate() {
            if face.used.is_empty() {
                continue;
            }
            let file = &FACES[index];
            // Glyph 0 (.notdef) comes first; a glyph's new number is its place in the list.
            let ids: Vec<u16> = std::iter::once(0)
                .chain(face.used.keys().copied().filter(|gid| *gid != 0))
                .collect();
            let mut warnings = Vec::new();
            let subset_font = subset(
                &provider(file),
                &ids,
                &SubsetProfile::Pdf,
                CmapTarget::Unicode,
            )
            .ok()
            .and_then(|bytes| ParsedFont::from_bytes(&bytes, 0, &mut warnings));
            let parsed = match subset_font {
                Some(mut parsed) => {
                    parsed.font_name = Some(format!("{}+{}", subset_tag(&ids), file.name));
                    renumber.insert(
                        file.id.to_string(),
                        ids.iter()
                            .enumerate()
                            .map(|(new, old)| (*old, new as u16))
                            .collect(),
                    );
                    parsed
                }
                // Never seen: the whole face, larger but right, rather than no document.
                None => {
                    tracing::warn!(
                        face = file.name,
                        "embedding a whole face: subsetting failed"
                    );
                    let mut parsed = ParsedFont::from_bytes(file.bytes, 0, &mut warnings)
                        .expect("the embedded fonts parse");
                    parsed.font_name = Some(file.name.to_string());
                    parsed
                }
            };
            pdf.resources
                .fonts
                .map
                .insert(FontId(file.id.to_string()), PdfFont::new(parsed));
        }
        for ops in pages {
            let mut current: Option<&BTreeMap<u16, u16>> = None;
            for op in ops.iter_mut() {
                match op {
                    Op::SetFont { font, .. } => {
                        current = match font {
                            PdfFontHandle::External(id) => renumber.get(&id.0),
                            PdfFontHandle::Builtin(_) => None,
                        }
                    }
                    Op::ShowText { items } => {
                        let Some(map) = current else { continue };
                        for item in items {
                            if let printpdf::TextItem::GlyphIds(glyphs) = item {
                                for glyph in glyphs {
                                    glyph.gid = map.get(&glyph.gid).copied().unwrap_or(0);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.give_back();
    }
}

/// The six capital letters that name a subset (ISO 32000-1, 9.6.4), from the glyphs it holds.
fn subset_tag(ids: &[u16]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for byte in id.to_be_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((hash >> (i * 8)) % 26) as u8))
        .collect()
}

/// `text` as a bidi isolate: a name set into a line of other text keeps its own direction and
/// leaves the line's order alone (a number after an Arabic name stays after it).
pub fn isolate(text: &str) -> String {
    format!("\u{2068}{text}\u{2069}")
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The OpenType script of the first letter in `text` that has one.
fn script_of(text: &str) -> u32 {
    for ch in text.chars() {
        let script = match u32::from(ch) {
            0x0600..=0x06FF
            | 0x0750..=0x077F
            | 0x08A0..=0x08FF
            | 0xFB50..=0xFDFF
            | 0xFE70..=0xFEFF => tag::ARAB,
            0x0590..=0x05FF => u32::from_be_bytes(*b"hebr"),
            0x0370..=0x03FF | 0x1F00..=0x1FFF => tag::GREK,
            0x0400..=0x052F => tag::CYRL,
            0x3040..=0x30FF => u32::from_be_bytes(*b"kana"),
            0x1100..=0x11FF | 0xAC00..=0xD7AF => u32::from_be_bytes(*b"hang"),
            0x3400..=0x9FFF | 0xF900..=0xFAFF => u32::from_be_bytes(*b"hani"),
            _ if ch.is_alphabetic() => tag::LATN,
            _ => continue,
        };
        return script;
    }
    tag::LATN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(line: &Line) -> String {
        line.shaped
            .runs
            .iter()
            .flat_map(|run| run.glyphs.iter())
            .filter_map(|g| g.cid.clone())
            .collect()
    }

    #[test]
    fn every_script_finds_a_glyph() {
        let mut ts = Typesetter::new();
        for text in [
            "Müller",
            "Σοφία",
            "Москва",
            "株式会社",
            "مؤسسة",
            "한국",
            "カタカナ",
        ] {
            let line = ts.line(text, 10.0, false);
            assert!(line.width > 0.0, "{text}");
            assert!(
                line.shaped
                    .runs
                    .iter()
                    .flat_map(|r| r.glyphs.iter())
                    .all(|g| g.gid != 0),
                "{text} has a missing glyph"
            );
        }
    }

    #[test]
    fn cjk_goes_to_the_fallback_and_latin_stays() {
        let mut ts = Typesetter::new();
        let line = ts.line("Acme 株式会社", 10.0, false);
        let faces: Vec<usize> = line.shaped.runs.iter().map(|r| r.face).collect();
        assert_eq!(faces, vec![REGULAR, CJK]);
        assert_eq!(text_of(&line), "Acme 株式会社");
    }

    #[test]
    fn arabic_is_joined_and_drawn_right_to_left() {
        let mut ts = Typesetter::new();
        let line = ts.line("مؤسسة", 10.0, false);
        let glyphs: Vec<&Codepoint> = line
            .shaped
            .runs
            .iter()
            .flat_map(|r| r.glyphs.iter())
            .collect();
        // Visual order: the last letter first.
        assert_eq!(glyphs.first().and_then(|g| g.cid.as_deref()), Some("ة"));
        assert_eq!(glyphs.last().and_then(|g| g.cid.as_deref()), Some("م"));
        // Joined forms differ from the isolated ones the cmap gives.
        let isolated = ts.faces[REGULAR]
            .font
            .lookup_glyph_index('س', MatchingPresentation::NotRequired, None)
            .0;
        let seen: Vec<u16> = glyphs
            .iter()
            .filter(|g| g.cid.as_deref() == Some("س"))
            .map(|g| g.gid)
            .collect();
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter().all(|gid| *gid != isolated),
            "{seen:?} {isolated}"
        );
    }

    #[test]
    fn a_line_that_starts_in_arabic_still_reads_left_to_right() {
        let mut ts = Typesetter::new();
        let line = ts.line(
            &format!("{} - 1 Feb 2026 - Page 1", isolate("مؤسسة النور")),
            8.0,
            false,
        );
        let text = text_of(&line);
        // The Arabic run comes first, drawn right to left (its last letter first); the rest
        // follows in its order.
        assert!(text.starts_with("رونلا ةسسؤم"), "{text}");
        assert!(text.ends_with(" - 1 Feb 2026 - Page 1"), "{text}");
    }

    #[test]
    fn a_character_no_face_has_prints_as_a_box_and_reads_back_as_such() {
        let mut ts = Typesetter::new();
        let line = ts.line("a\u{10FFFD}b", 10.0, false);
        assert_eq!(text_of(&line), "a\u{FFFD}b");
        assert!(line.width > 0.0);
    }

    #[test]
    fn a_face_that_cannot_be_subset_is_embedded_whole() {
        let mut ts = Typesetter::new();
        // A glyph the face does not have: subsetting fails.
        ts.faces[REGULAR].used.insert(60_000, "x".into());
        let mut pdf = PdfDocument::new("t");
        let mut pages = vec![Vec::new()];
        ts.embed(&mut pdf, &mut pages);
        let font = &pdf.resources.fonts.map[&FontId(FACES[REGULAR].id.into())];
        assert_eq!(font.parsed_font.font_name.as_deref(), Some("DejaVuSans"));
        assert_eq!(
            font.parsed_font.original_bytes.len(),
            FACES[REGULAR].bytes.len()
        );
    }

    #[test]
    fn a_mixed_name_keeps_left_to_right_order_around_the_arabic() {
        let mut ts = Typesetter::new();
        let line = ts.line("Müller & Söhne 株式会社 مؤسسة", 10.0, true);
        let faces: Vec<usize> = line.shaped.runs.iter().map(|r| r.face).collect();
        assert_eq!(faces.first(), Some(&BOLD));
        assert!(faces.contains(&CJK));
        assert!(text_of(&line).starts_with("Müller & Söhne 株式会社 "));
        let widths: Vec<f32> = line.shaped.runs.iter().map(|r| r.x).collect();
        assert!(widths.windows(2).all(|w| w[0] <= w[1]));
    }
}
