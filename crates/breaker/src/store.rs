//! Reading and writing the state file, failing closed on anything doubtful.
//!
//! A state file is trusted only if every rule below holds; otherwise the
//! reader gets an OPEN stand-in and the reason, and `settle` repairs it:
//!
//! 1. it is a regular file (not a symbolic link), owned by this user or by
//!    root, and writable by nobody else;
//! 2. it parses, with a known schema version and valid fields;
//! 3. it is bound to its history: its state, generation, lifetime, reason,
//!    detail and actor equal the audit entry it names as its head, that
//!    entry's hash is right, and the log holds nothing newer (a newer entry
//!    means this file is an older copy put back);
//! 4. no transition is pending: a pending one was cut off before it
//!    committed, and the edge may serve anything between the two states.

use super::audit::{self, AuditEntry};
use super::state::{Actor, BreakerRecord, BreakerState, Pending, ReasonCode, SCHEMA_VERSION};
use chrono::{DateTime, Utc};
use moltguard_fsutil as fsutil;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The breaker's files in its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFiles {
    /// `breaker.json`: the truth.
    pub state: PathBuf,
    /// `audit.jsonl`: the hash-chained history the state is bound to.
    pub audit_log: PathBuf,
    /// `edge/breaker.allow`: without it nginx denies every request.
    pub allow_token: PathBuf,
    /// `edge-session.key`: the key the edge's session cookie is derived
    /// from (0600; nginx never reads it, only the cookie value in the include).
    pub session_key: PathBuf,
}

impl StateFiles {
    /// The breaker's files in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Self {
        Self {
            state: state_dir.join("breaker.json"),
            audit_log: state_dir.join("audit.jsonl"),
            allow_token: state_dir.join("edge").join("breaker.allow"),
            session_key: state_dir.join("edge-session.key"),
        }
    }
}

/// Why a state file could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateProblem {
    /// There is no state file.
    Missing,
    /// It could not be read: the I/O error.
    Unreadable(String),
    /// A symbolic link, another user's file, or one others may write.
    Unsafe(String),
    /// It does not parse, or a field is invalid: what is wrong.
    Corrupt(String),
    /// Its `schema_version` is not [`SCHEMA_VERSION`]: the version found.
    UnknownVersion(u64),
    /// The file does not match the history it names (a hand edit, an older
    /// copy, a log that was cut or replaced).
    Unbound(String),
    /// A transition was cut off before it committed.
    Interrupted {
        /// The state the file last committed.
        committed: BreakerState,
        /// The transition that was cut off.
        pending: Pending,
    },
}

impl StateProblem {
    /// Whether the file itself is bad and is kept aside before the repair
    /// replaces it. An interrupted transition is a normal file mid-change.
    pub fn quarantines(&self) -> bool {
        !matches!(
            self,
            StateProblem::Missing | StateProblem::Interrupted { .. }
        )
    }

    /// The reason code the repair to OPEN records.
    pub fn reason(&self) -> ReasonCode {
        match self {
            StateProblem::Interrupted { .. } => ReasonCode::TransitionInterrupted,
            _ => ReasonCode::StateInvalid,
        }
    }
}

impl std::fmt::Display for StateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateProblem::Missing => write!(f, "the state file is missing"),
            StateProblem::Unreadable(e) => write!(f, "the state file cannot be read: {e}"),
            StateProblem::Unsafe(e) => write!(f, "the state file is not trusted: {e}"),
            StateProblem::Corrupt(e) => write!(f, "the state file is not valid: {e}"),
            StateProblem::UnknownVersion(v) => write!(
                f,
                "the state file has schema version {v}, this moltguard reads version {SCHEMA_VERSION}"
            ),
            StateProblem::Unbound(e) => {
                write!(f, "the state file does not match the audit log: {e}")
            }
            StateProblem::Interrupted { committed, pending } => write!(
                f,
                "a change from {} to {} (generation {}, by {}) was cut off before it committed",
                committed.as_str().to_uppercase(),
                pending.target.as_str().to_uppercase(),
                pending.generation,
                pending.actor
            ),
        }
    }
}

