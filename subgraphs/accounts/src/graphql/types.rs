//! Accounts' wire types: `Account @key(fields: "id")`, its status enum and connection, and
//! identity's `User` extended with the accounts the user owns. Every account that leaves
//! this module has passed the membership rule ([`visible`]).

use async_graphql::{ComplexObject, Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_kit::ApiResult;
use portal_kit::context::actor;
use portal_kit::loader::{load, load_many, load_page};
use portal_kit::pagination::{Node, PageRequest, visible_page};

use super::ledger::{
    self, InvoiceConnection, InvoiceFilter, InvoiceOrder, LedgerEntryConnection, LedgerEntryFilter,
    LedgerEntryOrder, PaymentConnection, PaymentFilter, PaymentOrder,
};
use super::series::{self, SeriesInterval, TimeSeries};
use crate::domain::{self, AccountStatus, Viewer};
use crate::store;
use portal_kit::scalars::DateTimeArg;

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
    /// Current balance, exact to four decimal places: the sum of the account's ledger
    /// entries (never edited directly). Nullable: roles without business reading
    /// balances get `null` (with a `FORBIDDEN` error) instead of losing the account.
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

    /// The account's ledger: every posting that moved its balance, newest first unless
    /// `orderBy` says otherwise. Null (with `FORBIDDEN`) for roles that may not see money.
    async fn ledger_entries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<LedgerEntryFilter>,
        #[graphql(default)] order_by: LedgerEntryOrder,
    ) -> ApiResult<Option<LedgerEntryConnection>> {
        let found = ledger::ledger_entries(ctx, self.uuid, first, after, filter, order_by);
        Ok(Some(found.await?))
    }

    /// The account's invoices, newest first unless `orderBy` says otherwise.
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<InvoiceFilter>,
        #[graphql(default)] order_by: InvoiceOrder,
    ) -> ApiResult<Option<InvoiceConnection>> {
        let found = ledger::invoices(ctx, self.uuid, first, after, filter, order_by);
        Ok(Some(found.await?))
    }

    /// Payments received for the account, newest first unless `orderBy` says otherwise.
    async fn payments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<PaymentFilter>,
        #[graphql(default)] order_by: PaymentOrder,
    ) -> ApiResult<Option<PaymentConnection>> {
        let found = ledger::payments(ctx, self.uuid, first, after, filter, order_by);
        Ok(Some(found.await?))
    }

    /// The balance at the end of each bucket of `[from, to)` (by posting time), buckets
    /// cut in `timeZone` (IANA; UTC when omitted), at most 1 000 of them. Null (with
    /// `FORBIDDEN`) for roles that may not see money.
    async fn balance_history(
        &self,
        ctx: &Context<'_>,
        from: DateTimeArg,
        to: DateTimeArg,
        interval: SeriesInterval,
        time_zone: Option<String>,
    ) -> ApiResult<Option<TimeSeries>> {
        let zone = time_zone.as_deref().unwrap_or("UTC");
        let found = series::balance_history(ctx, self.uuid, &from, &to, interval, zone);
        Ok(Some(found.await?))
    }

    /// The metered quantity of `metric` in each bucket of `[from, to)` (see
    /// `recordUsage`), buckets cut in `timeZone` (IANA; UTC when omitted), at most 1 000.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        metric: String,
        from: DateTimeArg,
        to: DateTimeArg,
        interval: SeriesInterval,
        time_zone: Option<String>,
    ) -> ApiResult<Option<TimeSeries>> {
        let zone = time_zone.as_deref().unwrap_or("UTC");
        let found = series::usage(ctx, self.uuid, &metric, &from, &to, interval, zone);
        Ok(Some(found.await?))
    }

    /// How many ledger entries were posted in each bucket of `[from, to)` (by posting
    /// time; a count, not money: every role that reads the account reads it), buckets cut
    /// in `timeZone` (IANA; UTC when omitted), at most 1 000.
    async fn activity(
        &self,
        ctx: &Context<'_>,
        from: DateTimeArg,
        to: DateTimeArg,
        interval: SeriesInterval,
        time_zone: Option<String>,
    ) -> ApiResult<Option<TimeSeries>> {
        let zone = time_zone.as_deref().unwrap_or("UTC");
        let found = series::activity(ctx, self.uuid, &from, &to, interval, zone);
        Ok(Some(found.await?))
    }

    /// The caller's own exports of this account, newest first (`first`: 1–50, default 10).
    async fn exports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> ApiResult<Vec<super::export::AccountExport>> {
        super::export::exports_of(ctx, self.uuid, first).await
    }

    /// The metrics the account has recorded usage of, alphabetically.
    async fn usage_metrics(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        series::metrics(ctx, self.uuid).await
    }

    /// Users besides the owner who may see the account, in the order they were added
    /// (managed with `addAccountMember` / `removeAccountMember`).
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let found = load::<MembersOfAccounts>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(User::stub)
            .collect())
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

    /// Accounts the user owns that the caller may see, oldest first.
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
        let found = visible_page(
            page,
            |row: &account::Model| row.id,
            |page| load_page::<AccountsByOwner>(ctx, owner, page),
            |rows| visible(ctx, rows),
        )
        .await?;
        Ok(found.map(Account::from).into())
    }
}

portal_kit::fetch_by_ids!(
    /// Account lookups by `(tenant, id)`, batched into one query per tenant.
    pub AccountsById: account::Model = store::accounts_by_ids
);

portal_kit::fetch_by_ids!(
    /// The members of accounts by `(tenant, account id)`, batched into one query per tenant.
    pub MembersOfAccounts: Vec<Uuid> = store::members_of_accounts
);

portal_kit::fetch_pages!(
    /// `User.accounts` for many users (an `_entities` call), batched into one query per
    /// distinct `(tenant, page request)`.
    pub AccountsByOwner: account::Model = store::pages_by_owner
);

/// Which accounts the caller may see: all of its tenant's with the `Account.all` grant,
/// else those it owns or is a member of.
pub fn viewer(ctx: &Context<'_>) -> Viewer {
    Viewer::of(actor(ctx))
}

/// Those of `rows` the caller may see (membership looked up in one batch).
pub async fn visible(
    ctx: &Context<'_>,
    rows: Vec<account::Model>,
) -> ApiResult<Vec<account::Model>> {
    let viewer = viewer(ctx);
    let unsure: Vec<Uuid> = match viewer {
        Viewer::Everything => return Ok(rows),
        Viewer::Nobody => return Ok(Vec::new()),
        Viewer::Member(user) => rows
            .iter()
            .filter(|row| row.owner_id != user)
            .map(|row| row.id)
            .collect(),
    };
    let members = if unsure.is_empty() {
        Default::default()
    } else {
        load_many::<MembersOfAccounts>(ctx, unsure).await?
    };
    Ok(rows
        .into_iter()
        .filter(|row| {
            let of_row = members.get(&row.id).map(Vec::as_slice).unwrap_or_default();
            viewer.sees(row.owner_id, of_row)
        })
        .collect())
}

/// The account `id` of the caller's tenant, if the caller may see it.
pub async fn load_visible(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<account::Model>> {
    let found = load::<AccountsById>(ctx, id).await?;
    Ok(visible(ctx, found.into_iter().collect()).await?.pop())
}
