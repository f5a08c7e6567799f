//! Table `webhook_messages`: what is to be delivered to one endpoint (an event, or a ping).

use sea_orm::entity::prelude::*;

/// One row of `webhook_messages`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    /// Also the `webhook-id` header (`msg_` + this id without dashes).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    /// The domain event delivered; null for a ping.
    pub event_id: Option<Uuid>,
    pub event_type: String,
    /// The exact JSON body, fixed when the message is made (retries send the same bytes).
    pub body: Json,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub status: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
