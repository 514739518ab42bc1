//! The breaker never fails open: crashes at every step and at random
//! instants, commands whose files cannot be written, hand edits, stale
//! copies, links and orphaned nginx workers, each against a real nginx and
//! judged by the HTTP status nginx really returns.
//!
//! The rule every test holds moltguard to: once any moltguard command (or
//! the guardian) has run, the edge admits nobody the committed state does
//! not allow. A pending change, an untrusted file or an expired lifetime
//! allows nobody.

use moltguard_test_support::stack;

use moltguard::breaker::crashpoint;
use rand::Rng;
use stack::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ the oracle

/// Who the committed state lets through, read from the state file as it
/// is on disk (not through moltguard's own loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Allowed {
    Nobody,
    ThisMachine,
    Everyone,
}

fn allowed(s: &Stack) -> Allowed {
    let Ok(text) = std::fs::read_to_string(s.path("state/breaker.json")) else {
        return Allowed::Nobody;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Allowed::Nobody;
    };
    if !v["pending"].is_null() {
        return Allowed::Nobody;
    }
    let expired = v["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t <= chrono::Utc::now());
    match v["state"].as_str() {
        _ if expired => Allowed::Nobody,
        Some("closed") => Allowed::Everyone,
        Some("half-open") => Allowed::ThisMachine,
        _ => Allowed::Nobody,
    }
}

/// Who the edge really lets through right now (200 with the password),
/// and whether an anonymous request ever gets through.
fn admitted(s: &Stack) -> (Allowed, bool) {
    let get = |from: Option<&str>, auth: bool| {
        try_http_get(s.edge(), from, auth.then_some((USER, PASSWORD)), &[])
            .is_ok_and(|r| r.status == 200)
    };
    let anonymous = get(None, false) || get(Some("127.0.0.2"), false);
    let who = if get(Some("127.0.0.2"), true) {
        Allowed::Everyone
    } else if get(None, true) {
        Allowed::ThisMachine
    } else {
        Allowed::Nobody
    };
    (who, anonymous)
}

/// Panics if the edge admits more than the committed state allows.
#[track_caller]
fn assert_never_more_than_allowed(s: &Stack, context: &str) {
    // Sampled around the probe: a lifetime may end in between.
    let before = allowed(s);
    let (who, anonymous) = admitted(s);
    let after = allowed(s);
    assert!(!anonymous, "{context}: an anonymous request got through");
    assert!(
        who <= before.max(after),
        "{context}: the edge admits {who:?}, the committed state allows {before:?}\nstate: {}\nguardian log: {}",
        read(&s.path("state/breaker.json")),
        std::fs::read_to_string(s.path("guardian.log")).unwrap_or_default()
    );
}

fn state_json(s: &Stack) -> serde_json::Value {
    serde_json::from_str(&read(&s.path("state/breaker.json"))).unwrap()
}

// ------------------------------------------------------------ kill -9

/// What one random step asks for.
fn random_command(rng: &mut impl Rng) -> Vec<&'static str> {
    match rng.gen_range(0..20) {
        // With a reason each is a change, even to the state in force
        // (which, asked for bare, is a no-op with nothing to cut off).
        0..=5 => vec!["breaker", "close", "--reason", "chaos"],
        6 => vec!["breaker", "close", "--for", "10m"],
        7 => vec!["breaker", "close", "--for", "2s"],
        8..=11 => vec!["breaker", "half-open", "--reason", "chaos"],
        12..=16 => vec!["breaker", "open", "--reason", "chaos"],
        17 => vec!["breaker", "reapply"],
        18 => vec!["status"],
        _ => vec!["nginx", "reload"],
    }
}

/// Runs `args`, killing it as `kill` says. Returns whether it was killed
/// before it finished.
fn run_and_maybe_kill(s: &Stack, args: &[&str], kill: Kill, rng: &mut impl Rng) -> bool {
    let mut cmd = s.command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    if let Kill::AtPoint(point) = kill {
        cmd.env(crashpoint::ENV, point);
    }
    let mut child: Child = cmd.spawn().unwrap();
    match kill {
        Kill::No | Kill::AtPoint(_) => {
            let status = child.wait().unwrap();
            status.signal() == Some(9)
        }
        Kill::AtRandom => {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..450)));
            let mid_run = child.try_wait().unwrap().is_none();
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            mid_run
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    No,
    AtRandom,
    AtPoint(&'static str),
}

