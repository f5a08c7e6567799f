//! PDF tables, written page by page: a document of any length needs the memory of one
//! page (and of the set of glyphs it used), never of all its rows.
//!
//! - A4, portrait up to five columns and landscape beyond.
//! - DejaVu Sans (regular and bold, shipped in the binary) embedded as subsets of the glyphs
//!   used, with a `ToUnicode` map, so text can be selected, searched and extracted.
//! - The title (and subtitle) on the first page, the header row repeated on every page, and
//!   "Page N of M" on every page: M is only known at the end, so every page draws one form
//!   XObject whose content is written last.
//! - Text wraps within its column (at most four lines, then an ellipsis); numbers are
//!   right-aligned with thousands separators; dates `YYYY-MM-DD`; times with their offset.
//!
//! The file is written object by object (PDF 1.7: objects, then the cross-reference table
//! with their offsets); the page tree, fonts and page count come after the pages.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::OnceLock;

use chrono::{SecondsFormat, Utc};
use flate2::Compression;
use flate2::write::ZlibEncoder;
use sha2::{Digest, Sha256};

use super::{Cell, CellKind, Column, Heading};

static REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Objects at fixed numbers; the rest are numbered from [`FIRST_FREE`] as they are written.
const CATALOG: u32 = 1;
const PAGES: u32 = 2;
const FONTS: [u32; 2] = [3, 4];
const TOTAL_PAGES: u32 = 5;
const INFO: u32 = 6;
const RESOURCES: u32 = 7;
const FIRST_FREE: u32 = 8;

const REGULAR: usize = 0;
const BOLD: usize = 1;

/// Page geometry and type sizes, in points.
const A4: (f32, f32) = (595.28, 841.89);
const MARGIN: f32 = 36.0;
const BODY: f32 = 8.0;
const LINE: f32 = 10.0;
const CELL_PAD_X: f32 = 3.0;
const CELL_PAD_Y: f32 = 3.0;
const TITLE: f32 = 14.0;
const SUBTITLE: f32 = 9.0;
const SECTION: f32 = 12.0;
const FOOTER: f32 = 7.5;
const MAX_LINES: usize = 4;
const HEADER_LINES: usize = 3;
/// Columns that still fit a portrait page.
const PORTRAIT_COLUMNS: usize = 5;

struct Face {
    name: &'static str,
    data: &'static [u8],
    face: ttf_parser::Face<'static>,
    units_per_em: f32,
}

fn faces() -> io::Result<&'static [Face; 2]> {
    static FACES: OnceLock<Option<[Face; 2]>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            let parse = |name, data: &'static [u8]| {
                let face = ttf_parser::Face::parse(data, 0).ok()?;
                Some(Face {
                    name,
                    data,
                    units_per_em: f32::from(face.units_per_em()),
                    face,
                })
            };
            Some([
                parse("DejaVuSans", REGULAR_TTF)?,
                parse("DejaVuSans-Bold", BOLD_TTF)?,
            ])
        })
        .as_ref()
        .ok_or_else(|| io::Error::other("the PDF fonts shipped with the portal could not be read"))
}

/// One font as used by one document: the glyphs it needs so far (renumbered for the subset)
/// and what each of them shows.
struct Font {
    face: &'static Face,
    subset: subsetter::GlyphRemapper,
    /// The character each subset glyph shows (index = subset glyph id), for `ToUnicode`.
    shows: Vec<Option<char>>,
    /// Character → (glyph id in the full font, advance in font units).
    glyphs: HashMap<char, (u16, u16)>,
}

impl Font {
    fn new(face: &'static Face) -> Self {
        Self {
            face,
            subset: subsetter::GlyphRemapper::new(),
            shows: vec![None],
            glyphs: HashMap::new(),
        }
    }

    fn glyph(&mut self, c: char) -> (u16, u16) {
        let face = &self.face.face;
        *self.glyphs.entry(c).or_insert_with(|| {
            let glyph = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
            (glyph.0, face.glyph_hor_advance(glyph).unwrap_or(0))
        })
    }

    /// Width of `text` set at `size` points.
    fn width(&mut self, text: &str, size: f32) -> f32 {
        let units: u32 = text.chars().map(|c| u32::from(self.glyph(c).1)).sum();
        units as f32 * size / self.face.units_per_em
    }

