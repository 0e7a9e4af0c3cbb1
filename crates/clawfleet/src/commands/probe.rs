//! `clawfleet probe URL`: one HTTP GET, exit 0 on a 2xx answer. The image has no shell or curl,
//! so this is what a container health check runs (`/healthz`, never `/readyz`, which a standby
//! answers with 503 by design).

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::failure::{Exit, Failure};

/// How long the probe waits for an answer: well within ECS's shortest health-check timeout.
const TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(url: &str) -> Result<Exit, Failure> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| Failure::Usage(format!("URL {url}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Failure::Usage(format!(
            "URL {url}: only http:// is probed (the health endpoints listen in plain HTTP)"
        )));
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answer = tokio::time::timeout(TIMEOUT, client.get(uri)).await;
    match answer {
        Ok(Ok(response)) if response.status().is_success() => {
            println!("{url}: {}", response.status());
            Ok(Exit::Success)
        }
        Ok(Ok(response)) => Err(Failure::Invalid(format!("{url}: {}", response.status()))),
        Ok(Err(e)) => Err(Failure::Invalid(format!("{url}: {e}"))),
        Err(_) => Err(Failure::Invalid(format!(
            "{url}: no answer within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}
