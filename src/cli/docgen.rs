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

/// The main man page (roff), section 1.
pub fn man_page(cmd: Command) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    Ok(buf)
}

/// Writes `NAME.1` and one page per visible subcommand, recursively
/// (`NAME-breaker.1`, `NAME-breaker-open.1`, ...) into `dir`; returns the
/// files written, the main page first.
pub fn write_man_pages(cmd: Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(cmd: &Command, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        out.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, out)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // Built once at the top so subcommands get their full names
    // (`moltguard-breaker`); the implicit `help` subcommand gets no page.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    walk(&cmd, dir, &mut written)?;
    Ok(written)
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
pub fn run_man(cmd: Command, args: &ManArgs) -> ExitCode {
    let name = cmd.get_name().to_string();
    match &args.out {
        None => report(man_page(cmd).and_then(|page| write_stdout(&page))),
        Some(dir) => match write_man_pages(cmd, dir) {
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
        let page = man_page(cmd).map_err(stdout_err)?;
        write_stdout(&page).map_err(stdout_err)?;
        return Ok(Exit::Ok);
    };
    let files = write_man_pages(cmd, dir).map_err(|e| {
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
        let files = write_man_pages(moltguard(), dir.path()).unwrap();
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
