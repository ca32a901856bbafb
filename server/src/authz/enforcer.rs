//! [`Authz`]: the shared Casbin enforcers. Built-in roles come from the policy files; custom roles
//! are loaded per company, lazily, inside the caller's own request transaction (so Row Level
//! Security applies to the loading too, and no cross-tenant database function is needed), and
//! cached for [`CUSTOM_ROLE_TTL`].
//!
//! Casbin walks every policy line of an enforcer on each check, so each company with custom
//! roles gets a small enforcer of its own (the built-in lines plus its roles) instead of one
//! enforcer growing with the number of companies. Built-in roles are checked against the
//! built-in enforcer only: custom role names never equal built-in ones.
//!
//! Casbin evaluates its matcher (a script) for every policy line, which made its check one of
//! the costliest steps of a request. The built-in roles' decisions do not depend on the
//! company (`policy.csv` may only use the domain `*`), and the roles, objects and actions are
//! few: the built-in enforcer's answer to each of them is taken once, when the files are
//! loaded, and checks of built-in roles read that table. Casbin stays the judge: the table is
//! its answers, replaced whenever the files are.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use casbin::{CoreApi, Enforcer};
use tokio::sync::RwLock;
use uuid::Uuid;

use super::{
    Action, Object, Permission, policy,
    roles::{self, CustomRole},
};
use crate::{auth::Principal, db::RequestScope, error::AppResult};

/// How long a company's custom roles are trusted before they are read again. Changes made on
/// this instance apply at once; other instances see them within this time.
pub const CUSTOM_ROLE_TTL: Duration = Duration::from_secs(5);

/// The enforcer shared by every request of a server. Cheap to clone.
#[derive(Clone)]
pub struct Authz {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    dir: PathBuf,
    state: RwLock<State>,
    denials: AtomicU64,
    reloads: AtomicU64,
}

struct State {
    /// The policy files as read, so company enforcers are built from the same snapshot.
    model_text: String,
    policy_text: String,
    /// The built-in roles, valid in every company.
    built_in_enforcer: Enforcer,
    built_in: BTreeSet<String>,
    /// What the built-in enforcer allows each built-in role (in any company).
    built_in_allowed: HashMap<String, HashSet<Permission>>,
    /// Companies whose custom roles are loaded.
    companies: HashMap<Uuid, CompanyRoles>,
    /// Bumped by every invalidation and reload, so a load that began before one is not cached.
    version: u64,
    /// Bumped by every reload of the files.
    files: u64,
}

/// One company's custom roles, in an enforcer with the built-in lines.
struct CompanyRoles {
    enforcer: Enforcer,
    loaded_at: Instant,
    /// Cached: young enough to trust and not invalidated while it was read.
    fresh: bool,
}

impl State {
    /// The enforcer that decides for `role` in `company`, if any.
    /// The decision for `role` in `company`.
    fn decide(&self, role: &str, company: Uuid, permission: Permission) -> bool {
        if let Some(allowed) = self.built_in_allowed.get(role) {
            return allowed.contains(&permission);
        }
        self.enforcer_for(role, company)
            .is_some_and(|enforcer| enforce(enforcer, role, company, permission))
    }

    fn enforcer_for(&self, role: &str, company: Uuid) -> Option<&Enforcer> {
        if self.built_in.contains(role) {
            Some(&self.built_in_enforcer)
        } else {
            self.companies.get(&company).map(|c| &c.enforcer)
        }
    }
}

