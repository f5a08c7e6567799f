//! Notifications of messaging events: users' preferences per event and channel, the
//! tenant's defaults, users' quiet hours, the notifications themselves (the in-app list and
//! what is still to be emailed), a one-click unsubscribe address on outbox emails, and the
//! seed policy rules of the new fields.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0050_message_notifications"
    }
}

const RULES: &[(&str, &str, &str)] = &[
    ("customer_user", "Query.notifications", "read"),
    ("customer_user", "Query.unreadNotificationCount", "read"),
    ("customer_user", "Query.notificationPreferences", "read"),
    ("customer_user", "Notification.*", "read"),
    ("customer_user", "NotificationConnection.*", "read"),
    ("customer_user", "NotificationEdge.*", "read"),
    ("customer_user", "NotificationPreferences.*", "read"),
    ("customer_user", "NotificationPreference.*", "read"),
    ("customer_user", "QuietHours.*", "read"),
    ("customer_user", "Mutation.markNotificationsRead", "write"),
    (
        "customer_user",
        "Mutation.updateNotificationPreferences",
        "write",
    ),
    ("customer_user", "Subscription.notificationReceived", "read"),
    ("support_agent", "Query.notifications", "read"),
    ("support_agent", "Query.unreadNotificationCount", "read"),
    ("support_agent", "Query.notificationPreferences", "read"),
    ("support_agent", "Notification.*", "read"),
    ("support_agent", "NotificationConnection.*", "read"),
    ("support_agent", "NotificationEdge.*", "read"),
    ("support_agent", "NotificationPreferences.*", "read"),
    ("support_agent", "NotificationPreference.*", "read"),
    ("support_agent", "QuietHours.*", "read"),
    ("support_agent", "Mutation.markNotificationsRead", "write"),
    (
        "support_agent",
        "Mutation.updateNotificationPreferences",
        "write",
    ),
    ("support_agent", "Subscription.notificationReceived", "read"),
    ("tenant_admin", "Query.tenantNotificationDefaults", "read"),
    ("tenant_admin", "NotificationPreference.*", "read"),
    (
        "tenant_admin",
        "Mutation.updateTenantNotificationDefaults",
        "write",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("notification_preferences")
                    .col(uuid("tenant_id"))
                    .col(uuid("user_id"))
                    .col(string_len("event", 32))
                    .col(string_len("channel", 16))
                    .col(string_len("frequency", 16))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("user_id")
                            .col("event")
                            .col("channel"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notification_defaults")
                    .col(uuid("tenant_id"))
                    .col(string_len("event", 32))
                    .col(string_len("channel", 16))
                    .col(string_len("frequency", 16))
                    .col(uuid("updated_by"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant_id").col("event").col("channel"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notification_quiet_hours")
                    .col(uuid("tenant_id"))
                    .col(uuid("user_id"))
                    .col(string_len("starts", 5))
                    .col(string_len("ends", 5))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant_id").col("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(pk_uuid("id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("user_id"))
                    .col(string_len("event", 32))
                    .col(uuid("thread_id"))
                    .col(uuid_null("message_id"))
                    .col(uuid_null("actor_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(boolean("in_app"))
                    .col(timestamp_with_time_zone_null("read_at"))
                    .col(timestamp_with_time_zone_null("email_due_at"))
                    .col(timestamp_with_time_zone_null("emailed_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notifications", "thread_id")
                            .to("threads", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_notifications_recipient")
                    .table("notifications")
                    .col("tenant_id")
                    .col("user_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("notifications", "thread_id"))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("email_outbox")
                    .add_column(text_null("unsubscribe_sealed"))
                    .to_owned(),
            )
            .await?;
        crate::seed_rules::add(manager, RULES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("email_outbox")
                    .drop_column(Alias::new("unsubscribe_sealed"))
                    .to_owned(),
            )
            .await?;
        for table in [
            "notifications",
            "notification_quiet_hours",
            "notification_defaults",
            "notification_preferences",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
