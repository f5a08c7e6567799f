//! `portal serve gateway --supergraph FILE --listen ADDR` in front of subgraphs that are
//! not the portal's, on a machine with nothing set up: no configuration file, no
//! environment, an empty working directory. This is how a Federation compatibility suite
//! runs the gateway from outside.

use std::process::{Child, Command, Stdio};

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

mod common;

use common::{free_port, wait_healthy};
use portal_gateway::compose::{self, SubgraphSdl};

/// The first subgraph: products and their names.
mod products {
    use super::*;

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    fn product(id: &str) -> Option<Product> {
        let name = match id {
            "p1" => "Kettle",
            "p2" => "Toaster",
            _ => return None,
        };
        Some(Product {
            id: id.into(),
            name: name.into(),
        })
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            ["p1", "p2"].into_iter().filter_map(product).collect()
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Option<Product> {
            product(&id)
        }
    }
}

/// The second subgraph: reviews of products.
mod reviews {
    use super::*;

    #[derive(SimpleObject)]
    pub struct Review {
        pub body: String,
    }

    pub struct Product {
        pub id: ID,
    }

    #[Object]
    impl Product {
        async fn id(&self) -> &ID {
            &self.id
        }

        async fn reviews(&self) -> Vec<Review> {
            let bodies: &[&str] = match self.id.as_str() {
                "p1" => &["Boils fast", "Loud"],
                _ => &[],
            };
            bodies
                .iter()
                .map(|body| Review {
                    body: (*body).into(),
                })
                .collect()
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            Product { id }
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Set when any test subgraph received the portal's internal token (which carries the
/// caller: never for someone else's subgraphs).
static SAW_INTERNAL_TOKEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Serves `schema` over HTTP at `/graphql`; returns the URL and its Federation SDL.
async fn serve<Q>(schema: Schema<Q, EmptyMutation, EmptySubscription>) -> (String, String)
where
    Q: async_graphql::ObjectType + 'static,
{
    let sdl = schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation());
    let app = axum::Router::new().route(
        "/graphql",
        post(
            move |headers: axum::http::HeaderMap, Json(request): Json<async_graphql::Request>| {
                if headers.contains_key(portal_kit::internal_token::HEADER) {
                    SAW_INTERNAL_TOKEN.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let schema = schema.clone();
                async move { Json(schema.execute(request).await) }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let url = format!("http://{}/graphql", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, sdl)
}

/// The two test subgraphs, served, composed under the names `names`.
async fn third_party_supergraph(names: [&str; 2]) -> anyhow::Result<String> {
    let products = Schema::build(products::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish();
    let reviews = Schema::build(reviews::Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish();
    let (products_url, products_sdl) = serve(products).await;
    let (reviews_url, reviews_sdl) = serve(reviews).await;
    Ok(compose::compose(&[
        SubgraphSdl {
            name: names[0].into(),
            url: products_url,
            sdl: products_sdl,
        },
        SubgraphSdl {
            name: names[1].into(),
            url: reviews_url,
            sdl: reviews_sdl,
        },
    ])?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_gateway_serves_a_third_party_supergraph_from_a_file() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    // Names are someone else's to choose: one that a portal subgraph also has changes
    // nothing (only the secret lets a gateway reach the portal's subgraphs).
    let supergraph = third_party_supergraph(["accounts", "reviews"]).await?;

    let dir = std::env::temp_dir().join(format!("portal-standalone-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("supergraph.graphql");
    std::fs::write(&file, supergraph)?;
    let log = std::fs::File::create(dir.join("gateway.log"))?;
    let port = free_port();
    let _gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_portal"))
            .env_clear()
            .env("RUST_LOG", "warn")
            .current_dir(&dir)
            .args(["serve", "gateway", "--supergraph"])
            .arg(&file)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );

    let http = reqwest::Client::new();
    wait_healthy(&http, port, Some(&dir.join("gateway.log"))).await;

    let response: Value = http
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&json!({ "query": "{ products { name reviews { body } } }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        response,
        json!({ "data": { "products": [
            { "name": "Kettle", "reviews": [{ "body": "Boils fast" }, { "body": "Loud" }] },
            { "name": "Toaster", "reviews": [] },
        ] } })
    );

    // Someone else's subgraphs learn nothing about the caller.
    assert!(!SAW_INTERNAL_TOKEN.load(std::sync::atomic::Ordering::SeqCst));

    // No policy speaks of these subgraphs' fields: authorization is off, and says so.
    let log = std::fs::read_to_string(dir.join("gateway.log"))?;
    assert!(
        log.contains("field-level authorization is OFF"),
        "the gateway should warn that authorization is off:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
