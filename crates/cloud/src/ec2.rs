//! EC2: DescribeSecurityGroups, the one EC2 call clawfleet makes (`clawfleet audit` reads the
//! agents' and the mount targets' groups).
//!
//! Why not `aws-sdk-ec2`: it is one of the largest crates of the SDK, and the product needs one
//! read of it. So the call is made here, as the SDK would make it, from crates already in the
//! tree: the smithy orchestrator ([`Operation`]) with the shared [`SdkConfig`]'s HTTP client,
//! endpoint (`AWS_ENDPOINT_URL` reaches moto in tests), retry and timeout settings; a SigV4
//! signature from `aws-sigv4` with the configuration's credentials and region; and the SDK's own
//! XML reader (`aws-smithy-xml`) for the answer of EC2's Query protocol.

use std::fmt;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime::client::retries::classifiers::{
    HttpStatusCodeClassifier, TransientErrorClassifier,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_smithy_xml::decode::{Document, ScopedDecoder, XmlDecodeError, try_data};
use plan::audit::{Permission, SecurityGroup};

use crate::calls::Calls;
use crate::error::{AwsError, ErrorClass};
use crate::gate::{SharedGate, Through};

/// The EC2 API version the Query request names.
const API_VERSION: &str = "2016-11-15";

/// EC2, for the one read clawfleet makes.
#[derive(Debug, Clone)]
pub struct Ec2 {
    config: SdkConfig,
    calls: Calls,
    gate: SharedGate,
}

/// An error EC2 answered with (`<Response><Errors><Error><Code>`...).
#[derive(Debug)]
pub struct Ec2Error {
    meta: ErrorMetadata,
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.meta.code().unwrap_or("unknown"),
            self.meta.message().unwrap_or("")
        )
    }
}

impl std::error::Error for Ec2Error {}

impl ProvideErrorMetadata for Ec2Error {
    fn meta(&self) -> &ErrorMetadata {
        &self.meta
    }
}

fn local_error(message: impl Into<String>) -> AwsError {
    AwsError {
        service: "EC2",
        operation: "DescribeSecurityGroups",
        code: None,
        message: message.into(),
        class: ErrorClass::Terminal,
    }
}

impl Ec2 {
    /// EC2 as `config` reaches it, every call counted in `calls`.
    #[must_use]
    pub fn new(config: &SdkConfig, calls: &Calls) -> Self {
        Self {
            config: config.clone(),
            calls: calls.clone(),
            gate: crate::gate::open(),
        }
    }

    /// The same, every call passing `gate`.
    #[must_use]
    pub fn with_gate(self, gate: SharedGate) -> Self {
        Self { gate, ..self }
    }

    /// The endpoint: the configured one (`AWS_ENDPOINT_URL`), else the region's public one.
    fn endpoint(&self, region: &str) -> String {
        match self.config.endpoint_url() {
            Some(url) => url.to_owned(),
            None if region.starts_with("cn-") => format!("https://ec2.{region}.amazonaws.com.cn"),
            None => format!("https://ec2.{region}.amazonaws.com"),
        }
    }

    /// DescribeSecurityGroups of `group_ids`, in one request. EC2 does not page a request that
    /// names its groups and sets no MaxResults.
    ///
    /// # Errors
    /// No region or credentials, or the call's failure (`InvalidGroup.NotFound` names a group
    /// that does not exist).
    pub async fn describe_security_groups(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<SecurityGroup>, AwsError> {
        let region = self
            .config
            .region()
            .map(ToString::to_string)
            .ok_or_else(|| local_error("no AWS region configured"))?;
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| local_error("no AWS credentials configured"))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| local_error(format!("credentials: {e}")))?;
        let mut builder = Operation::builder()
            .service_name("EC2")
            .operation_name("DescribeSecurityGroups")
            .endpoint_url(&self.endpoint(&region))
            // Signed by `Sign`, after the endpoint is applied: the orchestrator's own auth
            // schemes live in aws-runtime's SDK plumbing, which this one call does not need.
            .no_auth()
            .standard_retry(
                &self
                    .config
                    .retry_config()
                    .cloned()
                    .unwrap_or_else(RetryConfig::standard),
            )
            .retry_classifier(HttpStatusCodeClassifier::default())
            .retry_classifier(TransientErrorClassifier::<Ec2Error>::new())
            .timeout_config(
                self.config
                    .timeout_config()
                    .cloned()
                    .unwrap_or_else(TimeoutConfig::disabled),
            )
            .interceptor(self.calls.clone())
            .interceptor(Sign {
                credentials,
                region,
            });
        if let Some(client) = self.config.http_client() {
            builder = builder.http_client(client);
        }
        if let Some(sleep) = self.config.sleep_impl() {
            builder = builder.sleep_impl(sleep);
        }
        if let Some(time) = self.config.time_source() {
            builder = builder.time_source(time);
        }
        let operation = builder
            .serializer(|ids: Vec<String>| Ok(query_request(&ids)))
            .deserializer(|response: &HttpResponse| parse_response(response))
            .build();
        operation
            .invoke(group_ids.to_vec())
            .through(&*self.gate, "EC2", "DescribeSecurityGroups")
            .await
    }
}

