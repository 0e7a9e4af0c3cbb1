//! Serving the router over TCP with the two limits `axum::serve` does not have: a deadline for
//! a connection's request headers, and a cap on connections served at once. Without them, a
//! client that opens connections and never finishes its headers holds them open forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How a server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A connection that has not sent a request's headers within this is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` resolves; then stops accepting,
/// lets each connection finish the request in flight, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // The permit is taken before accepting, so that connections beyond the cap wait in the
        // kernel's backlog instead of costing a task each.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let stop_asked = async move {
                // Mapped at once: the guard `wait_for` returns must not live across an await.
                let _ = stopped.wait_for(|s| *s).await.map(|_| ());
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop_asked => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: ConnectionLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        addr
    }

    async fn answered(stream: &mut TcpStream, within: Duration) -> Option<String> {
        let mut buffer = vec![0u8; 1024];
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_connection_that_never_finishes_its_headers_is_closed_after_the_timeout() {
        let addr = start(ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            max_connections: 8,
        })
        .await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let reply = answered(&mut slow, Duration::from_secs(5)).await;
        assert!(
            reply.is_some_and(|r| !r.contains("200 OK")),
            "the connection was closed (possibly with a 408), not served"
        );
        let mut next = vec![0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut next)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "closed: {closed:?}"
        );

        // One that sends nothing at all is closed too, after the same time.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let opened = std::time::Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut next)).await;
        assert!(
            matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
            "closed: {closed:?}"
        );
        assert!(
            opened.elapsed() >= Duration::from_millis(150),
            "{:?}",
            opened.elapsed()
        );

        // A client that takes less than the timeout is served.
        let mut prompt = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        prompt
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let reply = answered(&mut prompt, Duration::from_secs(5)).await;
        assert!(reply.is_some_and(|r| r.starts_with("HTTP/1.1 200")));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let addr = start(ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 2,
        })
        .await;
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            answered(&mut third, Duration::from_millis(300)).await,
            None,
            "the third connection is not served while two are open"
        );
        drop(first);
        let reply = answered(&mut third, Duration::from_secs(5)).await;
        assert!(
            reply.is_some_and(|r| r.starts_with("HTTP/1.1 200")),
            "served once one closed"
        );
    }
}
