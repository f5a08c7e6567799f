//! What every provider's mapping does the same way: links between remote records and
//! portal entities (idempotent upserts keyed by external id), and an account name that
//! follows its field rule.

use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::external_ref;

use super::{Applied, ApplyError, Target};
use crate::connectors::{Push, Record, RemoteError};
use crate::domain::sync::{SourceOfTruth, fingerprint};
use crate::store::connectors::{self as state, LinkTo};

/// A store failure while applying a record.
pub(super) fn db_error(err: portal_kit::ApiError) -> ApplyError {
    match err {
        // A unique key of the links: the remote record names a portal entity another
        // record is already linked to (two customers naming one account).
        portal_kit::ApiError::Conflict(_) => ApplyError::Record(
            "the portal entity it names is already linked to another record of this \
             integration"
                .into(),
        ),
        other => ApplyError::Retry(format!("{other:?}")),
    }
}

/// The link of a remote record.
pub(super) async fn linked(
    target: &Target<'_>,
    external_type: &str,
    external_id: &str,
) -> Result<Option<external_ref::Model>, ApplyError> {
    state::link(target.db, target.integration.id, external_type, external_id)
        .await
        .map_err(db_error)
}

/// Links `record` to a portal entity, remembering the fingerprint of what was applied.
pub(super) async fn save_link(
    target: &Target<'_>,
    record: &Record,
    entity_type: &str,
    entity_id: Uuid,
    print: String,
) -> Result<(), ApplyError> {
    state::upsert_link(
        target.db,
        LinkTo {
            tenant_id: target.integration.tenant_id,
            integration_id: target.integration.id,
            external_type: &record.external_type,
            external_id: &record.external_id,
            entity_type,
            entity_id,
            fingerprint: print,
        },
    )
    .await
    .map_err(db_error)
}

/// A record deleted at the remote: its link goes; the portal entity stays.
pub(super) async fn unlink(
    target: &Target<'_>,
    link: Option<external_ref::Model>,
) -> Result<Applied, ApplyError> {
    match link {
        Some(link) => {
            state::remove_link(target.db, link.id)
                .await
                .map_err(db_error)?;
            Ok(Applied::Deleted)
        }
        None => Ok(Applied::Unchanged),
    }
}

/// The id at `pointer` in a mutation's answer.
pub(super) fn entity_id(data: &Value, pointer: &str) -> Result<Uuid, ApplyError> {
    data.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ApplyError::Retry(format!("the portal answered no {pointer}")))
}

/// Makes the account's name and the remote record's (`remote_name`) agree as the
/// `Account.name` rule says: the remote's is written to the account (`REMOTE`), or the
/// portal's is pushed to the remote (`PORTAL`). The name both now have: what the record's
/// fingerprint should hold, so that reading back a pushed name changes nothing.
pub(super) async fn follow_account_name(
    target: &Target<'_>,
    record: &Record,
    account_id: Uuid,
    remote_name: &str,
) -> Result<String, ApplyError> {
    let data = target
        .portal
        .run(
            "query SyncAccountName($id: ID!) { account(id: $id) { id name } }",
            json!({ "id": account_id }),
        )
        .await?;
    let Some(portal_name) = data.pointer("/account/name").and_then(Value::as_str) else {
        return Err(ApplyError::Record(format!(
            "account {account_id} does not exist or the connector may not see it"
        )));
    };
    if remote_name.is_empty() || remote_name == portal_name {
        return Ok(remote_name.to_owned());
    }
    match target.rules.of("Account.name") {
        SourceOfTruth::Remote => {
            target
                .portal
                .run(
                    "mutation SyncAccountRename($id: ID!, $name: String!) { \
                     updateAccount(id: $id, input: { name: $name }) { id } }",
                    json!({ "id": account_id, "name": remote_name }),
                )
                .await?;
            Ok(remote_name.to_owned())
        }
        SourceOfTruth::Portal => {
            let change = Push {
                external_type: record.external_type.clone(),
                external_id: record.external_id.clone(),
                fields: vec![("name".into(), portal_name.to_owned())],
                idempotency_key: format!(
                    "portal-{}-{}",
                    record.external_id,
                    fingerprint(&json!(portal_name))
                ),
            };
            target
                .connector
                .push(&change)
                .await
                .map_err(|err| match err {
                    RemoteError::Rejected { .. } => {
                        ApplyError::Record(format!("pushing the portal's name: {err}"))
                    }
                    other => ApplyError::Remote(other),
                })?;
            Ok(portal_name.to_owned())
        }
    }
}
