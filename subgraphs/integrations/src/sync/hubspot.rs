//! HubSpot records into the portal (`docs/integrations.md` has the mapping):
//!
//! | HubSpot | Portal |
//! |---|---|
//! | company | linked to an account (by hand with `linkExternalRef`, else created with `createAccount` from the integration's `newAccounts` defaults: number `HS-<id>`, idempotency key per integration and company); its name follows `Account.name`'s rule |
//! | contact (with `syncContacts`) | linked to the user with its email, else invited with `createUser`; made a member of the accounts of its companies (`addAccountMember`) |
//!
//! A company or contact deleted in HubSpot loses its link; its account or user stays (a
//! person closes an account or disables a user: their history matters).

use serde_json::{Value, json};
use uuid::Uuid;

use super::links::{db_error, entity_id, follow_account_name, linked, save_link, unlink};
use super::{Applied, ApplyError, Target};
use crate::connectors::Record;
use crate::connectors::hubspot::{COMPANY, CONTACT};
use crate::domain::sync::{NewAccounts, fingerprint};
use crate::store::connectors as state;

/// Applies one HubSpot object.
pub(super) async fn apply(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    match record.external_type.as_str() {
        COMPANY => company(target, record).await,
        CONTACT => contact(target, record).await,
        _ => Ok(Applied::Unchanged),
    }
}

