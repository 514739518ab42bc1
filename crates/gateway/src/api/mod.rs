//! The API moltgate serves, in one table: every HTTP route with its methods
//! and the access it needs ([`Route`]), and every RPC method with its scope
//! and whether it changes state ([`RpcMethod`]).
//!
//! The router ([`server::routes`]), admission's scope check
//! ([`access`]), the RPC dispatch ([`crate::admin::rpc::call`]),
//! the 404 text ([`not_found_message`]) and the tables in docs/GATEWAY.md
//! and docs/SECURITY.md (a golden test) are all built from here, so they
//! cannot drift apart: a route or method exists once, or not at all.

pub mod assemble;
pub mod endpoint;
pub mod errors;
pub mod infer;
pub mod json;
pub mod passthrough;
pub mod routes;
pub mod server;
pub mod stream;
pub mod validate;

use std::sync::LazyLock;

use crate::inbound::scope::{Access, Scope};
use endpoint::Endpoint;

/// One HTTP route (a handler, at one or more paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An OpenAI inference endpoint.
    Infer(Endpoint),
    /// `GET /v1/models`.
    Models,
    /// `GET /health`: liveness.
    Health,
    /// `GET /ready`: a usable provider.
    Ready,
    /// `GET /metrics`: Prometheus.
    Metrics,
    /// `POST /api/login`: a dashboard session.
    Login,
    /// `POST /api/logout`.
    Logout,
    /// `GET|POST /api/<method>`: the REST mirror of the RPC methods.
    Rpc,
    /// `GET /ws`: the RPC over a WebSocket.
    Ws,
    /// `GET /dashboard`: the page.
    Dashboard,
    /// `GET /dashboard/assets/<name>`: its script and styles.
    DashboardAsset,
}

impl Route {
    /// Every route, in the order the docs list them.
    pub const ALL: [Route; 14] = [
        Route::Infer(Endpoint::Chat),
        Route::Infer(Endpoint::Completions),
        Route::Infer(Endpoint::Embeddings),
        Route::Infer(Endpoint::Responses),
        Route::Models,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::Rpc,
        Route::Ws,
        Route::Login,
        Route::Logout,
        Route::Dashboard,
        Route::DashboardAsset,
    ];

