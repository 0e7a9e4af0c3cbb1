//! The server-side key: it makes the agent ids of `Idempotency-Key` creates unpredictable to
//! other tenants, and it signs listing cursors so that a cursor is opaque and cannot be forged.
//!
//! `clawfleet bootstrap` creates the key once, at random, in a reserved item of the table
//! ([`store::Store::ensure_id_key`]); `--id-key-secret` takes it from Secrets Manager instead.
//! Every `serve` replica reads the same key, so ids and cursors agree across replicas and
//! restarts.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2_for_hmac::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest key accepted: 256 bits, as much as HMAC-SHA-256 can use.
pub const MIN_KEY_BYTES: usize = 32;

/// How many bytes of the HMAC a cursor carries: 128 bits leave nothing to guess.
const CURSOR_TAG_BYTES: usize = 16;

/// The key, ready to MAC with. Its bytes never appear in `Debug`, a log or an error.
#[derive(Clone)]
pub struct IdKey(HmacSha256);

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdKey(..)")
    }
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdKeyError {
    /// Shorter than [`MIN_KEY_BYTES`].
    #[error("the id key has {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
}

impl IdKey {
    /// The key from its bytes.
    ///
    /// # Errors
    /// [`IdKeyError::TooShort`].
    pub fn new(bytes: &[u8]) -> Result<Self, IdKeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(IdKeyError::TooShort(bytes.len()));
        }
        <HmacSha256 as KeyInit>::new_from_slice(bytes)
            .map(Self)
            .map_err(|_| IdKeyError::TooShort(bytes.len()))
    }

    /// A random key for this process alone: for tests and tools that make no keyed ids that
    /// must survive them. `serve` always loads the shared one.
    #[must_use]
    pub fn random() -> Self {
        // HMAC-SHA-256's block size: a full-length key.
        let bytes: [u8; 64] = rand::random();
        Self(<HmacSha256 as KeyInit>::new(&bytes.into()))
    }

    fn keyed(&self, domain: &str, message: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        // The domain keeps an id's MAC and a cursor's MAC from ever standing for each other.
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac
    }

    fn mac(&self, domain: &str, message: &[u8]) -> [u8; 32] {
        self.keyed(domain, message).finalize().into_bytes().into()
    }

    /// `n` bytes derived from `(client_id, key)`: the same pair always gives the same bytes, and
    /// without the server's key nobody can compute them.
    #[must_use]
    pub fn id_bytes(&self, client_id: &str, idempotency_key: &str) -> [u8; 32] {
        self.mac(
            "agent-id",
            format!("{client_id}\n{idempotency_key}").as_bytes(),
        )
    }

    /// An opaque cursor for `scope` (a tenant, or `*` for every tenant) holding `key`.
    #[must_use]
    pub fn seal_cursor(&self, scope: &str, key: &BTreeMap<String, String>) -> String {
        let payload = serde_json::json!({ "s": scope, "k": key }).to_string();
        let tag = self.mac("cursor", payload.as_bytes());
        format!(
            "{}.{}",
            hex::encode(payload.as_bytes()),
            hex::encode(&tag[..CURSOR_TAG_BYTES])
        )
    }

    /// The key a cursor this server sealed for `scope` holds; `None` for anything else (forged,
    /// altered, or sealed for another scope).
    #[must_use]
    pub fn open_cursor(&self, scope: &str, cursor: &str) -> Option<BTreeMap<String, String>> {
        let (payload, tag) = cursor.split_once('.')?;
        let payload = hex::decode(payload).ok()?;
        let tag = hex::decode(tag).ok()?;
        if tag.len() != CURSOR_TAG_BYTES {
            return None;
        }
        // Constant time, so that timing tells nothing about a near-miss tag.
        self.keyed("cursor", &payload)
            .verify_truncated_left(&tag)
            .ok()?;
        let value: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        if value.get("s")?.as_str()? != scope {
            return None;
        }
        serde_json::from_value(value.get("k")?.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("agent_id".to_owned(), id.to_owned()),
            ("record".to_owned(), "spec".to_owned()),
        ])
    }

    #[test]
    fn a_cursor_opens_only_with_its_key_and_its_scope_and_unaltered() {
        let k = IdKey::random();
        let cursor = k.seal_cursor("*", &key("Not A Label"));
        assert_eq!(k.open_cursor("*", &cursor), Some(key("Not A Label")));
        assert_eq!(k.open_cursor("acme", &cursor), None, "another scope");
        assert_eq!(
            IdKey::random().open_cursor("*", &cursor),
            None,
            "another key"
        );
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged = format!("{}.{tag}", hex::encode(r#"{"s":"*","k":{"agent_id":"x"}}"#));
        assert_eq!(k.open_cursor("*", &forged), None, "a forged payload");
        assert_eq!(k.open_cursor("*", &format!("{payload}.")), None, "no tag");
        assert_eq!(
            k.open_cursor("*", &format!("{payload}.{}", &tag[..8])),
            None,
            "a short tag"
        );
        for junk in ["", ".", "zz.zz", "4"] {
            assert_eq!(k.open_cursor("*", junk), None, "{junk}");
        }
    }

    #[test]
    fn id_bytes_depend_on_the_key_the_tenant_and_the_idempotency_key() {
        let k = IdKey::new(&[7; 32]).unwrap();
        assert_eq!(k.id_bytes("acme", "a"), k.id_bytes("acme", "a"));
        assert_ne!(k.id_bytes("acme", "a"), k.id_bytes("acme", "b"));
        assert_ne!(k.id_bytes("acme", "a"), k.id_bytes("globex", "a"));
        assert_ne!(
            k.id_bytes("acme", "a"),
            IdKey::new(&[8; 32]).unwrap().id_bytes("acme", "a")
        );
        assert_eq!(IdKey::new(&[1; 31]).unwrap_err(), IdKeyError::TooShort(31));
        assert_eq!(format!("{k:?}"), "IdKey(..)");
    }
}
