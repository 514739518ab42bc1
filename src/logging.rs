//! Logging through `tracing`: text or JSON on stderr (journald captures a
//! systemd service's stderr), plus macOS unified logging when built with
//! `macos-native`.
//!
//! On macOS, watch it with:
//! `log stream --level info --predicate 'subsystem == "dev.moltguard"'`
//! (or filter Console.app on the subsystem `dev.moltguard`).
//!
//! Log lines are for grep, fail2ban, CrowdSec and Loki, so whatever a
//! client sent cannot shape them (CWE-117): in text, every field value and
//! the message are escaped ([`escape`]: no raw CR, LF, ESC or other control
//! or bidi character), fields are `name=value`; JSON escapes by itself.
//! Colour only on a terminal, and never with `NO_COLOR` set.
//!
//! Never log secrets: findings carry redacted excerpts only.

use std::borrow::Cow;
use std::fmt::{Debug, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// The unified-logging subsystem moltguard logs under on macOS.
pub const OSLOG_SUBSYSTEM: &str = "dev.moltguard";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// Installs the global subscriber for `moltguard`. `MOLTGUARD_LOG`
/// overrides the level filter (e.g. `debug`, `moltguard=trace`).
pub fn init(format: LogFormat, category: &'static str) {
    let filter =
        EnvFilter::try_from_env("MOLTGUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    install(filter, format, category);
}

/// Installs the global subscriber for `moltgate` (text). `MOLTGATE_LOG`
/// sets the filter, as `MOLTGUARD_LOG` does for `moltguard`.
pub fn init_gateway() {
    let filter = gateway_filter(|k| std::env::var(k).ok());
    install(EnvFilter::new(filter), LogFormat::Text, "gateway");
}

/// moltgate's filter directives: `MOLTGATE_LOG`, else `RUST_LOG` (what
/// moltgate read before, still honoured), else `info`. A value that is not
/// a valid filter falls through to the next, as `MOLTGUARD_LOG` falls back
/// to `info`.
fn gateway_filter(env: impl Fn(&str) -> Option<String>) -> String {
    ["MOLTGATE_LOG", "RUST_LOG"]
        .into_iter()
        .filter_map(env)
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty() && EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| "info".into())
}

fn install(filter: EnvFilter, format: LogFormat, category: &'static str) {
    let stderr = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(ansi_for_stderr())
            .fmt_fields(EscapedFields)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(stderr);
    #[cfg(all(target_os = "macos", feature = "macos-native"))]
    let registry = registry.with(tracing_oslog::OsLogger::new(OSLOG_SUBSYSTEM, category));
    #[cfg(not(all(target_os = "macos", feature = "macos-native")))]
    let _ = category;
    let _ = registry.try_init();
}

/// Colour codes only for a person at a terminal: never into a file, a pipe
/// or journald, and never when `NO_COLOR` is set (<https://no-color.org>).
pub fn ansi_for_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether `c` may not appear raw in a log line: control characters (CR,
/// LF, ESC, DEL, C1), Unicode line separators and bidi overrides (which
/// reorder what a person reads).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character `needs_escape` written as `\n`, `\r`, `\t`
/// or `\u{..}`, and `\` as `\\` (so an escape cannot be forged either).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Formats fields as `message name=value ...`, every value [`escape`]d
/// and Display-like (a `&str` without quotes).
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut v = EscapingVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct EscapingVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl EscapingVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let value = escape(value);
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            write!(self.writer, "{sep}{}={value}", field.name())
        };
    }
}

impl Visit for EscapingVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        // `%x` fields arrive here too, Debug-formatted as their Display.
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moltgate_reads_moltgate_log_then_rust_log() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(gateway_filter(env(&[])), "info");
        assert_eq!(gateway_filter(env(&[("RUST_LOG", "debug")])), "debug");
        assert_eq!(
            gateway_filter(env(&[("MOLTGATE_LOG", "warn"), ("RUST_LOG", "debug")])),
            "warn"
        );
        // Not a filter: the next source decides.
        assert_eq!(
            gateway_filter(env(&[
                ("MOLTGATE_LOG", "moltgate=[bad"),
                ("RUST_LOG", "debug")
            ])),
            "debug"
        );
        assert_eq!(gateway_filter(env(&[("MOLTGATE_LOG", " ")])), "info");
    }
    use std::sync::{Arc, Mutex};

    #[test]
    fn escape_rules() {
        assert!(matches!(escape("plain text: ok"), Cow::Borrowed(_)));
        assert_eq!(escape("a\r\nb\tc"), "a\\r\\nb\\tc");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        assert_eq!(escape("line\u{2028}sep"), "line\\u{2028}sep");
        // A literal backslash-n in the input is not a forged newline.
        assert_eq!(escape("a\\nb"), "a\\\\nb");
        assert_eq!(escape("über ✓"), "über ✓");
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_hostile_value_stays_on_one_line_and_fields_are_plain() {
        let buf = Buf::default();
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let detail = "GET /x?q=1\r\n2026-12-03T00:00:00Z INFO forged line\u{1b}[2J";
            tracing::info!(
                client_ip = "203.0.113.9",
                rule = %"942100",
                location = "a",
                "security incident: {detail}"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        assert!(out.contains("security incident: GET /x?q=1\\r\\n2026-12-03T00:00:00Z INFO forged line\\u{1b}[2J"), "{out}");
        assert!(
            out.contains(" client_ip=203.0.113.9 rule=942100 location=a"),
            "{out}"
        );
    }
}
