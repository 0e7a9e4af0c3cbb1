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
        let essence = kind.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
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
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
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
