//! Executes a query plan: runs its fetches against subgraphs and merges their results
//! into one response tree (keyed by response keys, not yet in the client's shape; the
//! [`crate::project`] stage does that).
//!
//! Data lives behind a mutex that is only held to read inputs and to merge outputs, never
//! across an await, so `Parallel` branches really run concurrently.

use std::collections::HashMap;

use futures::future::{BoxFuture, join_all};
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet;
use hive_router_query_planner::planner::plan_nodes::{
    BatchFetchNode, FetchNode, FetchNodePathSegment, FetchRewrite, FlattenNodePathSegment, PlanNode,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::response::{GraphQLError, PathSegment};
use crate::schema::SchemaIndex;
use crate::subgraph::{
    Caller, SubgraphClients, SubgraphRequest, SubgraphResponse, SubgraphSettings,
};

/// Everything one plan execution needs.
pub struct Execution<'a> {
    index: &'a SchemaIndex,
    clients: &'a SubgraphClients,
    caller: &'a Caller,
    variables: &'a Map<String, Value>,
    settings: &'a SubgraphSettings,
    data: Mutex<Value>,
    errors: Mutex<Vec<GraphQLError>>,
    /// Output rewrites (key renames) and the objects they apply to. They run after the
    /// whole plan: renaming earlier could overwrite a key field a later fetch still needs
    /// (a client alias named like a key field).
    renames: Mutex<Vec<(Vec<PathSegment>, FetchRewrite)>>,
}

/// Where one entity sits in the data tree and which representation stands for it.
struct EntityTarget {
    path: Vec<PathSegment>,
    representation: usize,
}

impl<'a> Execution<'a> {
    /// A fresh execution with empty data.
    pub fn new(
        index: &'a SchemaIndex,
        clients: &'a SubgraphClients,
        caller: &'a Caller,
        variables: &'a Map<String, Value>,
        settings: &'a SubgraphSettings,
    ) -> Self {
        Self {
            index,
            clients,
            caller,
            variables,
            settings,
            data: Mutex::new(Value::Object(Map::new())),
            errors: Mutex::new(Vec::new()),
            renames: Mutex::new(Vec::new()),
        }
    }

    /// Runs `node` and returns the merged data and the errors collected on the way.
    pub async fn run(self, node: Option<&PlanNode>) -> (Value, Vec<GraphQLError>) {
        if let Some(node) = node {
            self.node(node).await;
        }
        let mut data = self.data.into_inner();
        for (path, rewrite) in self.renames.into_inner() {
            if let Some(target) = get_mut(&mut data, &path) {
                apply_rewrite(self.index, target, &rewrite);
            }
        }
        (data, self.errors.into_inner())
    }

    fn node<'n>(&'n self, node: &'n PlanNode) -> BoxFuture<'n, ()> {
        Box::pin(async move {
            match node {
                PlanNode::Fetch(fetch) => self.root_fetch(fetch).await,
                PlanNode::Flatten(flatten) => match flatten.node.as_ref() {
                    PlanNode::Fetch(fetch) => {
                        self.entity_fetch(fetch, flatten.path.as_slice()).await;
                    }
                    other => self.node(other).await,
                },
                PlanNode::BatchFetch(batch) => self.batch_fetch(batch).await,
                PlanNode::Sequence(sequence) => {
                    for child in &sequence.nodes {
                        self.node(child).await;
                    }
                }
                PlanNode::Parallel(parallel) => {
                    join_all(parallel.nodes.iter().map(|child| self.node(child))).await;
                }
                PlanNode::Condition(condition) => {
                    let value = self
                        .variables
                        .get(&condition.condition)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let branch = if value {
                        condition.if_clause.as_deref()
                    } else {
                        condition.else_clause.as_deref()
                    };
                    if let Some(branch) = branch {
                        self.node(branch).await;
                    }
                }
                PlanNode::Subscription(subscription) => {
                    self.root_fetch(&subscription.primary).await;
                }
                PlanNode::Defer(defer) => {
                    // The planner never emits @defer plans; run everything eagerly if it does.
                    if let Some(primary) = defer.primary.node.as_deref() {
                        self.node(primary).await;
                    }
                    for deferred in &defer.deferred {
                        if let Some(node) = deferred.node.as_deref() {
                            self.node(node).await;
                        }
                    }
                }
            }
        })
    }

