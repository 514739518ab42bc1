//! Checks on the effective nginx configuration: every server block that
//! fronts a protected port must include the breaker at server level, listen
//! on loopback only, and not switch authentication off anywhere inside.
//!
//! A server *protects* a port when it listens on it, or passes requests
//! (`proxy_pass`, `grpc_pass`, `*_pass`, directly or through an `upstream`)
//! to it on this machine.

use super::net::{parse_listen, parse_pass_target, Host};
use crate::breaker::ReasonCode;
use crate::nginxconf::{self, Directive, Tree};
use crate::Finding;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A server that fronts a protected port does not include the breaker
/// include at server level.
///
/// Why: without it nothing stops traffic when the breaker opens, and no
/// password is asked for. Fix: add `include <breaker include>;` directly in
/// the `server { }` block (not in a location), or remove the server.
pub const NGINX_BREAKER_NOT_INCLUDED: &str = "NGINX_BREAKER_NOT_INCLUDED";

/// A server that fronts a protected port listens on a non-loopback address
/// (`listen 8080;`, `*:`, `[::]:`, `0.0.0.0:`, a LAN/public IP, a host name
/// other than localhost, or no `listen` at all, which means `*:80`).
///
/// Why: the panel is reachable from the network. Fix: `listen 127.0.0.1:PORT;`
/// (and `[::1]:PORT` if needed), and reach it through a tunnel.
pub const NGINX_LISTEN_PUBLIC: &str = "NGINX_LISTEN_PUBLIC";

/// A directive inside a protected server that lets requests past auth:
/// `auth_basic off`, a location-level `return` (runs before auth), any
/// `allow` (overrides server-level access rules), `satisfy any`,
/// `auth_request off`.
///
/// Why: the breaker's password check no longer applies to some requests.
/// Fix: remove the directive; server-level `if (…) { return …; }` is fine.
pub const NGINX_AUTH_BYPASS: &str = "NGINX_AUTH_BYPASS";

/// The configuration could not be read or parsed completely (syntax error,
/// unreadable or cyclic include, limits).
///
/// Why: what cannot be read cannot be checked; ambiguity means deny.
/// Fix: run `nginx -t`, fix the reported file and line.
pub const NGINX_CONFIG_UNPARSEABLE: &str = "NGINX_CONFIG_UNPARSEABLE";

/// What the nginx check protects.
#[derive(Debug, Clone)]
pub struct ProtectedSet {
    /// Ports that must only be reachable through the breaker: the edge, its
    /// upstream, the agent's control port.
    pub ports: Vec<u16>,
    /// The breaker include every protecting server must include.
    pub breaker_include: PathBuf,
}

impl ProtectedSet {
    /// What moltguard itself must protect: the edge port, its upstream,
    /// `guardian.agent_port`, `guardian.protected_ports`, and the agent
    /// control ports read from agent configs ([`super::AgentReport::control_ports`]).
    ///
    /// With the edge port included, any other server proxying to the edge
    /// (a public TLS front, say) must include the breaker and listen on
    /// loopback too; leave it out if such fronts are to be allowed.
    pub fn for_config(config: &crate::config::Config, agent_ports: &[u16]) -> Self {
        let e = &config.settings.edge;
        let g = &config.settings.guardian;
        let mut ports = vec![e.port, e.upstream_port, g.agent_port];
        ports.extend_from_slice(&g.protected_ports);
        ports.extend_from_slice(agent_ports);
        ports.sort_unstable();
        ports.dedup();
        Self {
            ports,
            breaker_include: config.layout.include_file(),
        }
    }
}

const PASS_DIRECTIVES: &[&str] = &[
    "proxy_pass",
    "grpc_pass",
    "fastcgi_pass",
    "uwsgi_pass",
    "scgi_pass",
    "memcached_pass",
];

/// Loads `main` (includes resolved against `base_dir`) and checks it.
pub fn check_nginx_file(main: &Path, base_dir: &Path, protected: &ProtectedSet) -> Vec<Finding> {
    match nginxconf::load(main, base_dir) {
        Ok(tree) => check_nginx(&tree, protected),
        Err(e) => vec![unparseable(&e)],
    }
}

