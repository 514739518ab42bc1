//! OpenClaw-aware checks: settings in `openclaw.json` (OpenClaw's documented
//! schema, 2026.9.6) that weaken its panel or let a prompt reach a shell,
//! and the permissions of its state directory. Each finding names the key
//! and the fix; docs/CHECKS.md maps them to `openclaw security audit`.

use crate::breaker::ReasonCode;
use crate::Finding;
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// `gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback` or
/// `dangerouslyDisableDeviceAuth` is on. Why: the first trusts the Host
/// header for the browser-origin check (DNS rebinding), the second lets any
/// browser that has the token skip device pairing. Critical.
pub const OPENCLAW_CONTROL_UI_DANGEROUS: &str = "OPENCLAW_CONTROL_UI_DANGEROUS";
/// `gateway.controlUi.allowedOrigins` holds `"*"`, or is missing while the
/// gateway binds beyond loopback. Critical.
pub const OPENCLAW_ALLOWED_ORIGINS: &str = "OPENCLAW_ALLOWED_ORIGINS";
/// `gateway.auth.rateLimit.exemptLoopback` is not false while the edge
/// serves the panel: every request through the edge comes from loopback, so
/// OpenClaw would never slow down a token guesser. Warning.
pub const OPENCLAW_RATE_LIMIT_EXEMPTS_EDGE: &str = "OPENCLAW_RATE_LIMIT_EXEMPTS_EDGE";
/// `tools.exec.security = "full"` (or `tools.exec.mode = "full"`): any
/// command runs on the host. Critical with `ask = "off"` (no person in the
/// loop), warning otherwise.
pub const OPENCLAW_EXEC_FULL: &str = "OPENCLAW_EXEC_FULL";
/// `tools.elevated.allowFrom.<channel>` holds `"*"`: everyone on that
/// channel may run elevated tools. Critical.
pub const OPENCLAW_ELEVATED_WILDCARD: &str = "OPENCLAW_ELEVATED_WILDCARD";
/// Elevated tools are on and the sandbox is off
/// (`agents.defaults.sandbox.mode = "off"` or unset). Warning: a prompt
/// that reaches an elevated tool runs it on the host.
pub const OPENCLAW_ELEVATED_WITHOUT_SANDBOX: &str = "OPENCLAW_ELEVATED_WITHOUT_SANDBOX";
/// `plugins.load.paths` names a directory others may write: whoever writes
/// there runs code inside the agent. Critical.
pub const OPENCLAW_PLUGIN_PATH_WRITABLE: &str = "OPENCLAW_PLUGIN_PATH_WRITABLE";
/// The state directory (`~/.openclaw`) is writable by others (critical) or
/// readable by others (warning): it holds tokens, sessions and credentials.
pub const OPENCLAW_STATE_DIR_PERMS: &str = "OPENCLAW_STATE_DIR_PERMS";

/// What the checks need to know about the setup around the agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// moltguard's edge serves this agent's panel.
    pub behind_edge: bool,
    /// The gateway binds beyond loopback (or may).
    pub public_bind: bool,
}

