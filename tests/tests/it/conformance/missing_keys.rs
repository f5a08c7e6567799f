//! An entity whose key an earlier fetch could not provide (its subgraph returned `null`
//! for it) is not sent on: the representation would lack its key, and a subgraph refuses
//! the whole `_entities` batch for one bad representation.

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
