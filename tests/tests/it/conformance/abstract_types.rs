//! Interfaces and unions across subgraphs, `@interfaceObject`, and `__typename` on
//! abstract types.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// Owns `interface Media @key(fields: "id")`, its implementations `Book` and `Movie`, and
/// `union SearchResult = Book | Movie`.
mod media {
    use async_graphql::{
        EmptyMutation, EmptySubscription, ID, Interface, Object, Schema, SimpleObject, Union,
    };

    #[derive(SimpleObject, Clone)]
    pub struct Book {
        pub id: ID,
        pub title: String,
        pub pages: i32,
    }

    #[derive(SimpleObject, Clone)]
    pub struct Movie {
        pub id: ID,
        pub title: String,
        pub minutes: i32,
    }

    #[derive(Interface, Clone)]
    #[graphql(field(name = "id", ty = "&ID"), field(name = "title", ty = "&String"))]
    pub enum Media {
        Book(Book),
        Movie(Movie),
    }

    #[derive(Union, Clone)]
    pub enum SearchResult {
        Book(Book),
        Movie(Movie),
    }

    fn book(id: &str, title: &str, pages: i32) -> Book {
        Book {
            id: id.into(),
            title: title.into(),
            pages,
        }
    }

    fn all() -> Vec<Media> {
        vec![
            Media::Book(book("b1", "Dune", 412)),
            Media::Movie(Movie {
                id: "m1".into(),
                title: "Alien".into(),
                minutes: 117,
            }),
            Media::Book(book("b2", "Emma", 474)),
        ]
    }

