//! The command line as a person meets it: completions and man pages of both
//! binaries, and `moltguard up` (a real nginx and moltgate) ending cleanly
//! however it is stopped, its stdout closed included (`up | head`).

#[path = "support/stack.rs"]
#[allow(dead_code)] // shared by several test binaries; each uses a part
mod stack;

use stack::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn moltgate() -> &'static str {
    env!("CARGO_BIN_EXE_moltgate")
}

fn output(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash offers after `words` (the last one being completed).
fn bash_complete(bin: &str, words: &[&str]) -> Vec<String> {
    let name = Path::new(bin).file_name().unwrap().to_str().unwrap();
    let script = output(bin, &["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let cur = words[cword];
    let prev = if cword > 0 { words[cword - 1] } else { name };
    let probe = format!(
        "source {}; COMP_WORDS=({name} {}); COMP_CWORD={}; _{name} {name} '{cur}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        cword + 1
    );
    output("bash", &["-c", &probe])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_the_real_subcommands_of_both_binaries() {
    let top = bash_complete(bin(), &[""]);
    for sub in ["status", "breaker", "up", "secrets", "completions", "man"] {
        assert!(top.iter().any(|w| w == sub), "no {sub} in {top:?}");
    }
    assert_eq!(bash_complete(bin(), &["breaker", "half"]), ["half-open"]);
    let shells = bash_complete(bin(), &["completions", ""]);
    for sh in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.iter().any(|w| w == sh), "no {sh} in {shells:?}");
    }
    let gate = bash_complete(moltgate(), &[""]);
    for sub in ["serve", "check-config", "completions", "man"] {
        assert!(gate.iter().any(|w| w == sub), "no {sub} in {gate:?}");
    }
    // The other shells' scripts name the subcommands too.
    for sh in ["zsh", "fish", "elvish", "powershell"] {
        let s = output(bin(), &["completions", sh]);
        assert!(s.contains("half-open") && s.contains("audit-log"), "{sh}");
    }
}

/// `man -l` renders it (groff warnings are failures) where man is installed;
/// elsewhere, at least the roff header must be there.
fn assert_man_page_renders(page: &Path) {
    let text = std::fs::read_to_string(page).unwrap();
    assert!(text.contains("\n.TH "), "{}: no .TH", page.display());
    if which::which("man").is_err() || which::which("groff").is_err() {
        return;
    }
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(out.status.success(), "man -l {}", page.display());
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.contains("NAME") && rendered.contains("SYNOPSIS"));
    let warnings = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    assert!(
        warnings.stderr.is_empty(),
        "{}: {}",
        page.display(),
        String::from_utf8_lossy(&warnings.stderr)
    );
}

#[test]
fn man_pages_of_both_binaries_render() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("printed.1");
    std::fs::write(&main, output(bin(), &["man"])).unwrap();
    assert_man_page_renders(&main);

    let out = dir.path().join("man1");
    let (code, v) = {
        let o = Command::new(bin())
            .args(["--json", "man", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code(), v)
    };
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["files"].as_array().unwrap().len(), {
        std::fs::read_dir(&out).unwrap().count()
    });
    for name in [
        "moltguard.1",
        "moltguard-breaker.1",
        "moltguard-breaker-close.1",
        "moltguard-up.1",
    ] {
        assert_man_page_renders(&out.join(name));
    }
    let close = std::fs::read_to_string(out.join("moltguard-breaker-close.1")).unwrap();
    assert!(close.contains("MOLTGUARD_HOME"), "env vars are documented");

    output(moltgate(), &["man", "--out", out.to_str().unwrap()]);
    for name in ["moltgate.1", "moltgate-check-config.1", "moltgate-serve.1"] {
        assert_man_page_renders(&out.join(name));
    }
}

#[test]
fn listings_into_a_closed_pipe_end_quietly() {
    use moltguard::gateway::security::{keys, scope::Scopes, store::Store};
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(&home.path().join("state")).unwrap();
    for i in 0..2000 {
        let k = keys::generate(&format!("key-{i}"), Scopes::NONE, None, None, &[]);
        store.insert_key(&k.row).unwrap();
    }
    let mut cmd = Command::new(bin());
    cmd.arg("--home").arg(home.path()).args(["keys", "list"]);
    let (code, err) = into_closed_pipe(cmd);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(code, Some(101), "{err}");
}

/// Runs `cmd` with its stdout closed before it writes; its exit code and stderr.
fn into_closed_pipe(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    for b in [bin(), moltgate()] {
        let mut cmd = Command::new(b);
        cmd.args(["completions", "bash"]);
        let (code, err) = into_closed_pipe(cmd);
        assert!(!err.contains("panicked"), "{b}: {err}");
        assert_eq!(code, Some(0), "{b}: {err}");
    }
}

// ------------------------------------------------------------------- up

/// A home for `up` with free ports for the edge and moltgate.
fn up_stack() -> (Stack, u16) {
    let home = tempfile::Builder::new()
        .prefix("moltguard-up-")
        .tempdir()
        .unwrap();
    let upstream = free_port();
    (
        Stack {
            home,
            edge_port: free_port(),
        },
        upstream,
    )
}

fn spawn_up(s: &Stack, upstream: u16, extra: &[&str]) -> Child {
    spawn_up_via(s, upstream, extra, None)
}

