//! The email outbox over real SMTP: a message queued in a transaction is delivered to an
//! SMTP server (a minimal one started here), and a delivery that fails is kept and
//! retried later, never lost.

use sea_orm::EntityTrait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use portal_entities::platform::{email_outbox, job};
use portal_kit::clock::ManualClock;
use portal_kit::jobs::runner::Runner;
use portal_kit::mail::{self, Email, Mailer};
use portal_kit::secret::DataKey;
use portal_tests::TestDb;

/// Accepts one SMTP session and returns the DATA it received.
async fn one_smtp_session(listener: tokio::net::TcpListener) -> anyhow::Result<String> {
    let (socket, _) = listener.accept().await?;
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test ESMTP\r\n").await?;
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await? {
        if in_data {
            if line == "." {
                write.write_all(b"250 queued\r\n").await?;
                // The client's pool may keep the connection open: the message is in.
                break;
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250 test\r\n").await?,
            "DATA" => {
                in_data = true;
                write.write_all(b"354 go ahead\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                break;
            }
            _ => write.write_all(b"250 ok\r\n").await?,
        }
    }
    Ok(data)
}

fn worker(
    db: &sea_orm::DatabaseConnection,
    key: &DataKey,
    mailer: Mailer,
    clock: &std::sync::Arc<ManualClock>,
) -> std::sync::Arc<Runner> {
    let shared: portal_kit::clock::SharedClock = clock.clone();
    std::sync::Arc::new(Runner::new(db.clone(), shared).handle(
        mail::DELIVER_KIND,
        std::sync::Arc::new(mail::Delivery::new(db.clone(), key.clone(), mailer)),
    ))
}

fn smtp_to(port: u16) -> anyhow::Result<Mailer> {
    Mailer::new(
        "Portal <no-reply@portal.test>",
        Mailer::smtp(&format!("smtp://127.0.0.1:{port}")).map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_reaches_an_smtp_server_and_failures_are_retried() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let key = DataKey::from_secret(b"mail-test-secret-mail-test-secret!");
    let email = Email {
        to: "carol@acme.example".into(),
        subject: "Hello over SMTP".into(),
        text: "It works.".into(),
        unsubscribe: None,
    };
    mail::enqueue(&db, &key, None, email)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let clock = ManualClock::starting_at(chrono::Utc::now() + chrono::Duration::seconds(1));
    let run = |runner: std::sync::Arc<Runner>| async move {
        runner
            .run_once()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };

    // Nobody listens on this port: the attempt fails, the message stays for later.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dead_port = closed.local_addr()?.port();
    drop(closed);
    assert_eq!(
        run(worker(&db, &key, smtp_to(dead_port)?, &clock)).await?,
        1
    );
    let row = email_outbox::Entity::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("lost"))?;
    assert_eq!((row.attempts, row.sent_at), (1, None));
    assert!(row.last_error.is_some());
    let delivery = job::Entity::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no delivery job"))?;
    assert_eq!(delivery.state, "queued", "retried later: {delivery:?}");

    // After the backoff, a live server gets it.
    clock.advance(chrono::Duration::minutes(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(one_smtp_session(listener));
    let live = worker(&db, &key, smtp_to(port)?, &clock);
    assert_eq!(run(live.clone()).await?, 1);
    let data = tokio::time::timeout(std::time::Duration::from_secs(20), server)
        .await
        .map_err(|_| anyhow::anyhow!("the message never reached the SMTP server"))???;
    assert!(
        data.contains("Subject: Hello over SMTP") && data.contains("It works."),
        "{data}"
    );
    assert!(data.contains("To: carol@acme.example"), "{data}");
    let row = email_outbox::Entity::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("lost"))?;
    assert!(row.sent_at.is_some());
    assert_eq!(row.attempts, 2);
    // Delivered mail is not sent twice, and adopting pending mail finds none.
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(run(live).await?, 0);
    mail::adopt_pending(&db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(job::Entity::find().all(&db).await?.len(), 1);
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