/// The outcome of loading: always a record to act on, plus the problem that
/// forced a fail-closed stand-in, if any.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The committed record, or an OPEN stand-in when anything is doubtful.
    pub record: BreakerRecord,
    /// Why the file was not trusted; `None` when it was.
    pub problem: Option<StateProblem>,
}

/// Loads the state file and checks it against its audit log. Anything
/// doubtful yields an OPEN record rather than an error: the caller reports
/// and repairs it.
pub fn load(files: &StateFiles, now: DateTime<Utc>) -> Loaded {
    match read_record(&files.state).and_then(|r| bind_to_history(r, &files.audit_log)) {
        Ok(record) => Loaded {
            record,
            problem: None,
        },
        Err((problem, seen_generation)) => Loaded {
            record: stand_in(&problem, seen_generation, now),
            problem: Some(problem),
        },
    }
}

/// The OPEN record readers act on while the file cannot be trusted.
fn stand_in(
    problem: &StateProblem,
    seen_generation: Option<u64>,
    now: DateTime<Utc>,
) -> BreakerRecord {
    BreakerRecord {
        schema_version: SCHEMA_VERSION,
        state: BreakerState::Open,
        reason: problem.reason(),
        detail: problem.to_string(),
        actor: Actor::System,
        generation: seen_generation.unwrap_or(0),
        changed_at: now,
        expires_at: None,
        last_apply: None,
        audit_head: None,
        pending: None,
    }
}

type Untrusted = (StateProblem, Option<u64>);

/// Rules 1 and 2: a safe file that parses. On failure also returns any
/// generation that could still be salvaged, so a repair never goes back.
fn read_record(path: &Path) -> Result<BreakerRecord, Untrusted> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err((StateProblem::Missing, None)),
        Ok(md) if md.file_type().is_symlink() => {
            let target = fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err((
                StateProblem::Unsafe(format!(
                    "it is a symbolic link (to {target}); moltguard writes it only as a regular file"
                )),
                None,
            ));
        }
        _ => {}
    }
    let (bytes, md) =
        fsutil::read_regular(path).map_err(|e| (StateProblem::Unreadable(e.to_string()), None))?;
    if let Some(why) = untrusted_owner_or_mode(&md) {
        return Err((StateProblem::Unsafe(why), None));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| (StateProblem::Corrupt(e.to_string()), None))?;
    let seen_generation = value.get("generation").and_then(|g| g.as_u64());
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => return Err((StateProblem::UnknownVersion(v), seen_generation)),
        None => {
            return Err((
                StateProblem::Corrupt("no schema_version field".into()),
                seen_generation,
            ))
        }
    }
    let record: BreakerRecord = serde_json::from_value(value)
        .map_err(|e| (StateProblem::Corrupt(e.to_string()), seen_generation))?;
    let corrupt = |why: &str| Err((StateProblem::Corrupt(why.into()), Some(record.generation)));
    if record.generation == 0 {
        return Err((
            StateProblem::Corrupt("generation must be at least 1".into()),
            None,
        ));
    }
    if record.expires_at.is_some() && !record.state.admits_traffic() {
        return corrupt("an open breaker cannot have an expiry");
    }
    if record
        .pending
        .as_ref()
        .is_some_and(|p| p.generation <= record.generation)
    {
        return corrupt("a pending change must have a newer generation than the committed state");
    }
    Ok(record)
}

/// Whose file this may be: ours, or root's (a root guardian writes it for
/// a gateway that runs as someone else). Nobody else may be able to write it.
fn untrusted_owner_or_mode(md: &fs::Metadata) -> Option<String> {
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Some(format!(
            "it belongs to uid {}, not to uid {me} (who runs moltguard) or root",
            md.uid()
        ));
    }
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "other users may write it (mode {mode:o}); moltguard writes it 644"
        ));
    }
    None
}

