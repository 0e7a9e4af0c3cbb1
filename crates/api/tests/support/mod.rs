//! The API in process, over a fresh table and secret prefix on the shared local AWS.
#![allow(dead_code)]

use std::collections::HashMap;

use api::{Api, Config, Tokens, token_hash};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use cloud::Secrets;
use serde_json::Value;
use store::Store;
use tower::ServiceExt as _;

pub const ACME: &str = "acme-token";
pub const GLOBEX: &str = "globex-token";
pub const ADMIN: &str = "admin-token";

pub struct Harness {
    pub api: Api,
    pub router: Router,
    pub store: Store,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub table: String,
    pub secret_prefix: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

pub fn tokens_document() -> String {
    format!(
        "- sha256: {}\n  tenant: acme\n- sha256: {}\n  tenant: globex\n- sha256: {}\n  admin: true\n",
        token_hash(ACME),
        token_hash(GLOBEX),
        token_hash(ADMIN)
    )
}

impl Harness {
    pub async fn new(prefix: &str) -> Self {
        Self::with_limit(prefix, api::DEFAULT_BODY_LIMIT).await
    }

    pub async fn with_limit(prefix: &str, body_limit: usize) -> Self {
        Self::with_config(prefix, body_limit, None).await
    }

    pub async fn with_config(
        prefix: &str,
        body_limit: usize,
        tenant_rate: Option<api::limit::TenantRate>,
    ) -> Self {
        Self::with_console(
            prefix,
            body_limit,
            tenant_rate,
            api::console::Settings::default(),
        )
        .await
    }

    pub async fn with_console(
        prefix: &str,
        body_limit: usize,
        tenant_rate: Option<api::limit::TenantRate>,
        console: api::console::Settings,
    ) -> Self {
        let config = local_aws::sdk_config().await;
        let table = local_aws::unique(prefix);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let store = Store::new(dynamodb.clone(), &table);
        store.bootstrap().await.unwrap();
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let secret_prefix = format!("/{table}/");
        let tokens = Tokens::parse("test tokens", &tokens_document()).unwrap();
        let api = Api::new(
            store.clone(),
            Secrets::new(secrets.clone()),
            tokens,
            Config {
                secret_prefix: secret_prefix.clone(),
                body_limit,
                tenant_rate,
                id_key: api::idkey::IdKey::random(),
                logs: Some(api::logs::LogReader {
                    logs: cloud::Logs::new(aws_sdk_cloudwatchlogs::Client::new(&config)),
                    ecs: aws_sdk_ecs::Client::new(&config),
                    container: "agent".to_owned(),
                }),
                console,
            },
        );
        Self {
            router: api.router(),
            api,
            store,
            dynamodb,
            secrets,
            table,
            secret_prefix,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None, &[]).await
    }

    /// Creates an agent as `token`, which must succeed.
    pub async fn create(&self, token: &str, body: &str) -> Reply {
        let reply = self
            .call("POST", "/v1/agents", Some(token), Some(body), &[])
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply
    }

    /// Every item in the table, sorted, as text: what a person would see in a dump.
    pub async fn dump(&self) -> String {
        let out = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let mut items: Vec<String> = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let sorted: std::collections::BTreeMap<_, _> = item.iter().collect();
                format!("{sorted:?}")
            })
            .collect();
        items.sort();
        items.join("\n")
    }

    /// Sets one attribute of a spec item as a person in the DynamoDB console would: no
    /// generation bump, no condition.
    pub async fn console_set(&self, agent_id: &str, attribute: &str, value: &str) {
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([
                (
                    "agent_id".to_owned(),
                    AttributeValue::S(agent_id.to_owned()),
                ),
                ("record".to_owned(), AttributeValue::S("spec".to_owned())),
            ])))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.to_owned()))
            .send()
            .await
            .unwrap();
    }

    /// The agent's secret value as stored in Secrets Manager, if any.
    pub async fn secret_value(&self, agent_id: &str) -> Option<String> {
        self.secrets
            .get_secret_value()
            .secret_id(format!("{}{agent_id}/secrets", self.secret_prefix))
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }
}
