//! A minimal HTTP server with the request firewall in front of every route,
//! to run the CRS corpus over real HTTP until moltgate serves the firewall
//! itself. It shows the intended wiring: an axum middleware that collects
//! the body, builds a `RequestView` from the request parts, and answers 403
//! on `Verdict::Block` (logging the incident); everything else gets 200.
//!
//! ```text
//! cargo run --release --example waf_server -- 127.0.0.1:8099 &
//! cargo run --release --example waf_corpus -- --url 127.0.0.1:8099
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use moltguard::firewall::{Firewall, FirewallConfig, RequestView, Verdict};
use moltguard::gateway::inbound::config::FileSecurity;
use moltguard::gateway::inbound::SecurityConfig;

async fn firewall(
    State(fw): State<Arc<Firewall>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let limit = fw.config().max_body_bytes;
    let Ok(bytes) = to_bytes(body, limit).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let view = RequestView::from_http_parts(&parts, bytes.clone()).client_ip(peer.ip());
    match fw.inspect(&view) {
        Verdict::Allow => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Verdict::Block(b) => {
            eprintln!(
                "blocked rule={} category={} score={} field={} excerpt={:?} ip={:?}",
                b.rule_id, b.category, b.score, b.matched_field, b.redacted_excerpt, b.client_ip
            );
            (StatusCode::FORBIDDEN, "blocked\n").into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_string())
        .parse()?;
    // The firewall moltgate would run with this environment (its
    // SECURITY_FIREWALL, SECURITY_STRICT_MODE and SECURITY_PARANOIA_LEVEL).
    let env = moltguard::gateway::config::process_env();
    let sec = SecurityConfig::load(FileSecurity::default(), &env)?;
    let cfg = sec.firewall_config().unwrap_or_else(|| FirewallConfig {
        enabled: false,
        ..Default::default()
    });
    let fw = Arc::new(Firewall::new(cfg)?);
    let app = Router::new()
        .fallback(|| async { "ok\n" })
        .layer(middleware::from_fn_with_state(fw, firewall));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("waf_server listening on {addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