/// `Action=DescribeSecurityGroups&Version=...&GroupId.1=...`, as EC2's Query protocol takes it.
fn query_request(group_ids: &[String]) -> HttpRequest {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// RFC 3986's unreserved characters stay as they are; everything else is encoded.
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let mut body = format!("Action=DescribeSecurityGroups&Version={API_VERSION}");
    for (i, id) in group_ids.iter().enumerate() {
        body.push_str(&format!(
            "&GroupId.{}={}",
            i + 1,
            utf8_percent_encode(id, UNRESERVED)
        ));
    }
    let mut request = HttpRequest::new(SdkBody::from(body));
    // Infallible for these literals; the orchestrator sends POST / by default anyway.
    let _ = request.set_method("POST");
    let _ = request.set_uri("/");
    request.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    request
}

/// Signs each attempt with SigV4 once its endpoint is applied, so the signature covers the
/// host it is sent to. The orchestrator rewinds the request before a retry, so an attempt never
/// carries a previous attempt's signature.
#[derive(Debug)]
struct Sign {
    credentials: Credentials,
    region: String,
}

impl Intercept for Sign {
    fn name(&self) -> &'static str {
        "clawfleet::ec2::Sign"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let now = runtime_components
            .time_source()
            .map_or_else(std::time::SystemTime::now, |t| t.now());
        let identity = self.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(now)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let request = context.request_mut();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let signable = SignableRequest::new(
            request.method(),
            request.uri(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let (headers, _params) = instructions.into_parts();
        for header in headers {
            request
                .headers_mut()
                .insert(header.name(), header.value().to_owned());
        }
        Ok(())
    }
}

fn parse_response(
    response: &HttpResponse,
) -> Result<Vec<SecurityGroup>, OrchestratorError<Ec2Error>> {
    let body = response
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if !response.status().is_success() {
        let meta = parse_error(&body).unwrap_or_else(|_| {
            ErrorMetadata::builder()
                .message(format!("HTTP {}", response.status().as_u16()))
                .build()
        });
        return Err(OrchestratorError::operation(Ec2Error { meta }));
    }
    parse_groups(&body).map_err(OrchestratorError::other)
}

/// `<Response><Errors><Error><Code/><Message/></Error></Errors></Response>`.
fn parse_error(body: &str) -> Result<ErrorMetadata, XmlDecodeError> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element()?;
    let mut meta = ErrorMetadata::builder();
    while let Some(mut errors) = root.next_tag() {
        if !errors.start_el().matches("Errors") {
            continue;
        }
        while let Some(mut error) = errors.next_tag() {
            while let Some(mut field) = error.next_tag() {
                if field.start_el().matches("Code") {
                    meta = meta.code(try_data(&mut field)?);
                } else if field.start_el().matches("Message") {
                    meta = meta.message(try_data(&mut field)?);
                }
            }
        }
    }
    Ok(meta.build())
}

/// `<DescribeSecurityGroupsResponse><securityGroupInfo><item>`... as EC2 documents it.
fn parse_groups(body: &str) -> Result<Vec<SecurityGroup>, XmlDecodeError> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element()?;
    let mut groups = Vec::new();
    while let Some(mut info) = root.next_tag() {
        if !info.start_el().matches("securityGroupInfo") {
            continue;
        }
        while let Some(mut item) = info.next_tag() {
            groups.push(parse_group(&mut item)?);
        }
    }
    Ok(groups)
}

fn parse_group(item: &mut ScopedDecoder<'_, '_>) -> Result<SecurityGroup, XmlDecodeError> {
    let mut group = SecurityGroup::default();
    while let Some(mut field) = item.next_tag() {
        let name = field.start_el().local().to_owned();
        match name.as_str() {
            "groupId" => group.id = try_data(&mut field)?.into_owned(),
            "ipPermissions" => group.ingress = parse_permissions(&mut field)?,
            "ipPermissionsEgress" => group.egress = parse_permissions(&mut field)?,
            _ => {}
        }
    }
    Ok(group)
}

