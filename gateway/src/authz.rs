//! Field-level authorization: which field coordinates (`Type.field`) a caller's roles may
//! read (query fields and every non-root field) or write (mutation root fields), per
//! tenant.
//!
//! Policies follow the Casbin model in `policies/model.conf` — RBAC with domains (a tenant
//! id, or `*` for every tenant), `keyMatch` objects (`Account.*`), actions `read`/`write`,
//! explicit deny overrides allow, deny by default — and are evaluated here, without a
//! Casbin call per request: the decisions for a (tenant, role set) are compiled once per
//! policy revision over every coordinate of the supergraph, so enforcement is a set
//! lookup. (A test checks these decisions against the Casbin crate itself.)
//!
//! Every caller implicitly holds [`PUBLIC_ROLE`]; every caller with a tenant also holds
//! [`AUTHENTICATED_ROLE`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use graphql_tools::static_graphql::query::{
    Definition, Document, Field, FragmentDefinition, Selection, SelectionSet, TypeCondition,
};
use parking_lot::{Mutex, RwLock};

use crate::schema::SchemaIndex;

pub use portal_kit::policy::{
    ANY_DOMAIN, AUTHENTICATED_ROLE, Action, Effect, Inheritance, PUBLIC_ROLE, Policies,
    PolicyError, Rule, key_match, with_implicit_roles,
};

/// The action a field of `type_name` is used for.
pub fn action_of(index: &SchemaIndex, type_name: &str) -> Action {
    match index.root_type(crate::schema::OperationKind::Mutation) {
        Some(mutation) if mutation == type_name => Action::Write,
        _ => Action::Read,
    }
}

/// Every field coordinate of the schema's object and interface types, with its action.
pub fn coordinates(index: &SchemaIndex) -> Vec<(String, String, Action)> {
    let mut all: Vec<(String, String, Action)> = index
        .types()
        .filter(|t| !t.name.starts_with("__"))
        .flat_map(|t| {
            let action = action_of(index, &t.name);
            t.fields
                .keys()
                .filter(|f| !f.starts_with("__"))
                .map(move |f| (t.name.clone(), f.clone(), action))
        })
        .collect();
    all.sort();
    all
}

/// The introspection root fields as coordinates (`Query.__schema`, `Query.__type`), read
/// actions: policies may name them, and they are checked when the gateway authorizes
/// introspection.
pub fn introspection_coordinates(index: &SchemaIndex) -> Vec<(String, String, Action)> {
    let query = index
        .root_type(crate::schema::OperationKind::Query)
        .unwrap_or("Query");
    ["__schema", "__type"]
        .into_iter()
        .map(|field| (query.to_owned(), field.to_owned(), Action::Read))
        .collect()
}

/// The compiled decisions of one (tenant, role set): the denied coordinates, by type
/// (so a lookup with borrowed names allocates nothing: it runs per field per request).
#[derive(Debug, Default)]
pub struct Decisions {
    denied: HashMap<String, HashSet<String>>,
    grants: Vec<String>,
}

impl Decisions {
    /// Compiles `policies` for holders of `roles` (implicit roles included) in `domain`,
    /// over every coordinate of `index`. For an interface field, a denial on any
    /// implementing type's field also denies the interface field (and vice versa), so
    /// filtering and projection always agree.
    pub fn compile(
        policies: &Policies,
        index: &SchemaIndex,
        domain: &str,
        roles: &[String],
        with_introspection: bool,
    ) -> Self {
        let held = policies.closure(roles, domain);
        let mut denied: HashSet<(String, String)> = coordinates(index)
            .into_iter()
            .filter(|(t, f, action)| !policies.allows(&held, domain, &format!("{t}.{f}"), *action))
            .map(|(t, f, _)| (t, f))
            .collect();
        for t in index.types().filter(|t| index.is_abstract(&t.name)) {
            for field in t.fields.keys() {
                let related = t
                    .possible_types
                    .iter()
                    .map(|p| (p.clone(), field.clone()))
                    .chain([(t.name.clone(), field.clone())])
                    .collect::<Vec<_>>();
                if related.iter().any(|c| denied.contains(c)) {
                    denied.extend(related);
                }
            }
        }
        if with_introspection {
            let query = index
                .root_type(crate::schema::OperationKind::Query)
                .unwrap_or("Query");
            for field in ["__schema", "__type"] {
                let coordinate = format!("{query}.{field}");
                if !policies.allows(&held, domain, &coordinate, Action::Read) {
                    denied.insert((query.to_owned(), field.to_owned()));
                }
            }
        }
        let mut by_type: HashMap<String, HashSet<String>> = HashMap::new();
        for (type_name, field) in denied {
            by_type.entry(type_name).or_default().insert(field);
        }
        Self {
            denied: by_type,
            grants: policies.grants(&held, domain),
        }
    }