/// `up`, started through `wrapper` (e.g. `nohup`) if given.
fn spawn_up_via(s: &Stack, upstream: u16, extra: &[&str], wrapper: Option<&str>) -> Child {
    let mut args: Vec<String> = vec![
        "up".into(),
        "--edge-port".into(),
        s.edge_port.to_string(),
        "--upstream-port".into(),
        upstream.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = match wrapper {
        None => s.command(&args),
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(bin()).arg("--home").arg(s.home.path()).args(&args);
            c
        }
    };
    // No provider keys from the machine running the tests.
    for v in [
        "GROQ_API_KEY",
        "OPENROUTER_API_KEY",
        "OPENAI_API_KEY",
        "OLLAMA_BASE_URL",
        "OLLAMA_MODEL",
        "MOLTGATE_CONFIG",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

fn alive(pid: i32) -> bool {
    stack::process_alive(pid)
}

/// Waits for `up` to end by itself; returns its exit code and stderr.
fn wait_for_exit(mut child: Child, within: Duration) -> (Option<i32>, String) {
    let end = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("`up` still runs {within:?} later");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number after `marker` in `line`.
fn pid_after(line: &str, marker: &str) -> i32 {
    let rest = &line[line.find(marker).unwrap_or_else(|| panic!("{line}")) + marker.len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn up_whose_stdout_is_closed_at_once_stops_what_it_started() {
    let (s, upstream) = up_stack();
    let mut child = spawn_up(&s, upstream, &[]);
    // `up | head -0`: the reader is gone before the first line.
    drop(child.stdout.take());
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(s.nginx_pid(), None, "nginx still runs");
    assert!(!listening(s.edge_port), "the edge still answers");
    assert!(!listening(upstream), "moltgate still answers");
}

#[test]
fn up_stops_its_children_when_the_reader_of_its_output_goes_away() {
    let (s, upstream) = up_stack();
    let mut child = spawn_up(&s, upstream, &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        let done = l.starts_with("guardian:");
        seen.push(l);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    let nginx = pid_after(&text, "(nginx pid ");
    let gate = pid_after(&text, "moltgate (pid ");
    // Nothing configured and no Ollama here: it says how to add a provider.
    assert!(text.contains("secrets set GROQ_API_KEY"), "{text}");
    assert!(alive(nginx) && alive(gate), "{text}");
    assert!(eventually(Duration::from_secs(5), || listening(upstream)));
    // Like `head` exiting after the lines it wanted: `up` writes nothing
    // more, so it must notice the closed pipe without a write.
    drop(lines);
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(0), "{err}");
    assert!(!alive(nginx), "nginx (pid {nginx}) still runs");
    assert!(!alive(gate), "moltgate (pid {gate}) still runs");
    assert!(!listening(s.edge_port) && !listening(upstream));
}

#[test]
fn up_json_is_one_line_per_event_and_sigterm_stops_everything() {
    let (s, upstream) = up_stack();
    let mut child = spawn_up(&s, upstream, &["--json", "--no-guardian"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "up", "{first}");
    assert_eq!(first["breaker"]["state"], "open", "{first}");
    assert_eq!(first["llm"]["usable"], serde_json::json!([]), "{first}");
    let gate = first["gateway"]["pid"].as_i64().unwrap() as i32;
    let nginx = first["nginx_pid"].as_i64().unwrap() as i32;
    // The first run makes one admin key, which moltgate accepts.
    let key = first["api_key"].as_str().expect("a first key").to_string();
    let models = |auth: Option<&str>| {
        let mut c = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let auth = auth
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        write!(
            c,
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n"
        )
        .unwrap();
        let mut r = String::new();
        let _ = std::io::Read::read_to_string(&mut c, &mut r);
        r
    };
    let t = Instant::now();
    while !listening(upstream) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(models(Some(&key)).starts_with("HTTP/1.1 200"));
    assert!(models(None).starts_with("HTTP/1.1 401"));
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let last: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped", "{last}");
    assert_eq!(last["why"], "SIGTERM", "{last}");
    assert!(lines.next().is_none());
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(!alive(nginx) && !alive(gate));
}

#[test]
fn up_says_where_nginx_is_when_the_config_points_elsewhere() {
    let (s, upstream) = up_stack();
    let child = spawn_up(
        &s,
        upstream,
        &["--json", "--nginx-bin", "/nonexistent/nginx"],
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("not at /nonexistent/nginx"), "{v}");
    let hint = v["hint"].as_str().unwrap();
    assert!(
        hint.contains("nginx is installed at /") && hint.contains("up` again"),
        "{v}"
    );
    assert!(!listening(upstream), "nothing was started");
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[test]
fn a_hangup_stops_up_unless_it_runs_under_nohup() {
    use nix::sys::signal::Signal;
    // The terminal closing: SIGHUP stops everything, like Ctrl-C.
    let (s, upstream) = up_stack();
    let mut child = spawn_up(&s, upstream, &["--no-guardian"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("moltguard is up"), "{first}");
    signal(&child, Signal::SIGHUP);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.iter().any(|l| l.starts_with("SIGHUP received")),
        "{rest:?}"
    );
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(!listening(s.edge_port) && !listening(upstream));

    // `nohup moltguard up`: the person asked to survive the hangup.
    let (s, upstream) = up_stack();
    let mut child = spawn_up_via(&s, upstream, &["--no-guardian"], Some("nohup"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("moltguard is up"), "{first}");
    signal(&child, Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "nohup'd up ended on SIGHUP"
    );
    assert!(listening(s.edge_port));
    signal(&child, Signal::SIGTERM);
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(!listening(s.edge_port) && !listening(upstream));
}

/// A gateway port another program holds: `up` says moltgate did not
/// start, instead of reporting a gateway that is not there.
#[test]
fn up_says_when_moltgate_cannot_take_its_port() {
    let (s, upstream) = up_stack();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", upstream)).unwrap();
    let mut child = spawn_up(&s, upstream, &["--json", "--no-guardian"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "up", "{first}");
    let why = first["gateway"]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("exited") && why.contains(&upstream.to_string()),
        "{first}"
    );
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, err) = wait_for_exit(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
}
