//! Field-level authorization policies (the Casbin model in `policies/model.conf`),
//! evaluated without a Casbin call: `p` rules (role, domain, object, action, effect) and
//! `g` role inheritance per domain, `keyMatch` objects, explicit deny overriding allow,
//! deny by default. The gateway compiles decisions from these; identity uses them to
//! check what an editing admin may grant and to explain decisions.

use std::collections::BTreeSet;

/// The role every caller holds, signed in or not.
pub const PUBLIC_ROLE: &str = "public";

/// The role every signed-in caller (user or service account) holds.
pub const AUTHENTICATED_ROLE: &str = "authenticated";

/// The domain of rules that hold in every tenant.
pub const ANY_DOMAIN: &str = "*";

/// Prefix of policy objects that name a grant rather than a field coordinate.
pub const GRANT_PREFIX: &str = "grant:";

/// Read threads one does not take part in (staff who work the support queue).
pub const THREADS_ALL: &str = "Thread.all";
/// Read accounts one neither owns nor is a member of (staff).
pub const ACCOUNTS_ALL: &str = "Account.all";
/// Read report definitions others own (staff).
pub const REPORTS_ALL: &str = "ReportDefinition.all";
/// Write policy rules for every tenant, and grant what one does not hold (platform).
pub const POLICIES_ALL_TENANTS: &str = "Policy.allTenants";
/// See every data-subject request of the tenant, not only one's own (admins, auditors).
pub const SUBJECT_REQUESTS_ALL: &str = "DataSubjectRequest.all";
/// File a data-subject request on a user's behalf (admins).
pub const SUBJECT_REQUESTS_ON_BEHALF: &str = "DataSubjectRequest.onBehalf";

/// Grants: powers beyond field coordinates that subgraphs' row rules consult. A policy
/// gives one with a rule on the object `grant:<name>` and the action shown (e.g.
/// `p, support_agent, *, grant:Thread.all, read, allow`); the gateway compiles them with
/// the field decisions and passes them on with the actor, so subgraphs never decide by
/// role name.
pub const GRANTS: &[(&str, Action, &str)] = &[
    (
        THREADS_ALL,
        Action::Read,
        "read every thread of the tenant, not only those one takes part in",
    ),
    (
        ACCOUNTS_ALL,
        Action::Read,
        "read every account of the tenant, not only those one owns or is a member of",
    ),
    (
        REPORTS_ALL,
        Action::Read,
        "read every report definition of the tenant, not only one's own",
    ),
    (
        POLICIES_ALL_TENANTS,
        Action::Write,
        "write policy rules for every tenant and grant beyond one's own rights",
    ),
    (
        SUBJECT_REQUESTS_ALL,
        Action::Read,
        "see every data-subject request of the tenant, not only those about or by oneself",
    ),
    (
        SUBJECT_REQUESTS_ON_BEHALF,
        Action::Write,
        "file a data-subject request on a user's behalf (the user still confirms it)",
    ),
];

/// What a field coordinate is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Query and subscription root fields, and every field below any root field.
    Read,
    /// Mutation root fields.
    Write,
}

impl Action {
    /// Policy form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Takes away, whatever grants.
    Deny,
}

impl Effect {
    /// Policy form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One `p` rule: `p, role, domain, object, action, effect`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// The role it applies to.
    pub role: String,
    /// A tenant id, or `*`.
    pub domain: String,
    /// `Type.field`, `Type.*` or `*`.
    pub object: String,
    /// Read or write.
    pub action: Action,
    /// Allow or deny.
    pub effect: Effect,
}

/// One `g` rule: `g, role, inherited role, domain` — holders of `role` also hold
/// `inherits` in `domain` (a tenant id, or `*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inheritance {
    /// The inheriting role.
    pub role: String,
    /// The role whose rules it also gets.
    pub inherits: String,
    /// A tenant id, or `*`.
    pub domain: String,
}

/// A policy line that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy line {line}: {message}")]
pub struct PolicyError {
    /// 1-based line (or row) number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A whole policy: rules, inheritance, and a revision that changes with every edit.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// `p` rules.
    pub rules: Vec<Rule>,
    /// `g` rules.
    pub inheritance: Vec<Inheritance>,
    /// Changes whenever the policy does.
    pub revision: i64,
}

/// The roles a caller holds for policy purposes: its own, plus [`PUBLIC_ROLE`] always and
/// [`AUTHENTICATED_ROLE`] when signed in.
pub fn with_implicit_roles(roles: &[String], signed_in: bool) -> Vec<String> {
    let mut held = roles.to_vec();
    held.push(PUBLIC_ROLE.to_owned());
    if signed_in {
        held.push(AUTHENTICATED_ROLE.to_owned());
    }
    held
}

