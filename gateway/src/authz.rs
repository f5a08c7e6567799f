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

/// The role every caller holds, signed in or not.
pub const PUBLIC_ROLE: &str = "public";

/// The role every signed-in caller (user or service account) holds.
pub const AUTHENTICATED_ROLE: &str = "authenticated";

/// The domain of rules that hold in every tenant.
pub const ANY_DOMAIN: &str = "*";

/// What a field coordinate is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Query and subscription root fields, and every field below any root field.
    Read,
    /// Mutation root fields.
    Write,
}

impl Action {
    /// Policy form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Takes away, whatever grants.
    Deny,
}

impl Effect {
    /// Policy form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One `p` rule: `p, role, domain, object, action, effect`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// The role it applies to.
    pub role: String,
    /// A tenant id, or `*`.
    pub domain: String,
    /// `Type.field`, `Type.*` or `*`.
    pub object: String,
    /// Read or write.
    pub action: Action,
    /// Allow or deny.
    pub effect: Effect,
}

/// One `g` rule: `g, role, inherited role, domain` — holders of `role` also hold
/// `inherits` in `domain` (a tenant id, or `*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inheritance {
    /// The inheriting role.
    pub role: String,
    /// The role whose rules it also gets.
    pub inherits: String,
    /// A tenant id, or `*`.
    pub domain: String,
}

/// A policy line that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy line {line}: {message}")]
pub struct PolicyError {
    /// 1-based line (or row) number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A whole policy: rules, inheritance, and a revision that changes with every edit.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// `p` rules.
    pub rules: Vec<Rule>,
    /// `g` rules.
    pub inheritance: Vec<Inheritance>,
    /// Changes whenever the policy does.
    pub revision: i64,
}

/// Casbin's `keyMatch`: `pattern` may contain `*`, which matches everything from there on.
pub fn key_match(key: &str, pattern: &str) -> bool {
    match pattern.find('*') {
        None => key == pattern,
        Some(i) => key.starts_with(&pattern[..i]),
    }
}

impl Policies {
    /// Reads policy rows in Casbin's CSV form: `p, role, domain, object, action, effect`
    /// and `g, role, inherited, domain`. Blank lines and `#` comments are skipped.
    pub fn parse_csv(text: &str, revision: i64) -> Result<Self, PolicyError> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<String> = line.split(',').map(|f| f.trim().to_owned()).collect();
            rows.push((i + 1, fields));
        }
        Self::from_rows(rows, revision)
    }

    /// Builds a policy from `(row number, [ptype, v0, v1, …])` rows.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (usize, Vec<String>)>,
        revision: i64,
    ) -> Result<Self, PolicyError> {
        let mut policies = Self {
            revision,
            ..Self::default()
        };
        for (line, fields) in rows {
            let error = |message: &str| PolicyError {
                line,
                message: message.to_owned(),
            };
            let field = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
            match field(0) {
                "p" => {
                    let action = Action::parse(field(4))
                        .ok_or_else(|| error("action must be read or write"))?;
                    let effect = match field(5) {
                        "allow" | "" => Effect::Allow,
                        "deny" => Effect::Deny,
                        _ => return Err(error("effect must be allow or deny")),
                    };
                    if field(1).is_empty() || field(2).is_empty() || field(3).is_empty() {
                        return Err(error("p needs role, domain and object"));
                    }
                    policies.rules.push(Rule {
                        role: field(1).to_owned(),
                        domain: field(2).to_owned(),
                        object: field(3).to_owned(),
                        action,
                        effect,
                    });
                }
                "g" => {
                    if field(1).is_empty() || field(2).is_empty() {
                        return Err(error("g needs role and inherited role"));
                    }
                    policies.inheritance.push(Inheritance {
                        role: field(1).to_owned(),
                        inherits: field(2).to_owned(),
                        domain: match field(3) {
                            "" => ANY_DOMAIN.to_owned(),
                            domain => domain.to_owned(),
                        },
                    });
                }
                _ => return Err(error("rows start with p or g")),
            }
        }
        Ok(policies)
    }

    /// `roles` and every role they inherit in `domain`, transitively.
    pub fn closure(&self, roles: &[String], domain: &str) -> BTreeSet<String> {
        let mut held: BTreeSet<String> = roles.iter().cloned().collect();
        let mut frontier: Vec<String> = held.iter().cloned().collect();
        while let Some(role) = frontier.pop() {
            for link in &self.inheritance {
                let applies = link.domain == ANY_DOMAIN || link.domain == domain;
                if applies && link.role == role && held.insert(link.inherits.clone()) {
                    frontier.push(link.inherits.clone());
                }
            }
        }
        held
    }

    /// The rules that match a holder of `held` (a closure) in `domain` using
    /// `coordinate` for `action`.
    pub fn matching<'a>(
        &'a self,
        held: &'a BTreeSet<String>,
        domain: &'a str,
        coordinate: &'a str,
        action: Action,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |rule| {
            rule.action == action
                && (rule.domain == ANY_DOMAIN || rule.domain == domain)
                && held.contains(&rule.role)
                && key_match(coordinate, &rule.object)
        })
    }

    /// Whether holders of `held` in `domain` may use `coordinate` for `action`: some rule
    /// allows and none denies.
    pub fn allows(
        &self,
        held: &BTreeSet<String>,
        domain: &str,
        coordinate: &str,
        action: Action,
    ) -> bool {
        let mut allowed = false;
        for rule in self.matching(held, domain, coordinate, action) {
            match rule.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
        allowed
    }
}

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

