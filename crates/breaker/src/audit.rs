//! The append-only, hash-chained audit log of breaker transitions.
//!
//! One JSON object per line. Each line carries the SHA-256 of the previous
//! line's hash plus its own canonical content, so editing, inserting or
//! deleting a line breaks the chain from that point on. The state file keeps
//! the newest line's hash, which also exposes a log whose tail was cut off,
//! and a state file is trusted only while it equals the entry it names
//! ([`Tail`], `store::load`).

use super::state::{Actor, AuditHead, BreakerState, ReasonCode};
use chrono::{DateTime, Utc};
use moltguard_fsutil as fsutil;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The hash the first line chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One transition attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1-based position in the log; each entry is one more than the last.
    pub seq: u64,
    /// When the entry was written.
    pub at: DateTime<Utc>,
    /// Who caused the transition.
    pub actor: Actor,
    /// The state before it.
    pub from: BreakerState,
    /// The state it aimed at (whether it got there: `outcome`).
    pub to: BreakerState,
    /// Why it was asked for.
    pub reason: ReasonCode,
    /// The reason in words; may be empty.
    pub detail: String,
    /// The generation the transition used.
    pub generation: u64,
    /// How applying it at the edge ended, as
    /// [`ApplyOutcome::as_str`](crate::state::ApplyOutcome::as_str) spells it.
    pub outcome: String,
    /// What applying it reported.
    pub message: String,
    /// The lifetime of the state this entry committed. Absent in entries
    /// written before it was recorded, and for states without a lifetime,
    /// so older lines keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The previous entry's hash ([`GENESIS`] for the first entry).
    pub prev: String,
    /// This entry's hash, hex: SHA-256 of `prev` and the entry without it.
    /// Absent only in a damaged line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditEntry {
    /// SHA-256 over the previous hash and this entry without its own hash.
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = None;
        let canonical = serde_json::to_string(&unhashed).expect("audit entries always serialize");
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(canonical.as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether the stored hash is the one its content gives.
    pub fn hash_is_valid(&self) -> bool {
        self.hash.as_deref() == Some(self.compute_hash().as_str())
    }

    /// The head a state file records after this entry.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash.clone().unwrap_or_default(),
        }
    }
}

/// What a caller supplies; sequence and chaining are filled in here.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Who caused the transition.
    pub actor: Actor,
    /// The state before it.
    pub from: BreakerState,
    /// The state it aimed at.
    pub to: BreakerState,
    /// Why it was asked for.
    pub reason: ReasonCode,
    /// The reason in words; may be empty.
    pub detail: String,
    /// The generation the transition used.
    pub generation: u64,
    /// The lifetime of the state it commits, if it has one.
    pub expires_at: Option<DateTime<Utc>>,
    /// How applying it at the edge ended, as
    /// [`ApplyOutcome::as_str`](crate::state::ApplyOutcome::as_str) spells it.
    pub outcome: String,
    /// What applying it reported.
    pub message: String,
}

/// Appends one entry chained to the current last line. Call under the
/// breaker lock so two writers never chain from the same line.
pub fn append(path: &Path, entry: NewEntry, now: DateTime<Utc>) -> io::Result<AuditHead> {
    let (seq, prev) = match Tail::read(path)?.last {
        Some(last) => (last.seq + 1, last.hash.unwrap_or_default()),
        None => (1, GENESIS.to_string()),
    };
    let mut e = AuditEntry {
        seq,
        at: now,
        actor: entry.actor,
        from: entry.from,
        to: entry.to,
        reason: entry.reason,
        detail: entry.detail,
        generation: entry.generation,
        outcome: entry.outcome,
        message: entry.message,
        expires_at: entry.expires_at,
        prev,
        hash: None,
    };
    let hash = e.compute_hash();
    e.hash = Some(hash.clone());
    let line = serde_json::to_string(&e).map_err(io::Error::other)?;
    fsutil::append_line(path, &line, 0o644)?;
    Ok(AuditHead { seq, hash })
}

/// The newest entries of the log, read without reading the whole log.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The newest entry.
    pub last: Option<AuditEntry>,
    /// The one before it.
    pub previous: Option<AuditEntry>,
}

/// How much of the log's end [`Tail::read`] looks at: far more than two
/// entries (a reason is at most 500 characters).
const TAIL_WINDOW: u64 = 64 * 1024;

impl Tail {
    /// Reads the last two entries. A last line that is not a whole entry
    /// (torn by a crash mid-append, or edited) is an error: nothing may be
    /// chained to it, and no state can be bound to it.
    pub fn read(path: &Path) -> io::Result<Tail> {
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let window = len.min(TAIL_WINDOW);
        f.seek(SeekFrom::Start(len - window))?;
        let mut buf = Vec::with_capacity(window as usize);
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.lines().rev().filter(|l| !l.trim().is_empty());
        // In a window that starts mid-file the first line is a fragment.
        let whole = |l: &&str| window == len || !text.starts_with(*l);
        let parse = |line: &str| {
            serde_json::from_str::<AuditEntry>(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the last line of the audit log {} is not a valid entry ({e}); \
                         run `moltguard audit-log verify` to see where it breaks",
                        path.display()
                    ),
                )
            })
        };
        let last = match lines.next() {
            Some(l) => Some(parse(l)?),
            None => None,
        };
        let previous = lines
            .next()
            .filter(whole)
            .and_then(|l| serde_json::from_str(l).ok());
        Ok(Tail { last, previous })
    }
}

