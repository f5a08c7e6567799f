//! Schema directives of the portal's own, composed into the supergraph.

#![allow(non_camel_case_types)]

/// The `@events` directive of an event-driven subscription field: each committed domain
/// event of the caller's tenant whose subject type is `subject` (and, when `types` is
/// given, whose type is one of them) and whose subject id — or, with `payload`, that
/// payload field — equals the field's `argument` yields the subject: the field's type is
/// an entity keyed by `id`, and the event's subject id is that key. When the field opens,
/// the entity of type `check` (default: the field's type) keyed by the argument must be
/// visible to the caller, else the field answers `NOT_FOUND`.
///
/// The directive is composed into the supergraph (`@composeDirective`), where the gateway
/// reads it: it follows such a field's events itself and completes each one with an
/// entity fetch as the subscriber (the entity resolver's row rule decides whether the
/// subscriber still sees the subject), so an idle subscription holds no stream in the
/// subgraph. The field's own resolver implements the same contract for direct clients.
#[async_graphql::TypeDirective(
    location = "FieldDefinition",
    composable = "https://portal.example/events/v1.0"
)]
pub fn events(
    subject: String,
    argument: String,
    payload: Option<String>,
    types: Option<Vec<String>>,
    check: Option<String>,
) {
}
