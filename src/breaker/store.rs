//! Reading and writing the state file, failing closed on anything doubtful.

use super::state::{Actor, BreakerRecord, BreakerState, ReasonCode, SCHEMA_VERSION};
use crate::fsutil;
use chrono::{DateTime, Utc};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why a state file could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateProblem {
    Missing,
    Unreadable(String),
    Corrupt(String),
    UnknownVersion(u64),
}

impl std::fmt::Display for StateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateProblem::Missing => write!(f, "the state file is missing"),
            StateProblem::Unreadable(e) => write!(f, "the state file cannot be read: {e}"),
            StateProblem::Corrupt(e) => write!(f, "the state file is not valid: {e}"),
            StateProblem::UnknownVersion(v) => write!(
                f,
                "the state file has schema version {v}, this moltguard reads version {SCHEMA_VERSION}"
            ),
        }
    }
}

/// The outcome of loading: always a record to act on, plus the problem that
/// forced a fail-closed stand-in, if any.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub record: BreakerRecord,
    pub problem: Option<StateProblem>,
}

/// Loads the state file. Anything doubtful yields an OPEN / STATE_INVALID
/// record rather than an error: the caller reports and repairs it.
pub fn load(path: &Path, now: DateTime<Utc>) -> Loaded {
    match read_record(path) {
        Ok(record) => Loaded {
            record,
            problem: None,
        },
        Err((problem, seen_generation)) => Loaded {
            record: BreakerRecord {
                schema_version: SCHEMA_VERSION,
                state: BreakerState::Open,
                reason: ReasonCode::StateInvalid,
                detail: problem.to_string(),
                actor: Actor::System,
                generation: seen_generation.unwrap_or(0),
                changed_at: now,
                expires_at: None,
                last_apply: None,
                audit_head: None,
            },
            problem: Some(problem),
        },
    }
}

/// Reads and validates; on failure also returns any generation number that
/// could still be salvaged, so a repair never goes backwards.
fn read_record(path: &Path) -> Result<BreakerRecord, (StateProblem, Option<u64>)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err((StateProblem::Missing, None)),
        Err(e) => return Err((StateProblem::Unreadable(e.to_string()), None)),
    };
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
    if record.generation == 0 {
        return Err((
            StateProblem::Corrupt("generation must be at least 1".into()),
            None,
        ));
    }
    if record.expires_at.is_some() && !record.state.admits_traffic() {
        return Err((
            StateProblem::Corrupt("an open breaker cannot have an expiry".into()),
            Some(record.generation),
        ));
    }
    Ok(record)
}

/// Writes the record atomically (temp file, fsync, rename, fsync dir).
pub fn save(path: &Path, record: &BreakerRecord) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    json.push(b'\n');
    fsutil::write_atomic(path, &json, 0o644)
}

/// Keeps a copy of an untrusted state file before it is repaired, so the
/// repair loses nothing a person may want to look at.
pub fn quarantine(path: &Path, now: DateTime<Utc>) -> io::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let name = format!(
        "{}.invalid-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into()),
        now.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let dest = path.with_file_name(name);
    fs::copy(path, &dest)?;
    Ok(Some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, s: &str) -> PathBuf {
        let p = dir.join("breaker.json");
        fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("breaker.json");
        let r = BreakerRecord::initial(Utc::now());
        save(&p, &r).unwrap();
        let l = load(&p, Utc::now());
        assert_eq!(l.problem, None);
        assert_eq!(l.record, r);
    }

    #[test]
    fn missing_file_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let l = load(&dir.path().join("breaker.json"), Utc::now());
        assert_eq!(l.problem, Some(StateProblem::Missing));
        assert_eq!(l.record.state, BreakerState::Open);
        assert_eq!(l.record.reason, ReasonCode::StateInvalid);
    }

    #[test]
    fn garbage_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        for junk in [
            "",
            "{",
            "null",
            "[]",
            "{\"schema_version\":1}",
            "\u{0}\u{1}",
        ] {
            let l = load(&write(dir.path(), junk), Utc::now());
            assert!(
                matches!(l.problem, Some(StateProblem::Corrupt(_))),
                "{junk:?}"
            );
            assert_eq!(l.record.state, BreakerState::Open);
        }
    }

    #[test]
    fn unknown_version_fails_closed_but_keeps_generation() {
        let dir = tempfile::tempdir().unwrap();
        let l = load(
            &write(
                dir.path(),
                r#"{"schema_version": 9, "state": "closed", "generation": 41}"#,
            ),
            Utc::now(),
        );
        assert_eq!(l.problem, Some(StateProblem::UnknownVersion(9)));
        assert_eq!(l.record.state, BreakerState::Open);
        assert_eq!(l.record.generation, 41);
    }

    #[test]
    fn unknown_state_value_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = serde_json::to_value(BreakerRecord::initial(Utc::now())).unwrap();
        v["state"] = serde_json::json!("ajar");
        let l = load(&write(dir.path(), &v.to_string()), Utc::now());
        assert!(matches!(l.problem, Some(StateProblem::Corrupt(_))));
        assert_eq!(l.record.state, BreakerState::Open);
    }

    #[test]
    fn quarantine_copies_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "garbage");
        let q = quarantine(&p, Utc::now()).unwrap().unwrap();
        assert_eq!(fs::read_to_string(q).unwrap(), "garbage");
    }
}