/// Checks one parsed config at `loc`.
pub fn check_config(v: &Value, loc: &str, cx: Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let at = |key: &str| format!("{loc} ({key})");
    let ptr = |p: &str| v.pointer(p);
    let is_true = |p: &str| ptr(p).and_then(Value::as_bool) == Some(true);

    for key in [
        "dangerouslyAllowHostHeaderOriginFallback",
        "dangerouslyDisableDeviceAuth",
    ] {
        if is_true(&format!("/gateway/controlUi/{key}")) {
            out.push(
                Finding::critical(
                    OPENCLAW_CONTROL_UI_DANGEROUS,
                    ReasonCode::NginxBypass,
                    format!(
                        "gateway.controlUi.{key} is true: a safety check of the Control UI is off"
                    ),
                    format!("remove gateway.controlUi.{key} from {loc} and restart OpenClaw"),
                )
                .at(at(&format!("gateway.controlUi.{key}"))),
            );
        }
    }

    let origins = ptr("/gateway/controlUi/allowedOrigins").and_then(Value::as_array);
    if origins.is_some_and(|o| o.iter().any(|x| x.as_str() == Some("*"))) {
        out.push(
            Finding::critical(
                OPENCLAW_ALLOWED_ORIGINS,
                ReasonCode::NginxBypass,
                "gateway.controlUi.allowedOrigins holds \"*\": any web page may drive the Control UI's WebSocket",
                "list the origins you open the UI from, e.g. [\"http://127.0.0.1:8443\"] (moltguard's edge)",
            )
            .at(at("gateway.controlUi.allowedOrigins")),
        );
    } else if cx.public_bind && origins.is_none_or(|o| o.is_empty()) {
        out.push(
            Finding::critical(
                OPENCLAW_ALLOWED_ORIGINS,
                ReasonCode::NginxBypass,
                "the gateway binds beyond loopback without gateway.controlUi.allowedOrigins",
                "bind it to loopback and open the UI through moltguard's edge; otherwise list the allowed origins",
            )
            .at(at("gateway.controlUi.allowedOrigins")),
        );
    }

    if cx.behind_edge
        && ptr("/gateway/auth/rateLimit/exemptLoopback").and_then(Value::as_bool) != Some(false)
    {
        out.push(
            Finding::warning(
                OPENCLAW_RATE_LIMIT_EXEMPTS_EDGE,
                ReasonCode::AuthMissing,
                "OpenClaw exempts loopback from its auth rate limit (gateway.auth.rateLimit.exemptLoopback), \
                 and every request through moltguard's edge comes from loopback",
                "set gateway.auth.rateLimit.exemptLoopback to false",
            )
            .at(at("gateway.auth.rateLimit.exemptLoopback")),
        );
    }

    let exec_full = ["/tools/exec/security", "/tools/exec/mode"]
        .iter()
        .any(|p| ptr(p).and_then(Value::as_str) == Some("full"));
    if exec_full {
        let no_ask = ptr("/tools/exec/ask").and_then(Value::as_str) == Some("off");
        let fix = "set tools.exec.security to \"allowlist\" (or tools.exec.mode to \"ask\"), and keep tools.exec.ask on";
        let f = if no_ask {
            Finding::critical(
                OPENCLAW_EXEC_FULL,
                ReasonCode::PermissionsUnsafe,
                "tools.exec runs any command on this machine with no approval (security/mode \"full\", \
                 ask \"off\"): a prompt injection reaches a shell",
                fix,
            )
        } else {
            Finding::warning(
                OPENCLAW_EXEC_FULL,
                ReasonCode::PermissionsUnsafe,
                "tools.exec runs any command on this machine (security/mode \"full\"); only approvals \
                 stand between a prompt and a shell",
                fix,
            )
        };
        out.push(f.at(at("tools.exec")));
    }

    if let Some(allow) = ptr("/tools/elevated/allowFrom").and_then(Value::as_object) {
        for (channel, list) in allow {
            if list
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x.as_str() == Some("*")))
            {
                out.push(
                    Finding::critical(
                        OPENCLAW_ELEVATED_WILDCARD,
                        ReasonCode::PermissionsUnsafe,
                        format!("tools.elevated.allowFrom.{channel} holds \"*\": anyone on {channel} may run elevated tools"),
                        format!("list the senders by id in tools.elevated.allowFrom.{channel}"),
                    )
                    .at(at(&format!("tools.elevated.allowFrom.{channel}"))),
                );
            }
        }
    }
    let sandbox_off = ptr("/agents/defaults/sandbox/mode")
        .and_then(Value::as_str)
        .is_none_or(|m| m == "off");
    if is_true("/tools/elevated/enabled") && sandbox_off {
        out.push(
            Finding::warning(
                OPENCLAW_ELEVATED_WITHOUT_SANDBOX,
                ReasonCode::PermissionsUnsafe,
                "elevated tools are enabled and the agents' sandbox is off: an elevated tool runs on the host",
                "set agents.defaults.sandbox.mode to \"non-main\" or \"all\", or tools.elevated.enabled to false",
            )
            .at(at("tools.elevated.enabled")),
        );
    }

    if let Some(paths) = ptr("/plugins/load/paths").and_then(Value::as_array) {
        for p in paths.iter().filter_map(Value::as_str) {
            let path = Path::new(p);
            if let Some(who) = writable_by_others(path) {
                out.push(
                    Finding::critical(
                        OPENCLAW_PLUGIN_PATH_WRITABLE,
                        ReasonCode::PermissionsUnsafe,
                        format!("plugins.load.paths names {p}, which {who} may write: they could put code inside the agent"),
                        format!("chmod go-w {p}, or load plugins only from a directory only you can write"),
                    )
                    .at(at("plugins.load.paths")),
                );
            }
        }
    }
    out
}

/// Checks the state directory that holds `config` (`~/.openclaw`).
pub fn check_state_dir(dir: &Path) -> Vec<Finding> {
    let Ok(md) = std::fs::symlink_metadata(dir) else {
        return Vec::new();
    };
    let mode = md.permissions().mode() & 0o777;
    let shown = dir.display();
    if mode & 0o022 != 0
        || (md.uid() != nix::unistd::geteuid().as_raw()
            && md.uid() != 0
            && !crate::exec::running_as_root())
    {
        return vec![Finding::critical(
            OPENCLAW_STATE_DIR_PERMS,
            ReasonCode::PermissionsUnsafe,
            format!("{shown} (OpenClaw's tokens, sessions and credentials) is writable by others (mode {mode:o})"),
            format!("chmod 700 {shown}"),
        )
        .at(shown.to_string())];
    }
    if mode & 0o005 != 0 {
        return vec![Finding::warning(
            OPENCLAW_STATE_DIR_PERMS,
            ReasonCode::PermissionsUnsafe,
            format!("{shown} (OpenClaw's tokens, sessions and credentials) is readable by every local user (mode {mode:o})"),
            format!("chmod 700 {shown}"),
        )
        .at(shown.to_string())];
    }
    Vec::new()
}

