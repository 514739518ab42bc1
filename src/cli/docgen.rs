//! Shell completions and man pages, generated from a binary's clap
//! definition: `moltguard completions|man` and `moltgate completions|man`
//! share this, so what they print can never drift from the real flags.
//!
//! Both print through [`write_stdout`]: `moltguard completions bash | head`
//! ends quietly instead of panicking on the closed pipe.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use clap::{Args, Command};
use clap_complete::Shell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `completions <SHELL>`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `man [--out DIR]`.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// Write the main page and one page per subcommand (e.g. moltguard-breaker.1)
    /// into DIR, created if missing. Without it, the main page goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The completion script for `shell`, for the binary `cmd` describes.
pub fn completion_script(mut cmd: Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    buf
}

/// What a binary's man pages say beyond its flags: the sections clap
/// knows nothing of. The exit codes come from the binary's one table.
#[derive(Debug, Clone, Default)]
pub struct ManExtras {
    /// Exit codes and their meanings.
    pub exit_status: Vec<(u8, String)>,
    /// Paths and what they hold.
    pub files: Vec<(String, String)>,
    /// Variables beyond those a flag reads (those are listed from the flags).
    pub environment: Vec<(String, String)>,
    /// Command lines and what they do; each shows on the main page and on
    /// the page of the subcommand it runs.
    pub examples: Vec<(String, String)>,
}

/// The main man page (roff), section 1.
pub fn man_page(cmd: Command, extras: &ManExtras) -> io::Result<Vec<u8>> {
    let mut cmd = without_exit_help(cmd);
    cmd.build();
    page(&cmd, extras, true)
}

/// The exit table in `--help` becomes the EXIT STATUS section instead of
/// clap_mangen's EXTRA.
fn without_exit_help(cmd: Command) -> Command {
    cmd.after_help(None::<&str>).after_long_help(None::<&str>)
}

/// One page: clap_mangen's sections, then ours before VERSION.
fn page(cmd: &Command, extras: &ManExtras, main: bool) -> io::Result<Vec<u8>> {
    use roff::{bold, roman, Roff};
    let mut base = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut base)?;
    let base = String::from_utf8_lossy(&base).into_owned();

    let mut r = Roff::new();
    let list = |r: &mut Roff, title: &str, items: &[(String, String)]| {
        if items.is_empty() {
            return;
        }
        r.control("SH", [title]);
        for (term, what) in items {
            r.control("TP", []);
            r.text([bold(term.as_str())]);
            r.text([roman(what.as_str())]);
        }
    };
    let exits: Vec<(String, String)> = extras
        .exit_status
        .iter()
        .map(|(c, m)| (c.to_string(), m.clone()))
        .collect();
    list(&mut r, "EXIT STATUS", &exits);
    let mut env: Vec<(String, String)> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let var = a.get_env()?.to_string_lossy().into_owned();
            let flag = a.get_long().map(|l| format!("--{l}")).unwrap_or_default();
            Some((var, format!("the same as {flag}")))
        })
        .collect();
    env.extend(extras.environment.iter().cloned());
    list(&mut r, "ENVIRONMENT", &env);
    list(&mut r, "FILES", &extras.files);
    // The page's command line: `moltguard-breaker-close` runs as `moltguard breaker close`.
    let invoked = format!(
        "{} ",
        cmd.get_display_name()
            .unwrap_or(cmd.get_name())
            .replace('-', " ")
    );
    let examples: Vec<(String, String)> = extras
        .examples
        .iter()
        .filter(|(line, _)| main || format!("{line} ").starts_with(&invoked))
        .cloned()
        .collect();
    if !examples.is_empty() {
        r.control("SH", ["EXAMPLES"]);
        for (line, what) in &examples {
            r.control("TP", []);
            r.text([roman(what.as_str())]);
            r.control("EX", []);
            r.text([roman(line.as_str())]);
            r.control("EE", []);
        }
    }
    // Our sections without roff's preamble, which the page already has.
    let preamble = Roff::new().render();
    let ours = r.render();
    let ours = ours.strip_prefix(&preamble).unwrap_or(&ours);
    let text = match base.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &base[..at], ours, &base[at + 1..]),
        None => format!("{base}{ours}"),
    };
    Ok(text.into_bytes())
}

/// Writes `NAME.1` and one page per visible subcommand, recursively
/// (`NAME-breaker.1`, `NAME-breaker-open.1`, ...) into `dir`; returns the
/// files written, the main page first.
pub fn write_man_pages(cmd: Command, extras: &ManExtras, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(
        cmd: &Command,
        extras: &ManExtras,
        main: bool,
        dir: &Path,
        out: &mut Vec<PathBuf>,
    ) -> io::Result<()> {
        let file = dir.join(clap_mangen::Man::new(cmd.clone()).get_filename());
        crate::fsutil::write_atomic(&file, &page(cmd, extras, main)?, 0o644)?;
        out.push(file);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, extras, false, dir, out)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // Built once at the top so subcommands get their full names
    // (`moltguard-breaker`); the implicit `help` subcommand gets no page.
    let mut cmd = without_exit_help(cmd).disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    walk(&cmd, extras, true, dir, &mut written)?;
    Ok(written)
}