/// How one stack's run went.
#[derive(Debug, Default)]
struct Tally {
    transitions: u32,
    kills: u32,
    point_kills: u32,
    /// Kills after which the edge served more than allowed before any
    /// moltguard command ran (expected: the instant a reload landed).
    windows: u32,
    guardian_recoveries: u32,
}

fn chaos(steps: u32, seed: u64, guardian_every: u32) -> Tally {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = Stack::started();
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    s.set_config("agent_port", &format!("agent_port = {}", free_port()));
    s.set_config("interval", "interval = \"5s\"");
    let mut t = Tally::default();
    let mut point = seed as usize;
    for i in 0..steps {
        let args = random_command(&mut rng);
        let kill = match rng.gen_range(0..100) {
            0..=10 => {
                point += 1;
                Kill::AtPoint(crashpoint::POINTS[point % crashpoint::POINTS.len()])
            }
            11..=21 => Kill::AtRandom,
            _ => Kill::No,
        };
        t.transitions += 1;
        let killed = run_and_maybe_kill(&s, &args, kill, &mut rng);
        let context = format!("step {i} ({args:?}, {kill:?}, killed: {killed})");
        if !killed {
            assert_never_more_than_allowed(&s, &context);
            continue;
        }
        t.kills += 1;
        if matches!(kill, Kill::AtPoint(_)) {
            t.point_kills += 1;
        }
        let (who, _) = admitted(&s);
        if who > allowed(&s) {
            t.windows += 1;
        }
        // Any reader repairs: a person's next command, or the guardian.
        if guardian_every > 0 && t.kills.is_multiple_of(guardian_every) {
            let g = Guardian::start(&s);
            assert!(
                eventually(Duration::from_secs(15), || {
                    state_json(&s)["pending"].is_null() && admitted(&s).0 <= allowed(&s)
                }),
                "{context}: the guardian did not repair\n{}",
                read(&s.path("guardian.log"))
            );
            drop(g);
            t.guardian_recoveries += 1;
        } else {
            let reader: &[&str] = match rng.gen_range(0..4) {
                0 => &["status"],
                1 => &["audit"],
                2 => &["nginx", "reload"],
                _ => &["breaker", "half-open"],
            };
            let out = s.run(reader);
            assert!(out.status.signal().is_none(), "{context}: {reader:?} died");
            assert!(
                state_json(&s)["pending"].is_null(),
                "{context}: {reader:?} left a pending change: {}",
                read(&s.path("state/breaker.json"))
            );
        }
        assert_never_more_than_allowed(&s, &format!("{context}, after recovery"));
    }
    // The history is whole, generations only grow, and the stack is healthy.
    assert_eq!(s.json(&["audit-log", "verify"]).0, 0);
    let log = read(&s.path("state/audit.jsonl"));
    let gens: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["generation"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(gens.windows(2).all(|w| w[0] < w[1]), "{gens:?}");
    s.run(&["status"]);
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 0, "{v}");
    t
}

