//! `moltguard up`: the whole stack in the foreground, on its defaults.

use super::init::{self, InitArgs};
use super::llm_setup;
use super::nginx_cmd::nginx_err;
use super::output::{stdout_hung_up, CliError, Exit, Out};
use super::Ctx;
use crate::config::Config;
use crate::exec::{self, ExecError};
use crate::nginx::control::{Nginx, NginxError};
use crate::nginx::probe;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub(super) struct UpArgs {
    /// The port nginx listens on (loopback), for a new setup.
    #[arg(long, value_name = "PORT")]
    edge_port: Option<u16>,
    /// The loopback port of the upstream, for a new setup.
    #[arg(long, value_name = "PORT")]
    upstream_port: Option<u16>,
    /// Do not run the guardian (e.g. when it runs as a system service already).
    #[arg(long)]
    no_guardian: bool,
    /// For a new setup: put this agent's panel behind the edge (see `init --agent`).
    #[arg(long, value_enum, value_name = "AGENT")]
    agent: Option<crate::config::Panel>,
}

pub(super) fn run(ctx: &Ctx, args: UpArgs) -> Result<Exit, CliError> {
    let existing = ctx.config_allow_missing()?;
    let out = init::init(
        ctx,
        &InitArgs {
            edge_port: if existing.config_file_found {
                None
            } else {
                args.edge_port
            },
            upstream_port: if existing.config_file_found {
                None
            } else {
                args.upstream_port
            },
            system_nginx: false,
            force: false,
            write_agent_config: false,
            agent_model: Vec::new(),
            agent: if existing.config_file_found {
                None
            } else {
                args.agent
            },
        },
    )?;
    let cfg = out.config;
    if !cfg.nginx_managed() {
        return Err(CliError::refused(
            "this setup drives the system nginx; `up` runs a private one",
            "use `moltguard --home DIR up` for a self-contained stack",
        ));
    }
    crate::breaker::settle(&cfg)?;
    // Without nginx the gateway runs alone on loopback and enforces the
    // breaker itself (only this machine is served until it is closed).
    let (nginx, missing) = match find_nginx(ctx, &cfg) {
        Ok(n) => (Some(n), None),
        Err(e) if nginx_not_installed(&cfg) => (None, Some(e)),
        Err(e) => return Err(e),
    };
    if let Some(n) = &nginx {
        n.test().map_err(nginx_err)?;
    }
    let first_key = first_api_key(&cfg);
    let shutdown = Shutdown::catch()?;
    let pid = match &nginx {
        Some(n) => Some(n.start().map_err(nginx_err)?),
        None => None,
    };
    // From here on children run: every way out below stops them, so
    // nothing may panic (printing goes through `Out`) or return early.
    let gateway = start_gateway(&cfg);
    let out = Out::default();
    let llm = llm_setup::inspect(&cfg);
    let edge = Edge {
        nginx_pid: pid,
        missing: missing.as_ref(),
        first_key: first_key.as_deref(),
    };
    announce(ctx, &cfg, &args, &out, &edge, &gateway, &llm);
    let why = if out.closed() {
        Stop::StdoutClosed
    } else {
        // The guardian watches nginx; with no nginx it would only report that.
        if !args.no_guardian && nginx.is_some() {
            // The guardian in the foreground: its findings and breaker
            // changes stream to stderr as log lines.
            crate::logging::init(
                if ctx.json {
                    crate::logging::LogFormat::Json
                } else {
                    crate::logging::LogFormat::Text
                },
                "guardian",
            );
            let guardian_cfg = cfg.clone();
            std::thread::spawn(move || {
                if let Err(e) = crate::guardian::daemon::run(guardian_cfg) {
                    tracing::error!(error = %e, "the guardian stopped");
                }
            });
        }
        shutdown.wait()
    };
    if why == Stop::StdoutClosed {
        // Said where a person may still see it (`up | head` in a terminal).
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "moltguard up: standard output was closed; stopping moltgate and nginx"
        );
    } else if !ctx.json {
        out.line(format!("{}; stopping…", why.describe()));
    }
    // Held until the process ends: the guardian thread must not take the
    // stack going down for a finding and move the breaker meanwhile.
    let _no_transitions = crate::fsutil::ExclusiveLock::acquire(&cfg.layout.lock_file()).ok();
    if let Ok(mut child) = gateway {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
    }
    let stopped = match &nginx {
        Some(n) => n.stop(Duration::from_secs(5)),
        None => Ok(()),
    };
    if ctx.json {
        out.json(&serde_json::json!({
            "ok": stopped.is_ok(),
            "event": "stopped",
            "why": why.code(),
        }));
    } else {
        out.line(if nginx.is_some() {
            "moltgate and nginx stopped"
        } else {
            "moltgate stopped"
        });
    }
    stopped.map_err(nginx_err)?;
    Ok(Exit::Ok)
}

