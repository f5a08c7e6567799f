//! Saved dashboard layouts: widgets from a documented catalogue, each bound to data and
//! placed on a 12-column grid per breakpoint. Pure validation; no GraphQL or database.
//!
//! The catalogue (kinds, bindings, options) is documented in `docs/dashboard.md`; a widget
//! whose options do not fit its kind is refused with `BAD_USER_INPUT` on `input.widgets`,
//! the message naming the widget's index and the option.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use portal_kit::{ApiError, ApiResult};

/// Most layouts one user may keep.
pub const MAX_LAYOUTS: u64 = 20;
/// Most widgets one layout may hold.
pub const MAX_WIDGETS: usize = 50;
/// Columns of the grid at every breakpoint.
pub const COLUMNS: i32 = 12;
/// Highest row a widget may start on.
pub const MAX_ROW: i32 = 1_000;
/// Tallest a widget may be, in rows.
pub const MAX_HEIGHT: i32 = 24;

/// What a widget shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WidgetKind {
    /// One of the `dashboard` KPIs. Options: `kpi` (`BALANCES`, `OPEN_INVOICES`,
    /// `OVERDUE_INVOICES`, `USAGE`).
    Kpi,
    /// An account's balance. Binding: `accountId`. No options.
    Balance,
    /// An account's balance over time. Binding: `accountId`. Options: `interval`
    /// (`HOUR`, `DAY`, `WEEK`, `MONTH`), `rangeDays` (1–366).
    BalanceHistory,
    /// An account's usage of a metric over time. Binding: `accountId`, `metric`.
    /// Options: `interval`, `rangeDays`, `chart` (`LINE`, `BAR`; default `BAR`).
    Usage,
    /// An account's invoices. Binding: `accountId`. Options: `statuses` (list of `OPEN`,
    /// `OVERDUE`, `PAID`, `VOID`), `limit` (1–50).
    Invoices,
    /// An account's latest ledger entries. Binding: `accountId`. Options: `limit` (1–50).
    Ledger,
}

/// The data a widget is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The account shown.
    pub account_id: Option<Uuid>,
    /// The metric shown (`USAGE`).
    pub metric: Option<String>,
}

/// A widget's place on the 12-column grid: column `x`, row `y`, `w` columns, `h` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// First column (0–11).
    pub x: i32,
    /// First row.
    pub y: i32,
    /// Width in columns.
    pub w: i32,
    /// Height in rows.
    pub h: i32,
}

/// A widget's place at each breakpoint (large, medium, small screens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Large screens.
    pub lg: Cell,
    /// Medium screens.
    pub md: Cell,
    /// Small screens.
    pub sm: Cell,
}

/// One widget of a layout, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    /// Stable id within the layout.
    pub id: Uuid,
    /// What it shows.
    pub kind: WidgetKind,
    /// Its title.
    pub title: Option<String>,
    /// The data it shows.
    pub binding: Binding,
    /// Kind-specific options (validated against the kind).
    pub options: Value,
    /// Where it sits.
    pub placement: Placement,
}

fn widget_error(index: usize, what: impl std::fmt::Display) -> ApiError {
    ApiError::invalid("input.widgets", format!("widget {index}: {what}"))
}