    /// Appends `text` as a string of subset glyph ids (`<0001002A>`).
    fn encode(&mut self, text: &str, out: &mut Vec<u8>) {
        out.push(b'<');
        for c in text.chars() {
            let (glyph, _) = self.glyph(c);
            let id = self.subset.remap(glyph);
            let index = usize::from(id);
            if self.shows.len() <= index {
                self.shows.resize(index + 1, None);
            }
            if glyph != 0 && self.shows[index].is_none() {
                self.shows[index] = Some(c);
            }
            push_hex16(out, id);
        }
        out.push(b'>');
    }
}

fn push_hex16(out: &mut Vec<u8>, value: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((value >> shift) & 0xF)]);
    }
}

/// The object part of the file: tracks where each object starts.
struct Objects {
    out: BufWriter<File>,
    written: u64,
    /// Offset of each object (index = object number; 0 is the free list head).
    offsets: Vec<u64>,
    next: u32,
}

impl Objects {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn allocate(&mut self) -> u32 {
        let id = self.next;
        self.next += 1;
        id
    }

    fn begin(&mut self, id: u32) -> io::Result<()> {
        let index = id as usize;
        if self.offsets.len() <= index {
            self.offsets.resize(index + 1, 0);
        }
        self.offsets[index] = self.written;
        self.put(format!("{id} 0 obj\n").as_bytes())
    }

    fn object(&mut self, id: u32, body: &str) -> io::Result<()> {
        self.begin(id)?;
        self.put(body.as_bytes())?;
        self.put(b"\nendobj\n")
    }

    /// A stream object, deflated; `dict` holds its entries other than the length and filter.
    fn stream(&mut self, id: u32, dict: &str, data: &[u8]) -> io::Result<()> {
        let mut deflate =
            ZlibEncoder::new(Vec::with_capacity(data.len() / 3), Compression::default());
        deflate.write_all(data)?;
        let packed = deflate.finish()?;
        self.begin(id)?;
        self.put(
            format!(
                "<< {dict} /Length {} /Filter /FlateDecode >>\nstream\n",
                packed.len()
            )
            .as_bytes(),
        )?;
        self.put(&packed)?;
        self.put(b"\nendstream\nendobj\n")
    }
}

/// Where the columns are.
struct Layout {
    width: f32,
    height: f32,
    /// Left edge and width of each column.
    columns: Vec<(f32, f32)>,
    kinds: Vec<CellKind>,
}

impl Layout {
    /// An A4 page, landscape when `wide`, with no columns yet.
    fn page(wide: bool) -> Self {
        let (width, height) = if wide { (A4.1, A4.0) } else { A4 };
        Self {
            width,
            height,
            columns: Vec::new(),
            kinds: Vec::new(),
        }
    }

    /// Shares the page width out among `columns` by what they hold.
    fn set_columns(&mut self, columns: &[Column]) {
        let weight = |kind: CellKind| match kind {
            CellKind::Text => 3.0,
            CellKind::Decimal => 1.6,
            CellKind::Integer => 1.0,
            CellKind::Date => 1.3,
            CellKind::Time => 2.4,
        };
        let total: f32 = columns.iter().map(|c| weight(c.kind)).sum::<f32>().max(1.0);
        let usable = self.width - 2.0 * MARGIN;
        let mut x = MARGIN;
        self.columns = columns
            .iter()
            .map(|column| {
                let w = usable * weight(column.kind) / total;
                let at = (x, w);
                x += w;
                at
            })
            .collect();
        self.kinds = columns.iter().map(|c| c.kind).collect();
    }

    fn right(&self) -> f32 {
        self.width - MARGIN
    }

    /// The lowest a row may reach (above the footer).
    fn bottom(&self) -> f32 {
        MARGIN + FOOTER + 8.0
    }
}

/// A PDF document being written: a title, then tables (and sections of text and tables).
pub(super) struct PdfTable {
    objects: Objects,
    fonts: [Font; 2],
    layout: Layout,
    heading: Heading,
    header: Vec<Vec<String>>,
    pages: Vec<u32>,
    /// The page being drawn: its content stream and the top of the next row.
    content: Vec<u8>,
    y: f32,
    /// Where this page's content starts (below the title on the first page).
    top: f32,
    /// Rows of the current table.
    rows: u64,
    /// Whether an empty document says "No rows." (table documents).
    empty_note: bool,
}

