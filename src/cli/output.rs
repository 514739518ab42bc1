//! Printing for people and for scripts, and the exit codes.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// Exit codes scripts can rely on. [`Exit::TABLE`] says what each means,
/// once: `--help` and the man pages' EXIT STATUS are generated from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: success.
    Ok = 0,
    /// 1: an error.
    Error = 1,
    /// 2: a usage error.
    Usage = 2,
    /// 3: refused.
    Refused = 3,
    /// 4: a breaker change not applied.
    NotApplied = 4,
    /// 5: `status`: unhealthy.
    Unhealthy = 5,
    /// 6: `audit-log verify`: the chain is broken.
    AuditBroken = 6,
    /// 7: `audit`: warnings.
    AuditWarnings = 7,
    /// 8: `audit`: a critical finding.
    AuditCritical = 8,
    /// 9: not found.
    NotFound = 9,
}

impl Exit {
    /// Every code and its meaning, in order.
    pub const TABLE: &'static [(Exit, &'static str)] = &[
        (Exit::Ok, "success (for `breaker`: the state is in force, changed or already so)"),
        (Exit::Error, "an error: a file, nginx or the system failed; the message says which"),
        (Exit::Usage, "a usage error: an unknown flag, value or kind; nothing was done"),
        (Exit::Refused, "refused: a precondition is not met (no user to close with, not root, ...); nothing changed"),
        (Exit::NotApplied, "a breaker change was not applied: rolled back, or nginx stopped"),
        (Exit::Unhealthy, "`status`: the edge does not serve what the state says, or the state had to be repaired"),
        (Exit::AuditBroken, "`audit-log verify`: the hash chain is broken"),
        (Exit::AuditWarnings, "`audit`: warnings, nothing critical"),
        (Exit::AuditCritical, "`audit`: at least one critical finding (the guardian would open the breaker)"),
        (Exit::NotFound, "what was named does not exist: a key, an edge user, a block"),
    ];

    /// The table as docs/BREAKER.md shows it (a test keeps them equal).
    pub fn markdown() -> String {
        let mut s = String::from("| code | meaning |\n|---|---|\n");
        for (code, meaning) in Self::TABLE {
            s.push_str(&format!("| {} | {meaning} |\n", *code as u8));
        }
        s
    }

    /// The table as `--help` prints it.
    pub fn help_text() -> String {
        let mut s = String::from("Exit status:\n");
        for (code, meaning) in Self::TABLE {
            s.push_str(&format!("  {:>2}  {meaning}\n", *code as u8));
        }
        s
    }
}

/// An error with what to do next.
#[derive(Debug)]
pub(crate) struct CliError {
    pub message: String,
    pub hint: String,
    pub exit: Exit,
}

impl CliError {
    pub(crate) fn error(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            exit: Exit::Error,
        }
    }

    pub(crate) fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            exit: Exit::Refused,
        }
    }

    /// What was named (a key, a user, a block) does not exist.
    pub(crate) fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            exit: Exit::NotFound,
        }
    }

    pub(crate) fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            exit: Exit::Usage,
        }
    }

    /// Never panics: with stdout or stderr closed there is no one to tell,
    /// and the exit code still says it.
    pub(crate) fn print(&self, json: bool) {
        use std::io::Write;
        if json {
            let v = serde_json::json!({
                "ok": false,
                "error": self.message,
                "hint": self.hint,
                "exit_code": self.exit as u8,
            });
            let _ = writeln!(std::io::stdout(), "{v}");
        } else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", self.message);
            if !self.hint.is_empty() {
                let _ = writeln!(err, "  what to do: {}", self.hint);
            }
        }
    }
}

impl From<crate::breaker::BreakerError> for CliError {
    fn from(e: crate::breaker::BreakerError) -> Self {
        use crate::breaker::BreakerError as B;
        match e {
            B::Refused { why, hint } => CliError::refused(why, hint),
            B::Io { .. } => CliError::error(
                e.to_string(),
                "check the directory's owner and permissions (root-owned setups need sudo)",
            ),
            B::Unsafe(_) => {
                CliError::error(e.to_string(), "move moltguard's files to a plain path")
            }
            B::Render(_) => CliError::error(
                e.to_string(),
                "move moltguard's files to a plain path, or fix the session key as said",
            ),
            B::Nginx(n) => CliError::error(
                n.to_string(),
                "see nginx's error log; `moltguard nginx test` shows the config problem",
            ),
            B::Unrecorded { .. } => CliError::error(
                e.to_string(),
                "fix what is named (permissions, a damaged audit log: `moltguard audit-log verify`), \
                 then run `moltguard status`, which finishes the change as OPEN",
            ),
        }
    }
}

/// Reads a secret typed by a person: the first line of stdin with
/// `--<flag>`, else a prompt that does not echo (asked twice if `confirm`).
/// Never a command-line argument: those are visible to every user in `ps`.
pub(super) fn read_secret(
    from_stdin: bool,
    flag: &str,
    prompt: &str,
    confirm: bool,
) -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal};
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::error(format!("cannot read standard input: {e}"), ""))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "no terminal to ask on",
            format!("pipe the value in with --{flag}"),
        ));
    }
    let prompt_err = |e: std::io::Error| CliError::error(e.to_string(), "");
    let a = rpassword::prompt_password(prompt).map_err(prompt_err)?;
    if confirm && a != rpassword::prompt_password("Repeat it: ").map_err(prompt_err)? {
        return Err(CliError::usage("the two entries differ", "try again"));
    }
    Ok(a)
}

/// Prints JSON, or runs the text printer.
pub(super) fn emit(json: bool, value: serde_json::Value, text: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        text();
    }
}

/// Lines on stdout for a command that owns child processes (`up`).
///
/// `println!` panics when stdout is gone (`moltguard up | head`: once head
/// exits, every write fails with EPIPE), and a panic would skip stopping
/// nginx and moltgate. A failed write is remembered here instead, so the
/// command can see it, stop what it started, and end.
#[derive(Debug, Default)]
pub(super) struct Out {
    closed: std::cell::Cell<bool>,
}

impl Out {
    /// Prints one line; after a failed write, prints nothing more.
    pub(super) fn line(&self, text: impl std::fmt::Display) {
        use std::io::Write;
        if self.closed.get() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            self.closed.set(true);
        }
    }

    /// One compact JSON value per line (a stream a script can read as it comes).
    pub(super) fn json(&self, value: &serde_json::Value) {
        self.line(value);
    }

    /// Whether a write failed: nobody reads stdout any more.
    pub(super) fn closed(&self) -> bool {
        self.closed.get()
    }
}

/// Whether stdout's reader has gone away without a write to notice it:
/// the write end of a pipe whose reader closed reports POLLERR (Linux) or
/// POLLHUP (macOS), as does a hung-up terminal. A file or /dev/null never does.
pub(super) fn stdout_hung_up() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// "in 29m 59s" / "3m ago".
pub(super) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let d = humantime::format_duration(Duration::from_secs(secs.unsigned_abs())).to_string();
    if secs > 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn the_exit_codes_table_of_the_docs_is_the_code() {
        moltguard_test_support::golden::check_section(
            "docs/BREAKER.md",
            "exit-codes",
            &Exit::markdown(),
        );
    }

    #[test]
    fn the_exit_table_lists_every_code_once_in_order() {
        for (i, (code, meaning)) in Exit::TABLE.iter().enumerate() {
            assert_eq!(*code as usize, i, "{meaning}");
        }
        assert!(Exit::help_text().contains(" 9  what was named does not exist"));
    }
}
