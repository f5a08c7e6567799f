//! The job runner on the real database (SQLite, or PostgreSQL with
//! `PORTAL_TEST_DATABASE_URL`): transactional enqueueing, leases, retries with backoff,
//! dead letters, idempotency, concurrent workers and cron schedules — time moved by a
//! manual clock, never slept through.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use parking_lot::Mutex;
use portal_entities::platform::job;
use portal_kit::clock::{ManualClock, SharedClock};
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler, Runner};
use portal_kit::jobs::schedule::{self, NewSchedule};
use portal_kit::jobs::{JobState, NewJob, enqueue};
use portal_tests::TestDb;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::json;
use uuid::Uuid;

/// Counts runs per job and fails the first `failures` runs of each.
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<Uuid, u32>>,
    contexts: Mutex<Vec<JobContext>>,
    failures: u32,
    permanent: bool,
}

#[async_trait::async_trait]
impl JobHandler for Recorder {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let runs = {
            let mut all = self.runs.lock();
            let count = all.entry(job.id).or_default();
            *count += 1;
            *count
        };
        self.contexts.lock().push(job.clone());
        if self.permanent {
            return Err(JobError::Permanent("bad input".into()));
        }
        if runs <= self.failures {
            return Err(JobError::Retry(format!("failure {runs}")));
        }
        Ok(())
    }
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

async fn database() -> anyhow::Result<(TestDb, DatabaseConnection)> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    Ok((test_db, db))
}

async fn state(db: &DatabaseConnection, id: Uuid) -> anyhow::Result<job::Model> {
    job::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job {id} missing"))
}