/// Rules 3 and 4: the record equals the audit entry it names, nothing newer
/// was logged, and no transition is pending.
fn bind_to_history(record: BreakerRecord, log: &Path) -> Result<BreakerRecord, Untrusted> {
    let generation = record
        .generation
        .max(record.pending.as_ref().map_or(0, |p| p.generation));
    let unbound = |why: String| Err((StateProblem::Unbound(why), Some(generation)));
    let Some(head) = record.audit_head.clone() else {
        return unbound("it names no audit entry".into());
    };
    let tail = match audit::Tail::read(log) {
        Ok(t) => t,
        Err(e) => return unbound(e.to_string()),
    };
    let Some(last) = tail.last else {
        return unbound(format!(
            "it names audit entry {}, but {} holds no entries",
            head.seq,
            log.display()
        ));
    };
    // An interrupted transition may have logged its own entry just before
    // the cut: then the head is the entry before it.
    let interrupted_after_logging = record
        .pending
        .as_ref()
        .is_some_and(|p| last.seq == head.seq + 1 && last.generation == p.generation);
    let named = if last.seq == head.seq {
        last
    } else if interrupted_after_logging {
        match tail.previous {
            Some(prev) if prev.hash.as_deref() == Some(last.prev.as_str()) => prev,
            _ => return unbound("the newest audit entries do not chain".into()),
        }
    } else if last.seq > head.seq {
        return unbound(format!(
            "it names audit entry {}, but the log goes on to entry {} (generation {}, {} → {}): \
             this is an older copy of the state file",
            head.seq, last.seq, last.generation, last.from, last.to
        ));
    } else {
        return unbound(format!(
            "it names audit entry {}, but the log ends at entry {} (cut short or replaced)",
            head.seq, last.seq
        ));
    };
    if named.seq != head.seq || named.hash.as_deref() != Some(head.hash.as_str()) {
        return unbound(format!(
            "audit entry {} is not the one it names (another hash)",
            head.seq
        ));
    }
    if !named.hash_is_valid() {
        return unbound(format!(
            "audit entry {} was changed after it was written",
            head.seq
        ));
    }
    if let Some(field) = first_difference(&record, &named) {
        return unbound(format!(
            "its {field} differs from audit entry {} (generation {}, {}): \
             the state file was edited by hand",
            named.seq,
            named.generation,
            named.to.as_str().to_uppercase()
        ));
    }
    match record.pending {
        Some(pending) => Err((
            StateProblem::Interrupted {
                committed: record.state,
                pending,
            },
            Some(generation),
        )),
        None => Ok(record),
    }
}

/// The first field where the committed record and its audit entry disagree.
fn first_difference(r: &BreakerRecord, e: &AuditEntry) -> Option<&'static str> {
    [
        ("state", r.state == e.to),
        ("generation", r.generation == e.generation),
        ("expiry", r.expires_at == e.expires_at),
        ("reason", r.reason == e.reason),
        ("detail", r.detail == e.detail),
        ("actor", r.actor == e.actor),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}

/// Writes the record atomically (temp file, fsync, rename, fsync dir).
pub fn save(path: &Path, record: &BreakerRecord) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    json.push(b'\n');
    fsutil::write_atomic(path, &json, 0o644)
}