impl std::fmt::Debug for Authz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authz")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Authz {
    /// Loads `dir/model.conf` and `dir/policy.csv`; fails on anything invalid.
    pub async fn load(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        let loaded = policy::load(&dir).await?;
        tracing::info!(dir = %dir.display(), roles = ?loaded.built_in, "authorization policies loaded");
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                state: RwLock::new(State {
                    model_text: loaded.model_text,
                    policy_text: loaded.policy_text,
                    built_in_allowed: allowed_by(&loaded.enforcer, &loaded.built_in),
                    built_in_enforcer: loaded.enforcer,
                    built_in: loaded.built_in,
                    companies: HashMap::new(),
                    version: 0,
                    files: 0,
                }),
                denials: AtomicU64::new(0),
                reloads: AtomicU64::new(0),
            }),
        })
    }

    pub(super) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(super) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The directory the policy files are read from.
    pub fn policy_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Reads the policy files again and swaps them in at once; custom roles are read again on
    /// next use. On any error the policies in force stay as they are.
    pub async fn reload_policies(&self) -> anyhow::Result<()> {
        let loaded = policy::load(&self.inner.dir).await;
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "policy reload failed; the policies in force are kept"
                );
                return Err(error);
            }
        };
        let mut state = self.inner.state.write().await;
        state.model_text = loaded.model_text;
        state.policy_text = loaded.policy_text;
        state.built_in_allowed = allowed_by(&loaded.enforcer, &loaded.built_in);
        state.built_in_enforcer = loaded.enforcer;
        state.built_in = loaded.built_in;
        state.companies.clear();
        state.version += 1;
        state.files += 1;
        drop(state);
        self.inner.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(dir = %self.inner.dir.display(), "authorization policies reloaded");
        Ok(())
    }

    /// How many times the policy files were reloaded.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// How many requests were denied by the guard.
    pub fn denials(&self) -> u64 {
        self.inner.denials.load(Ordering::Relaxed)
    }

    pub(super) fn count_denial(&self) {
        self.inner.denials.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `role` is one of the roles `policy.csv` defines.
    pub async fn is_built_in(&self, role: &str) -> bool {
        self.inner.state.read().await.built_in.contains(role)
    }

    /// The roles `policy.csv` defines, by name.
    pub async fn built_in_roles(&self) -> Vec<String> {
        self.inner
            .state
            .read()
            .await
            .built_in
            .iter()
            .cloned()
            .collect()
    }

    /// The Casbin decision for `role` in `company`, with whatever custom roles are loaded.
    /// Errors of the enforcer deny (fail closed).
    pub async fn enforce(&self, role: &str, company: Uuid, permission: Permission) -> bool {
        self.inner
            .state
            .read()
            .await
            .decide(role, company, permission)
    }

    /// Every permission `role` has in `company`, `manage` standing for the whole object.
    pub async fn permissions_of(&self, role: &str, company: Uuid) -> Vec<Permission> {
        let state = self.inner.state.read().await;
        let mut permissions = Vec::new();
        let Some(enforcer) = state.enforcer_for(role, company) else {
            return permissions;
        };
        for object in Object::ALL {
            let manage = Permission {
                object,
                action: Action::Manage,
            };
            if enforce(enforcer, role, company, manage) {
                permissions.push(manage);
                continue;
            }
            permissions.extend(
                Action::ALL
                    .into_iter()
                    .map(|action| Permission { object, action })
                    .filter(|&p| enforce(enforcer, role, company, p)),
            );
        }
        permissions
    }

    /// May the caller do this? Custom roles of the caller's company are read first when they
    /// are not loaded or older than [`CUSTOM_ROLE_TTL`], inside the request's read transaction.
    pub async fn authorize(
        &self,
        scope: &RequestScope,
        principal: &Principal,
        permission: Permission,
    ) -> AppResult<bool> {
        if !self.is_built_in(&principal.role).await
            && let Some(version) = self.stale(principal.company_id).await
        {
            let company = principal.company_id;
            let custom = scope
                .read(move |tx| {
                    Box::pin(async move { roles::custom_roles(tx.conn(), company).await })
                })
                .await?;
            self.install_company(principal.company_id, version, &custom)
                .await;
        }
        Ok(self
            .enforce(&principal.role, principal.company_id, permission)
            .await)
    }

    /// `Some(version)` when `company`'s custom roles must be read again.
    async fn stale(&self, company: Uuid) -> Option<u64> {
        let state = self.inner.state.read().await;
        match state.companies.get(&company) {
            Some(c) if c.fresh && c.loaded_at.elapsed() < CUSTOM_ROLE_TTL => None,
            _ => Some(state.version),
        }
    }

    /// Replaces `company`'s custom roles with `custom`. They are cached only when nothing was
    /// invalidated since `version` was read; otherwise they serve this request and the next one
    /// reads again. Companies whose roles have expired are dropped on the way.
    pub(crate) async fn install_company(&self, company: Uuid, version: u64, custom: &[CustomRole]) {
        let (files, model_text, mut policy_text) = {
            let state = self.inner.state.read().await;
            (
                state.files,
                state.model_text.clone(),
                state.policy_text.clone(),
            )
        };
        let domain = company.to_string();
        for role in custom {
            for grant in &role.grants {
                policy_text.push_str(&format!(
                    "\np, {}, {domain}, {}, {}",
                    role.name,
                    grant.object.as_str(),
                    grant.action.as_str()
                ));
            }
        }
        let enforcer = match policy::build(&model_text, &policy_text).await {
            Ok(enforcer) => enforcer,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), %company, "could not load custom roles");
                return;
            }
        };
        let mut state = self.inner.state.write().await;
        if state.files != files {
            // The files were reloaded meanwhile and this enforcer is built on the old ones: the
            // request is denied (fail closed) and the next one loads again.
            return;
        }
        let fresh = state.version == version;
        state
            .companies
            .retain(|_, c| c.loaded_at.elapsed() < CUSTOM_ROLE_TTL);
        state.companies.insert(
            company,
            CompanyRoles {
                enforcer,
                loaded_at: Instant::now(),
                fresh,
            },
        );
    }

    /// Forgets `company`'s custom roles at once (after createRole / deleteRole); the next
    /// request of a custom-role user of that company reads them again.
    pub async fn invalidate_company(&self, company: Uuid) {
        let mut state = self.inner.state.write().await;
        state.version += 1;
        state.companies.remove(&company);
    }
}