    fn id_of(media: &Media) -> &ID {
        match media {
            Media::Book(b) => &b.id,
            Media::Movie(m) => &m.id,
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn library(&self) -> Vec<Media> {
            all()
        }

        async fn search(&self, term: String) -> Vec<SearchResult> {
            all()
                .into_iter()
                .rev()
                .filter_map(|m| {
                    let found = match m {
                        Media::Book(b) => SearchResult::Book(b),
                        Media::Movie(m) => SearchResult::Movie(m),
                    };
                    let title = match &found {
                        SearchResult::Book(b) => &b.title,
                        SearchResult::Movie(m) => &m.title,
                    };
                    title.contains(term.as_str()).then_some(found)
                })
                .collect()
        }

        #[graphql(entity)]
        async fn media_by_id(&self, id: ID) -> Option<Media> {
            all().into_iter().find(|m| *id_of(m) == id)
        }

        #[graphql(entity)]
        async fn book_by_id(&self, id: ID) -> Option<Book> {
            all().into_iter().find_map(|m| match m {
                Media::Book(b) if b.id == id => Some(b),
                _ => None,
            })
        }

        #[graphql(entity)]
        async fn movie_by_id(&self, id: ID) -> Option<Movie> {
            all().into_iter().find_map(|m| match m {
                Media::Movie(m) if m.id == id => Some(m),
                _ => None,
            })
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Adds `rating` to every `Media` without knowing its implementations
/// (`type Media @key(fields: "id") @interfaceObject`).
mod ratings {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    #[graphql(interface_object)]
    pub struct Media {
        pub id: ID,
        pub rating: i32,
    }

    fn rating(id: &str) -> i32 {
        match id {
            "b1" => 5,
            "m1" => 3,
            "b2" => 4,
            _ => 0,
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        /// The best rated media, known here only as interface objects.
        async fn top_rated(&self) -> Vec<Media> {
            ["b1", "b2", "m1"]
                .into_iter()
                .map(|id| Media {
                    id: id.into(),
                    rating: rating(id),
                })
                .collect()
        }

        #[graphql(entity)]
        async fn media_by_id(&self, id: ID) -> Media {
            let rating = rating(&id);
            Media { id, rating }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Adds `Book.author` (a concrete member of the interface and of the union).
mod authors {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Book {
        pub id: ID,
        pub author: String,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn book_by_id(&self, id: ID) -> Book {
            let author = if id.as_str() == "b1" {
                "Herbert"
            } else {
                "Austen"
            };
            Book {
                id,
                author: author.into(),
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
        .subgraph("media", media::schema())
        .subgraph("ratings", ratings::schema())
        .subgraph("authors", authors::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_object_fields_are_merged_into_every_implementation() -> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            "{ library { __typename id title rating ... on Book { pages } ... on Movie { minutes } } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "library": [
            { "__typename": "Book", "id": "b1", "title": "Dune", "rating": 5, "pages": 412 },
            { "__typename": "Movie", "id": "m1", "title": "Alien", "rating": 3, "minutes": 117 },
            { "__typename": "Book", "id": "b2", "title": "Emma", "rating": 4, "pages": 474 },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_object_root_field_answers_with_concrete_types() -> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            "{ topRated { __typename id rating title ... on Book { pages } ... on Movie { minutes } } }",
            json!({}),
        )
        .await;
    // `ratings` only knows `Media`; the concrete type and the fragments' fields come from
    // `media`, which owns the interface.
    assert_json(
        &response,
        json!({ "data": { "topRated": [
            { "__typename": "Book", "id": "b1", "rating": 5, "title": "Dune", "pages": 412 },
            { "__typename": "Book", "id": "b2", "rating": 4, "title": "Emma", "pages": 474 },
            { "__typename": "Movie", "id": "m1", "rating": 3, "title": "Alien", "minutes": 117 },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_on_union_members_fetch_each_members_fields_from_its_subgraphs()
-> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            r#"{ search(term: "") {
                __typename
                ... on Book { title author }
                ... on Movie { title minutes }
            } }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "search": [
            { "__typename": "Book", "title": "Emma", "author": "Austen" },
            { "__typename": "Movie", "title": "Alien", "minutes": 117 },
            { "__typename": "Book", "title": "Dune", "author": "Herbert" },
        ]}}),
    );
    // Only the books are sent to the subgraph that extends `Book`.
    assert_eq!(
        gateway.requests("authors").entity_batches(),
        vec![vec![
            json!({ "__typename": "Book", "id": "b2" }),
            json!({ "__typename": "Book", "id": "b1" }),
        ]]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_on_interface_implementations_fetch_fields_of_the_matching_type_only()
-> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            "{ library { title ... on Book { author } ... on Media { id } } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "library": [
            { "title": "Dune", "author": "Herbert", "id": "b1" },
            { "title": "Alien", "id": "m1" },
            { "title": "Emma", "author": "Austen", "id": "b2" },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typename_on_interface_and_union_fields_is_the_concrete_type() -> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            r#"{ library { __typename } search(term: "e") { __typename } __typename }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "library": [{ "__typename": "Book" }, { "__typename": "Movie" }, { "__typename": "Book" }],
            "search": [{ "__typename": "Movie" }, { "__typename": "Book" }],
            "__typename": "Query",
        }}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_fragments_on_interfaces_and_unions_apply_by_runtime_type() -> anyhow::Result<()> {
    let gateway = library().await?;
    let response = gateway
        .query(
            r#"
            query {
                search(term: "") { ...Hit }
                library { ...Rated }
            }
            fragment Hit on SearchResult { ...BookHit ... on Movie { minutes } }
            fragment BookHit on Book { author pages }
            fragment Rated on Media { rating ...BookHit }
            "#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "search": [
                { "author": "Austen", "pages": 474 },
                { "minutes": 117 },
                { "author": "Herbert", "pages": 412 },
            ],
            "library": [
                { "rating": 5, "author": "Herbert", "pages": 412 },
                { "rating": 3 },
                { "rating": 4, "author": "Austen", "pages": 474 },
            ],
        }}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_fields_need_no_concrete_type() -> anyhow::Result<()> {
    let gateway = library().await?;
    // `ratings` knows `Media` only as an interface object and never says what each value
    // is; a selection of interface fields needs no more.
    let response = gateway.query("{ topRated { id rating } }", json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "topRated": [
            { "id": "b1", "rating": 5 },
            { "id": "b2", "rating": 4 },
            { "id": "m1", "rating": 3 },
        ]}}),
    );
    // Nor does a fragment on the interface itself.
    let response = gateway
        .query(
            "{ topRated { ... on Media { id } ...M } } fragment M on Media { rating }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "topRated": [
            { "id": "b1", "rating": 5 },
            { "id": "b2", "rating": 4 },
            { "id": "m1", "rating": 3 },
        ]}}),
    );
    Ok(())
}