    fn forwarded_variables(
        &self,
        usages: Option<&std::collections::BTreeSet<String>>,
    ) -> Map<String, Value> {
        forwarded(self.variables, usages)
    }

    /// Runs `rest` of a subscription's plan for one `event` its primary fetch streamed,
    /// and returns the merged data and the errors collected on the way.
    pub async fn run_event(
        self,
        primary: &FetchNode,
        event: SubgraphResponse,
        rest: &[&PlanNode],
    ) -> (Value, Vec<GraphQLError>) {
        self.merge_root(primary, event);
        for node in rest {
            self.node(node).await;
        }
        self.run(None).await
    }

    async fn root_fetch(&self, fetch: &FetchNode) {
        let request = root_request(fetch, self.variables);
        let Some(response) = self.call(&fetch.service_name, request).await else {
            return;
        };
        self.merge_root(fetch, response);
    }

    fn merge_root(&self, fetch: &FetchNode, response: SubgraphResponse) {
        let mut errors = Vec::new();
        for error in response.errors {
            errors.push(self.subgraph_error(error, &fetch.service_name, None));
        }
        self.errors.lock().extend(errors);
        if let Some(data) = response.data {
            let renames = fetch
                .output_rewrites
                .iter()
                .flatten()
                .map(|r| (Vec::new(), r.clone()));
            self.renames.lock().extend(renames);
            deep_merge(self.index, &mut self.data.lock(), data);
        }
    }

    async fn entity_fetch(&self, fetch: &FetchNode, path: &[FlattenNodePathSegment]) {
        let Some(requires) = fetch.requires.as_ref() else {
            // A fetch under Flatten without requires has nothing to send.
            return;
        };
        let (representations, targets) = {
            let data = self.data.lock();
            self.collect_representations(&data, &[path], requires, fetch.input_rewrites.as_deref())
        };
        if representations.is_empty() {
            return;
        }
        let mut variables = self.forwarded_variables(fetch.variable_usages.as_ref());
        variables.insert("representations".into(), Value::Array(representations));
        let request = SubgraphRequest {
            query: fetch.operation.document_str.clone(),
            variables,
        };
        let Some(response) = self.call(&fetch.service_name, request).await else {
            return;
        };
        let entities = response
            .data
            .and_then(|mut data| data.get_mut("_entities").map(Value::take));
        self.merge_entities(
            entities,
            &targets,
            fetch.output_rewrites.as_deref(),
            response.errors,
            &fetch.service_name,
            "_entities",
        );
    }