/// 1,000 random transitions against three real nginx instances; one in
/// five is killed (half exactly at a step, half at a random instant).
#[test]
fn a_thousand_transitions_with_kill_9_never_serve_more_than_committed() {
    let started = Instant::now();
    let runs: Vec<_> = [(334, 1, 20), (333, 2, 0), (333, 3, 0)]
        .into_iter()
        .map(|(steps, seed, g)| std::thread::spawn(move || chaos(steps, seed, g)))
        .collect();
    let tallies: Vec<Tally> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    let sum = |f: fn(&Tally) -> u32| tallies.iter().map(f).sum::<u32>();
    println!(
        "chaos: {} transitions, {} killed ({} at a named step), {} repaired by the guardian; \
         the edge served more than committed right after {} kills, and after 0 once a moltguard \
         command had run; {:.0} s",
        sum(|t| t.transitions),
        sum(|t| t.kills),
        sum(|t| t.point_kills),
        sum(|t| t.guardian_recoveries),
        sum(|t| t.windows),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(sum(|t| t.transitions), 1000);
    assert!(sum(|t| t.kills) >= 150, "{tallies:?}");
    assert!(
        sum(|t| t.point_kills) >= 2 * crashpoint::POINTS.len() as u32,
        "{tallies:?}"
    );
}

/// Every named step of the changes toward traffic, cut off there, ends
/// OPEN at the next command, and `nginx reload` / `nginx start` never
/// serve what the cut-off change left on disk.
#[test]
fn every_step_cut_off_ends_open_at_the_next_command() {
    let s = Stack::started();
    for (from, to) in [
        ("open", "close"),
        ("close", "half-open"),
        ("half-open", "close"),
    ] {
        for point in crashpoint::POINTS {
            // A reason makes it a change even when `from` is in force.
            s.ok(&["breaker", from, "--reason", "from here"]);
            let out = s
                .command(&["breaker", to])
                .env(crashpoint::ENV, point)
                .output()
                .unwrap();
            let ctx = format!("{from} -> {to}, cut at {point}");
            assert_eq!(out.status.signal(), Some(9), "{ctx}: not killed there");
            let reader: &[&str] = match point.len() % 3 {
                0 => &["nginx", "reload"],
                1 => &["status"],
                _ => &["breaker", "reapply"],
            };
            s.run(reader);
            let st = state_json(&s);
            assert_eq!(st["state"], "open", "{ctx}: {st}");
            assert!(st["pending"].is_null(), "{ctx}: {st}");
            // Cut before the write-ahead, only the token was gone: drift
            // while traffic was allowed, nothing at all while OPEN.
            let want = match (*point, from) {
                ("token-removed", "open") => "MANUAL",
                ("token-removed", _) => "NGINX_DRIFT",
                _ => "TRANSITION_INTERRUPTED",
            };
            assert_eq!(st["reason"], want, "{ctx}: {st}");
            let r = s.get(true);
            assert_eq!(r.status, 503, "{ctx} then {reader:?}: {}", r.body);
            assert_never_more_than_allowed(&s, &ctx);
        }
    }
    // nginx stopped while a change was cut off after its swap: starting it
    // serves OPEN, not the swapped-in include.
    s.ok(&["breaker", "open"]);
    s.ok(&["nginx", "stop"]);
    let out = s
        .command(&["breaker", "close"])
        .env(crashpoint::ENV, "token-created")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    assert!(read(&s.path("nginx/breaker.conf")).contains("state=closed"));
    s.ok(&["nginx", "start"]);
    assert_eq!(s.get(true).status, 503);
    assert_eq!(state_json(&s)["reason"], "TRANSITION_INTERRUPTED");
}

/// A cut-off OPEN is finished with its own reason, not forgotten.
#[test]
fn a_cut_off_open_is_finished_with_its_reason() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let out = s
        .command(&["breaker", "open", "--reason", "leaving now"])
        .env(crashpoint::ENV, "pending-written")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    // The token went first: nginx already denies, before any reader.
    assert_eq!(s.get(true).json()["error"]["reason"], "ALLOW_TOKEN_MISSING");
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["reason"], "MANUAL");
    assert_eq!(v["detail"], "leaving now");
    assert_eq!(s.get(true).json()["error"]["reason"], "MANUAL");
}

// ------------------------------------------------------------ files that cannot be written

/// Runs moltguard with `paths` read-only for it alone (nginx still sees
/// them as they are). As root, by a private read-only bind mount (root
/// writes through any mode); otherwise by taking the write bits away.
fn run_with_read_only(s: &Stack, paths: &[&str], args: &[&str]) -> std::process::Output {
    let full: Vec<String> = paths
        .iter()
        .map(|p| s.path(p).display().to_string())
        .collect();
    if nix::unistd::geteuid().is_root() {
        let mounts: String = full
            .iter()
            .map(|p| format!("mount --bind '{p}' '{p}' && mount -o remount,bind,ro '{p}' && "))
            .collect();
        let mut c = std::process::Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("{mounts}exec \"$@\""))
            .arg("sh")
            .arg(bin())
            .arg("--home")
            .arg(s.home.path())
            .args(args);
        let out = c.output().unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("mount:"),
            "a private read-only mount needs CAP_SYS_ADMIN: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    } else {
        use std::os::unix::fs::PermissionsExt;
        let modes: Vec<u32> = full
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().permissions().mode())
            .collect();
        for (p, m) in full.iter().zip(&modes) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m & !0o222)).unwrap();
        }
        let out = s.run(args);
        for (p, m) in full.iter().zip(&modes) {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(*m)).unwrap();
        }
        out
    }
}