/// Casbin's `keyMatch`: `pattern` may contain `*`, which matches everything from there on.
pub fn key_match(key: &str, pattern: &str) -> bool {
    match pattern.find('*') {
        None => key == pattern,
        Some(i) => key.starts_with(&pattern[..i]),
    }
}

impl Policies {
    /// Reads policy rows in Casbin's CSV form: `p, role, domain, object, action, effect`
    /// and `g, role, inherited, domain`. Blank lines and `#` comments are skipped.
    pub fn parse_csv(text: &str, revision: i64) -> Result<Self, PolicyError> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<String> = line.split(',').map(|f| f.trim().to_owned()).collect();
            rows.push((i + 1, fields));
        }
        Self::from_rows(rows, revision)
    }

    /// Builds a policy from `(row number, [ptype, v0, v1, …])` rows.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (usize, Vec<String>)>,
        revision: i64,
    ) -> Result<Self, PolicyError> {
        let mut policies = Self {
            revision,
            ..Self::default()
        };
        for (line, fields) in rows {
            let error = |message: &str| PolicyError {
                line,
                message: message.to_owned(),
            };
            let field = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
            match field(0) {
                "p" => {
                    let action = Action::parse(field(4))
                        .ok_or_else(|| error("action must be read or write"))?;
                    let effect = match field(5) {
                        "allow" | "" => Effect::Allow,
                        "deny" => Effect::Deny,
                        _ => return Err(error("effect must be allow or deny")),
                    };
                    if field(1).is_empty() || field(2).is_empty() || field(3).is_empty() {
                        return Err(error("p needs role, domain and object"));
                    }
                    policies.rules.push(Rule {
                        role: field(1).to_owned(),
                        domain: field(2).to_owned(),
                        object: field(3).to_owned(),
                        action,
                        effect,
                    });
                }
                "g" => {
                    if field(1).is_empty() || field(2).is_empty() {
                        return Err(error("g needs role and inherited role"));
                    }
                    policies.inheritance.push(Inheritance {
                        role: field(1).to_owned(),
                        inherits: field(2).to_owned(),
                        domain: match field(3) {
                            "" => ANY_DOMAIN.to_owned(),
                            domain => domain.to_owned(),
                        },
                    });
                }
                _ => return Err(error("rows start with p or g")),
            }
        }
        Ok(policies)
    }

    /// `roles` and every role they inherit in `domain`, transitively.
    pub fn closure(&self, roles: &[String], domain: &str) -> BTreeSet<String> {
        let mut held: BTreeSet<String> = roles.iter().cloned().collect();
        let mut frontier: Vec<String> = held.iter().cloned().collect();
        while let Some(role) = frontier.pop() {
            for link in &self.inheritance {
                let applies = link.domain == ANY_DOMAIN || link.domain == domain;
                if applies && link.role == role && held.insert(link.inherits.clone()) {
                    frontier.push(link.inherits.clone());
                }
            }
        }
        held
    }

    /// The grants (see [`GRANTS`]) holders of `held` (a closure) have in `domain`, sorted.
    pub fn grants(&self, held: &BTreeSet<String>, domain: &str) -> Vec<String> {
        let mut granted: Vec<String> = GRANTS
            .iter()
            .filter(|(name, action, _)| {
                self.allows(held, domain, &format!("{GRANT_PREFIX}{name}"), *action)
            })
            .map(|(name, _, _)| (*name).to_owned())
            .collect();
        granted.sort();
        granted
    }

    /// The rules that match a holder of `held` (a closure) in `domain` using
    /// `coordinate` for `action`.
    pub fn matching<'a>(
        &'a self,
        held: &'a BTreeSet<String>,
        domain: &'a str,
        coordinate: &'a str,
        action: Action,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |rule| {
            rule.action == action
                && (rule.domain == ANY_DOMAIN || rule.domain == domain)
                && held.contains(&rule.role)
                && key_match(coordinate, &rule.object)
        })
    }

    /// Whether holders of `held` in `domain` may use `coordinate` for `action`: some rule
    /// allows and none denies.
    pub fn allows(
        &self,
        held: &BTreeSet<String>,
        domain: &str,
        coordinate: &str,
        action: Action,
    ) -> bool {
        let mut allowed = false;
        for rule in self.matching(held, domain, coordinate, action) {
            match rule.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
        allowed
    }
}

/// Why holders of some roles may or may not use a coordinate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The verdict.
    pub allowed: bool,
    /// Every role held (the given roles and what they inherit).
    pub roles: Vec<String>,
    /// How each inherited role is reached: `(role, inherited from)`.
    pub inherited: Vec<(String, String)>,
    /// The rules that matched (allows and denies).
    pub matched: Vec<Rule>,
    /// In words.
    pub reason: String,
}