/// moltguard's sections: its exit table, its files on this platform, examples.
pub fn moltguard_extras() -> ManExtras {
    let d = crate::config::PlatformDefaults::detect();
    let conf = d.config_dir.display().to_string();
    let state = d.state_dir.display().to_string();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    ManExtras {
        exit_status: Exit::TABLE
            .iter()
            .map(|(c, m)| (*c as u8, m.to_string()))
            .collect(),
        files: vec![
            s(
                &format!("{conf}/moltguard.toml"),
                "the config (with --home DIR: DIR/moltguard.toml)",
            ),
            s(
                &format!("{state}/breaker.json"),
                "the breaker state, written atomically",
            ),
            s(
                &format!("{state}/audit.jsonl"),
                "every breaker transition, hash-chained",
            ),
            s(
                &format!("{state}/moltgate.db"),
                "moltgate's keys, bans, modes and incidents (SQLite)",
            ),
            s(
                &format!("{conf}/nginx/breaker.conf"),
                "the nginx include rendered from the state",
            ),
            s(
                &format!("{conf}/htpasswd"),
                "the users allowed through the edge",
            ),
            s(&format!("{}", d.log_dir.display()), "logs"),
        ],
        environment: vec![
            s(
                "MOLTGUARD_LOG",
                "the log filter of the guardian and other log lines (default info; e.g. debug)",
            ),
            s("NO_COLOR", "no colour in text output"),
            s(
                "SUDO_USER",
                "under sudo, the user whose agent setup is meant",
            ),
        ],
        examples: vec![
            s(
                "moltguard up",
                "run the whole stack in the foreground on its defaults",
            ),
            s(
                "moltguard status --json",
                "the breaker state, what nginx really serves, and each service",
            ),
            s(
                "moltguard breaker close --for 30m --reason demo",
                "let traffic through (password required) for 30 minutes",
            ),
            s(
                "moltguard breaker open --reason \"leaving\"",
                "block everything now",
            ),
            s(
                "moltguard breaker half-open --for 2h",
                "only this machine, with a password, for two hours",
            ),
            s("moltguard audit", "run the guardian's checks once"),
            s(
                "moltguard incidents --kind auth_failure --since 2h --json",
                "moltgate's failed logins of the last two hours",
            ),
            s("moltguard blocked remove --all", "lift every ban"),
            s(
                "moltguard keys create --label agent --scopes operator.write",
                "an API key for an agent (shown once)",
            ),
            s(
                "sudo moltguard install --dry-run",
                "what installing the stack as services would write and run",
            ),
        ],
    }
}

/// Writes to stdout. A reader that went away (`| head`) is not an error:
/// there is nobody left to tell.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `completions` for a binary without moltguard's output conventions (moltgate).
pub fn run_completions(cmd: Command, args: &CompletionsArgs) -> ExitCode {
    report(write_stdout(&completion_script(cmd, args.shell)))
}

/// `man` for a binary without moltguard's output conventions (moltgate).
pub fn run_man(cmd: Command, extras: &ManExtras, args: &ManArgs) -> ExitCode {
    let name = cmd.get_name().to_string();
    match &args.out {
        None => report(man_page(cmd, extras).and_then(|page| write_stdout(&page))),
        Some(dir) => match write_man_pages(cmd, extras, dir) {
            Ok(files) => {
                let mut text = format!("wrote {} man pages to {}:\n", files.len(), dir.display());
                for f in &files {
                    text.push_str(&format!("  {}\n", f.display()));
                }
                report(write_stdout(text.as_bytes()))
            }
            Err(e) => {
                eprintln!("{name}: cannot write man pages to {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// `moltguard completions`.
pub(crate) fn completions_cmd(args: &CompletionsArgs) -> Result<Exit, CliError> {
    use clap::CommandFactory;
    write_stdout(&completion_script(super::Cli::command(), args.shell)).map_err(stdout_err)?;
    Ok(Exit::Ok)
}

/// `moltguard man [--out DIR]`; with `--json`, the list of files written.
pub(crate) fn man_cmd(ctx: &Ctx, args: &ManArgs) -> Result<Exit, CliError> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    let Some(dir) = &args.out else {
        let page = man_page(cmd, &moltguard_extras()).map_err(stdout_err)?;
        write_stdout(&page).map_err(stdout_err)?;
        return Ok(Exit::Ok);
    };
    let files = write_man_pages(cmd, &moltguard_extras(), dir).map_err(|e| {
        CliError::error(
            format!("cannot write man pages to {}: {e}", dir.display()),
            "pick a directory you can write to, e.g. --out ./man",
        )
    })?;
    emit(
        ctx.json,
        serde_json::json!({"ok": true, "dir": dir, "files": files}),
        || {
            println!("wrote {} man pages to {}", files.len(), dir.display());
            println!("read one with `man -l {}`", files[0].display());
        },
    );
    Ok(Exit::Ok)
}

fn stdout_err(e: io::Error) -> CliError {
    CliError::error(format!("cannot write to standard output: {e}"), "")
}

fn report(r: io::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn moltguard() -> Command {
        crate::cli::Cli::command()
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let text = String::from_utf8(completion_script(moltguard(), shell)).unwrap();
            for sub in [
                "breaker",
                "half-open",
                "secrets",
                "completions",
                "man",
                "up",
            ] {
                assert!(text.contains(sub), "{shell}: no {sub:?} in the script");
            }
        }
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_man_pages(moltguard(), &moltguard_extras(), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names[0], "moltguard.1");
        for n in [
            "moltguard-breaker.1",
            "moltguard-breaker-close.1",
            "moltguard-up.1",
            "moltguard-secrets-set.1",
            "moltguard-man.1",
        ] {
            assert!(names.iter().any(|x| x == n), "no {n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x.contains("help")), "{names:?}");
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                text.starts_with(".ie") || text.contains("\n.TH "),
                "{}",
                f.display()
            );
        }
    }
}