/// A property's value (HubSpot sends every value as a string, or null).
fn property<'v>(body: &'v Value, name: &str) -> Option<&'v str> {
    body.pointer(&format!("/properties/{name}"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

async fn company(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let link = linked(target, COMPANY, &record.external_id).await?;
    if record.deleted {
        return unlink(target, link).await;
    }
    let body = &record.body;
    let name = property(body, "name");
    let domain = property(body, "domain");
    let print = |name: Option<&str>| fingerprint(&json!({ "name": name, "domain": domain }));
    match &link {
        Some(link) if link.fingerprint.as_deref() == Some(print(name).as_str()) => {
            Ok(Applied::Unchanged)
        }
        Some(link) => {
            let agreed =
                follow_account_name(target, record, link.entity_id, name.unwrap_or_default())
                    .await?;
            let agreed = Some(agreed.as_str()).filter(|n| !n.is_empty());
            save_link(target, record, "Account", link.entity_id, print(agreed)).await?;
            Ok(Applied::Updated)
        }
        None => {
            let defaults = NewAccounts::from_settings(target.integration.settings.as_ref())
                .ok_or_else(|| {
                    ApplyError::Record(
                        "no portal account is linked to this company: link one with \
                         linkExternalRef, or set the integration's newAccounts to create them"
                            .into(),
                    )
                })?;
            let name_given = name;
            let name = name
                .or(domain)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HubSpot company {}", record.external_id));
            let number = format!("HS-{}", record.external_id);
            let created = target
                .portal
                .run(
                    "mutation HubSpotCompanyAccount($input: CreateAccountInput!) { \
                     createAccount(input: $input) { id } }",
                    json!({ "input": {
                        "ownerId": defaults.owner_id,
                        "number": number,
                        "name": name,
                        "currency": defaults.currency,
                        // Per integration: two HubSpot accounts may share company ids.
                        "idempotencyKey": format!(
                            "hubspot:{}:{}",
                            target.integration.id.simple(),
                            record.external_id
                        ),
                    }}),
                )
                .await;
            let (account_id, found) = match created {
                Ok(data) => (entity_id(&data, "/createAccount/id")?, false),
                // The number is taken: by this company's account, created before its
                // link was saved (a crash, then a renamed company or changed defaults
                // made the retry another request), or by hand for it. Linked to it —
                // unless another company is.
                Err(ApplyError::Record(message)) if message.starts_with("CONFLICT") => (
                    account_numbered(target, &number)
                        .await?
                        .ok_or(ApplyError::Record(message))?,
                    true,
                ),
                Err(err) => return Err(err),
            };
            // One company per account, across the tenant's CRM integrations (two
            // HubSpot accounts may share company ids, and so account numbers).
            if let Some(other) = state::link_of_entity(
                target.db,
                state::Within::Tenant(target.integration.tenant_id),
                COMPANY,
                "Account",
                account_id,
            )
            .await
            .map_err(db_error)?
            {
                let of = if other.integration_id == target.integration.id {
                    String::new()
                } else {
                    format!(" of integration {}", other.integration_id)
                };
                return Err(ApplyError::Record(format!(
                    "account {number} is already linked to company {}{of}",
                    other.external_id
                )));
            }
            // An account found, not made: its name may differ.
            let agreed = if found {
                follow_account_name(target, record, account_id, name_given.unwrap_or_default())
                    .await?
            } else {
                name_given.unwrap_or_default().to_owned()
            };
            let agreed = Some(agreed.as_str()).filter(|n| !n.is_empty());
            save_link(target, record, "Account", account_id, print(agreed)).await?;
            Ok(Applied::Created)
        }
    }
}

/// The account numbered `number`, if the connector sees one.
async fn account_numbered(target: &Target<'_>, number: &str) -> Result<Option<Uuid>, ApplyError> {
    let found = target
        .portal
        .run(
            "query HubSpotAccountNumbered($number: String!) { \
             accounts(number: $number, first: 1) { edges { node { id } } } }",
            json!({ "number": number }),
        )
        .await?;
    Ok(found
        .pointer("/accounts/edges/0/node/id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok()))
}

async fn contact(target: &Target<'_>, record: &Record) -> Result<Applied, ApplyError> {
    let link = linked(target, CONTACT, &record.external_id).await?;
    if record.deleted {
        return unlink(target, link).await;
    }
    let body = &record.body;
    let email = property(body, "email")
        .map(str::to_lowercase)
        .ok_or_else(|| ApplyError::Record("a contact without an email cannot be a user".into()))?;
    let display = [property(body, "firstname"), property(body, "lastname")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let display = if display.is_empty() {
        email.clone()
    } else {
        display
    };
    let companies: Vec<&str> = body
        .get("companyIds")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The accounts of its companies that are linked: those it joins. A company not
    // linked (yet) is left out of the fingerprint too, so the contact is applied again
    // once it is.
    let mut accounts = Vec::new();
    for company in companies {
        if let Some(account) = linked(target, COMPANY, company).await? {
            accounts.push(account.entity_id);
        }
    }
    accounts.sort();
    accounts.dedup();
    let print = fingerprint(&json!({ "email": email, "accounts": accounts }));
    let (user_id, outcome) = match &link {
        Some(link) if link.fingerprint.as_deref() == Some(print.as_str()) => {
            return Ok(Applied::Unchanged);
        }
        Some(link) => (link.entity_id, Applied::Updated),
        None => (
            user_with_email(target, &email, &display).await?,
            Applied::Created,
        ),
    };
    for account in accounts {
        add_member(target, account, user_id).await?;
    }
    save_link(target, record, "User", user_id, print).await?;
    Ok(outcome)
}

/// The tenant's user signing in with `email`, invited (`createUser`) when there is none.
async fn user_with_email(
    target: &Target<'_>,
    email: &str,
    display: &str,
) -> Result<Uuid, ApplyError> {
    let found = target
        .portal
        .run(
            "query HubSpotContactUser($email: String!) { \
             users(email: $email, first: 1) { edges { node { id } } } }",
            json!({ "email": email }),
        )
        .await?;
    if let Some(id) = found
        .pointer("/users/edges/0/node/id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok())
    {
        return Ok(id);
    }
    let data = target
        .portal
        .run(
            "mutation HubSpotContactInvite($input: CreateUserInput!) { \
             createUser(input: $input) { id } }",
            json!({ "input": { "email": email, "displayName": display } }),
        )
        .await?;
    entity_id(&data, "/createUser/id")
}

/// Makes `user_id` a member of `account_id`; already one (or its owner) is fine.
async fn add_member(
    target: &Target<'_>,
    account_id: Uuid,
    user_id: Uuid,
) -> Result<(), ApplyError> {
    let added = target
        .portal
        .run(
            "mutation HubSpotContactMember($account: ID!, $user: ID!) { \
             addAccountMember(accountId: $account, userId: $user) { id } }",
            json!({ "account": account_id, "user": user_id }),
        )
        .await;
    match added {
        Ok(_) => Ok(()),
        Err(ApplyError::Record(message)) if message.starts_with("CONFLICT") => Ok(()),
        Err(err) => Err(err),
    }
}