    async fn batch_fetch(&self, batch: &BatchFetchNode) {
        let mut variables = self.forwarded_variables(batch.variable_usages.as_ref());
        let mut targets_by_alias = Vec::new();
        {
            let data = self.data.lock();
            for alias in &batch.entity_batch.aliases {
                let paths: Vec<&[FlattenNodePathSegment]> =
                    alias.merge_paths.iter().map(|p| p.as_slice()).collect();
                let (representations, targets) = self.collect_representations(
                    &data,
                    &paths,
                    &alias.requires,
                    alias.input_rewrites.as_deref(),
                );
                variables.insert(
                    alias.representations_variable_name.clone(),
                    Value::Array(representations),
                );
                targets_by_alias.push(targets);
            }
        }
        if targets_by_alias.iter().all(Vec::is_empty) {
            return;
        }
        let request = SubgraphRequest {
            query: batch.operation.document_str.clone(),
            variables,
        };
        let Some(response) = self.call(&batch.service_name, request).await else {
            return;
        };
        let mut data = response.data.unwrap_or(Value::Null);
        let mut errors = response.errors;
        for (alias, targets) in batch.entity_batch.aliases.iter().zip(&targets_by_alias) {
            let entities = data.get_mut(&alias.alias).map(Value::take);
            let (mine, rest): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| {
                matches!(e.path.as_deref(), Some([PathSegment::Key(k), ..]) if *k == alias.alias)
            });
            errors = rest;
            self.merge_entities(
                entities,
                targets,
                alias.output_rewrites.as_deref(),
                mine,
                &batch.service_name,
                &alias.alias,
            );
        }
        let leftover: Vec<_> = errors
            .into_iter()
            .map(|e| self.subgraph_error(e, &batch.service_name, None))
            .collect();
        self.errors.lock().extend(leftover);
    }

    /// Finds the entities at `paths`, projects each onto `requires` and de-duplicates
    /// the representations.
    fn collect_representations(
        &self,
        data: &Value,
        paths: &[&[FlattenNodePathSegment]],
        requires: &SelectionSet,
        input_rewrites: Option<&[FetchRewrite]>,
    ) -> (Vec<Value>, Vec<EntityTarget>) {
        let mut representations: Vec<Value> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut targets = Vec::new();
        for path in paths {
            let mut found = Vec::new();
            self.walk(data, path, &mut Vec::new(), &mut found);
            for (entity_path, entity) in found {
                let Some(mut representation) = self.project_requires(entity, requires) else {
                    continue;
                };
                for rewrite in input_rewrites.into_iter().flatten() {
                    apply_rewrite(self.index, &mut representation, rewrite);
                }
                let key = representation.to_string();
                let next = representations.len();
                let index = *seen.entry(key).or_insert(next);
                if index == next {
                    representations.push(representation);
                }
                targets.push(EntityTarget {
                    path: entity_path,
                    representation: index,
                });
            }
        }
        (representations, targets)
    }

    fn walk<'v>(
        &self,
        value: &'v Value,
        path: &[FlattenNodePathSegment],
        current: &mut Vec<PathSegment>,
        found: &mut Vec<(Vec<PathSegment>, &'v Value)>,
    ) {
        let Some((segment, rest)) = path.split_first() else {
            if value.is_object() {
                found.push((current.clone(), value));
            } else if let Value::Array(items) = value {
                // A list at the end of the path: every element is an entity.
                for (i, item) in items.iter().enumerate() {
                    current.push(PathSegment::Index(i));
                    self.walk(item, path, current, found);
                    current.pop();
                }
            }
            return;
        };
        match segment {
            FlattenNodePathSegment::Field(key) => {
                if let Some(child) = value.get(key).filter(|v| !v.is_null()) {
                    current.push(PathSegment::Key(key.clone()));
                    self.walk(child, rest, current, found);
                    current.pop();
                }
            }
            FlattenNodePathSegment::List => {
                if let Value::Array(items) = value {
                    for (i, item) in items.iter().enumerate() {
                        current.push(PathSegment::Index(i));
                        self.walk(item, rest, current, found);
                        current.pop();
                    }
                }
            }
            FlattenNodePathSegment::TypeCondition(types) => {
                let typename = value.get("__typename").and_then(Value::as_str);
                let applies = typename.is_none_or(|typename| {
                    types
                        .iter()
                        .any(|t| self.index.type_condition_applies(t, typename))
                });
                if applies {
                    self.walk(value, rest, current, found);
                }
            }
        }
    }

    /// The representation of `entity` for `requires`: `__typename` first, then the key and
    /// required fields. `None` when no fragment applies to the entity's type, or when a
    /// field it needs is missing (an earlier fetch could not provide it: the entity's key
    /// is unknown, and sending it anyway would fail the whole batch).
    fn project_requires(&self, entity: &Value, requires: &SelectionSet) -> Option<Value> {
        let object = entity.as_object()?;
        let typename = object.get("__typename").and_then(Value::as_str)?;
        let mut out = Map::new();
        out.insert("__typename".into(), Value::String(typename.to_owned()));
        let mut matched = false;
        let mut complete = true;
        for item in &requires.items {
            match item {
                SelectionItem::InlineFragment(fragment) => {
                    let applies = self
                        .index
                        .type_condition_applies(&fragment.type_condition, typename)
                        || self
                            .index
                            .type_condition_applies(typename, &fragment.type_condition);
                    if applies {
                        matched = true;
                        complete &= project_selection(object, &fragment.selections, &mut out);
                    }
                }
                SelectionItem::Field(_) => {
                    matched = true;
                    complete &= project_selection(
                        object,
                        &SelectionSet {
                            items: vec![item.clone()],
                        },
                        &mut out,
                    );
                }
                SelectionItem::FragmentSpread(_) => {}
            }
        }
        (matched && complete).then_some(Value::Object(out))
    }

    fn merge_entities(
        &self,
        entities: Option<Value>,
        targets: &[EntityTarget],
        output_rewrites: Option<&[FetchRewrite]>,
        errors: Vec<GraphQLError>,
        service: &str,
        root_key: &str,
    ) {
        let entities = match entities {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        if let Some(rewrites) = output_rewrites.filter(|r| !r.is_empty()) {
            let mut renames = self.renames.lock();
            for target in targets {
                renames.extend(rewrites.iter().map(|r| (target.path.clone(), r.clone())));
            }
        }
        // Re-home errors from `_entities[i].rest` to every place entity `i` stands.
        let mut mapped = Vec::new();
        let sent = targets
            .iter()
            .map(|t| t.representation)
            .max()
            .map_or(0, |m| m + 1);
        for error in errors {
            // `_entities.i.rest`; some subgraphs (async-graphql among them) omit the index,
            // which is only unambiguous when a single representation was sent.
            let located = match error.path.as_deref() {
                Some([PathSegment::Key(k), PathSegment::Index(i), rest @ ..]) if k == root_key => {
                    Some((*i, rest.to_vec()))
                }
                Some([PathSegment::Key(k), rest @ ..]) if k == root_key && sent == 1 => {
                    Some((0, rest.to_vec()))
                }
                _ => None,
            };
            match located {
                Some((i, rest)) => {
                    for target in targets.iter().filter(|t| t.representation == i) {
                        let mut path = target.path.clone();
                        path.extend(rest.iter().cloned());
                        mapped.push(self.subgraph_error(error.clone(), service, Some(path)));
                    }
                }
                None => mapped.push(self.subgraph_error(error, service, None)),
            }
        }
        let explained: std::collections::HashSet<usize> = mapped
            .iter()
            .filter_map(|e| e.path.as_ref())
            .flat_map(|p| targets.iter().filter(move |t| p.starts_with(&t.path)))
            .map(|t| t.representation)
            .collect();
        self.errors.lock().extend(mapped);
        let mut data = self.data.lock();
        for target in targets {
            let Some(entity) = entities.get(target.representation) else {
                continue;
            };
            if let Some(slot) = get_mut(&mut data, &target.path) {
                if entity.is_null() && !explained.contains(&target.representation) {
                    // Resolved to null without an error: the owner knows no such entity
                    // (or not for this caller). Remembered for projection's error.
                    if let Value::Object(object) = slot {
                        object.insert(ABSENT_ENTITY.to_owned(), Value::Bool(true));
                    }
                }
                deep_merge(self.index, slot, entity.clone());
            }
        }
    }

    async fn call(&self, service: &str, request: SubgraphRequest) -> Option<SubgraphResponse> {
        let caller = self.caller;
        let called = self
            .settings
            .call(self.clients, service, |client| {
                client.execute(request, caller)
            })
            .await;
        called.map_err(|error| self.errors.lock().push(error)).ok()
    }

    fn subgraph_error(
        &self,
        mut error: GraphQLError,
        service: &str,
        path: Option<Vec<PathSegment>>,
    ) -> GraphQLError {
        error = self.settings.exposed(error, service);
        if path.is_some() {
            error.path = path;
        }
        error.locations.clear();
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions
            .entry("code")
            .or_insert_with(|| Value::String("SUBGRAPH_ERROR".into()));
        extensions.insert("serviceName".into(), Value::String(service.to_owned()));
        error
    }
}