    /// The grants (see [`portal_kit::policy::GRANTS`]) these roles hold, sorted.
    pub fn grants(&self) -> &[String] {
        &self.grants
    }

    /// Whether `type_name.field` is denied.
    pub fn denies(&self, type_name: &str, field: &str) -> bool {
        self.denied
            .get(type_name)
            .is_some_and(|fields| fields.contains(field))
    }

    /// What `self` or `other` denies (the grants of `other`): for a stream planned under
    /// `self` and re-checked under `other`, whose plan lacks what `self` denied.
    pub fn union(&self, other: &Decisions) -> Decisions {
        let mut denied = self.denied.clone();
        for (type_name, fields) in &other.denied {
            denied
                .entry(type_name.clone())
                .or_default()
                .extend(fields.iter().cloned());
        }
        Decisions {
            denied,
            grants: other.grants.clone(),
        }
    }
}

/// What to do with denied fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Denied query fields are `null` with a `FORBIDDEN` error; the rest is served.
    /// Mutations with a denied field are refused whole.
    #[default]
    Filter,
    /// Any denied field refuses the whole operation.
    Reject,
    /// Log what would be denied; enforce nothing.
    DryRun,
}

/// The gateway's authorizer: the current policy and the mode.
pub struct Authorizer {
    mode: Mode,
    authorize_introspection: bool,
    policies: RwLock<Arc<Policies>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("mode", &self.mode)
            .field("revision", &self.policies.read().revision)
            .finish()
    }
}

impl Authorizer {
    /// An authorizer enforcing `policies` in `mode`.
    pub fn new(mode: Mode, policies: Policies) -> Self {
        Self {
            mode,
            authorize_introspection: false,
            policies: RwLock::new(Arc::new(policies)),
        }
    }

    /// Also check introspection fields (`__schema`, `__type`) as coordinates
    /// `Query.__schema` / `Query.__type`; by default introspection is always allowed.
    pub fn with_introspection_checks(mut self) -> Self {
        self.authorize_introspection = true;
        self
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether introspection root fields are checked.
    pub fn checks_introspection(&self) -> bool {
        self.authorize_introspection
    }

    /// The policy in force.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies.read().clone()
    }

    /// Puts `policies` in force (decisions compiled from older revisions are dropped).
    pub fn replace(&self, policies: Policies) {
        *self.policies.write() = Arc::new(policies);
    }
}

/// A field coordinate: parent type (as written) and field name.
pub type Coordinate = (String, String);

/// Cache key of compiled decisions: policy revision, domain, sorted role set.
type DecisionKey = (i64, String, Vec<String>);

/// Compiled decisions per (policy revision, domain, role set), for one supergraph.
#[derive(Default)]
pub struct DecisionCache {
    entries: Mutex<HashMap<DecisionKey, Arc<Decisions>>>,
}

/// Most role sets remembered before the cache starts over.
const DECISION_CACHE_CAPACITY: usize = 4096;

impl DecisionCache {
    /// The decisions for holders of `roles` in `domain` under `policies` over `index`.
    pub fn get(
        &self,
        policies: &Policies,
        index: &SchemaIndex,
        domain: &str,
        roles: &[String],
        with_introspection: bool,
    ) -> Arc<Decisions> {
        let mut sorted = roles.to_vec();
        sorted.sort();
        sorted.dedup();
        let key = (policies.revision, domain.to_owned(), sorted);
        if let Some(found) = self.entries.lock().get(&key) {
            return found.clone();
        }
        let compiled = Arc::new(Decisions::compile(
            policies,
            index,
            domain,
            &key.2,
            with_introspection,
        ));
        let mut entries = self.entries.lock();
        if entries.len() >= DECISION_CACHE_CAPACITY {
            entries.clear();
        }
        entries.retain(|(revision, _, _), _| *revision == policies.revision);
        entries.insert(key, compiled.clone());
        compiled
    }
}

/// The field coordinates an operation uses, with the parent type as written (fragments
/// included, each fragment once).
pub fn operation_coordinates(
    index: &SchemaIndex,
    root_type: &str,
    selection_set: &SelectionSet,
    fragments: &HashMap<&str, &FragmentDefinition>,
    with_introspection: bool,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut seen_fragments = HashSet::new();
    collect(
        index,
        root_type,
        selection_set,
        fragments,
        with_introspection,
        &mut seen_fragments,
        &mut out,
    );
    out
}

