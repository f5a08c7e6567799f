//! Saved dashboard layouts on the wire: a user's own layouts (`dashboardLayouts`,
//! create/update/delete with optimistic concurrency, reset to the role default) and the
//! tenant's role defaults (`publishDefaultDashboardLayout`; who may publish is the
//! policies' decision).

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::accounts::dashboard_layout;
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::loader::load_many;
use portal_kit::{ApiError, ApiResult, input};

use super::types::{AccountsById, visible};
use crate::domain::layout::{self as rules, Binding, Cell, Placement, Widget, WidgetKind};
use crate::store::layout as store;

/// What a widget shows (the catalogue is in `docs/dashboard.md`).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WidgetKindGql {
    /// One `dashboard` KPI (option `kpi`).
    Kpi,
    /// An account's balance.
    Balance,
    /// An account's balance over time (options `interval`, `rangeDays`).
    BalanceHistory,
    /// An account's usage of a metric over time (options `interval`, `rangeDays`, `chart`).
    Usage,
    /// An account's invoices (options `statuses`, `limit`).
    Invoices,
    /// An account's latest ledger entries (option `limit`).
    Ledger,
}

impl From<WidgetKind> for WidgetKindGql {
    fn from(kind: WidgetKind) -> Self {
        match kind {
            WidgetKind::Kpi => Self::Kpi,
            WidgetKind::Balance => Self::Balance,
            WidgetKind::BalanceHistory => Self::BalanceHistory,
            WidgetKind::Usage => Self::Usage,
            WidgetKind::Invoices => Self::Invoices,
            WidgetKind::Ledger => Self::Ledger,
        }
    }
}

impl From<WidgetKindGql> for WidgetKind {
    fn from(kind: WidgetKindGql) -> Self {
        match kind {
            WidgetKindGql::Kpi => Self::Kpi,
            WidgetKindGql::Balance => Self::Balance,
            WidgetKindGql::BalanceHistory => Self::BalanceHistory,
            WidgetKindGql::Usage => Self::Usage,
            WidgetKindGql::Invoices => Self::Invoices,
            WidgetKindGql::Ledger => Self::Ledger,
        }
    }
}

/// A place on the 12-column grid.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "GridCellInput")]
pub struct GridCell {
    /// First column (0-11).
    pub x: i32,
    /// First row (0-1000).
    pub y: i32,
    /// Width in columns (x + w <= 12).
    pub w: i32,
    /// Height in rows (1-24).
    pub h: i32,
}

/// A widget's place per breakpoint.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "WidgetPlacementInput")]
pub struct WidgetPlacement {
    /// Large screens.
    pub lg: GridCell,
    /// Medium screens.
    pub md: GridCell,
    /// Small screens.
    pub sm: GridCell,
}

/// The data a widget shows.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "WidgetBindingInput")]
pub struct WidgetBinding {
    /// The account (every kind but `KPI`).
    pub account_id: Option<ID>,
    /// The metric (`USAGE`).
    pub metric: Option<String>,
}

/// One widget of a layout.
#[derive(SimpleObject, Clone)]
pub struct DashboardWidget {
    /// Stable id within the layout.
    pub id: ID,
    /// What it shows.
    pub kind: WidgetKindGql,
    /// Its title.
    pub title: Option<String>,
    /// The data it shows.
    pub binding: WidgetBinding,
    /// Kind-specific options (see the catalogue).
    pub options: Json<Value>,
    /// Where it sits per breakpoint.
    pub placement: WidgetPlacement,
}

/// A widget to save.
#[derive(InputObject)]
pub struct DashboardWidgetInput {
    /// Its id (kept across saves; a new one is made when omitted).
    pub id: Option<ID>,
    /// What it shows.
    pub kind: WidgetKindGql,
    /// Its title (1-100 characters).
    pub title: Option<String>,
    /// The data it shows.
    pub binding: WidgetBinding,
    /// Kind-specific options (see the catalogue); none when omitted.
    pub options: Option<Json<Value>>,
    /// Where it sits per breakpoint.
    pub placement: WidgetPlacement,
}

