//! Listings in pages, as AWS answers them and moto does not: the proxy asks moto for the whole
//! list, hands the client one page of at most `size` items, and a next token that says where
//! the next page starts. Secrets Manager's ListSecrets is the exception: moto pages it itself
//! (100 by default), so the proxy only caps its `MaxResults`.

use serde_json::Value;

use crate::call::{Call, Service};

/// The proxy's next tokens: an offset into the full listing. Opaque to the client, as AWS's are.
const TOKEN_PREFIX: &str = "bench-proxy-page-";

/// Where a paged listing keeps its parts, by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A JSON-protocol listing moto answers whole: the proxy cuts the page.
    Json {
        items: &'static str,
        token: &'static str,
        max: &'static str,
    },
    /// EFS's REST listing: token and page size in the query string, items in the JSON answer.
    Query {
        items: &'static str,
        token: &'static str,
        max: &'static str,
    },
    /// A listing moto pages itself; the proxy caps its page size.
    Native { max: &'static str },
}

impl Listing {
    /// The listings AWS pages at 100 and moto answers in one page.
    #[must_use]
    pub fn of(call: &Call) -> Option<Self> {
        Some(match (call.service, call.operation.as_str()) {
            (Service::Ecs, "ListTasks") => Self::Json {
                items: "taskArns",
                token: "nextToken",
                max: "maxResults",
            },
            (Service::Ecs, "ListTaskDefinitions") => Self::Json {
                items: "taskDefinitionArns",
                token: "nextToken",
                max: "maxResults",
            },
            (Service::Efs, "DescribeAccessPoints") => Self::Query {
                items: "AccessPoints",
                token: "NextToken",
                max: "MaxResults",
            },
            (Service::SecretsManager, "ListSecrets") => Self::Native { max: "MaxResults" },
            _ => return None,
        })
    }
}

/// The page a request asks for: where it starts and how many items it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub size: usize,
}

fn offset_of(token: &str) -> Option<usize> {
    token.strip_prefix(TOKEN_PREFIX)?.parse().ok()
}

/// The page size: the client's own maximum when smaller than AWS's.
fn size_of(asked: Option<u64>, size: usize) -> usize {
    asked
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .map_or(size, |n| n.min(size))
}

/// Takes the proxy's token and page size out of a JSON request body (moto would not know the
/// token), or, for a listing moto pages itself, caps its page size; returns the page asked for.
pub fn take_json(body: &mut Value, listing: Listing, size: usize) -> Option<Page> {
    let object = body.as_object_mut()?;
    match listing {
        Listing::Json { token, max, .. } => {
            let offset = match object.get(token).and_then(Value::as_str).map(offset_of) {
                Some(Some(offset)) => offset,
                // A token the proxy did not make is moto's: leave the request alone.
                Some(None) => return None,
                None => 0,
            };
            object.remove(token);
            let asked = object.remove(max).and_then(|v| v.as_u64());
            Some(Page {
                offset,
                size: size_of(asked, size),
            })
        }
        Listing::Native { max } => {
            let asked = object.get(max).and_then(Value::as_u64);
            object.insert(max.to_owned(), Value::from(size_of(asked, size)));
            None
        }
        Listing::Query { .. } => None,
    }
}

/// The same for a query string: returns the query to send on and the page asked for.
#[must_use]
pub fn take_query(query: &str, listing: Listing, size: usize) -> (String, Option<Page>) {
    let Listing::Query { token, max, .. } = listing else {
        return (query.to_owned(), None);
    };
    let mut offset = 0;
    let mut asked = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == token {
            match offset_of(v) {
                Some(o) => offset = o,
                None => return (query.to_owned(), None),
            }
        } else if k == max {
            asked = v.parse().ok();
        } else {
            kept.push(pair);
        }
    }
    (
        kept.join("&"),
        Some(Page {
            offset,
            size: size_of(asked, size),
        }),
    )
}

/// Cuts a whole listing down to the page asked for, with a next token when more follow.
/// Returns how many items the page holds.
pub fn cut(answer: &mut Value, listing: Listing, page: Page) -> Option<usize> {
    let (Listing::Json { items, .. } | Listing::Query { items, .. }) = listing else {
        return None;
    };
    let next_key = match listing {
        Listing::Json { .. } => "nextToken",
        _ => "NextToken",
    };
    let object = answer.as_object_mut()?;
    let all = object.get_mut(items)?.as_array_mut()?;
    let total = all.len();
    let start = page.offset.min(total);
    let end = start.saturating_add(page.size.max(1)).min(total);
    let kept: Vec<Value> = all.drain(start..end).collect();
    let n = kept.len();
    *all = kept;
    if end < total {
        object.insert(
            next_key.to_owned(),
            Value::from(format!("{TOKEN_PREFIX}{end}")),
        );
    } else {
        object.remove(next_key);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TASKS: Listing = Listing::Json {
        items: "taskArns",
        token: "nextToken",
        max: "maxResults",
    };

    /// Pages a listing of `n` items the way a client follows next tokens.
    fn follow(n: usize, size: usize) -> Vec<usize> {
        let mut pages = Vec::new();
        let mut request = json!({"cluster": "c"});
        loop {
            let page = take_json(&mut request, TASKS, size).unwrap_or(Page { offset: 0, size });
            assert!(
                request.get("nextToken").is_none(),
                "moto never sees the token"
            );
            let mut answer = json!({"taskArns": (0..n).collect::<Vec<_>>()});
            pages.push(cut(&mut answer, TASKS, page).unwrap_or(0));
            match answer.get("nextToken") {
                Some(token) => request = json!({"cluster": "c", "nextToken": token}),
                None => return pages,
            }
        }
    }

    #[test]
    fn a_listing_of_250_items_comes_back_in_3_pages() {
        assert_eq!(follow(250, 100), vec![100, 100, 50]);
        assert_eq!(follow(100, 100), vec![100]);
        assert_eq!(follow(0, 100), vec![0]);
    }

    #[test]
    fn a_smaller_max_results_of_the_client_wins_and_moto_s_own_tokens_pass() {
        let mut request = json!({"maxResults": 10});
        assert_eq!(
            take_json(&mut request, TASKS, 100),
            Some(Page {
                offset: 0,
                size: 10
            })
        );
        assert_eq!(request, json!({}));
        let mut theirs = json!({"nextToken": "abc"});
        assert_eq!(take_json(&mut theirs, TASKS, 100), None);
        let mut secrets = json!({"MaxResults": 500});
        take_json(&mut secrets, Listing::Native { max: "MaxResults" }, 100);
        assert_eq!(secrets, json!({"MaxResults": 100}));
    }

    #[test]
    fn the_query_listing_keeps_its_other_parameters() {
        let listing = Listing::Query {
            items: "AccessPoints",
            token: "NextToken",
            max: "MaxResults",
        };
        let (query, page) = take_query(
            "FileSystemId=fs-1&NextToken=bench-proxy-page-200",
            listing,
            100,
        );
        assert_eq!(query, "FileSystemId=fs-1");
        assert_eq!(
            page,
            Some(Page {
                offset: 200,
                size: 100
            })
        );
        let mut answer = json!({"AccessPoints": (0..250).collect::<Vec<_>>()});
        assert_eq!(
            cut(
                &mut answer,
                listing,
                page.unwrap_or(Page { offset: 0, size: 1 })
            ),
            Some(50)
        );
        assert!(answer.get("NextToken").is_none());
    }
}