fn collect<'a>(
    index: &SchemaIndex,
    type_name: &str,
    selection_set: &'a SelectionSet,
    fragments: &HashMap<&str, &'a FragmentDefinition>,
    with_introspection: bool,
    seen_fragments: &mut HashSet<&'a str>,
    out: &mut BTreeSet<(String, String)>,
) {
    for selection in &selection_set.items {
        match selection {
            Selection::Field(field) => {
                if field.name == "__typename" {
                    continue;
                }
                if field.name.starts_with("__") {
                    // `__schema`/`__type`: the whole introspection answer is one decision.
                    if with_introspection {
                        out.insert((type_name.to_owned(), field.name.clone()));
                    }
                    continue;
                }
                out.insert((type_name.to_owned(), field.name.clone()));
                if let Some(def) = index.field(type_name, &field.name) {
                    let inner = def.ty.named();
                    if index.is_composite(inner) {
                        collect(
                            index,
                            inner,
                            &field.selection_set,
                            fragments,
                            with_introspection,
                            seen_fragments,
                            out,
                        );
                    }
                }
            }
            Selection::InlineFragment(inline) => {
                let inner = match &inline.type_condition {
                    Some(TypeCondition::On(name)) => name.as_str(),
                    None => type_name,
                };
                collect(
                    index,
                    inner,
                    &inline.selection_set,
                    fragments,
                    with_introspection,
                    seen_fragments,
                    out,
                );
            }
            Selection::FragmentSpread(spread) => {
                let Some(fragment) = fragments.get(spread.fragment_name.as_str()) else {
                    continue;
                };
                if !seen_fragments.insert(fragment.name.as_str()) {
                    continue;
                }
                let TypeCondition::On(inner) = &fragment.type_condition;
                collect(
                    index,
                    inner,
                    &fragment.selection_set,
                    fragments,
                    with_introspection,
                    seen_fragments,
                    out,
                );
            }
        }
    }
}

/// A copy of `document` without the fields whose coordinate (parent type as written) is
/// in `denied`, for planning. A selection set left empty keeps a `__typename`, so the
/// document stays valid.
pub fn strip(
    document: &Document,
    index: &SchemaIndex,
    root_type: &str,
    denied: &HashSet<(String, String)>,
) -> Document {
    let mut out = document.clone();
    for definition in &mut out.definitions {
        match definition {
            Definition::Operation(operation) => {
                let selection_set = match operation {
                    graphql_tools::static_graphql::query::OperationDefinition::SelectionSet(s) => s,
                    graphql_tools::static_graphql::query::OperationDefinition::Query(q) => {
                        &mut q.selection_set
                    }
                    graphql_tools::static_graphql::query::OperationDefinition::Mutation(m) => {
                        &mut m.selection_set
                    }
                    graphql_tools::static_graphql::query::OperationDefinition::Subscription(s) => {
                        &mut s.selection_set
                    }
                };
                strip_set(index, root_type, selection_set, denied);
            }
            Definition::Fragment(fragment) => {
                let TypeCondition::On(inner) = fragment.type_condition.clone();
                strip_set(index, &inner, &mut fragment.selection_set, denied);
            }
        }
    }
    out
}

fn strip_set(
    index: &SchemaIndex,
    type_name: &str,
    selection_set: &mut SelectionSet,
    denied: &HashSet<(String, String)>,
) {
    selection_set.items.retain(|selection| match selection {
        Selection::Field(field) => !denied.contains(&(type_name.to_owned(), field.name.clone())),
        _ => true,
    });
    for selection in &mut selection_set.items {
        match selection {
            Selection::Field(field) => {
                if let Some(def) = index.field(type_name, &field.name) {
                    let inner = def.ty.named().to_owned();
                    if index.is_composite(&inner) {
                        strip_set(index, &inner, &mut field.selection_set, denied);
                    }
                }
            }
            Selection::InlineFragment(inline) => {
                let inner = match &inline.type_condition {
                    Some(TypeCondition::On(name)) => name.clone(),
                    None => type_name.to_owned(),
                };
                strip_set(index, &inner, &mut inline.selection_set, denied);
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    if selection_set.items.is_empty() {
        selection_set.items.push(Selection::Field(Field {
            position: selection_set.span.0,
            alias: None,
            name: "__typename".to_owned(),
            arguments: Vec::new(),
            directives: Vec::new(),
            selection_set: SelectionSet {
                span: selection_set.span,
                items: Vec::new(),
            },
        }));
    }
}
