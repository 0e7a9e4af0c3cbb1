//! Request bodies and query strings, read so that every failure is a problem that names the
//! field: the size limit is a 413, broken JSON a 400, a wrong type a 422 with its path.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::ApiError;

/// Reads a JSON body of at most `limit` bytes into `T`.
///
/// # Errors
/// 415 for a Content-Type that is not JSON, 413 over the limit, 400 for bytes that are not JSON,
/// 422 naming the path of a value of the wrong shape.
pub async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let kind = kind.to_str().unwrap_or_default().to_ascii_lowercase();
        let mut parts = kind.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        // JSON is UTF-8 (RFC 8259); a body declared in another charset would be read wrongly.
        let charset = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim() == "charset")
            .map(|(_, value)| value.trim().trim_matches('"').to_owned());
        if charset.is_some_and(|c| c != "utf-8" && c != "utf8") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let source = e.into_inner();
        if source.downcast_ref::<LengthLimitError>().is_some() {
            ApiError::TooLarge { limit }
        } else {
            ApiError::MalformedJson(format!("the body could not be read: {source}"))
        }
    })?;
    parse(&bytes)
}

/// Parses a JSON object into `T`, telling syntax errors (400) from shape errors (422).
///
/// # Errors
/// As [`json`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".to_owned()));
    }
    let value = strict_value(bytes)?;
    // serde also fills a struct from a JSON array, field by field: `[null]` would be a spec.
    // Every body this API takes is an object.
    if !value.is_object() {
        return Err(ApiError::invalid("(body)", "must be a JSON object"));
    }
    // serde reads `null` as absent, so `{"generation": null}` would pass for a body without
    // bookkeeping; the document says no field is nullable.
    if let Some(path) = first_null(&value, "") {
        return Err(ApiError::invalid(
            path,
            "must not be null; leave the field out instead",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(body)".to_owned()
        } else {
            path
        };
        ApiError::invalid(field, strip_position(&e.into_inner().to_string()))
    })
}

/// Parses JSON as [`Value`], refusing an object that gives one key twice: serde would keep the
/// last silently, so `{"plan":"bogus","plan":"small"}` would pass for a valid spec.
fn strict_value(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let duplicate = std::cell::RefCell::new(None);
    let value = serde::de::DeserializeSeed::deserialize(
        Strict {
            path: String::new(),
            duplicate: &duplicate,
        },
        &mut de,
    )
    .and_then(|v| de.end().map(|()| v));
    match (value, duplicate.into_inner()) {
        (_, Some(path)) => Err(ApiError::BadParameter {
            field: path,
            message: "the key is given more than once in the body".to_owned(),
        }),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(ApiError::MalformedJson(e.to_string())),
    }
}

/// A [`Value`] deserializer that remembers the path of the first repeated key.
struct Strict<'a> {
    path: String,
    duplicate: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict {
            path: format!("{}[{}]", self.path, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if object.contains_key(&key) {
                self.duplicate.borrow_mut().get_or_insert(path);
                return Err(serde::de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Strict {
                path,
                duplicate: self.duplicate,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The path of the first `null` inside `value`, written as validation writes paths
/// (`plugins[0].name`, `env.KEY`).
fn first_null(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Null => Some(if path.is_empty() {
            "(body)".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Object(map) => map.iter().find_map(|(key, v)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            first_null(v, &path)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// serde_json appends " at line L column C" to shape errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The parameters of a query string, refusing unknown or repeated ones. Values are used as
/// written (clawfleet's parameters are ids, numbers and hex cursors, which need no decoding).
///
/// # Errors
/// 400 naming the parameter.
pub fn query<'a>(
    raw: Option<&'a str>,
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, ApiError> {
    let mut params: Vec<(&str, &str)> = Vec::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !known.contains(&name) {
            return Err(ApiError::BadParameter {
                field: name.to_owned(),
                message: format!("unknown query parameter; known: {}", known.join(", ")),
            });
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::BadParameter {
                field: name.to_owned(),
                message: "given more than once".to_owned(),
            });
        }
        params.push((name, value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn syntax_errors_are_400_and_shape_errors_name_the_field() {
        let err = parse::<spec::AgentDocument>(b"{\"image\": ").unwrap_err();
        assert_eq!(err.status(), 400);
        let err = parse::<spec::AgentDocument>(b"{\"cpu\": \"lots\"}").unwrap_err();
        assert_eq!(err.status(), 422);
        assert!(err.to_string().starts_with("cpu: invalid type"), "{err}");
        let err = parse::<spec::AgentDocument>(b"{\"plugins\": [{\"nme\": 1}]}").unwrap_err();
        assert!(
            err.to_string().starts_with("plugins[0].nme: unknown field"),
            "{err}"
        );
        for not_object in [
            &b"[null, null]"[..],
            b" [1]",
            b"\"x\"",
            b"12",
            b"null",
            b"true",
        ] {
            let err = parse::<spec::AgentDocument>(not_object).unwrap_err();
            assert_eq!(err.to_string(), "(body): must be a JSON object");
        }
        assert_eq!(parse::<spec::AgentDocument>(b"").unwrap_err().status(), 400);
        assert_eq!(
            parse::<spec::AgentDocument>(b" \n").unwrap_err().status(),
            400
        );
        for (body, field) in [
            (&br#"{"image": null}"#[..], "image"),
            (br#"{"generation": null}"#, "generation"),
            (
                br#"{"plugins": [{"name": "a", "source": null}]}"#,
                "plugins[0].source",
            ),
            (br#"{"env": {"A": null}}"#, "env.A"),
            (br#"{"skills": ["a", null]}"#, "skills[1]"),
        ] {
            let err = parse::<spec::AgentDocument>(body).unwrap_err();
            assert_eq!(err.status(), 422);
            assert_eq!(
                err.to_string(),
                format!("{field}: must not be null; leave the field out instead")
            );
        }
        assert_eq!(
            parse::<spec::AgentDocument>(b"<x>").unwrap_err().status(),
            400
        );
        let err = parse::<BTreeMap<String, String>>(b"{} {}").unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn a_key_given_twice_is_a_400_naming_it_at_any_depth() {
        for (body, field) in [
            (&br#"{"plan":"bogus","plan":"small"}"#[..], "plan"),
            (br#"{"env":{"A":"1","B":"2","A":"3"}}"#, "env.A"),
            (
                br#"{"plugins":[{"name":"a"},{"name":"b","name":"c"}]}"#,
                "plugins[1].name",
            ),
        ] {
            let err = parse::<spec::AgentDocument>(body).unwrap_err();
            assert_eq!(err.status(), 400, "{err}");
            assert!(err.to_string().starts_with(&format!("{field}: ")), "{err}");
        }
        let ok = parse::<spec::AgentDocument>(br#"{"env":{"A":"1"},"tags":{"A":"1"}}"#);
        assert!(ok.is_ok(), "the same key in two objects is no duplicate");
    }

    #[test]
    fn query_parameters_are_known_and_given_once() {
        assert_eq!(
            query(Some("limit=5&cursor=ab"), &["limit", "cursor"]).unwrap(),
            vec![("limit", "5"), ("cursor", "ab")]
        );
        assert!(query(None, &["limit"]).unwrap().is_empty());
        let err = query(Some("limt=5"), &["limit"]).unwrap_err();
        assert!(err.to_string().starts_with("limt: unknown"), "{err}");
        let err = query(Some("limit=5&limit=6"), &["limit"]).unwrap_err();
        assert!(err.to_string().starts_with("limit: given more"), "{err}");
    }
}
