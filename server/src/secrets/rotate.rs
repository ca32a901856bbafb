//! `server rotate-secrets`: every stored secret sealed again under the current (first) key of
//! `SECRETS_KEYS`, so that older keys can then be retired.
//!
//! It walks [`SEALED`], every sealed column of the schema, in batches: each batch is one
//! `app_worker` transaction that lists (and locks) up to [`BATCH`] values through the column's
//! listing function, re-seals those under an older key, and writes each back with a
//! compare-and-swap (a value an admin changed meanwhile is left alone, and counted). Values
//! already under the current key are not written, so running it again changes nothing: it is
//! idempotent, and safe to interrupt and run again. The database never sees a plaintext: the
//! server opens and seals, PostgreSQL stores text it cannot read.

use super::{Purpose, Secrets, row_aad};
use crate::db::DatabaseConnection;
use crate::db::{
    RequestTx, SystemRole,
    functions::{self as sql, SqlFunction},
};

/// Values re-sealed per transaction.
pub const BATCH: i32 = 200;

/// A sealed column: what its values are, how its rows are listed and written, and the
/// associated data of a row (which must be what the code that seals it uses).
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    /// `table.column`, for the report.
    pub name: &'static str,
    pub purpose: Purpose,
    /// `(after_company uuid, after_row uuid, limit integer) RETURNS TABLE(company_id uuid,
    /// row_id uuid, sealed text)`, ordered by `(company_id, row_id)`, `FOR UPDATE`.
    pub list: &'static SqlFunction,
    /// `(company uuid, row uuid, old text, new text) RETURNS boolean`: a compare-and-swap.
    pub replace: &'static SqlFunction,
    /// The associated data of row `(company, row)`.
    pub aad: fn(uuid::Uuid, uuid::Uuid) -> Vec<u8>,
}

/// Every sealed column of the schema. A new one is added here, with its two functions.
pub const SEALED: &[SealedColumn] = &[
    SealedColumn {
        name: "company_llm_providers.api_key_sealed",
        purpose: super::COMPANY_LLM_API_KEY,
        list: &sql::SEALED_COMPANY_LLM_KEYS,
        replace: &sql::RESEAL_COMPANY_LLM_KEY,
        aad: row_aad,
    },
    SealedColumn {
        name: "company_oidc_providers.client_secret_sealed",
        purpose: super::COMPANY_OIDC_CLIENT_SECRET,
        list: &sql::SEALED_COMPANY_OIDC_SECRETS,
        replace: &sql::RESEAL_COMPANY_OIDC_SECRET,
        aad: row_aad,
    },
];

/// What a rotation did to one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnReport {
    pub name: &'static str,
    /// Values looked at.
    pub examined: u64,
    /// Values sealed again under the current key.
    pub resealed: u64,
    /// Values that were under the current key already.
    pub current: u64,
    /// Values changed by someone else between the listing and the write (left as they are:
    /// whoever changed them sealed them under the current key).
    pub changed_meanwhile: u64,
    /// Values no configured key opens (sealed with a key no longer listed, or altered).
    pub failed: u64,
}

/// What a rotation did, column by column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The key everything is sealed under now.
    pub key_id: String,
    pub columns: Vec<ColumnReport>,
}

impl RotationReport {
    pub fn resealed(&self) -> u64 {
        self.columns.iter().map(|c| c.resealed).sum()
    }

    pub fn failed(&self) -> u64 {
        self.columns.iter().map(|c| c.failed).sum()
    }
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "secrets re-sealed under key `{}`:", self.key_id)?;
        for c in &self.columns {
            writeln!(
                f,
                "  {}: {} examined, {} re-sealed, {} already current, {} changed meanwhile, {} \
                 failed",
                c.name, c.examined, c.resealed, c.current, c.changed_meanwhile, c.failed
            )?;
        }
        Ok(())
    }
}

/// Re-seals every value of every column of [`SEALED`] under the current key of `secrets`, on
/// `db` (the request pool: it runs as `app_worker`).
pub async fn rotate(db: &DatabaseConnection, secrets: &Secrets) -> anyhow::Result<RotationReport> {
    let key_id = secrets
        .current_key_id()
        .ok_or_else(|| anyhow::anyhow!("{}", super::SecretsError::NoKey))?
        .to_owned();
    let mut report = RotationReport {
        key_id,
        columns: Vec::new(),
    };
    for column in SEALED {
        report
            .columns
            .push(rotate_column(db, secrets, column).await?);
    }
    Ok(report)
}

async fn rotate_column(
    db: &DatabaseConnection,
    secrets: &Secrets,
    column: &SealedColumn,
) -> anyhow::Result<ColumnReport> {
    let mut report = ColumnReport {
        name: column.name,
        ..ColumnReport::default()
    };
    let mut after = None;
    loop {
        let tx = RequestTx::begin_system(db, SystemRole::Worker).await?;
        let values = sql::sealed_page(tx.conn(), column.list, after, BATCH).await?;
        let Some(last) = values.last() else {
            tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            break;
        };
        after = Some((last.company_id, last.row_id));
        let full = values.len() == BATCH as usize;
        for value in &values {
            report.examined += 1;
            let aad = (column.aad)(value.company_id, value.row_id);
            match secrets.reseal(column.purpose, &aad, &value.sealed) {
                Ok(None) => report.current += 1,
                Ok(Some(new)) => {
                    if sql::reseal_value(tx.conn(), column.replace, value, &new).await? {
                        report.resealed += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                Err(error) => {
                    report.failed += 1;
                    tracing::warn!(column = column.name, company = %value.company_id,
                        row = %value.row_id, %error, "a stored secret could not be re-sealed");
                }
            }
        }
        tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if !full {
            break;
        }
    }
    Ok(report)
}
