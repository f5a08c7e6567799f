//! GraphQL request and response wire types shared by the pipeline stages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client's GraphQL request (GraphQL over HTTP).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The document (empty when a persisted query is asked for by hash only).
    #[serde(default)]
    pub query: String,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions (`persistedQuery` is understood; others are ignored).
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

/// One segment of a response path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A source location in the request document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A GraphQL error as sent to clients (and as received from subgraphs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphQLError {
    /// Human-readable, client-safe message.
    pub message: String,
    /// Where in the document the error applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Where in the response the error applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathSegment>>,
    /// `code` and other machine-readable facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Box<Map<String, Value>>>,
}

impl GraphQLError {
    /// An error with a stable `code`.
    pub fn new(message: impl Into<String>, code: &str) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".into(), Value::String(code.to_owned()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions: Some(Box::new(extensions)),
        }
    }

    /// The same error at `path`.
    pub fn at(mut self, path: Vec<PathSegment>) -> Self {
        self.path = Some(path);
        self
    }

    /// Adds an extension entry.
    pub fn with_extension(mut self, key: &str, value: Value) -> Self {
        self.extensions
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
        self
    }

    /// Sets where in the response the error applies.
    pub fn with_path(mut self, path: Vec<PathSegment>) -> Self {
        self.path = Some(path);
        self
    }

    /// The `extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

/// A GraphQL response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Errors, omitted when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphQLError>,
    /// The data; absent when the request failed before execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl Response {
    /// A response that failed before execution: errors, no `data`.
    pub fn request_error(error: GraphQLError) -> Self {
        Self {
            errors: vec![error],
            data: None,
        }
    }
}
