//! Accounts' GraphQL surface: `Account @key(fields: "id")`, the `User.accounts` field it
//! contributes to identity's `User`, and the account queries and mutations.

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, ID, InputObject, Object, Schema, SimpleObject,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta, references, tenant as tenant_of};
use portal_kit::error::MaskInternalErrors;
use portal_kit::input;
use portal_kit::loader::{batch_loader, load, load_page};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::references::References;
use portal_kit::scalars::{DecimalArg, SHARED_SCALARS};

use crate::domain::{self, AccountStatus};
use crate::store;

/// The accounts subgraph's executable schema.
pub type AccountsSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references`; no socket needed (tests call `execute` directly).
pub fn build_schema(db: DatabaseConnection, references: References) -> AccountsSchema {
    Schema::build_with_ignore_name_conflicts(Query, Mutation, EmptySubscription, SHARED_SCALARS)
        .enable_federation()
        .extension(MaskInternalErrors)
        .data(batch_loader::<AccountsById>(&db))
        .data(batch_loader::<AccountsByOwner>(&db))
        .data(references)
        .data(db)
        .finish()
}

/// Lifecycle of an account.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "AccountStatus")]
pub enum AccountStatusGql {
    /// In use.
    Open,
    /// Temporarily blocked.
    Suspended,
    /// Closed for good.
    Closed,
}

impl From<AccountStatus> for AccountStatusGql {
    fn from(status: AccountStatus) -> Self {
        match status {
            AccountStatus::Open => Self::Open,
            AccountStatus::Suspended => Self::Suspended,
            AccountStatus::Closed => Self::Closed,
        }
    }
}

impl From<AccountStatusGql> for AccountStatus {
    fn from(status: AccountStatusGql) -> Self {
        match status {
            AccountStatusGql::Open => Self::Open,
            AccountStatusGql::Suspended => Self::Suspended,
            AccountStatusGql::Closed => Self::Closed,
        }
    }
}

/// A customer account.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Account {
    /// Stable id.
    pub id: ID,
    /// Account number, unique within the tenant.
    pub number: String,
    /// Display name.
    pub name: String,
    /// Lifecycle status.
    pub status: AccountStatusGql,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Current balance, exact to four decimal places. Nullable: roles without business
    /// reading balances get `null` (with a `FORBIDDEN` error) instead of losing the account.
    pub balance: Option<Decimal>,
    /// When the account was opened.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    owner_id: Uuid,
}

impl From<account::Model> for Account {
    fn from(row: account::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            number: row.number,
            name: row.name,
            status: AccountStatus::from_db(&row.status).into(),
            currency: row.currency,
            balance: Some(domain::amount_from_e4(row.balance_e4)),
            created_at: row.created_at,
            updated_at: row.updated_at,
            uuid: row.id,
            owner_id: row.owner_id,
        }
    }
}

impl Node for Account {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl Account {
    /// The user who owns the account (resolved by the identity subgraph).
    async fn owner(&self) -> User {
        User::stub(self.owner_id)
    }
}

portal_kit::connection!(AccountConnection, AccountEdge, Account);

portal_kit::entity_key!(
    /// Identity's `User`, extended with the accounts the user owns.
    User
);

#[Object]
impl User {
    /// Stable id (the key shared with identity).
    async fn id(&self) -> &ID {
        self.key_id()
    }

    /// Accounts the user owns, oldest first.
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AccountConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let Some(owner) = self.key() else {
            return Ok(page.page(Vec::new()).into());
        };
        let found = load_page::<AccountsByOwner>(ctx, owner, page).await?;
        Ok(found.map(Account::from).into())
    }
}

portal_kit::fetch_by_ids!(
    /// Account lookups by `(tenant, id)`, batched into one query per tenant.
    pub AccountsById: account::Model = store::accounts_by_ids
);

portal_kit::fetch_pages!(
    /// `User.accounts` for many users (an `_entities` call), batched into one query per
    /// distinct `(tenant, page request)`.
    pub AccountsByOwner: account::Model = store::pages_by_owner
);

/// Accounts queries.
pub struct Query;

#[Object]
impl Query {
    /// One account of the caller's tenant, or null.
    async fn account(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Account>> {
        let id = input::id("id", &id)?;
        load_account(ctx, id).await
    }

    /// Accounts of the caller's tenant, oldest first.
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AccountConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_accounts(db(ctx)?, tenant_of(ctx)?, page).await?;
        Ok(rows.map(Account::from).into())
    }

    /// Federation entity resolver for `Account`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_account_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Account>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_account(ctx, id).await
    }

    /// Federation entity resolver for `User` (only the key is known here).
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User::from_key(id)
    }
}

async fn load_account(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Account>> {
    Ok(load::<AccountsById>(ctx, id).await?.map(Account::from))
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
}

/// Input of `updateAccount`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateAccountInput {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<AccountStatusGql>,
}

/// Accounts mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Opens an account in the caller's tenant.
    async fn create_account(
        &self,
        ctx: &Context<'_>,
        input: CreateAccountInput,
    ) -> ApiResult<Account> {
        let new = store::NewAccount {
            owner_id: input::id("input.ownerId", &input.owner_id)?,
            number: domain::account_number("input.number", &input.number)?,
            name: input::text("input.name", &input.name, 200)?,
            currency: domain::currency("input.currency", &input.currency)?,
            balance_e4: domain::amount_e4(
                "input.openingBalance",
                input
                    .opening_balance
                    .map(|amount| amount.parse("input.openingBalance"))
                    .transpose()?
                    .unwrap_or_default(),
            )?,
        };
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

    /// Renames an account or changes its status.
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
        Ok(
            store::update_account(db(ctx)?, actor(ctx), meta(ctx), id, changes)
                .await?
                .into(),
        )
    }
}
