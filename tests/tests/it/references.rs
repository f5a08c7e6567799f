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
async fn a_user_deleted_behind_the_api_reads_as_a_deleted_user_and_breaks_no_list() -> anyhow::Result<()> {
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
            text.matches("Deleted user").count() >= 2 + 4 + 1 + 1,
            "{mode:?}: {listing}"
        );
        portal.stop().await;
    }
    Ok(())
}
