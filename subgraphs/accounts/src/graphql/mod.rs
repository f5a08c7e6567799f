//! Accounts' GraphQL surface: `Account @key(fields: "id")`, the `User.accounts` field it
//! contributes to identity's `User`, and the account queries and mutations.
//!
//! Row rule, on every path (by id, list, entity reference, `User.accounts`, updates): a
//! caller sees an account it owns or is a member of, or — with the `Account.all` grant the
//! policies give staff — every account of its tenant. Another account reads as missing.

mod dashboard;
mod export;
mod layout;
mod ledger;
mod series;
mod subscriptions;
mod types;

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Schema};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::context::{actor, db, meta, references, tenant as tenant_of};
use portal_kit::error::MaskInternalErrors;
use portal_kit::events::feed::EventFeed;
use portal_kit::input;
use portal_kit::loader::batch_loader;
use portal_kit::pagination::PageRequest;
use portal_kit::references::References;
use portal_kit::scalars::{DecimalArg, SHARED_SCALARS};
use portal_kit::storage::FileStore;
use portal_kit::{ApiError, ApiResult};

use crate::domain::{self, AccountStatus};
use crate::store;

pub use export::ExportMutation;
pub use layout::{LayoutMutation, LayoutQuery};
pub use ledger::{Invoice, InvoicesById, LedgerEntry, LedgerMutation, Payment, PaymentsOfInvoices};
pub use series::UsageMutation;
pub use subscriptions::Subscription;
pub use types::{
    Account, AccountConnection, AccountEdge, AccountStatusGql, AccountsById, AccountsByOwner,
    MembersOfAccounts, User,
};
use types::{load_visible, viewer};

