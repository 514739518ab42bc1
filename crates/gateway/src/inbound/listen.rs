//! Accepting connections, with the limits one hostile host must not get
//! past: a header deadline, a cap per client address, and (in admission) a
//! body that must keep coming.
//!
//! - **Header deadline** (`GATEWAY_HEADER_TIMEOUT_MS`, 15 s): from the
//!   moment moltgate waits for a request's head (a new connection, or the
//!   next request on a kept-alive one) until the head is complete. A
//!   slowloris that sends a byte a second is closed at the deadline, however
//!   many bytes it trickles; an idle kept-alive connection is closed after
//!   the same time (hyper runs one timer for both).
//! - **Connections per address** (`GATEWAY_MAX_CONNECTIONS_PER_IP`, 64, far
//!   below the global `GATEWAY_MAX_CONNECTIONS`, 1000): the next one from the
//!   same address is answered `503 too_many_connections_from_address` and
//!   closed at once, so it never counts against everyone else. Peers in
//!   `TRUSTED_PROXIES` (nginx on loopback: every client of the edge comes
//!   from there) are exempt; the edge limits per client itself.
//! - The body deadline is in admission ([`super::admission`]):
//!   `GATEWAY_BODY_TIMEOUT_MS` (10 s) between two pieces of a body.
//!
//! HTTP/1.1 only (the edge speaks it to moltgate), with upgrades for the
//! WebSocket, keep-alive and pipelining.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tower::ServiceExt;

use super::admission::ConnMeta;
use super::layer::MakeService;
use crate::Gateway;

/// What a connection over the per-address cap is told before it is closed.
const TOO_MANY_FROM_ADDRESS: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "Content-Type: application/json\r\n",
    "Connection: close\r\n",
    "Retry-After: 5\r\n",
    "Content-Length: 158\r\n",
    "\r\n",
    r#"{"error":{"message":"too many open connections from your address; close some and retry","type":"overloaded_error","code":"too_many_connections_from_address"}}"#,
);

/// Serves `listener` until `shutdown` resolves, then lets open
/// connections finish their requests.
pub async fn serve_with_shutdown(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = crate::api::server::routes(gw.clone());
    let header_timeout = gw.security.cfg.header_timeout;
    let make = MakeService::new(gw.clone(), routes);
    let conns = gw.security.limits.connections.clone();
    // Told to finish when shutdown comes; waited for until every task is done.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = io.set_nodelay(true);
        let guard = match conns.try_open(peer, gw.security.is_trusted_proxy(peer.ip())) {
            Ok(g) => g,
            Err(_) => {
                refuse_over_cap(io);
                continue;
            }
        };
        let service = make.for_connection(ConnMeta::new(peer, guard));
        let service = TowerToHyperService::new(
            service.map_request(|req: Request<Incoming>| req.map(Body::new)),
        );
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    // Finish the request in flight, take no more.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// `accept` failed. Per-connection errors (reset before accept) are
/// nothing; running out of file descriptors is waited out, not spun on.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Answers a connection over the per-address cap and closes it, without
/// waiting on the client (which may be the one holding the others open).
fn refuse_over_cap(mut io: tokio::net::TcpStream) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = io.write_all(TOO_MANY_FROM_ADDRESS.as_bytes()).await;
            let _ = io.shutdown().await;
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let (head, body) = TOO_MANY_FROM_ADDRESS.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections_from_address");
    }
}