/// Whether a new entry could be appended: the last line is whole and the
/// file can be opened for writing. A change toward traffic checks this
/// before it touches the edge, so it never serves what it cannot record.
pub fn check_appendable(path: &Path) -> io::Result<()> {
    Tail::read(path)?;
    match OpenOptions::new().append(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fsutil::check_dir_writable(path.parent().unwrap_or(Path::new(".")))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("the audit log {} cannot be written: {e}", path.display()),
        )),
    }
}

/// Reads every entry, in order, for display.
pub fn read_all(path: &Path) -> io::Result<Vec<AuditEntry>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e = serde_json::from_str(&line).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("audit log line {} is not a valid entry: {err}", i + 1),
            )
        })?;
        out.push(e);
    }
    Ok(out)
}

/// The verdict of `audit-log verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries that verified: all of them when intact, else those before the break.
    pub entries: u64,
    /// Whether the whole chain verified and holds the head the state file names.
    pub intact: bool,
    /// 1-based line of the first problem, and what it is.
    pub first_break: Option<(u64, String)>,
    /// The last entry that verified, as a state file names it.
    pub head: Option<AuditHead>,
}

/// Checks the whole chain, and that its head is the one the state file names.
pub fn verify(path: &Path, expected_head: Option<&AuditHead>) -> io::Result<Verification> {
    let text = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    let mut head: Option<AuditHead> = None;
    let mut entries = 0u64;
    let mut seen_expected_head = false;
    let fail = |line: u64, why: String, entries: u64, head: Option<AuditHead>| Verification {
        entries,
        intact: false,
        first_break: Some((line, why)),
        head,
    };
    for (i, line) in text.lines().enumerate() {
        let lineno = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let e: AuditEntry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(err) => {
                return Ok(fail(
                    lineno,
                    format!("not a valid entry: {err}"),
                    entries,
                    head,
                ))
            }
        };
        if e.seq != expected_seq {
            let why = format!(
                "sequence {} where {} was expected (a line was removed or inserted)",
                e.seq, expected_seq
            );
            return Ok(fail(lineno, why, entries, head));
        }
        if e.prev != prev {
            return Ok(fail(
                lineno,
                "does not chain to the line before it".into(),
                entries,
                head,
            ));
        }
        let Some(stored) = e.hash.clone() else {
            return Ok(fail(lineno, "has no hash".into(), entries, head));
        };
        if e.compute_hash() != stored {
            return Ok(fail(
                lineno,
                "its content was changed after it was written".into(),
                entries,
                head,
            ));
        }
        if expected_head.is_some_and(|want| want.seq == e.seq && want.hash == stored) {
            seen_expected_head = true;
        }
        prev = stored.clone();
        expected_seq += 1;
        entries += 1;
        head = Some(AuditHead {
            seq: e.seq,
            hash: stored,
        });
    }
    if let Some(want) = expected_head {
        if !seen_expected_head {
            let why = format!(
                "the state file names entry {} as the newest written, but the log does not contain it \
                 (the log was cut short or replaced)",
                want.seq
            );
            return Ok(fail(entries + 1, why, entries, head));
        }
    }
    Ok(Verification {
        entries,
        intact: true,
        first_break: None,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(gen: u64) -> NewEntry {
        NewEntry {
            actor: Actor::User,
            from: BreakerState::Open,
            to: BreakerState::Closed,
            reason: ReasonCode::Manual,
            detail: "test".into(),
            generation: gen,
            expires_at: None,
            outcome: "applied".into(),
            message: String::new(),
        }
    }

    fn log_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf, AuditHead) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut head = None;
        for g in 1..=n {
            head = Some(append(&p, entry(g), Utc::now()).unwrap());
        }
        (dir, p, head.unwrap())
    }

    #[test]
    fn a_fresh_chain_verifies() {
        let (_d, p, head) = log_with(5);
        let v = verify(&p, Some(&head)).unwrap();
        assert!(v.intact, "{v:?}");
        assert_eq!(v.entries, 5);
        assert_eq!(v.head, Some(head));
    }

    #[test]
    fn an_edited_line_is_detected() {
        let (_d, p, head) = log_with(4);
        let text = fs::read_to_string(&p)
            .unwrap()
            .replace("\"detail\":\"test\"", "\"detail\":\"tset\"");
        fs::write(&p, text).unwrap();
        let v = verify(&p, Some(&head)).unwrap();
        assert!(!v.intact);
        assert_eq!(v.first_break.unwrap().0, 1);
    }

    #[test]
    fn a_removed_line_is_detected() {
        let (_d, p, head) = log_with(4);
        let lines: Vec<String> = fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let kept = [&lines[0], &lines[2], &lines[3]];
        fs::write(
            &p,
            kept.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        let v = verify(&p, Some(&head)).unwrap();
        assert!(!v.intact);
        assert_eq!(v.first_break.unwrap().0, 2);
    }

    #[test]
    fn a_cut_tail_is_detected_through_the_state_head() {
        let (_d, p, head) = log_with(3);
        let lines: Vec<String> = fs::read_to_string(&p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        fs::write(&p, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
        assert!(
            verify(&p, None).unwrap().intact,
            "the chain itself is still whole"
        );
        assert!(!verify(&p, Some(&head)).unwrap().intact);
    }

    #[test]
    fn garbage_lines_are_reported_not_panicked_on() {
        let (_d, p, _) = log_with(1);
        let mut text = fs::read_to_string(&p).unwrap();
        text.push_str("{not json\n");
        fs::write(&p, text).unwrap();
        let v = verify(&p, None).unwrap();
        assert!(!v.intact);
        assert_eq!(v.first_break.unwrap().0, 2);
    }
}