/// The request of a root fetch (a subscription's primary fetch among them).
pub fn root_request(fetch: &FetchNode, variables: &Map<String, Value>) -> SubgraphRequest {
    SubgraphRequest {
        query: fetch.operation.document_str.clone(),
        variables: forwarded(variables, fetch.variable_usages.as_ref()),
    }
}

/// The client's variables a fetch uses.
fn forwarded(
    variables: &Map<String, Value>,
    usages: Option<&std::collections::BTreeSet<String>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for name in usages.into_iter().flatten() {
        if let Some(value) = variables.get(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    out
}

fn apply_rewrite(index: &SchemaIndex, value: &mut Value, rewrite: &FetchRewrite) {
    match rewrite {
        FetchRewrite::ValueSetter(setter) => {
            rewrite_at(index, value, &setter.path, &mut |object, key| {
                object.insert(key.to_owned(), Value::String(setter.set_value_to.clone()));
            });
        }
        FetchRewrite::KeyRenamer(renamer) => {
            rewrite_at(index, value, &renamer.path, &mut |object, key| {
                if let Some(v) = object.remove(key) {
                    object.insert(renamer.rename_key_to.clone(), v);
                }
            });
        }
    }
}

fn rewrite_at(
    index: &SchemaIndex,
    value: &mut Value,
    path: &[FetchNodePathSegment],
    action: &mut dyn FnMut(&mut Map<String, Value>, &str),
) {
    if let Value::Array(items) = value {
        for item in items {
            rewrite_at(index, item, path, action);
        }
        return;
    }
    let Some((segment, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(object) = value else {
        return;
    };
    match segment {
        FetchNodePathSegment::TypenameEquals(types) => {
            let typename = object.get("__typename").and_then(Value::as_str);
            let applies = typename.is_none_or(|typename| {
                types
                    .iter()
                    .any(|t| index.type_condition_applies(t, typename))
            });
            if applies {
                rewrite_at(index, value, rest, action);
            }
        }
        FetchNodePathSegment::Key(key) => {
            if rest.is_empty() {
                action(object, key);
            } else if let Some(child) = object.get_mut(key) {
                rewrite_at(index, child, rest, action);
            }
        }
    }
}

/// Copies the fields of `selections` from `source` into `out`, reading each field from
/// its `name` (falling back to the alias) and writing it under its response key.
/// Copies the fields of `selections` from `source` to `out`; `false` when one of them is
/// missing from `source` (a representation without it is not one).
fn project_selection(
    source: &Map<String, Value>,
    selections: &SelectionSet,
    out: &mut Map<String, Value>,
) -> bool {
    let mut complete = true;
    for item in &selections.items {
        match item {
            SelectionItem::Field(field) => {
                let value = source
                    .get(&field.name)
                    .or_else(|| field.alias.as_ref().and_then(|a| source.get(a)));
                let Some(value) = value else {
                    complete &= field.name == "__typename";
                    continue;
                };
                let key = field.selection_identifier().to_owned();
                if field.selections.items.is_empty() {
                    out.insert(key, value.clone());
                } else {
                    let (nested, nested_complete) = project_nested(value, &field.selections);
                    complete &= nested_complete;
                    out.insert(key, nested);
                }
            }
            SelectionItem::InlineFragment(fragment) => {
                let typename = source.get("__typename").and_then(Value::as_str);
                if typename.is_none_or(|t| t == fragment.type_condition) {
                    complete &= project_selection(source, &fragment.selections, out);
                }
            }
            SelectionItem::FragmentSpread(_) => {}
        }
    }
    complete
}

/// [`project_selection`] below a field: through lists, and whether nothing was missing.
fn project_nested(value: &Value, selections: &SelectionSet) -> (Value, bool) {
    match value {
        Value::Array(items) => {
            let mut complete = true;
            let projected = items
                .iter()
                .map(|v| {
                    let (item, item_complete) = project_nested(v, selections);
                    complete &= item_complete;
                    item
                })
                .collect();
            (Value::Array(projected), complete)
        }
        Value::Object(object) => {
            let mut out = Map::new();
            let complete = project_selection(object, selections, &mut out);
            (Value::Object(out), complete)
        }
        other => (other.clone(), true),
    }
}

/// Merges `source` into `target`: objects key by key (recursively), lists element by
/// element. A `__typename` is only replaced by a more concrete one: an interface object's
/// subgraph reports the interface, which must not hide the concrete type, while a concrete
/// type arriving for an object known only by its interface must replace it.
pub fn deep_merge(index: &SchemaIndex, target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => {
            for (key, value) in source {
                match target.get_mut(&key) {
                    Some(existing) if key == "__typename" => {
                        if let (Some(old), Some(new)) = (existing.as_str(), value.as_str())
                            && old != new
                            && index.is_abstract(old)
                            && index.type_condition_applies(old, new)
                        {
                            *existing = value;
                        }
                    }
                    Some(existing) if existing.is_object() || existing.is_array() => {
                        deep_merge(index, existing, value);
                    }
                    _ => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (t, s) in target.iter_mut().zip(source) {
                deep_merge(index, t, s);
            }
        }
        (target, source) => {
            if !source.is_null() || target.is_null() {
                *target = source;
            }
        }
    }
}

/// Key marking an object whose entity fetch answered `null` without an error (no
/// response key can contain the control character, so no client field collides).
pub(crate) const ABSENT_ENTITY: &str = "\u{1}absent";

fn get_mut<'v>(value: &'v mut Value, path: &[PathSegment]) -> Option<&'v mut Value> {
    let mut current = value;
    for segment in path {
        current = match segment {
            PathSegment::Key(key) => current.get_mut(key)?,
            PathSegment::Index(i) => current.get_mut(*i)?,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn media_index() -> SchemaIndex {
        let sdl = "type Query { media: [Media] } interface Media { id: ID } type Book implements Media { id: ID pages: Int }";
        let document = hive_router_query_planner::utils::parsing::safe_parse_schema(sdl)
            .expect("test schema parses");
        SchemaIndex::from_document(&document)
    }

    #[test]
    fn deep_merge_combines_objects_and_keeps_the_concrete_typename() {
        let index = media_index();
        let mut target =
            json!({"__typename": "Book", "a": 1, "nested": {"x": 1}, "list": [{"id": 1}]});
        deep_merge(
            &index,
            &mut target,
            json!({"__typename": "Media", "b": 2, "nested": {"y": 2}, "list": [{"name": "n"}]}),
        );
        assert_eq!(
            target,
            json!({"__typename": "Book", "a": 1, "nested": {"x": 1, "y": 2}, "list": [{"id": 1, "name": "n"}], "b": 2})
        );
    }

    #[test]
    fn deep_merge_replaces_an_interface_typename_by_the_concrete_one() {
        let index = media_index();
        let mut target = json!({"__typename": "Media", "id": "b1"});
        deep_merge(
            &index,
            &mut target,
            json!({"__typename": "Book", "pages": 412}),
        );
        assert_eq!(
            target,
            json!({"__typename": "Book", "id": "b1", "pages": 412})
        );
    }
}
