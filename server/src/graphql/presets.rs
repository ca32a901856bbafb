//! Saved audience filters: `presets`, `preset`, `createPreset`, `updatePreset`,
//! `deletePreset`, `duplicatePreset`. Casbin decides the role part; Row Level Security the
//! rows (members see their own and company-visible presets and change only their own;
//! managers and admins see and change all of the company's).

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    audience::{budget, may},
    connection::{PageInfo, connection},
    principal, scope,
};
use crate::{
    audience::cost,
    authz::{Action, Object},
    error::AppResult,
    services::{
        self,
        presets::{self as service, Visibility},
    },
};

mod resolvers;

pub use resolvers::{PresetMutation, PresetQuery};

/// Who sees a preset.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetVisibility {
    /// Its owner (and the company's managers and admins).
    Private,
    /// Everyone in the company.
    Company,
}

impl From<Visibility> for PresetVisibility {
    fn from(visibility: Visibility) -> Self {
        match visibility {
            Visibility::Private => Self::Private,
            Visibility::Company => Self::Company,
        }
    }
}

impl From<PresetVisibility> for Visibility {
    fn from(visibility: PresetVisibility) -> Self {
        match visibility {
            PresetVisibility::Private => Self::Private,
            PresetVisibility::Company => Self::Company,
        }
    }
}

/// A saved audience filter.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Preset {
    pub id: ID,
    /// Unique in the company, whatever its case.
    pub name: String,
    /// What the audience is for.
    pub description: String,
    /// The filter document (see the README's "Audience segmentation").
    pub filter: Json<serde_json::Value>,
    /// Who sees it.
    pub visibility: PresetVisibility,
    /// The user who owns it.
    pub owner_id: ID,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<service::Preset> for Preset {
    fn from(m: service::Preset) -> Self {
        Self {
            id: ID(m.id.to_string()),
            name: m.name,
            description: m.description,
            filter: Json(m.filter),
            visibility: m.visibility.into(),
            owner_id: ID(m.owner_id.to_string()),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[ComplexObject]
impl Preset {
    /// How many users the preset's filter selects now. Its values count towards the
    /// request's bound on audience values.
    async fn size(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let caller = principal(ctx)?.clone();
        budget(ctx)?.spend(cost::values(&self.filter.0), "size")?;
        let doc = self.filter.0.clone();
        scope(ctx)?
            .read(move |tx| {
                Box::pin(async move {
                    services::audience::count_document(tx.conn(), &caller, &doc).await
                })
            })
            .await
    }

    /// Whether the caller may change or delete it.
    async fn can_edit(&self, ctx: &Context<'_>) -> AppResult<bool> {
        // Its owner, and whoever may manage audiences: what Row Level Security lets change it.
        let principal = principal(ctx)?;
        if self.owner_id.as_str() == principal.user_id.to_string() {
            return Ok(true);
        }
        may(ctx, Object::Audience, Action::Manage).await
    }
}

connection! {
    /// A page of presets, by name.
    #[graphql(complex)]
    pub struct PresetConnection {
        edges,
        page_info: PageInfo,
        #[graphql(skip)]
        filter: service::PresetFilter,
    }
    /// An item of a [`PresetConnection`].
    pub struct PresetEdge {
        cursor,
        node: Preset,
    }
}

#[ComplexObject]
impl PresetConnection {
    /// How many presets match, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let filter = self.filter.clone();
        scope(ctx)?
            .read(move |tx| Box::pin(async move { service::count(tx.conn(), &filter).await }))
            .await
    }
}

/// A new preset.
#[derive(Debug, Clone, InputObject)]
pub struct CreatePresetInput {
    /// 1 to 200 characters, unique in the company whatever its case.
    pub name: String,
    /// At most 2000 characters.
    #[graphql(default)]
    pub description: String,
    /// The filter document; validated before saving.
    pub filter: Json<serde_json::Value>,
    /// Who sees it; private by default.
    #[graphql(default_with = "PresetVisibility::Private")]
    pub visibility: PresetVisibility,
}

/// Changes to a preset; absent fields stay as they are.
#[derive(Debug, Clone, InputObject)]
pub struct UpdatePresetInput {
    /// 1 to 200 characters, unique in the company whatever its case.
    pub name: Option<String>,
    /// At most 2000 characters.
    pub description: Option<String>,
    /// The filter document; validated before saving.
    pub filter: Option<Json<serde_json::Value>>,
    /// Who sees it.
    pub visibility: Option<PresetVisibility>,
}