/// Checks the configuration shown by `nginx -T`.
pub fn check_nginx_t_output(text: &str, protected: &ProtectedSet) -> Vec<Finding> {
    match nginxconf::parse_nginx_t_output(text) {
        Ok(tree) => check_nginx(&tree, protected),
        Err(e) => vec![unparseable(&e)],
    }
}

fn unparseable(e: &nginxconf::ConfError) -> Finding {
    Finding::critical(
        NGINX_CONFIG_UNPARSEABLE,
        ReasonCode::CheckFailed,
        format!("the nginx configuration cannot be checked: {}", e.message),
        "run `nginx -t`, fix the file and line it reports, then check again",
    )
    .at(e.location())
}

/// Checks a loaded tree.
pub fn check_nginx(tree: &Tree, protected: &ProtectedSet) -> Vec<Finding> {
    let mut out: Vec<Finding> = tree.errors.iter().map(unparseable).collect();
    let upstreams = upstreams(&tree.directives);
    let breaker = BreakerPath::new(&protected.breaker_include, &tree.files);
    nginxconf::walk(&tree.directives, &mut |d, parents| {
        if d.name != "server" || d.block.is_none() {
            return;
        }
        // `server` inside `upstream` is a simple directive; a block here is a virtual server.
        let stream = parents.iter().any(|p| p.name == "stream");
        if let Some(port) = protects(d, &protected.ports, &upstreams) {
            check_server(d, port, stream, &breaker, &mut out);
        }
    });
    out
}

/// `upstream name { server addr; … }` → addresses.
fn upstreams(dirs: &[Directive]) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    nginxconf::walk(dirs, &mut |d, _| {
        if d.name == "upstream" {
            let servers = d
                .children()
                .iter()
                .filter(|c| c.name == "server")
                .map(|c| c.arg0().to_string());
            map.entry(d.arg0().to_ascii_lowercase())
                .or_default()
                .extend(servers);
        }
    });
    map
}

/// The protected port this server fronts, if any.
fn protects(server: &Directive, ports: &[u16], ups: &HashMap<String, Vec<String>>) -> Option<u16> {
    for l in server.children().iter().filter(|c| c.name == "listen") {
        if let (_, Some(p)) = parse_listen(l.arg0()) {
            if ports.contains(&p) {
                return Some(p);
            }
        }
    }
    let mut found = None;
    nginxconf::walk(server.children(), &mut |d, _| {
        if found.is_some() || !PASS_DIRECTIVES.contains(&d.name.as_str()) {
            return;
        }
        let Some((host, port, authority)) = parse_pass_target(d.arg0()) else {
            return;
        };
        let local = |h: &Host, p: Option<u16>| match p {
            Some(p) if h.is_local_target() && ports.contains(&p) => Some(p),
            _ => None,
        };
        found = local(&host, port).or_else(|| {
            ups.get(&authority.to_ascii_lowercase())?
                .iter()
                .find_map(|s| {
                    let (h, p) = super::net::split_host_port(s, Some(80));
                    local(&h, p)
                })
        });
    });
    found
}

/// The breaker include, and which of the loaded files are it (by canonical
/// path, so symlinks and `..` still match). Computed once per tree.
struct BreakerPath {
    raw: PathBuf,
    files: HashSet<PathBuf>,
}

impl BreakerPath {
    fn new(p: &Path, loaded: &[PathBuf]) -> Self {
        let canonical = std::fs::canonicalize(p).ok();
        let files = loaded
            .iter()
            .filter(|f| {
                f.as_path() == p
                    || canonical
                        .as_deref()
                        .is_some_and(|c| std::fs::canonicalize(f).is_ok_and(|fc| fc == c))
            })
            .cloned()
            .collect();
        Self {
            raw: p.to_path_buf(),
            files,
        }
    }

    fn is(&self, p: &Path) -> bool {
        p == self.raw || self.files.contains(p)
    }
}

