//! `moltguard init`: a working starter setup in one command.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::breaker;
use crate::config::{self, Config, Panel};
use crate::exec;
use crate::fsutil;
use crate::nginx::control;
use crate::nginx::render;
use clap::Args;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The port nginx listens on (loopback).
    #[arg(long, value_name = "PORT")]
    pub edge_port: Option<u16>,
    /// The loopback port of the upstream nginx protects (moltgate).
    #[arg(long, value_name = "PORT")]
    pub upstream_port: Option<u16>,
    /// Drive the system's nginx instead of a private one moltguard runs.
    #[arg(long)]
    pub system_nginx: bool,
    /// Rewrite moltguard.toml and the nginx site even if they exist, keeping
    /// every setting the file has (breaker state, audit log and users are
    /// never touched).
    #[arg(long)]
    pub force: bool,
    /// Put this agent's panel behind the edge: the edge port serves it, and
    /// moltgate moves to the edge's gateway port (8444).
    #[arg(long, value_enum, value_name = "AGENT")]
    pub agent: Option<Panel>,
    /// Edit the agent's own config (OpenClaw's openclaw.json) to use
    /// moltgate, keeping every secret in its environment file
    /// (~/.openclaw/.env) instead of printing the commands. Refuses a
    /// config with comments rather than lose them; keeps a backup.
    #[arg(long)]
    pub write_agent_config: bool,
    /// A model moltgate routes, to list in the agent's config (repeatable;
    /// default: moltgate's default model).
    #[arg(long, value_name = "MODEL", requires = "write_agent_config")]
    pub agent_model: Vec<String>,
}

/// What init did, for `up` to reuse.
pub(super) struct InitOutcome {
    pub config: Config,
    pub wrote_config: bool,
    pub new_state: bool,
}

pub(super) fn run(ctx: &Ctx, args: InitArgs) -> Result<Exit, CliError> {
    let out = init(ctx, &args)?;
    let cfg = &out.config;
    let l = &cfg.layout;
    let managed = cfg.nginx_managed();
    let include_line = format!(
        "include {};",
        render::quote_path(&l.site_file()).unwrap_or_default()
    );
    let mut next = vec![format!("{} auth add-user NAME", command_prefix(cfg))];
    if managed {
        next.push(format!("{} nginx start", command_prefix(cfg)));
    } else {
        next.push(format!(
            "add this line inside the http {{ }} block of your nginx.conf: {include_line}"
        ));
        next.push("sudo nginx -t && sudo nginx -s reload".into());
    }
    next.push(format!("{} breaker close --for 30m", command_prefix(cfg)));
    let mut agent_config = None;
    if cfg.settings.edge.panel == Panel::Openclaw {
        if args.write_agent_config {
            let w = write_agent_config(ctx, cfg, &args.agent_model)?;
            next.push(format!(
                "restart OpenClaw's gateway to load {} (`openclaw gateway restart`), then open the panel at http://{}:{}/#token=<`openclaw gateway auth-token`>",
                w.config_file.display(),
                cfg.settings.edge.listen_address,
                cfg.settings.edge.port
            ));
            agent_config = Some(w);
        } else {
            next.extend(openclaw_steps(cfg));
        }
    } else if args.write_agent_config {
        return Err(CliError::usage(
            "--write-agent-config needs an agent behind the edge",
            "add --agent openclaw (with --force if moltguard.toml exists)",
        ));
    }
    let value = serde_json::json!({
        "ok": true,
        "config_file": l.config_file,
        "wrote_config": out.wrote_config,
        "new_state": out.new_state,
        "site": l.site_file(),
        "include": l.include_file(),
        "managed_nginx": managed,
        "nginx_conf_line": (!managed).then_some(include_line.clone()),
        "next_steps": next,
        "agent_config": agent_config,
    });
    emit(ctx.json, value, || {
        println!(
            "moltguard is set up in {}",
            l.config_file.parent().unwrap_or(Path::new("/")).display()
        );
        println!(
            "  config:   {}{}",
            l.config_file.display(),
            if out.wrote_config { "" } else { " (kept)" }
        );
        println!("  site:     {}", l.site_file().display());
        println!(
            "  breaker:  {} ({})",
            l.state_file().display(),
            if out.new_state {
                "new: OPEN — all traffic blocked"
            } else {
                "kept"
            }
        );
        if !managed {
            println!();
            println!("Add this one line inside the http {{ }} block of your nginx.conf:");
            println!("    {include_line}");
        }
        if let Some(w) = &agent_config {
            println!();
            println!("OpenClaw's config {}:", w.config_file.display());
            for c in &w.changes {
                println!("  - {c}");
            }
            if let Some(b) = &w.backup {
                println!("  (the previous file is {}: delete it once OpenClaw runs, it may hold the old secrets)", b.display());
            }
        }
        println!();
        println!("Next:");
        for (i, s) in next.iter().enumerate() {
            println!("  {}. {s}", i + 1);
        }
    });
    Ok(Exit::Ok)
}

