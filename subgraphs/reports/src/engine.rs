//! Producing a report: its query compiled against the supergraph of the day, its rows read
//! page by page *through the gateway as a principal* (so field policies, tenant isolation
//! and membership apply as in the UI; nothing here reads another domain's tables), and
//! written into a file in object storage.

use serde_json::{Map, Value, json};

use portal_kit::export::{CellKind, Column, Format, Heading, TableWriter};
use portal_kit::gateway_client::{GatewayClient, GraphError};
use portal_kit::storage::{FileStore, ScratchFile, Stored, object_key};
use portal_kit::{Actor, ApiError, RequestMeta};
use uuid::Uuid;

use crate::domain::kinds;
use crate::domain::query::{Compiled, ReportQuery, ValueKind, compile};
use crate::domain::rows::{Groups, cells};
use crate::domain::schema::SchemaView;
use crate::domain::{ReportFormat, ReportKind};

/// Rows asked for per page: larger than a client may ask for — the subgraphs allow it to
/// report runs (a worker's delegated credential) only.
pub const PAGE: u64 = portal_kit::pagination::REPORT_PAGE_SIZE;

/// Why a report could not be produced: what its requester is told, what admins see, and
/// whether trying again later may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Shown to everyone who may see the run.
    pub shown: String,
    /// The full reason (gateway errors with their paths), for admins.
    pub detail: String,
    /// Whether a later attempt may succeed (the gateway was unreachable).
    pub transient: bool,
    /// The fields the reader was refused (`FORBIDDEN`), by name.
    pub denied: Vec<String>,
}

impl Failure {
    /// The report file could not be written (scratch space, the writer): worth another try.
    pub(crate) fn writing(err: std::io::Error) -> Self {
        Self {
            shown: "the report file could not be written".into(),
            detail: err.to_string(),
            transient: true,
            denied: Vec::new(),
        }
    }

    /// A failure that trying again will not mend.
    pub(crate) fn permanent(shown: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            shown: shown.into(),
            detail: detail.into(),
            transient: false,
            denied: Vec::new(),
        }
    }

    /// The error for a caller reading for themselves (a check at save, a preview):
    /// `BAD_USER_INPUT` about `field` naming what they may not read or why the read
    /// failed; internal when the gateway could not be asked.
    pub fn for_caller(self, field: &'static str) -> ApiError {
        if self.transient {
            return ApiError::internal(self.detail);
        }
        if self.denied.is_empty() {
            return ApiError::invalid(field, self.shown);
        }
        tracing::info!(detail = %self.detail, "report read refused");
        ApiError::invalid(field, format!("you may not read {}", quoted(&self.denied)))
    }
}

