//! The GraphQL surface of field-level RBAC policies: listing, adding and removing rules,
//! and explaining a decision.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use portal_kit::context::{actor, db, meta};
use portal_kit::policy::{Action, Effect, Rule};
use portal_kit::{ApiError, ApiResult, input};

use crate::policy_store::{self, NewRule, StoredRule};

/// `read` (query fields and fields below root fields) or `write` (mutation fields).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum PolicyAction {
    /// Reading a field.
    Read,
    /// Calling a mutation.
    Write,
}

/// Allow, or deny (which overrides every allow).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum PolicyEffect {
    /// Grants.
    Allow,
    /// Takes away.
    Deny,
}

/// One rule: `role` may (or may not) use fields matching `object` for `action` in
/// `domain` (a tenant id, or `*` for every tenant).
#[derive(SimpleObject)]
pub struct PolicyRule {
    /// Row id (`null` for rules in explanations of inherited policy).
    pub id: Option<ID>,
    /// Role name.
    pub role: String,
    /// Tenant id or `*`.
    pub domain: String,
    /// `Type.field`, `Type.*` or `*`.
    pub object: String,
    /// `read` or `write`.
    pub action: String,
    /// `allow` or `deny`.
    pub effect: String,
}

impl From<StoredRule> for PolicyRule {
    fn from(rule: StoredRule) -> Self {
        Self {
            id: Some(ID(rule.id.to_string())),
            role: rule.role,
            domain: rule.domain,
            object: rule.object,
            action: rule.action,
            effect: rule.effect,
        }
    }
}

impl From<Rule> for PolicyRule {
    fn from(rule: Rule) -> Self {
        Self {
            id: None,
            role: rule.role,
            domain: rule.domain,
            object: rule.object,
            action: rule.action.as_str().to_owned(),
            effect: rule.effect.as_str().to_owned(),
        }
    }
}

/// Input of `addPolicyRule`.
#[derive(InputObject)]
pub struct AddPolicyRuleInput {
    /// A role of the tenant (or `authenticated`).
    pub role: String,
    /// `Type.field` or `Type.*`.
    pub object: String,
    /// Read or write.
    pub action: PolicyAction,
    /// Allow or deny.
    pub effect: PolicyEffect,
    /// For every tenant instead of the caller's (platform admins only; default false).
    pub all_tenants: Option<bool>,
}

/// Why a user may or may not use a field.
#[derive(SimpleObject)]
pub struct AccessExplanation {
    /// The field coordinate.
    pub coordinate: String,
    /// `read` or `write`.
    pub action: String,
    /// The verdict.
    pub allowed: bool,
    /// Every role the user holds for it (explicit, implicit and inherited).
    pub roles: Vec<String>,
    /// Inherited roles as `role ← inherited from`.
    pub inherited_roles: Vec<String>,
    /// The rules that matched.
    pub matched_rules: Vec<PolicyRule>,
    /// In words.
    pub reason: String,
}

/// Policy queries.
#[derive(Default)]
pub struct PolicyQuery;

#[Object]
impl PolicyQuery {
    /// The rules in force in the caller's tenant (global and the tenant's own), optionally
    /// of one role (tenant admins and auditors).
    async fn policy_rules(
        &self,
        ctx: &Context<'_>,
        role: Option<String>,
    ) -> ApiResult<Vec<PolicyRule>> {
        let rules = policy_store::rules(db(ctx)?, actor(ctx), role.as_deref()).await?;
        Ok(rules.into_iter().map(PolicyRule::from).collect())
    }

    /// Why a user of the tenant may or may not use `coordinate` (`Type.field`): the
    /// matching rules and the role chain (tenant admins and auditors).
    async fn explain_access(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        coordinate: String,
    ) -> ApiResult<AccessExplanation> {
        let user_id = input::id("userId", &user_id)?;
        if coordinate.len() > 300 {
            return Err(ApiError::invalid(
                "coordinate",
                "no such field in the supergraph",
            ));
        }
        let (action, why) =
            policy_store::explain(db(ctx)?, actor(ctx), user_id, &coordinate).await?;
        Ok(AccessExplanation {
            coordinate,
            action: action.as_str().to_owned(),
            allowed: why.allowed,
            roles: why.roles,
            inherited_roles: why
                .inherited
                .into_iter()
                .map(|(role, from)| format!("{role} ← {from}"))
                .collect(),
            matched_rules: why.matched.into_iter().map(PolicyRule::from).collect(),
            reason: why.reason,
        })
    }
}

/// Policy mutations (tenant admins for their tenant; platform admins everywhere).
#[derive(Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// Adds a rule; every gateway applies it within about a second.
    async fn add_policy_rule(
        &self,
        ctx: &Context<'_>,
        input: AddPolicyRuleInput,
    ) -> ApiResult<PolicyRule> {
        let role = crate::domain::role_name("input.role", &input.role)?;
        let object = input.object.trim().to_owned();
        if object.is_empty() || object.len() > 300 {
            return Err(ApiError::invalid(
                "input.object",
                "must be Type.field or Type.*",
            ));
        }
        let new = NewRule {
            role,
            object,
            action: match input.action {
                PolicyAction::Read => Action::Read,
                PolicyAction::Write => Action::Write,
            },
            effect: match input.effect {
                PolicyEffect::Allow => Effect::Allow,
                PolicyEffect::Deny => Effect::Deny,
            },
            all_tenants: input.all_tenants.unwrap_or(false),
        };
        Ok(policy_store::add_rule(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Removes a rule of the caller's tenant (platform admins: any rule).
    async fn remove_policy_rule(&self, ctx: &Context<'_>, id: ID) -> ApiResult<PolicyRule> {
        let id = input::id("id", &id)?;
        Ok(
            policy_store::remove_rule(db(ctx)?, actor(ctx), meta(ctx), id)
                .await?
                .into(),
        )
    }
}
