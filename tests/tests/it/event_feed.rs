//! The event feed: every committed domain event reaches a process's subscribers exactly
//! once — from this connection pool or another (another process, as far as the database
//! can tell) — and a rolled-back change's event never does.

use std::collections::HashMap;
use std::time::Duration;

use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::events::feed::EventFeed;
use portal_kit::{Actor, RequestMeta};
use portal_tests::TestDb;
use uuid::Uuid;

async fn record(
    db: &sea_orm::DatabaseConnection,
    subject: Uuid,
    commit: bool,
) -> anyhow::Result<()> {
    let actor = Actor::user(Uuid::now_v7(), Uuid::now_v7(), vec![]);
    let txn = db.begin_write().await?;
    AuditEvent::success("account.update", "account", subject)
        .record(&txn, &actor, &RequestMeta::default())
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    if commit {
        txn.commit().await?;
    } else {
        txn.rollback().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_events_reach_subscribers_once_and_rolled_back_ones_never() -> anyhow::Result<()>
{
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    // Another pool: on PostgreSQL the wake-up comes through NOTIFY from it.
    let other = test_db.connect().await?;
    let feed = EventFeed::start(db.clone(), Duration::from_millis(100));
    let mut events = feed.subscribe();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let rolled_back = Uuid::now_v7();
    record(&other, rolled_back, false).await?;
    let mut expected = Vec::new();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let subjects: Vec<Uuid> = (0..25).map(|_| Uuid::now_v7()).collect();
            expected.extend(subjects.iter().copied());
            let db = other.clone();
            tokio::spawn(async move {
                for subject in subjects {
                    record(&db, subject, true).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let mut received: HashMap<Uuid, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received.len() < expected.len() {
        let event = tokio::time::timeout_at(deadline, events.recv()).await??;
        let subject = event.subject_id.unwrap_or_default();
        *received.entry(subject).or_default() += 1;
        assert_eq!(event.event_type, "account.updated");
    }
    // A little longer: nothing arrives twice, and the rolled-back event never.
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        *received
            .entry(event.subject_id.unwrap_or_default())
            .or_default() += 1;
    }
    assert!(
        !received.contains_key(&rolled_back),
        "a rolled-back event was published"
    );
    assert_eq!(received.len(), expected.len());
    assert!(
        received.values().all(|&n| n == 1),
        "duplicates: {received:?}"
    );
    db.close().await?;
    other.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_ends_with_slow_consumer_not_a_gap() -> anyhow::Result<()> {
    use futures::StreamExt;
    use portal_kit::subscription::{SUBSCRIBER_BUFFER, Subscribed, follow};
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let feed = EventFeed::start(db.clone(), Duration::from_millis(50));
    let tenant = Uuid::now_v7();
    let subject = Uuid::now_v7();
    let mut updates = follow(
        Subscribed::to(&feed),
        tenant,
        move |event| event.subject_id == Some(subject),
        |event| async move { Ok(Some(event.id)) },
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // More events than the subscriber's buffer, none read meanwhile.
    let actor = Actor::user(Uuid::now_v7(), tenant, vec![]);
    for _ in 0..SUBSCRIBER_BUFFER + 8 {
        AuditEvent::success("account.update", "account", subject)
            .record(&db, &actor, &RequestMeta::default())
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut delivered = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), updates.next()).await? {
            Some(Ok(_)) => delivered += 1,
            Some(Err(err)) => break err,
            None => anyhow::bail!("ended without telling the subscriber"),
        }
    };
    assert_eq!(
        delivered, SUBSCRIBER_BUFFER,
        "what was buffered is delivered"
    );
    assert_eq!(ended.code().as_str(), "SLOW_CONSUMER");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), updates.next())
            .await?
            .is_none(),
        "the stream ends after SLOW_CONSUMER"
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

/// Events are numbered after commit, in one gap-free order, while writers commit out of
/// order (some hold their transaction open): a consumer reading by its cursor takes every
/// committed event exactly once, and a rolled-back one never.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_numbered_after_commit_without_gaps_forks_or_misses() -> anyhow::Result<()> {
    use portal_entities::platform::domain_event;
    use portal_kit::events::sequence;
    use sea_orm::EntityTrait;

    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let other = test_db.connect().await?;
    let rolled_back = Uuid::now_v7();
    record(&other, rolled_back, false).await?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Two sequencers at once (two workers): they must not fork the numbering.
    let sequencers: Vec<_> = [db.clone(), other.clone()]
        .into_iter()
        .map(|pool| {
            let done = done.clone();
            tokio::spawn(async move {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    sequence::assign(&pool, 7)
                        .await
                        .map_err(|e| anyhow::anyhow!(e.message()))?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    // A consumer following by its cursor.
    let consumer = {
        let (db, done) = (db.clone(), done.clone());
        tokio::spawn(async move {
            let mut taken: Vec<Uuid> = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let at = sequence::position(&db, "test")
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message()))?;
                let events = sequence::after(&db, at, 10)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message()))?;
                if let Some(last) = events.last() {
                    let txn = db.begin_write().await?;
                    sequence::advance(&txn, "test", last.sequence.unwrap_or_default())
                        .await
                        .map_err(|e| anyhow::anyhow!(e.message()))?;
                    txn.commit().await?;
                    taken.extend(events.iter().filter_map(|e| e.subject_id));
                } else if finished {
                    return anyhow::Ok(taken);
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };
    let mut expected = Vec::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let subjects: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
            expected.extend(subjects.iter().copied());
            let db = other.clone();
            tokio::spawn(async move {
                for (i, subject) in subjects.into_iter().enumerate() {
                    let actor = Actor::user(Uuid::now_v7(), Uuid::now_v7(), vec![]);
                    let txn = db.begin_write().await?;
                    AuditEvent::success("account.update", "account", subject)
                        .record(&txn, &actor, &RequestMeta::default())
                        .await
                        .map_err(|e| anyhow::anyhow!(e.message()))?;
                    // Some commit well after their event got its id.
                    if (i + w) % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    txn.commit().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    // Whatever the loops left is numbered before the consumer's last look.
    sequence::assign_all(&db, 50)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for sequencer in sequencers {
        sequencer.await??;
    }
    sequence::assign_all(&db, 50)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let taken = consumer.await??;

    let mut numbers: Vec<i64> = domain_event::Entity::find()
        .all(&db)
        .await?
        .iter()
        .map(|e| {
            e.sequence
                .ok_or_else(|| anyhow::anyhow!("an event left unnumbered"))
        })
        .collect::<anyhow::Result<_>>()?;
    numbers.sort_unstable();
    let count = i64::try_from(numbers.len())?;
    assert_eq!(numbers, (1..=count).collect::<Vec<_>>(), "gaps or forks");
    let mut seen: HashMap<Uuid, u32> = HashMap::new();
    for subject in &taken {
        *seen.entry(*subject).or_default() += 1;
    }
    assert!(!seen.contains_key(&rolled_back));
    for subject in &expected {
        assert_eq!(seen.get(subject), Some(&1), "{subject} taken once");
    }
    db.close().await?;
    other.close().await?;
    test_db.cleanup().await;
    Ok(())
}
