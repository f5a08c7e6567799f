//! Operation limits, checked after parsing and before validation, so an expensive or
//! abusive document is refused before any work depends on its size: nesting depth, number
//! of aliases, number of root fields, number of fields after fragment expansion (tokens
//! are limited by the parser itself). The check itself is linear in the document's size.

use std::collections::HashMap;

use graphql_tools::static_graphql::query::{
    Definition, Directive, Document, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet,
};

use crate::response::GraphQLError;

/// Limits applied to every request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most tokens a document may have.
    pub max_tokens: usize,
    /// Deepest field nesting (a root field is depth 1).
    pub max_depth: usize,
    /// Most aliased fields in the operation (fragments counted where spread).
    pub max_aliases: usize,
    /// Most fields at the root of the operation.
    pub max_root_fields: usize,
    /// Most fields in the operation once every fragment is expanded.
    pub max_fields: usize,
    /// Most directives written in the whole document (operations and fragments).
    pub max_directives: usize,
    /// Most times one directive may be written on one field, fragment or operation
    /// (repeating directives are rare; hundreds of repeats are an attack).
    pub max_repeated_directive: usize,
    /// Most validation errors reported for one document; the rest are summarized in
    /// one error, so a small abusive document cannot produce a huge response.
    pub max_validation_errors: usize,
    /// Most plans kept in the plan cache.
    pub plan_cache_size: usize,
    /// Most operations executing at once; further requests wait their turn (first come,
    /// first served). Bounds memory under load spikes without refusing anyone.
    pub max_concurrent_operations: usize,
    /// Most subscriptions open on this gateway at once (every transport).
    pub max_subscriptions: usize,
    /// Most subscriptions one principal (user or service account) holds open at once.
    pub max_subscriptions_per_principal: usize,
    /// Most subscriptions on one WebSocket connection.
    pub max_subscriptions_per_connection: usize,
    /// Most WebSocket connections open on this gateway at once.
    pub max_websocket_connections: usize,
    /// How often an open subscription re-checks the caller's credential and policies
    /// while no event arrives (each event re-checks them too).
    pub subscription_recheck: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tokens: 15_000,
            max_depth: 15,
            max_aliases: 30,
            max_root_fields: 20,
            max_fields: 5_000,
            max_directives: 200,
            max_repeated_directive: 3,
            max_validation_errors: 100,
            plan_cache_size: 1_000,
            max_concurrent_operations: 128,
            max_subscriptions: 20_000,
            max_subscriptions_per_principal: 100,
            max_subscriptions_per_connection: 50,
            max_websocket_connections: 20_000,
            subscription_recheck: std::time::Duration::from_secs(5),
        }
    }
}

/// How deep fragment spreads may nest inside each other (a chain, not a cycle).
pub(crate) const MAX_FRAGMENT_NESTING: usize = 64;

/// What a selection set costs once every fragment is expanded.
#[derive(Clone, Copy, Default)]
struct Summary {
    /// Fields at the top level of the selection set (through fragments).
    top_fields: u64,
    /// Deepest field nesting below and including the top level.
    depth: u64,
    /// Aliased fields.
    aliases: u64,
    /// Fields in total.
    fields: u64,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.top_fields = self.top_fields.saturating_add(other.top_fields);
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.fields = self.fields.saturating_add(other.fields);
    }
}

/// Summarizes selection sets, computing each fragment's summary once: a fragment spread a
/// thousand times costs one walk, so the check stays linear in the document's size even
/// when its expansion is exponential.
struct Summarizer<'a, 'f> {
    fragments: &'f HashMap<&'a str, &'a FragmentDefinition>,
    memo: HashMap<&'a str, Summary>,
    visiting: Vec<&'a str>,
}

impl<'a> Summarizer<'a, '_> {
    fn selection_set(&mut self, selection_set: &'a SelectionSet) -> Result<Summary, GraphQLError> {
        let mut summary = Summary::default();
        for selection in &selection_set.items {
            match selection {
                Selection::Field(field) => {
                    let below = self.selection_set(&field.selection_set)?;
                    summary.add(Summary {
                        top_fields: 1,
                        depth: below.depth.saturating_add(1),
                        aliases: below
                            .aliases
                            .saturating_add(u64::from(field.alias.is_some())),
                        fields: below.fields.saturating_add(1),
                    });
                }
                Selection::InlineFragment(inline) => {
                    let inner = self.selection_set(&inline.selection_set)?;
                    summary.add(inner);
                }
                Selection::FragmentSpread(spread) => {
                    let inner = self.fragment(spread.fragment_name.as_str())?;
                    summary.add(inner);
                }
            }
        }
        Ok(summary)
    }

    fn fragment(&mut self, name: &'a str) -> Result<Summary, GraphQLError> {
        if let Some(known) = self.memo.get(name) {
            return Ok(*known);
        }
        // Unknown fragments and cycles are validation errors, reported after this check.
        let Some(fragment) = self.fragments.get(name) else {
            return Ok(Summary::default());
        };
        if self.visiting.contains(&name) {
            return Ok(Summary::default());
        }
        if self.visiting.len() >= MAX_FRAGMENT_NESTING {
            return Err(GraphQLError::new(
                format!("fragment spreads nest deeper than {MAX_FRAGMENT_NESTING} levels"),
                "MAX_DEPTH_EXCEEDED",
            ));
        }
        self.visiting.push(name);
        let summary = self.selection_set(&fragment.selection_set);
        self.visiting.pop();
        let summary = summary?;
        self.memo.insert(name, summary);
        Ok(summary)
    }
}

