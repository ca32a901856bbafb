//! Persisted and trusted documents: what document a GraphQL request runs, before it is parsed.
//!
//! - Automatic persisted queries (Apollo's protocol): a request carrying
//!   `extensions.persistedQuery = {version: 1, sha256Hash}` and no `query` runs the document
//!   registered under that hash, or is answered `PERSISTED_QUERY_NOT_FOUND` so that the client
//!   sends it again with the query; a request carrying both registers the query (once its
//!   sha256 is checked). Registered documents live in Redis, known to every instance, for
//!   `PERSISTED_QUERY_TTL_SECS` after their last use; without Redis every hash is "not found"
//!   and clients simply send their queries in full.
//! - Trusted documents: a manifest loaded at start-up (`TRUSTED_DOCUMENTS_FILE`), id →
//!   document, as graphql-codegen's client preset and Relay's compiler write it. Requests name a
//!   document by `documentId` or `extensions.persistedQuery.sha256Hash`. With
//!   `TRUSTED_DOCUMENTS=only` any other document is refused before it is parsed.
//!
//! Written here rather than with async-graphql's `ApolloPersistedQueries` extension: that
//! extension runs after the HTTP layer has looked at the operation's type (GET may only run
//! queries; cookie mutations need the CSRF token), its errors carry no `extensions.code`, and
//! it knows nothing of a manifest.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use async_graphql::Request;
use md5::Md5;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::{config::Config, kv::Redis};

/// `extensions.code` of a hash the server does not know (the client resends the query).
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// `extensions.code` of a document refused by `TRUSTED_DOCUMENTS=only`.
pub const PERSISTED_QUERY_NOT_IN_LIST: &str = "PERSISTED_QUERY_NOT_IN_LIST";
/// `extensions.code` of a malformed `persistedQuery` extension or a hash that is not the
/// query's.
pub const BAD_REQUEST: &str = "BAD_REQUEST";

/// The label of this module's Redis calls in `redis_errors_total`.
const COMPONENT: &str = "persisted_queries";
/// The extension key of a request's `documentId` (the body's top-level field, carried here
/// from the HTTP layer).
pub const DOCUMENT_ID: &str = "documentId";

/// What `TRUSTED_DOCUMENTS` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// No manifest.
    Off,
    /// Manifest documents run by id; other documents run too.
    Allow,
    /// Only manifest documents run.
    Only,
}

/// Why a request's document could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    pub code: &'static str,
    pub message: String,
}

impl DocumentError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        // The message Apollo's clients look for.
        Self::new(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound")
    }

    /// As async-graphql's error, for the WebSocket.
    pub fn into_server_error(self) -> async_graphql::ServerError {
        let mut error = async_graphql::ServerError::new(self.message, None);
        let mut extensions = async_graphql::ErrorExtensionValues::default();
        extensions.set("code", self.code);
        error.extensions = Some(extensions);
        error
    }

    /// The HTTP status for this error: a hash the server does not know is a normal GraphQL
    /// response (200) Apollo's clients answer by sending the query; the others are 400.
    pub fn http_status(&self) -> u16 {
        if self.code == PERSISTED_QUERY_NOT_FOUND {
            200
        } else {
            400
        }
    }
}

/// The manifest, the mode and the persisted-query cache. Cheap to share.
#[derive(Debug)]
pub struct Documents {
    mode: TrustMode,
    /// Manifest id → document.
    by_id: HashMap<String, Arc<str>>,
    /// sha256 (hex) of every manifest document → document: what `only` admits sent in full.
    by_sha256: HashMap<String, Arc<str>>,
    redis: Option<Redis>,
    prefix: String,
    ttl: Duration,
    max_bytes: usize,
}

impl Documents {
    /// From `TRUSTED_DOCUMENTS_FILE` and `TRUSTED_DOCUMENTS`: a clear error when the file is
    /// missing or malformed, an id is not its document's hash, or the mode is unknown.
    pub fn load(config: &Config, redis: Option<Redis>) -> anyhow::Result<Self> {
        let manifest = match &config.trusted_documents_file {
            Some(path) => read_manifest(path)?,
            None => HashMap::new(),
        };
        let mode = match config.trusted_documents.as_deref().map(str::trim) {
            None | Some("") if config.trusted_documents_file.is_some() => TrustMode::Allow,
            None | Some("") | Some("off") => TrustMode::Off,
            Some("allow") => TrustMode::Allow,
            Some("only") => TrustMode::Only,
            Some(other) => bail!("TRUSTED_DOCUMENTS is `{other}`: use only, allow or off"),
        };
        if mode != TrustMode::Off && config.trusted_documents_file.is_none() {
            bail!("TRUSTED_DOCUMENTS={mode:?} needs TRUSTED_DOCUMENTS_FILE (the manifest)");
        }
        let manifest = if mode == TrustMode::Off {
            HashMap::new()
        } else {
            manifest
        };
        let by_sha256 = manifest
            .values()
            .map(|doc| (sha256_hex(doc), doc.clone()))
            .collect();
        Ok(Self {
            mode,
            by_id: manifest,
            by_sha256,
            redis,
            prefix: config.redis_key_prefix.clone(),
            ttl: Duration::from_secs(config.persisted_query_ttl_secs.max(1)),
            max_bytes: config.persisted_query_max_bytes,
        })
    }