/// A saved dashboard: the user's own, or a tenant's default for a role.
#[derive(SimpleObject, Clone)]
pub struct DashboardLayout {
    /// Stable id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Optimistic-concurrency version: pass it to `updateDashboardLayout`.
    pub version: i32,
    /// For a role default: the role.
    pub role: Option<String>,
    /// The widgets, in the order they were saved.
    pub widgets: Vec<DashboardWidget>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn cell(c: Cell) -> GridCell {
    GridCell {
        x: c.x,
        y: c.y,
        w: c.w,
        h: c.h,
    }
}

fn to_cell(c: GridCell) -> Cell {
    Cell {
        x: c.x,
        y: c.y,
        w: c.w,
        h: c.h,
    }
}

impl From<dashboard_layout::Model> for DashboardLayout {
    fn from(row: dashboard_layout::Model) -> Self {
        let widgets = store::widgets_of(&row)
            .into_iter()
            .map(|w| DashboardWidget {
                id: ID(w.id.to_string()),
                kind: w.kind.into(),
                title: w.title,
                binding: WidgetBinding {
                    account_id: w.binding.account_id.map(|id| ID(id.to_string())),
                    metric: w.binding.metric,
                },
                options: Json(w.options),
                placement: WidgetPlacement {
                    lg: cell(w.placement.lg),
                    md: cell(w.placement.md),
                    sm: cell(w.placement.sm),
                },
            })
            .collect();
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            version: row.version,
            role: row.role,
            widgets,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Validates `input` widgets: each against the catalogue and the grid, and every bound
/// account one the caller may see.
async fn widgets(ctx: &Context<'_>, input: Vec<DashboardWidgetInput>) -> ApiResult<Vec<Widget>> {
    if input.len() > rules::MAX_WIDGETS {
        return Err(ApiError::invalid(
            "input.widgets",
            format!("a layout holds at most {} widgets", rules::MAX_WIDGETS),
        ));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, w) in input.into_iter().enumerate() {
        let id = match w.id {
            Some(id) => Uuid::parse_str(id.as_str()).map_err(|_| {
                ApiError::invalid("input.widgets", format!("widget {i}: `id` is not an id"))
            })?,
            None => Uuid::now_v7(),
        };
        let account_id = match w.binding.account_id {
            Some(id) => Some(Uuid::parse_str(id.as_str()).map_err(|_| {
                ApiError::invalid(
                    "input.widgets",
                    format!("widget {i}: `binding.accountId` is not an id"),
                )
            })?),
            None => None,
        };
        out.push(Widget {
            id,
            kind: w.kind.into(),
            title: w.title.map(|t| t.trim().to_owned()),
            binding: Binding {
                account_id,
                metric: w.binding.metric,
            },
            options: w
                .options
                .map(|o| o.0)
                .unwrap_or(Value::Object(Default::default())),
            placement: Placement {
                lg: to_cell(w.placement.lg),
                md: to_cell(w.placement.md),
                sm: to_cell(w.placement.sm),
            },
        });
    }
    rules::check_widgets(&out)?;
    let bound: Vec<Uuid> = out.iter().filter_map(|w| w.binding.account_id).collect();
    if !bound.is_empty() {
        let found = load_many::<AccountsById>(ctx, bound.iter().copied()).await?;
        let seen: std::collections::HashSet<Uuid> = visible(ctx, found.into_values().collect())
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        if let Some(i) = out
            .iter()
            .position(|w| w.binding.account_id.is_some_and(|id| !seen.contains(&id)))
        {
            return Err(ApiError::invalid(
                "input.widgets",
                format!("widget {i}: `binding.accountId` is not an account you can see"),
            ));
        }
    }
    Ok(out)
}

/// Layout queries.
#[derive(Default)]
pub struct LayoutQuery;

#[Object]
impl LayoutQuery {
    /// The signed-in user's saved dashboards, oldest first (at most 20).
    async fn dashboard_layouts(&self, ctx: &Context<'_>) -> ApiResult<Vec<DashboardLayout>> {
        let owner = actor(ctx).principal()?;
        let rows = store::own_layouts(db(ctx)?, tenant_of(ctx)?, owner).await?;
        Ok(rows.into_iter().map(DashboardLayout::from).collect())
    }

    /// One of the signed-in user's saved dashboards, or null.
    async fn dashboard_layout(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<DashboardLayout>> {
        let id = input::id("id", &id)?;
        let owner = actor(ctx).principal()?;
        match store::own_layout(db(ctx)?, tenant_of(ctx)?, owner, id).await {
            Ok(row) => Ok(Some(row.into())),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The default dashboard for the signed-in user: the tenant's default for the first of
    /// the user's roles that has one; null when none has.
    async fn default_dashboard_layout(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<DashboardLayout>> {
        let found = store::default_for(db(ctx)?, tenant_of(ctx)?, &actor(ctx).roles).await?;
        Ok(found.map(DashboardLayout::from))
    }

    /// Every role default the tenant has published, by role.
    async fn published_dashboard_layouts(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<DashboardLayout>> {
        let rows = store::defaults(db(ctx)?, tenant_of(ctx)?).await?;
        Ok(rows.into_iter().map(DashboardLayout::from).collect())
    }
}

/// Input of `createDashboardLayout`.
#[derive(InputObject)]
pub struct CreateDashboardLayoutInput {
    /// Name (1-100 characters).
    pub name: String,
    /// Up to 50 widgets.
    pub widgets: Vec<DashboardWidgetInput>,
}

/// Input of `updateDashboardLayout`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateDashboardLayoutInput {
    /// New name.
    pub name: Option<String>,
    /// The new widgets (all of them: the list replaces the old one).
    pub widgets: Option<Vec<DashboardWidgetInput>>,
}

/// Layout mutations.
#[derive(Default)]
pub struct LayoutMutation;

#[Object]
impl LayoutMutation {
    /// Saves a new dashboard for the signed-in user (`CONFLICT` beyond 20).
    async fn create_dashboard_layout(
        &self,
        ctx: &Context<'_>,
        input: CreateDashboardLayoutInput,
    ) -> ApiResult<DashboardLayout> {
        let name = rules::layout_name("input.name", &input.name)?;
        let widgets = widgets(ctx, input.widgets).await?;
        Ok(
            store::create(db(ctx)?, actor(ctx), meta(ctx), name, &widgets)
                .await?
                .into(),
        )
    }

    /// Changes one of the signed-in user's dashboards, if it is still at `version`:
    /// `CONFLICT` when it was saved since (reload, reapply, retry).
    async fn update_dashboard_layout(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: UpdateDashboardLayoutInput,
    ) -> ApiResult<DashboardLayout> {
        let id = input::id("id", &id)?;
        let name = input
            .name
            .map(|n| rules::layout_name("input.name", &n))
            .transpose()?;
        let widgets = match input.widgets {
            Some(list) => Some(widgets(ctx, list).await?),
            None => None,
        };
        let row = store::update(
            db(ctx)?,
            actor(ctx),
            meta(ctx),
            id,
            version,
            name,
            widgets.as_deref(),
            None,
        );
        Ok(row.await?.into())
    }

    /// Deletes one of the signed-in user's dashboards; returns its id.
    async fn delete_dashboard_layout(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        let uuid = input::id("id", &id)?;
        store::delete(db(ctx)?, actor(ctx), meta(ctx), uuid).await?;
        Ok(id)
    }

    /// Replaces the widgets of one of the signed-in user's dashboards (still at
    /// `version`) with those of the user's default (`defaultDashboardLayout`);
    /// `NOT_FOUND` when no role of the user has one.
    async fn reset_dashboard_layout(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
    ) -> ApiResult<DashboardLayout> {
        let id = input::id("id", &id)?;
        let default = store::default_for(db(ctx)?, tenant_of(ctx)?, &actor(ctx).roles)
            .await?
            .ok_or(ApiError::NotFound("default dashboard layout"))?;
        let widgets = store::widgets_of(&default);
        let row = store::update(
            db(ctx)?,
            actor(ctx),
            meta(ctx),
            id,
            version,
            None,
            Some(&widgets),
            Some(default.id),
        );
        Ok(row.await?.into())
    }

    /// Publishes the tenant's default dashboard for `role` (users of that role start from
    /// it and can reset to it), replacing the previous one.
    async fn publish_default_dashboard_layout(
        &self,
        ctx: &Context<'_>,
        role: String,
        input: CreateDashboardLayoutInput,
    ) -> ApiResult<DashboardLayout> {
        let role = rules::role_name("role", &role)?;
        let name = rules::layout_name("input.name", &input.name)?;
        let widgets = widgets(ctx, input.widgets).await?;
        let row = store::publish_default(db(ctx)?, actor(ctx), meta(ctx), role, name, &widgets);
        Ok(row.await?.into())
    }
}
