//! The command line as a person meets it: completions and man pages of both
//! binaries, and `moltguard up` (a real nginx and moltgate) ending cleanly
//! however it is stopped, its stdout closed included (`up | head`).

use moltguard_test_support::stack;

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
    // Every page: the exit table (the one `--help` prints), environment, files.
    for name in ["moltguard.1", "moltguard-breaker-close.1"] {
        let page = std::fs::read_to_string(out.join(name)).unwrap();
        for section in [
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "{name}: no {section}");
        }
    }
    assert!(
        close.contains("breaker close \\-\\-for 30m"),
        "its own example"
    );
    let help = output(bin(), &["--help"]);
    let main = std::fs::read_to_string(out.join("moltguard.1")).unwrap();
    for code in 0..=9 {
        assert!(
            help.contains(&format!("\n  {code:>2}  ")),
            "--help: no exit {code}"
        );
        assert!(
            main.contains(&format!(".TP\n\\fB{code}\\fR")),
            "man: no exit {code}"
        );
    }
    assert!(
        !main.contains(".SH EXTRA"),
        "the exit table is EXIT STATUS, not EXTRA"
    );

    output(moltgate(), &["man", "--out", out.to_str().unwrap()]);
    for name in ["moltgate.1", "moltgate-check-config.1", "moltgate-serve.1"] {
        assert_man_page_renders(&out.join(name));
    }
}

#[test]
fn listings_into_a_closed_pipe_end_quietly() {
    use moltguard::gateway::admin::store::Store;
    use moltguard::gateway::inbound::{keys, scope::Scopes};
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

// ---- `install`: the whole stack as services, into a private root ----

/// The value of `key=` in a unit file, split as systemd splits a command
/// line (double quotes group), without its `+`/`-` prefixes.
fn unit_command(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in\n{unit}"));
    let line = line.trim_start_matches(['+', '-']);
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|a| !a.is_empty());
    out
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze").args(args).output().unwrap()
}

/// Runs an edge command line until the edge answers, then stops it.
fn serves_while_running(s: &Stack, cmd: &[String]) -> Response {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut answer = None;
    eventually(Duration::from_secs(10), || {
        answer = try_http_get(s.edge(), None, None, &[]).ok();
        answer.is_some() || child.try_wait().unwrap().is_some()
    });
    signal(&child, nix::sys::signal::Signal::SIGQUIT);
    let status = child.wait().unwrap();
    let r = answer.unwrap_or_else(|| panic!("{cmd:?} never served ({status})"));
    assert!(
        eventually(Duration::from_secs(5), || !listening(s.edge_port)),
        "the edge still listens after SIGQUIT"
    );
    r
}

