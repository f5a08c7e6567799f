//! The gateway never panics and always answers with a GraphQL response, whatever the
//! document and variables: thousands of deterministic random mutations of valid
//! operations (cut, duplicated and spliced text, stray tokens, odd variables).

use portal_tests::{Mode, TestPortal};
use serde_json::{Value, json};

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "{ me { displayName accounts(first: 2) { edges { node { number balance owner { email } reports { edges { node { name } } } externalRefs { externalId integration { name } } } } } threads { edges { node { subject } } } } }",
    "query Q($n: Int = 1, $s: Boolean!) { accounts(first: $n) { edges { cursor node { ...A } } pageInfo { hasNextPage } } me @skip(if: $s) { id } } fragment A on Account { id name status }",
    "mutation M($input: CreateAccountInput!) { createAccount(input: $input) { id number } }",
    "{ __schema { types { name fields(includeDeprecated: true) { name type { kind ofType { name } } } } } }",
    "query { ...F } fragment F on Query { __typename users { edges { node { roles { name } } } } }",
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "...",
    "@skip(if: $s)",
    "@include(if: true)",
    "fragment F on User { id }",
    "$",
    "$n",
    ":",
    "\"",
    "\"\"\"",
    "1e999",
    "-0",
    "__typename",
    "query",
    "mutation",
    "subscription",
    "on",
    "null",
    "true",
    "#",
    "\\u0000",
    ",",
    "!",
    "=",
    "&",
    "|",
    "Account",
    "edges",
    "node",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(4) {
        let len = text.len();
        match rng.below(5) {
            0 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(20)).min(len);
                text.drain(start..end);
            }
            1 if len > 0 => {
                let start = rng.below(len);
                let end = (start + rng.below(40)).min(len);
                let copy: Vec<char> = text[start..end].to_vec();
                let at = rng.below(len);
                text.splice(at..at, copy);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                text.splice(at..at, format!(" {token} ").chars());
            }
            3 if len > 0 => {
                let at = rng.below(len);
                text[at] = char::from_u32(0x20 + (rng.next() % 0x5f) as u32).unwrap_or(' ');
            }
            _ => text.truncate(rng.below(len + 1)),
        }
    }
    text.into_iter().collect()
}

fn variables(rng: &mut Rng) -> Value {
    let pick = |rng: &mut Rng| match rng.below(7) {
        0 => Value::Null,
        1 => json!(rng.next() as i64),
        2 => json!("text"),
        3 => json!([1, [2, [3]], null]),
        4 => json!({ "ownerId": "x", "number": 7, "extra": { "deep": [true] } }),
        5 => json!(true),
        _ => json!(1.5e300),
    };
    json!({ "n": pick(rng), "s": pick(rng), "input": pick(rng) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_documents_and_variables_always_get_a_graphql_answer() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for round in 0..4000 {
        let seed = SEEDS[rng.below(SEEDS.len())];
        let document = mutate(&mut rng, seed);
        let vars = variables(&mut rng);
        let response = portal
            .query_as_carol(&document, vars.clone())
            .await
            .map_err(|err| {
                anyhow::anyhow!("round {round}: no answer ({err}) for {document:?} with {vars}")
            })?;
        assert!(
            response.get("data").is_some() || response["errors"].is_array(),
            "round {round}: not a GraphQL response for {document:?}: {response}"
        );
    }
    // Still serving normally afterwards.
    let response = portal
        .query_as_carol("{ me { displayName } }", json!({}))
        .await?;
    assert_eq!(
        response,
        json!({ "data": { "me": { "displayName": "Carol Customer" } } })
    );
    portal.stop().await;
    Ok(())
}
