//! The HTTP client side of an attempt: one request to a provider and its
//! answer, through reqwest or, for plain-`http` upstreams, hyper directly.
//!
//! reqwest wraps hyper's pooled client in layers this gateway does not use
//! (redirects and retries are switched off, there is no proxy on loopback)
//! but still pays for on every request: the URL is printed and parsed back
//! three times (request URI, redirect policy, response URL). On the local
//! benchmark that was about a quarter of moltgate's own instructions per
//! request (see BENCHMARKS.md). So an `http://` upstream (Ollama, a local
//! OpenAI-compatible server) is called through `hyper_util`'s pooled client
//! directly, with the same connection settings and the same request headers
//! as reqwest would send. reqwest stays for `https` (its TLS setup) and
//! whenever a proxy is configured in the environment (reqwest honours
//! `HTTP_PROXY`/`ALL_PROXY`), so nothing a user configures changes meaning.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The `User-Agent` sent upstream (both clients).
pub const USER_AGENT: &str = concat!("moltgate/", env!("CARGO_PKG_VERSION"));

/// Connection settings shared by both clients.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a connection may take.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

/// The reqwest client (used for `https` upstreams, proxies and probes).
pub fn reqwest_client(
    s: Settings,
    resolver: std::sync::Arc<super::ssrf::GuardedResolver>,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        // Every resolution is checked against the SSRF rules.
        .dns_resolver(resolver)
        .connect_timeout(s.connect_timeout)
        .pool_idle_timeout(s.pool_idle_timeout)
        .tcp_nodelay(true)
        // Never follow redirects with a key attached; retries are ours to decide.
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .user_agent(USER_AGENT)
        .build()
}

/// Environment variables that make reqwest send `http://` requests through
/// a proxy (`REQUEST_METHOD` aside, which only disables `HTTP_PROXY`).
const HTTP_PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// Whether requests to `url` may bypass reqwest: plain `http` and no proxy
/// variable set at all (even one that `NO_PROXY` would exempt).
pub fn direct_ok(url: &reqwest::Url) -> bool {
    url.scheme() == "http"
        && HTTP_PROXY_VARS
            .iter()
            .all(|v| std::env::var_os(v).is_none())
}

/// hyper's pooled client with reqwest's connection settings.
pub struct Direct {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
}

impl Direct {
    /// A pooled client with the settings `s`.
    pub fn new(s: Settings) -> Self {
        let mut http = HttpConnector::new();
        // As reqwest sets them: per-address connect timeout, TCP keepalive
        // 15 s, TCP_NODELAY, and any scheme (it checks schemes itself).
        http.set_connect_timeout(Some(s.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = Connector {
            http,
            timeout: s.connect_timeout,
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(s.pool_idle_timeout)
                // `Host` is set by `Target::request`, computed once.
                .set_host(false)
                .build(connector);
        Self { client }
    }

    /// Sends `req`; the answer once its headers have arrived.
    pub async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<Response, Error> {
        self.client
            .request(req)
            .await
            .map(Response::Direct)
            .map_err(Error::Send)
    }
}

/// A parsed upstream URL and the headers every request to it carries.
pub struct Target {
    uri: hyper::Uri,
    host: HeaderValue,
}

impl Target {
    /// The target of `url`; `None` if hyper cannot parse it.
    pub fn new(url: &reqwest::Url) -> Option<Self> {
        let uri: hyper::Uri = url.as_str().parse().ok()?;
        // What hyper_util's client would put in `Host` (`set_host(true)`).
        let host = match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) if p != 80 => format!("{h}:{p}"),
            (Some(h), _) => h.to_string(),
            (None, _) => return None,
        };
        Some(Self {
            uri,
            host: HeaderValue::from_str(&host).ok()?,
        })
    }

    /// A POST with `headers` first, then what reqwest would add after them:
    /// its default `Accept` and `User-Agent`, then hyper's `Host`.
    pub fn post(
        &self,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> hyper::Request<Full<Bytes>> {
        let mut req = hyper::Request::new(Full::new(body));
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        for (k, v) in headers {
            h.append(k, v);
        }
        h.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        h.insert(reqwest::header::HOST, self.host.clone());
        req
    }
}

/// `HttpConnector` under one overall connect deadline (DNS included), as
/// reqwest's `connect_timeout` is.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    timeout: Duration,
}

/// The connect deadline passed (reqwest's `is_connect() && is_timeout()`).
#[derive(Debug)]
struct ConnectTimedOut;

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation timed out")
    }
}

