//! What the HTTP layer does with persisted and trusted documents ([`crate::documents`]): the
//! body of a POST is checked to be a GraphQL request (an object, or an array of them, each with
//! a `query`, a `documentId` or an `extensions.persistedQuery`), and every request is given its
//! document before the operation's type is looked at.

use async_graphql::{BatchRequest, Request as GqlRequest};
use serde_json::Value;

use crate::documents::{DOCUMENT_ID, DocumentError, Documents};

/// The GraphQL request(s) of a POST body, or why it is none.
pub(super) fn body_requests(bytes: &[u8]) -> Result<BatchRequest, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match value {
        Value::Object(_) => Ok(BatchRequest::Single(one_request(value)?)),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| one_request(item).map_err(|e| format!("operation {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(BatchRequest::Batch),
        other => Err(format!(
            "it is {}, not an object with a `query` (or an array of them)",
            kind(&other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn one_request(value: Value) -> Result<GqlRequest, String> {
    let Value::Object(mut map) = value else {
        return Err(format!(
            "it is {}, not an object with a `query`",
            kind(&value)
        ));
    };
    let document_id = match map.remove(DOCUMENT_ID) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => return Err(format!("`documentId` is {}, not a string", kind(&other))),
    };
    match map.get("query") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => {
            let persisted = map
                .get("extensions")
                .and_then(|e| e.get("persistedQuery"))
                .is_some();
            if document_id.is_none() && !persisted {
                return Err(
                    "it has no `query` (nor `documentId` or `extensions.persistedQuery`)".into(),
                );
            }
            map.remove("query");
        }
        Some(other) => return Err(format!("`query` is {}, not a string", kind(other))),
    }
    let mut request: GqlRequest =
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())?;
    if let Some(id) = document_id {
        request
            .extensions
            .insert(DOCUMENT_ID.to_owned(), async_graphql::Value::String(id));
    }
    Ok(request)
}

/// Gives every request of `batch` its document (see [`Documents::resolve`]).
pub(super) async fn resolve(
    documents: &Documents,
    batch: &mut BatchRequest,
) -> Result<(), DocumentError> {
    match batch {
        BatchRequest::Single(request) => resolve_one(documents, request).await,
        BatchRequest::Batch(requests) => {
            for request in requests {
                resolve_one(documents, request).await?;
            }
            Ok(())
        }
    }
}

async fn resolve_one(documents: &Documents, request: &mut GqlRequest) -> Result<(), DocumentError> {
    if documents.applies_to(request) {
        documents.resolve(request).await
    } else {
        Ok(())
    }
}