    /// The path patterns (matchit's syntax, as axum's router takes them).
    pub fn patterns(self) -> &'static [&'static str] {
        match self {
            Route::Infer(e) => e.paths(),
            Route::Models => &["/v1/models"],
            Route::Health => &["/health"],
            Route::Ready => &["/ready"],
            Route::Metrics => &["/metrics"],
            Route::Login => &["/api/login"],
            Route::Logout => &["/api/logout"],
            Route::Rpc => &["/api/{*method}"],
            Route::Ws => &["/ws"],
            Route::Dashboard => &["/dashboard", "/dashboard/"],
            Route::DashboardAsset => &["/dashboard/assets/{name}"],
        }
    }

    /// The HTTP methods the route takes, in the order its `Allow` header
    /// lists them (a GET route answers HEAD too).
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Route::Infer(_) | Route::Login | Route::Logout => &["POST"],
            Route::Rpc => &["GET", "HEAD", "POST"],
            Route::Models
            | Route::Health
            | Route::Ready
            | Route::Metrics
            | Route::Ws
            | Route::Dashboard
            | Route::DashboardAsset => &["GET", "HEAD"],
        }
    }

    /// The methods as a reader names them: HEAD goes without saying.
    fn methods_text(self, or: &str) -> String {
        let named: Vec<&str> = self
            .methods()
            .iter()
            .copied()
            .filter(|m| *m != "HEAD")
            .collect();
        named.join(or)
    }

    /// What a request needs before the handler runs. For [`Route::Rpc`]
    /// that is the named method's ([`access`]).
    pub fn access(self) -> Access {
        match self {
            Route::Infer(_) => Access::Needs(Scope::Write),
            // Readers, and the agents that write, which list models
            // before their first call.
            Route::Models => Access::EitherOf(Scope::Read, Scope::Write),
            Route::Health | Route::Ready | Route::Login | Route::Logout => Access::Public,
            // The WebSocket authenticates in its first frame.
            Route::Ws => Access::Public,
            // The page itself holds no data; every call it makes is checked.
            Route::Dashboard | Route::DashboardAsset => Access::Public,
            Route::Metrics => Access::Needs(Scope::Read),
            // Unknown method names need admin: probing learns nothing.
            Route::Rpc => Access::Needs(Scope::Admin),
        }
    }

    /// Answered before every other check (bans aside): an orchestrator's
    /// probes must work in lockdown, with the breaker open and without keys.
    pub fn is_probe(self) -> bool {
        matches!(self, Route::Health | Route::Ready)
    }

    /// What the route is, for the docs' table (the 404 text names the
    /// routes clients call, not the dashboard's own).
    pub fn summary(self) -> &'static str {
        match self {
            Route::Infer(Endpoint::Chat) => "chat, non-streaming or `stream: true` (SSE)",
            Route::Infer(Endpoint::Completions) => "legacy text completions, passed through",
            Route::Infer(Endpoint::Embeddings) => "embeddings, passed through",
            Route::Infer(Endpoint::Responses) => "the Responses API, passed through",
            Route::Models => "aliases and each provider's default model (no upstream call)",
            Route::Health => "liveness: 200 while the process serves",
            Route::Ready => {
                "200 if at least one provider has its key and a closed/half-open circuit, else 503"
            }
            Route::Metrics => "Prometheus text format",
            Route::Rpc => {
                "the RPC methods as REST: `security.blocked.list` is `/api/security/blocked/list`"
            }
            Route::Ws => "the RPC methods over a WebSocket, and security events",
            Route::Login => "`{\"password\"}`: a dashboard session cookie",
            Route::Logout => "ends the session",
            Route::Dashboard => "the admin dashboard",
            Route::DashboardAsset => "the dashboard's script and styles",
        }
    }

    /// Whether the 404 text names the route (the dashboard's own calls
    /// are not an API clients look for).
    fn in_not_found_text(self) -> bool {
        !matches!(self, Route::Login | Route::Logout | Route::DashboardAsset)
    }

    /// The route that serves `path` (with any method).
    pub fn of_path(path: &str) -> Option<Route> {
        static BY_PATH: LazyLock<matchit::Router<Route>> = LazyLock::new(|| {
            let mut by_path = matchit::Router::new();
            for route in Route::ALL {
                for pattern in route.patterns() {
                    by_path
                        .insert(*pattern, route)
                        .expect("patterns are distinct");
                }
            }
            by_path
        });
        BY_PATH.at(path).ok().map(|m| *m.value)
    }
}

/// The access a request for `path` needs, `route` being
/// [`Route::of_path`]'s answer: the route's, the RPC method's for
/// `/api/<method>`, and [`Access::Unlisted`] for a path no route serves
/// (a caller with credentials then gets the 404).
pub fn access(route: Option<Route>, path: &str) -> Access {
    match route {
        None => Access::Unlisted,
        Some(Route::Rpc) => {
            rest_method_name(path).map_or(Route::Rpc.access(), |name| RpcMethod::access_of(&name))
        }
        Some(route) => route.access(),
    }
}

/// `/api/security/blocked/list` -> `security.blocked.list`; the REST mirror
/// of an RPC method is its name with dots as slashes.
pub fn rest_method_name(path: &str) -> Option<String> {
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

/// The 404 for a path no route serves: what moltgate does serve.
pub fn not_found_message() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        // Routes grouped by the methods they take, in table order.
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for route in Route::ALL.into_iter().filter(|r| r.in_not_found_text()) {
            let methods = route.methods_text(" or ");
            let path = route.patterns()[0].replace("{*method}", "<method>");
            match groups.iter_mut().find(|(m, _)| *m == methods) {
                Some((_, paths)) => paths.push(path),
                None => groups.push((methods, vec![path])),
            }
        }
        let groups: Vec<String> = groups
            .into_iter()
            .map(|(methods, paths)| format!("{methods} {}", paths.join(", ")))
            .collect();
        format!("unknown endpoint; moltgate serves {}", groups.join("; "))
    });
    &TEXT
}

/// The 405 for a path served with other methods.
pub fn method_not_allowed_message(path: &str) -> String {
    match Route::of_path(path) {
        Some(route) => format!(
            "method not allowed: {path} takes {}",
            route.methods_text(" or ")
        ),
        None => "method not allowed on this endpoint".into(),
    }
}

