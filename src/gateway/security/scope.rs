//! Scopes and the table of what each route and method needs.
//!
//! The rule: a route or RPC method that is not in [`required`] needs
//! `operator.admin`. An empty scope set grants nothing, on every transport.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Status and lists.
    Read,
    /// Chat and jobs.
    Write,
    /// Everything, including security changes.
    Admin,
    /// Approving agent actions.
    Approvals,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Approvals];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::Admin => "operator.admin",
            Scope::Approvals => "operator.approvals",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes (a small bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn admin() -> Self {
        Scopes::NONE.with(Scope::Admin)
    }

    pub fn with(self, s: Scope) -> Self {
        Scopes(self.0 | 1 << s as u8)
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & (1 << s as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Admin implies every other scope; nothing else implies anything.
    pub fn allows(self, needed: Scope) -> bool {
        self.contains(Scope::Admin) || self.contains(needed)
    }

    /// Parses `operator.read,operator.write`; unknown names are an error so
    /// a typo never silently grants less (or more) than meant.
    pub fn parse_list(s: &str) -> Result<Scopes, String> {
        let mut out = Scopes::NONE;
        for part in s.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let scope = Scope::parse(part).ok_or_else(|| {
                format!(
                    "unknown scope {part:?}; scopes are {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            out = out.with(scope);
        }
        Ok(out)
    }

    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// What a request needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Liveness, readiness, login: no credentials.
    Public,
    /// Any valid credential (`security.admin.check`).
    Authenticated,
    Needs(Scope),
    /// Either of two scopes (`/v1/models`: readers, and the agents that
    /// write, which list models before their first call).
    EitherOf(Scope, Scope),
    /// Not in the table: an unknown path (a typo gets its 404 once the
    /// caller is authenticated) or a route someone forgot to list, which
    /// admission holds to admin ([`super::admission::admit`], step 8).
    Unlisted,
}

impl Access {
    /// Whether an authenticated caller holding `scopes` may go on.
    pub fn granted_to(self, scopes: Scopes) -> bool {
        match self {
            Access::Public | Access::Authenticated => true,
            Access::Needs(s) => scopes.allows(s),
            Access::EitherOf(a, b) => scopes.allows(a) || scopes.allows(b),
            // An empty scope set grants nothing, not even a 404.
            Access::Unlisted => !scopes.is_empty(),
        }
    }

    /// The scope a refusal names.
    pub fn needed(self) -> String {
        match self {
            Access::Needs(s) => s.to_string(),
            Access::EitherOf(a, b) => format!("{a} or {b}"),
            _ => "any".into(),
        }
    }
}

/// The scope an RPC method needs; methods not listed need admin.
pub fn method_access(method: &str) -> Access {
    match method {
        "security.admin.check" => Access::Authenticated,
        "providers.status" | "security.lockdown.status" => Access::Needs(Scope::Read),
        "models.list" => Access::EitherOf(Scope::Read, Scope::Write),
        "providers.test" | "chat" => Access::Needs(Scope::Write),
        _ => Access::Needs(Scope::Admin),
    }
}

/// Whether an RPC method changes something (or spends money upstream):
/// such methods take POST only over HTTP, never GET, so that a link or an
/// `<img>` on another site cannot trigger them with the session cookie.
pub fn changes_state(method: &str) -> bool {
    matches!(
        method,
        "security.lockdown.toggle"
            | "security.emergency.toggle"
            | "security.blocked.add"
            | "security.blocked.remove"
            | "providers.test"
    )
}

/// The scope an HTTP route needs. Paths not listed need credentials (so
/// probing them without a key learns nothing), and a matched route that is
/// not listed needs admin.
pub fn route_access(method: &str, path: &str) -> Access {
    // By path: a wrong method on a known path then gets its 405 from the
    // router, with the path's own access rule.
    match path {
        "/health" | "/ready" => Access::Public,
        "/api/login" | "/api/logout" => Access::Public,
        // The WebSocket authenticates in its first frame.
        "/ws" => Access::Public,
        p if crate::gateway::endpoint::Endpoint::of_path(p).is_some() => {
            Access::Needs(Scope::Write)
        }
        "/v1/models" | "/models" => Access::EitherOf(Scope::Read, Scope::Write),
        "/metrics" => Access::Needs(Scope::Read),
        // The page itself holds no data; every call it makes is checked.
        "/dashboard" | "/dashboard/" => Access::Public,
        p if p.starts_with("/dashboard/assets/") => Access::Public,
        p if p.starts_with("/api/") => {
            method_access(&rest_method_name(method, p).unwrap_or_default())
        }
        _ => Access::Unlisted,
    }
}

/// `/api/security/blocked/list` -> `security.blocked.list`; the REST mirror
/// of an RPC method is its name with dots as slashes.
pub fn rest_method_name(_http_method: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/")?.trim_end_matches('/');
    if rest.is_empty()
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'_')
    {
        return None;
    }
    Some(rest.replace('/', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_scopes_grant_nothing() {
        let none = Scopes::NONE;
        for s in Scope::ALL {
            assert!(!none.allows(s));
        }
        assert!(Scopes::parse_list("").unwrap().is_empty());
    }

    #[test]
    fn admin_implies_all_and_read_only_reads() {
        for s in Scope::ALL {
            assert!(Scopes::admin().allows(s));
        }
        let read = Scopes::parse_list("operator.read").unwrap();
        assert!(read.allows(Scope::Read));
        assert!(!read.allows(Scope::Write));
        assert!(!read.allows(Scope::Admin));
    }

    #[test]
    fn agents_that_write_may_list_models_and_nothing_else_read() {
        let write = Scopes::parse_list("operator.write").unwrap();
        let read = Scopes::parse_list("operator.read").unwrap();
        for path in ["/v1/models", "/models"] {
            let a = route_access("GET", path);
            assert!(a.granted_to(write) && a.granted_to(read), "{path}");
            assert!(!a.granted_to(Scopes::NONE), "{path}");
            assert_eq!(a.needed(), "operator.read or operator.write");
        }
        assert!(method_access("models.list").granted_to(write));
        assert!(!route_access("GET", "/metrics").granted_to(write));
        assert!(!method_access("providers.status").granted_to(write));
    }

    #[test]
    fn every_inference_endpoint_needs_write() {
        use crate::gateway::endpoint::Endpoint;
        for e in Endpoint::ALL {
            for path in e.paths() {
                let a = route_access("POST", path);
                assert_eq!(a, Access::Needs(Scope::Write), "{path}");
                assert!(!a.granted_to(Scopes::parse_list("operator.read").unwrap()));
            }
        }
    }

    #[test]
    fn unknown_scope_names_are_errors() {
        assert!(Scopes::parse_list("operator.red").is_err());
        assert!(Scopes::parse_list("admin").is_err());
        let both = Scopes::parse_list("operator.read, operator.write").unwrap();
        assert_eq!(both.to_string(), "operator.read,operator.write");
    }

    #[test]
    fn unlisted_routes_and_methods_need_admin() {
        assert_eq!(
            route_access("POST", "/v1/chat/completions"),
            Access::Needs(Scope::Write)
        );
        assert_eq!(route_access("GET", "/health"), Access::Public);
        assert_eq!(route_access("GET", "/.env"), Access::Unlisted);
        assert_eq!(
            route_access("POST", "/api/security/blocked/add"),
            Access::Needs(Scope::Admin)
        );
        assert_eq!(
            route_access("GET", "/api/providers/status"),
            Access::Needs(Scope::Read)
        );
        assert_eq!(
            route_access("GET", "/api/providers/%2e%2e"),
            Access::Needs(Scope::Admin)
        );
        assert_eq!(method_access("security.nope"), Access::Needs(Scope::Admin));
        assert_eq!(method_access("security.admin.check"), Access::Authenticated);
    }
}
