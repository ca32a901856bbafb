//! Saved audience filters: `presets`, `preset`, `createPreset`, `updatePreset`,
//! `deletePreset`, `duplicatePreset`. Casbin decides the role part; Row Level Security the
//! rows (members see their own and company-visible presets and change only their own;
//! managers and admins see and change all of the company's).

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, SimpleObject};
use chrono::{DateTime, Utc};
use entity::presets;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{
    connection::{PageInfo, connection},
    principal, scope,
};
use crate::{
    audience::{Filter, cost, store},
    error::{AppError, AppResult},
};

mod resolvers;
mod service;

pub use resolvers::{PresetMutation, PresetQuery};

/// Who sees a preset.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetVisibility {
    /// Its owner (and the company's managers and admins).
    Private,
    /// Everyone in the company.
    Company,
}

impl PresetVisibility {
    fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Company => "company",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "company" {
            Self::Company
        } else {
            Self::Private
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
    #[graphql(skip)]
    company_id: Uuid,
}

impl From<presets::Model> for Preset {
    fn from(m: presets::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            name: m.name,
            description: m.description,
            filter: Json(m.filter),
            visibility: PresetVisibility::parse(&m.visibility),
            owner_id: ID(m.owner_id.to_string()),
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            company_id: m.company_id,
        }
    }
}

#[ComplexObject]
impl Preset {
    /// How many users the preset's filter selects now. Its values count towards the
    /// request's bound on audience values.
    async fn size(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let admin = super::principal(ctx)?.role == crate::authz::roles::ADMIN;
        super::audience::spend(ctx, cost::values(&self.filter.0), "size")?;
        let tx = scope(ctx)?.read_guard().await?;
        let filter = store::parse_for(tx.conn(), self.company_id, &self.filter.0).await?;
        store::count(tx.conn(), admin, self.company_id, &filter).await
    }

    /// Whether the caller may change or delete it.
    async fn can_edit(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let principal = principal(ctx)?;
        Ok(self.owner_id.as_str() == principal.user_id.to_string()
            || matches!(principal.role.as_str(), "admin" | "manager"))
    }
}

connection! {
    /// A page of presets, by name.
    pub struct PresetConnection {
        edges,
        page_info: PageInfo,
        /// How many presets match, over all pages.
        pub total_count: u64,
    }
    /// An item of a [`PresetConnection`].
    pub struct PresetEdge {
        cursor,
        node: Preset,
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

/// The filter an audience query asks for: `filter`, or the filter of the visible preset
/// `preset_id` (its values spent from the request's audience budget), or (neither) everyone.
/// Both at once is `BAD_USER_INPUT`.
pub(super) async fn resolve_filter(
    ctx: &Context<'_>,
    conn: &impl ConnectionTrait,
    company: Uuid,
    filter: Option<Json<serde_json::Value>>,
    preset_id: Option<ID>,
) -> AppResult<Filter> {
    match (filter, preset_id) {
        (Some(_), Some(_)) => Err(AppError::bad_input(
            "presetId",
            "give `filter` or `presetId`, not both",
        )),
        (Some(Json(doc)), None) => store::parse_for(conn, company, &doc).await,
        (None, Some(id)) => {
            let id = super::connection::parse_id("presetId", &id)?;
            let preset = service::find(conn, company, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no such preset".into()))?;
            super::audience::spend(ctx, cost::values(&preset.filter), "presetId")?;
            store::parse_for(conn, company, &preset.filter).await
        }
        (None, None) => Ok(Filter {
            include: None,
            exclude: None,
        }),
    }
}
