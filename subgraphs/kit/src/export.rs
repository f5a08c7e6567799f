//! Tabular exports: rows of typed cells written as CSV, XLSX or JSON into a file, one row
//! at a time, so an export of any length needs the memory of one row (XLSX: of one row
//! and the workbook's shared strings — none, cells are written inline).
//!
//! - **CSV**: RFC 4180 (comma, `"` quoting when needed, CRLF line ends), a header row of
//!   column keys, UTF-8. Text cells that a spreadsheet would run as a formula (starting
//!   with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'` (OWASP's CSV
//!   injection advice); numbers are written as numbers, so a negative amount stays `-5.25`.
//! - **XLSX**: real typed cells — decimals as numbers with a number format, dates and
//!   times as Excel dates with a date format (times in UTC unless the column carries an
//!   offset), text as inline strings; a bold, frozen header row. A sheet holds at most
//!   1 048 575 data rows: longer exports continue on the next sheet, header repeated.
//! - **JSON**: an array of objects keyed by column; decimals as strings (exact), integers
//!   as numbers, dates `YYYY-MM-DD`, times RFC 3339, empty cells `null`.
//! - **PDF**: a paginated table for reading and printing, written page by page (see
//!   [`pdf`]): a title, the header repeated on every page, page numbers, embedded fonts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

mod pdf;

/// A file format of exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Format {
    /// Comma-separated values (RFC 4180).
    Csv,
    /// Office Open XML workbook.
    Xlsx,
    /// A JSON array of objects.
    Json,
    /// Newline-delimited JSON: one object per line (read as a stream, however large).
    Ndjson,
    /// A paginated PDF table.
    Pdf,
}

impl Format {
    /// As stored: `CSV`, `XLSX`, `JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::Xlsx => "XLSX",
            Self::Json => "JSON",
            Self::Ndjson => "NDJSON",
            Self::Pdf => "PDF",
        }
    }

    /// From the stored form (`JSON` for anything unknown is never needed: rows are ours).
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "CSV" => Some(Self::Csv),
            "XLSX" => Some(Self::Xlsx),
            "JSON" => Some(Self::Json),
            "NDJSON" => Some(Self::Ndjson),
            "PDF" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// The media type of files in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Pdf => "application/pdf",
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Pdf => "pdf",
        }
    }
}

/// What a column holds (decides the XLSX cell type and format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Text.
    Text,
    /// An exact decimal (money, quantities).
    Decimal,
    /// A whole number.
    Integer,
    /// A calendar date.
    Date,
    /// An instant.
    Time,
}

/// One column: its key (header and JSON member name) and kind.
#[derive(Clone, Debug)]
pub struct Column {
    /// Header text and JSON key.
    pub key: std::borrow::Cow<'static, str>,
    /// What its cells hold.
    pub kind: CellKind,
}

impl Column {
    /// A column `key` of `kind`.
    pub const fn new(key: &'static str, kind: CellKind) -> Self {
        Self {
            key: std::borrow::Cow::Borrowed(key),
            kind,
        }
    }

    /// A column whose header is known at run time (a report's labels).
    pub fn named(key: String, kind: CellKind) -> Self {
        Self {
            key: std::borrow::Cow::Owned(key),
            kind,
        }
    }
}

/// One cell value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// No value.
    Empty,
    /// Text.
    Text(String),
    /// An exact decimal.
    Decimal(Decimal),
    /// A whole number.
    Integer(i64),
    /// A date.
    Date(NaiveDate),
    /// An instant, with the offset it is shown in.
    Time(DateTime<FixedOffset>),
}