impl PdfTable {
    /// A table document: `columns` on every page under the title.
    pub(super) fn create(file: File, columns: &[Column], heading: Heading) -> io::Result<Self> {
        let mut table = Self::open(file, heading, columns.len() > PORTRAIT_COLUMNS)?;
        table.begin_table(columns)?;
        table.empty_note = true;
        Ok(table)
    }

    /// A document with nothing on its first page but the title (landscape when `wide`).
    pub(super) fn open(file: File, heading: Heading, wide: bool) -> io::Result<Self> {
        let [regular, bold] = faces()?;
        let mut objects = Objects {
            out: BufWriter::with_capacity(64 * 1024, file),
            written: 0,
            offsets: Vec::new(),
            next: FIRST_FREE,
        };
        // The binary comment marks the file as binary for transfer tools.
        objects.put(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")?;
        objects.object(
            RESOURCES,
            &format!(
                "<< /Font << /F1 {} 0 R /F2 {} 0 R >> /XObject << /Pages {TOTAL_PAGES} 0 R >> \
                 /ProcSet [/PDF /Text] >>",
                FONTS[REGULAR], FONTS[BOLD]
            ),
        )?;
        let mut table = Self {
            objects,
            fonts: [Font::new(regular), Font::new(bold)],
            layout: Layout::page(wide),
            heading,
            header: Vec::new(),
            pages: Vec::new(),
            content: Vec::with_capacity(32 * 1024),
            y: 0.0,
            top: 0.0,
            rows: 0,
            empty_note: false,
        };
        table.start_page();
        Ok(table)
    }

    /// Starts a table of `columns` here (its header repeated on each page it runs onto).
    pub(super) fn begin_table(&mut self, columns: &[Column]) -> io::Result<()> {
        self.layout.set_columns(columns);
        let header: Vec<Vec<String>> = columns
            .iter()
            .zip(&self.layout.columns)
            .map(|(column, (_, width))| {
                wrap(
                    &mut self.fonts[BOLD],
                    &column.key,
                    width - 2.0 * CELL_PAD_X,
                    HEADER_LINES,
                )
            })
            .collect();
        // The header and a first row stay together.
        self.header.clear();
        self.room_for(row_height(&header) + LINE + 2.0 * CELL_PAD_Y)?;
        self.header = header;
        self.rows = 0;
        self.draw_header();
        Ok(())
    }

    /// Ends the current table (the next page shows no header).
    pub(super) fn end_table(&mut self) {
        self.header.clear();
        self.y -= 6.0;
    }

    /// Starts a section on a new page (unless this page is still empty): a bold title and
    /// `facts` as `label: value` lines.
    pub(super) fn section(&mut self, title: &str, facts: &[(String, String)]) -> io::Result<()> {
        self.header.clear();
        if self.y < self.top {
            self.finish_page()?;
            self.start_page();
        }
        let room = self.layout.right() - MARGIN;
        self.y -= SECTION;
        let title = fit(&mut self.fonts[BOLD], title, room, SECTION);
        self.text(BOLD, SECTION, (MARGIN, self.y), &title);
        self.y -= 6.0;
        for (label, value) in facts {
            self.y -= LINE + 1.0;
            let label = format!("{label}: ");
            let width = self.fonts[BOLD].width(&label, SUBTITLE);
            self.text(BOLD, SUBTITLE, (MARGIN, self.y), &label);
            let value = fit(&mut self.fonts[REGULAR], value, room - width, SUBTITLE);
            self.text(REGULAR, SUBTITLE, (MARGIN + width, self.y), &value);
        }
        self.y -= 10.0;
        Ok(())
    }

    /// One line of text (after a table, say), bold or not.
    pub(super) fn line(&mut self, text: &str, bold: bool) -> io::Result<()> {
        self.room_for(LINE + 4.0)?;
        self.y -= LINE + 1.0;
        let room = self.layout.right() - MARGIN;
        let font = if bold { BOLD } else { REGULAR };
        let text = fit(&mut self.fonts[font], text, room, SUBTITLE);
        self.text(font, SUBTITLE, (MARGIN, self.y), &text);
        self.y -= 3.0;
        Ok(())
    }

    /// A new page unless `height` points are left on this one.
    fn room_for(&mut self, height: f32) -> io::Result<()> {
        if self.y - height < self.layout.bottom() {
            self.finish_page()?;
            self.start_page();
        }
        Ok(())
    }

    pub(super) fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        let mut lines = Vec::with_capacity(cells.len());
        for (cell, (_, width)) in cells.iter().zip(&self.layout.columns) {
            let room = width - 2.0 * CELL_PAD_X;
            let text = shown(cell);
            lines.push(match cell {
                Cell::Text(_) => wrap(&mut self.fonts[REGULAR], &text, room, MAX_LINES),
                _ => vec![fit(&mut self.fonts[REGULAR], &text, room, BODY)],
            });
        }
        let height = row_height(&lines);
        self.room_for(height)?;
        if self.rows % 2 == 1 {
            self.fill(0.96, self.y - height, height);
        }
        self.draw_cells(&lines, REGULAR);
        self.y -= height;
        self.rows += 1;
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<()> {
        if self.rows == 0 && self.empty_note {
            let y = self.y - CELL_PAD_Y - BODY;
            self.text(REGULAR, BODY, (MARGIN + CELL_PAD_X, y), "No rows.");
        }
        self.finish_page()?;

        // "M" of "Page N of M", drawn by every page.
        let mut total = b"BT /F1 ".to_vec();
        total.extend_from_slice(format!("{FOOTER} Tf 0 0 Td ").as_bytes());
        self.fonts[REGULAR].encode(&self.pages.len().to_string(), &mut total);
        total.extend_from_slice(b" Tj ET");
        self.objects.stream(
            TOTAL_PAGES,
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 -3 80 {FOOTER}] /Resources {RESOURCES} 0 R"
            ),
            &total,
        )?;