    pub fn mode(&self) -> TrustMode {
        self.mode
    }

    /// How many documents the manifest holds.
    pub fn trusted(&self) -> usize {
        self.by_id.len()
    }

    /// Whether [`Self::resolve`] has anything to do for `request`.
    pub fn applies_to(&self, request: &Request) -> bool {
        self.mode == TrustMode::Only
            || request.extensions.contains_key("persistedQuery")
            || request.extensions.contains_key(DOCUMENT_ID)
    }

    /// Gives `request` the document it names, registers it, or refuses it; afterwards
    /// `request.query` is the document to run and the persisted-query extensions are gone.
    pub async fn resolve(&self, request: &mut Request) -> Result<(), DocumentError> {
        let document_id = match request.extensions.remove(DOCUMENT_ID) {
            None => None,
            Some(value) => match value.into_json() {
                Ok(Value::String(id)) => Some(id),
                _ => {
                    return Err(DocumentError::new(
                        BAD_REQUEST,
                        "`documentId` must be a string",
                    ));
                }
            },
        };
        let persisted = match request.extensions.remove("persistedQuery") {
            None => None,
            Some(value) => Some(persisted_hash(value)?),
        };
        let named = document_id.or(persisted.clone());
        if request.query.is_empty() {
            let Some(id) = named else {
                return Err(DocumentError::new(
                    BAD_REQUEST,
                    "the request has no `query`, `documentId` or `extensions.persistedQuery`",
                ));
            };
            if let Some(document) = self.by_id.get(&id).or_else(|| self.by_sha256.get(&id)) {
                request.query = document.to_string();
                return Ok(());
            }
            if self.mode == TrustMode::Only {
                return Err(DocumentError::new(
                    PERSISTED_QUERY_NOT_IN_LIST,
                    format!("no trusted document has the id `{id}` (TRUSTED_DOCUMENTS=only)"),
                ));
            }
            if persisted.as_deref() != Some(id.as_str()) {
                // A `documentId` only names manifest documents.
                return Err(DocumentError::new(
                    PERSISTED_QUERY_NOT_FOUND,
                    format!("no trusted document has the id `{id}`"),
                ));
            }
            request.query = self
                .lookup(&id)
                .await
                .ok_or_else(DocumentError::not_found)?;
            return Ok(());
        }
        // The query is sent in full.
        let sha256 = sha256_hex(&request.query);
        if let Some(hash) = &persisted
            && *hash != sha256
        {
            return Err(DocumentError::new(
                BAD_REQUEST,
                format!(
                    "extensions.persistedQuery.sha256Hash is not the sha256 of the query \
                     (which is {sha256})"
                ),
            ));
        }
        if self.mode == TrustMode::Only {
            if self.by_sha256.contains_key(&sha256) {
                return Ok(());
            }
            return Err(DocumentError::new(
                PERSISTED_QUERY_NOT_IN_LIST,
                "this document is not a trusted document (TRUSTED_DOCUMENTS=only): send the id \
                 of a document of the manifest",
            ));
        }
        if persisted.is_some() {
            self.register(&sha256, &request.query).await;
        }
        Ok(())
    }

    fn key(&self, hash: &str) -> String {
        format!("{}apq:{hash}", self.prefix)
    }

    /// The document registered under `hash`, its time to live renewed; `None` when unknown or
    /// Redis does not answer.
    async fn lookup(&self, hash: &str) -> Option<String> {
        if !is_hex(hash, 64) {
            return None;
        }
        let redis = self.redis.as_ref()?;
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.key(hash)).arg("EX").arg(self.ttl.as_secs());
        match redis.cmd::<Option<String>>(COMPONENT, &cmd).await {
            Ok(document) => document,
            Err(error) => {
                tracing::debug!(%error, "persisted query lookup without Redis: not found");
                None
            }
        }
    }

    /// Registers `document` under its sha256; documents over the size limit are not kept, nor
    /// are any while Redis does not answer.
    async fn register(&self, sha256: &str, document: &str) {
        let Some(redis) = &self.redis else { return };
        if document.len() > self.max_bytes {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(sha256))
            .arg(document)
            .arg("EX")
            .arg(self.ttl.as_secs());
        if let Err(error) = redis.cmd::<()>(COMPONENT, &cmd).await {
            tracing::debug!(%error, "persisted query not registered without Redis");
        }
    }
}