/// What OpenClaw needs to sit behind the edge with moltgate as its model
/// provider. Both secrets stay out of openclaw.json: OpenClaw substitutes
/// `${VAR}` from its environment (`~/.openclaw/.env` for its service).
fn openclaw_steps(cfg: &Config) -> Vec<String> {
    let e = &cfg.settings.edge;
    let host = e.listen_address;
    let provider = serde_json::json!({
        "baseUrl": format!("http://127.0.0.1:{}/v1", e.upstream_port),
        "api": "openai-completions",
        "apiKey": "${MOLTGATE_API_KEY}",
        "models": [{"id": "MODEL", "name": "MODEL through moltgate"}],
    });
    vec![
        format!(
            "a key for OpenClaw, kept in its environment file: `echo MOLTGATE_API_KEY=$({} keys create --label openclaw --scopes operator.read,operator.write) >> ~/.openclaw/.env && chmod 600 ~/.openclaw/.env`",
            command_prefix(cfg)
        ),
        format!("moltgate as OpenClaw's provider (MODEL: a model moltgate routes): `openclaw config set models.providers.moltgate '{provider}' --strict-json --merge`"),
        "its token from the environment too, and no rate-limit exemption for the edge's loopback: `openclaw config set gateway.auth.token '${OPENCLAW_GATEWAY_TOKEN}'` and `openclaw config set gateway.auth.rateLimit.exemptLoopback false --strict-json`".into(),
        format!(
            "open the panel at http://{host}:{}/#token=<OpenClaw's gateway token> after closing the breaker (the edge asks for your moltguard password once); moltgate through the edge: http://{host}:{}/v1",
            e.port, e.gateway_port
        ),
    ]
}