#[test]
fn an_unwritable_edge_directory_still_opens_and_refuses_to_close() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    let out = run_with_read_only(&s, &["state/edge"], &["breaker", "open"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the token could not be removed: not ok"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("breaker.allow"), "{err}");
    assert_eq!(s.get(true).status, 503, "OPEN is served all the same");
    assert_eq!(state_json(&s)["state"], "open");
    // Toward traffic, nothing starts that could not be undone.
    s.run(&["status"]); // removes the stray token now that it can
    let out = run_with_read_only(&s, &["state/edge"], &["breaker", "close"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.get(true).status, 503);
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn an_unwritable_audit_log_refuses_to_close_and_still_opens() {
    let s = Stack::started();
    let out = run_with_read_only(&s, &["state/audit.jsonl"], &["breaker", "close"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit log"));
    assert_eq!(s.get(true).status, 503, "nothing was reloaded");

    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    let out = run_with_read_only(&s, &["state/audit.jsonl"], &["breaker", "open"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.get(true).status, 503);
    // Not recorded, so still pending: every reader takes it as OPEN.
    assert_eq!(state_json(&s)["pending"]["target"], "open");
    assert_eq!(allowed(&s), Allowed::Nobody);
    // Once the log can be written, the next command finishes it.
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["state"], "open");
    assert!(state_json(&s)["pending"].is_null());
    assert_eq!(s.json(&["audit-log", "verify"]).0, 0);
}

#[test]
fn a_torn_audit_log_refuses_to_close_and_still_opens() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    let log = s.path("state/audit.jsonl");
    std::fs::write(&log, read(&log) + "{\"seq\":9,\"at\":\"20").unwrap();
    // The state cannot be bound to a log that ends mid-line: OPEN at once.
    let out = s.run(&["breaker", "close"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit log"), "{err}");
    assert_eq!(s.get(true).status, 503);
    assert_eq!(s.run(&["status"]).status.code(), Some(5));
    assert_eq!(s.get(true).status, 503);
    // RECOVERY: keep the broken log aside; a new chain starts, OPEN.
    std::fs::rename(&log, s.path("state/audit.jsonl.broken")).unwrap();
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["reason"], "STATE_INVALID");
    assert_eq!(s.json(&["status"]).0, 0);
    assert_eq!(s.json(&["audit-log", "verify"]).0, 0);
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
}

// ------------------------------------------------------------ state that is not moltguard's

/// `edit` is done by hand while CLOSED or OPEN; the next reader must end OPEN.
fn untrusted_state_ends_open(start: &str, edit: impl FnOnce(&Stack)) -> serde_json::Value {
    let s = Stack::started();
    s.ok(&["breaker", start]);
    edit(&s);
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["state"], "open", "{v}");
    let r = s.get(true);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"]["reason"], "STATE_INVALID");
    // A reapply never makes the edit real.
    s.ok(&["breaker", "reapply"]);
    assert_eq!(s.get(true).status, 503);
    v
}

#[test]
fn a_hand_edited_state_file_is_not_trusted() {
    let v = untrusted_state_ends_open("open", |s| {
        let p = s.path("state/breaker.json");
        std::fs::write(&p, read(&p).replace("\"open\"", "\"closed\"")).unwrap();
    });
    let msg = v["settled"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("edited by hand") && msg.contains("state"),
        "{msg}"
    );
}

#[test]
fn an_older_copy_of_the_state_file_is_not_trusted() {
    let v = untrusted_state_ends_open("close", |s| {
        let p = s.path("state/breaker.json");
        let closed = read(&p);
        s.ok(&["breaker", "open"]);
        std::fs::write(&p, closed).unwrap();
    });
    assert!(
        v["settled"][0]["message"]
            .as_str()
            .unwrap()
            .contains("older copy"),
        "{v}"
    );
}

#[test]
fn a_symlinked_state_file_is_not_trusted() {
    let v = untrusted_state_ends_open("close", |s| {
        let p = s.path("state/breaker.json");
        let elsewhere = s.path("elsewhere.json");
        std::fs::rename(&p, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
    });
    assert!(
        v["settled"][0]["message"]
            .as_str()
            .unwrap()
            .contains("symbolic link"),
        "{v}"
    );
}

#[test]
fn a_state_file_of_another_user_is_not_trusted() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: giving a file to another user needs root");
        return;
    }
    let v = untrusted_state_ends_open("close", |s| {
        nix::unistd::chown(
            &s.path("state/breaker.json"),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
    });
    assert!(
        v["settled"][0]["message"]
            .as_str()
            .unwrap()
            .contains("uid 65534"),
        "{v}"
    );
}

// ------------------------------------------------------------ what nginx serves

#[test]
fn an_edited_include_reloaded_by_hand_is_repaired_by_status() {
    let s = Stack::started();
    // OPEN, but someone removes the `return 503` and reloads by hand,
    // keeping the header that says OPEN.
    s.edit_include(|t| {
        t.lines()
            .filter(|l| !l.starts_with("return 503"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    s.hand_reload();
    let r = s.get(false);
    assert_eq!(r.status, 200, "the edit serves traffic: {}", r.body);
    assert_eq!(r.header("X-Breaker-State"), Some("open; generation=1"));
    let drop_return = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("return 503"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for reader in ["status", "audit"] {
        let (code, v) = s.json(&[reader]);
        assert_eq!(code, if reader == "status" { 5 } else { 8 }, "{v}");
        let repaired = v["settled"][0]["message"].as_str().unwrap_or_default();
        assert!(
            repaired.contains("differs from what the state renders"),
            "{reader}: {v}"
        );
        assert_eq!(s.get(false).status, 503, "{reader}");
        assert_eq!(s.json(&["status"]).0, 0);
        s.edit_include(drop_return);
        s.hand_reload();
        assert_eq!(s.get(false).status, 200);
    }
}

#[test]
fn the_running_config_is_judged_by_what_it_answers() {
    let s = Stack::started();
    // The edit is put back on disk after the hand reload: the files match,
    // but nginx still runs the edited config. Only its answers tell.
    let inc = s.path("nginx/breaker.conf");
    let good = read(&inc);
    s.edit_include(|t| {
        t.lines()
            .filter(|l| !l.starts_with("return 503"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    s.hand_reload();
    std::fs::write(&inc, good).unwrap();
    assert_eq!(s.get(false).status, 200);
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["settled"][0]["kind"], "repaired-drift", "{v}");
    assert_eq!(s.get(false).status, 503);
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn the_guardian_repairs_an_edited_include_at_once() {
    let s = Stack::started();
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    s.set_config("agent_port", &format!("agent_port = {}", free_port()));
    s.set_config("interval", "interval = \"30s\"");
    s.ok(&["breaker", "close"]);
    let _g = Guardian::start(&s);
    s.edit_include(|t| {
        t.lines()
            .filter(|l| !l.contains("breaker.allow"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    // A file event, not the 30 s poll.
    assert!(
        eventually(Duration::from_secs(5), || state_json(&s)["reason"]
            == "NGINX_DRIFT"
            && s.get(true).status == 503),
        "{}\n{}",
        read(&s.path("state/breaker.json")),
        read(&s.path("guardian.log"))
    );
    assert!(read(&s.path("guardian.log")).contains("differs from what the state renders"));
}

#[test]
fn orphaned_nginx_workers_are_found_and_stopped() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let master = s.nginx_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(master),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.nginx_pid().is_none());
    assert_eq!(s.get(true).status, 200, "the workers outlive their master");
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert!(v["settled"].to_string().contains("process group"), "{v}");
    assert!(
        try_http_get(s.edge(), None, Some((USER, PASSWORD)), &[]).is_err(),
        "nothing may serve"
    );
    assert_eq!(state_json(&s)["state"], "open");
    s.ok(&["nginx", "start"]);
    assert_eq!(s.get(true).status, 503);
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn a_failed_change_from_half_open_ends_open() {
    let s = Stack::started();
    s.ok(&["breaker", "half-open"]);
    assert_eq!(s.get(true).status, 200);
    // A config error only the whole-config test sees.
    let site = s.path("nginx/moltguard-site.conf");
    std::fs::write(
        &site,
        read(&site).replacen(
            "server_tokens off;",
            "server_tokens off;\n    bogus_directive on;",
            1,
        ),
    )
    .unwrap();
    let (code, v) = s.json(&["breaker", "close"]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["to"], "open", "{v}");
    assert_eq!(state_json(&s)["reason"], "APPLY_FAILED");
    assert!(
        try_http_get(s.edge(), None, Some((USER, PASSWORD)), &[]).map_or(true, |r| r.status == 503),
        "a failed command leaves nothing served"
    );
}