/// Checks one widget against its kind: the binding it needs, the options it takes (no
/// others), and a placement inside the grid.
pub fn check_widget(index: usize, widget: &Widget) -> ApiResult<()> {
    let err = |what: &str| widget_error(index, what);
    if let Some(title) = &widget.title
        && (title.trim().is_empty()
            || title.chars().count() > 100
            || title.chars().any(char::is_control))
    {
        return Err(err(
            "`title` must be 1-100 characters without control characters",
        ));
    }
    let options = match &widget.options {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(err("`options` must be an object")),
    };
    let needs_account = !matches!(widget.kind, WidgetKind::Kpi);
    match (needs_account, widget.binding.account_id) {
        (true, None) => return Err(err("`binding.accountId` is required for this kind")),
        (false, Some(_)) => return Err(err("`binding.accountId` is not used by this kind")),
        _ => {}
    }
    match (widget.kind, &widget.binding.metric) {
        (WidgetKind::Usage, None) => return Err(err("`binding.metric` is required for USAGE")),
        (WidgetKind::Usage, Some(metric)) => {
            super::series::metric("binding.metric", metric)
                .map_err(|e| widget_error(index, e.message()))?;
        }
        (_, Some(_)) => return Err(err("`binding.metric` is only for USAGE")),
        (_, None) => {}
    }
    let allowed: &[&str] = match widget.kind {
        WidgetKind::Kpi => &["kpi"],
        WidgetKind::Balance => &[],
        WidgetKind::BalanceHistory => &["interval", "rangeDays"],
        WidgetKind::Usage => &["interval", "rangeDays", "chart"],
        WidgetKind::Invoices => &["statuses", "limit"],
        WidgetKind::Ledger => &["limit"],
    };
    for key in options.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(widget_error(
                index,
                format!("option `{key}` is not one of {allowed:?}"),
            ));
        }
    }
    let one_of = |key: &str, values: &[&str], required: bool| -> ApiResult<()> {
        match options.get(key) {
            None if required => Err(widget_error(index, format!("option `{key}` is required"))),
            None => Ok(()),
            Some(Value::String(v)) if values.contains(&v.as_str()) => Ok(()),
            Some(_) => Err(widget_error(
                index,
                format!("option `{key}` must be one of {values:?}"),
            )),
        }
    };
    let number = |key: &str, range: std::ops::RangeInclusive<i64>| -> ApiResult<()> {
        match options.get(key) {
            None => Ok(()),
            Some(v) if v.as_i64().is_some_and(|n| range.contains(&n)) => Ok(()),
            Some(_) => Err(widget_error(
                index,
                format!(
                    "option `{key}` must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    const INTERVALS: &[&str] = &["HOUR", "DAY", "WEEK", "MONTH"];
    match widget.kind {
        WidgetKind::Kpi => one_of(
            "kpi",
            &["BALANCES", "OPEN_INVOICES", "OVERDUE_INVOICES", "USAGE"],
            true,
        )?,
        WidgetKind::Balance => {}
        WidgetKind::BalanceHistory => {
            one_of("interval", INTERVALS, false)?;
            number("rangeDays", 1..=366)?;
        }
        WidgetKind::Usage => {
            one_of("interval", INTERVALS, false)?;
            number("rangeDays", 1..=366)?;
            one_of("chart", &["LINE", "BAR"], false)?;
        }
        WidgetKind::Invoices => {
            number("limit", 1..=50)?;
            match options.get("statuses") {
                None => {}
                Some(Value::Array(list))
                    if !list.is_empty()
                        && list.iter().all(|s| {
                            s.as_str()
                                .is_some_and(|s| ["OPEN", "OVERDUE", "PAID", "VOID"].contains(&s))
                        }) => {}
                Some(_) => {
                    return Err(err(
                        "option `statuses` must be a non-empty list of OPEN, OVERDUE, PAID, VOID",
                    ));
                }
            }
        }
        WidgetKind::Ledger => number("limit", 1..=50)?,
    }
    for (name, cell) in [
        ("lg", widget.placement.lg),
        ("md", widget.placement.md),
        ("sm", widget.placement.sm),
    ] {
        let inside = (0..COLUMNS).contains(&cell.x)
            && (1..=COLUMNS).contains(&cell.w)
            && cell.x + cell.w <= COLUMNS
            && (0..=MAX_ROW).contains(&cell.y)
            && (1..=MAX_HEIGHT).contains(&cell.h);
        if !inside {
            return Err(widget_error(
                index,
                format!(
                    "`placement.{name}` must fit the {COLUMNS}-column grid (0 <= x, x + w <= {COLUMNS}, 1 <= h <= {MAX_HEIGHT}, 0 <= y <= {MAX_ROW})"
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a whole layout: at most [`MAX_WIDGETS`] widgets, each valid, ids unique, and no
/// two widgets overlapping at any breakpoint.
pub fn check_widgets(widgets: &[Widget]) -> ApiResult<()> {
    if widgets.len() > MAX_WIDGETS {
        return Err(ApiError::invalid(
            "input.widgets",
            format!("a layout holds at most {MAX_WIDGETS} widgets"),
        ));
    }
    for (i, widget) in widgets.iter().enumerate() {
        check_widget(i, widget)?;
        for (j, other) in widgets[..i].iter().enumerate() {
            if other.id == widget.id {
                return Err(widget_error(i, format!("has the same id as widget {j}")));
            }
            let pairs = [
                ("lg", widget.placement.lg, other.placement.lg),
                ("md", widget.placement.md, other.placement.md),
                ("sm", widget.placement.sm, other.placement.sm),
            ];
            for (name, a, b) in pairs {
                let apart =
                    a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                if !apart {
                    return Err(widget_error(i, format!("overlaps widget {j} at `{name}`")));
                }
            }
        }
    }
    Ok(())
}

/// A layout name: 1–100 characters without control characters.
pub fn layout_name(field: &'static str, raw: &str) -> ApiResult<String> {
    portal_kit::input::text(field, raw, 100)
}

/// A role name a default layout is published for: 1–64 characters of `a-z 0-9 _`.
pub fn role_name(field: &'static str, raw: &str) -> ApiResult<String> {
    let valid = (1..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a role name (a-z, 0-9 and _)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(x: i32, y: i32, w: i32, h: i32) -> Cell {
        Cell { x, y, w, h }
    }

    fn widget(kind: WidgetKind, options: Value, lg: Cell) -> Widget {
        Widget {
            id: Uuid::now_v7(),
            kind,
            title: None,
            binding: Binding {
                account_id: (kind != WidgetKind::Kpi).then(Uuid::now_v7),
                metric: (kind == WidgetKind::Usage).then(|| "api.calls".to_owned()),
            },
            options,
            placement: Placement {
                lg,
                md: lg,
                sm: cell(0, lg.y, 12, lg.h),
            },
        }
    }

    #[test]
    fn options_are_checked_against_the_kind() {
        let ok = widget(
            WidgetKind::Usage,
            json!({ "interval": "DAY", "rangeDays": 30 }),
            cell(0, 0, 6, 4),
        );
        assert!(check_widget(0, &ok).is_ok());
        for (kind, options) in [
            (WidgetKind::Usage, json!({ "interval": "YEAR" })),
            (WidgetKind::Usage, json!({ "rangeDays": 0 })),
            (WidgetKind::Ledger, json!({ "limit": 51 })),
            (WidgetKind::Ledger, json!({ "colour": "red" })),
            (WidgetKind::Kpi, json!({})),
            (WidgetKind::Invoices, json!({ "statuses": ["LATE"] })),
            (WidgetKind::Balance, json!([1])),
        ] {
            let bad = widget(kind, options.clone(), cell(0, 0, 6, 4));
            assert!(check_widget(0, &bad).is_err(), "{kind:?} {options}");
        }
        let mut unbound = widget(WidgetKind::Ledger, json!({}), cell(0, 0, 6, 4));
        unbound.binding.account_id = None;
        assert!(check_widget(0, &unbound).is_err());
    }

    #[test]
    fn widgets_fit_the_grid_and_do_not_overlap() {
        let a = widget(WidgetKind::Balance, Value::Null, cell(0, 0, 6, 4));
        let b = widget(WidgetKind::Balance, Value::Null, cell(6, 0, 6, 4));
        // Small screens stack them: give b its own rows there.
        let mut b = b;
        b.placement.sm = cell(0, 4, 12, 4);
        assert!(check_widgets(&[a.clone(), b.clone()]).is_ok());
        let mut overlapping = b.clone();
        overlapping.placement.lg = cell(5, 0, 6, 4);
        assert!(check_widgets(&[a.clone(), overlapping]).is_err());
        let wide = widget(WidgetKind::Balance, Value::Null, cell(7, 0, 6, 4));
        assert!(check_widget(0, &wide).is_err());
        let mut twin = b;
        twin.id = a.id;
        assert!(check_widgets(&[a, twin]).is_err());
    }
}
