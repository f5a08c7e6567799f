//! Notifications of messaging events through the gateway, policies enforced: the in-app
//! list and `notificationReceived` (only one's own), preferences with tenant defaults,
//! emails held by quiet hours until they end and gathered into digests (on a clock the
//! test moves), and one-click unsubscribe (RFC 8058).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::messages::notification;
use portal_entities::platform::{audit_event, email_outbox, job};
use portal_kit::clock::ManualClock;
use portal_kit::jobs::runner::JobHandler;
use portal_messages::jobs::notifications::{GatewayDirectory, NotificationEmail};
use portal_tests::streams::WsClient;
use portal_tests::{Mode, TestPortal};

fn ok(response: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(response.get("errors").is_none(), "{response}");
    Ok(())
}

fn code(response: &Value) -> &Value {
    &response["errors"][0]["extensions"]["code"]
}

/// Carol's notifications (in-app list), waiting up to ten seconds for `count` of them.
async fn wait_for_notifications(
    portal: &TestPortal,
    (tenant, user, role): (Uuid, Uuid, &str),
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    let query = "{ notifications { edges { node { id event readAt thread { id } message { body } actor { displayName } } } } unreadNotificationCount }";
    for _ in 0..100 {
        let found = portal
            .query_with_roles(tenant, user, &[role], query, json!({}))
            .await?;
        ok(&found)?;
        let edges = found["data"]["notifications"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if edges.len() >= count {
            return Ok(edges.into_iter().map(|e| e["node"].clone()).collect());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{count} notifications did not arrive")
}

/// `local` (HH:MM) on `day` in Berlin (Acme's time zone), as UTC.
fn berlin(day: chrono::NaiveDate, local: &str) -> DateTime<Utc> {
    let time = NaiveTime::parse_from_str(local, "%H:%M").expect("HH:MM");
    chrono_tz::Europe::Berlin
        .from_local_datetime(&day.and_time(time))
        .earliest()
        .expect("a time that exists in Berlin")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_are_notified_as_they_prefer_quiet_hours_hold_email_and_one_click_unsubscribes()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, alice, carol) = (seed.tenant_id, seed.alice_id, seed.carol_id);
    let dave = portal
        .create_user("dave@acme.example", "Dave Support")
        .await?;
    let as_carol = |q: &'static str, v: Value| {
        portal.query_with_roles(tenant, carol, &["customer_user"], q, v)
    };
    let as_dave =
        |q: &'static str, v: Value| portal.query_with_roles(tenant, dave, &["support_agent"], q, v);
    let as_admin =
        |q: &'static str, v: Value| portal.query_with_roles(tenant, alice, &["tenant_admin"], q, v);

    // Carol follows her notifications live.
    let mut init = serde_json::Map::new();
    init.insert("x-portal-tenant-id".into(), json!(tenant.to_string()));
    init.insert("x-portal-user-id".into(), json!(carol.to_string()));
    init.insert("x-portal-roles".into(), json!("customer_user"));
    let mut ws = WsClient::connect(&portal.endpoint, Value::Object(init)).await?;
    ws.subscribe(
        "mine",
        "subscription { notificationReceived { event thread { id } message { body } } }",
        json!({}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Carol asks; support answers: Carol is notified (in the list, live), Dave is not (he
    // wrote it), and nobody else is.
    let created = as_carol(
        "mutation { createThread(input: { subject: \"Card declined\", body: \"My card was declined\" }) { id } }",
        json!({}),
    )
    .await?;
    ok(&created)?;
    let thread = created["data"]["createThread"]["id"].clone();
    let post =
        "mutation($t: ID!, $b: String!) { postMessage(input: { threadId: $t, body: $b }) { id } }";
    ok(&as_dave(post, json!({ "t": thread, "b": "Please try again now" })).await?)?;
    let list = wait_for_notifications(&portal, (tenant, carol, "customer_user"), 1).await?;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["event"], "NEW_MESSAGE");
    assert_eq!(list[0]["thread"]["id"], thread);
    assert_eq!(list[0]["message"]["body"], "Please try again now");
    assert_eq!(list[0]["actor"]["displayName"], "Dave Support");
    assert!(list[0]["readAt"].is_null());
    let live = ws.next().await?;
    assert_eq!(live["id"], "mine", "{live}");
    assert_eq!(
        live["payload"]["data"]["notificationReceived"]["event"],
        "NEW_MESSAGE"
    );
    assert_eq!(
        live["payload"]["data"]["notificationReceived"]["message"]["body"],
        "Please try again now"
    );
    let daves = as_dave("{ unreadNotificationCount }", json!({})).await?;
    assert_eq!(daves["data"]["unreadNotificationCount"], 0, "{daves}");
    let admins = as_admin("{ notifications { edges { node { id } } } }", json!({})).await?;
    assert_eq!(
        admins["data"]["notifications"]["edges"],
        json!([]),
        "{admins}"
    );
    let gina = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            "{ unreadNotificationCount }",
            json!({}),
        )
        .await?;
    assert_eq!(gina["data"]["unreadNotificationCount"], 0, "{gina}");
    // Another user cannot mark Carol's notification read (it is not theirs: nothing
    // changes); Carol can.
    let id = list[0]["id"].clone();
    let mark = "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }";
    let theirs = as_dave(mark, json!({ "ids": [id] })).await?;
    assert_eq!(theirs["data"]["markNotificationsRead"], 0, "{theirs}");
    let both = as_carol(
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids, all: true) }",
        json!({ "ids": [id] }),
    )
    .await?;
    assert_eq!(code(&both), "BAD_USER_INPUT", "{both}");
    let mine = as_carol(mark, json!({ "ids": [id] })).await?;
    assert_eq!(mine["data"]["markNotificationsRead"], 1, "{mine}");
    let count = as_carol("{ unreadNotificationCount }", json!({})).await?;
    assert_eq!(count["data"]["unreadNotificationCount"], 0);

    // Preferences: the platform's defaults, then the tenant's, then Carol's own.
    let prefs = "{ notificationPreferences { preferences { event channel frequency source } quietHours { starts ends } } }";
    let email_new = |found: &Value| -> Value {
        found["data"]["notificationPreferences"]["preferences"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|p| p["event"] == "NEW_MESSAGE" && p["channel"] == "EMAIL")
                    .cloned()
            })
            .unwrap_or(Value::Null)
    };
    let before = as_carol(prefs, json!({})).await?;
    ok(&before)?;
    assert_eq!(email_new(&before)["frequency"], "IMMEDIATE");
    assert_eq!(email_new(&before)["source"], "PLATFORM");
    let defaults = "mutation($f: NotificationFrequency) { updateTenantNotificationDefaults(input: { preferences: [{ event: NEW_MESSAGE, channel: EMAIL, frequency: $f }] }) { event channel frequency source } }";
    let refused = as_carol(defaults, json!({ "f": "DAILY" })).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    ok(&as_admin(defaults, json!({ "f": "DAILY" })).await?)?;
    let tenant_chose = as_carol(prefs, json!({})).await?;
    assert_eq!(email_new(&tenant_chose)["frequency"], "DAILY");
    assert_eq!(email_new(&tenant_chose)["source"], "TENANT");
    let update = "mutation($input: UpdateNotificationPreferencesInput!) { updateNotificationPreferences(input: $input) { preferences { event channel frequency source } quietHours { starts ends } } }";
    let digest_in_app = as_carol(
        update,
        json!({ "input": { "preferences": [{ "event": "NEW_MESSAGE", "channel": "IN_APP", "frequency": "HOURLY" }] } }),
    )
    .await?;
    assert_eq!(code(&digest_in_app), "BAD_USER_INPUT", "{digest_in_app}");
    let bad_hours = as_carol(
        update,
        json!({ "input": { "quietHours": { "starts": "22:00", "ends": "7am" } } }),
    )
    .await?;
    assert_eq!(code(&bad_hours), "BAD_USER_INPUT", "{bad_hours}");
    let chosen = as_carol(
        update,
        json!({ "input": {
            "preferences": [{ "event": "NEW_MESSAGE", "channel": "EMAIL", "frequency": "IMMEDIATE" }],
            "quietHours": { "starts": "22:00", "ends": "07:00" },
        } }),
    )
    .await?;
    ok(&chosen)?;
    let chosen = &chosen["data"]["updateNotificationPreferences"];
    assert_eq!(
        chosen["quietHours"],
        json!({ "starts": "22:00", "ends": "07:00" })
    );
    let own = chosen["preferences"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|p| p["event"] == "NEW_MESSAGE" && p["channel"] == "EMAIL")
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(own["source"], "USER", "{own}");
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::Action.eq("notification_preferences.update"))
        .all(&portal.db)
        .await?;
    assert!(!audited.is_empty());

    // The first answer's email (due at once) meets quiet hours: at 23:30 in Berlin it is
    // held until 07:00 there, then sent.
    let clock = ManualClock::starting_at(Utc::now());
    let directory = GatewayDirectory::new(
        portal_identity::principals::FromIdentity::new(portal.db.clone()),
        Arc::new(portal.gateway_client.clone()),
    );
    let emails = NotificationEmail::new(
        portal.messages_store(),
        directory,
        portal_tests::identity_settings().data_key,
        clock.clone(),
    );
    let tomorrow = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive()
        + chrono::Duration::days(1);
    clock.set(berlin(tomorrow, "23:30"));
    let run = portal_tests::job(
        NotificationEmail::KIND,
        json!({ "userId": carol }),
        Some(tenant),
    );
    emails
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let carols_mail = || async {
        anyhow::Ok(
            email_outbox::Entity::find()
                .filter(email_outbox::Column::Recipient.eq("carol@acme.example"))
                .order_by_asc(email_outbox::Column::Id)
                .all(&portal.db)
                .await?,
        )
    };
    assert!(carols_mail().await?.is_empty(), "sent during quiet hours");
    let held = job::Entity::find()
        .filter(job::Column::Kind.eq(NotificationEmail::KIND))
        .filter(job::Column::RunAt.eq(berlin(tomorrow + chrono::Duration::days(1), "07:00")))
        .all(&portal.db)
        .await?;
    assert_eq!(held.len(), 1, "the email comes back as the quiet hours end");
    clock.set(berlin(tomorrow + chrono::Duration::days(1), "07:00"));
    emails
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let sent = carols_mail().await?;
    assert_eq!(sent.len(), 1);
    let outbox = &sent[0];
    assert!(outbox.unsubscribe_sealed.is_some());
    // Running again sends nothing twice.
    emails
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    assert_eq!(carols_mail().await?.len(), 1);

    // The delivered message: RFC 8058 headers, no conversation text.
    let path = portal.mail_dir.join(format!("{}.eml", outbox.id));
    let mut eml = String::new();
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            eml = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{eml}"
    );
    let link = eml
        .lines()
        .find_map(|line| line.strip_prefix("List-Unsubscribe: <"))
        .and_then(|rest| rest.strip_suffix('>'))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no List-Unsubscribe header: {eml}"))?;
    for secret in ["Card declined", "declined", "try again"] {
        assert!(!eml.contains(secret), "{secret} in the email");
    }

    // One click: GET only shows the page; POST unsubscribes; a forged link is refused.
    let base = portal.endpoint.trim_end_matches("/graphql");
    let url = if link.starts_with("http") {
        link.clone()
    } else {
        format!("{base}{link}")
    };
    let http = reqwest::Client::new();
    let page = http.get(&url).send().await?;
    assert_eq!(page.status(), 200);
    assert_eq!(
        email_new(&as_carol(prefs, json!({})).await?)["frequency"],
        "IMMEDIATE"
    );
    let forged = http
        .post(format!("{url}x"))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(forged.status(), 404);
    let clicked = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(clicked.status(), 200);
    let after = as_carol(prefs, json!({})).await?;
    assert_eq!(email_new(&after)["frequency"], "OFF", "{after}");
    assert_eq!(email_new(&after)["source"], "USER");
    let unsubscribed = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::Action.eq("notification_preferences.unsubscribe"))
        .all(&portal.db)
        .await?;
    assert_eq!(unsubscribed.len(), 1);
    assert_eq!(unsubscribed[0].actor_id, Some(carol));

    // Unsubscribed: the next answer is in the list but not emailed.
    ok(&as_dave(post, json!({ "t": thread, "b": "Did it work?" })).await?)?;
    wait_for_notifications(&portal, (tenant, carol, "customer_user"), 2).await?;
    let newest = notification::Entity::find()
        .filter(notification::Column::UserId.eq(carol))
        .order_by_desc(notification::Column::Id)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no notification"))?;
    assert!(newest.in_app);
    assert!(newest.email_due_at.is_none());

    // Hourly digests: two answers, one email at the top of the hour.
    ok(&as_carol(
        update,
        json!({ "input": {
            "preferences": [{ "event": "NEW_MESSAGE", "channel": "EMAIL", "frequency": "HOURLY" }],
            "quietHours": null,
        } }),
    )
    .await?)?;
    ok(&as_dave(post, json!({ "t": thread, "b": "One" })).await?)?;
    ok(&as_dave(post, json!({ "t": thread, "b": "Two" })).await?)?;
    wait_for_notifications(&portal, (tenant, carol, "customer_user"), 4).await?;
    let pending = notification::Entity::find()
        .filter(notification::Column::UserId.eq(carol))
        .filter(notification::Column::EmailedAt.is_null())
        .filter(notification::Column::EmailDueAt.is_not_null())
        .all(&portal.db)
        .await?;
    assert_eq!(pending.len(), 2);
    let due = pending[0].email_due_at.expect("due");
    assert_eq!(pending[1].email_due_at, Some(due));
    assert_eq!(due.timestamp() % 3600, 0, "top of the hour");
    let digest_jobs = job::Entity::find()
        .filter(job::Column::Kind.eq(NotificationEmail::KIND))
        .filter(job::Column::RunAt.eq(due))
        .all(&portal.db)
        .await?;
    assert_eq!(digest_jobs.len(), 1, "one job per recipient and time");
    clock.set(due - chrono::Duration::minutes(1));
    emails
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    assert_eq!(carols_mail().await?.len(), 1, "not due yet");
    clock.set(due);
    emails
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let sent = carols_mail().await?;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].subject, "2 updates in your secure messages");
    Ok(())
}
