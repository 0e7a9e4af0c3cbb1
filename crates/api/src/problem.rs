//! Errors as `application/problem+json` (RFC 9457), each naming the field, the parameter or the
//! AWS operation at fault. Bad input is always a 4xx: a 5xx means AWS failed us.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use spec::ValidationErrors;
use store::StoreError;

use crate::intake::IntakeError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a bearer token is required (Authorization: Bearer TOKEN)")]
    Unauthorized,
    #[error("{0}: not found")]
    NotFound(String),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{field}: {message}")]
    BadParameter { field: String, message: String },
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Content-Type must be application/json, in UTF-8 if a charset is given")]
    UnsupportedMediaType,
    #[error("this route does not serve that method; Allow lists the ones it does")]
    MethodNotAllowed,
    #[error("{0}")]
    Invalid(ValidationErrors),
    #[error("{field}: {message}")]
    Forbidden { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("If-Match: the agent changed since that ETag was read; GET it again")]
    PreconditionFailed,
    #[error("this tenant's request rate is used up; retry after {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// AWS refused or failed the call. Tenants are told which call and AWS's error code; the
    /// whole message (table names, role ARNs, account ids) goes to the server's log only.
    #[error("{call}: {}; the details are in the server's log", code.as_deref().unwrap_or("failed"))]
    Upstream {
        status: StatusCode,
        call: String,
        code: Option<String>,
        log: String,
    },
    /// A handler panicked; nothing was left half done that a retry would not redo.
    #[error("internal error; the request was not completed")]
    Internal,
}

impl ApiError {
    /// One field error, as validation reports them.
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Invalid(ValidationErrors(vec![spec::FieldError {
            field: field.into(),
            rule: rule.into(),
        }]))
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MalformedJson(_) | Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream { status, .. } => *status,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn errors(&self) -> Vec<FieldProblem> {
        match self {
            Self::Invalid(errors) => errors
                .0
                .iter()
                .map(|e| FieldProblem {
                    field: e.field.clone(),
                    detail: e.rule.clone(),
                })
                .collect(),
            Self::BadParameter { field, message } | Self::Forbidden { field, message } => {
                vec![FieldProblem {
                    field: field.clone(),
                    detail: message.clone(),
                }]
            }
            _ => Vec::new(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and the title say what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// One line naming the field, the parameter or the AWS operation.
    pub detail: String,
    /// Every field at fault, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// One field at fault: a path into the body (`plugins[2].source`), a query parameter or a key.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldProblem {
    pub field: String,
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Upstream { log, .. } = &self {
            tracing::warn!("AWS call failed: {log}");
        }
        let status = self.status();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        };
        let problem = Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: self.errors(),
        };
        let mut response = (status, axum_json(&problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Serializes a response body; our own types always serialize.
pub(crate) fn axum_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } | StoreError::Deleting { .. } => {
                Self::Conflict(e.to_string())
            }
            StoreError::ClientIdChanged { .. } => {
                Self::invalid("client_id", "cannot change once the agent exists")
            }
            StoreError::Aws {
                operation,
                ref code,
                ..
            } => Self::Upstream {
                status: upstream_status(e.class()),
                call: format!("DynamoDB {operation}"),
                code: code.clone(),
                log: e.to_string(),
            },
            StoreError::Incomplete { operation, .. } => Self::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                call: format!("DynamoDB {operation}"),
                code: None,
                log: e.to_string(),
            },
            StoreError::TableShape { .. } => Self::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                call: "DynamoDB".to_owned(),
                code: None,
                log: e.to_string(),
            },
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::BadKey { key, problem } => Self::invalid(key, problem),
            IntakeError::Empty => Self::invalid("(body)", "must set at least one key"),
            IntakeError::TooLarge { .. } | IntakeError::TooManyKeys { .. } => {
                Self::invalid("(body)", e.to_string())
            }
            IntakeError::NoClient { .. } => Self::invalid("client_id", "is required"),
            IntakeError::Deleting { .. }
            | IntakeError::Foreign { .. }
            | IntakeError::Unreadable { .. }
            | IntakeError::Busy { .. } => Self::Conflict(e.to_string()),
            IntakeError::Store(e) => e.into(),
            IntakeError::Aws(aws) => aws.into(),
        }
    }
}

impl From<cloud::AwsError> for ApiError {
    fn from(aws: cloud::AwsError) -> Self {
        Self::Upstream {
            status: upstream_status(aws.class),
            call: format!("{} {}", aws.service, aws.operation),
            code: aws.code.clone(),
            log: aws.to_string(),
        }
    }
}

/// A failure worth retrying (throttling, a timeout, a 5xx) is 503; any other is 502.
fn upstream_status(class: cloud::ErrorClass) -> StatusCode {
    match class {
        cloud::ErrorClass::Throttled | cloud::ErrorClass::Transient => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        cloud::ErrorClass::Terminal => StatusCode::BAD_GATEWAY,
    }
}
