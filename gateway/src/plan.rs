//! Planning: a validated operation becomes a query plan; prepared operations and their
//! plans are cached per document.
//!
//! Root introspection fields (`__schema`, `__type`) and a root `__typename` are answered
//! by the gateway itself, so they are removed before planning; an operation made only of
//! them needs no plan at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use graphql_tools::static_graphql::query::{
    Definition, Document, FragmentDefinition, InlineFragment, OperationDefinition, Selection,
    SelectionSet,
};
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::Planner;
use hive_router_query_planner::planner::plan_nodes::QueryPlan;
use hive_router_query_planner::utils::cancellation::CancellationToken;
use parking_lot::Mutex;

use crate::overrides::Variant;
use crate::request::PreparedOperation;
use crate::response::GraphQLError;

/// How long planning one operation may take.
pub(crate) const PLANNING_TIMEOUT: Duration = Duration::from_secs(10);

/// A prepared (parsed, limit-checked, validated) operation and its plan: everything about
/// a request that depends only on its document and the supergraph.
pub struct CachedOperation {
    /// The validated operation.
    pub prepared: PreparedOperation,
    /// Its query plan (for the override variant `variant`).
    pub plan: Arc<QueryPlan>,
    /// The progressive-override variant `plan` was made for.
    pub variant: Variant,
    /// Plans for the other override variants the operation met.
    pub variants: Mutex<HashMap<Variant, Arc<QueryPlan>>>,
    /// The field coordinates it uses (parent type as written), for authorization.
    pub coordinates: std::collections::BTreeSet<(String, String)>,
    /// Plans of the operation without denied fields, by the denied coordinates and the
    /// override variant.
    pub filtered: Mutex<HashMap<FilteredKey, Arc<QueryPlan>>>,
}

/// What a filtered plan depends on: the denied coordinates and the override variant.
pub type FilteredKey = (Vec<crate::authz::Coordinate>, Variant);

/// Documents larger than this are prepared per request, never cached (a cache of huge
/// documents would be a memory amplifier).
const MAX_CACHED_DOCUMENT_BYTES: usize = 64 * 1024;

/// Cache key: SHA-256 of the document and the operation name (the text is not kept).
type CacheKey = [u8; 32];

/// A bounded map from document to prepared operation and plan, so that a repeated
/// document skips parsing, validation and planning. When full, a tenth of the entries
/// (arbitrary ones) make room. Failures are not cached.
pub struct OperationCache {
    entries: Mutex<HashMap<CacheKey, Arc<CachedOperation>>>,
    capacity: usize,
}

impl OperationCache {
    /// A cache holding at most `capacity` operations.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn key(query: &str, operation_name: Option<&str>) -> CacheKey {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(query.as_bytes());
        hasher.update([0xff]);
        hasher.update(operation_name.unwrap_or_default().as_bytes());
        hasher.finalize().into()
    }

    /// The cached operation for `query`/`operation_name`, if any.
    pub fn get(&self, query: &str, operation_name: Option<&str>) -> Option<Arc<CachedOperation>> {
        if query.len() > MAX_CACHED_DOCUMENT_BYTES {
            return None;
        }
        self.entries
            .lock()
            .get(&Self::key(query, operation_name))
            .cloned()
    }

    /// Caches `operation` for `query`/`operation_name` (unless the document is too large).
    pub fn insert(
        &self,
        query: &str,
        operation_name: Option<&str>,
        operation: CachedOperation,
    ) -> Arc<CachedOperation> {
        let operation = Arc::new(operation);
        if query.len() > MAX_CACHED_DOCUMENT_BYTES {
            return operation;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            let evict: Vec<CacheKey> = entries
                .keys()
                .take((self.capacity / 10).max(1))
                .copied()
                .collect();
            for key in evict {
                entries.remove(&key);
            }
        }
        entries.insert(Self::key(query, operation_name), operation.clone());
        operation
    }
}

/// Whether `name` is a root field the gateway answers itself.
pub fn is_local_root_field(name: &str) -> bool {
    matches!(name, "__schema" | "__type" | "__typename")
}