/// nginx is not installed at all (not merely misconfigured).
fn nginx_not_installed(cfg: &Config) -> bool {
    cfg.settings.nginx.binary.is_none()
        && exec::resolve("nginx", None, exec::NGINX_CANDIDATES).is_err()
}

/// On a setup's first run the gateway has no keys, so nobody could use
/// it: make one admin key and show it once.
fn first_api_key(cfg: &Config) -> Option<String> {
    use crate::gateway::admin::store::Store;
    use crate::gateway::inbound::{keys, scope::Scopes};
    let store = Store::open(&cfg.layout.state_dir).ok()?;
    if !store.keys().ok()?.is_empty() {
        return None;
    }
    let k = keys::generate("first key (moltguard up)", Scopes::admin(), None, None, &[]);
    store.insert_key(&k.row).ok()?;
    Some(k.plaintext)
}

/// The nginx to run, or an error that says exactly how to get one.
fn find_nginx(ctx: &Ctx, cfg: &Config) -> Result<Nginx, CliError> {
    match Nginx::from_config(cfg) {
        Ok(n) => Ok(n),
        Err(NginxError::Exec(e @ ExecError::NotFound { .. })) => Err(missing_nginx(ctx, cfg, &e)),
        Err(e) => Err(nginx_err(e)),
    }
}

fn missing_nginx(ctx: &Ctx, cfg: &Config, e: &ExecError) -> CliError {
    let again = format!("then run `{} up` again", init::command_prefix(cfg));
    let Some(configured) = &cfg.settings.nginx.binary else {
        let looked = match e {
            ExecError::NotFound { looked, .. } => looked.as_str(),
            _ => "the usual places",
        };
        return CliError::refused(
            format!("nginx is not installed (looked in {looked})"),
            format!("install it: {}; {again}", nginx_install_command()),
        );
    };
    // A path was given and nothing is there.
    let from = if ctx.overrides.nginx_binary.is_some() {
        "--nginx-bin / MOLTGUARD_NGINX".to_string()
    } else {
        format!(
            "`binary` in the [nginx] section of {}",
            cfg.layout.config_file.display()
        )
    };
    match exec::resolve("nginx", None, exec::NGINX_CANDIDATES) {
        Ok(found) => CliError::refused(
            format!("nginx is not at {} (from {from})", configured.display()),
            format!(
                "nginx is installed at {0}: point {from} at {0}, or remove it so it is found; {again}",
                found.display()
            ),
        ),
        Err(_) => CliError::refused(
            format!(
                "nginx is not installed: nothing at {} (from {from})",
                configured.display()
            ),
            format!(
                "install it: {}; if it lands elsewhere, give its path there; {again}",
                nginx_install_command()
            ),
        ),
    }
}

/// The one command that installs nginx on this machine.
fn nginx_install_command() -> String {
    let has = |p: &str| std::path::Path::new(p).exists();
    if cfg!(target_os = "macos") {
        "`brew install nginx` (Homebrew: https://brew.sh)".into()
    } else if has("/usr/bin/apt-get") {
        "`sudo apt-get install nginx-light` (or `nginx` where nginx-light is not packaged; \
         the package also starts a system nginx on port 80 that moltguard does not need: \
         `sudo systemctl disable --now nginx`)"
            .into()
    } else if has("/usr/bin/dnf") {
        "`sudo dnf install nginx`".into()
    } else if has("/sbin/apk") {
        "`sudo apk add nginx`".into()
    } else {
        "nginx 1.18 or newer from your package manager".into()
    }
}

/// Why `up` is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal(&'static str),
    /// Nobody reads stdout any more (`moltguard up | head`).
    StdoutClosed,
}

impl Stop {
    fn describe(self) -> String {
        match self {
            Stop::Signal(s) => format!("{s} received"),
            Stop::StdoutClosed => "standard output was closed".into(),
        }
    }

    fn code(self) -> &'static str {
        match self {
            Stop::Signal(s) => s,
            Stop::StdoutClosed => "stdout-closed",
        }
    }
}

