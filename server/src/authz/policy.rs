//! The policy files: `model.conf` and `policy.csv`, validated and turned into an enforcer.

use std::{collections::BTreeSet, path::Path};

use anyhow::{Context as _, bail};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter, function_map::key_match};

use super::{Action, Object, Permission};
use crate::caller::BuiltInRole;

/// The role names the database and RLS policies know about; `policy.csv` must define them, and
/// custom roles may not take their names.
pub const BUILT_IN_ROLES: [&str; 3] = [
    BuiltInRole::Admin.as_str(),
    BuiltInRole::Manager.as_str(),
    BuiltInRole::Member.as_str(),
];

/// The domain of built-in rules: every company.
pub(crate) const ANY_COMPANY: &str = "*";

/// One line of `policy.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRule {
    /// `p, role, *, object, action`: the role may do this in every company.
    Grant {
        role: String,
        permission: Permission,
    },
    /// `g, role, parent, *`: the role may do everything `parent` may, in every company.
    Inherit { role: String, parent: String },
}

impl PolicyRule {
    /// Parses and validates `policy.csv`: only `p` and `g` rules of the built-in domain `*`,
    /// known objects and actions. A typo fails loudly here instead of silently granting nothing.
    pub fn parse_file(text: &str) -> anyhow::Result<Vec<Self>> {
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.push(Self::parse_line(line).with_context(|| format!("line {}", index + 1))?);
        }
        let roles = roles_of(&rules);
        for name in BUILT_IN_ROLES {
            anyhow::ensure!(
                roles.contains(name),
                "policy.csv does not define the built-in role `{name}`"
            );
        }
        Ok(rules)
    }

    fn parse_line(line: &str) -> anyhow::Result<Self> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match fields.as_slice() {
            ["p", role, domain, object, action] => {
                check_domain(domain)?;
                let object =
                    Object::parse(object).with_context(|| format!("unknown object `{object}`"))?;
                let action =
                    Action::parse(action).with_context(|| format!("unknown action `{action}`"))?;
                Ok(Self::Grant {
                    role: check_role(role)?,
                    permission: Permission { object, action },
                })
            }
            ["g", role, parent, domain] => {
                check_domain(domain)?;
                Ok(Self::Inherit {
                    role: check_role(role)?,
                    parent: check_role(parent)?,
                })
            }
            _ => {
                bail!("expected `p, role, *, object, action` or `g, role, parent, *`, got `{line}`")
            }
        }
    }
}

fn check_domain(domain: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        domain == ANY_COMPANY,
        "policy.csv holds built-in roles, valid in every company: the domain must be `*`, got \
         `{domain}`"
    );
    Ok(())
}

fn check_role(role: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !role.is_empty()
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "`{role}` is not a valid role name"
    );
    Ok(role.to_owned())
}

/// Every role a set of rules names.
pub(crate) fn roles_of(rules: &[PolicyRule]) -> BTreeSet<String> {
    rules
        .iter()
        .flat_map(|rule| match rule {
            PolicyRule::Grant { role, .. } => vec![role.clone()],
            PolicyRule::Inherit { role, parent } => vec![role.clone(), parent.clone()],
        })
        .collect()
}

/// A policy directory, read and validated: its texts (company enforcers are built from the
/// same snapshot), its enforcer, and the built-in role names its `policy.csv` defines.
pub(crate) struct LoadedPolicy {
    pub model_text: String,
    pub policy_text: String,
    pub enforcer: Enforcer,
    pub built_in: BTreeSet<String>,
}

/// Reads and validates `dir/model.conf` and `dir/policy.csv` and builds an enforcer from them.
pub(crate) async fn load(dir: &Path) -> anyhow::Result<LoadedPolicy> {
    let model_path = dir.join("model.conf");
    let policy_path = dir.join("policy.csv");
    let model_text = tokio::fs::read_to_string(&model_path)
        .await
        .with_context(|| format!("read {}", model_path.display()))?;
    let policy_text = tokio::fs::read_to_string(&policy_path)
        .await
        .with_context(|| format!("read {}", policy_path.display()))?;
    let rules = PolicyRule::parse_file(&policy_text)
        .with_context(|| format!("{}", policy_path.display()))?;
    let enforcer = build(&model_text, &policy_text)
        .await
        .with_context(|| format!("{}", model_path.display()))?;
    Ok(LoadedPolicy {
        model_text,
        policy_text,
        enforcer,
        built_in: roles_of(&rules),
    })
}

/// An enforcer of `model_text` holding the policy lines of `policy_text`.
pub(crate) async fn build(model_text: &str, policy_text: &str) -> anyhow::Result<Enforcer> {
    let model = DefaultModel::from_str(model_text).await?;
    let mut enforcer = Enforcer::new(model, StringAdapter::new(policy_text))
        .await
        .context("build the Casbin enforcer")?;
    // Nothing is ever written back anywhere.
    enforcer.enable_auto_save(false);
    // `g, admin, manager, *` must hold in every company: domains match with keyMatch.
    enforcer
        .get_role_manager()
        .write()
        .matching_fn(None, Some(key_match));
    Ok(enforcer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grants_and_inheritance() {
        let rules = PolicyRule::parse_file(
            "# comment\n\np, member, *, preset, manage\ng, manager, member, *\n\
             g, admin, manager, *\n",
        );
        let rules = match rules {
            Ok(rules) => rules,
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0],
            PolicyRule::Grant {
                role: "member".into(),
                permission: Permission {
                    object: Object::Preset,
                    action: Action::Manage
                }
            }
        );
    }

    #[test]
    fn typos_and_company_domains_are_refused() {
        let base = "g, manager, member, *\ng, admin, manager, *\n";
        for bad in [
            "p, member, *, presets, read",
            "p, member, *, preset, write",
            "p, member, 7f1c, preset, read",
            "p, member, *, preset",
            "x, member, *, preset, read",
        ] {
            assert!(
                PolicyRule::parse_file(&format!("{base}{bad}\n")).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn the_built_in_roles_must_be_defined() {
        assert!(PolicyRule::parse_file("p, member, *, preset, read\n").is_err());
    }
}