/// Every permission `enforcer` grants each of the built-in `roles`. The company asked about
/// does not matter: built-in lines hold in every company (`policy.csv` may only use `*`).
fn allowed_by(
    enforcer: &Enforcer,
    roles: &BTreeSet<String>,
) -> HashMap<String, HashSet<Permission>> {
    let any_company = Uuid::nil();
    roles
        .iter()
        .map(|role| {
            let allowed = Object::ALL
                .into_iter()
                .flat_map(|object| Action::ALL.map(|action| Permission { object, action }))
                .filter(|permission| enforce(enforcer, role, any_company, *permission))
                .collect();
            (role.clone(), allowed)
        })
        .collect()
}

fn enforce(enforcer: &Enforcer, role: &str, company: Uuid, permission: Permission) -> bool {
    let company = company.to_string();
    let request = (
        role,
        company.as_str(),
        permission.object.as_str(),
        permission.action.as_str(),
    );
    match enforcer.enforce(request) {
        Ok(allowed) => allowed,
        Err(error) => {
            tracing::error!(%error, role, %company, %permission, "Casbin failed; denying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
    }

    fn perm(object: Object, action: Action) -> Permission {
        Permission { object, action }
    }

    async fn authz() -> Authz {
        match Authz::load(policies()).await {
            Ok(authz) => authz,
            Err(e) => panic!("load policies: {e:#}"),
        }
    }

    #[tokio::test]
    async fn built_in_roles_apply_in_every_company_and_inherit() {
        let authz = authz().await;
        for company in [Uuid::new_v4(), Uuid::new_v4()] {
            assert!(
                authz
                    .enforce("member", company, perm(Object::Preset, Action::Update))
                    .await
            );
            assert!(
                !authz
                    .enforce("member", company, perm(Object::User, Action::Manage))
                    .await
            );
            // manager inherits member; admin inherits manager.
            assert!(
                authz
                    .enforce("manager", company, perm(Object::Message, Action::Create))
                    .await
            );
            assert!(
                authz
                    .enforce("admin", company, perm(Object::Invitation, Action::Delete))
                    .await
            );
            assert!(
                !authz
                    .enforce("manager", company, perm(Object::Company, Action::Update))
                    .await
            );
        }
    }

    #[tokio::test]
    async fn built_in_decisions_are_casbins_in_every_company() {
        let authz = authz().await;
        let state = authz.inner.state.read().await;
        assert!(!state.built_in_allowed.is_empty());
        for role in &state.built_in {
            for company in [Uuid::nil(), Uuid::new_v4()] {
                for object in Object::ALL {
                    for action in Action::ALL {
                        let permission = perm(object, action);
                        assert_eq!(
                            state.decide(role, company, permission),
                            enforce(&state.built_in_enforcer, role, company, permission),
                            "{role} {permission}"
                        );
                    }
                }
            }
        }
        // Not nothing, not everything.
        assert!(state.decide("admin", Uuid::new_v4(), perm(Object::User, Action::Manage)));
        assert!(!state.decide("member", Uuid::new_v4(), perm(Object::User, Action::Manage)));
    }

    #[tokio::test]
    async fn unknown_roles_objects_and_actions_are_denied() {
        let authz = authz().await;
        let company = Uuid::new_v4();
        assert!(
            !authz
                .enforce("owner", company, perm(Object::Company, Action::Read))
                .await
        );
        let state = authz.inner.state.read().await;
        for request in [
            ("admin", "*", "role", "read"),
            ("admin", "*", "company", "write"),
            ("admin", "*", "", ""),
        ] {
            assert_eq!(
                state.built_in_enforcer.enforce(request).ok(),
                Some(false),
                "{request:?}"
            );
        }
    }

    #[tokio::test]
    async fn custom_roles_hold_in_their_company_only_and_can_be_invalidated() {
        let authz = authz().await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let coach = CustomRole {
            name: "coach".into(),
            description: String::new(),
            grants: vec![
                perm(Object::Preset, Action::Read),
                perm(Object::Audience, Action::Manage),
            ],
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let version = authz.stale(a).await.unwrap_or_default();
        authz
            .install_company(a, version, std::slice::from_ref(&coach))
            .await;
        assert!(authz.stale(a).await.is_none(), "freshly loaded");
        assert!(
            authz
                .enforce("coach", a, perm(Object::Audience, Action::Delete))
                .await
        );
        assert!(
            authz
                .enforce("coach", a, perm(Object::Preset, Action::Read))
                .await
        );
        assert!(
            !authz
                .enforce("coach", a, perm(Object::Preset, Action::Update))
                .await
        );
        assert!(
            !authz
                .enforce("coach", b, perm(Object::Preset, Action::Read))
                .await
        );
        assert_eq!(
            authz.permissions_of("coach", a).await,
            vec![
                perm(Object::Preset, Action::Read),
                perm(Object::Audience, Action::Manage)
            ]
        );

        authz.invalidate_company(a).await;
        assert!(authz.stale(a).await.is_some());
        assert!(
            !authz
                .enforce("coach", a, perm(Object::Preset, Action::Read))
                .await
        );
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_cached() {
        let authz = authz().await;
        let company = Uuid::new_v4();
        let version = authz.stale(company).await.unwrap_or_default();
        authz.invalidate_company(company).await;
        authz.install_company(company, version, &[]).await;
        assert!(authz.stale(company).await.is_some());
    }

    #[tokio::test]
    async fn reload_keeps_the_old_policies_when_the_files_are_broken() {
        let dir = std::env::temp_dir().join(format!("authz-reload-{}", Uuid::new_v4()));
        let copy = async {
            tokio::fs::create_dir_all(&dir).await?;
            for file in ["model.conf", "policy.csv"] {
                tokio::fs::copy(policies().join(file), dir.join(file)).await?;
            }
            std::io::Result::Ok(())
        };
        if let Err(e) = copy.await {
            panic!("copy policies: {e}");
        }
        let authz = match Authz::load(&dir).await {
            Ok(authz) => authz,
            Err(e) => panic!("{e:#}"),
        };
        let company = Uuid::new_v4();
        let read_invitations = perm(Object::Invitation, Action::Read);
        assert!(!authz.enforce("member", company, read_invitations).await);

        let policy = std::fs::read_to_string(dir.join("policy.csv")).unwrap_or_default();
        let _ = std::fs::write(
            dir.join("policy.csv"),
            format!("{policy}\np, member, *, invitation, read\n"),
        );
        assert!(authz.reload_policies().await.is_ok());
        assert!(authz.enforce("member", company, read_invitations).await);
        assert_eq!(authz.reloads(), 1);

        let _ = std::fs::write(dir.join("policy.csv"), "p, member, *, invitations, read\n");
        assert!(authz.reload_policies().await.is_err());
        assert!(
            authz.enforce("member", company, read_invitations).await,
            "old policies kept"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
