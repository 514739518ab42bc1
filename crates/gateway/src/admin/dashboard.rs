//! The admin dashboard at `/dashboard`: one static page, a script and a
//! stylesheet, embedded in the binary and served with a strict CSP (no
//! inline code, nothing from another origin).
//!
//! The page itself holds no data and is public
//! ([`crate::api::Route::access`]); everything it shows comes
//! from the authenticated RPC (`/ws`, or the `/api/` REST mirror), which
//! admits only admins: the password session the page's login form opens,
//! or an admin key.

use std::path::Path;
use std::sync::LazyLock;

use axum::extract::Path as UrlPath;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The dashboard's own policy, kept by the global header layer (which only
/// fills in headers a handler did not set).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("dashboard/index.html"),
};

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/app.css"),
    },
];

/// Strong validators: a digest of each body, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS)
        .map(|a| {
            let d = Sha256::digest(a.body.as_bytes());
            HeaderValue::from_str(&format!("\"{}\"", &hex::encode(d)[..20]))
                .expect("hex is a valid header value")
        })
        .collect()
});

/// `GET /dashboard`.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &ETAGS[0], &headers)
}

/// `GET /dashboard/assets/{name}`.
pub async fn asset(UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(&ASSETS[i], &ETAGS[i + 1], &headers),
        None => {
            let mut r = (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such dashboard asset\n",
            )
                .into_response();
            common_headers(r.headers_mut());
            r
        }
    }
}

fn common_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // Revalidate every time (a 304 costs one round trip); a new binary's
    // page is never mixed with an old cached script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn serve(a: &Asset, etag: &HeaderValue, req: &HeaderMap) -> Response {
    let fresh = req
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = r.headers_mut();
    common_headers(h);
    h.insert(header::ETAG, etag.clone());
    r
}

/// The newest `n` lines of the breaker's audit log (`audit.jsonl`), oldest
/// first, without their chain hashes. Best effort: a missing or damaged log
/// gives what could be read (`moltguard audit-log verify` judges it).
pub fn audit_tail(state_dir: &Path, n: usize) -> Value {
    use std::io::{Read, Seek, SeekFrom};
    let read = || -> std::io::Result<Vec<Value>> {
        let mut f = std::fs::File::open(state_dir.join("audit.jsonl"))?;
        let len = f.metadata()?.len();
        let window = len.min(256 << 10);
        f.seek(SeekFrom::Start(len - window))?;
        let mut buf = Vec::with_capacity(window as usize);
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // A window that starts mid-line drops the partial first line.
        if window < len && !lines.is_empty() {
            lines.remove(0);
        }
        let start = lines.len().saturating_sub(n);
        Ok(lines[start..]
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("hash");
                    o.remove("prev");
                }
                v
            })
            .collect())
    };
    Value::Array(read().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_load_nothing_from_elsewhere_and_run_no_inline_code() {
        for a in std::iter::once(&INDEX).chain(ASSETS) {
            // The one URL allowed is the SVG namespace the script names.
            let body = a.body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("://"), "{} names another origin", a.name);
            assert!(!body.contains("@import"), "{}", a.name);
        }
        let inline = regex::Regex::new(r#"(?i)<script>|<style|\sstyle=|\son[a-z]+="#).unwrap();
        assert!(!inline.is_match(INDEX.body), "inline code in index.html");
        assert!(INDEX.body.contains(r#"src="/dashboard/assets/app.js""#));
        assert!(INDEX.body.contains(r#"href="/dashboard/assets/app.css""#));
    }

    #[test]
    fn audit_tail_reads_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(audit_tail(dir.path(), 5), Value::Array(vec![]));
        let mut text = String::new();
        for i in 1..=30 {
            text.push_str(&format!(
                "{{\"seq\":{i},\"to\":\"open\",\"prev\":\"x\",\"hash\":\"y\"}}\n"
            ));
        }
        text.push_str("not json\n");
        std::fs::write(dir.path().join("audit.jsonl"), text).unwrap();
        let v = audit_tail(dir.path(), 20);
        let rows = v.as_array().unwrap();
        // 20 lines asked, one of which does not parse.
        assert_eq!(rows.len(), 19);
        assert_eq!(rows[0]["seq"], 12);
        assert_eq!(rows[18]["seq"], 30);
        assert!(rows[0].get("hash").is_none());
    }
}