impl Cell {
    /// Its value as text for an API (not a spreadsheet: no formula guard): decimals
    /// normalized, dates `YYYY-MM-DD`, times RFC 3339; `None` when empty.
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Empty => None,
            Self::Text(text) => Some(text.clone()),
            Self::Decimal(value) => Some(value.normalize().to_string()),
            Self::Integer(value) => Some(value.to_string()),
            Self::Date(date) => Some(date.format("%Y-%m-%d").to_string()),
            Self::Time(at) => Some(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl From<Option<String>> for Cell {
    fn from(value: Option<String>) -> Self {
        value.map_or(Self::Empty, Self::Text)
    }
}

/// What a document says above its table (PDF; the other formats carry only the table).
#[derive(Clone, Debug, Default)]
pub struct Heading {
    /// The title, also the document's metadata title.
    pub title: String,
    /// A line under the title (when and for whom it was made, say).
    pub subtitle: Option<String>,
}

/// A PDF document of several parts — sections (a title and `label: value` facts, each on
/// a new page), tables (header repeated on every page they run onto) and lines of text —
/// written page by page like a table export (statements, for instance).
pub struct PdfDocument {
    pdf: pdf::PdfTable,
}

impl PdfDocument {
    /// Starts the document at `path` (created; must not exist), A4 portrait.
    pub fn create(path: &Path, heading: Heading) -> io::Result<Self> {
        Ok(Self {
            pdf: pdf::PdfTable::open(create_new(path)?, heading, false)?,
        })
    }

    /// Starts a section on a new page (unless the current one is still empty).
    pub fn section(&mut self, title: &str, facts: &[(String, String)]) -> io::Result<()> {
        self.pdf.section(title, facts)
    }

    /// Starts a table of `columns`; [`PdfDocument::row`] adds its rows.
    pub fn table(&mut self, columns: &[Column]) -> io::Result<()> {
        self.pdf.begin_table(columns)
    }

    /// A row of the current table (one cell per column).
    pub fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        self.pdf.row(cells)
    }

    /// Ends the current table.
    pub fn end_table(&mut self) {
        self.pdf.end_table();
    }

    /// A line of text.
    pub fn line(&mut self, text: &str, bold: bool) -> io::Result<()> {
        self.pdf.line(text, bold)
    }

    /// Finishes the file (flushed and synced).
    pub fn finish(self) -> io::Result<()> {
        self.pdf.finish()
    }
}

/// Writes rows of one table into a file in one [`Format`].
pub struct TableWriter {
    inner: Inner,
    columns: Vec<Column>,
    rows: u64,
}

enum Inner {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Json {
        out: BufWriter<File>,
        first: bool,
        /// One object per line (NDJSON) rather than an array.
        lines: bool,
    },
    Xlsx(Box<Xlsx>),
    Pdf(Box<pdf::PdfTable>),
}

struct Xlsx {
    workbook: rust_xlsxwriter::Workbook,
    sheet: usize,
    row: u32,
    path: std::path::PathBuf,
    header: rust_xlsxwriter::Format,
    decimal: rust_xlsxwriter::Format,
    date: rust_xlsxwriter::Format,
    time: rust_xlsxwriter::Format,
}

/// Rows per XLSX sheet after the header (Excel's limit is 1 048 576 rows).
const XLSX_ROWS_PER_SHEET: u32 = 1_048_575;

fn xlsx_error(err: rust_xlsxwriter::XlsxError) -> io::Error {
    io::Error::other(err.to_string())
}

impl TableWriter {
    /// Starts a table with `columns` in `format` at `path` (created; must not exist) and
    /// writes the header.
    pub fn create(format: Format, path: &Path, columns: &[Column]) -> io::Result<Self> {
        let heading = Heading {
            title: "Export".into(),
            subtitle: None,
        };
        Self::create_with(format, path, columns, heading)
    }