/// One RPC method (over `/ws` and as REST under `/api/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcMethod {
    /// `security.admin.check`: who the caller is, and whether an admin.
    AdminCheck,
    /// `security.lockdown.status`: lockdown, the kill switch and the breaker.
    LockdownStatus,
    /// `providers.status`: each provider's key, circuit and recent answers.
    ProvidersStatus,
    /// `providers.latency`: the providers' latency history.
    ProvidersLatency,
    /// `providers.test`: one real request to a provider.
    ProvidersTest,
    /// `security.dashboard`: everything the dashboard shows, at once.
    Dashboard,
    /// `security.activity`: requests and refusals over time.
    Activity,
    /// `security.blocked.list`: the bans.
    BlockedList,
    /// `security.blocked.add`: ban an address or block.
    BlockedAdd,
    /// `security.blocked.remove`: lift a ban.
    BlockedRemove,
    /// `security.incidents.list`: the incidents, filtered.
    IncidentsList,
    /// `security.gateway.connections`: open connections, by client.
    GatewayConnections,
    /// `security.lockdown.toggle`: lockdown on or off.
    LockdownToggle,
    /// `security.emergency.toggle`: the kill switch on or off.
    EmergencyToggle,
    /// WebSocket only: pushes security events.
    Subscribe,
}

/// What an [`RpcMethod`] is: the table's row.
#[derive(Debug, Clone, Copy)]
pub struct RpcSpec {
    /// The method's name on the wire.
    pub name: &'static str,
    /// Who may call it.
    pub access: Access,
    /// It changes something or spends money upstream: over HTTP it takes
    /// POST only, so a link or an `<img>` on another site cannot fire it
    /// with the dashboard's cookie.
    pub changes_state: bool,
    /// Its parameters, for the docs' table.
    pub params: &'static str,
}

impl RpcMethod {
    /// Every method, in the order the docs list them.
    pub const ALL: [RpcMethod; 15] = [
        RpcMethod::AdminCheck,
        RpcMethod::LockdownStatus,
        RpcMethod::ProvidersStatus,
        RpcMethod::ProvidersLatency,
        RpcMethod::ProvidersTest,
        RpcMethod::Dashboard,
        RpcMethod::Activity,
        RpcMethod::BlockedList,
        RpcMethod::BlockedAdd,
        RpcMethod::BlockedRemove,
        RpcMethod::IncidentsList,
        RpcMethod::GatewayConnections,
        RpcMethod::LockdownToggle,
        RpcMethod::EmergencyToggle,
        RpcMethod::Subscribe,
    ];

    /// The table.
    pub const fn spec(self) -> RpcSpec {
        const fn row(
            name: &'static str,
            access: Access,
            changes_state: bool,
            params: &'static str,
        ) -> RpcSpec {
            RpcSpec {
                name,
                access,
                changes_state,
                params,
            }
        }
        const READ: Access = Access::Needs(Scope::Read);
        const WRITE: Access = Access::Needs(Scope::Write);
        const ADMIN: Access = Access::Needs(Scope::Admin);
        match self {
            RpcMethod::AdminCheck => row("security.admin.check", Access::Authenticated, false, "–"),
            RpcMethod::LockdownStatus => row("security.lockdown.status", READ, false, "–"),
            RpcMethod::ProvidersStatus => row("providers.status", READ, false, "–"),
            RpcMethod::ProvidersLatency => row("providers.latency", ADMIN, false, "`since_ms`"),
            RpcMethod::ProvidersTest => row("providers.test", WRITE, true, "`provider`, `model`"),
            RpcMethod::Dashboard => row("security.dashboard", ADMIN, false, "–"),
            RpcMethod::Activity => row(
                "security.activity",
                ADMIN,
                false,
                "`since_ms` (default an hour ago), `bucket_ms` (at least a minute, and at most 1440 buckets): traffic and token rows per provider and bucket (`minute` is the bucket's start; p50 is the request-weighted mean of the minutes' medians, p95 the worst minute's), and incident counts per kind and bucket",
            ),
            RpcMethod::BlockedList => row("security.blocked.list", ADMIN, false, "–"),
            RpcMethod::BlockedAdd => row(
                "security.blocked.add",
                ADMIN,
                true,
                "`target`, `reason`, `duration_ms`",
            ),
            RpcMethod::BlockedRemove => row("security.blocked.remove", ADMIN, true, "`target`"),
            RpcMethod::IncidentsList => row(
                "security.incidents.list",
                ADMIN,
                false,
                "`limit`, `kind` (one of the kinds below; another is a 400), `ip`, `since_ms`",
            ),
            RpcMethod::GatewayConnections => {
                row("security.gateway.connections", ADMIN, false, "–")
            }
            RpcMethod::LockdownToggle => {
                row("security.lockdown.toggle", ADMIN, true, "`on`, `mode`")
            }
            RpcMethod::EmergencyToggle => row("security.emergency.toggle", ADMIN, true, "`on`"),
            RpcMethod::Subscribe => row("subscribe", ADMIN, false, "–"),
        }
    }