/// `--write-agent-config`: edits the first agent home's OpenClaw config.
fn write_agent_config(
    ctx: &Ctx,
    cfg: &Config,
    models: &[String],
) -> Result<super::agent_config::Written, CliError> {
    let homes = &cfg.settings.guardian.agent_homes;
    let with_config: Vec<&PathBuf> = homes
        .iter()
        .filter(|h| h.join(".openclaw").is_dir())
        .collect();
    let home = match (with_config.as_slice(), homes.first()) {
        ([one], _) => *one,
        ([], Some(first)) => first,
        ([], None) => {
            return Err(CliError::usage(
                "no agent home to write OpenClaw's config in",
                "set [guardian] agent_homes = [\"/home/you\"] in moltguard.toml",
            ))
        }
        (many, _) => {
            return Err(CliError::refused(
                format!(
                    "more than one agent home has an OpenClaw config: {}",
                    many.iter()
                        .map(|h| h.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "keep the one to edit in [guardian] agent_homes, or edit the others by hand",
            ))
        }
    };
    let req = super::agent_config::Request {
        base_url: format!("http://127.0.0.1:{}/v1", cfg.settings.edge.upstream_port),
        models: models.to_vec(),
        default_model: super::llm_setup::default_model(cfg),
    };
    super::agent_config::write(&home.join(".openclaw"), &req, || {
        super::gateway_cmd::create_key(ctx, "openclaw", "operator.read,operator.write")
    })
}

/// `moltguard` plus the flags that found this setup, for printed commands.
pub(super) fn command_prefix(cfg: &Config) -> String {
    match &cfg.layout.home {
        Some(h) => format!(
            "moltguard --home {}",
            crate::breaker::remedy::quote(&h.to_string_lossy())
        ),
        None if exec::running_as_root() => "sudo moltguard".into(),
        None => "moltguard".into(),
    }
}

pub(super) fn init(ctx: &Ctx, args: &InitArgs) -> Result<InitOutcome, CliError> {
    let mut cfg = ctx.config_allow_missing()?;
    let l = cfg.layout.clone();
    let root = exec::running_as_root();
    let config_dir = l
        .config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Some(home) = &l.home {
        ensure_dir(home, 0o755)?;
    }
    ensure_dir(&config_dir, 0o755)?;

    let wrote_config = !cfg.config_file_found || args.force;
    if wrote_config {
        let managed =
            !args.system_nginx && (l.home.is_some() || cfg.settings.nginx.managed == Some(true));
        let binary = match exec::resolve(
            "nginx",
            cfg.settings.nginx.binary.as_deref(),
            exec::NGINX_CANDIDATES,
        ) {
            Ok(p) => Some(p),
            // Not installed yet: the file leaves it to be found later.
            Err(exec::ExecError::NotFound { .. }) => None,
            Err(e) => return Err(CliError::refused(e.to_string(), e.hint())),
        };
        // A rewrite keeps every value the file has; a new file starts from
        // the defaults and the home of the person setting up.
        let mut settings = if cfg.config_file_found {
            cfg.settings.clone()
        } else {
            let mut s = config::Settings::default();
            s.guardian.agent_homes = agent_home().into_iter().collect();
            s
        };
        settings.nginx.managed = None;
        settings.nginx.binary = None;
        if let Some(p) = args.edge_port {
            settings.edge.port = p;
        }
        if let Some(p) = args.upstream_port {
            settings.edge.upstream_port = p;
        }
        if let Some(agent) = args.agent {
            settings.edge.panel = agent;
            // The panel's port is the agent's own, as its config says.
            if let Some(port) = settings
                .guardian
                .agent_homes
                .iter()
                .flat_map(|h| crate::guardian::checks::check_agent(h, true).configs)
                .map(|c| c.port)
                .next()
            {
                settings.guardian.agent_port = port;
            }
        }
        let text = config::starter_toml(&settings, managed, binary.as_deref());
        config::parse(&l.config_file, &text)
            .map_err(|e| CliError::usage(e.to_string(), "choose other ports"))?;
        fsutil::write_atomic(&l.config_file, text.as_bytes(), 0o644)
            .map_err(|e| io_err(&l.config_file, e))?;
        cfg = ctx.config()?;
    } else if args.edge_port.is_some() || args.upstream_port.is_some() || args.agent.is_some() {
        return Err(CliError::refused(
            format!(
                "{} exists; the ports or agent given on the command line would be ignored",
                l.config_file.display()
            ),
            "pass --force to rewrite it with them (every other setting is kept), or edit the [edge] section",
        ));
    }

    let l = &cfg.layout;
    // The nginx identity matters only when we are root. It does not depend
    // on the binary: without nginx installed yet, init still writes
    // everything, readable by the nginx installed later.
    let run_as = control::nginx_identity(&cfg).ok().flatten();
    ensure_dir(&l.state_dir, 0o755)?;
    ensure_dir(&l.log_dir, 0o750)?;
    ensure_dir(&l.nginx_dir, 0o750)?;
    if root {
        control::share_with_nginx(&l.nginx_dir, run_as, 0o750)
            .map_err(|e| io_err(&l.nginx_dir, e))?;
    }
    let site = render::render_site(&cfg).map_err(|e| CliError::refused(e.to_string(), ""))?;
    write_if(&l.site_file(), &site, args.force, run_as)?;
    if cfg.nginx_managed() {
        let main =
            render::render_managed_main(&cfg).map_err(|e| CliError::refused(e.to_string(), ""))?;
        write_if(&l.managed_main_conf(), &main, args.force, run_as)?;
    }
    let new_state = breaker::initialize(&cfg, run_as)?;
    if root {
        if let Some(home) = &l.home {
            // A managed nginx runs unprivileged and must reach its files.
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err(home, e))?;
        }
    }
    Ok(InitOutcome {
        config: cfg,
        wrote_config,
        new_state,
    })
}

/// The home of the person setting up: under sudo, the invoking user's, not root's.
fn agent_home() -> Option<PathBuf> {
    let from_sudo = std::env::var("SUDO_USER")
        .ok()
        .and_then(|u| nix::unistd::User::from_name(&u).ok().flatten())
        .map(|u| u.dir);
    from_sudo
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .filter(|p| p.is_absolute())
}

fn ensure_dir(p: &Path, mode: u32) -> Result<(), CliError> {
    fsutil::ensure_dir(p, mode).map_err(|e| io_err(p, e))
}

fn write_if(
    path: &Path,
    text: &str,
    force: bool,
    run_as: Option<control::RunAs>,
) -> Result<(), CliError> {
    if path.exists() && !force {
        return Ok(());
    }
    control::write_for_nginx(path, text.as_bytes(), run_as).map_err(|e| io_err(path, e))
}

fn io_err(p: &Path, e: std::io::Error) -> CliError {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
        "run with sudo for the system-wide setup, or use --home DIR for a private one"
    } else {
        "check the path and free disk space"
    };
    CliError::error(format!("cannot write {}: {e}", p.display()), hint)
}
