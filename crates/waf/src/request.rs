//! A transport-independent view of one HTTP request.
//!
//! The firewall never sees hyper or axum types: the gateway (or the corpus
//! runner, or a test) builds a [`RequestView`] and hands it to
//! [`super::Firewall::inspect`]. Everything is kept raw (bytes, undecoded
//! request target) because decoding is the normaliser's job, and because
//! malformed requests are exactly what protocol rules look at.

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;

/// One request as the firewall sees it.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    /// Method exactly as sent (may be lowercase, padded or bogus).
    pub method: String,
    /// Raw request target (`/path?query`, `*`, `host:port` or absolute URI), undecoded.
    pub target: String,
    /// Protocol version token as sent, e.g. `HTTP/1.1`. Empty for HTTP/0.9.
    pub version: String,
    /// Headers in wire order, names as sent, values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Request body (already de-chunked by the transport, if it was chunked).
    pub body: Bytes,
    /// Peer address, for incidents.
    pub client_ip: Option<IpAddr>,
    /// Request id, for incidents.
    pub request_id: Option<String>,
}

/// The protocol token (`HTTP/1.1`), as `http`'s `Debug` spells it, without
/// going through the formatter for the known versions.
fn version_token(v: http::Version) -> String {
    use http::Version;
    match v {
        Version::HTTP_09 => "HTTP/0.9".to_string(),
        Version::HTTP_10 => "HTTP/1.0".to_string(),
        Version::HTTP_11 => "HTTP/1.1".to_string(),
        Version::HTTP_2 => "HTTP/2.0".to_string(),
        Version::HTTP_3 => "HTTP/3.0".to_string(),
        other => format!("{other:?}"),
    }
}

impl RequestView {
    /// A minimal request: method, target, `HTTP/1.1`, no headers, no body.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            version: "HTTP/1.1".to_string(),
            ..Self::default()
        }
    }

    /// Builder: append a header.
    pub fn header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    /// Builder: set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Builder: set the client address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Builder: set the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Builds a view from `http` request parts and a collected body.
    pub fn from_http_parts(parts: &http::request::Parts, body: Bytes) -> Self {
        let target = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| parts.uri.to_string());
        let mut headers: Vec<(String, Vec<u8>)> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        // HTTP/2 and HTTP/3 carry the host in `:authority`, not in a header.
        if !parts.headers.contains_key(http::header::HOST) {
            if let Some(authority) = parts.uri.authority() {
                headers.push(("host".to_string(), authority.as_str().as_bytes().to_vec()));
            }
        }
        Self {
            method: parts.method.as_str().to_string(),
            target,
            version: version_token(parts.version),
            headers,
            body,
            client_ip: None,
            request_id: None,
        }
    }

    /// All values of a header, case-insensitive name match, in wire order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// First value of a header as (lossy) text.
    pub fn header_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .iter()
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| super::fields::text_of(v))
    }

    /// Path part of the target (before `?`), raw.
    pub fn raw_path(&self) -> &str {
        let t = self.target.as_str();
        let t = t.split('#').next().unwrap_or(t);
        t.split('?').next().unwrap_or(t)
    }

    /// Query part of the target (after the first `?`), raw; empty if none.
    pub fn raw_query(&self) -> &str {
        let t = self.target.as_str();
        let t = t.split('#').next().unwrap_or(t);
        match t.find('?') {
            Some(i) => &t[i + 1..],
            None => "",
        }
    }

    /// Media type of the body, lowercased, without parameters.
    pub fn content_type(&self) -> Option<Cow<'_, str>> {
        fn media(ct: &str) -> &str {
            ct.split(';').next().unwrap_or("").trim()
        }
        Some(match self.header_str("content-type")? {
            Cow::Borrowed(ct) => super::normalize::ascii_lowercase(media(ct)),
            Cow::Owned(ct) => Cow::Owned(media(&ct).to_ascii_lowercase()),
        })
    }
}
