//! Following `nextToken` to the last page, once for every listing.

use std::future::Future;

use crate::error::{AwsError, ErrorClass};

/// A listing that never ends is a bug on one side or the other; stop rather than spin.
const MAX_PAGES: usize = 100_000;

/// Calls `fetch` with each page's token (none for the first) until a page has no next token.
///
/// # Errors
/// The first failed page, or a token seen before (a cycle would loop forever), or more than
/// `MAX_PAGES` pages.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let fail = |message: String| AwsError {
        service: "AWS",
        operation: "pagination",
        code: None,
        message,
        class: ErrorClass::Transient,
    };
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = fetch(token.clone()).await?;
        items.extend(page);
        match next.filter(|t| !t.is_empty()) {
            Some(next) if !seen.insert(next.clone()) => {
                return Err(fail(format!(
                    "the next token {next:?} came back a second time"
                )));
            }
            Some(next) => token = Some(next),
            None => return Ok(items),
        }
    }
    Err(fail(format!("more than {MAX_PAGES} pages")))
}
