//! Automatic persisted queries (the APQ protocol Apollo clients speak).
//!
//! A client sends only the SHA-256 of its document in
//! `extensions.persistedQuery = { version: 1, sha256Hash }`; when the gateway does not know
//! it, the answer is a `PERSISTED_QUERY_NOT_FOUND` error and the client sends the document
//! with the hash once, which the gateway checks and remembers. Small requests, and GET
//! requests short enough for CDN caching.
//!
//! The store is bounded in bytes (the oldest documents make room) and only documents the
//! document cache would keep are remembered. Remembering a document runs nothing: a
//! persisted document is parsed, validated and authorized like any other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::response::{GraphQLError, Request};

/// Most bytes of documents kept.
const MAX_STORED_BYTES: usize = 16 * 1024 * 1024;

/// Largest document remembered (larger ones still run when sent in full).
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Documents by the SHA-256 of their text.
#[derive(Default)]
pub struct PersistedQueries {
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    documents: HashMap<[u8; 32], Arc<str>>,
    /// Insertion order, for eviction.
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl PersistedQueries {
    /// Applies the APQ protocol to `request`: fills in a document sent by hash only, or
    /// checks and remembers one sent with its hash. A request without a document and
    /// without a hash is refused (`BAD_REQUEST`).
    pub fn resolve(&self, request: &mut Request) -> Result<(), GraphQLError> {
        let hash = requested_hash(request.extensions.as_ref())?;
        match (request.query.is_empty(), hash) {
            (false, None) => Ok(()),
            (true, None) => Err(GraphQLError::new(
                "a GraphQL document (`query`) is required",
                "BAD_REQUEST",
            )),
            (true, Some(hash)) => match self.store.lock().documents.get(&hash) {
                Some(document) => {
                    request.query = document.to_string();
                    Ok(())
                }
                // The message is the one Apollo clients look for.
                None => Err(GraphQLError::new(
                    "PersistedQueryNotFound",
                    "PERSISTED_QUERY_NOT_FOUND",
                )),
            },
            (false, Some(hash)) => {
                if Sha256::digest(request.query.as_bytes()).as_slice() != hash {
                    return Err(GraphQLError::new(
                        "the sha256Hash does not match the document",
                        "PERSISTED_QUERY_HASH_MISMATCH",
                    ));
                }
                self.remember(hash, &request.query);
                Ok(())
            }
        }
    }

    fn remember(&self, hash: [u8; 32], document: &str) {
        if document.len() > MAX_DOCUMENT_BYTES {
            return;
        }
        let mut store = self.store.lock();
        if store.documents.contains_key(&hash) {
            return;
        }
        while store.bytes + document.len() > MAX_STORED_BYTES {
            let Some(oldest) = store.order.pop_front() else {
                break;
            };
            if let Some(evicted) = store.documents.remove(&oldest) {
                store.bytes -= evicted.len();
            }
        }
        store.bytes += document.len();
        store.order.push_back(hash);
        store.documents.insert(hash, Arc::from(document));
    }
}

/// The hash `extensions.persistedQuery` names, if any.
fn requested_hash(
    extensions: Option<&Map<String, Value>>,
) -> Result<Option<[u8; 32]>, GraphQLError> {
    let Some(persisted) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    let malformed = || {
        GraphQLError::new(
            "extensions.persistedQuery must be { \"version\": 1, \"sha256Hash\": \"<64 hex digits>\" }",
            "BAD_REQUEST",
        )
    };
    let version = persisted.get("version").and_then(Value::as_u64);
    if version != Some(1) {
        return Err(malformed());
    }
    let hex_hash = persisted
        .get("sha256Hash")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| malformed())?;
    Ok(Some(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(query: &str, hash: Option<&str>) -> Request {
        let extensions = hash.map(|h| {
            json!({ "persistedQuery": { "version": 1, "sha256Hash": h } })
                .as_object()
                .cloned()
                .unwrap_or_default()
        });
        Request {
            query: query.to_owned(),
            operation_name: None,
            variables: None,
            extensions,
        }
    }

    fn hash_of(document: &str) -> String {
        hex::encode(Sha256::digest(document.as_bytes()))
    }

    #[test]
    fn a_document_sent_once_with_its_hash_is_then_found_by_hash() {
        let store = PersistedQueries::default();
        let document = "{ products { name } }";
        let hash = hash_of(document);
        let unknown = store.resolve(&mut request("", Some(&hash)));
        assert_eq!(
            unknown.err().and_then(|e| e.code().map(str::to_owned)),
            Some("PERSISTED_QUERY_NOT_FOUND".to_owned())
        );
        assert!(store.resolve(&mut request(document, Some(&hash))).is_ok());
        let mut by_hash = request("", Some(&hash));
        assert!(store.resolve(&mut by_hash).is_ok());
        assert_eq!(by_hash.query, document);
    }

    #[test]
    fn a_wrong_hash_or_a_malformed_extension_is_refused_and_nothing_is_stored() {
        let store = PersistedQueries::default();
        let wrong = hash_of("{ other }");
        let refused = store.resolve(&mut request("{ products { name } }", Some(&wrong)));
        assert_eq!(
            refused.err().and_then(|e| e.code().map(str::to_owned)),
            Some("PERSISTED_QUERY_HASH_MISMATCH".to_owned())
        );
        assert!(store.resolve(&mut request("", Some(&wrong))).is_err());
        for extensions in [
            json!({ "persistedQuery": { "version": 2, "sha256Hash": wrong } }),
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "xyz" } }),
            json!({ "persistedQuery": "yes" }),
        ] {
            let mut bad = request("{ a }", None);
            bad.extensions = extensions.as_object().cloned();
            let code = store
                .resolve(&mut bad)
                .err()
                .and_then(|e| e.code().map(str::to_owned));
            assert_eq!(code, Some("BAD_REQUEST".to_owned()), "{extensions}");
        }
        let missing = store.resolve(&mut request("", None));
        assert!(missing.is_err());
    }

    #[test]
    fn the_store_keeps_within_its_byte_budget() {
        let store = PersistedQueries::default();
        let filler = "x".repeat(MAX_DOCUMENT_BYTES - 16);
        let count = MAX_STORED_BYTES / filler.len() + 10;
        for i in 0..count {
            let document = format!("{{ a{i} }}{filler}");
            let mut sent = request(&document, Some(&hash_of(&document)));
            assert!(store.resolve(&mut sent).is_ok());
        }
        let stored = store.store.lock();
        assert!(stored.bytes <= MAX_STORED_BYTES);
        assert_eq!(stored.documents.len(), stored.order.len());
        assert!(stored.documents.len() < count);
    }
}