/// The compiled decisions of one (tenant, role set): the denied coordinates.
#[derive(Debug, Default)]
pub struct Decisions {
    denied: HashSet<(String, String)>,
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
        Self { denied }
    }

    /// Whether `type_name.field` is denied.
    pub fn denies(&self, type_name: &str, field: &str) -> bool {
        // Avoids allocating for the common case of nothing denied.
        !self.denied.is_empty()
            && self
                .denied
                .contains(&(type_name.to_owned(), field.to_owned()))
    }

    /// The denied coordinates.
    pub fn denied(&self) -> &HashSet<(String, String)> {
        &self.denied
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_match_follows_casbin() {
        assert!(key_match("Account.balance", "Account.*"));
        assert!(key_match("Account.balance", "*"));
        assert!(key_match("Account.balance", "Account.balance"));
        assert!(!key_match("Account.balance", "Account.name"));
        assert!(!key_match("AccountEdge.node", "Account.*"));
        assert!(key_match("Mutation.createAccount", "Mutation.*"));
    }

    #[test]
    fn deny_overrides_allow_and_roles_inherit_per_domain() -> Result<(), PolicyError> {
        let policies = Policies::parse_csv(
            "p, billing, *, Account.*, read, allow\n\
             p, support, *, Account.*, read, allow\n\
             p, support, *, Account.balance, read, deny\n\
             p, auditor, t1, AuditEvent.*, read, allow\n\
             g, lead, support, *\n\
             g, boss, billing, t2\n",
            1,
        )?;
        let held = |roles: &[&str], domain: &str| {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            policies.closure(&roles, domain)
        };
        let read = |roles: &[&str], domain: &str, coordinate: &str| {
            policies.allows(&held(roles, domain), domain, coordinate, Action::Read)
        };
        assert!(read(&["billing"], "t1", "Account.balance"));
        assert!(!read(&["support"], "t1", "Account.balance"));
        assert!(read(&["support"], "t1", "Account.name"));
        assert!(
            !read(&["billing", "support"], "t1", "Account.balance"),
            "deny wins"
        );
        assert!(!read(&["lead"], "t1", "Account.balance"), "inherited deny");
        assert!(read(&["boss"], "t2", "Account.balance"), "inherits in t2");
        assert!(!read(&["boss"], "t1", "Account.balance"), "not in t1");
        assert!(read(&["auditor"], "t1", "AuditEvent.action"));
        assert!(
            !read(&["auditor"], "t2", "AuditEvent.action"),
            "tenant-scoped rule"
        );
        assert!(!read(&["nobody"], "t1", "Account.name"), "deny by default");
        assert!(!policies.allows(
            &held(&["billing"], "t1"),
            "t1",
            "Account.name",
            Action::Write
        ));
        Ok(())
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = Policies::parse_csv("p, r, *, X.y, read, allow\np, r, *, X.y, fly, allow", 1);
        assert_eq!(err.err().map(|e| e.line), Some(2));
        assert!(Policies::parse_csv("x, y", 1).is_err());
    }
}
