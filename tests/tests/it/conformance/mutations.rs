//! Mutation root fields run one after the other, in document order, each with its whole
//! selection (entity fetches included) finished before the next starts — even when they
//! alternate between subgraphs.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{Supergraph, assert_json};

/// What happened, in order, across both subgraphs.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Appends `event` and returns its 1-based position.
    pub fn push(&self, event: String) -> i32 {
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        events.push(event);
        i32::try_from(events.len()).unwrap_or(i32::MAX)
    }

    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Records entries (`Entry @key(fields: "id")`), optionally slowly.
mod ledger {
    use std::time::Duration;

    use async_graphql::{Context, EmptySubscription, ID, Object, Schema, SimpleObject};

    use super::Journal;

    #[derive(SimpleObject)]
    pub struct Entry {
        pub id: ID,
        pub position: i32,
        pub label: String,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn entry_count(&self, ctx: &Context<'_>) -> usize {
            ctx.data_unchecked::<Journal>().events().len()
        }

        #[graphql(entity)]
        async fn entry_by_id(&self, id: ID) -> Entry {
            Entry {
                position: id.parse().unwrap_or(0),
                label: String::new(),
                id,
            }
        }
    }

    pub struct Mutation;

    #[Object]
    impl Mutation {
        async fn record(
            &self,
            ctx: &Context<'_>,
            label: String,
            #[graphql(default = 0)] delay_ms: u64,
        ) -> Entry {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let position = ctx
                .data_unchecked::<Journal>()
                .push(format!("ledger:{label}"));
            Entry {
                id: position.to_string().into(),
                position,
                label,
            }
        }
    }

    pub fn schema(journal: Journal) -> Schema<Query, Mutation, EmptySubscription> {
        Schema::build(Query, Mutation, EmptySubscription)
            .enable_federation()
            .data(journal)
            .finish()
    }
}

/// Takes notes, and audits entries (`Entry.audited`, which is journaled too).
mod audit {
    use std::time::Duration;

    use async_graphql::{
        ComplexObject, Context, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    use super::Journal;

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Entry {
        pub id: ID,
    }

    #[ComplexObject]
    impl Entry {
        async fn audited(&self, ctx: &Context<'_>) -> bool {
            ctx.data_unchecked::<Journal>()
                .push(format!("audit:check:{}", self.id.as_str()));
            true
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn note_count(&self, ctx: &Context<'_>) -> usize {
            ctx.data_unchecked::<Journal>().events().len()
        }

        #[graphql(entity)]
        async fn entry_by_id(&self, id: ID) -> Entry {
            Entry { id }
        }
    }

    pub struct Mutation;

    #[Object]
    impl Mutation {
        async fn note(
            &self,
            ctx: &Context<'_>,
            label: String,
            #[graphql(default = 0)] delay_ms: u64,
        ) -> i32 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            ctx.data_unchecked::<Journal>()
                .push(format!("audit:{label}"))
        }
    }

    pub fn schema(journal: Journal) -> Schema<Query, Mutation, EmptySubscription> {
        Schema::build(Query, Mutation, EmptySubscription)
            .enable_federation()
            .data(journal)
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_fields_alternating_between_subgraphs_run_in_document_order() -> anyhow::Result<()>
{
    let journal = Journal::default();
    let gateway = Supergraph::new()
        .subgraph("ledger", ledger::schema(journal.clone()))
        .subgraph("audit", audit::schema(journal.clone()))
        .start()
        .await?;
    // The first field is the slowest: run concurrently, it would finish last.
    let response = gateway
        .query(
            r#"mutation {
                first: record(label: "a", delayMs: 200) { position }
                second: note(label: "b", delayMs: 100)
                third: record(label: "c") { position label }
                fourth: note(label: "d")
            }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "first": { "position": 1 },
            "second": 2,
            "third": { "position": 3, "label": "c" },
            "fourth": 4,
        }}),
    );
    assert_eq!(
        journal.events(),
        ["ledger:a", "audit:b", "ledger:c", "audit:d"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_fields_entity_selection_completes_before_the_next_mutation_field()
-> anyhow::Result<()> {
    let journal = Journal::default();
    let gateway = Supergraph::new()
        .subgraph("ledger", ledger::schema(journal.clone()))
        .subgraph("audit", audit::schema(journal.clone()))
        .start()
        .await?;
    let response = gateway
        .query(
            r#"mutation ($label: String!) {
                first: record(label: $label) { position audited }
                second: note(label: "b", delayMs: 50)
                third: record(label: "c") { label audited }
            }"#,
            json!({ "label": "a" }),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "first": { "position": 1, "audited": true },
            "second": 3,
            "third": { "label": "c", "audited": true },
        }}),
    );
    assert_eq!(
        journal.events(),
        [
            "ledger:a",
            "audit:check:1",
            "audit:b",
            "ledger:c",
            "audit:check:4"
        ]
    );
    Ok(())
}