impl Policies {
    /// Explains the decision for holders of `roles` in `domain` on `coordinate`.
    pub fn explain(
        &self,
        roles: &[String],
        domain: &str,
        coordinate: &str,
        action: Action,
    ) -> Explanation {
        let held = self.closure(roles, domain);
        let mut inherited = Vec::new();
        for link in &self.inheritance {
            let applies = link.domain == ANY_DOMAIN || link.domain == domain;
            if applies && held.contains(&link.role) && !roles.contains(&link.inherits) {
                inherited.push((link.inherits.clone(), link.role.clone()));
            }
        }
        let matched: Vec<Rule> = self
            .matching(&held, domain, coordinate, action)
            .cloned()
            .collect();
        let allowed = self.allows(&held, domain, coordinate, action);
        let reason = if let Some(deny) = matched.iter().find(|r| r.effect == Effect::Deny) {
            format!(
                "denied: rule `p, {}, {}, {}, {}, deny` overrides every allow",
                deny.role,
                deny.domain,
                deny.object,
                deny.action.as_str()
            )
        } else if let Some(allow) = matched.first() {
            format!(
                "allowed by `p, {}, {}, {}, {}, allow`",
                allow.role,
                allow.domain,
                allow.object,
                allow.action.as_str()
            )
        } else {
            "denied by default: no rule allows it".to_owned()
        };
        Explanation {
            allowed,
            roles: held.into_iter().collect(),
            inherited,
            matched,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_match_follows_casbin() {
        assert!(key_match("Account.balance", "Account.*"));
        assert!(key_match("Account.balance", "*"));
        assert!(key_match("Account.balance", "Account.balance"));
        assert!(!key_match("Account.balance", "Account.name"));
        assert!(!key_match("AccountEdge.node", "Account.*"));
        assert!(key_match("Mutation.createAccount", "Mutation.*"));
    }

    #[test]
    fn deny_overrides_allow_and_roles_inherit_per_domain() -> Result<(), PolicyError> {
        let policies = Policies::parse_csv(
            "p, billing, *, Account.*, read, allow\n\
             p, support, *, Account.*, read, allow\n\
             p, support, *, Account.balance, read, deny\n\
             p, auditor, t1, AuditEvent.*, read, allow\n\
             g, lead, support, *\n\
             g, boss, billing, t2\n",
            1,
        )?;
        let held = |roles: &[&str], domain: &str| {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            policies.closure(&roles, domain)
        };
        let read = |roles: &[&str], domain: &str, coordinate: &str| {
            policies.allows(&held(roles, domain), domain, coordinate, Action::Read)
        };
        assert!(read(&["billing"], "t1", "Account.balance"));
        assert!(!read(&["support"], "t1", "Account.balance"));
        assert!(read(&["support"], "t1", "Account.name"));
        assert!(
            !read(&["billing", "support"], "t1", "Account.balance"),
            "deny wins"
        );
        assert!(!read(&["lead"], "t1", "Account.balance"), "inherited deny");
        assert!(read(&["boss"], "t2", "Account.balance"), "inherits in t2");
        assert!(!read(&["boss"], "t1", "Account.balance"), "not in t1");
        assert!(read(&["auditor"], "t1", "AuditEvent.action"));
        assert!(
            !read(&["auditor"], "t2", "AuditEvent.action"),
            "tenant-scoped rule"
        );
        assert!(!read(&["nobody"], "t1", "Account.name"), "deny by default");
        assert!(!policies.allows(
            &held(&["billing"], "t1"),
            "t1",
            "Account.name",
            Action::Write
        ));
        Ok(())
    }

    #[test]
    fn explanations_name_the_rule_and_the_role_chain() -> Result<(), PolicyError> {
        let policies = Policies::parse_csv(
            "p, support, *, Account.*, read, allow\n\
             p, support, *, Account.balance, read, deny\n\
             g, lead, support, *\n",
            1,
        )?;
        let lead = vec!["lead".to_owned()];
        let why = policies.explain(&lead, "t", "Account.balance", Action::Read);
        assert!(!why.allowed);
        assert_eq!(
            why.inherited,
            vec![("support".to_owned(), "lead".to_owned())]
        );
        assert_eq!(why.matched.len(), 2);
        assert!(
            why.reason.contains("Account.balance, read, deny"),
            "{}",
            why.reason
        );
        let why = policies.explain(&lead, "t", "Account.name", Action::Read);
        assert!(
            why.allowed && why.reason.starts_with("allowed by"),
            "{}",
            why.reason
        );
        let why = policies.explain(&lead, "t", "User.email", Action::Read);
        assert!(!why.allowed && why.reason.contains("by default"));
        Ok(())
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = Policies::parse_csv("p, r, *, X.y, read, allow\np, r, *, X.y, fly, allow", 1);
        assert_eq!(err.err().map(|e| e.line), Some(2));
        assert!(Policies::parse_csv("x, y", 1).is_err());
    }
}
