//! The `moltguard` command line: argument definitions and dispatch.
//!
//! Every command prints for people by default and JSON with `--json`, and
//! exits with a code scripts can rely on (see [`Exit`]).

mod agent_config;
mod audit_cmd;
mod auth_cmd;
mod breaker_cmd;
pub mod docgen;
mod expiry_watch;
mod gateway_cmd;
mod guardian_cmd;
mod init;
mod llm_setup;
mod nginx_cmd;
mod output;
mod secrets_cmd;
mod service_cmd;
mod status;
mod up;

use crate::config::{self, Config, Overrides};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::gateway::admin::store::IncidentFilter;
use crate::gateway::inbound::Mode;
use output::CliError;
pub use output::Exit;

/// The `moltguard` command line: global flags and a subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "moltguard",
    version,
    about = "Keeps your AI agent's control panel off the public internet.",
    long_about = "moltguard puts a circuit breaker in front of your agent's panel, in nginx.\n\
                  OPEN = all traffic blocked (the default), HALF-OPEN = only this machine, with a password,\n\
                  CLOSED = traffic flows, password required.",
    after_help = "Exit status: 0 ok; 1 error; 2 usage; 3 refused; 4 not applied; 5 unhealthy; \
                  6-8 audit; 9 not found (--help says more).",
    after_long_help = Exit::help_text()
)]
pub struct Cli {
    /// Put everything (config, state, logs, the nginx prefix) under DIR.
    #[arg(long, global = true, env = "MOLTGUARD_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// The config file [default: DIR/moltguard.toml with --home, else the platform's].
    #[arg(long, global = true, env = "MOLTGUARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where breaker state and the audit log live.
    #[arg(long, global = true, env = "MOLTGUARD_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Absolute path of the nginx binary.
    #[arg(long, global = true, env = "MOLTGUARD_NGINX", value_name = "PATH")]
    nginx_bin: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the breaker state, what it means, and whether nginx really serves it.
    Status,
    /// Change the breaker state.
    #[command(subcommand)]
    Breaker(breaker_cmd::BreakerCmd),
    /// Write a working starter setup (config, nginx site, breaker include).
    Init(init::InitArgs),
    /// Manage the users allowed through the edge (the htpasswd file).
    #[command(subcommand)]
    Auth(auth_cmd::AuthCmd),
    /// Show the audit log of breaker transitions, or verify its hash chain.
    AuditLog(audit_cmd::AuditArgs),
    /// Start, stop, reload or test the nginx moltguard drives.
    #[command(subcommand)]
    Nginx(nginx_cmd::NginxCmd),
    /// Run the guardian's checks once and report (acts on no finding; repairs toward OPEN like every command).
    Audit,
    /// The guardian daemon.
    #[command(subcommand)]
    Guardian(guardian_cmd::GuardianCmd),
    /// Store provider API keys for moltgate outside the environment.
    #[command(subcommand)]
    Secrets(secrets_cmd::SecretsCmd),
    /// Install the stack as system services: the edge (nginx), moltgate and the guardian.
    Install(service_cmd::ServiceArgs),
    /// Remove the services `install` wrote (the breaker keeps its state).
    Uninstall(service_cmd::ServiceArgs),
    /// Bring the stack up in the foreground (init if needed, start nginx); Ctrl-C stops it.
    Up(up::UpArgs),
    /// moltgate API keys: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(gateway_cmd::KeysCmd),
    /// moltgate lockdown: only administrator keys from this machine are served.
    Lockdown {
        #[arg(value_enum, default_value = "status")]
        switch: gateway_cmd::Switch,
    },
    /// moltgate kill switch: no LLM call leaves the gateway.
    KillSwitch {
        #[arg(value_enum, default_value = "status")]
        switch: gateway_cmd::Switch,
    },
    /// IP addresses and CIDR blocks moltgate refuses.
    #[command(subcommand)]
    Blocked(gateway_cmd::BlockedCmd),
    /// moltgate's security incidents, oldest first (in --json too).
    Incidents {
        /// How many of the newest to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this kind.
        #[arg(long, value_enum)]
        kind: Option<crate::gateway::inbound::IncidentKind>,
        /// Only from this client address.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// Only at or after this time: RFC 3339 (2026-12-03T20:00:00Z) or an age (90s, 30m, 2h, 7d).
        #[arg(long, value_parser = gateway_cmd::parse_since)]
        since: Option<i64>,
    },
    /// Print a shell completion script (see README: where to put it).
    Completions(docgen::CompletionsArgs),
    /// Write man pages (moltguard.1 and one per subcommand), or print the main one.
    Man(docgen::ManArgs),
}