fn runner(
    db: &DatabaseConnection,
    clock: &Arc<ManualClock>,
    handler: Arc<Recorder>,
) -> Arc<Runner> {
    let shared: SharedClock = clock.clone();
    Arc::new(Runner::new(db.clone(), shared).handle("test.record", handler))
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder::default());
    let worker = runner(&db, &clock, recorder.clone());
    let txn = db.begin_write().await?;
    enqueue(
        &txn,
        clock.now(),
        NewJob::new("test.record", json!({ "n": 1 })),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    txn.rollback().await?;
    assert_eq!(
        worker
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        0
    );
    let txn = db.begin_write().await?;
    let id = enqueue(
        &txn,
        clock.now(),
        NewJob::new("test.record", json!({ "n": 2 })),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    txn.commit().await?;
    assert_eq!(
        worker
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        1
    );
    let done = state(&db, id).await?;
    assert_eq!(JobState::from_db(&done.state), JobState::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_eq!(recorder.runs.lock().len(), 1);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

use portal_kit::clock::Clock;

#[tokio::test]
async fn a_failing_job_retries_with_backoff_then_is_dead_lettered() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder {
        failures: u32::MAX,
        ..Default::default()
    });
    let worker = runner(&db, &clock, recorder.clone());
    let id = enqueue(
        &db,
        clock.now(),
        NewJob::new("test.record", json!({})).max_attempts(3),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    let run = || async {
        worker
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))
    };
    assert_eq!(run().await?, 1);
    let after_first = state(&db, id).await?;
    assert_eq!(JobState::from_db(&after_first.state), JobState::Queued);
    assert_eq!(after_first.last_error.as_deref(), Some("failure 1"));
    // Not before its backoff (about 2 s) has passed.
    assert!(after_first.run_at > clock.now() + Duration::milliseconds(1_500));
    assert_eq!(run().await?, 0, "retried before its time");
    clock.advance(Duration::seconds(3));
    assert_eq!(run().await?, 1);
    clock.advance(Duration::seconds(6));
    assert_eq!(run().await?, 1);
    let dead = state(&db, id).await?;
    assert_eq!(JobState::from_db(&dead.state), JobState::Dead, "{dead:?}");
    assert_eq!(dead.attempts, 3);
    // Each outcome is a domain event, committed with it (what `jobUpdated` follows).
    let outcomes: Vec<String> = {
        use portal_entities::platform::domain_event;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        domain_event::Entity::find()
            .filter(domain_event::Column::SubjectId.eq(id))
            .order_by_asc(domain_event::Column::Id)
            .all(&db)
            .await?
            .into_iter()
            .map(|event| event.event_type)
            .collect()
    };
    assert_eq!(outcomes, ["job.failed", "job.failed", "job.dead_lettered"]);
    clock.advance(Duration::hours(2));
    assert_eq!(run().await?, 0, "a dead job ran again");
    // An administrator's retry gives it fresh attempts.
    portal_kit::jobs::retry(&db, clock.now(), None, id)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(
        JobState::from_db(&state(&db, id).await?.state),
        JobState::Queued
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_permanent_failure_is_dead_at_once_and_cancelled_jobs_never_run() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder {
        permanent: true,
        ..Default::default()
    });
    let worker = runner(&db, &clock, recorder.clone());
    let doomed = enqueue(&db, clock.now(), NewJob::new("test.record", json!({})))
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let later = enqueue(
        &db,
        clock.now(),
        NewJob::new("test.record", json!({})).at(clock.now() + Duration::minutes(5)),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    portal_kit::jobs::cancel(&db, clock.now(), None, later)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    worker
        .run_once()
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(
        JobState::from_db(&state(&db, doomed).await?.state),
        JobState::Dead
    );
    clock.advance(Duration::minutes(10));
    worker
        .run_once()
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(
        JobState::from_db(&state(&db, later).await?.state),
        JobState::Cancelled
    );
    assert_eq!(recorder.runs.lock().len(), 1);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn an_idempotency_key_enqueues_once_and_the_principal_reaches_the_handler()
-> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder::default());
    let worker = runner(&db, &clock, recorder.clone());
    let actor =
        portal_kit::Actor::user(Uuid::now_v7(), Uuid::now_v7(), vec!["billing_admin".into()]);
    let job = NewJob::new("test.record", json!({ "report": 7 }))
        .acting_for(&actor)
        .idempotency_key("report-7-2026-12");
    let first = enqueue(&db, clock.now(), job.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let second = enqueue(&db, clock.now(), job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(first, second);
    assert_eq!(
        worker
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        1
    );
    let seen = recorder.contexts.lock().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].principal.as_ref(), Some(&actor));
    assert_eq!(seen[0].tenant_id, actor.tenant_id);
    assert_eq!(seen[0].payload, json!({ "report": 7 }));
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_job_whose_worker_died_is_run_by_another_after_its_lease() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder::default());
    let dying = runner(&db, &clock, recorder.clone());
    let survivor = runner(&db, &clock, recorder.clone());
    let id = enqueue(&db, clock.now(), NewJob::new("test.record", json!({})))
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    // The first worker claims it and dies before running it.
    let claimed = dying
        .claim()
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        survivor
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        0,
        "leased job taken"
    );
    clock.advance(Duration::seconds(31));
    assert_eq!(
        survivor
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        1
    );
    let done = state(&db, id).await?;
    assert_eq!(JobState::from_db(&done.state), JobState::Succeeded);
    assert_eq!(done.worker.as_deref(), Some(survivor.worker_id()));
    assert_eq!(done.attempts, 2);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_never_run_the_same_job() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let recorder = Arc::new(Recorder::default());
    for n in 0..120 {
        enqueue(
            &db,
            clock.now(),
            NewJob::new("test.record", json!({ "n": n })),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    }
    let workers: Vec<Arc<Runner>> = (0..4)
        .map(|_| {
            let shared: SharedClock = clock.clone();
            Arc::new(
                Runner::new(db.clone(), shared)
                    .handle("test.record", recorder.clone())
                    .batch(7),
            )
        })
        .collect();
    let tasks = workers.into_iter().map(|worker| {
        tokio::spawn(async move {
            let mut idle = 0;
            while idle < 3 {
                match worker.run_once().await {
                    Ok(0) => idle += 1,
                    Ok(_) => idle = 0,
                    Err(err) => return Err(anyhow::anyhow!(err.message())),
                }
            }
            Ok(())
        })
    });
    for task in tasks.collect::<Vec<_>>() {
        task.await??;
    }
    let runs = recorder.runs.lock().clone();
    assert_eq!(runs.len(), 120);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice: {runs:?}");
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_schedule_enqueues_each_occurrence_once_and_catches_up_once() -> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    schedule::upsert(
        &db,
        clock.now(),
        "schedule",
        NewSchedule {
            name: "statement:test".into(),
            kind: "test.record".into(),
            payload: json!({}),
            tenant_id: None,
            principal: None,
            cron: "0 9 * * *".into(),
            time_zone: "Europe/Berlin".into(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    let due = |at| {
        let db = db.clone();
        async move {
            schedule::enqueue_due(&db, at)
                .await
                .map_err(|e| anyhow::anyhow!(e.message()))
        }
    };
    assert_eq!(due(clock.now()).await?, 0, "not due yet");
    // 09:00 in Berlin on 5 December is 08:00 UTC.
    clock.set(
        Utc.with_ymd_and_hms(2026, 12, 5, 8, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    assert_eq!(due(clock.now()).await?, 1);
    assert_eq!(due(clock.now()).await?, 0, "the same occurrence twice");
    // Down for three days: the missed occurrences run once, not three times.
    clock.advance(Duration::days(3) + Duration::hours(2));
    assert_eq!(due(clock.now()).await?, 1);
    let jobs = job::Entity::find().all(&db).await?;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_see_and_retry_their_tenants_jobs_through_the_api() -> anyhow::Result<()> {
    use portal_tests::{Mode, TestPortal};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut job = NewJob::new("test.never_handled", json!({ "secret": "not shown" }));
    job.tenant_id = Some(seed.tenant_id);
    let id = enqueue(&portal.db, Utc::now(), job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let mut dead: job::ActiveModel = state(&portal.db, id).await?.into();
    dead.state = Set("dead".into());
    dead.last_error = Set(Some("remote said no".into()));
    dead.update(&portal.db).await?;
    let list = "{ jobs(filter: { state: DEAD }) { edges { node { id kind state lastError } } } }";
    let admin = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            list,
            json!({}),
        )
        .await?;
    let edges = admin["data"]["jobs"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 1, "{admin}");
    assert_eq!(edges[0]["node"]["lastError"], "remote said no");
    assert!(
        !admin.to_string().contains("not shown"),
        "payload leaked: {admin}"
    );
    // Another tenant's admin, and a customer, see none of it.
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            list,
            json!({}),
        )
        .await?;
    assert_eq!(other["data"]["jobs"]["edges"], json!([]), "{other}");
    let customer = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            list,
            json!({}),
        )
        .await?;
    assert_eq!(
        customer["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{customer}"
    );
    let retry = "mutation($id: ID!) { retryJob(id: $id) { state attempts } }";
    let vars = json!({ "id": id.to_string() });
    let foreign = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            retry,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        foreign["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{foreign}"
    );
    let retried = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            retry,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        retried["data"]["retryJob"],
        json!({ "state": "QUEUED", "attempts": 0 }),
        "{retried}"
    );
    let again = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            retry,
            vars,
        )
        .await?;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "CONFLICT",
        "{again}"
    );
    portal.stop().await;
    Ok(())
}

/// Records an audit event as the job's principal, as job handlers do.
struct Auditing(DatabaseConnection);

#[async_trait::async_trait]
impl JobHandler for Auditing {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let principal = job
            .principal
            .clone()
            .ok_or_else(|| JobError::Permanent("no principal".into()))?;
        portal_kit::audit::AuditEvent::success("report_run.request", "report_run", job.id)
            .record(&self.0, &principal, &job.audit_meta())
            .await
            .map_err(|e| JobError::Retry(e.message()))
    }
}

#[tokio::test]
async fn audit_events_a_job_causes_name_its_principal_and_the_job() -> anyhow::Result<()> {
    use portal_entities::platform::audit_event;
    use sea_orm::{ColumnTrait, QueryFilter};
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let shared: SharedClock = clock.clone();
    let worker = Arc::new(
        Runner::new(db.clone(), shared).handle("test.audit", Arc::new(Auditing(db.clone()))),
    );
    let (tenant, user) = (Uuid::now_v7(), Uuid::now_v7());
    let principal = portal_kit::Actor::user(user, tenant, vec!["customer_user".into()]);
    let id = enqueue(
        &db,
        clock.now(),
        NewJob::new("test.audit", json!({})).acting_for(&principal),
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(
        worker
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        1
    );
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(id))
        .all(&db)
        .await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    // For whom (the actor) and by which job (the request id, the agent).
    assert_eq!(rows[0].actor_id, Some(user));
    assert_eq!(rows[0].tenant_id, Some(tenant));
    assert_eq!(
        rows[0].request_id.as_deref(),
        Some(format!("job:{id}").as_str())
    );
    // The agent is sealed to the actor's key (personal data); opened with the master key.
    assert_eq!(rows[0].user_agent, None);
    let mut reader =
        portal_kit::audit::personal::Reader::new(portal_tests::tenant_keys(&db).provider());
    let opened = reader
        .open(&db, &rows[0])
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(
        opened.user_agent.as_deref(),
        Some("portal-worker (test.audit)")
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

/// Waits on a gate the test opens; counts the runs that started.
#[derive(Default)]
struct Gated {
    started: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl JobHandler for Gated {
    async fn run(&self, _job: &JobContext) -> Result<(), JobError> {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gate.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_claims_nothing_more_and_gives_back_the_leases_it_holds()
-> anyhow::Result<()> {
    let (test_db, db) = database().await?;
    let clock = ManualClock::starting_at(start());
    let shared: SharedClock = clock.clone();
    let gated = Arc::new(Gated::default());
    let worker = Arc::new(
        Runner::new(db.clone(), shared.clone())
            .poll(std::time::Duration::from_millis(20))
            .handle("test.gated", gated.clone()),
    );
    let id = enqueue(&db, clock.now(), NewJob::new("test.gated", json!({})))
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = worker.clone().spawn_until(stopped);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gated.started.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let running = state(&db, id).await?;
    assert_eq!(JobState::from_db(&running.state), JobState::Running);
    assert_eq!(running.attempts, 1);

    // Asked to stop, it claims nothing more: a second job stays queued.
    stop.send_replace(true);
    let second = enqueue(&db, clock.now(), NewJob::new("test.gated", json!({})))
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "it waits for the job it runs");
    assert_eq!(
        JobState::from_db(&state(&db, second).await?.state),
        JobState::Queued
    );

    // The grace period is over: the handler is stopped, the lease goes back, due at once
    // (the attempt counts).
    let released = worker
        .release_leases()
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    assert_eq!(released, 1);
    let back = state(&db, id).await?;
    assert_eq!(JobState::from_db(&back.state), JobState::Queued);
    assert_eq!(back.attempts, 1);
    assert!(back.worker.is_none() && back.lease_until.is_none());
    assert!(back.run_at <= clock.now());

    // Another worker takes both at once; the stopped worker records nothing more.
    let recorder = Arc::new(Recorder::default());
    let other = Arc::new(Runner::new(db.clone(), shared).handle("test.gated", recorder.clone()));
    assert_eq!(
        other
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?,
        2
    );
    task.await?;
    assert_eq!(gated.started.load(std::sync::atomic::Ordering::SeqCst), 1);
    for (job, attempts) in [(id, 2), (second, 1)] {
        let done = state(&db, job).await?;
        assert_eq!(JobState::from_db(&done.state), JobState::Succeeded);
        assert_eq!(done.attempts, attempts);
    }
    // One outcome per job: the stopped handler's attempt recorded none.
    let finished = portal_entities::platform::domain_event::Entity::find()
        .all(&db)
        .await?
        .into_iter()
        .filter(|e| e.event_type == "job.succeeded" || e.event_type == "job.failed")
        .count();
    assert_eq!(finished, 2);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
