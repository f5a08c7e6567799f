//! The email outbox over real SMTP: a message queued in a transaction is delivered to an
//! SMTP server (a minimal one started here), and a delivery that fails is kept and
//! retried later, never lost.

use sea_orm::EntityTrait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use portal_entities::platform::email_outbox;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_reaches_an_smtp_server_and_failures_are_retried() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let key = DataKey::from_secret(b"mail-test-secret-mail-test-secret!");
    let email = Email {
        to: "carol@acme.example".into(),
        subject: "Hello over SMTP".into(),
        text: "It works.".into(),
    };
    mail::enqueue(&db, &key, None, email)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // Nobody listens on this port: the attempt fails, the row stays for later.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dead_port = closed.local_addr()?.port();
    drop(closed);
    let dead = Mailer::new(
        "Portal <no-reply@portal.test>",
        Mailer::smtp(&format!("smtp://127.0.0.1:{dead_port}")).map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let sent = mail::deliver_due(&db, &key, &dead)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(sent, 0);
    let row = email_outbox::Entity::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("lost"))?;
    assert_eq!((row.attempts, row.sent_at), (1, None));
    assert!(row.last_error.is_some() && row.next_attempt_at > chrono::Utc::now());

    // Due again (as after the backoff): delivered to a live server.
    email_outbox::Entity::update_many()
        .col_expr(
            email_outbox::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .exec(&db)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(one_smtp_session(listener));
    let live = Mailer::new(
        "Portal <no-reply@portal.test>",
        Mailer::smtp(&format!("smtp://127.0.0.1:{port}")).map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let sent = mail::deliver_due(&db, &key, &live)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(sent, 1);
    let data = server.await??;
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
    // Delivered mail is not sent twice.
    assert_eq!(
        mail::deliver_due(&db, &key, &live)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        0
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