#[test]
fn install_writes_the_stack_as_verified_services_and_the_edge_waits_for_its_include() {
    // Not under /tmp, as a real setup is not, so the units get a private
    // /tmp; and where nginx's user may read it (unlike target/).
    if tool("systemd-analyze").is_none() {
        return;
    }
    let s = Stack::new_in(Path::new("/dev/shm"));
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();

    let (code, dry) = s.json(&[
        "install",
        "--root",
        &r,
        "--platform",
        "systemd",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{dry}");
    assert!(!root.path().join("etc").exists(), "--dry-run wrote files");
    let (code, plan) = s.json(&["install", "--root", &r, "--platform", "systemd"]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["commands_run"], false);
    let names: Vec<&str> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "moltguard-gateway.service",
            "moltguard-edge.service",
            "moltguard-guardian.service"
        ]
    );
    let units = root.path().join("etc/systemd/system");
    let files: Vec<String> = names
        .iter()
        .map(|n| units.join(n).display().to_string())
        .collect();

    // systemd's own checks: the units parse, their programs exist.
    let mut verify = vec!["verify", "--man=no"];
    verify.extend(files.iter().map(String::as_str));
    let out = analyze(&verify);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // The one warning allowed: the default nginx user, "nobody", is shared
    // (`[nginx] user` names a dedicated one).
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("moltguard-") && !l.contains("Special user nobody"))
        .collect();
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warns: {stderr}"
    );
    // Exposure as `systemd-analyze security` scores it (×10 for --threshold).
    for (unit, at_most) in [
        ("moltguard-gateway.service", "25"),
        ("moltguard-edge.service", "25"),
        // A root scanner by design; every kept capability is named in the unit.
        ("moltguard-guardian.service", "30"),
    ] {
        let root_arg = format!("--root={r}");
        let threshold = format!("--threshold={at_most}");
        let out = analyze(&["security", "--offline=yes", &root_arg, &threshold, unit]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{unit} scores above {at_most}/10:\n{}",
            text.lines().last().unwrap_or_default()
        );
    }

    let gateway = read(&units.join("moltguard-gateway.service"));
    assert!(gateway.contains("PrivateTmp=yes"), "{gateway}");

    // The edge never serves before the breaker include exists: its
    // ExecStartPre writes it, and ExecStart then serves that state.
    let edge_unit = read(&units.join("moltguard-edge.service"));
    std::fs::remove_file(s.path("nginx/breaker.conf")).unwrap();
    let pre = unit_command(&edge_unit, "ExecStartPre");
    let out = Command::new(&pre[0]).args(&pre[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{pre:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.path("nginx/breaker.conf").is_file());
    let answer = serves_while_running(&s, &unit_command(&edge_unit, "ExecStart"));
    assert_eq!(answer.status, 503);
    // A missing include is drift: settled toward OPEN, as a new generation.
    let served = format!("open; generation={}", s.state()["generation"]);
    assert_eq!(answer.header("X-Breaker-State"), Some(served.as_str()));

    // `uninstall --root` removes exactly what install wrote.
    let (code, removed) = s.json(&["uninstall", "--root", &r, "--platform", "systemd"]);
    assert_eq!(code, 0, "{removed}");
    assert_eq!(std::fs::read_dir(&units).unwrap().count(), 0);
}

#[test]
fn install_for_launchd_writes_plists_plistlib_reads_and_nginx_run_orders_itself() {
    let s = Stack::new();
    let root = tempfile::tempdir().unwrap();
    let r = root.path().display().to_string();
    let (code, plan) = s.json(&["install", "--root", &r, "--platform", "launchd"]);
    assert_eq!(code, 0, "{plan}");
    let daemons = root.path().join("Library/LaunchDaemons");
    let check = r#"
import plistlib, sys, os
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        p = plistlib.load(f)
    label = os.path.basename(path)[:-len(".plist")]
    assert p["Label"] == label, (path, p["Label"])
    assert os.path.isabs(p["ProgramArguments"][0]) and os.path.exists(p["ProgramArguments"][0]), p
    assert p["KeepAlive"] is True and p["RunAtLoad"] is True, p
    assert "EnvironmentVariables" not in p or set(p["EnvironmentVariables"]) == {"MOLTGUARD_HOME"}, p
    print(label, " ".join(p["ProgramArguments"]))
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", check]);
    for l in [
        "dev.moltguard.gateway",
        "dev.moltguard.edge",
        "dev.moltguard.guardian",
    ] {
        cmd.arg(daemons.join(format!("{l}.plist")));
    }
    let out = cmd.output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "plistlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotate = read(&root.path().join("etc/newsyslog.d/dev.moltguard.conf"));
    assert!(rotate.contains("runtime/logs/error.log"), "{rotate}");

    // launchd cannot order daemons: the edge's own command writes the
    // include, then becomes nginx in the foreground.
    let edge: Vec<String> = listed
        .lines()
        .find_map(|l| l.strip_prefix("dev.moltguard.edge "))
        .unwrap()
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(edge[edge.len() - 2..], ["nginx", "run"]);
    std::fs::remove_file(s.path("nginx/breaker.conf")).unwrap();
    let answer = serves_while_running(&s, &edge);
    assert_eq!(answer.status, 503);
    // A missing include is drift: settled toward OPEN, as a new generation.
    let served = format!("open; generation={}", s.state()["generation"]);
    assert_eq!(answer.header("X-Breaker-State"), Some(served.as_str()));
}

#[test]
fn status_lists_each_service_and_install_refuses_without_root_or_the_gateway() {
    let s = Stack::new();
    let (_, st) = s.json(&["status"]);
    let services = st["services"].as_array().unwrap();
    assert_eq!(services.len(), 3, "{st}");
    assert!(services.iter().all(|v| v["installed"] == false));
    let text = String::from_utf8(s.run(&["status"]).stdout).unwrap();
    assert!(text.contains("services:   not installed"), "{text}");
    // A new setup is OPEN and has no user; status says what lets traffic
    // through, in order.
    let home = s.home.path().display();
    let fix = format!(
        "to fix:     moltguard --home {home} auth add-user NAME    (add a user for the password prompt)\n            moltguard --home {home} breaker close --for 30m"
    );
    assert!(text.contains(&fix), "{text}");
    // A wrong manager name is a usage error.
    let out = s.run(&["install", "--platform", "upstart", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
}
