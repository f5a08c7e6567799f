//! `messages`: search over many encrypted messages through the gateway, and what
//! encryption and blind indexing cost when posting.
//!
//! 1. **Posting**, in process on the scratch database: `--posts` messages posted with
//!    the messages subgraph's own `post_message` (subject and body sealed with the tenant
//!    key, the body's blind-index tokens written, audit event and domain event) against a
//!    baseline doing the same transaction without sealing or indexing (the plaintext row
//!    of before), by `--concurrency` tasks each, alternating, in the same run. Reports
//!    posts/s of each and the cost as a ratio.
//! 2. **Search**: loads `--messages` messages (sealed and indexed exactly as the subgraph
//!    does, written in bulk) into one tenant, 100 per thread, from a vocabulary with a
//!    few common and many rare words; reports the index's bytes per message; starts the
//!    subgraphs and the gateway as separate processes and times `searchMessages` queries
//!    through the gateway — as support (every thread), as a customer taking part in a
//!    tenth of the threads and as one taking part in a single thread — reporting p50/p95
//!    per query.
//!
//! `cargo run --release -p portal-bench --bin messages -- --database-url postgres://…/postgres`
//! (`--keep` keeps the loaded database; `--reuse` with its URL measures search again on it).

use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_bench::processes::{Cluster, Extras, SECRET};
use portal_entities::messages::{message, thread, thread_participant};
use portal_kit::audit::AuditEvent;
use portal_kit::envelope::TenantKeys;
use portal_kit::secret::DataKey;
use portal_kit::{Actor, RequestMeta};
use portal_messages::domain::ParticipantKind;
use portal_messages::store::{self, NewMessage, Store, sealing, search};

/// Messages benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Messages loaded for the search measurements.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Messages posted per task and variant in the posting measurement.
    #[arg(long, default_value_t = 500)]
    posts: usize,
    /// Concurrent posting tasks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Timed requests per search query.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Keeps the scratch database (its URL is printed) for a later `--reuse`.
    #[arg(long)]
    keep: bool,
    /// `--database-url` is a database loaded by an earlier `--keep` run: measures search
    /// only (no posting, no load), and leaves the database.
    #[arg(long)]
    reuse: bool,
}