    /// As [`TableWriter::create`], with a title for the formats that show one.
    pub fn create_with(
        format: Format,
        path: &Path,
        columns: &[Column],
        heading: Heading,
    ) -> io::Result<Self> {
        let inner = match format {
            Format::Pdf => Inner::Pdf(Box::new(pdf::PdfTable::create(
                create_new(path)?,
                columns,
                heading,
            )?)),
            Format::Csv => {
                let file = create_new(path)?;
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(BufWriter::with_capacity(64 * 1024, file));
                writer.write_record(columns.iter().map(|c| c.key.as_ref()))?;
                Inner::Csv(Box::new(writer))
            }
            Format::Json | Format::Ndjson => {
                let lines = format == Format::Ndjson;
                let mut out = BufWriter::with_capacity(64 * 1024, create_new(path)?);
                if !lines {
                    out.write_all(b"[")?;
                }
                Inner::Json {
                    out,
                    first: true,
                    lines,
                }
            }
            Format::Xlsx => {
                // The workbook writes the file at the end; claim the name now.
                drop(create_new(path)?);
                let mut workbook = rust_xlsxwriter::Workbook::new();
                // Its constant-memory temporary files go next to the file (private scratch
                // space), not to the system's temporary directory (often RAM).
                if let Some(dir) = path.parent() {
                    workbook.set_tempdir(dir).map_err(xlsx_error)?;
                }
                let mut xlsx = Xlsx {
                    workbook,
                    sheet: 0,
                    row: 0,
                    path: path.to_owned(),
                    header: rust_xlsxwriter::Format::new().set_bold(),
                    decimal: rust_xlsxwriter::Format::new().set_num_format("#,##0.00##"),
                    date: rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd"),
                    time: rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                };
                xlsx.add_sheet(columns)?;
                Inner::Xlsx(Box::new(xlsx))
            }
        };
        Ok(Self {
            inner,
            columns: columns.to_vec(),
            rows: 0,
        })
    }

    /// Appends one row (one cell per column, in column order).
    pub fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        if cells.len() != self.columns.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a row must have one cell per column",
            ));
        }
        match &mut self.inner {
            Inner::Csv(writer) => {
                writer.write_record(cells.iter().map(csv_field))?;
            }
            Inner::Json { out, first, lines } => {
                if !*first && !*lines {
                    out.write_all(b",")?;
                }
                *first = false;
                let mut object = serde_json::Map::with_capacity(cells.len());
                for (column, cell) in self.columns.iter().zip(cells) {
                    object.insert(column.key.to_string(), json_value(cell));
                }
                if *lines {
                    serde_json::to_writer(&mut *out, &object)?;
                    out.write_all(b"\n")?;
                } else {
                    out.write_all(b"\n")?;
                    serde_json::to_writer(&mut *out, &object)?;
                }
            }
            Inner::Xlsx(xlsx) => {
                if xlsx.row > XLSX_ROWS_PER_SHEET {
                    let columns = self.columns.clone();
                    xlsx.add_sheet(&columns)?;
                }
                xlsx.write_row(cells)?;
            }
            Inner::Pdf(pdf) => pdf.row(cells)?,
        }
        self.rows += 1;
        Ok(())
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes the file (flushed and synced); returns the number of data rows.
    pub fn finish(self) -> io::Result<u64> {
        match self.inner {
            Inner::Csv(writer) => {
                let out = writer.into_inner().map_err(|err| err.into_error())?;
                finish_file(out)?;
            }
            Inner::Json { mut out, lines, .. } => {
                if !lines {
                    out.write_all(b"\n]\n")?;
                }
                finish_file(out)?;
            }
            Inner::Xlsx(mut xlsx) => {
                let path = xlsx.path.clone();
                xlsx.workbook.save(&path).map_err(xlsx_error)?;
                File::open(&path)?.sync_all()?;
            }
            Inner::Pdf(pdf) => pdf.finish()?,
        }
        Ok(self.rows)
    }
}

