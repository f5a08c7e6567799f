//! A Casbin [`Adapter`] over the `casbin_rule` table (sea-orm), so Casbin itself can load,
//! and edit, the portal's stored policies: `portal policy --database`, and the test that
//! checks the gateway's compiled decisions against Casbin reading the database. (The
//! published adapters need sea-orm 1 or sqlx 0.8.)
//!
//! Writes through this adapter bump the policy revision like the GraphQL editing API, so
//! gateways pick them up.

use casbin::error::AdapterError;
use casbin::{Adapter, Filter, Model, Result};
use portal_kit::db::BeginWrite;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use portal_entities::platform::casbin_rule;

/// The adapter.
pub struct SeaOrmAdapter {
    db: DatabaseConnection,
}

impl SeaOrmAdapter {
    /// An adapter over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn failed(err: impl std::error::Error + Send + Sync + 'static) -> casbin::Error {
    AdapterError(Box::new(err)).into()
}

fn values(row: &casbin_rule::Model) -> Vec<String> {
    let mut values = vec![
        row.v0.clone(),
        row.v1.clone(),
        row.v2.clone(),
        row.v3.clone(),
        row.v4.clone(),
        row.v5.clone(),
    ];
    while values.last().is_some_and(String::is_empty) {
        values.pop();
    }
    values
}

fn row(ptype: &str, rule: &[String]) -> casbin_rule::ActiveModel {
    let value = |i: usize| Set(rule.get(i).cloned().unwrap_or_default());
    casbin_rule::ActiveModel {
        id: Set(Uuid::now_v7()),
        ptype: Set(ptype.to_owned()),
        v0: value(0),
        v1: value(1),
        v2: value(2),
        v3: value(3),
        v4: value(4),
        v5: value(5),
    }
}

fn load_into(m: &mut dyn Model, rows: &[casbin_rule::Model]) {
    for row in rows {
        let sec = if row.ptype.starts_with('g') { "g" } else { "p" };
        if let Some(assertion) = m
            .get_mut_model()
            .get_mut(sec)
            .and_then(|section| section.get_mut(&row.ptype))
        {
            assertion.get_mut_policy().insert(values(row));
        }
    }
}

impl SeaOrmAdapter {
    /// Bumps the policy revision (and, on PostgreSQL, notifies the gateways), as edits
    /// through the API do.
    async fn bump(&self, txn: &sea_orm::DatabaseTransaction) -> Result<()> {
        portal_identity::policy_store::bump_revision(txn)
            .await
            .map(|_| ())
            .map_err(|err| failed(std::io::Error::other(format!("{err:?}"))))
    }

    fn matching(ptype: &str, rule: &[String]) -> sea_orm::Select<casbin_rule::Entity> {
        let columns = [
            casbin_rule::Column::V0,
            casbin_rule::Column::V1,
            casbin_rule::Column::V2,
            casbin_rule::Column::V3,
            casbin_rule::Column::V4,
            casbin_rule::Column::V5,
        ];
        let mut select = casbin_rule::Entity::find().filter(casbin_rule::Column::Ptype.eq(ptype));
        for (i, column) in columns.iter().enumerate() {
            select = select.filter(column.eq(rule.get(i).cloned().unwrap_or_default()));
        }
        select
    }
}

#[async_trait::async_trait]
impl Adapter for SeaOrmAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> Result<()> {
        let rows = casbin_rule::Entity::find()
            .order_by_asc(casbin_rule::Column::Id)
            .all(&self.db)
            .await
            .map_err(failed)?;
        load_into(m, &rows);
        Ok(())
    }

    async fn load_filtered_policy<'a>(&mut self, m: &mut dyn Model, f: Filter<'a>) -> Result<()> {
        let rows = casbin_rule::Entity::find()
            .order_by_asc(casbin_rule::Column::Id)
            .all(&self.db)
            .await
            .map_err(failed)?;
        let keep = |row: &casbin_rule::Model| {
            let wanted = if row.ptype.starts_with('g') {
                &f.g
            } else {
                &f.p
            };
            let values = values(row);
            wanted
                .iter()
                .enumerate()
                .all(|(i, w)| w.is_empty() || values.get(i).map(String::as_str) == Some(*w))
        };
        let rows: Vec<_> = rows.into_iter().filter(keep).collect();
        load_into(m, &rows);
        Ok(())
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> Result<()> {
        let txn = self.db.begin_write().await.map_err(failed)?;
        casbin_rule::Entity::delete_many()
            .exec(&txn)
            .await
            .map_err(failed)?;
        for sec in ["p", "g"] {
            let Some(section) = m.get_model().get(sec) else {
                continue;
            };
            for (ptype, assertion) in section {
                for rule in assertion.get_policy() {
                    row(ptype, rule).insert(&txn).await.map_err(failed)?;
                }
            }
        }
        self.bump(&txn).await?;
        txn.commit().await.map_err(failed)
    }

    async fn clear_policy(&mut self) -> Result<()> {
        let txn = self.db.begin_write().await.map_err(failed)?;
        casbin_rule::Entity::delete_many()
            .exec(&txn)
            .await
            .map_err(failed)?;
        self.bump(&txn).await?;
        txn.commit().await.map_err(failed)
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(&mut self, _sec: &str, ptype: &str, rule: Vec<String>) -> Result<bool> {
        self.add_policies(_sec, ptype, vec![rule]).await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> Result<bool> {
        let txn = self.db.begin_write().await.map_err(failed)?;
        for rule in &rules {
            row(ptype, rule).insert(&txn).await.map_err(failed)?;
        }
        self.bump(&txn).await?;
        txn.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn remove_policy(&mut self, _sec: &str, ptype: &str, rule: Vec<String>) -> Result<bool> {
        self.remove_policies(_sec, ptype, vec![rule]).await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> Result<bool> {
        let txn = self.db.begin_write().await.map_err(failed)?;
        let mut removed = false;
        for rule in &rules {
            let ids: Vec<Uuid> = Self::matching(ptype, rule)
                .all(&txn)
                .await
                .map_err(failed)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            removed |= !ids.is_empty();
            casbin_rule::Entity::delete_many()
                .filter(casbin_rule::Column::Id.is_in(ids))
                .exec(&txn)
                .await
                .map_err(failed)?;
        }
        self.bump(&txn).await?;
        txn.commit().await.map_err(failed)?;
        Ok(removed)
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> Result<bool> {
        let columns = [
            casbin_rule::Column::V0,
            casbin_rule::Column::V1,
            casbin_rule::Column::V2,
            casbin_rule::Column::V3,
            casbin_rule::Column::V4,
            casbin_rule::Column::V5,
        ];
        let mut delete =
            casbin_rule::Entity::delete_many().filter(casbin_rule::Column::Ptype.eq(ptype));
        for (offset, value) in field_values.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            let Some(column) = columns.get(field_index + offset) else {
                return Ok(false);
            };
            delete = delete.filter(column.eq(value.clone()));
        }
        let txn = self.db.begin_write().await.map_err(failed)?;
        let result = delete.exec(&txn).await.map_err(failed)?;
        self.bump(&txn).await?;
        txn.commit().await.map_err(failed)?;
        Ok(result.rows_affected > 0)
    }
}