        for (id, index) in [(FONTS[REGULAR], REGULAR), (FONTS[BOLD], BOLD)] {
            self.write_font(id, index)?;
        }

        let kids: Vec<String> = self.pages.iter().map(|id| format!("{id} 0 R")).collect();
        self.objects.object(
            PAGES,
            &format!(
                "<< /Type /Pages /Kids [{}] /Count {} >>",
                kids.join(" "),
                self.pages.len()
            ),
        )?;
        self.objects
            .object(CATALOG, &format!("<< /Type /Catalog /Pages {PAGES} 0 R >>"))?;
        let now = Utc::now();
        self.objects.object(
            INFO,
            &format!(
                "<< /Title {} /Producer (Portal) /CreationDate (D:{}Z) >>",
                text_string(&self.heading.title),
                now.format("%Y%m%d%H%M%S")
            ),
        )?;

        let count = self.objects.next;
        let start = self.objects.written;
        let mut xref = format!("xref\n0 {count}\n0000000000 65535 f \n");
        for id in 1..count as usize {
            let offset = self.objects.offsets.get(id).copied().unwrap_or(0);
            if offset == 0 {
                xref.push_str("0000000000 65535 f \n");
            } else {
                xref.push_str(&format!("{offset:010} 00000 n \n"));
            }
        }
        let id = hex::encode(
            Sha256::digest(format!(
                "{}{}",
                now.to_rfc3339_opts(SecondsFormat::Nanos, true),
                start
            ))
            .get(..16)
            .unwrap_or_default(),
        );
        xref.push_str(&format!(
            "trailer\n<< /Size {count} /Root {CATALOG} 0 R /Info {INFO} 0 R /ID [<{id}> <{id}>] >>\n\
             startxref\n{start}\n%%EOF\n"
        ));
        self.objects.put(xref.as_bytes())?;
        let file = self
            .objects
            .out
            .into_inner()
            .map_err(|err| err.into_error())?;
        file.sync_all()
    }

    fn start_page(&mut self) {
        self.content.clear();
        let mut y = self.layout.height - MARGIN;
        if self.pages.is_empty() {
            y -= TITLE;
            let title = fit(
                &mut self.fonts[BOLD],
                &self.heading.title.clone(),
                self.layout.right() - MARGIN,
                TITLE,
            );
            self.text(BOLD, TITLE, (MARGIN, y), &title);
            y -= 6.0;
            if let Some(subtitle) = self.heading.subtitle.clone() {
                y -= SUBTITLE + 2.0;
                let subtitle = fit(
                    &mut self.fonts[REGULAR],
                    &subtitle,
                    self.layout.right() - MARGIN,
                    SUBTITLE,
                );
                self.content.extend_from_slice(b"0.35 g\n");
                self.text(REGULAR, SUBTITLE, (MARGIN, y), &subtitle);
                self.content.extend_from_slice(b"0 g\n");
            }
            y -= 10.0;
        }
        self.y = y;
        self.top = y;
        self.draw_header();
    }

    /// The current table's header, if a table is under way.
    fn draw_header(&mut self) {
        if self.header.is_empty() {
            return;
        }
        let header = self.header.clone();
        let height = row_height(&header);
        self.fill(0.86, self.y - height, height);
        self.draw_cells(&header, BOLD);
        self.y -= height;
    }

    fn finish_page(&mut self) -> io::Result<()> {
        let number = self.pages.len() + 1;
        let y = MARGIN;
        self.content.extend_from_slice(b"0.35 g\n");
        let half = (self.layout.right() - MARGIN) / 2.0;
        let title = self.heading.title.clone();
        let title = fit(&mut self.fonts[REGULAR], &title, half, FOOTER);
        self.text(REGULAR, FOOTER, (MARGIN, y), &title);
        let label = format!("Page {number} of ");
        let reserved = self.fonts[REGULAR].width("Page 00000 of 00000", FOOTER);
        let x = self.layout.right() - reserved;
        let after = x + self.fonts[REGULAR].width(&label, FOOTER);
        self.text(REGULAR, FOOTER, (x, y), &label);
        self.content.extend_from_slice(
            format!("q 1 0 0 1 {after:.2} {y:.2} cm /Pages Do Q\n0 g\n").as_bytes(),
        );

        let contents = self.objects.allocate();
        let page = self.objects.allocate();
        let content = std::mem::take(&mut self.content);
        self.objects.stream(contents, "", &content)?;
        self.content = content;
        self.objects.object(
            page,
            &format!(
                "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {:.2} {:.2}] \
                 /Resources {RESOURCES} 0 R /Contents {contents} 0 R >>",
                self.layout.width, self.layout.height
            ),
        )?;
        self.pages.push(page);
        Ok(())
    }

    fn fill(&mut self, gray: f32, y: f32, height: f32) {
        let width = self.layout.right() - MARGIN;
        self.content.extend_from_slice(
            format!("{gray} g {MARGIN} {y:.2} {width:.2} {height:.2} re f 0 g\n").as_bytes(),
        );
    }

    fn draw_cells(&mut self, lines: &[Vec<String>], font: usize) {
        let top = self.y - CELL_PAD_Y - BODY * 0.8;
        for (column, cell) in lines.iter().enumerate() {
            let Some(&(left, width)) = self.layout.columns.get(column) else {
                continue;
            };
            let right_aligned = matches!(
                self.layout.kinds.get(column),
                Some(CellKind::Decimal | CellKind::Integer)
            );
            for (n, line) in cell.iter().enumerate() {
                let y = top - n as f32 * LINE;
                let x = if right_aligned {
                    left + width - CELL_PAD_X - self.fonts[font].width(line, BODY)
                } else {
                    left + CELL_PAD_X
                };
                self.text(font, BODY, (x, y), line);
            }
        }
    }

    fn text(&mut self, font: usize, size: f32, (x, y): (f32, f32), text: &str) {
        if text.is_empty() {
            return;
        }
        self.content
            .extend_from_slice(format!("BT /F{} {size} Tf {x:.2} {y:.2} Td ", font + 1).as_bytes());
        self.fonts[font].encode(text, &mut self.content);
        self.content.extend_from_slice(b" Tj ET\n");
    }

    fn write_font(&mut self, id: u32, index: usize) -> io::Result<()> {
        let font = &self.fonts[index];
        let face = font.face;
        let subset = subsetter::subset(face.data, 0, &font.subset)
            .map_err(|err| io::Error::other(format!("subsetting the PDF font: {err}")))?;
        let old_ids: Vec<u16> = font.subset.remapped_gids().collect();
        let tag = subset_tag(&old_ids);
        let name = format!("{tag}+{}", face.name);
        let scale = 1000.0 / face.units_per_em;
        let widths: Vec<String> = old_ids
            .iter()
            .map(|&old| {
                let advance = face
                    .face
                    .glyph_hor_advance(ttf_parser::GlyphId(old))
                    .unwrap_or(0);
                format!("{}", (f32::from(advance) * scale).round())
            })
            .collect();
        let to_unicode = to_unicode(&font.shows);
        let metrics = &face.face;
        let bbox = metrics.global_bounding_box();
        let scaled = |value: i16| (f32::from(value) * scale).round();
        let descriptor = format!(
            "<< /Type /FontDescriptor /FontName /{name} /Flags 32 /FontBBox [{} {} {} {}] \
             /ItalicAngle 0 /Ascent {} /Descent {} /CapHeight {} /StemV {} /FontFile2 {{file}} 0 R >>",
            scaled(bbox.x_min),
            scaled(bbox.y_min),
            scaled(bbox.x_max),
            scaled(bbox.y_max),
            scaled(metrics.ascender()),
            scaled(metrics.descender()),
            scaled(metrics.capital_height().unwrap_or(metrics.ascender())),
            if index == BOLD { 140 } else { 80 },
        );

        let cid = self.objects.allocate();
        let descriptor_id = self.objects.allocate();
        let file = self.objects.allocate();
        let map = self.objects.allocate();
        self.objects.object(
            id,
            &format!(
                "<< /Type /Font /Subtype /Type0 /BaseFont /{name} /Encoding /Identity-H \
                 /DescendantFonts [{cid} 0 R] /ToUnicode {map} 0 R >>"
            ),
        )?;
        self.objects.object(
            cid,
            &format!(
                "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{name} \
                 /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> \
                 /FontDescriptor {descriptor_id} 0 R /DW 0 /W [0 [{}]] /CIDToGIDMap /Identity >>",
                widths.join(" ")
            ),
        )?;
        self.objects.object(
            descriptor_id,
            &descriptor.replace("{file}", &file.to_string()),
        )?;
        self.objects
            .stream(file, &format!("/Length1 {}", subset.len()), &subset)?;
        self.objects.stream(map, "", &to_unicode)
    }
}