/// Keeps an untrusted state file before it is repaired, so the repair loses
/// nothing a person may want to look at. A symbolic link is kept as a link:
/// its target is never read or copied (it could be any file on the machine).
pub fn quarantine(path: &Path, now: DateTime<Utc>) -> io::Result<Option<PathBuf>> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let name = format!(
        "{}.invalid-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into()),
        now.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let dest = path.with_file_name(name);
    if md.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(path)?, &dest)?;
    } else {
        let (bytes, _) = fsutil::read_regular(path)?;
        fsutil::write_atomic(&dest, &bytes, 0o600)?;
    }
    Ok(Some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::NewEntry;

    /// A state directory whose breaker.json is bound to a one-line log.
    fn bound(
        state: BreakerState,
        expires_at: Option<DateTime<Utc>>,
    ) -> (tempfile::TempDir, StateFiles, BreakerRecord) {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::in_dir(dir.path());
        let mut r = BreakerRecord::initial(Utc::now());
        r.state = state;
        r.expires_at = expires_at;
        let head = audit::append(
            &files.audit_log,
            NewEntry {
                actor: r.actor,
                from: BreakerState::Open,
                to: r.state,
                reason: r.reason,
                detail: r.detail.clone(),
                generation: r.generation,
                expires_at: r.expires_at,
                outcome: "applied".into(),
                message: String::new(),
            },
            Utc::now(),
        )
        .unwrap();
        r.audit_head = Some(head);
        save(&files.state, &r).unwrap();
        (dir, files, r)
    }

    /// Logs a change to `to` at `generation` by a person.
    fn log_change(files: &StateFiles, to: BreakerState, generation: u64) {
        audit::append(
            &files.audit_log,
            NewEntry {
                actor: Actor::User,
                from: BreakerState::Open,
                to,
                reason: ReasonCode::Manual,
                detail: String::new(),
                generation,
                expires_at: None,
                outcome: "applied".into(),
                message: String::new(),
            },
            Utc::now(),
        )
        .unwrap();
    }

    fn write(files: &StateFiles, s: &str) {
        fs::write(&files.state, s).unwrap();
        fs::set_permissions(&files.state, fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn problem(files: &StateFiles) -> StateProblem {
        let l = load(files, Utc::now());
        assert_eq!(l.record.state, BreakerState::Open, "{:?}", l.problem);
        l.problem.expect("a problem")
    }

    #[test]
    fn a_bound_file_round_trips() {
        let (_d, files, r) = bound(BreakerState::Closed, None);
        let l = load(&files, Utc::now());
        assert_eq!(l.problem, None);
        assert_eq!(l.record, r);
    }

    #[test]
    fn missing_file_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let l = load(&StateFiles::in_dir(dir.path()), Utc::now());
        assert_eq!(l.problem, Some(StateProblem::Missing));
        assert_eq!(l.record.state, BreakerState::Open);
        assert_eq!(l.record.reason, ReasonCode::StateInvalid);
    }

    #[test]
    fn garbage_fails_closed() {
        let (_d, files, _) = bound(BreakerState::Closed, None);
        for junk in [
            "",
            "{",
            "null",
            "[]",
            "{\"schema_version\":1}",
            "\u{0}\u{1}",
        ] {
            write(&files, junk);
            assert!(
                matches!(problem(&files), StateProblem::Corrupt(_)),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn unknown_version_fails_closed_but_keeps_generation() {
        let (_d, files, _) = bound(BreakerState::Closed, None);
        write(
            &files,
            r#"{"schema_version": 9, "state": "closed", "generation": 41}"#,
        );
        let l = load(&files, Utc::now());
        assert_eq!(l.problem, Some(StateProblem::UnknownVersion(9)));
        assert_eq!(l.record.state, BreakerState::Open);
        assert_eq!(l.record.generation, 41);
    }

    #[test]
    fn unknown_state_value_fails_closed() {
        let (_d, files, r) = bound(BreakerState::Closed, None);
        let mut v = serde_json::to_value(r).unwrap();
        v["state"] = serde_json::json!("ajar");
        write(&files, &v.to_string());
        assert!(matches!(problem(&files), StateProblem::Corrupt(_)));
    }

    #[test]
    fn a_hand_edit_of_any_bound_field_is_unbound() {
        let (_d, files, r) = bound(BreakerState::Open, None);
        type Edit = fn(&mut BreakerRecord);
        let edits: [(&str, Edit); 5] = [
            ("state", |r| r.state = BreakerState::Closed),
            ("generation", |r| r.generation += 1),
            ("reason", |r| r.reason = ReasonCode::Manual),
            ("detail", |r| r.detail = "trust me".into()),
            ("actor", |r| r.actor = Actor::User),
        ];
        for (field, edit) in edits {
            let mut e = r.clone();
            edit(&mut e);
            save(&files.state, &e).unwrap();
            match problem(&files) {
                StateProblem::Unbound(why) => assert!(why.contains(field), "{field}: {why}"),
                p => panic!("{field}: {p:?}"),
            }
        }
        let mut e = r.clone();
        e.state = BreakerState::Closed;
        e.expires_at = Some(Utc::now() + chrono::Duration::hours(1));
        save(&files.state, &e).unwrap();
        assert!(matches!(problem(&files), StateProblem::Unbound(_)));
    }

    #[test]
    fn an_older_copy_is_unbound() {
        let (_d, files, r) = bound(BreakerState::Closed, None);
        log_change(&files, BreakerState::Open, r.generation + 1);
        match problem(&files) {
            StateProblem::Unbound(why) => assert!(why.contains("older copy"), "{why}"),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn a_missing_or_torn_log_is_unbound() {
        let (_d, files, _) = bound(BreakerState::Closed, None);
        let log = fs::read_to_string(&files.audit_log).unwrap();
        fs::write(&files.audit_log, format!("{log}{{\"seq\":2,\"at\"")).unwrap();
        assert!(matches!(problem(&files), StateProblem::Unbound(_)));
        fs::remove_file(&files.audit_log).unwrap();
        assert!(matches!(problem(&files), StateProblem::Unbound(_)));
    }

    #[test]
    fn a_pending_change_is_interrupted_and_open() {
        let (_d, files, mut r) = bound(BreakerState::Open, None);
        r.pending = Some(Pending {
            target: BreakerState::Closed,
            generation: r.generation + 1,
            reason: ReasonCode::Manual,
            detail: String::new(),
            actor: Actor::User,
            started_at: Utc::now(),
        });
        save(&files.state, &r).unwrap();
        let l = load(&files, Utc::now());
        assert!(matches!(l.problem, Some(StateProblem::Interrupted { .. })));
        assert_eq!(l.record.state, BreakerState::Open);
        assert_eq!(l.record.reason, ReasonCode::TransitionInterrupted);
        assert_eq!(l.record.generation, r.generation + 1);
        // The cut came after its own audit line: still interrupted, not unbound.
        log_change(&files, BreakerState::Closed, r.generation + 1);
        let l = load(&files, Utc::now());
        assert!(
            matches!(l.problem, Some(StateProblem::Interrupted { .. })),
            "{:?}",
            l.problem
        );
    }

    #[test]
    fn symlinks_foreign_owners_and_loose_modes_are_unsafe() {
        let (d, files, _) = bound(BreakerState::Closed, None);
        let real = d.path().join("elsewhere.json");
        fs::rename(&files.state, &real).unwrap();
        std::os::unix::fs::symlink(&real, &files.state).unwrap();
        match problem(&files) {
            StateProblem::Unsafe(why) => assert!(why.contains("symbolic link"), "{why}"),
            p => panic!("{p:?}"),
        }
        // Kept as a link: the target is never copied.
        let kept = quarantine(&files.state, Utc::now()).unwrap().unwrap();
        assert!(fs::symlink_metadata(&kept)
            .unwrap()
            .file_type()
            .is_symlink());
        fs::remove_file(&files.state).unwrap();
        fs::rename(&real, &files.state).unwrap();
        assert_eq!(load(&files, Utc::now()).problem, None);
        fs::set_permissions(&files.state, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(problem(&files), StateProblem::Unsafe(_)));
        fs::set_permissions(&files.state, fs::Permissions::from_mode(0o644)).unwrap();
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&files.state, Some(nix::unistd::Uid::from_raw(65534)), None)
                .unwrap();
            match problem(&files) {
                StateProblem::Unsafe(why) => assert!(why.contains("uid 65534"), "{why}"),
                p => panic!("{p:?}"),
            }
        }
    }

    #[test]
    fn quarantine_keeps_the_bad_file() {
        let (_d, files, _) = bound(BreakerState::Closed, None);
        write(&files, "garbage");
        let q = quarantine(&files.state, Utc::now()).unwrap().unwrap();
        assert_eq!(fs::read_to_string(q).unwrap(), "garbage");
    }
}