/// A directive's arguments as shown in a finding: bounded, and hidden
/// entirely if they hold a secret (`return 200 "<key>"` must not leak it).
fn shown_args(d: &Directive) -> String {
    let all = d.args.join(" ");
    if !super::secrets::scan_text(&all, "").is_empty() {
        return "…(arguments hidden: they hold a secret)".into();
    }
    if all.chars().count() > 60 {
        let head: String = all.chars().take(60).collect();
        format!("{head}…")
    } else {
        all
    }
}

fn check_server(
    server: &Directive,
    port: u16,
    stream: bool,
    breaker: &BreakerPath,
    out: &mut Vec<Finding>,
) {
    let kind = if stream { "stream server" } else { "server" };
    let includes_breaker = server
        .children()
        .iter()
        .any(|c| c.name == "include" && c.includes.iter().any(|p| breaker.is(p)));
    if !includes_breaker {
        out.push(
            Finding::critical(
                NGINX_BREAKER_NOT_INCLUDED,
                ReasonCode::NginxBypass,
                format!(
                    "the {kind} block at {} fronts protected port {port} but does not include the breaker ({}) at server level",
                    server.location(),
                    breaker.raw.display()
                ),
                format!(
                    "add `include {};` directly inside this server block, or remove the server",
                    breaker.raw.display()
                ),
            )
            .at(server.location()),
        );
    }

    let listens: Vec<&Directive> = server
        .children()
        .iter()
        .filter(|c| c.name == "listen")
        .collect();
    if listens.is_empty() {
        out.push(
            Finding::critical(
                NGINX_LISTEN_PUBLIC,
                ReasonCode::ExposurePublicBind,
                format!(
                    "the {kind} block at {} fronts protected port {port} and has no `listen`: nginx then binds *:80 (or *:8000 unprivileged), every address",
                    server.location()
                ),
                "add `listen 127.0.0.1:PORT;` to the server block",
            )
            .at(server.location()),
        );
    }
    for l in listens {
        let (host, _) = parse_listen(l.arg0());
        if !host.is_loopback() {
            let addr = match host {
                Host::Any => "every address",
                Host::Name(_) => "a host name that may resolve to a public address",
                _ => "a non-loopback address",
            };
            out.push(
                Finding::critical(
                    NGINX_LISTEN_PUBLIC,
                    ReasonCode::ExposurePublicBind,
                    format!(
                        "`listen {}` in a {kind} fronting protected port {port} binds {addr}",
                        shown_args(l)
                    ),
                    "listen on loopback only (`listen 127.0.0.1:PORT;`) and reach it through a tunnel",
                )
                .at(l.location()),
            );
        }
    }

    // The breaker include is not exempt: as rendered it trips none of these
    // (its `if`/`return` are server level), so a hit inside it means tampering.
    nginxconf::walk(server.children(), &mut |d, parents| {
        let in_location = parents
            .iter()
            .any(|p| p.name == "location" || p.name == "limit_except");
        // A named location (`location @x`) or one marked `internal` is
        // reached only by an internal redirect (`error_page`), never by a
        // request's URI: a `return` of an error status there answers an
        // error, it lets nobody in.
        let named_error = d.name == "return"
            && parents.last().is_some_and(|p| {
                p.name == "location"
                    && (p.arg0().starts_with('@')
                        || p.children().iter().any(|c| c.name == "internal"))
            })
            && d.arg0().parse::<u16>().is_ok_and(|c| c >= 400);
        let a0 = d.arg0().to_ascii_lowercase();
        let why = match d.name.as_str() {
            "auth_basic" if a0 == "off" => Some("`auth_basic off` switches the password check off"),
            "auth_request" if a0 == "off" => Some("`auth_request off` switches the auth subrequest off"),
            "satisfy" if a0 == "any" => Some("`satisfy any` lets an `allow` rule replace the password"),
            "allow" => Some("`allow` overrides the server-level access rules (and with `satisfy any` replaces the password)"),
            "return" if in_location && !named_error => Some("a location-level `return` runs before the password check"),
            _ => None,
        };
        if let Some(why) = why {
            out.push(
                Finding::critical(
                    NGINX_AUTH_BYPASS,
                    ReasonCode::NginxBypass,
                    format!(
                        "`{} {}` in the {kind} fronting protected port {port}: {why}",
                        d.name,
                        shown_args(d)
                    ),
                    "remove it; only the breaker include decides who gets through",
                )
                .at(d.location()),
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn check(text: &str) -> Vec<Finding> {
        let tree = nginxconf::parse_nginx_t_output(&format!(
            "# configuration file /e/nginx.conf:\n{text}\n# configuration file /e/breaker.conf:\nauth_basic \"x\";\nif (!-f /t) {{ return 503; }}\n"
        ))
        .unwrap();
        check_nginx(
            &tree,
            &ProtectedSet {
                ports: vec![8443, 8787],
                breaker_include: "/e/breaker.conf".into(),
            },
        )
    }

    fn ids(f: &[Finding]) -> Vec<(&str, String)> {
        f.iter()
            .map(|f| (f.id, f.location.clone().unwrap_or_default()))
            .collect()
    }

    const GOOD: &str = "server {\n listen 127.0.0.1:8443;\n include breaker.conf;\n location / { proxy_pass http://127.0.0.1:8787; }\n}";

    #[test]
    fn our_own_shape_is_clean() {
        assert!(check(GOOD).is_empty(), "{:?}", check(GOOD));
    }

    #[test]
    fn a_named_location_may_only_answer_an_error() {
        let with =
            |loc: &str| check(&GOOD.replacen("location /", &format!("{loc}\n location /"), 1));
        let fine = with(
            "error_page 401 @e; location @e { default_type application/json; return 401 '{}'; }",
        );
        assert!(fine.is_empty(), "{:?}", ids(&fine));
        let fine = with("location = /e.json { internal; return 414 '{}'; }");
        assert!(fine.is_empty(), "{:?}", ids(&fine));
        for bad in [
            "location = /e.json { internal; return 200 'in'; }",
            "location = /e.json { return 414 '{}'; }",
            "location @e { return 200 'in'; }",
            "location @e { return 302 /x; }",
            "location /x { return 401; }",
        ] {
            let f = with(bad);
            assert_eq!(f.len(), 1, "{bad}: {:?}", ids(&f));
            assert_eq!(f[0].id, NGINX_AUTH_BYPASS, "{bad}");
        }
    }

    #[test]
    fn unrelated_servers_are_ignored() {
        assert!(check("server { listen 80; location / { return 200; allow all; } }").is_empty());
    }

    #[test]
    fn each_bad_pattern_is_flagged_where_it_is() {
        let cases: &[(&str, &str, &str)] = &[
            (" include breaker.conf;\n", "\n", NGINX_BREAKER_NOT_INCLUDED),
            ("127.0.0.1:8443", "8443", NGINX_LISTEN_PUBLIC),
            ("127.0.0.1:8443", "*:8443", NGINX_LISTEN_PUBLIC),
            ("127.0.0.1:8443", "[::]:8443", NGINX_LISTEN_PUBLIC),
            ("127.0.0.1:8443", "0.0.0.0:8443", NGINX_LISTEN_PUBLIC),
            ("127.0.0.1:8443", "192.168.1.10:8443", NGINX_LISTEN_PUBLIC),
            (
                "127.0.0.1:8443",
                "panel.example.com:8443",
                NGINX_LISTEN_PUBLIC,
            ),
            (
                "proxy_pass",
                "auth_basic off; proxy_pass",
                NGINX_AUTH_BYPASS,
            ),
            ("proxy_pass", "return 200; proxy_pass", NGINX_AUTH_BYPASS),
            ("proxy_pass", "allow all; proxy_pass", NGINX_AUTH_BYPASS),
            (
                "proxy_pass",
                "allow 10.0.0.0/8; proxy_pass",
                NGINX_AUTH_BYPASS,
            ),
            ("proxy_pass", "satisfy any; proxy_pass", NGINX_AUTH_BYPASS),
            (
                "proxy_pass",
                "auth_request off; proxy_pass",
                NGINX_AUTH_BYPASS,
            ),
            (
                "proxy_pass",
                "if ($x) { return 302 /; } proxy_pass",
                NGINX_AUTH_BYPASS,
            ),
        ];
        for (from, to, id) in cases {
            let f = check(&GOOD.replacen(from, to, 1));
            assert_eq!(f.len(), 1, "{to}: {:?}", ids(&f));
            assert_eq!(f[0].id, *id, "{to}");
            assert_eq!(f[0].severity, Severity::Critical);
            let line = if *id == NGINX_BREAKER_NOT_INCLUDED {
                1
            } else if *id == NGINX_LISTEN_PUBLIC {
                2
            } else {
                4
            };
            assert_eq!(
                f[0].location.as_deref(),
                Some(format!("/e/nginx.conf:{line}").as_str()),
                "{to}"
            );
        }
    }

    #[test]
    fn no_listen_upstreams_and_stream() {
        let f = check(
            "server { include breaker.conf; location / { proxy_pass http://localhost:8787; } }",
        );
        assert_eq!(
            ids(&f),
            [(NGINX_LISTEN_PUBLIC, "/e/nginx.conf:1".to_string())]
        );
        let f = check("upstream up { server 127.0.0.1:8787; }\nserver { listen 127.0.0.1:9; location / { proxy_pass http://up; } }");
        assert_eq!(
            ids(&f),
            [(NGINX_BREAKER_NOT_INCLUDED, "/e/nginx.conf:2".to_string())]
        );
        let f = check("stream { server { listen 9000; proxy_pass 127.0.0.1:8443; } }");
        assert_eq!(f.len(), 2);
        assert!(f[0].what.contains("stream server"));
        // Breaker included inside a location is not server level.
        let f = check("server { listen 127.0.0.1:8443; location / { include breaker.conf; } }");
        assert_eq!(f[0].id, NGINX_BREAKER_NOT_INCLUDED);
        // Unix sockets and localhost are loopback.
        assert!(check(
            "server { listen unix:/run/x.sock; listen localhost:8443; include breaker.conf; }"
        )
        .is_empty());
    }

    #[test]
    fn a_secret_in_a_bypass_directive_is_not_repeated() {
        let key = format!("gsk_{}", "Qw3Er4Ty5Ui6".repeat(4));
        let f = check(&GOOD.replacen(
            "proxy_pass",
            &format!("return 200 \"{key}\"; proxy_pass"),
            1,
        ));
        assert_eq!(f[0].id, NGINX_AUTH_BYPASS);
        assert!(!format!("{f:?}").contains(&key[6..]), "{f:?}");
    }

    #[test]
    fn a_tampered_breaker_include_is_not_exempt() {
        let tree = nginxconf::parse_nginx_t_output(&format!(
            "# configuration file /e/nginx.conf:\n{GOOD}\n# configuration file /e/breaker.conf:\nauth_basic off;\n"
        ))
        .unwrap();
        let f = check_nginx(
            &tree,
            &ProtectedSet {
                ports: vec![8443],
                breaker_include: "/e/breaker.conf".into(),
            },
        );
        assert_eq!(
            ids(&f),
            [(NGINX_AUTH_BYPASS, "/e/breaker.conf:1".to_string())]
        );
    }

    #[test]
    fn parse_errors_are_critical_check_failed() {
        let f = check("server { listen 127.0.0.1:8443;");
        assert_eq!(f[0].id, NGINX_CONFIG_UNPARSEABLE);
        assert_eq!(f[0].reason, ReasonCode::CheckFailed);
        assert_eq!(f[0].location.as_deref(), Some("/e/nginx.conf:1"));
        let f = check_nginx_file(
            Path::new("/nonexistent/nginx.conf"),
            Path::new("/"),
            &ProtectedSet {
                ports: vec![1],
                breaker_include: "/b".into(),
            },
        );
        assert_eq!(f[0].id, NGINX_CONFIG_UNPARSEABLE);
    }
}
