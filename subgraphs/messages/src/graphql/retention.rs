//! Retention's GraphQL surface: the tenant's rules per thread status, a preview of what
//! they remove now, and legal holds on accounts and threads.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::messages::legal_hold;
use portal_kit::context::{actor, meta, references, tenant};
use portal_kit::{ApiError, ApiResult, input};

use super::federation::{Account, User};
use super::store;
use super::types::{Thread, ThreadStatusGql};
use crate::domain::ThreadStatus;
use crate::domain::retention::{self as rules, HoldTarget, RetentionAction};
use crate::store::retention::{self as stored, Rule};

/// What retention does with a message past its time.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "RetentionAction")]
pub enum RetentionActionGql {
    /// Threads whose messages are all past their time are removed with everything in
    /// them; other messages past their time become tombstones (text, earlier versions,
    /// attachments and search entries removed).
    Delete,
    /// Messages stay, tied to no one: their author becomes the deleted-user tombstone,
    /// earlier versions are removed.
    Anonymize,
}

impl From<RetentionAction> for RetentionActionGql {
    fn from(action: RetentionAction) -> Self {
        match action {
            RetentionAction::Delete => Self::Delete,
            RetentionAction::Anonymize => Self::Anonymize,
        }
    }
}

impl From<RetentionActionGql> for RetentionAction {
    fn from(action: RetentionActionGql) -> Self {
        match action {
            RetentionActionGql::Delete => Self::Delete,
            RetentionActionGql::Anonymize => Self::Anonymize,
        }
    }
}

/// What a tenant does with messages of threads in one status once they are old.
#[derive(SimpleObject)]
pub struct MessageRetentionRule {
    /// The status of the threads it applies to.
    pub thread_status: ThreadStatusGql,
    /// What it does.
    pub action: RetentionActionGql,
    /// After how many days (counted from each message's posting).
    pub older_than_days: i32,
}

impl From<Rule> for MessageRetentionRule {
    fn from(rule: Rule) -> Self {
        Self {
            thread_status: rule.status.into(),
            action: rule.action.into(),
            older_than_days: rule.older_than_days,
        }
    }
}

/// Messages a preview touches in one thread.
#[derive(SimpleObject)]
pub struct RetainedThreadCount {
    /// The thread.
    pub thread: Thread,
    /// What is done to it.
    pub action: RetentionActionGql,
    /// Every message is past its time: the thread goes with everything in it.
    pub whole_thread: bool,
    /// Messages touched.
    pub messages: i32,
}

/// Messages a preview touches in threads about one account.
#[derive(SimpleObject)]
pub struct RetainedAccountCount {
    /// The account; null for threads about no account.
    pub account: Option<Account>,
    /// Messages touched.
    pub messages: i32,
}

/// What the tenant's retention rules would do if the sweep ran now.
#[derive(SimpleObject)]
pub struct MessageRetentionPreview {
    /// Messages that would be deleted (in removed threads, or as tombstones).
    pub messages_deleted: i32,
    /// Messages that would be anonymized.
    pub messages_anonymized: i32,
    /// Threads that would be removed whole.
    pub threads_deleted: i32,
    /// Threads the rules would touch but a legal hold protects.
    pub threads_held: i32,
    /// Per thread (the first 100).
    pub by_thread: Vec<RetainedThreadCount>,
    /// Per account.
    pub by_account: Vec<RetainedAccountCount>,
}

/// What a legal hold is placed on.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "LegalHoldTarget")]
pub enum HoldTargetGql {
    /// Every thread about an account.
    Account,
    /// One thread.
    Thread,
    /// A person: every message they wrote; their data cannot be erased while it holds.
    User,
}

/// A legal hold: while active, retention neither deletes nor anonymizes the messages it
/// covers, and nobody it covers — the person held, the members of the account held, those
/// taking part in the thread held — can be erased.
pub struct LegalHold {
    row: legal_hold::Model,
}

#[Object]
impl LegalHold {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// What it is placed on.
    async fn target_type(&self) -> Option<HoldTargetGql> {
        HoldTarget::from_db(&self.row.target_type).map(|t| match t {
            HoldTarget::Account => HoldTargetGql::Account,
            HoldTarget::Thread => HoldTargetGql::Thread,
            HoldTarget::User => HoldTargetGql::User,
        })
    }