/// Entry point of the `moltguard` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `up` outlives its reader to stop its children; completions and man
    // pages already end cleanly on a closed pipe.
    if !matches!(
        cli.command,
        Command::Up(_) | Command::Completions(_) | Command::Man(_)
    ) {
        quiet_broken_pipe();
    }
    let json = cli.json;
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            e.print(json);
            e.exit
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> Result<Exit, CliError> {
    let overrides = Overrides {
        home: cli.home.clone(),
        config: cli.config.clone(),
        state_dir: cli.state_dir.clone(),
        nginx_binary: cli.nginx_bin.clone(),
    };
    let ctx = Ctx {
        overrides,
        json: cli.json,
    };
    match cli.command {
        Command::Status => status::run(&ctx),
        Command::Breaker(cmd) => breaker_cmd::run(&ctx, cmd),
        Command::Init(args) => init::run(&ctx, args),
        Command::Auth(cmd) => auth_cmd::run(&ctx, cmd),
        Command::AuditLog(args) => audit_cmd::run(&ctx, args),
        Command::Nginx(cmd) => nginx_cmd::run(&ctx, cmd),
        Command::Up(args) => up::run(&ctx, args),
        Command::Audit => guardian_cmd::audit(&ctx),
        Command::Secrets(cmd) => secrets_cmd::run(&ctx, cmd),
        Command::Install(args) => service_cmd::install(&ctx, args),
        Command::Uninstall(args) => service_cmd::uninstall(&ctx, args),
        Command::Guardian(cmd) => guardian_cmd::run(&ctx, cmd),
        Command::Keys(cmd) => gateway_cmd::keys(&ctx, cmd),
        Command::Lockdown { switch } => gateway_cmd::mode(&ctx, Mode::Lockdown, switch),
        Command::KillSwitch { switch } => gateway_cmd::mode(&ctx, Mode::Emergency, switch),
        Command::Blocked(cmd) => gateway_cmd::blocked(&ctx, cmd),
        Command::Incidents {
            limit,
            kind,
            ip,
            since,
        } => {
            let filter = IncidentFilter {
                kind,
                client_ip: ip.map(|ip| ip.to_string()),
                since_ms: since,
            };
            gateway_cmd::incidents(&ctx, limit, &filter)
        }
        Command::Completions(args) => docgen::completions_cmd(&args),
        Command::Man(args) => docgen::man_cmd(&ctx, &args),
    }
}

/// `moltguard status | head`: end quietly when the reader goes, like any
/// Unix tool, instead of panicking in `println!` (Rust ignores SIGPIPE).
#[allow(unsafe_code)]
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of `main`, before any thread exists;
    // restoring a signal's default disposition installs no Rust handler.
    unsafe {
        nix::libc::signal(nix::libc::SIGPIPE, nix::libc::SIG_DFL);
    }
}

/// What every command gets: how to find the config, and how to print.
pub(crate) struct Ctx {
    overrides: Overrides,
    json: bool,
}

impl Ctx {
    /// Loads the config; a missing config file is an error that says to run init.
    fn config(&self) -> Result<Config, CliError> {
        let c = self.config_allow_missing()?;
        if !c.config_file_found {
            return Err(CliError::refused(
                format!("no moltguard config at {}", c.layout.config_file.display()),
                match &c.layout.home {
                    Some(h) => format!("run `moltguard --home {} init` first", h.display()),
                    None => {
                        "run `sudo moltguard init` first, or pass --home DIR / --config FILE".into()
                    }
                },
            ));
        }
        Ok(c)
    }

    fn config_allow_missing(&self) -> Result<Config, CliError> {
        config::load(&self.overrides).map_err(|e| {
            CliError::error(
                e.to_string(),
                "fix the file, or move it aside and run `moltguard init`",
            )
        })
    }
}