/// The `sha256Hash` of a `persistedQuery` extension of version 1.
fn persisted_hash(value: async_graphql::Value) -> Result<String, DocumentError> {
    let bad = |why: &str| {
        DocumentError::new(
            BAD_REQUEST,
            format!(
                "extensions.persistedQuery must be {{\"version\": 1, \"sha256Hash\": \"<hex>\"}}: {why}"
            ),
        )
    };
    let Ok(Value::Object(map)) = value.into_json() else {
        return Err(bad("it is not an object"));
    };
    match map.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(bad("only version 1 is supported")),
    }
    match map.get("sha256Hash") {
        Some(Value::String(hash)) if is_hex(hash, 64) => Ok(hash.to_ascii_lowercase()),
        _ => Err(bad("sha256Hash is not 64 hexadecimal digits")),
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The manifest at `path`: `{"<id>": "<document>"}`, every id the sha256, sha1 or md5 (hex) of
/// its document, optionally prefixed `sha256:` (graphql-codegen's `hashAlgorithm` names).
fn read_manifest(path: &Path) -> anyhow::Result<HashMap<String, Arc<str>>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "TRUSTED_DOCUMENTS_FILE: cannot read the manifest {}",
            path.display()
        )
    })?;
    parse_manifest(&text)
        .with_context(|| format!("TRUSTED_DOCUMENTS_FILE: the manifest {}", path.display()))
}

fn parse_manifest(text: &str) -> anyhow::Result<HashMap<String, Arc<str>>> {
    let value: Value = serde_json::from_str(text).context("it is not JSON")?;
    let Value::Object(entries) = value else {
        bail!("it is not a JSON object of id → document (as graphql-codegen and Relay write it)");
    };
    let mut manifest = HashMap::with_capacity(entries.len());
    for (id, document) in entries {
        let Value::String(document) = document else {
            bail!("the entry `{id}` is not a string (a GraphQL document)");
        };
        let hash = id
            .split_once(':')
            .map_or(id.as_str(), |(_, hash)| hash)
            .to_ascii_lowercase();
        let expected = match hash.len() {
            64 => sha256_hex(&document),
            40 => hex::encode(Sha1::digest(document.as_bytes())),
            32 => hex::encode(<Md5 as md5::Digest>::digest(document.as_bytes())),
            _ => bail!("the id `{id}` is not a sha256, sha1 or md5 hash (hexadecimal)"),
        };
        if hash != expected {
            bail!("the id `{id}` is not the hash of its document (which is {expected})");
        }
        if let Err(error) = async_graphql::parser::parse_query(&document) {
            bail!("the document `{id}` is not a GraphQL document: {error}");
        }
        let document: Arc<str> = document.into();
        manifest.insert(id.clone(), document.clone());
        if hash != id {
            manifest.insert(hash, document);
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_of_each_hash_are_read_and_checked() {
        let doc = "query Me { me { id } }";
        let sha256 = sha256_hex(doc);
        let sha1 = hex::encode(Sha1::digest(doc.as_bytes()));
        let md5 = hex::encode(<Md5 as md5::Digest>::digest(doc.as_bytes()));
        for id in [
            sha256.clone(),
            format!("sha256:{sha256}"),
            sha1.clone(),
            md5.clone(),
        ] {
            let text = serde_json::json!({ id.clone(): doc }).to_string();
            let manifest = parse_manifest(&text).unwrap_or_else(|e| panic!("{id}: {e:#}"));
            assert_eq!(manifest.get(&id).map(|d| &**d), Some(doc));
        }
        let wrong = serde_json::json!({ sha1: "query Other { me { id } }" }).to_string();
        let error = parse_manifest(&wrong).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("not the hash of its document")));
        for bad in ["[]", "{\"x\": \"{ me { id } }\"}", "not json", "{\"a\": 1}"] {
            assert!(parse_manifest(bad).is_err(), "{bad}");
        }
        let unparsable = serde_json::json!({ sha256_hex("{ me {"): "{ me {" }).to_string();
        assert!(parse_manifest(&unparsable).is_err());
    }

    #[test]
    fn the_persisted_query_extension_is_checked() {
        let hash = sha256_hex("{ me { id } }");
        let ok = async_graphql::Value::from_json(
            serde_json::json!({"version": 1, "sha256Hash": hash.to_uppercase()}),
        )
        .unwrap_or_default();
        assert_eq!(persisted_hash(ok), Ok(hash.clone()));
        for bad in [
            serde_json::json!({"version": 2, "sha256Hash": hash}),
            serde_json::json!({"version": 1, "sha256Hash": "abc"}),
            serde_json::json!("x"),
        ] {
            let value = async_graphql::Value::from_json(bad).unwrap_or_default();
            assert_eq!(persisted_hash(value).map_err(|e| e.code), Err(BAD_REQUEST));
        }
    }
}
