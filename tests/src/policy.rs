//! `policies/policy.csv`, read plainly, so tests can derive what each role may do from it.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
};

/// Every action of the policy language; `manage` stands for all of them.
pub const ACTIONS: [&str; 5] = ["read", "create", "update", "delete", "manage"];

/// The directory holding `model.conf` and `policy.csv`.
pub fn policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// `policy.csv`, read plainly: grants per role, and the roles each role inherits from.
#[derive(Debug, Default)]
pub struct Policy {
    pub grants: HashMap<String, BTreeSet<(String, String)>>,
    pub parents: HashMap<String, Vec<String>>,
}

impl Policy {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut policy = Self::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            match fields.as_slice() {
                ["p", role, "*", object, action] => {
                    policy.grant(role, object, action);
                }
                ["g", role, parent, "*"] => policy
                    .parents
                    .entry((*role).to_owned())
                    .or_default()
                    .push((*parent).to_owned()),
                _ => anyhow::bail!("unexpected policy line `{line}`"),
            }
        }
        Ok(policy)
    }

    pub fn grant(&mut self, role: &str, object: &str, action: &str) {
        self.grants
            .entry(role.to_owned())
            .or_default()
            .insert((object.to_owned(), action.to_owned()));
    }

    /// Whether `role` (or a role it inherits from) is granted `action` on `object`, where
    /// `manage` stands for every action.
    pub fn allows(&self, role: &str, object: &str, action: &str) -> bool {
        let mut stack = vec![role.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(role) = stack.pop() {
            if !seen.insert(role.clone()) {
                continue;
            }
            if let Some(grants) = self.grants.get(&role) {
                let has = |a: &str| grants.contains(&(object.to_owned(), a.to_owned()));
                if ACTIONS.contains(&action) && (has(action) || has("manage")) {
                    return true;
                }
            }
            stack.extend(self.parents.get(&role).cloned().unwrap_or_default());
        }
        false
    }
}

/// The project's `policy.csv`.
pub fn policy() -> anyhow::Result<Policy> {
    Policy::parse(&std::fs::read_to_string(policy_dir().join("policy.csv"))?)
}