/// Deterministic words: a few very common, many rare.
fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "de", "pa", "zu", "fe", "go", "hi",
    ];
    let mut words = Vec::new();
    for a in syllables {
        for b in syllables {
            for c in syllables {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

/// A body of twelve words: word `i` of the vocabulary drawn with a skewed distribution.
fn body(vocabulary: &[String], n: u64) -> String {
    let mut state = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut words = Vec::with_capacity(12);
    for _ in 0..12 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (state >> 33) as f64 / (1_u64 << 31) as f64;
        // Skewed: squares favour the first words.
        let index = ((r * r * r) * vocabulary.len() as f64) as usize;
        words.push(vocabulary[index.min(vocabulary.len() - 1)].as_str());
    }
    words.join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    portal::install_crypto_provider();
    let url = match (&args.database_url, args.reuse) {
        (Some(url), true) => url.clone(),
        (None, true) => anyhow::bail!("--reuse needs --database-url"),
        (_, false) => {
            portal_bench::scratch_database(args.database_url.as_deref(), "messages").await?
        }
    };
    let db = portal::connect_and_migrate(&url, 16).await?;
    let backend = db.get_database_backend().as_str().to_owned();
    println!("# messages ({backend})");
    let seed = if args.reuse {
        portal::seed::demo_identities(&db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--reuse: no demo data in {url}"))?
    } else {
        portal::seed::seed(&db).await?
    };
    let keys = TenantKeys::local(db.clone(), DataKey::from_secret(SECRET.as_bytes()));
    let files = portal_kit::storage::FileStore::in_memory(&DataKey::from_secret(SECRET.as_bytes()));
    let store = Store {
        db: db.clone(),
        keys: keys.clone(),
        files,
    };
    let tenant = seed.tenant_id;
    let vocabulary = vocabulary();

    if !args.reuse {
        measure_posting_and_load(&args, &store, &seed, &vocabulary).await?;
    }
    if url.starts_with("postgres") {
        db.execute_unprepared("VACUUM ANALYZE").await?;
        let size = |relation: &'static str| {
            let db = db.clone();
            async move {
                let row = db
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        format!("SELECT pg_total_relation_size('{relation}')::bigint"),
                    ))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no size"))?;
                anyhow::Ok(row.try_get_by_index::<i64>(0)?)
            }
        };
        let index = size("message_search_index").await?;
        let messages = size("messages").await?;
        let count = sea_orm::PaginatorTrait::count(message::Entity::find(), &db).await?;
        println!(
            "blind index: {:.0} bytes per message (table and indexes); messages table: {:.0} bytes per message\n",
            index as f64 / count as f64,
            messages as f64 / count as f64
        );
    }
    db.close().await?;

    let workdir =
        std::env::temp_dir().join(format!("portal-bench-messages-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let cluster = Cluster::start_full(&workdir, &url, &Extras::default()).await?;
    let http = reqwest::Client::new();
    let query = "query($q: String!) { searchMessages(query: $q, first: 20) { edges { node { id body } } } }";
    println!(
        "## search through the gateway ({} samples each)\n",
        args.samples
    );
    println!("| as | query | results | p50 ms | p95 ms |\n|---|---|---|---|---|");
    let common = vocabulary[0].clone();
    let medium = vocabulary[60].clone();
    let rare = vocabulary[vocabulary.len() - 7].clone();
    let prefix = vocabulary[1][..4].to_owned();
    let pair = format!("{} {}", vocabulary[0], vocabulary[3]);
    // In no message: the whole index must be ruled out.
    let absent = "quokka".to_owned();
    for (who, user, role) in [
        ("support", seed.alice_id, "support_agent"),
        ("customer", seed.carol_id, "customer_user"),
        // Alice as a customer: one small thread, none of the loaded messages.
        ("customer of one thread", seed.alice_id, "customer_user"),
    ] {
        for q in [&common, &medium, &rare, &prefix, &pair, &absent] {
            let mut times = Vec::with_capacity(args.samples);
            let mut results = 0;
            for _ in 0..args.samples {
                let started = Instant::now();
                let response: Value = http
                    .post(&cluster.gateway_url)
                    .header("x-portal-tenant-id", tenant.to_string())
                    .header("x-portal-user-id", user.to_string())
                    .header("x-portal-roles", role)
                    .json(&json!({ "query": query, "variables": { "q": q } }))
                    .send()
                    .await?
                    .json()
                    .await?;
                times.push(started.elapsed());
                anyhow::ensure!(response.get("errors").is_none(), "{response}");
                results = response["data"]["searchMessages"]["edges"]
                    .as_array()
                    .map_or(0, Vec::len);
            }
            times.sort();
            println!(
                "| {who} | `{q}` | {results} | {:.1} | {:.1} |",
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.95).as_secs_f64() * 1e3
            );
        }
    }
    drop(cluster);
    if args.keep {
        println!("\nkept for --reuse: {url}");
    } else if !args.reuse {
        portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    }
    Ok(())
}

/// Measures posting (sealed and indexed vs plaintext), then loads the messages searched.
async fn measure_posting_and_load(
    args: &Args,
    store: &Store,
    seed: &portal::seed::DemoSeed,
    vocabulary: &[String],
) -> anyhow::Result<()> {
    let db = &store.db;
    let tenant = seed.tenant_id;
    // 1. Posting: sealed and indexed vs plaintext, alternating rounds.
    let carol = Actor::user(seed.carol_id, tenant, vec!["customer_user".into()]);
    let thread_id = first_thread_of(db, tenant, seed.carol_id).await?;
    let mut sealed_rates = Vec::new();
    let mut plain_rates = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let shared = (store.clone(), carol.clone(), vocabulary.to_vec());
        post_many(args, move |task, i| {
            let (store, carol, vocabulary) = shared.clone();
            async move {
                let new = NewMessage {
                    thread_id,
                    body: body(&vocabulary, (round * 1_000_000 + task * 10_000 + i) as u64),
                    reply_to: None,
                    author_kind: ParticipantKind::Customer,
                    attachment_ids: Vec::new(),
                };
                store::post_message(&store, &carol, &RequestMeta::default(), new)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                anyhow::Ok(())
            }
        })
        .await?;
        sealed_rates.push((args.posts * args.concurrency) as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        let shared = (db.clone(), carol.clone(), vocabulary.to_vec());
        post_many(args, move |task, i| {
            let (db, carol, vocabulary) = shared.clone();
            async move {
                let text = body(&vocabulary, (round * 1_000_000 + task * 10_000 + i) as u64);
                plain_post(&db, &carol, thread_id, text).await
            }
        })
        .await?;
        plain_rates.push((args.posts * args.concurrency) as f64 / started.elapsed().as_secs_f64());
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (sealed, plain) = (median(&mut sealed_rates), median(&mut plain_rates));
    println!(
        "## posting ({} tasks, median of 3 alternating rounds)\n",
        args.concurrency
    );
    println!("| variant | posts/s |\n|---|---|");
    println!("| baseline: plaintext, not indexed | {plain:.0} |");
    println!("| sealed and indexed | {sealed:.0} |");
    println!(
        "\ncost of encryption and blind indexing: {:.1} % fewer posts/s\n",
        (1.0 - sealed / plain) * 100.0
    );

    // 2. Search over many messages.
    let started = Instant::now();
    let threads = load(store, seed, args.messages, vocabulary).await?;
    println!(
        "{} messages in {} threads loaded in {:.1} s",
        args.messages,
        threads,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn first_thread_of(
    db: &DatabaseConnection,
    tenant: Uuid,
    user: Uuid,
) -> anyhow::Result<Uuid> {
    use sea_orm::{ColumnTrait, QueryFilter};
    Ok(thread_participant::Entity::find()
        .filter(thread_participant::Column::TenantId.eq(tenant))
        .filter(thread_participant::Column::UserId.eq(user))
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no thread"))?
        .thread_id)
}

/// Runs `post(task, i)` for `args.posts` messages on each of `args.concurrency` tasks.
async fn post_many<F, Fut>(args: &Args, post: F) -> anyhow::Result<()>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let (post, posts) = (post.clone(), args.posts);
        tasks.push(tokio::spawn(async move {
            for i in 0..posts {
                post(task, i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The baseline: what posting wrote before encryption — the same checks and rows, the body
/// in plaintext, no index.
async fn plain_post(
    db: &DatabaseConnection,
    actor: &Actor,
    thread_id: Uuid,
    body: String,
) -> anyhow::Result<()> {
    let tenant = actor.tenant().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let author = actor.principal().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let txn = db.begin().await?;
    let current = store::thread(&txn, tenant, thread_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let part = store::participation(&txn, tenant, thread_id, author)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .ok_or_else(|| anyhow::anyhow!("not a participant"))?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    message::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant),
        thread_id: Set(thread_id),
        author_id: Set(author),
        created_at: Set(now),
        edited_at: Set(None),
        legacy_body: Set(Some(body)),
        body_sealed: Set(None),
        key_version: Set(None),
        reply_to_id: Set(None),
        deleted_at: Set(None),
    }
    .insert(&txn)
    .await?;
    // The author has read the thread up to their own message, as post_message records.
    let mut reader: thread_participant::ActiveModel = part.into();
    reader.last_read_at = Set(Some(now));
    reader.update(&txn).await?;
    let mut active: thread::ActiveModel = current.into();
    active.updated_at = Set(now);
    active.update(&txn).await?;
    AuditEvent::success("message.post", "message", id)
        .with_details(json!({ "threadId": thread_id }))
        .record(&txn, actor, &RequestMeta::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    txn.commit().await?;
    Ok(())
}

/// Loads `count` sealed, indexed messages into the demo tenant, 100 per thread; Carol
/// takes part in every tenth thread. The number of threads.
async fn load(
    store: &Store,
    seed: &portal::seed::DemoSeed,
    count: usize,
    vocabulary: &[String],
) -> anyhow::Result<usize> {
    let tenant = seed.tenant_id;
    let now = Utc::now();
    let threads = count.div_ceil(100);
    let version = store
        .keys
        .active_version(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let key = store
        .keys
        .index_key(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let start = now - chrono::Duration::seconds(count as i64 + 10);
    let mut made = 0_usize;
    for t in 0..threads {
        let thread_id = Uuid::now_v7();
        let subject = store
            .keys
            .seal_with(
                sealing::subject_binding(tenant, thread_id),
                version,
                b"Bench thread",
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let txn = store.db.begin().await?;
        thread::ActiveModel {
            id: Set(thread_id),
            tenant_id: Set(tenant),
            account_id: Set(None),
            created_by: Set(seed.bob_id),
            status: Set("OPEN".into()),
            created_at: Set(now),
            updated_at: Set(now),
            legacy_subject: Set(None),
            subject_sealed: Set(Some(subject.bytes)),
            key_version: Set(Some(version)),
            assignee_id: Set(None),
        }
        .insert(&txn)
        .await?;
        let mut members = vec![seed.bob_id];
        if t % 10 == 0 {
            members.push(seed.carol_id);
        }
        for user in members {
            thread_participant::ActiveModel {
                thread_id: Set(thread_id),
                user_id: Set(user),
                tenant_id: Set(tenant),
                created_at: Set(now),
                last_read_at: Set(None),
                kind: Set("CUSTOMER".into()),
            }
            .insert(&txn)
            .await?;
        }
        let mut messages = Vec::with_capacity(100);
        let mut tokens = Vec::with_capacity(100);
        for _ in 0..100.min(count - made) {
            let id = Uuid::now_v7();
            let text = body(vocabulary, made as u64);
            let at = start + chrono::Duration::seconds(made as i64);
            let sealed = store
                .keys
                .seal_with(sealing::body_binding(tenant, id), version, text.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            messages.push(message::ActiveModel {
                id: Set(id),
                tenant_id: Set(tenant),
                thread_id: Set(thread_id),
                author_id: Set(seed.bob_id),
                created_at: Set(at),
                edited_at: Set(None),
                legacy_body: Set(None),
                body_sealed: Set(Some(sealed.bytes)),
                key_version: Set(Some(version)),
                reply_to_id: Set(None),
                deleted_at: Set(None),
            });
            let mut hashes: Vec<i64> = portal_kit::blind_index::document_tokens(&text)
                .iter()
                .map(|token| portal_kit::blind_index::hash(&key, token))
                .collect();
            hashes.sort_unstable();
            hashes.dedup();
            tokens.push(search::Entry {
                message_id: id,
                thread_id,
                created_at: at,
                tokens: hashes,
            });
            made += 1;
        }
        message::Entity::insert_many(messages)
            .exec_without_returning(&txn)
            .await?;
        search::insert(&txn, tenant, &tokens)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        txn.commit().await?;
        if t % 1_000 == 999 {
            eprintln!("  {made} messages loaded");
        }
    }
    // The same computation the subgraph does (a check that the loader indexes alike).
    let probe = search::text_tokens(&store.keys, tenant, &body(vocabulary, 0))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    anyhow::ensure!(!probe.is_empty());
    Ok(threads)
}
