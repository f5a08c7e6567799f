//! An entity whose key an earlier fetch could not provide (its subgraph returned `null`
//! for it) is not sent on: the representation would lack its key, and a subgraph refuses
//! the whole `_entities` batch for one bad representation. A field that *is* there but
//! `null` (a nullable `@requires` field) is sent as `null`.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// Shelves of books, known here by `upc` only.
mod shelves {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Book {
        pub upc: String,
    }

    #[derive(SimpleObject)]
    pub struct Slot {
        pub book: Book,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn slots(&self) -> Vec<Slot> {
            ["b1", "b2", "b3"]
                .into_iter()
                .map(|upc| Slot {
                    book: Book { upc: upc.into() },
                })
                .collect()
        }

        #[graphql(entity)]
        async fn book_by_upc(&self, upc: String) -> Book {
            Book { upc }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Maps `upc` to the catalogue `id`; knows nothing of `b3`.
mod catalog {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Book {
        pub upc: String,
        pub id: ID,
    }

    fn book(upc: &str) -> Option<Book> {
        let id = match upc {
            "b1" => "1",
            "b2" => "2",
            _ => return None,
        };
        Some(Book {
            upc: upc.into(),
            id: id.into(),
        })
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn book_by_upc(&self, upc: String) -> Option<Book> {
            book(&upc)
        }

        #[graphql(entity)]
        async fn book_by_id(&self, id: ID) -> Option<Book> {
            ["b1", "b2"]
                .into_iter()
                .filter_map(book)
                .find(|b| b.id == id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Authors by catalogue `id`; a representation without `id` fails the whole batch.
mod authors {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Author {
        pub name: String,
    }

    #[derive(SimpleObject)]
    pub struct Book {
        pub id: ID,
        pub author: Option<Author>,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn book_by_id(&self, id: ID) -> Book {
            let name = if id.as_str() == "1" { "Alice" } else { "Bob" };
            Book {
                id,
                author: Some(Author { name: name.into() }),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

async fn library() -> anyhow::Result<TestGateway> {
    Supergraph::new()
        .subgraph("shelves", shelves::schema())
        .subgraph("catalog", catalog::schema())
        .subgraph("authors", authors::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_without_its_key_is_not_sent_to_the_next_subgraph() -> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query("{ slots { book { upc author { name } } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "slots": [
            { "book": { "upc": "b1", "author": { "name": "Alice" } } },
            { "book": { "upc": "b2", "author": { "name": "Bob" } } },
            { "book": { "upc": "b3", "author": null } },
        ]}}),
    );
    assert_eq!(
        gateway.requests("authors").entity_batches(),
        vec![vec![
            json!({ "__typename": "Book", "id": "1" }),
            json!({ "__typename": "Book", "id": "2" }),
        ]]
    );
    Ok(())
}

/// Items with a nullable note.
mod items {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Item {
        pub id: ID,
        pub note: Option<String>,
    }

    fn item(id: &str) -> Item {
        Item {
            id: id.into(),
            note: (id == "i1").then(|| "fragile".to_owned()),
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn items(&self) -> Vec<Item> {
            ["i1", "i2"].into_iter().map(item).collect()
        }

        #[graphql(entity)]
        async fn item_by_id(&self, id: ID) -> Item {
            item(&id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Labels items from their note (`@requires(fields: "note")`).
mod labels {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Item {
        pub id: ID,
        #[graphql(external)]
        pub note: Option<String>,
    }

    #[ComplexObject]
    impl Item {
        #[graphql(requires = "note")]
        async fn label(&self) -> String {
            self.note.clone().unwrap_or_else(|| "plain".into())
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn item_by_id(&self, #[graphql(key)] id: ID, note: Option<String>) -> Item {
            Item { id, note }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_field_that_is_null_is_sent_as_null() -> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("items", items::schema())
        .subgraph("labels", labels::schema())
        .start()
        .await?;
    let response = gateway.query("{ items { id label } }", json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "items": [
            { "id": "i1", "label": "fragile" },
            { "id": "i2", "label": "plain" },
        ]}}),
    );
    assert_eq!(
        gateway.requests("labels").entity_batches(),
        vec![vec![
            json!({ "__typename": "Item", "id": "i1", "note": "fragile" }),
            json!({ "__typename": "Item", "id": "i2", "note": null }),
        ]]
    );
    Ok(())
}
