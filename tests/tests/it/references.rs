//! References to objects another subgraph owns: checked to exist (and be usable) in the
//! caller's tenant before anything is written, and harmless when they go stale later.

use portal_entities::identity::user;
use portal_gateway::authz::Mode as RbacMode;
use portal_tests::{Mode, TestPortal};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

async fn as_alice(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    portal
        .query_with_roles(
            portal.seed.tenant_id,
            portal.seed.alice_id,
            &["tenant_admin"],
            query,
            variables,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_behind_the_api_reads_as_a_deleted_user_and_breaks_no_list()
-> anyhow::Result<()> {
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_rbac(mode, RbacMode::Filter).await?;
        // Carol owns accounts and reports, opened a thread, takes part in Alice's, and
        // wrote messages: delete her row directly, as an erasure or a bad restore would.
        user::Entity::delete_by_id(portal.seed.carol_id)
            .exec(&portal.db)
            .await?;
        let listing = as_alice(
            &portal,
            r#"{
              accounts { edges { node { number owner { displayName } } } }
              reportDefinitions { edges { node { name owner { displayName } } } }
              threads { edges { node { subject createdBy { displayName }
                participants { displayName }
                messages { edges { node { body author { displayName } } } } } } }
            }"#,
            json!({}),
        )
        .await?;
        assert!(listing.get("errors").is_none(), "{mode:?}: {listing}");
        let text = listing.to_string();
        // Her accounts, reports, thread, participation and messages are all still listed,
        // naming her as a deleted user.
        assert!(
            text.matches("Deleted user").count() >= 8,
            "{mode:?}: {listing}"
        );
        portal.stop().await;
    }
    Ok(())
}

/// Rows of the tables a refused mutation might have touched, and audit events.
async fn counts(portal: &TestPortal) -> anyhow::Result<[u64; 5]> {
    use portal_entities::accounts::account;
    use portal_entities::integrations::external_ref;
    use portal_entities::messages::thread;
    use portal_entities::platform::audit_event;
    use portal_entities::reports::report_definition;
    use sea_orm::PaginatorTrait;
    Ok([
        account::Entity::find().count(&portal.db).await?,
        thread::Entity::find().count(&portal.db).await?,
        report_definition::Entity::find().count(&portal.db).await?,
        external_ref::Entity::find().count(&portal.db).await?,
        audit_event::Entity::find().count(&portal.db).await?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_other_subgraphs_must_exist_in_the_callers_tenant_and_be_usable()
-> anyhow::Result<()> {
    use portal_entities::accounts::account;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let gina = portal.seed.other_user_id.to_string();
        let nobody = uuid::Uuid::now_v7().to_string();
        let carol = portal.seed.carol_id.to_string();
        let foreign_account = portal.account_id("GLX-0001").await?;
        let closed_account = portal.account_id("ACME-0004").await?;
        let mut closing: account::ActiveModel =
            account::Entity::find_by_id(closed_account.parse::<uuid::Uuid>()?)
                .one(&portal.db)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account"))?
                .into();
        closing.status = Set("CLOSED".into());
        closing.update(&portal.db).await?;
        let integration: String = {
            let listed = as_alice(
                &portal,
                "{ integrations { edges { node { id } } } }",
                json!({}),
            )
            .await?;
            listed["data"]["integrations"]["edges"][0]["node"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let before = counts(&portal).await?;
        let refused = [
            (
                "mutation($o: ID!) { createAccount(input: { ownerId: $o, number: \"ACME-0900\", name: \"X\", currency: \"EUR\" }) { id } }",
                json!({ "o": gina }),
                "input.ownerId",
            ),
            (
                "mutation($o: ID!) { createAccount(input: { ownerId: $o, number: \"ACME-0900\", name: \"X\", currency: \"EUR\" }) { id } }",
                json!({ "o": nobody }),
                "input.ownerId",
            ),
            (
                "mutation($p: [ID!]) { createThread(input: { subject: \"S\", body: \"B\", participantIds: $p }) { id } }",
                json!({ "p": [carol, gina] }),
                "input.participantIds",
            ),
            (
                "mutation($a: ID) { createThread(input: { subject: \"S\", body: \"B\", accountId: $a }) { id } }",
                json!({ "a": foreign_account }),
                "input.accountId",
            ),
            (
                "mutation($a: ID) { createThread(input: { subject: \"S\", body: \"B\", accountId: $a }) { id } }",
                json!({ "a": closed_account }),
                "input.accountId",
            ),
            (
                "mutation($a: ID) { createReportDefinition(input: { name: \"R\", kind: CUSTOM, format: CSV, accountId: $a }) { id } }",
                json!({ "a": nobody }),
                "input.accountId",
            ),
            (
                "mutation($i: ID!, $a: ID!) { linkExternalRef(input: { integrationId: $i, accountId: $a, externalId: \"ext-1\" }) { id } }",
                json!({ "i": integration, "a": foreign_account }),
                "input.accountId",
            ),
        ];
        for (mutation, variables, field) in refused {
            let response = as_alice(&portal, mutation, variables).await?;
            let error = &response["errors"][0];
            assert_eq!(
                error["extensions"]["code"], "BAD_USER_INPUT",
                "{mode:?} {field}: {response}"
            );
            assert_eq!(error["extensions"]["field"], field, "{mode:?}: {response}");
            assert!(response["data"].is_null(), "{mode:?}: {response}");
        }
        assert_eq!(
            counts(&portal).await?,
            before,
            "{mode:?}: a refused mutation wrote"
        );
        // The same mutations with usable references succeed.
        let ok = as_alice(
            &portal,
            "mutation($o: ID!, $p: [ID!], $a: ID) {
               createAccount(input: { ownerId: $o, number: \"ACME-0901\", name: \"X\", currency: \"EUR\" }) { owner { displayName } }
               createThread(input: { subject: \"S\", body: \"B\", participantIds: $p, accountId: $a }) { participants { displayName } }
             }",
            json!({ "o": carol, "p": [carol], "a": portal.account_id("ACME-0002").await? }),
        )
        .await?;
        assert!(ok.get("errors").is_none(), "{mode:?}: {ok}");
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_gone_behind_the_api_reads_as_null_with_a_not_found_error() -> anyhow::Result<()>
{
    use portal_entities::accounts::{account, ledger_entry};
    use sea_orm::{ColumnTrait, QueryFilter};
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let payroll: uuid::Uuid = portal.account_id("ACME-0003").await?.parse()?;
    // Gone behind the API's back, ledger and all (the ledger's foreign key keeps an
    // account with entries from being deleted on its own).
    ledger_entry::Entity::delete_many()
        .filter(ledger_entry::Column::AccountId.eq(payroll))
        .exec(&portal.db)
        .await?;
    account::Entity::delete_by_id(payroll)
        .exec(&portal.db)
        .await?;
    // Carol's thread about her payroll account still lists, without the account.
    let listed = portal
        .query_with_roles(
            portal.seed.tenant_id,
            portal.seed.carol_id,
            &["customer_user"],
            "{ threads { edges { node { subject account { number } } } } }",
            json!({}),
        )
        .await?;
    let edges = listed["data"]["threads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let invoice = edges
        .iter()
        .find(|e| e["node"]["subject"] == "Question about an invoice")
        .ok_or_else(|| anyhow::anyhow!("thread missing: {listed}"))?;
    assert!(invoice["node"]["account"].is_null(), "{listed}");
    let errors = listed["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e["extensions"]["code"] == "NOT_FOUND"),
        "{listed}"
    );
    portal.stop().await;
    Ok(())
}
