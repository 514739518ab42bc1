//! `moltgate`: the OpenAI-compatible LLM gateway that runs behind nginx.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use moltguard::cli::docgen;
use moltguard::gateway::admin::status;
use moltguard::gateway::config::{self, GatewayConfig};
use moltguard::gateway::secrets::SecretSource;
use moltguard::gateway::{check, workers, Gateway};

#[derive(Parser)]
#[command(
    name = "moltgate",
    version,
    about = "OpenAI-compatible LLM gateway that never hangs"
)]
struct Cli {
    /// TOML config file (default: $MOLTGUARD_HOME/moltgate.toml if set).
    #[arg(long, global = true, env = "MOLTGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on; loopback only.
    #[arg(long, global = true, env = "MOLTGATE_LISTEN")]
    listen: Option<String>,
    /// Where secrets and state live (default: $MOLTGUARD_HOME/state).
    #[arg(long, global = true, env = "MOLTGATE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gateway (default).
    Serve,
    /// Validate the configuration and exit non-zero on any problem.
    CheckConfig,
    /// Print a shell completion script.
    Completions(docgen::CompletionsArgs),
    /// Write man pages (moltgate.1 and one per subcommand), or print the main one.
    Man(docgen::ManArgs),
}

// A request allocates and frees many small buffers (headers, JSON fields,
// futures) on the thread that serves it; mimalloc's per-thread free lists
// make that about a third cheaper than glibc's malloc (see BENCHMARKS.md).
#[cfg(any(
    target_os = "linux",
    all(target_os = "macos", feature = "macos-native")
))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// moltgate's man page sections beyond its flags.
fn man_extras() -> docgen::ManExtras {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    docgen::ManExtras {
        exit_status: vec![
            (
                0,
                "stopped cleanly (SIGTERM, SIGINT), or check-config found no problem".into(),
            ),
            (
                1,
                "failed while serving, or check-config found a problem".into(),
            ),
            (
                2,
                "the configuration is invalid, or the listen address is not loopback".into(),
            ),
        ],
        files: vec![
            s(
                "$MOLTGUARD_HOME/moltgate.toml",
                "the config, when --config is not given",
            ),
            s(
                "STATE_DIR/moltgate.db",
                "keys, bans, modes and incidents (SQLite, shared with `moltguard`)",
            ),
            s(
                "STATE_DIR/secrets/",
                "provider API keys stored by `moltguard secrets set`",
            ),
        ],
        environment: vec![
            s(
                "MOLTGUARD_HOME",
                "where moltgate.toml and the state dir are found",
            ),
            s(
                "LLM_*, GATEWAY_*",
                "every setting of moltgate.toml (docs/GATEWAY.md lists them)",
            ),
            s(
                "MOLTGATE_LOG",
                "the log filter (default info; e.g. debug); RUST_LOG is read when it is unset",
            ),
        ],
        examples: vec![
            s(
                "moltgate check-config",
                "validate the configuration and the provider keys",
            ),
            s(
                "moltgate --listen 127.0.0.1:8765 --state-dir /var/lib/moltguard",
                "serve on loopback",
            ),
        ],
    }
}

fn main() -> ExitCode {
    moltguard::logging::init_gateway();
    let cli = Cli::parse();
    // Generated from the definitions above; no config needed.
    match &cli.cmd {
        Some(Cmd::Completions(a)) => return docgen::run_completions(Cli::command(), a),
        Some(Cmd::Man(a)) => return docgen::run_man(Cli::command(), &man_extras(), a),
        _ => {}
    }
    let mut env = config::process_env();
    if let Some(l) = &cli.listen {
        env.insert("MOLTGATE_LISTEN".into(), l.clone());
    }
    if let Some(d) = &cli.state_dir {
        env.insert("MOLTGATE_STATE_DIR".into(), d.display().to_string());
    }
    let path = cli
        .config
        .clone()
        .or_else(|| config::default_config_path(&env).filter(|p| p.exists()));
    let cfg = match GatewayConfig::load(path.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("moltgate: {e}");
            return ExitCode::from(2);
        }
    };
    let secrets = SecretSource::new(cfg.state_dir.clone(), &env);
    match cli.cmd.unwrap_or(Cmd::Serve) {
        Cmd::CheckConfig => check_config(&cfg, &secrets),
        Cmd::Serve => serve(cfg, secrets),
        Cmd::Completions(_) | Cmd::Man(_) => unreachable!("handled before loading the config"),
    }
}

fn check_config(cfg: &GatewayConfig, secrets: &SecretSource) -> ExitCode {
    let r = check::check(cfg, secrets);
    println!(
        "config: {}",
        cfg.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(environment only)".into())
    );
    println!(
        "listen: {}  default: {}/{}",
        cfg.listen, cfg.default_provider, cfg.default_model
    );
    for l in &r.info {
        println!("  {l}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for e in &r.errors {
        println!("error: {e}");
    }
    if r.errors.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) found", r.errors.len());
        ExitCode::FAILURE
    }
}

fn serve(cfg: GatewayConfig, secrets: SecretSource) -> ExitCode {
    let errors = check::structural_errors(&cfg);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("moltgate: {e}");
        }
        return ExitCode::from(2);
    }
    raise_open_file_limit();
    // One serving thread per core (see gateway::workers); set before the
    // gateway builds its per-thread upstream pools.
    let threads = match moltguard::envvar::number_var::<usize>("MOLTGATE_WORKER_THREADS") {
        Ok(Some(n)) if n > 0 => n,
        Ok(None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Ok(Some(_)) | Err(_) => {
            eprintln!("moltgate: MOLTGATE_WORKER_THREADS must be a number of threads, at least 1");
            return ExitCode::from(2);
        }
    };
    workers::set_count(threads);
    // A small runtime of its own for signals and the startup health check.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moltgate: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listen = cfg.listen;
        let gw = match Gateway::new(cfg, &secrets) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("moltgate: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let listeners = match workers::bind(listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("moltgate: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listeners[0]
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!("moltgate listening on http://{addr} ({threads} serving threads)");
        status::spawn_startup_check(gw.clone());
        moltguard::gateway::admin::history::spawn(&gw);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let handles = workers::serve(gw, listeners, stop_rx);
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        let mut code = ExitCode::SUCCESS;
        for h in handles {
            match tokio::task::spawn_blocking(move || h.join()).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    eprintln!("moltgate: server error: {e}");
                    code = ExitCode::FAILURE;
                }
                _ => code = ExitCode::FAILURE,
            }
        }
        code
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// GATEWAY_MAX_CONNECTIONS (1000 by default) plus upstream connections
/// exceed the common soft limit of 1024 descriptors: take the hard limit.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            // macOS refuses more than OPEN_MAX for the soft limit.
            let want = if cfg!(target_os = "macos") {
                hard.min(10_240)
            } else {
                hard
            };
            if want > soft {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
            }
        }
    }
}