/// What is up, for a person (text) or a script (one JSON line).
/// The edge as `up` found it.
struct Edge<'a> {
    nginx_pid: Option<i32>,
    /// Why there is no nginx (and how to install it).
    missing: Option<&'a CliError>,
    /// A key made for this first run, shown once.
    first_key: Option<&'a str>,
}

fn announce(
    ctx: &Ctx,
    cfg: &Config,
    args: &UpArgs,
    out: &Out,
    edge: &Edge<'_>,
    gateway: &Result<std::process::Child, String>,
    llm: &llm_setup::LlmSetup,
) {
    let nginx_pid = edge.nginx_pid;
    let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
    let prefix = init::command_prefix(cfg);
    let gateway_log = cfg.layout.log_dir.join("moltgate.log");
    let nginx_logs = cfg.layout.managed_prefix().join("logs");
    let served = match nginx_pid {
        Some(_) => probe::probe(addr, Duration::from_secs(2)).map_err(|e| e.to_string()),
        None => Err("no nginx".to_string()),
    };
    let next = if nginx_pid.is_none() {
        // Closing the breaker needs the edge: install nginx first (said above).
        Vec::new()
    } else if crate::auth::htpasswd::auth_problem(&cfg.layout.htpasswd).is_some() {
        vec![
            format!("{prefix} auth add-user NAME"),
            format!("{prefix} breaker close --for 30m"),
        ]
    } else {
        vec![format!("{prefix} breaker close --for 30m")]
    };
    if ctx.json {
        out.json(&serde_json::json!({
            "ok": true,
            "event": "up",
            "edge": format!("http://{addr}/"),
            "nginx_pid": nginx_pid,
            "nginx_logs": nginx_logs,
            "gateway": match gateway {
                Ok(child) => serde_json::json!({
                    "pid": child.id(),
                    "listen": format!("127.0.0.1:{}", cfg.settings.edge.upstream_port),
                    "log": gateway_log,
                }),
                Err(why) => serde_json::json!({"error": why}),
            },
            "breaker": match &served {
                Ok(s) => serde_json::json!({"state": s.state, "generation": s.generation}),
                Err(e) => serde_json::json!({"error": e}),
            },
            "nginx_missing": edge.missing.map(|e| serde_json::json!({"error": e.message, "hint": e.hint})),
            "api_key": edge.first_key,
            "llm": llm,
            "guardian": !args.no_guardian && nginx_pid.is_some(),
            "next_steps": next,
        }));
        return;
    }
    out.line("moltguard is up (Ctrl-C stops everything it started)");
    match (nginx_pid, edge.missing) {
        (Some(pid), _) => out.line(format!("  edge:     http://{addr}/  (nginx pid {pid})")),
        (None, Some(e)) => {
            out.line(format!("  edge:     not running: {}", e.message));
            out.line(format!("            {}", e.hint));
            out.line("            meanwhile moltgate runs alone on loopback and enforces the breaker itself: only this machine is served until it is closed");
        }
        (None, None) => out.line("  edge:     not running"),
    }
    match gateway {
        Ok(child) => {
            out.line(format!(
            "  gateway:  moltgate (pid {}) on http://127.0.0.1:{}/ {} (OpenAI-compatible /v1/...)",
            child.id(),
            cfg.settings.edge.upstream_port,
            if nginx_pid.is_some() { "behind the edge" } else { "on loopback" },
        ))
        }
        Err(why) => out.line(format!("  gateway:  not started: {why}")),
    }
    for l in llm.lines(&prefix) {
        out.line(format!("  {l}"));
    }
    out.line(format!(
        "  logs:     nginx {}/, moltgate {}",
        nginx_logs.display(),
        gateway_log.display()
    ));
    match &served {
        Ok(s) => out.line(format!(
            "  breaker:  {} (generation {})",
            s.state.label(),
            s.generation
        )),
        Err(_) if nginx_pid.is_none() => out.line(format!(
            "  breaker:  {} (enforced by moltgate)",
            crate::breaker::store::load(&cfg.layout.state_files(), chrono::Utc::now())
                .record
                .state
                .label()
        )),
        Err(e) => out.line(format!("  breaker:  edge probe failed: {e}")),
    }
    match edge.first_key {
        Some(k) => {
            out.line(format!("  api key:  {k}"));
            out.line(format!("            (admin; shown only now: keep it. Give agents narrower keys: `{prefix} keys create --label agent --scopes operator.write`)"));
        }
        None => out.line(format!(
            "  api keys: `{prefix} keys list`; clients send `Authorization: Bearer <key>`"
        )),
    }
    match next.as_slice() {
        [] => {}
        [one] => out.line(format!(
            "next: `{one}` to let traffic through for half an hour"
        )),
        steps => out.line(format!(
            "next: {}",
            steps
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", then ")
        )),
    }
    if nginx_pid.is_none() {
        out.line(
            "guardian: not started (it watches nginx); run `up` again once nginx is installed",
        );
    } else if args.no_guardian {
        out.line("guardian: off (--no-guardian); nothing opens the breaker for you");
    } else {
        out.line(format!(
            "guardian: scanning every {} and on file changes; findings follow below",
            humantime::format_duration(cfg.settings.guardian.interval)
        ));
    }
}

