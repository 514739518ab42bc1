//! Scopes, and what a request needs before its handler runs ([`Access`]).
//!
//! What each route and RPC method needs is in the API's one table
//! ([`crate::api`]); a method name that is no method needs
//! `operator.admin`. An empty scope set grants nothing, on every transport.

use std::fmt;

/// What a key may do (OpenClaw's operator scopes).
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
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Approvals];

    /// The name, as keys and docs spell it (`operator.read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::Admin => "operator.admin",
            Scope::Approvals => "operator.approvals",
        }
    }

    /// The scope called `s`.
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
    /// No scope.
    pub const NONE: Scopes = Scopes(0);

    /// Admin alone (which allows everything).
    pub fn admin() -> Self {
        Scopes::NONE.with(Scope::Admin)
    }

    /// This set with `s` added.
    pub fn with(self, s: Scope) -> Self {
        Scopes(self.0 | 1 << s as u8)
    }

    /// Whether `s` is in the set itself (not implied by admin).
    pub fn contains(self, s: Scope) -> bool {
        self.0 & (1 << s as u8) != 0
    }

    /// Whether the set holds no scope.
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

    /// The names of the scopes in the set.
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
    /// One scope (or admin).
    Needs(Scope),
    /// Either of two scopes (`/v1/models`: readers, and the agents that
    /// write, which list models before their first call).
    EitherOf(Scope, Scope),
    /// A path no route serves: a typo gets its 404 once the caller has
    /// credentials, so probing without a key learns nothing.
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
    fn unknown_scope_names_are_errors() {
        assert!(Scopes::parse_list("operator.red").is_err());
        assert!(Scopes::parse_list("admin").is_err());
        let both = Scopes::parse_list("operator.read, operator.write").unwrap();
        assert_eq!(both.to_string(), "operator.read,operator.write");
    }
}