    /// The person held, for user holds.
    async fn user(&self) -> Option<User> {
        (self.row.target_type == HoldTarget::User.as_str()).then(|| User::stub(self.row.target_id))
    }

    /// The account held, for account holds.
    async fn account(&self) -> Option<Account> {
        (self.row.target_type == HoldTarget::Account.as_str())
            .then(|| Account::stub(self.row.target_id))
    }

    /// The thread held, for thread holds; null once it is gone.
    async fn thread(&self, ctx: &Context<'_>) -> ApiResult<Option<Thread>> {
        if self.row.target_type != HoldTarget::Thread.as_str() {
            return Ok(None);
        }
        match crate::store::thread(&store(ctx)?.db, self.row.tenant_id, self.row.target_id).await {
            Ok(row) => Ok(Some(Thread::from(row))),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Why it was placed.
    async fn reason(&self) -> &str {
        &self.row.reason
    }

    /// Who placed it.
    async fn placed_by(&self) -> User {
        User::stub(self.row.placed_by)
    }

    /// When.
    async fn placed_at(&self) -> DateTime<Utc> {
        self.row.placed_at
    }

    /// Who released it; null while active.
    async fn released_by(&self) -> Option<User> {
        self.row.released_by.map(User::stub)
    }

    /// When it was released; null while active.
    async fn released_at(&self) -> Option<DateTime<Utc>> {
        self.row.released_at
    }

    /// Whether it still holds.
    async fn active(&self) -> bool {
        self.row.released_at.is_none()
    }
}

/// A retention rule to set.
#[derive(InputObject)]
pub struct SetMessageRetentionRuleInput {
    /// The status of the threads it applies to.
    pub thread_status: ThreadStatusGql,
    /// What it does.
    pub action: RetentionActionGql,
    /// After how many days (1 to 36 500).
    pub older_than_days: i32,
}

/// A legal hold to place: on an account or on a thread (exactly one).
#[derive(InputObject)]
pub struct PlaceLegalHoldInput {
    /// Every thread about this account.
    pub account_id: Option<ID>,
    /// This thread.
    pub thread_id: Option<ID>,
    /// This person (a user of the tenant).
    pub user_id: Option<ID>,
    /// Why (a matter, a request).
    pub reason: String,
}

/// Retention queries.
#[derive(Default)]
pub struct RetentionQuery;

#[Object]
impl RetentionQuery {
    /// The tenant's retention rules, by thread status (none: messages are kept).
    async fn message_retention_rules(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<MessageRetentionRule>> {
        let found = stored::rules(&store(ctx)?.db, tenant(ctx)?).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }

    /// What the tenant's rules would remove if the sweep ran now.
    async fn message_retention_preview(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<MessageRetentionPreview> {
        let db = &store(ctx)?.db;
        let tenant_id = tenant(ctx)?;
        let plan = stored::plan(db, tenant_id, Utc::now()).await?;
        let (deleted, anonymized) = plan.message_counts();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let shown: Vec<Uuid> = plan.threads.iter().take(100).map(|t| t.thread_id).collect();
        let threads = crate::store::threads_by_ids(db, tenant_id, shown).await?;
        let by_thread = plan
            .threads
            .iter()
            .take(100)
            .filter_map(|t| {
                Some(RetainedThreadCount {
                    thread: Thread::from(threads.get(&t.thread_id)?.clone()),
                    action: t.action.into(),
                    whole_thread: t.whole,
                    messages: count(t.message_ids.len()),
                })
            })
            .collect();
        Ok(MessageRetentionPreview {
            messages_deleted: count(deleted),
            messages_anonymized: count(anonymized),
            threads_deleted: count(plan.whole_threads()),
            threads_held: count(plan.held_threads.len()),
            by_thread,
            by_account: plan
                .by_account()
                .into_iter()
                .map(|(account, messages)| RetainedAccountCount {
                    account: account.map(Account::stub),
                    messages: count(messages),
                })
                .collect(),
        })
    }

    /// The tenant's legal holds, newest first; released ones too with `activeOnly: false`.
    async fn legal_holds(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] active_only: bool,
    ) -> ApiResult<Vec<LegalHold>> {
        let found = stored::holds(&store(ctx)?.db, tenant(ctx)?).await?;
        Ok(found
            .into_iter()
            .filter(|row| !active_only || row.released_at.is_none())
            .map(|row| LegalHold { row })
            .collect())
    }
}

/// Retention mutations.
#[derive(Default)]
pub struct RetentionMutation;

#[Object]
impl RetentionMutation {
    /// Sets the tenant's retention rule for threads in one status (replacing the one
    /// there was). The daily sweep applies it; `messageRetentionPreview` says what it
    /// would remove now.
    async fn set_message_retention_rule(
        &self,
        ctx: &Context<'_>,
        input: SetMessageRetentionRuleInput,
    ) -> ApiResult<MessageRetentionRule> {
        let days = rules::check_days("input.olderThanDays", input.older_than_days)?;
        let status = ThreadStatus::from(input.thread_status);
        let action = RetentionAction::from(input.action);
        let db = &store(ctx)?.db;
        stored::set_rule(db, (actor(ctx), meta(ctx)), status, Some((action, days))).await?;
        Ok(MessageRetentionRule::from(Rule {
            status,
            action,
            older_than_days: days,
        }))
    }

    /// Removes the tenant's retention rule for threads in one status (their messages are
    /// then kept). `NOT_FOUND` when there is none.
    async fn remove_message_retention_rule(
        &self,
        ctx: &Context<'_>,
        thread_status: ThreadStatusGql,
    ) -> ApiResult<bool> {
        let db = &store(ctx)?.db;
        let status = ThreadStatus::from(thread_status);
        stored::set_rule(db, (actor(ctx), meta(ctx)), status, None).await?;
        Ok(true)
    }

    /// Places a legal hold on an account (every thread about it), on one thread, or on a
    /// person (every message they wrote) — exactly one of them.
    async fn place_legal_hold(
        &self,
        ctx: &Context<'_>,
        input: PlaceLegalHoldInput,
    ) -> ApiResult<LegalHold> {
        let reason = rules::hold_reason("input.reason", &input.reason)?;
        let target = match (&input.account_id, &input.thread_id, &input.user_id) {
            (Some(account), None, None) => {
                let id = input::id("input.accountId", account)?;
                let visible = references(ctx)?
                    .visible(actor(ctx), "Account", &[id])
                    .await?;
                if !visible.contains(&id) {
                    return Err(ApiError::invalid("input.accountId", "no such account"));
                }
                (HoldTarget::Account, id)
            }
            (None, Some(thread), None) => {
                let id = input::id("input.threadId", thread)?;
                crate::store::thread(&store(ctx)?.db, tenant(ctx)?, id)
                    .await
                    .map_err(|_| ApiError::invalid("input.threadId", "no such thread"))?;
                (HoldTarget::Thread, id)
            }
            (None, None, Some(user)) => {
                let id = input::id("input.userId", user)?;
                references(ctx)?
                    .require(
                        actor(ctx),
                        meta(ctx),
                        "input.userId",
                        &crate::domain::HOLDABLE_USER,
                        &[id],
                    )
                    .await?;
                (HoldTarget::User, id)
            }
            _ => {
                return Err(ApiError::invalid(
                    "input",
                    "give exactly one of accountId, threadId and userId",
                ));
            }
        };
        let db = &store(ctx)?.db;
        let row = stored::place_hold(db, (actor(ctx), meta(ctx)), target, reason).await?;
        Ok(LegalHold { row })
    }

    /// Releases a legal hold (kept, inactive, in `legalHolds(activeOnly: false)`).
    /// `CONFLICT` when it is released already.
    async fn release_legal_hold(&self, ctx: &Context<'_>, id: ID) -> ApiResult<LegalHold> {
        let id = input::id("id", &id)?;
        let db = &store(ctx)?.db;
        let row = stored::release_hold(db, (actor(ctx), meta(ctx)), id).await?;
        Ok(LegalHold { row })
    }
}