/// Starts `moltgate` (the binary next to this one) on the upstream port,
/// with keys read from this setup's state dir.
fn start_gateway(cfg: &crate::config::Config) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let gate = exe.with_file_name("moltgate");
    if !gate.is_file() {
        return Err(format!(
            "{} not found (build it: `cargo build --release --bin moltgate`)",
            gate.display()
        ));
    }
    let log = cfg.layout.log_dir.join("moltgate.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut cmd = std::process::Command::new(&gate);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{}", cfg.settings.edge.upstream_port))
        .arg("--state-dir")
        .arg(&cfg.layout.state_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file);
    if let Some(home) = &cfg.layout.home {
        cmd.env("MOLTGUARD_HOME", home);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", gate.display()))?;
    // Running means serving its port: a port someone else holds makes it
    // exit at once, and `up` must not report a gateway that is not there.
    let port = cfg.settings.edge.upstream_port;
    let exited = |child: &mut std::process::Child| {
        child.try_wait().ok().flatten().map(|status| {
            format!(
                "moltgate exited as it started ({status}): is port {port} taken by another program? \
                 See {}",
                log.display()
            )
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Some(why) = exited(&mut child) {
            return Err(why);
        }
        if answers_health(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// Whether what listens on `port` is a moltgate: its `/health` answers.
fn answers_health(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
    if c.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = c.take(4096).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1.") && text.contains("\"status\"")
}

/// SIGINT, SIGTERM and SIGHUP (the terminal closed), caught from before the
/// first child starts: one arriving during startup is kept for [`wait`]
/// instead of killing `up` with nginx left running.
///
/// [`wait`]: Shutdown::wait
struct Shutdown {
    rt: tokio::runtime::Runtime,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    /// None under `nohup`: a hangup must not stop `up` then.
    hup: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    fn catch() -> Result<Self, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let fail = |e: std::io::Error| {
            CliError::error(format!("cannot handle signals: {e}"), "nothing was started")
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let (int, term, hup) = rt
            .block_on(async {
                Ok::<_, std::io::Error>((
                    signal(SignalKind::interrupt())?,
                    signal(SignalKind::terminate())?,
                    if hangup_ignored() {
                        None
                    } else {
                        Some(signal(SignalKind::hangup())?)
                    },
                ))
            })
            .map_err(fail)?;
        Ok(Self { rt, int, term, hup })
    }

    /// Blocks until one of the signals, or until nobody reads stdout any more.
    fn wait(self) -> Stop {
        let Shutdown {
            rt,
            mut int,
            mut term,
            mut hup,
        } = self;
        rt.block_on(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(hangup);
            loop {
                tokio::select! {
                    _ = int.recv() => return Stop::Signal("SIGINT"),
                    _ = term.recv() => return Stop::Signal("SIGTERM"),
                    _ = &mut hangup => return Stop::Signal("SIGHUP"),
                    _ = tick.tick() => {
                        if stdout_hung_up() {
                            return Stop::StdoutClosed;
                        }
                    }
                }
            }
        })
    }
}

/// Whether SIGHUP is ignored, as `nohup` leaves it: catching it then would
/// undo what the person asked for.
#[allow(unsafe_code)]
fn hangup_ignored() -> bool {
    use nix::libc;
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction(2) changes nothing and only
    // writes the current disposition into `current`, valid writable memory.
    let rc = unsafe { libc::sigaction(libc::SIGHUP, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: zeroed is a valid `sigaction`, and on success the kernel filled it in.
    rc == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}