/// Checks `selection_set` (the selected operation's) against `limits`.
pub fn check(
    limits: &Limits,
    selection_set: &SelectionSet,
    fragments: &HashMap<&str, &FragmentDefinition>,
) -> Result<(), GraphQLError> {
    let mut summarizer = Summarizer {
        fragments,
        memo: HashMap::new(),
        visiting: Vec::new(),
    };
    let summary = summarizer.selection_set(selection_set)?;
    let exceeds = |value: u64, limit: usize| value > limit as u64;
    if exceeds(summary.top_fields, limits.max_root_fields) {
        return Err(GraphQLError::new(
            format!(
                "the operation selects {} root fields; at most {} are allowed",
                summary.top_fields, limits.max_root_fields
            ),
            "MAX_ROOT_FIELDS_EXCEEDED",
        ));
    }
    if exceeds(summary.depth, limits.max_depth) {
        return Err(GraphQLError::new(
            format!(
                "the operation nests deeper than {} levels",
                limits.max_depth
            ),
            "MAX_DEPTH_EXCEEDED",
        ));
    }
    if exceeds(summary.aliases, limits.max_aliases) {
        return Err(GraphQLError::new(
            format!(
                "the operation uses more than {} aliases",
                limits.max_aliases
            ),
            "MAX_ALIASES_EXCEEDED",
        ));
    }
    if exceeds(summary.fields, limits.max_fields) {
        return Err(GraphQLError::new(
            format!(
                "the operation selects more than {} fields once its fragments are expanded",
                limits.max_fields
            ),
            "MAX_FIELDS_EXCEEDED",
        ));
    }
    Ok(())
}

/// Checks the directives written anywhere in `document` (not expanded: a directive in a
/// fragment counts once however often it is spread) against `limits`: the total, and how
/// often one directive is repeated at one location.
pub fn check_directives(limits: &Limits, document: &Document) -> Result<(), GraphQLError> {
    let mut counter = DirectiveCounter { limits, total: 0 };
    for definition in &document.definitions {
        match definition {
            Definition::Operation(op) => {
                let (directives, selection_set) = match op {
                    OperationDefinition::SelectionSet(s) => (&[][..], s),
                    OperationDefinition::Query(q) => (&q.directives[..], &q.selection_set),
                    OperationDefinition::Mutation(m) => (&m.directives[..], &m.selection_set),
                    OperationDefinition::Subscription(s) => (&s.directives[..], &s.selection_set),
                };
                counter.location(directives)?;
                counter.selection_set(selection_set)?;
            }
            Definition::Fragment(fragment) => {
                counter.location(&fragment.directives)?;
                counter.selection_set(&fragment.selection_set)?;
            }
        }
    }
    Ok(())
}

struct DirectiveCounter<'l> {
    limits: &'l Limits,
    total: usize,
}

impl DirectiveCounter<'_> {
    fn location(&mut self, directives: &[Directive]) -> Result<(), GraphQLError> {
        self.total = self.total.saturating_add(directives.len());
        if self.total > self.limits.max_directives {
            return Err(GraphQLError::new(
                format!(
                    "the document uses more than {} directives",
                    self.limits.max_directives
                ),
                "MAX_DIRECTIVES_EXCEEDED",
            ));
        }
        for (i, directive) in directives.iter().enumerate() {
            let repeats = directives[..i]
                .iter()
                .filter(|d| d.name == directive.name)
                .count()
                + 1;
            if repeats > self.limits.max_repeated_directive {
                return Err(GraphQLError::new(
                    format!(
                        "`@{}` is repeated more than {} times at one location",
                        directive.name, self.limits.max_repeated_directive
                    ),
                    "MAX_DIRECTIVES_EXCEEDED",
                ));
            }
        }
        Ok(())
    }

    fn selection_set(&mut self, selection_set: &SelectionSet) -> Result<(), GraphQLError> {
        for selection in &selection_set.items {
            match selection {
                Selection::Field(field) => {
                    self.location(&field.directives)?;
                    self.selection_set(&field.selection_set)?;
                }
                Selection::FragmentSpread(spread) => self.location(&spread.directives)?,
                Selection::InlineFragment(inline) => {
                    self.location(&inline.directives)?;
                    self.selection_set(&inline.selection_set)?;
                }
            }
        }
        Ok(())
    }
}