impl Xlsx {
    fn add_sheet(&mut self, columns: &[Column]) -> io::Result<()> {
        let sheet = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_error)?;
        sheet
            .set_name(format!("Data {}", self.sheet + 1))
            .map_err(xlsx_error)?;
        sheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        for (col, column) in columns.iter().enumerate() {
            let col = u16::try_from(col).map_err(|_| io::Error::other("too many columns"))?;
            let width = match column.kind {
                CellKind::Time => 20.0,
                CellKind::Text => 24.0,
                _ => 14.0,
            };
            sheet.set_column_width(col, width).map_err(xlsx_error)?;
            sheet
                .write_string_with_format(0, col, column.key.as_ref(), &self.header)
                .map_err(xlsx_error)?;
        }
        self.sheet += 1;
        self.row = 1;
        Ok(())
    }

    fn write_row(&mut self, cells: &[Cell]) -> io::Result<()> {
        let row = self.row;
        let sheet = self
            .workbook
            .worksheet_from_index(self.sheet - 1)
            .map_err(xlsx_error)?;
        for (col, cell) in cells.iter().enumerate() {
            let col = u16::try_from(col).map_err(|_| io::Error::other("too many columns"))?;
            match cell {
                Cell::Empty => Ok(&mut *sheet),
                Cell::Text(text) => sheet.write_string(row, col, text),
                Cell::Decimal(value) => sheet.write_number_with_format(
                    row,
                    col,
                    value.to_f64().unwrap_or(f64::NAN),
                    &self.decimal,
                ),
                // Integers beyond 2^53 lose precision in Excel's doubles; counts never get there.
                Cell::Integer(value) => sheet.write_number(row, col, *value as f64),
                Cell::Date(date) => sheet.write_datetime_with_format(row, col, date, &self.date),
                Cell::Time(at) => {
                    sheet.write_datetime_with_format(row, col, at.naive_local(), &self.time)
                }
            }
            .map_err(xlsx_error)?;
        }
        self.row += 1;
        Ok(())
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn finish_file(out: BufWriter<File>) -> io::Result<()> {
    let file = out.into_inner().map_err(|err| err.into_error())?;
    file.sync_all()
}

/// Characters that make a spreadsheet treat a cell as a formula.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text` made safe for a spreadsheet: prefixed with `'` when it would start a formula.
pub fn formula_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(FORMULA_TRIGGERS) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

fn csv_field(cell: &Cell) -> String {
    match cell {
        Cell::Empty => String::new(),
        Cell::Text(text) => formula_safe(text).into_owned(),
        Cell::Decimal(value) => value.normalize().to_string(),
        Cell::Integer(value) => value.to_string(),
        Cell::Date(date) => date.format("%Y-%m-%d").to_string(),
        Cell::Time(at) => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

fn json_value(cell: &Cell) -> serde_json::Value {
    use serde_json::Value;
    match cell {
        Cell::Empty => Value::Null,
        Cell::Text(text) => Value::String(text.clone()),
        Cell::Decimal(value) => Value::String(value.normalize().to_string()),
        Cell::Integer(value) => Value::from(*value),
        Cell::Date(date) => Value::String(date.format("%Y-%m-%d").to_string()),
        Cell::Time(at) => Value::String(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<Column> {
        vec![
            Column::new("name", CellKind::Text),
            Column::new("amount", CellKind::Decimal),
            Column::new("count", CellKind::Integer),
            Column::new("due", CellKind::Date),
            Column::new("at", CellKind::Time),
        ]
    }

    fn row(name: &str) -> Vec<Cell> {
        let at = DateTime::parse_from_rfc3339("2026-03-29T01:30:00+01:00").ok();
        vec![
            Cell::Text(name.into()),
            Cell::Decimal(Decimal::new(-12_5000, 4)),
            Cell::Integer(7),
            NaiveDate::from_ymd_opt(2026, 2, 28).map_or(Cell::Empty, Cell::Date),
            at.map_or(Cell::Empty, Cell::Time),
        ]
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("portal-export-{}-{name}", uuid::Uuid::now_v7()))
    }

    #[test]
    fn csv_is_rfc4180_and_formula_safe() -> io::Result<()> {
        let path = temp("t.csv");
        let mut table = TableWriter::create(Format::Csv, &path, &columns())?;
        table.row(&row("=HYPERLINK(\"http://evil\")"))?;
        table.row(&row("plain, with \"quotes\"\nand a line"))?;
        table.row(&row("@SUM(A1)"))?;
        for trigger in ["+1", "-1", "\tx", "\rx"] {
            table.row(&row(trigger))?;
        }
        assert_eq!(table.finish()?, 7);
        let text = std::fs::read_to_string(&path)?;
        std::fs::remove_file(&path)?;
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "name,amount,count,due,at");
        assert_eq!(
            lines[1],
            "\"'=HYPERLINK(\"\"http://evil\"\")\",-12.5,7,2026-02-28,2026-03-29T01:30:00+01:00"
        );
        assert!(lines[2].starts_with("\"plain, with \"\"quotes\"\"\nand a line\",-12.5"));
        assert!(lines[3].starts_with("'@SUM(A1),"));
        assert!(lines[4].starts_with("'+1,"));
        assert!(lines[5].starts_with("'-1,"));
        assert!(lines[6].starts_with("'\tx,"));
        assert!(lines[7].starts_with("\"'\rx\","), "{}", lines[7]);
        Ok(())
    }

    #[test]
    fn json_keeps_decimals_exact() -> io::Result<()> {
        let path = temp("t.json");
        let mut table = TableWriter::create(Format::Json, &path, &columns())?;
        table.row(&row("a"))?;
        table.row(&[
            Cell::Empty,
            Cell::Decimal(Decimal::new(1, 4)),
            Cell::Integer(0),
            Cell::Empty,
            Cell::Empty,
        ])?;
        assert_eq!(table.finish()?, 2);
        let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        std::fs::remove_file(&path)?;
        assert_eq!(parsed[0]["amount"], "-12.5");
        assert_eq!(parsed[0]["due"], "2026-02-28");
        assert_eq!(parsed[1]["amount"], "0.0001");
        assert_eq!(parsed[1]["name"], serde_json::Value::Null);
        Ok(())
    }

    #[test]
    fn ndjson_is_one_object_per_line() -> io::Result<()> {
        let path = temp("t.ndjson");
        let mut table = TableWriter::create(Format::Ndjson, &path, &columns())?;
        table.row(&row("a"))?;
        table.row(&row("b"))?;
        assert_eq!(table.finish()?, 2);
        let text = std::fs::read_to_string(&path)?;
        std::fs::remove_file(&path)?;
        assert!(text.ends_with("}\n"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["amount"], "-12.5");
        Ok(())
    }

    /// The text `pdftotext` reads from `path` (layout kept), or `None` where poppler-utils
    /// is not installed and not required (`PORTAL_TEST_PDF_REQUIRED`, set by CI).
    pub(crate) fn pdftotext(path: &Path) -> Option<String> {
        match std::process::Command::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8"])
            .arg(path)
            .arg("-")
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "pdftotext: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Err(err) => {
                assert!(
                    std::env::var_os("PORTAL_TEST_PDF_REQUIRED").is_none(),
                    "pdftotext (poppler-utils) is required here: {err}"
                );
                eprintln!("skipping the PDF read-back: pdftotext is not installed ({err})");
                None
            }
        }
    }

    #[test]
    fn pdf_pages_repeat_the_header_and_read_back() -> io::Result<()> {
        let path = temp("t.pdf");
        let heading = Heading {
            title: "Ledger — Ünïcode Straße".into(),
            subtitle: Some("Generated 2026-12-06 for Ada".into()),
        };
        let mut table = TableWriter::create_with(Format::Pdf, &path, &columns(), heading)?;
        for n in 0..300 {
            let mut cells = row(&format!(
                "Customer {n:03} with a name long enough to wrap in its column"
            ));
            cells[1] = Cell::Decimal(Decimal::new(123_456_789 + n, 2));
            table.row(&cells)?;
        }
        assert_eq!(table.finish()?, 300);
        let bytes = std::fs::read(&path)?;
        assert!(bytes.starts_with(b"%PDF-1.7"));
        assert!(bytes.ends_with(b"%%EOF\n"));
        // Subsets, not the whole 700 KB font.
        assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
        let Some(text) = pdftotext(&path) else {
            return std::fs::remove_file(&path);
        };
        if std::env::var_os("PORTAL_TEST_KEEP_PDF").is_none() {
            std::fs::remove_file(&path)?;
        }
        let pages: Vec<&str> = text
            .split('\u{c}')
            .filter(|p| !p.trim().is_empty())
            .collect();
        assert!(pages.len() > 3, "{} pages", pages.len());
        assert!(pages[0].contains("Ledger — Ünïcode Straße"), "{}", pages[0]);
        assert!(pages[0].contains("Generated 2026-12-06 for Ada"));
        for (n, page) in pages.iter().enumerate() {
            let squeezed = page.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                squeezed.contains("name amount count due at"),
                "page {n}: {page}"
            );
            assert!(
                squeezed.contains(&format!("Page {} of {}", n + 1, pages.len())),
                "page {n}: {squeezed}"
            );
        }
        let all = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(all.contains("Customer 000"), "{all}");
        assert!(all.contains("Customer 299"));
        assert!(all.contains("1,234,567.89"));
        assert!(all.contains("-12.5") || all.contains("1,234,570.88"));
        assert!(all.contains("2026-02-28"));
        assert!(all.contains("2026-03-29 01:30:00 +01:00"));
        Ok(())
    }

    #[test]
    fn pdf_documents_hold_sections_tables_and_lines() -> io::Result<()> {
        let path = temp("doc.pdf");
        let mut doc = PdfDocument::create(
            &path,
            Heading {
                title: "Statements".into(),
                subtitle: None,
            },
        )?;
        for account in ["ACME-0001", "ACME-0002"] {
            doc.section(
                &format!("Account {account}"),
                &[("Opening balance".into(), "1,000.00".into())],
            )?;
            doc.table(&columns())?;
            for n in 0..70 {
                doc.row(&row(&format!("{account} entry {n}")))?;
            }
            doc.end_table();
            doc.line("Closing balance: 125.00", true)?;
        }
        doc.finish()?;
        let text = pdftotext(&path);
        std::fs::remove_file(&path)?;
        let Some(text) = text else { return Ok(()) };
        let pages: Vec<&str> = text
            .split('\u{c}')
            .filter(|p| !p.trim().is_empty())
            .collect();
        // Each account starts a page; its table runs onto a second with its header.
        assert_eq!(pages.len(), 4, "{text}");
        assert!(
            pages[0].contains("Account ACME-0001")
                && pages[0].contains("Opening balance: 1,000.00")
        );
        assert!(pages[2].contains("Account ACME-0002"), "{}", pages[2]);
        for page in &pages {
            let squeezed = page.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(squeezed.contains("name amount count due at"), "{squeezed}");
        }
        assert!(
            pages[1].contains("Closing balance: 125.00") && pages[3].contains("Closing balance")
        );
        assert!(!text.contains("No rows."));
        Ok(())
    }

    #[test]
    fn an_empty_pdf_says_so() -> io::Result<()> {
        let path = temp("empty.pdf");
        let table = TableWriter::create(Format::Pdf, &path, &columns())?;
        assert_eq!(table.finish()?, 0);
        let text = pdftotext(&path);
        std::fs::remove_file(&path)?;
        if let Some(text) = text {
            assert!(text.contains("No rows."), "{text}");
            assert!(text.contains("Page 1 of 1"), "{text}");
        }
        Ok(())
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused() -> io::Result<()> {
        let path = temp("t.csv");
        let mut table = TableWriter::create(Format::Csv, &path, &columns())?;
        assert!(table.row(&[Cell::Empty]).is_err());
        table.finish()?;
        std::fs::remove_file(&path)
    }
}