/// "its group" / "every user" when others than the owner may write `path`.
fn writable_by_others(path: &Path) -> Option<&'static str> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        Some("every user")
    } else if mode & 0o020 != 0 {
        Some("its group")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(v: Value, cx: Context) -> Vec<(&'static str, crate::Severity)> {
        check_config(&v, "/h/.openclaw/openclaw.json", cx)
            .into_iter()
            .map(|f| (f.id, f.severity))
            .collect()
    }

    use crate::Severity::{Critical, Warning};

    #[test]
    fn a_plain_loopback_config_has_nothing_to_say() {
        let v = json!({"gateway": {"bind": "loopback", "auth": {"mode": "token", "token": "x"}}});
        assert_eq!(ids(v, Context::default()), vec![]);
    }

    #[test]
    fn dangerous_control_ui_flags_are_critical() {
        for key in [
            "dangerouslyAllowHostHeaderOriginFallback",
            "dangerouslyDisableDeviceAuth",
        ] {
            let v = json!({"gateway": {"controlUi": {key: true}}});
            assert_eq!(
                ids(v, Context::default()),
                vec![(OPENCLAW_CONTROL_UI_DANGEROUS, Critical)],
                "{key}"
            );
            let v = json!({"gateway": {"controlUi": {key: false}}});
            assert_eq!(ids(v, Context::default()), vec![], "{key}");
        }
    }

    #[test]
    fn allowed_origins_wildcard_or_missing_when_public() {
        let v = json!({"gateway": {"controlUi": {"allowedOrigins": ["*"]}}});
        assert_eq!(
            ids(v, Context::default()),
            vec![(OPENCLAW_ALLOWED_ORIGINS, Critical)]
        );
        let public = Context {
            public_bind: true,
            ..Default::default()
        };
        assert_eq!(
            ids(json!({}), public),
            vec![(OPENCLAW_ALLOWED_ORIGINS, Critical)]
        );
        let v = json!({"gateway": {"controlUi": {"allowedOrigins": ["https://ui.example"]}}});
        assert_eq!(ids(v, public), vec![]);
    }

    #[test]
    fn behind_the_edge_loopback_must_not_be_exempt_from_rate_limits() {
        let edge = Context {
            behind_edge: true,
            ..Default::default()
        };
        assert_eq!(
            ids(json!({}), edge),
            vec![(OPENCLAW_RATE_LIMIT_EXEMPTS_EDGE, Warning)]
        );
        let v = json!({"gateway": {"auth": {"rateLimit": {"exemptLoopback": false}}}});
        assert_eq!(ids(v, edge), vec![]);
    }

    #[test]
    fn exec_full_is_critical_without_approvals() {
        let v = json!({"tools": {"exec": {"security": "full", "ask": "off"}}});
        assert_eq!(
            ids(v, Context::default()),
            vec![(OPENCLAW_EXEC_FULL, Critical)]
        );
        let v = json!({"tools": {"exec": {"mode": "full"}}});
        assert_eq!(
            ids(v, Context::default()),
            vec![(OPENCLAW_EXEC_FULL, Warning)]
        );
        let v = json!({"tools": {"exec": {"security": "allowlist", "ask": "off"}}});
        assert_eq!(ids(v, Context::default()), vec![]);
    }

    #[test]
    fn elevated_tools_need_named_senders_and_a_sandbox() {
        let v = json!({"tools": {"elevated": {"enabled": true, "allowFrom": {"telegram": ["*"]}}},
                       "agents": {"defaults": {"sandbox": {"mode": "all"}}}});
        assert_eq!(
            ids(v, Context::default()),
            vec![(OPENCLAW_ELEVATED_WILDCARD, Critical)]
        );
        let v =
            json!({"tools": {"elevated": {"enabled": true, "allowFrom": {"telegram": [12345]}}}});
        assert_eq!(
            ids(v, Context::default()),
            vec![(OPENCLAW_ELEVATED_WITHOUT_SANDBOX, Warning)]
        );
    }

    #[test]
    fn plugin_paths_others_may_write_are_critical() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let v = json!({"plugins": {"load": {"paths": [d.path()]}}});
        assert_eq!(
            ids(v.clone(), Context::default()),
            vec![(OPENCLAW_PLUGIN_PATH_WRITABLE, Critical)]
        );
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ids(v, Context::default()), vec![]);
    }

    #[test]
    fn the_state_dir_is_the_owners_alone() {
        let d = tempfile::tempdir().unwrap();
        let set =
            |m| std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(m)).unwrap();
        set(0o700);
        assert!(check_state_dir(d.path()).is_empty());
        set(0o755);
        assert_eq!(check_state_dir(d.path())[0].severity, Warning);
        set(0o777);
        assert_eq!(check_state_dir(d.path())[0].severity, Critical);
    }
}
