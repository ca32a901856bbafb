//! A company's own LLM provider (see `crate::llm::company`): its admins set, read and clear
//! it. The API key is sealed here, by the server, before it is written; the request reads back
//! only whether a key is set (`has_api_key`: request roles have no `SELECT` on the sealed
//! column), and Row Level Security lets only who manages the company read or write the row.
//!
//! Plain statements rather than an `entity` model: the sealed column is write-only for the
//! request, which a model mapping every column cannot express.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    llm::company::{API_KEY, HttpRule, api_key_aad, validate_base_url},
    secrets::Secrets,
};

/// A company's provider as requests see it: never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmProvider {
    pub base_url: String,
    pub model: String,
    pub has_api_key: bool,
    pub updated_at: DateTime<Utc>,
}

/// What an admin asks for, unchecked.
#[derive(Clone)]
pub struct NewProvider {
    pub base_url: String,
    pub model: String,
    /// `None` (or empty): the provider takes no key (a local model server).
    pub api_key: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for NewProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewProvider")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("has_api_key", &self.api_key.is_some())
            .finish()
    }
}

/// Longest API key accepted, in characters.
const MAX_API_KEY: usize = 4096;

const COLUMNS: &str = "base_url, model, has_api_key, updated_at";

fn from_row(row: &sea_orm::QueryResult) -> AppResult<LlmProvider> {
    Ok(LlmProvider {
        base_url: row.try_get("", "base_url")?,
        model: row.try_get("", "model")?,
        has_api_key: row.try_get("", "has_api_key")?,
        updated_at: row.try_get::<DateTime<Utc>>("", "updated_at")?,
    })
}

/// The caller's company's provider, if it set one (RLS: only for who manages the company).
pub async fn get(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<Option<LlmProvider>> {
    conn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {COLUMNS} FROM company_llm_providers WHERE company_id = $1"),
        [principal.company_id.into()],
    ))
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Checks `input` (fields named as in `setCompanyLlmProvider(input:)`): the base URL, the
/// model and the key to store.
pub fn validate(input: NewProvider, http: HttpRule) -> AppResult<NewProvider> {
    let base_url = validate_base_url(&input.base_url, http)
        .map_err(|message| AppError::bad_input("input.baseUrl", message))?;
    let model = input.model.trim().to_owned();
    if !(1..=200).contains(&model.chars().count()) || model.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "input.model",
            "the model name must have 1 to 200 characters, none of them control characters",
        ));
    }
    let api_key = match input.api_key {
        Some(key) if !key.trim().is_empty() => {
            let key = zeroize::Zeroizing::new(key.trim().to_owned());
            // It goes into an `Authorization` header: visible ASCII only.
            if key.len() > MAX_API_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AppError::bad_input(
                    "input.apiKey",
                    format!(
                        "an API key has 1 to {MAX_API_KEY} visible ASCII characters, without \
                         spaces"
                    ),
                ));
            }
            Some(key)
        }
        _ => None,
    };
    Ok(NewProvider {
        base_url,
        model,
        api_key,
    })
}

/// Sets the caller's company's provider (replacing any), the key sealed for this company:
/// `UNAVAILABLE` when the server has no key to seal it with. RLS refuses whoever does not
/// manage the company.
pub async fn set(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    secrets: &Secrets,
    input: NewProvider,
) -> AppResult<LlmProvider> {
    let company = principal.company_id;
    let sealed = match &input.api_key {
        Some(key) => Some(secrets.seal(API_KEY, &api_key_aad(company), key.as_bytes())?),
        None => None,
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO company_llm_providers (company_id, base_url, model, api_key_sealed) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (company_id) DO UPDATE SET base_url = $2, model = $3, api_key_sealed = $4 \
                 RETURNING {COLUMNS}"
            ),
            [
                company.into(),
                input.base_url.into(),
                input.model.into(),
                sealed.into(),
            ],
        ))
        .await?
        .ok_or_else(|| AppError::Forbidden("only admins set the company's AI provider".into()))?;
    from_row(&row)
}

/// Removes the caller's company's provider: its replies stream from the server's default
/// again. Whether there was one.
pub async fn clear(conn: &impl ConnectionTrait, principal: &Principal) -> AppResult<bool> {
    let result = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM company_llm_providers WHERE company_id = $1",
            [principal.company_id.into()],
        ))
        .await?;
    Ok(result.rows_affected() > 0)
}
