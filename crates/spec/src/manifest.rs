//! Agent manifests: YAML (several documents per file) or JSON (an object or an array).
//!
//! A manifest is the spec's fields in snake_case, named like the DynamoDB attributes. Every
//! error carries the file, the document (1-based) and, where the parser knows it, the line.

use std::fmt;

use crate::AgentSpec;
use crate::document::AgentDocument;
use crate::validate::ValidationErrors;

/// Where one document came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based document number within the file.
    pub document: usize,
    /// 1-based line where the document starts, or where the error is.
    pub line: Option<u64>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{} (document {})", self.file, line, self.document),
            None => write!(f, "{} (document {})", self.file, self.document),
        }
    }
}

/// A parsed, not yet validated, manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub origin: Origin,
    pub document: AgentDocument,
}

/// A manifest that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidManifest {
    pub origin: Origin,
    pub spec: AgentSpec,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not well-formed YAML or JSON, or has a field of the wrong type or name.
    #[error("{origin}: {message}")]
    Parse { origin: Origin, message: String },
    /// The document parsed but breaks spec rules.
    #[error("{origin}: {errors}")]
    Invalid {
        origin: Origin,
        errors: ValidationErrors,
    },
    /// The document sets a field that only clawfleet's writers set.
    #[error("{origin}: {field}: is set by clawfleet, not by manifests")]
    Bookkeeping { origin: Origin, field: &'static str },
}

/// Parses every document in one file. JSON is recognised by a `.json` name or a leading `{`/`[`.
///
/// # Errors
/// The first document that does not parse, with its file, document number and line.
pub fn parse(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let trimmed = text.trim_start();
    if file.ends_with(".json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(file, text)
    } else {
        parse_yaml(file, text)
    }
}

/// Parses and validates every document of one file, collecting all errors.
///
/// # Errors
/// Every refused document, in file order. Nothing is returned when one is refused, so that a
/// caller never writes half of a file.
pub fn load(file: &str, text: &str) -> Result<Vec<ValidManifest>, Vec<ManifestError>> {
    let manifests = parse(file, text).map_err(|e| vec![e])?;
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for m in manifests {
        if let Some(field) = m.document.bookkeeping_present().first() {
            errors.push(ManifestError::Bookkeeping {
                origin: m.origin,
                field,
            });
            continue;
        }
        match m.document.validate() {
            Ok(spec) => valid.push(ValidManifest {
                origin: m.origin,
                spec,
            }),
            Err(e) => errors.push(ManifestError::Invalid {
                origin: m.origin,
                errors: e,
            }),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    use serde_saphyr::{SnippetMode, Spanned};
    match serde_saphyr::from_multiple::<Spanned<AgentDocument>>(text) {
        Ok(docs) => Ok(docs
            .into_iter()
            .map(|d| {
                let line = d.defined.line();
                Manifest {
                    origin: Origin {
                        file: file.to_owned(),
                        document: document_at(text, line),
                        line: Some(line),
                    },
                    document: d.value,
                }
            })
            .collect()),
        Err(e) => {
            let line = e.location().map(|l| l.line()).filter(|&l| l > 0);
            let options = serde_saphyr::render_options! { snippets: SnippetMode::Off };
            let message = one_line(&e.render_with_options(options));
            Err(ManifestError::Parse {
                origin: Origin {
                    file: file.to_owned(),
                    document: line.map_or(1, |l| document_at(text, l)),
                    line,
                },
                message,
            })
        }
    }
}

fn parse_json(file: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let origin = |document: usize, line: Option<u64>| Origin {
        file: file.to_owned(),
        document,
        line,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ManifestError::Parse {
            origin: origin(1, Some(e.line() as u64)),
            message: one_line(&e.to_string()),
        })?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_path_to_error::deserialize::<_, AgentDocument>(item)
                .map(|document| Manifest {
                    origin: origin(i + 1, None),
                    document,
                })
                .map_err(|e| ManifestError::Parse {
                    origin: origin(i + 1, None),
                    message: path_message(&e.path().to_string(), &e.inner().to_string()),
                })
        })
        .collect()
}

/// `field: message`, or the message alone when the error is about the whole document.
#[must_use]
pub fn path_message(path: &str, message: &str) -> String {
    let message = one_line(message);
    if path.is_empty() || path == "." {
        message
    } else {
        format!("{path}: {message}")
    }
}

/// The 1-based document that holds `line`: separators (`---`) before it, not counting one that
/// opens the file before any content.
fn document_at(text: &str, line: u64) -> usize {
    let mut document = 1;
    let mut content_seen = false;
    for (n, l) in text.lines().enumerate() {
        if n as u64 + 1 >= line {
            break;
        }
        if l.starts_with("---") {
            if content_seen {
                document += 1;
                content_seen = false;
            }
        } else if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            content_seen = true;
        }
    }
    document
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Meta;

    const TWO: &str = "\
# two agents
api_version: clawfleet/v1
agent_id: acme-support
client_id: acme
image: openclaw/openclaw:v1.2.3
plan: medium
skills: [web, voice]
plugins:
  - name: calendar
    source: https://github.com/openclaw/calendar
    version: 1.4.0
