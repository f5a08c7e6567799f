//! The client-facing error vocabulary and its mapping onto GraphQL errors.
//!
//! Every error a client sees carries `extensions.code` from [`ErrorCode`]. Anything that is
//! not a deliberate client error is reported as `INTERNAL` with a fixed message and logged
//! server-side; [`MaskInternalErrors`] enforces that centrally, so a resolver that leaks a
//! raw error by accident still leaks nothing.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{ErrorExtensions, Response};
use sea_orm::{DbErr, SqlErr};

/// Stable error codes, documented in `docs/api.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid credentials were presented.
    Unauthenticated,
    /// The caller is known but may not do this.
    Forbidden,
    /// The object does not exist (or is invisible to this caller).
    NotFound,
    /// An argument failed validation.
    BadUserInput,
    /// The change conflicts with existing state (e.g. a duplicate).
    Conflict,
    /// Too many requests.
    RateLimited,
    /// A sensitive operation needs a second factor confirmed on this session recently.
    StepUpRequired,
    /// A subscriber fell too far behind its events: the stream ended; resubscribe and
    /// refetch what it shows.
    SlowConsumer,
    /// A server-side failure; details are only in the logs.
    Internal,
}

impl ErrorCode {
    /// The wire form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::StepUpRequired => "STEP_UP_REQUIRED",
            Self::SlowConsumer => "SLOW_CONSUMER",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error a resolver returns; converted to a GraphQL error only at the edge.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type into an error
/// *without* a code, so `?` on an `ApiError` must go through the `From` impl below instead.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// See [`ErrorCode::Unauthenticated`].
    Unauthenticated,
    /// See [`ErrorCode::Forbidden`].
    Forbidden,
    /// See [`ErrorCode::NotFound`]; names the kind of object.
    NotFound(&'static str),
    /// See [`ErrorCode::BadUserInput`]; names the offending input field.
    BadUserInput {
        /// The input field, in the client's spelling (`input.currency`).
        field: &'static str,
        /// What is wrong with it, safe to show.
        message: String,
    },
    /// See [`ErrorCode::Conflict`].
    Conflict(String),
    /// `UNAUTHENTICATED` with a message safe to show (e.g. "invalid email or password").
    AuthenticationFailed(&'static str),
    /// See [`ErrorCode::RateLimited`].
    RateLimited,
    /// See [`ErrorCode::StepUpRequired`].
    StepUpRequired,
    /// See [`ErrorCode::SlowConsumer`].
    SlowConsumer,
    /// See [`ErrorCode::Internal`]. The source is logged, never shown.
    Internal(Arc<dyn std::error::Error + Send + Sync>),
}

/// Result alias for resolver and domain code.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A `BAD_USER_INPUT` error about `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            field,
            message: message.into(),
        }
    }

    /// An internal error with a log-only description (never shown to clients).
    pub fn internal(description: impl Into<String>) -> Self {
        let description: Box<dyn std::error::Error + Send + Sync> = description.into().into();
        Self::Internal(Arc::from(description))
    }

    /// Maps a database error with intent: unique violations are conflicts, a missing row is
    /// not-found, anything else is internal.
    pub fn from_db(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                return Self::Conflict("an object with these values already exists".into());
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                return Self::Conflict("a referenced object does not exist".into());
            }
            _ => {}
        }
        match err {
            DbErr::RecordNotFound(_) => Self::NotFound("record"),
            other => Self::Internal(Arc::new(other)),
        }
    }

    /// The message shown to clients: never the text of an internal source error.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated => "authentication required".into(),
            Self::Forbidden => "not allowed".into(),
            Self::NotFound(what) => format!("{what} not found"),
            Self::BadUserInput { field, message } => format!("invalid `{field}`: {message}"),
            Self::Conflict(message) => message.clone(),
            Self::AuthenticationFailed(message) => (*message).into(),
            Self::RateLimited => "too many attempts; try again later".into(),
            Self::StepUpRequired => {
                "confirm with your second factor first (stepUp); enrol one if you have none".into()
            }
            Self::SlowConsumer => {
                "the subscriber fell behind and events were missed: subscribe again and refetch"
                    .into()
            }
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadUserInput { .. } => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::AuthenticationFailed(_) => ErrorCode::Unauthenticated,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::StepUpRequired => ErrorCode::StepUpRequired,
            Self::SlowConsumer => ErrorCode::SlowConsumer,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal(source) = &err {
            tracing::error!(error = %source, "internal error in resolver");
        }
        let code = err.code();
        let field = match &err {
            ApiError::BadUserInput { field, .. } => Some(*field),
            _ => None,
        };
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code.as_str());
            if let Some(field) = field {
                ext.set("field", field);
            }
        })
    }
}

/// Schema extension that replaces every execution error lacking a `code` by a generic
/// `INTERNAL` error, logging the original. Parse and validation errors pass untouched.
pub struct MaskInternalErrors;

impl ExtensionFactory for MaskInternalErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MaskInternalErrorsExtension)
    }
}

struct MaskInternalErrorsExtension;

#[async_trait::async_trait]
impl Extension for MaskInternalErrorsExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for error in &mut response.errors {
            let has_code = error
                .extensions
                .as_ref()
                .is_some_and(|ext| ext.get("code").is_some());
            if !has_code && error.message.starts_with("Failed to parse \"") {
                // A scalar the client sent that its type refused: the client's mistake.
                // (Arguments the resolver parses itself name their field; see `scalars`.)
                tracing::debug!(message = %error.message, "argument refused by its scalar type");
                let field = error
                    .path
                    .last()
                    .map(|segment| match segment {
                        async_graphql::PathSegment::Field(name) => name.clone(),
                        async_graphql::PathSegment::Index(i) => i.to_string(),
                    })
                    .unwrap_or_default();
                let scalar = error.message["Failed to parse \"".len()..]
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                error.message = format!("invalid `{field}` argument: not a valid {scalar}");
                let extensions = error.extensions.get_or_insert_with(Default::default);
                extensions.set("code", ErrorCode::BadUserInput.as_str());
                extensions.set("field", field);
            } else if !has_code {
                tracing::error!(message = %error.message, path = ?error.path, "unclassified error masked");
                error.message = "internal error".into();
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", ErrorCode::Internal.as_str());
            }
        }
        response
    }
}