    /// The method's name on the wire.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether it is served over the WebSocket only.
    pub fn websocket_only(self) -> bool {
        self == RpcMethod::Subscribe
    }

    /// The method called `name`, if there is one.
    pub fn parse(name: &str) -> Option<RpcMethod> {
        RpcMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The access calling `name` needs: the method's, or admin for a name
    /// that is no method (so probing for methods learns nothing).
    pub fn access_of(name: &str) -> Access {
        RpcMethod::parse(name).map_or(Access::Needs(Scope::Admin), |m| m.spec().access)
    }
}

/// The endpoints table of docs/GATEWAY.md.
pub fn routes_markdown() -> String {
    let mut out = String::from("| endpoint | what |\n|---|---|\n");
    for route in Route::ALL {
        let methods = route.methods_text(" or ");
        let (first, more) = route.patterns().split_first().expect("a route has a path");
        let mut what = route.summary().to_string();
        for p in more {
            what += &format!("; also at `{p}`");
        }
        let path = first
            .replace("{*method}", "<method>")
            .replace("{name}", "<name>");
        out += &format!("| `{methods} {path}` | {what} |\n");
    }
    out
}

/// The methods table of docs/SECURITY.md.
pub fn methods_markdown() -> String {
    let mut out = String::from("| method | scope | params |\n|---|---|---|\n");
    for m in RpcMethod::ALL {
        let spec = m.spec();
        let scope = match spec.access {
            Access::Public => "none".to_string(),
            Access::Authenticated | Access::Unlisted => "any key".to_string(),
            Access::Needs(s) => short(s).to_string(),
            Access::EitherOf(a, b) => format!("{} or {}", short(a), short(b)),
        };
        let mut name = format!("`{}`", spec.name);
        if m.websocket_only() {
            name += " (WebSocket only)";
        }
        if spec.changes_state {
            name += " (POST)";
        }
        out += &format!("| {name} | {scope} | {} |\n", spec.params);
    }
    out
}

/// `operator.read` -> `read`.
fn short(s: Scope) -> &'static str {
    s.as_str().trim_start_matches("operator.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::scope::Scopes;

    /// What a request for `path` needs, as admission asks.
    fn route_access(path: &str) -> Access {
        access(Route::of_path(path), path)
    }

    #[test]
    fn method_names_are_distinct_and_parse_back() {
        for m in RpcMethod::ALL {
            assert_eq!(RpcMethod::parse(m.name()), Some(m));
        }
        assert_eq!(RpcMethod::parse("models.list"), None);
        assert_eq!(RpcMethod::parse("security.nope"), None);
    }

    #[test]
    fn every_variant_is_in_all() {
        // A new variant must be added to ALL: this match stops compiling
        // until it is handled, and the count below until it is listed.
        let listed = |m: RpcMethod| match m {
            RpcMethod::AdminCheck
            | RpcMethod::LockdownStatus
            | RpcMethod::ProvidersStatus
            | RpcMethod::ProvidersLatency
            | RpcMethod::ProvidersTest
            | RpcMethod::Dashboard
            | RpcMethod::Activity
            | RpcMethod::BlockedList
            | RpcMethod::BlockedAdd
            | RpcMethod::BlockedRemove
            | RpcMethod::IncidentsList
            | RpcMethod::GatewayConnections
            | RpcMethod::LockdownToggle
            | RpcMethod::EmergencyToggle
            | RpcMethod::Subscribe => RpcMethod::ALL.contains(&m),
        };
        assert!(RpcMethod::ALL.into_iter().all(listed));
        let route = |r: Route| match r {
            Route::Infer(e) => Endpoint::ALL.contains(&e) && Route::ALL.contains(&r),
            Route::Models
            | Route::Health
            | Route::Ready
            | Route::Metrics
            | Route::Login
            | Route::Logout
            | Route::Rpc
            | Route::Ws
            | Route::Dashboard
            | Route::DashboardAsset => Route::ALL.contains(&r),
        };
        assert!(Route::ALL.into_iter().all(route));
        assert_eq!(Route::ALL.len(), 10 + Endpoint::ALL.len());
    }

    #[test]
    fn paths_find_their_route() {
        for route in Route::ALL {
            for p in route.patterns() {
                let path = p.replace("{*method}", "a/b").replace("{name}", "app.js");
                assert_eq!(Route::of_path(&path), Some(route), "{path}");
            }
        }
        assert_eq!(Route::of_path("/models"), None);
        assert_eq!(Route::of_path("/dashboard/assets/a/b"), None);
        assert_eq!(Route::of_path("/.env"), None);
    }

    #[test]
    fn agents_that_write_may_list_models_and_nothing_else_read() {
        let write = Scopes::parse_list("operator.write").unwrap();
        let read = Scopes::parse_list("operator.read").unwrap();
        let a = route_access("/v1/models");
        assert!(a.granted_to(write) && a.granted_to(read));
        assert!(!a.granted_to(Scopes::NONE));
        assert_eq!(a.needed(), "operator.read or operator.write");
        assert!(!route_access("/metrics").granted_to(write));
        assert!(!route_access("/api/providers/status").granted_to(write));
    }

    #[test]
    fn every_inference_endpoint_needs_write() {
        for e in Endpoint::ALL {
            for path in e.paths() {
                let a = route_access(path);
                assert_eq!(a, Access::Needs(Scope::Write), "{path}");
                assert!(!a.granted_to(Scopes::parse_list("operator.read").unwrap()));
            }
        }
    }

    #[test]
    fn unknown_paths_are_unlisted_and_unknown_methods_need_admin() {
        assert_eq!(route_access("/health"), Access::Public);
        assert_eq!(route_access("/.env"), Access::Unlisted);
        assert_eq!(route_access("/models"), Access::Unlisted);
        assert_eq!(
            route_access("/api/security/blocked/add"),
            Access::Needs(Scope::Admin)
        );
        assert_eq!(
            route_access("/api/providers/status"),
            Access::Needs(Scope::Read)
        );
        assert_eq!(
            route_access("/api/providers/status/"),
            Access::Needs(Scope::Read)
        );
        assert_eq!(
            route_access("/api/providers/%2e%2e"),
            Access::Needs(Scope::Admin)
        );
        // Names the old scope table listed with no handler behind them.
        assert_eq!(
            route_access("/api/models/list"),
            Access::Needs(Scope::Admin)
        );
        assert_eq!(route_access("/api/chat"), Access::Needs(Scope::Admin));
        assert_eq!(
            RpcMethod::access_of("security.admin.check"),
            Access::Authenticated
        );
    }

    #[test]
    fn state_changing_methods_are_the_documented_five() {
        let changing: Vec<&str> = RpcMethod::ALL
            .into_iter()
            .filter(|m| m.spec().changes_state)
            .map(RpcMethod::name)
            .collect();
        assert_eq!(
            changing,
            [
                "providers.test",
                "security.blocked.add",
                "security.blocked.remove",
                "security.lockdown.toggle",
                "security.emergency.toggle"
            ]
        );
    }

    #[test]
    fn the_404_names_what_is_served() {
        assert_eq!(
            not_found_message(),
            "unknown endpoint; moltgate serves POST /v1/chat/completions, /v1/completions, \
             /v1/embeddings, /v1/responses; GET /v1/models, /health, /ready, /metrics, /ws, \
             /dashboard; GET or POST /api/<method>"
        );
        assert_eq!(
            method_not_allowed_message("/v1/embeddings"),
            "method not allowed: /v1/embeddings takes POST"
        );
        assert_eq!(
            method_not_allowed_message("/api/x"),
            "method not allowed: /api/x takes GET or POST"
        );
    }

    #[test]
    fn the_docs_tables_are_the_code() {
        moltguard_test_support::golden::check_section(
            "docs/GATEWAY.md",
            "endpoints",
            &routes_markdown(),
        );
        moltguard_test_support::golden::check_section(
            "docs/SECURITY.md",
            "rpc-methods",
            &methods_markdown(),
        );
        moltguard_test_support::golden::check_section(
            "docs/GATEWAY.md",
            "attempt-outcomes",
            &outcomes_markdown(),
        );
    }

    /// The `outcome` of an attempt report, each with what it means.
    fn outcomes_markdown() -> String {
        use crate::outbound::retry::FailureClass;
        let mut out =
            String::from("| outcome | what happened, and what the chain does next |\n|---|---|\n");
        for c in FailureClass::ALL {
            out.push_str(&format!("| `{c}` | {} |\n", c.meaning()));
        }
        out
    }
}