/// The accounts subgraph's executable schema.
pub type AccountsSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references`, following committed changes through `feed` and keeping export files in
/// `files`; no socket needed (tests call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    references: References,
    feed: Arc<EventFeed>,
    files: FileStore,
) -> AccountsSchema {
    let mutation = Mutation(
        AccountMutation,
        LedgerMutation,
        UsageMutation,
        LayoutMutation,
        ExportMutation,
    );
    let query = Query(AccountQuery, LayoutQuery);
    Schema::build_with_ignore_name_conflicts(query, mutation, Subscription, SHARED_SCALARS)
        .enable_federation()
        .enable_subscription_in_federation()
        .extension(MaskInternalErrors)
        .data(batch_loader::<AccountsById>(&db))
        .data(batch_loader::<AccountsByOwner>(&db))
        .data(batch_loader::<MembersOfAccounts>(&db))
        .data(batch_loader::<InvoicesById>(&db))
        .data(batch_loader::<PaymentsOfInvoices>(&db))
        .data(references)
        .data(feed)
        .data(files)
        .data(db)
        .finish()
}

/// Accounts queries: the accounts' own (with the entity resolvers) and saved layouts.
#[derive(MergedObject)]
pub struct Query(AccountQuery, LayoutQuery);

/// Account, ledger and dashboard queries, and the federation entity resolvers.
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// One account of the caller's tenant that the caller may see, or null.
    async fn account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Account>> {
        let id = input::id("id", &id)?;
        Ok(load_visible(ctx, id).await?.map(Account::from))
    }

    /// Accounts of the caller's tenant that the caller may see (those it owns or is a
    /// member of; staff: all), oldest first; with `number`, the one with that number.
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        number: Option<String>,
    ) -> ApiResult<AccountConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let number = number
            .map(|raw| domain::account_number("number", &raw))
            .transpose()?;
        let rows = store::list_accounts(
            db(ctx)?,
            tenant_of(ctx)?,
            viewer(ctx),
            number.as_deref(),
            page,
        )
        .await?;
        Ok(rows.map(Account::from).into())
    }

    /// The signed-in user's portal home page: KPIs over the accounts the user may see,
    /// periods cut in `timeZone` (IANA; UTC when omitted). `UNAUTHENTICATED` without a
    /// signed-in user.
    async fn dashboard(
        &self,
        ctx: &Context<'_>,
        time_zone: Option<String>,
    ) -> ApiResult<dashboard::Dashboard> {
        let user = actor(ctx).principal()?;
        let zone = time_zone.as_deref().unwrap_or("UTC");
        dashboard::Dashboard::of_caller(ctx, user, zone)?.ok_or(ApiError::Unauthenticated)
    }

    /// Federation entity resolver for `Dashboard` (key: the user's id and the time zone
    /// its periods are cut in): only the caller's own, null for any other user's id.
    #[graphql(entity)]
    async fn find_dashboard_by_id_and_time_zone(
        &self,
        ctx: &Context<'_>,
        id: ID,
        time_zone: String,
    ) -> ApiResult<Option<dashboard::Dashboard>> {
        let Ok(user) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        dashboard::Dashboard::of_caller(ctx, user, &time_zone)
    }

    /// One of the caller's own exports, of an account the caller may still see, or null.
    async fn account_export(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<export::AccountExport>> {
        export::account_export(ctx, &id).await
    }

    /// One invoice of an account the caller may see, or null.
    async fn invoice(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Invoice>> {
        ledger::invoice(ctx, &id).await
    }

    /// Federation entity resolver for `Account`: null outside the caller's tenant and for
    /// accounts the caller may not see.
    #[graphql(entity)]
    async fn find_account_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Account>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        Ok(load_visible(ctx, id).await?.map(Account::from))
    }

    /// Federation entity resolver for `User` (only the key is known here).
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User::from_key(id)
    }
}

/// Input of `createAccount`.
#[derive(InputObject)]
pub struct CreateAccountInput {
    /// The owning user's id.
    pub owner_id: ID,
    /// Account number: 4-32 characters of A-Z, 0-9 and -, unique within the tenant.
    pub number: String,
    /// Display name.
    pub name: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Opening balance (at most four decimal places); zero when omitted.
    pub opening_balance: Option<DecimalArg>,
    /// Makes a retry safe: the same key with the same input answers with the account it
    /// created; with other input it is a `CONFLICT`. 8-64 characters of A-Z, a-z, 0-9,
    /// `.`, `_`, `:` and `-`.
    pub idempotency_key: Option<String>,
}

/// Input of `updateAccount`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateAccountInput {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<AccountStatusGql>,
}

/// Accounts mutations: the accounts' own, the ledger's, usage metering, layouts and
/// exports.
#[derive(MergedObject)]
pub struct Mutation(
    AccountMutation,
    LedgerMutation,
    UsageMutation,
    LayoutMutation,
    ExportMutation,
);

/// Account mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Opens an account in the caller's tenant.
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
    ) -> ApiResult<Account> {
        let mut new = store::NewAccount {
            owner_id: input::id("input.ownerId", &input.owner_id)?,
            number: domain::account_number("input.number", &input.number)?,
            name: input::text("input.name", &input.name, 200)?,
            currency: domain::currency("input.currency", &input.currency)?,
            balance_e4: domain::ledger::opening_balance(
                "input.openingBalance",
                input
                    .opening_balance
                    .map(|amount| amount.parse("input.openingBalance"))
                    .transpose()?
                    .unwrap_or_default(),
            )?,
            idempotency: None,
        };
        if let Some(raw) = &input.idempotency_key {
            let key = domain::ledger::idempotency_key("input.idempotencyKey", raw)?;
            let hash = domain::ledger::request_hash(&serde_json::json!({
                "op": "createAccount",
                "ownerId": new.owner_id,
                "number": new.number,
                "name": new.name,
                "currency": new.currency,
                "openingBalanceE4": new.balance_e4,
            }));
            new.idempotency = Some((key, hash));
        }
        references(ctx)?
            .require(
                actor(ctx),
                meta(ctx),
                "input.ownerId",
                &domain::CURRENT_USER,
                &[new.owner_id],
            )
            .await?;
        Ok(store::create_account(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Renames an account the caller may see, or changes its status.
    async fn update_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAccountInput,
    ) -> ApiResult<Account> {
        let id = input::id("id", &id)?;
        let changes = store::AccountChanges {
            name: input
                .name
                .map(|name| input::text("input.name", &name, 200))
                .transpose()?,
            status: input.status.map(AccountStatus::from),
        };
        require_visible(ctx, id).await?;
        Ok(
            store::update_account(db(ctx)?, actor(ctx), meta(ctx), id, changes)
                .await?
                .into(),
        )
    }

    /// Lets a user of the tenant see an account (and what hangs off it: reports, threads
    /// about it, external references) besides its owner.
    async fn add_account_member(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        user_id: ID,
    ) -> ApiResult<Account> {
        let account_id = input::id("accountId", &account_id)?;
        let user_id = input::id("userId", &user_id)?;
        require_visible(ctx, account_id).await?;
        references(ctx)?
            .require(
                actor(ctx),
                meta(ctx),
                "userId",
                &domain::CURRENT_USER,
                &[user_id],
            )
            .await?;
        Ok(
            store::add_member(db(ctx)?, actor(ctx), meta(ctx), account_id, user_id)
                .await?
                .into(),
        )
    }

    /// Ends a user's membership of an account.
    async fn remove_account_member(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        user_id: ID,
    ) -> ApiResult<Account> {
        let account_id = input::id("accountId", &account_id)?;
        let user_id = input::id("userId", &user_id)?;
        require_visible(ctx, account_id).await?;
        Ok(
            store::remove_member(db(ctx)?, actor(ctx), meta(ctx), account_id, user_id)
                .await?
                .into(),
        )
    }
}

/// `NOT_FOUND` unless the caller may see the account `id`.
async fn require_visible(ctx: &Context<'_>, id: Uuid) -> ApiResult<()> {
    load_visible(ctx, id)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound("account"))
}
