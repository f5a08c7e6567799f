//! `@requires` of a field that takes arguments:
//! `insurance: Int! @requires(fields: "price(currency: EUR)")`.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// Owns `Product.price(currency: String!): Int!`.
mod catalog {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, Enum, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    #[derive(Enum, Clone, Copy, PartialEq, Eq)]
    pub enum Currency {
        Eur,
        Usd,
    }

    #[ComplexObject]
    impl Product {
        async fn price(&self, currency: Currency) -> i32 {
            let eur = if self.id.as_str() == "p1" { 100 } else { 250 };
            match currency {
                Currency::Eur => eur,
                Currency::Usd => eur * 11 / 10,
            }
        }
    }

    fn product(id: &str) -> Product {
        let name = if id == "p1" { "Kettle" } else { "Fridge" };
        Product {
            id: id.into(),
            name: name.into(),
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            vec![product("p1"), product("p2")]
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            product(&id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Insures at a tenth of the euro price.
mod insurance {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, Enum, ID, Object, Schema, SimpleObject,
    };

    #[derive(Enum, Clone, Copy, PartialEq, Eq)]
    pub enum Currency {
        Eur,
        Usd,
    }

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
        #[graphql(skip)]
        pub eur_price: Option<i32>,
    }

    #[ComplexObject]
    impl Product {
        #[graphql(external)]
        async fn price(&self, currency: Currency) -> async_graphql::Result<i32> {
            match (currency, self.eur_price) {
                (Currency::Eur, Some(price)) => Ok(price),
                _ => Err("price is external here".into()),
            }
        }

        #[graphql(requires = "price(currency: EUR)")]
        async fn insurance(&self) -> async_graphql::Result<i32> {
            Ok(self.eur_price.ok_or("price was not provided")? / 10)
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(&self, #[graphql(key)] id: ID, price: Option<i32>) -> Product {
            Product {
                id,
                eur_price: price,
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

async fn shop() -> anyhow::Result<TestGateway> {
    Supergraph::new()
        .subgraph("catalog", catalog::schema())
        .subgraph("insurance", insurance::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_field_with_arguments_is_fetched_with_those_arguments() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ products { name insurance } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "insurance": 10 },
            { "name": "Fridge", "insurance": 25 },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_field_with_arguments_does_not_clash_with_the_clients_own_arguments()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            "{ products { price(currency: USD) insurance eur: price(currency: EUR) } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "price": 110, "insurance": 10, "eur": 100 },
            { "price": 275, "insurance": 25, "eur": 250 },
        ]}}),
    );
    Ok(())
}