/// The error of an operation the gateway could not plan (its own failure, logged).
pub fn planning_failed() -> GraphQLError {
    GraphQLError::new(
        "the operation could not be planned",
        "QUERY_PLANNING_FAILED",
    )
}

/// Plans `document`'s operation `operation_name` with the override labels `overrides`
/// makes active.
pub fn plan(
    planner: &Planner,
    document: &Document,
    operation_name: Option<&str>,
    overrides: PlannerOverrideContext,
) -> Result<Arc<QueryPlan>, GraphQLError> {
    let Some(document) = without_local_root_fields(document, operation_name) else {
        return Ok(Arc::new(QueryPlan {
            kind: "QueryPlan",
            node: None,
        }));
    };
    let normalized = normalize_operation(&planner.supergraph, &document, operation_name)
        .map_err(|err| GraphQLError::new(err.to_string(), "GRAPHQL_VALIDATION_FAILED"))?;
    let token = CancellationToken::with_timeout(PLANNING_TIMEOUT);
    let plan = planner
        .plan_from_normalized_operation(&normalized.operation, overrides, &token)
        .map_err(|err| {
            tracing::error!(error = %err, "query planning failed");
            planning_failed()
        })?;
    Ok(Arc::new(plan))
}

/// A copy of `document` without root fields the gateway answers itself, or `None` when
/// nothing would be left to plan.
fn without_local_root_fields(
    document: &Document,
    operation_name: Option<&str>,
) -> Option<Document> {
    let fragments: HashMap<String, FragmentDefinition> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.clone(), f.clone())),
            Definition::Operation(_) => None,
        })
        .collect();
    let mut copy = document.clone();
    let mut remaining = 0;
    for definition in &mut copy.definitions {
        let Definition::Operation(operation) = definition else {
            continue;
        };
        let (name, selection_set) = match operation {
            OperationDefinition::SelectionSet(s) => (None, s),
            OperationDefinition::Query(q) => (q.name.as_deref(), &mut q.selection_set),
            OperationDefinition::Mutation(m) => (m.name.as_deref(), &mut m.selection_set),
            OperationDefinition::Subscription(s) => (s.name.as_deref(), &mut s.selection_set),
        };
        if operation_name.is_some() && name != operation_name {
            continue;
        }
        remaining += strip_local_fields(selection_set, &fragments, 0);
    }
    (remaining > 0).then_some(copy)
}

/// Removes the gateway-answered fields from a root selection set, looking through root
/// inline fragments and fragment spreads (a spread becomes an inline fragment with the
/// fragment's own selections stripped). Returns how many fields remain.
fn strip_local_fields(
    selection_set: &mut SelectionSet,
    fragments: &HashMap<String, FragmentDefinition>,
    nesting: usize,
) -> usize {
    let mut remaining = 0;
    let items = std::mem::take(&mut selection_set.items);
    for selection in items {
        match selection {
            Selection::Field(field) => {
                if !is_local_root_field(&field.name) {
                    remaining += 1;
                    selection_set.items.push(Selection::Field(field));
                }
            }
            Selection::InlineFragment(mut inline) => {
                let kept = strip_local_fields(&mut inline.selection_set, fragments, nesting + 1);
                if kept > 0 {
                    remaining += kept;
                    selection_set.items.push(Selection::InlineFragment(inline));
                }
            }
            Selection::FragmentSpread(spread) => {
                // Validation has refused cycles and the limits deep chains; the bound is a
                // second guard against unbounded recursion.
                let Some(fragment) = fragments
                    .get(&spread.fragment_name)
                    .filter(|_| nesting < crate::limits::MAX_FRAGMENT_NESTING)
                else {
                    continue;
                };
                let mut inline = InlineFragment {
                    position: spread.position,
                    type_condition: Some(fragment.type_condition.clone()),
                    directives: spread.directives,
                    selection_set: fragment.selection_set.clone(),
                };
                let kept = strip_local_fields(&mut inline.selection_set, fragments, nesting + 1);
                if kept > 0 {
                    remaining += kept;
                    selection_set.items.push(Selection::InlineFragment(inline));
                }
            }
        }
    }
    remaining
}
