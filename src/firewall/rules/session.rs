//! Session fixation (943): setting a session cookie through input or
//! passing a session id parameter with an off-site Referer.

use super::{re, Category, Rule, Transform};
use crate::firewall::fields::loc;
use crate::firewall::score::Severity;

use Category::SessionFixation as S;
use Severity::Critical as C;

/// Session fixation rules.
pub const RULES: &[Rule] = &[
    re(943100, S, C, 1, loc::INPUT, Transform::Text,
        r"\.cookie\b.*?;\W*?(?:expires|domain)\W*?=|\bhttp-equiv\W+set-cookie\b|document\.cookie\s*=|\bset-cookie\s*:",
        "Setting a cookie from input (`document.cookie=`, `<meta http-equiv=Set-Cookie>`)."),
    re(943110, S, C, 1, loc::ARG_NAMES, Transform::Text,
        r"^(?:jsessionid|aspsessionid|asp\.net_sessionid|phpsession|phpsessid|weblogicsession|session_id|session-id|cfid|cftoken|cfsid|jservsession|jwsession|sid|sessionid|sess_id|s_id)$",
        "A session id passed as an argument (fixation through links); the gateway uses bearer auth."),
];