/// The six capital letters that prefix a subset font's name, from the glyphs it holds.
fn subset_tag(glyphs: &[u16]) -> String {
    let mut digest = Sha256::new();
    for glyph in glyphs {
        digest.update(glyph.to_be_bytes());
    }
    digest
        .finalize()
        .iter()
        .take(6)
        .map(|byte| char::from(b'A' + byte % 26))
        .collect()
}

/// A `ToUnicode` CMap: subset glyph id → the character it shows.
fn to_unicode(shows: &[Option<char>]) -> Vec<u8> {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let mapped: Vec<(usize, char)> = shows
        .iter()
        .enumerate()
        .filter_map(|(id, c)| c.map(|c| (id, c)))
        .collect();
    for chunk in mapped.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (id, c) in chunk {
            let mut units = [0u16; 2];
            let utf16: String = c
                .encode_utf16(&mut units)
                .iter()
                .map(|unit| format!("{unit:04X}"))
                .collect();
            out.push_str(&format!("<{id:04X}> <{utf16}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out.into_bytes()
}

/// A PDF text string (UTF-16BE with a byte order mark, as hex).
fn text_string(text: &str) -> String {
    let mut out = String::from("<FEFF");
    for unit in text.encode_utf16() {
        out.push_str(&format!("{unit:04X}"));
    }
    out.push('>');
    out
}

fn row_height(lines: &[Vec<String>]) -> f32 {
    let most = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
    most as f32 * LINE + 2.0 * CELL_PAD_Y - (LINE - BODY)
}

/// A cell as shown on paper.
fn shown(cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(text) => text.clone(),
        Cell::Decimal(value) => grouped(&value.to_string()),
        Cell::Integer(value) => grouped(&value.to_string()),
        Cell::Date(date) => date.format("%Y-%m-%d").to_string(),
        Cell::Time(at) => {
            if at.offset().local_minus_utc() == 0 {
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M:%S %:z").to_string()
            }
        }
    }
}

/// `-1234567.50` → `-1,234,567.50`.
fn grouped(number: &str) -> String {
    let (sign, digits) = number
        .strip_prefix('-')
        .map_or(("", number), |rest| ("-", rest));
    let (whole, fraction) = digits
        .split_once('.')
        .map_or((digits, None), |(w, f)| (w, Some(f)));
    let mut out = String::with_capacity(number.len() + whole.len() / 3);
    out.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// Control characters (other than line breaks) drawn as spaces.
fn printable(c: char) -> char {
    if c.is_control() { ' ' } else { c }
}

/// `text` on one line of `room` points at `size`, cut with an ellipsis when it does not fit.
fn fit(font: &mut Font, text: &str, room: f32, size: f32) -> String {
    let text: String = text.chars().map(printable).collect();
    if font.width(&text, size) <= room {
        return text;
    }
    let mut out = String::new();
    let mut used = font.width("…", size);
    for c in text.chars() {
        used += font.width(c.encode_utf8(&mut [0; 4]), size);
        if used > room {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// `text` wrapped into at most `max` lines of `room` points: at spaces where it can, inside
/// a word where a word is wider than a line, with an ellipsis on the last line when cut.
fn wrap(font: &mut Font, text: &str, room: f32, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let space = font.width(" ", BODY);
    'paragraphs: for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut width = 0.0;
        for word in paragraph.split(' ') {
            let word: String = word.chars().map(printable).collect();
            let gap = if line.is_empty() { 0.0 } else { space };
            let word_width = font.width(&word, BODY);
            if width + gap + word_width <= room {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&word);
                width += gap + word_width;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                width = 0.0;
                if lines.len() > max {
                    break 'paragraphs;
                }
            }
            // A word wider than a line is broken where it has to be.
            for c in word.chars() {
                let w = font.width(c.encode_utf8(&mut [0; 4]), BODY);
                if width + w > room && !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    width = 0.0;
                    if lines.len() > max {
                        break 'paragraphs;
                    }
                }
                line.push(c);
                width += w;
            }
        }
        lines.push(line);
        if lines.len() > max {
            break;
        }
    }
    if lines.len() > max {
        lines.truncate(max);
        if let Some(last) = lines.last_mut() {
            *last = fit(font, &format!("{last}…"), room, BODY);
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped("-1234567.50"), "-1,234,567.50");
        assert_eq!(grouped("999"), "999");
        assert_eq!(grouped("1000"), "1,000");
        assert_eq!(grouped("0.0001"), "0.0001");
    }

    #[test]
    fn long_text_wraps_and_is_cut_with_an_ellipsis() -> io::Result<()> {
        let [regular, _] = faces()?;
        let mut font = Font::new(regular);
        let short = wrap(&mut font, "Acme Corp", 100.0, 4);
        assert_eq!(short, vec!["Acme Corp".to_string()]);
        let long = "word ".repeat(200);
        let lines = wrap(&mut font, &long, 100.0, 4);
        assert_eq!(lines.len(), 4);
        assert!(lines[3].ends_with('…'), "{lines:?}");
        for line in &lines {
            assert!(font.width(line, BODY) <= 100.5, "{line}");
        }
        let unbroken = wrap(&mut font, &"x".repeat(80), 50.0, 4);
        assert!(unbroken.len() > 1 && unbroken.len() <= 4, "{unbroken:?}");
        let two = wrap(&mut font, "first\nsecond", 100.0, 4);
        assert_eq!(two, vec!["first".to_string(), "second".to_string()]);
        Ok(())
    }

    #[test]
    fn the_unicode_map_covers_astral_characters() {
        let map = String::from_utf8(to_unicode(&[None, Some('A'), Some('😀')])).unwrap_or_default();
        assert!(map.contains("<0001> <0041>"), "{map}");
        assert!(map.contains("<0002> <D83DDE00>"), "{map}");
    }
}
