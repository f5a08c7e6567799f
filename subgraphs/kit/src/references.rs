//! References to entities another subgraph owns (an account's owner, a thread's
//! participants, a report's account) are checked before a write, by one mechanism: a
//! batched `_entities` query to the owning subgraph **with the caller's authority** (the
//! same actor, so its tenant and row rules apply). A referent is accepted only when its
//! owner resolves it in the caller's tenant, visible to the caller, in a usable state —
//! otherwise the mutation fails with `BAD_USER_INPUT` naming the field, before anything is
//! written. There is no SQL across domains.
//!
//! Subgraphs know only the referent's contract (type name, status field, usable states);
//! the binary registers who owns which type and how to reach it (in process, or over HTTP
//! with an internal token) — the same clients the gateway uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::actor::{Actor, RequestMeta};
use crate::error::{ApiError, ApiResult};

/// A way to send one GraphQL operation to the subgraph owning some entity type, as
/// `actor`. Returns the whole GraphQL response (`data`, `errors`).
#[async_trait::async_trait]
pub trait EntityOwner: Send + Sync {
    /// Runs `query` with `variables` as `actor`.
    async fn execute(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: Value,
    ) -> Result<Value, String>;
}

/// What a referencing subgraph requires of a referent: the owner's type, the field that
/// tells whether it is usable, and the values that mean it is.
#[derive(Clone, Copy, Debug)]
pub struct Referent {
    /// The entity type, e.g. `User`.
    pub typename: &'static str,
    /// Its status field, e.g. `status`.
    pub status_field: &'static str,
    /// The statuses a reference may point at, e.g. `["ACTIVE"]`.
    pub usable: &'static [&'static str],
    /// How errors name it, e.g. `user`.
    pub noun: &'static str,
}

/// A user of the caller's tenant who is active or invited (identity owns users): what
/// account owners, thread participants and report recipients must be.
pub const CURRENT_USER: Referent = Referent {
    typename: "User",
    status_field: "status",
    usable: &["ACTIVE", "INVITED"],
    noun: "user",
};

/// The owners of referenced entity types; cheap to clone (shared registry).
#[derive(Clone, Default)]
pub struct References {
    owners: Arc<RwLock<HashMap<String, Arc<dyn EntityOwner>>>>,
}

impl std::fmt::Debug for References {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owners: Vec<String> = self.owners.read().keys().cloned().collect();
        f.debug_struct("References")
            .field("owners", &owners)
            .finish()
    }
}

impl References {
    /// Entities of `typename` are resolved by `owner`.
    pub fn register(&self, typename: &str, owner: Arc<dyn EntityOwner>) {
        self.owners.write().insert(typename.to_owned(), owner);
    }