impl StdError for ConnectTimedOut {}

type ConnectFuture = Pin<
    Box<
        dyn Future<Output = Result<hyper_util::rt::TokioIo<tokio::net::TcpStream>, BoxError>>
            + Send,
    >,
>;

impl tower::Service<hyper::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<hyper::Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: hyper::Uri) -> Self::Future {
        let connecting = tower::Service::<hyper::Uri>::call(&mut self.http, dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

/// An upstream answer whose headers have arrived.
pub enum Response {
    /// From reqwest.
    Reqwest(reqwest::Response),
    /// From hyper directly.
    Direct(hyper::Response<hyper::body::Incoming>),
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Response::Reqwest(r) => r.status(),
            Response::Direct(r) => r.status(),
        }
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        match self {
            Response::Reqwest(r) => r.headers(),
            Response::Direct(r) => r.headers(),
        }
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        match self {
            Response::Reqwest(r) => r.chunk().await.map_err(Error::Reqwest),
            Response::Direct(r) => loop {
                match r.body_mut().frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(Error::Body(e)),
                    // Trailers and unknown frames are skipped, as reqwest does.
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }

    /// The body, as a stream of pieces.
    pub fn bytes_stream(self) -> Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>> {
        use futures_util::StreamExt;
        match self {
            Response::Reqwest(r) => Box::pin(r.bytes_stream().map(|r| r.map_err(Error::Reqwest))),
            Response::Direct(r) => Box::pin(
                r.into_body()
                    .into_data_stream()
                    .map(|r| r.map_err(Error::Body)),
            ),
        }
    }
}

/// A failed request or body read, from either client.
#[derive(Debug)]
pub enum Error {
    /// reqwest's request or body read failed.
    Reqwest(reqwest::Error),
    /// hyper's client could not send the request.
    Send(hyper_util::client::legacy::Error),
    /// hyper's body read failed.
    Body(hyper::Error),
}

impl Error {
    /// Connecting took longer than the connect timeout.
    pub fn is_connect_timeout(&self) -> bool {
        match self {
            Error::Reqwest(e) => e.is_connect() && e.is_timeout(),
            Error::Send(e) => e.is_connect() && chain_has_timeout(e),
            Error::Body(_) => false,
        }
    }

    /// The innermost error message ("Connection refused (os error 111)"),
    /// never a URL (reqwest puts it in its top-level message; hyper has none).
    pub fn cause(self) -> String {
        match self {
            Error::Reqwest(e) => super::provider::root_cause(&e.without_url()),
            other => other.cause_ref(),
        }
    }

    /// [`Error::cause`] for a borrowed error: reqwest's URL cannot be removed
    /// from a borrowed error, so a message that has one is replaced.
    pub fn cause_ref(&self) -> String {
        let inner = match self {
            Error::Reqwest(e) => super::provider::root_cause(e),
            Error::Send(e) => super::provider::root_cause(e),
            Error::Body(e) => super::provider::root_cause(e),
        };
        if inner.contains("://") {
            "connection error".into()
        } else {
            inner
        }
    }
}

fn chain_has_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<ConnectTimedOut>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Reqwest(e) => e.fmt(f),
            Error::Send(e) => e.fmt(f),
            Error::Body(e) => e.fmt(f),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Reqwest(e) => Some(e),
            Error::Send(e) => Some(e),
            Error::Body(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_as_hyper_would_set_it() {
        let t = |u: &str| {
            Target::new(&reqwest::Url::parse(u).unwrap())
                .unwrap()
                .host
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            t("http://127.0.0.1:11434/v1/chat/completions"),
            "127.0.0.1:11434"
        );
        assert_eq!(t("http://localhost/v1/chat/completions"), "localhost");
        assert_eq!(t("http://localhost:80/v1/chat/completions"), "localhost");
        assert_eq!(t("http://[::1]:8080/v1/chat/completions"), "[::1]:8080");
    }
}