env:
  LOG_LEVEL: info
secret_keys: [OPENAI_API_KEY]
tags:
  CostCenter: acme
restart_requested_at: 2026-11-25T10:00:00Z
---
agent_id: globex-ops
client_id: globex
desired_state: stopped
cpu: 1024
memory: 3072
";

    #[test]
    fn yaml_documents_parse_with_their_origin() {
        let docs = parse("agents.yaml", TWO).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].origin.document, 1);
        assert_eq!(docs[1].origin.document, 2);
        assert_eq!(docs[1].origin.line, Some(19));
        assert_eq!(docs[0].document.skills, vec!["web", "voice"]);
        assert_eq!(docs[1].document.memory, Some(3072));
    }

    #[test]
    fn manifest_to_spec_to_document_to_spec_is_identity() {
        for m in load("agents.yaml", TWO).unwrap_or_else(|e| panic!("{e:?}")) {
            let meta = Meta {
                generation: 3,
                managed_by: Some("cli".into()),
                ..Meta::default()
            };
            let doc = m.spec.to_document(&meta);
            let again = doc.validate().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, m.spec);
            assert_eq!(Meta::of(&doc), meta);
        }
    }

    #[test]
    fn json_object_and_array_are_accepted() {
        let one = r#"{"agent_id": "a1", "client_id": "acme", "cpu": 256, "memory": 512}"#;
        let docs = load("a.json", one).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(docs.len(), 1);
        let many =
            r#"[{"agent_id": "a1", "client_id": "acme"}, {"agent_id": "a2", "client_id": "acme"}]"#;
        let docs = load("many.json", many).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(docs[1].origin.document, 2);
        assert_eq!(docs[1].spec.agent_id, "a2");
    }

    #[test]
    fn yaml_syntax_error_names_file_document_and_line() {
        let text = "agent_id: a1\nclient_id: acme\n---\nagent_id: a2\nclient_id: [acme\n";
        let Err(e) = parse("bad.yaml", text) else {
            panic!("must fail")
        };
        let msg = e.to_string();
        assert!(msg.starts_with("bad.yaml:"), "{msg}");
        assert!(msg.contains("(document 2)"), "{msg}");
    }

    #[test]
    fn unknown_yaml_field_is_named_with_its_line() {
        let text = "agent_id: a1\nclient_id: acme\nimgae: openclaw/openclaw:v1\n";
        let Err(e) = parse("typo.yaml", text) else {
            panic!("must fail")
        };
        let msg = e.to_string();
        assert!(msg.contains("imgae"), "{msg}");
        assert!(msg.starts_with("typo.yaml:3 (document 1)"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn wrong_yaml_type_is_named() {
        let text = "agent_id: a1\nclient_id: acme\ncpu: lots\nmemory: 1024\n";
        let Err(e) = parse("type.yaml", text) else {
            panic!("must fail")
        };
        let msg = e.to_string();
        assert!(msg.contains("type.yaml:3"), "{msg}");
    }

    #[test]
    fn json_wrong_type_names_the_field_path() {
        let text = r#"[{"agent_id": "a1", "client_id": "acme", "plugins": [{"name": "x", "source": 5, "version": "1"}]}]"#;
        let Err(e) = parse("p.json", text) else {
            panic!("must fail")
        };
        let msg = e.to_string();
        assert!(msg.contains("plugins[0].source"), "{msg}");
    }

    #[test]
    fn json_syntax_error_names_the_line() {
        let Err(e) = parse("p.json", "{\n\"agent_id\": \"a1\",\n}") else {
            panic!("must fail")
        };
        assert!(e.to_string().starts_with("p.json:3"), "{e}");
    }

    #[test]
    fn validation_errors_name_file_document_and_field() {
        let text = "agent_id: a1\nclient_id: acme\n---\nagent_id: a2\nclient_id: acme\nplugins:\n  - {name: x, source: ftp://x, version: '1'}\n";
        let Err(errors) = load("v.yaml", text) else {
            panic!("must fail")
        };
        assert_eq!(errors.len(), 1);
        let msg = errors[0].to_string();
        assert_eq!(
            msg,
            "v.yaml:4 (document 2): plugins[0].source: must be an https:// or git URL"
        );
    }

    #[test]
    fn manifests_may_not_set_bookkeeping() {
        let text = "agent_id: a1\nclient_id: acme\ngeneration: 9\n";
        let Err(errors) = load("g.yaml", text) else {
            panic!("must fail")
        };
        assert!(
            errors[0]
                .to_string()
                .contains("generation: is set by clawfleet")
        );
    }

    #[test]
    fn document_numbers_skip_a_leading_separator_and_comments() {
        let text =
            "---\n# first\nagent_id: a1\nclient_id: acme\n---\nagent_id: a2\nclient_id: acme\n";
        let docs = parse("d.yaml", text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            docs.iter().map(|d| d.origin.document).collect::<Vec<_>>(),
            [1, 2]
        );
    }
}
