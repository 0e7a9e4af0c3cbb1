//! Bearer tokens: who is calling.
//!
//! Tokens are configured only as SHA-256 hashes (a YAML list of `{sha256, tenant}` or
//! `{sha256, admin: true}`), so the configuration never holds a usable credential. A presented
//! token is hashed and compared with every configured hash in constant time, without stopping
//! at the first match, so timing tells nothing about which hashes exist.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use spec::is_label;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// One tenant: sees and writes only agents whose `client_id` is this.
    Tenant(String),
    /// Every agent of every tenant.
    Admin,
}

impl Caller {
    /// The tenant, for the access log; `admin` for the admin scope.
    #[must_use]
    pub fn label(&self) -> &str {
        match self {
            Self::Tenant(client) => client,
            Self::Admin => "admin",
        }
    }

    /// Whether this caller may see an agent of `client_id` (`None` when the item has none).
    #[must_use]
    pub fn may_see(&self, client_id: Option<&str>) -> bool {
        match self {
            Self::Admin => true,
            Self::Tenant(own) => client_id == Some(own.as_str()),
        }
    }
}

/// A tokens document that cannot be used. Names the entry, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: entry {index}: {message}")]
    Entry {
        source_name: String,
        index: usize,
        message: String,
    },
    /// Two entries give the same hash: which caller the token stands for would depend on the
    /// order, and a misplaced `admin: true` would elevate a tenant.
    #[error("{source_name}: entries {first} and {second}: the same sha256; give each token once")]
    Duplicate {
        source_name: String,
        first: usize,
        second: usize,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    sha256: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// The configured token hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
}

/// The SHA-256 of a token, as the hex a tokens file holds.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Parses a tokens document; `source_name` (a file path or a secret name) prefixes errors.
    ///
    /// # Errors
    /// [`TokensError`] naming the entry and the field.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, TokensError> {
        let entries: Vec<Entry> = serde_saphyr::from_str(text).map_err(|e| TokensError::Parse {
            source_name: source_name.to_owned(),
            message: e.to_string().lines().next().unwrap_or_default().to_owned(),
        })?;
        let entry_error = |index: usize, message: &str| TokensError::Entry {
            source_name: source_name.to_owned(),
            index: index + 1,
            message: message.to_owned(),
        };
        let mut parsed = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(entry.sha256.trim().to_ascii_lowercase(), &mut hash)
                .map_err(|_| entry_error(index, "sha256: must be 64 hex digits"))?;
            let caller = match (entry.tenant, entry.admin) {
                (Some(_), true) => {
                    return Err(entry_error(index, "tenant: not allowed with admin: true"));
                }
                (Some(tenant), false) => {
                    if !is_label(&tenant) {
                        return Err(entry_error(index, &format!("tenant: {}", spec::LABEL_RULE)));
                    }
                    Caller::Tenant(tenant)
                }
                (None, true) => Caller::Admin,
                (None, false) => {
                    return Err(entry_error(index, "needs tenant: CLIENT_ID or admin: true"));
                }
            };
            if let Some(first) = parsed.iter().position(|(h, _)| *h == hash) {
                return Err(TokensError::Duplicate {
                    source_name: source_name.to_owned(),
                    first: first + 1,
                    second: index + 1,
                });
            }
            parsed.push((hash, caller));
        }
        // An empty list is how an operator revokes every token at once: it is in force like
        // any other document, and every request but /healthz and /openapi.json gets a 401.
        Ok(Self { entries: parsed })
    }

    /// How many tokens are configured.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the empty list, which revokes every token.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a bearer token stands for.
    #[must_use]
    pub fn caller(&self, token: &str) -> Option<Caller> {
        self.caller_of_hash(&Sha256::digest(token.as_bytes()).into())
    }

    /// The caller whose token has this SHA-256: how a console session, which keeps only the
    /// hash, finds its caller again on every request, so a revoked token ends its sessions.
    #[must_use]
    pub fn caller_of_hash(&self, presented: &[u8; 32]) -> Option<Caller> {
        let mut found = None;
        for (hash, caller) in &self.entries {
            // Every entry is compared, match or not.
            if bool::from(hash.ct_eq(presented)) && found.is_none() {
                found = Some(caller.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(entries: &[(&str, &str)]) -> String {
        entries
            .iter()
            .map(|(token, who)| format!("- sha256: {}\n  {who}\n", token_hash(token)))
            .collect()
    }

    #[test]
    fn a_token_maps_to_its_tenant_or_to_admin() {
        let text = doc(&[("t-acme", "tenant: acme"), ("t-root", "admin: true")]);
        let tokens = Tokens::parse("tokens.yaml", &text).unwrap();
        assert_eq!(tokens.caller("t-acme"), Some(Caller::Tenant("acme".into())));
        assert_eq!(tokens.caller("t-root"), Some(Caller::Admin));
        assert_eq!(tokens.caller("t-acmE"), None);
        assert_eq!(tokens.caller(""), None);
    }

    #[test]
    fn hashes_are_accepted_in_upper_case() {
        let text = format!(
            "- sha256: {}\n  tenant: acme\n",
            token_hash("x").to_uppercase()
        );
        let tokens = Tokens::parse("f", &text).unwrap();
        assert_eq!(tokens.caller("x"), Some(Caller::Tenant("acme".into())));
    }

    #[test]
    fn broken_entries_are_named_without_the_hash() {
        let cases = [
            ("- sha256: abc\n  tenant: acme\n", "entry 1: sha256"),
            (
                &doc(&[("a", "tenant: acme"), ("b", "tenant: Acme")]) as &str,
                "entry 2: tenant",
            ),
            (
                &doc(&[("a", "tenant: acme\n  admin: true")]),
                "entry 1: tenant",
            ),
            (
                &format!("- sha256: {}\n", token_hash("a")),
                "entry 1: needs",
            ),
            (&doc(&[("a", "tenant: acme\n  role: x")]), "f: "),
            ("{", "f: "),
        ];
        for (text, expected) in cases {
            let err = Tokens::parse("f", text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?} gave {err}");
            assert!(!err.contains(&token_hash("a")), "{err}");
        }
    }

    #[test]
    fn a_hash_given_twice_is_refused_naming_both_entries() {
        let text = doc(&[
            ("t-acme", "tenant: acme"),
            ("t-other", "tenant: globex"),
            ("t-acme", "admin: true"),
        ]);
        let err = Tokens::parse("f", &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "f: entries 1 and 3: the same sha256; give each token once"
        );
    }

    #[test]
    fn an_empty_list_revokes_every_token() {
        let tokens = Tokens::parse("f", "[]").unwrap();
        assert!(tokens.is_empty());
        assert_eq!(tokens.caller("anything"), None);
    }

    #[test]
    fn tenants_see_their_own_agents_and_admin_sees_all() {
        let acme = Caller::Tenant("acme".into());
        assert!(acme.may_see(Some("acme")));
        assert!(!acme.may_see(Some("globex")));
        assert!(!acme.may_see(None));
        assert!(Caller::Admin.may_see(None));
        assert!(Caller::Admin.may_see(Some("globex")));
    }
}