fn quoted(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<&ApiError> for Failure {
    fn from(err: &ApiError) -> Self {
        match err {
            ApiError::BadUserInput { message, .. } => Self::permanent(
                format!("the report's query no longer fits the API: {message}"),
                message.clone(),
            ),
            ApiError::Internal(source) => Self {
                shown: "the report could not be produced (the gateway or the file store could not be reached)".into(),
                detail: source.to_string(),
                transient: true,
                denied: Vec::new(),
            },
            other => Self::permanent("the report could not be produced", format!("{other:?}")),
        }
    }
}

/// What a definition runs, compiled against the supergraph the gateway serves now.
pub async fn compile_now(
    gateway: &dyn GatewayClient,
    kind: ReportKind,
    saved: Option<ReportQuery>,
    account: Option<Uuid>,
    parameters: &Value,
) -> Result<Compiled, ApiError> {
    let query = kinds::query_of(kind, saved, account, parameters)?;
    let sdl = gateway.supergraph_sdl().await?;
    let schema = SchemaView::parse(&sdl)
        .ok_or_else(|| ApiError::internal("the gateway's supergraph SDL does not parse"))?;
    compile(&schema, &query)
}

/// The failure of a read the gateway answered with `errors`: the fields refused, named.
pub(crate) fn refusal(errors: &[GraphError]) -> Failure {
    let detail = errors
        .iter()
        .map(|e| {
            let path = e.path_text();
            let code = e.code().unwrap_or("ERROR");
            if path.is_empty() {
                format!("{code}: {}", e.message)
            } else {
                format!("{code} at {path}: {}", e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let denied = errors
        .iter()
        .filter(|e| e.code() == Some("FORBIDDEN"))
        .filter_map(|e| {
            e.path
                .as_ref()?
                .iter()
                .rev()
                .find_map(Value::as_str)
                .map(str::to_owned)
        })
        .collect::<Vec<_>>();
    let shown = if denied.is_empty() {
        "the data could not be read as the user the report runs as".to_owned()
    } else {
        format!(
            "the user the report runs as may not read {}",
            quoted(&denied)
        )
    };
    Failure {
        denied,
        ..Failure::permanent(shown, detail)
    }
}

/// Reads the rows of `compiled` through `gateway` as `actor`, at most `limit`, handing
/// each to `each`; how many were read. Any GraphQL error fails the read (a report never
/// leaves out what its reader may not see without saying so).
pub async fn read_rows(
    gateway: &dyn GatewayClient,
    actor: &Actor,
    meta: &RequestMeta,
    compiled: &Compiled,
    limit: u64,
    mut each: impl FnMut(&Value) -> Result<(), ApiError>,
) -> Result<u64, Failure> {
    let mut after = Value::Null;
    let mut read = 0u64;
    loop {
        let mut variables: Map<String, Value> = compiled.variables.clone();
        let first = PAGE.min(limit - read);
        variables.insert("first".into(), json!(first));
        variables.insert("after".into(), after.clone());
        let response = gateway
            .query(actor, meta, &compiled.document, variables)
            .await
            .map_err(|err| Failure::from(&err))?;
        if !response.errors.is_empty() {
            return Err(refusal(&response.errors));
        }
        let mut connection = response.data.as_ref().unwrap_or(&Value::Null);
        for field in &compiled.connection {
            connection = connection.get(field).unwrap_or(&Value::Null);
        }
        if connection.is_null() {
            return Err(Failure::permanent(
                "the report's dataset is not visible to its owner",
                format!("`{}` was null", compiled.connection.join(".")),
            ));
        }
        for edge in connection["edges"].as_array().into_iter().flatten() {
            each(&edge["node"]).map_err(|err| Failure::from(&err))?;
            read += 1;
            if read >= limit {
                return Ok(read);
            }
        }
        let page = &connection["pageInfo"];
        match page["endCursor"].as_str() {
            Some(cursor) if page["hasNextPage"] == json!(true) => {
                after = Value::String(cursor.to_owned());
            }
            _ => return Ok(read),
        }
    }
}

/// The export format of a report format.
pub fn table_format(format: ReportFormat) -> Format {
    match format {
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Xlsx => Format::Xlsx,
        ReportFormat::Json => Format::Json,
        ReportFormat::Ndjson => Format::Ndjson,
        ReportFormat::Pdf => Format::Pdf,
    }
}

fn columns(compiled: &Compiled) -> Vec<Column> {
    compiled
        .outputs
        .iter()
        .map(|output| {
            let kind = match output.kind {
                ValueKind::Text => CellKind::Text,
                ValueKind::Integer => CellKind::Integer,
                ValueKind::Decimal => CellKind::Decimal,
                ValueKind::Date => CellKind::Date,
                ValueKind::Time => CellKind::Time,
            };
            Column::named(output.label.clone(), kind)
        })
        .collect()
}

/// A produced file, stored but not yet recorded.
pub struct Produced {
    /// Where it is and its digest.
    pub stored: Stored,
    /// Rows in it (groups, for a grouped report).
    pub rows: u64,
}

/// Reads `compiled` as `actor` and writes it in `format` into the store under `file_id`.
pub async fn produce(
    gateway: &dyn GatewayClient,
    files: &FileStore,
    (actor, meta): (&Actor, &RequestMeta),
    compiled: &Compiled,
    (format, heading): (Format, Heading),
    (tenant_id, file_id): (Uuid, Uuid),
) -> Result<Produced, Failure> {
    let scratch: ScratchFile = files.scratch(format.extension());
    let writing = Failure::writing;
    let mut table = TableWriter::create_with(format, scratch.path(), &columns(compiled), heading)
        .map_err(writing)?;
    let limit = compiled.limit;
    if compiled.grouped {
        let mut groups = Groups::new(compiled);
        read_rows(gateway, actor, meta, compiled, limit, |row| groups.add(row)).await?;
        for row in groups.finish() {
            table.row(&row).map_err(writing)?;
        }
    } else {
        read_rows(gateway, actor, meta, compiled, limit, |row| {
            table
                .row(&cells(compiled, row))
                .map_err(|err| ApiError::internal(format!("writing a report row: {err}")))
        })
        .await?;
    }
    let rows = tokio::task::spawn_blocking(move || table.finish())
        .await
        .map_err(|err| writing(std::io::Error::other(err)))?
        .map_err(writing)?;
    let stored = files
        .put(&object_key("reports", tenant_id, file_id), scratch.path())
        .await
        .map_err(|err| Failure::from(&err))?;
    Ok(Produced { stored, rows })
}