    /// Checks that every id in `ids` names a `referent` the caller sees in its tenant, in a
    /// usable state; otherwise `BAD_USER_INPUT` about `field`. One query for all ids.
    pub async fn require(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        field: &'static str,
        referent: &Referent,
        ids: &[Uuid],
    ) -> ApiResult<()> {
        let wanted: Vec<Uuid> = ids
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let entities = self
            .entities(
                actor,
                meta,
                referent.typename,
                referent.status_field,
                &wanted,
            )
            .await
            .map_err(|err| {
                ApiError::internal(format!("checking {} references: {err}", referent.noun))
            })?;
        for (id, entity) in wanted.iter().zip(entities) {
            let status = entity[referent.status_field].as_str();
            match status {
                Some(status) if referent.usable.contains(&status) => {}
                None | Some("DELETED") => {
                    return Err(ApiError::invalid(
                        field,
                        format!("no {} {id} in your tenant", referent.noun),
                    ));
                }
                Some(status) => {
                    return Err(ApiError::invalid(
                        field,
                        format!(
                            "{} {id} cannot be used: it is {}",
                            referent.noun,
                            status.to_lowercase()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl References {
    /// Which of `ids` the owner of `typename` resolves for `actor` (exists in its tenant
    /// and is visible to it, whatever its state), in one query.
    pub async fn visible(
        &self,
        actor: &Actor,
        typename: &str,
        ids: &[Uuid],
    ) -> ApiResult<std::collections::HashSet<Uuid>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let found = self
            .entities(actor, &RequestMeta::default(), typename, "", ids)
            .await
            .map_err(|err| ApiError::internal(format!("checking visibility: {err}")))?;
        Ok(ids
            .iter()
            .zip(found)
            .filter(|(_, entity)| entity["id"].is_string())
            .map(|(id, _)| *id)
            .collect())
    }

    /// The owner's answer for each of `ids` (`id` and `fields` of each, or null), in order,
    /// from one `_entities` query sent as `actor`.
    async fn entities(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        typename: &str,
        fields: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Value>, String> {
        let owner = self
            .owners
            .read()
            .get(typename)
            .cloned()
            .ok_or_else(|| format!("no owner registered for `{typename}`"))?;
        let query = format!(
            "query($representations: [_Any!]!) {{ _entities(representations: $representations) \
             {{ ... on {typename} {{ id {fields} }} }} }}"
        );
        let representations: Vec<Value> = ids
            .iter()
            .map(|id| json!({ "__typename": typename, "id": id.to_string() }))
            .collect();
        let response = owner
            .execute(
                actor,
                meta,
                &query,
                json!({ "representations": representations }),
            )
            .await?;
        match response["data"]["_entities"].as_array() {
            Some(found) if found.len() == ids.len() => Ok(found.clone()),
            _ => Err(format!(
                "unexpected answer {}",
                response.get("errors").cloned().unwrap_or(Value::Null)
            )),
        }
    }
}

/// Batches visibility checks of one entity type by actor: every `(actor, id)` asked for in
/// the same tick costs one query per distinct actor, run concurrently (schema data; no
/// cache, so every request sees the current state).
pub struct VisibilityLoader {
    references: References,
    typename: &'static str,
}

impl VisibilityLoader {
    /// A loader of `typename` visibility through `references`.
    pub fn new(references: References, typename: &'static str) -> Self {
        Self {
            references,
            typename,
        }
    }

    /// The key of `actor` asking about `id`.
    pub fn key(actor: &Actor, id: Uuid) -> (String, Uuid) {
        (serde_json::to_string(actor).unwrap_or_default(), id)
    }
}

impl async_graphql::dataloader::Loader<(String, Uuid)> for VisibilityLoader {
    type Value = bool;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(String, Uuid)],
    ) -> Result<HashMap<(String, Uuid), bool>, ApiError> {
        let mut by_actor: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for (actor, id) in keys {
            by_actor.entry(actor.as_str()).or_default().push(*id);
        }
        // Actors are checked concurrently; one actor's failed check hides that actor's
        // objects (fail closed) without failing the others batched in the same tick.
        let checks = by_actor.into_iter().map(|(actor_json, ids)| async move {
            let visible = match serde_json::from_str::<Actor>(actor_json) {
                Ok(actor) => self
                    .references
                    .visible(&actor, self.typename, &ids)
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = ?err, "visibility check failed; hiding");
                        Default::default()
                    }),
                Err(_) => Default::default(),
            };
            ids.into_iter()
                .map(|id| ((actor_json.to_owned(), id), visible.contains(&id)))
                .collect::<Vec<_>>()
        });
        Ok(futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owner that knows some ids, with a status each.
    struct Known(HashMap<String, &'static str>);

    #[async_trait::async_trait]
    impl EntityOwner for Known {
        async fn execute(
            &self,
            _actor: &Actor,
            _meta: &RequestMeta,
            _query: &str,
            variables: Value,
        ) -> Result<Value, String> {
            let entities: Vec<Value> = variables["representations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    let id = r["id"].as_str().unwrap_or_default();
                    self.0
                        .get(id)
                        .map_or(Value::Null, |s| json!({ "id": id, "status": s }))
                })
                .collect();
            Ok(json!({ "data": { "_entities": entities } }))
        }
    }

    const USER: Referent = Referent {
        typename: "User",
        status_field: "status",
        usable: &["ACTIVE"],
        noun: "user",
    };

    fn field_and_message(err: ApiError) -> (&'static str, String) {
        match err {
            ApiError::BadUserInput { field, message } => (field, message),
            other => ("", other.message()),
        }
    }

    #[tokio::test]
    async fn only_visible_usable_referents_pass() {
        let (active, disabled, unknown) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let references = References::default();
        references.register(
            "User",
            Arc::new(Known(HashMap::from([
                (active.to_string(), "ACTIVE"),
                (disabled.to_string(), "DISABLED"),
            ]))),
        );
        let (actor, meta) = (Actor::anonymous(), RequestMeta::default());
        let check = |ids: Vec<Uuid>| {
            let references = references.clone();
            let (actor, meta) = (actor.clone(), meta.clone());
            async move {
                references
                    .require(&actor, &meta, "input.ownerId", &USER, &ids)
                    .await
            }
        };
        assert!(check(vec![active, active]).await.is_ok());
        assert!(check(vec![]).await.is_ok());
        let (field, message) = field_and_message(
            check(vec![active, unknown])
                .await
                .err()
                .unwrap_or(ApiError::Forbidden),
        );
        assert_eq!(field, "input.ownerId");
        assert!(message.contains("no user"), "{message}");
        let (_, message) = field_and_message(
            check(vec![disabled])
                .await
                .err()
                .unwrap_or(ApiError::Forbidden),
        );
        assert!(message.contains("disabled"), "{message}");
        let nobody = References::default();
        assert!(
            nobody
                .require(&actor, &meta, "f", &USER, &[active])
                .await
                .is_err()
        );
    }
}