fn parse_permissions(list: &mut ScopedDecoder<'_, '_>) -> Result<Vec<Permission>, XmlDecodeError> {
    let mut out = Vec::new();
    while let Some(mut item) = list.next_tag() {
        let mut p = Permission::default();
        while let Some(mut field) = item.next_tag() {
            let name = field.start_el().local().to_owned();
            match name.as_str() {
                "ipProtocol" => p.protocol = try_data(&mut field)?.into_owned(),
                "fromPort" => p.from_port = Some(port(&try_data(&mut field)?)?),
                "toPort" => p.to_port = Some(port(&try_data(&mut field)?)?),
                "groups" => p.groups = values(&mut field, "groupId")?,
                "ipRanges" => p.ipv4_ranges = values(&mut field, "cidrIp")?,
                "ipv6Ranges" => p.ipv6_ranges = values(&mut field, "cidrIpv6")?,
                "prefixListIds" => p.prefix_lists = values(&mut field, "prefixListId")?,
                _ => {}
            }
        }
        out.push(p);
    }
    Ok(out)
}

fn port(text: &str) -> Result<i32, XmlDecodeError> {
    text.trim()
        .parse()
        .map_err(|_| XmlDecodeError::custom(format!("port {text:?} is not a number")))
}

/// The `key` of every `<item>` of a list.
fn values(list: &mut ScopedDecoder<'_, '_>, key: &str) -> Result<Vec<String>, XmlDecodeError> {
    let mut out = Vec::new();
    while let Some(mut item) = list.next_tag() {
        while let Some(mut field) = item.next_tag() {
            if field.start_el().matches(key) {
                out.push(try_data(&mut field)?.into_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    /// As moto 5.2.1 and EC2's documentation answer (moto's answer, captured).
    const ANSWER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><securityGroupInfo><item><groupId>sg-a</groupId><ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item><item><ipProtocol>tcp</ipProtocol><fromPort>2049</fromPort><toPort>2049</toPort><groups><item><userId>123456789012</userId><groupId>sg-b</groupId></item></groups><ipRanges/><ipv6Ranges/><prefixListIds/></item></ipPermissionsEgress><tagSet/><vpcId>vpc-1</vpcId><ownerId>123456789012</ownerId><groupName>a</groupName><groupDescription>a</groupDescription><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges><item><cidrIp>10.0.0.0/8</cidrIp><description>ssh</description></item></ipRanges><ipv6Ranges><item><cidrIpv6>::/0</cidrIpv6></item></ipv6Ranges><prefixListIds><item><prefixListId>pl-1</prefixListId></item></prefixListIds></item></ipPermissions></item></securityGroupInfo><requestId>request-id</requestId></DescribeSecurityGroupsResponse>"#;

    #[test]
    fn a_described_group_is_read_rule_by_rule() {
        let groups = parse_groups(ANSWER).expect("parses");
        assert_eq!(
            groups,
            [SecurityGroup {
                id: "sg-a".into(),
                ingress: vec![Permission {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    ipv4_ranges: vec!["10.0.0.0/8".into()],
                    ipv6_ranges: vec!["::/0".into()],
                    prefix_lists: vec!["pl-1".into()],
                    groups: Vec::new(),
                }],
                egress: vec![
                    Permission {
                        protocol: "-1".into(),
                        ipv4_ranges: vec!["0.0.0.0/0".into()],
                        ..Permission::default()
                    },
                    Permission {
                        protocol: "tcp".into(),
                        from_port: Some(2049),
                        to_port: Some(2049),
                        groups: vec!["sg-b".into()],
                        ..Permission::default()
                    },
                ],
            }]
        );
    }

    #[test]
    fn an_error_answer_gives_its_code_and_message() {
        let meta = parse_error(
            r#"<?xml version="1.0" encoding="utf-8"?>
<Response><Errors><Error><Code>InvalidGroup.NotFound</Code><Message>The security group 'sg-x' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"#,
        )
        .expect("parses");
        assert_eq!(meta.code(), Some("InvalidGroup.NotFound"));
        assert_eq!(
            meta.message(),
            Some("The security group 'sg-x' does not exist")
        );
    }

    #[test]
    fn the_query_names_every_group() {
        let request = query_request(&["sg-1".into(), "sg-2".into()]);
        assert_eq!(
            request.body().bytes(),
            Some(
                "Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1=sg-1&GroupId.2=sg-2"
                    .as_bytes()
            )
        );
    }
}
