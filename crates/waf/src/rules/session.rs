//! Session fixation (943): setting a session cookie through input, or
//! passing a session id as a parameter from an off-site link (or with no
//! Referer at all). A session id parameter arriving from the site's own
//! pages is ordinary URL-rewriting session tracking.

use super::{code, re, Category, Rule, Transform};
use crate::fields::{loc, Field};
use crate::score::Severity;
use crate::{Hits, RequestView};

use Category::SessionFixation as S;
use Severity::Critical as C;

/// Session fixation rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(943100, S, C, 1, loc::INPUT, Transform::Text,
        r"\.cookie\b.*?;\W*?(?:expires|domain)\W*?=|\bhttp-equiv\W+set-cookie\b|document\.cookie\s*=|\bset-cookie\s*:",
        "Setting a cookie from input (`document.cookie=`, `<meta http-equiv=Set-Cookie>`)."),
    code(943110, S, C, 1, loc::ARG_NAMES,
        "A session id parameter (`jsessionid`, `PHPSESSID`) with a Referer from another host: fixation through a planted link."),
    code(943120, S, C, 1, loc::ARG_NAMES,
        "A session id parameter with no Referer at all: fixation link opened directly."),
];

const SESSION_PARAMS: &[&str] = &[
    "jsessionid",
    "aspsessionid",
    "asp.net_sessionid",
    "phpsession",
    "phpsessid",
    "weblogicsession",
    "session_id",
    "session-id",
    "cfid",
    "cftoken",
    "cfsid",
    "jservsession",
    "jwsession",
    "sessionid",
    "sess_id",
];

/// Framework session cookies and tokens, by name shape: `*session*`,
/// `*.sid`, `*sessid`, `*_sess`, `*login_token`, `*session-token`.
fn is_session_param(name: &str) -> bool {
    let n = name.trim();
    SESSION_PARAMS.contains(&n)
        || n.contains("session")
        || n.ends_with(".sid")
        || n.ends_with("_sid")
        || n.ends_with("sessid")
        || n.ends_with("_sess")
        || n.ends_with(".sess")
        || n.ends_with("login_token")
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.trim_start_matches('/');
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    authority.split(':').next().unwrap_or(authority)
}

/// Checks session id parameters against the Referer.
pub fn check(req: &RequestView, fields: &[Field], hits: &mut Hits<'_>) {
    let Some(f) = fields
        .iter()
        .find(|f| f.loc & loc::ARG_NAMES != 0 && is_session_param(&f.norm.text))
    else {
        return;
    };
    match req.header_str("referer") {
        // Without any Referer only the classic names count: generic
        // `*session*` parameters are common in API clients.
        None if SESSION_PARAMS.contains(&f.norm.text.trim()) => {
            hits.hit(943120, &f.name, &f.norm.text)
        }
        None => {}
        Some(r) => {
            let host = req.header_str("host").unwrap_or_default();
            let host = host
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let rhost = host_of(r.trim()).to_ascii_lowercase();
            if !rhost.is_empty() && rhost != host {
                hits.hit(943110, &f.name, &format!("{} via {rhost}", f.norm.text));
            }
        }
    }
}
