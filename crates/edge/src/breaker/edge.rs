//! What nginx is given, and what it serves, must be what the committed
//! state renders.
//!
//! The include and the allow token are derived files: for a committed
//! record there is exactly one right content of each (or none, for the
//! token under OPEN). Anything else on disk (an include edited by hand, a
//! token touched by hand, leftovers of a cut-off transition, a symbolic
//! link) is drift, and `settle` repairs it toward OPEN: a reload would
//! otherwise serve whatever is on disk. What the running nginx answers is
//! judged the same way ([`judge_served`]): never more than the state allows.

use super::state::{BreakerRecord, BreakerState};
use crate::config::Config;
use crate::config::Layout;
use crate::fsutil;
use crate::nginx::control::{Nginx, NginxError};
use crate::nginx::probe::{self, ProbeError, Served};
use crate::nginx::render::{self, UnsafePath};
use std::io;
use std::path::Path;

/// One way the edge files differ from a fresh rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The include is not there.
    IncludeMissing,
    /// Not a regular file (a symbolic link, a directory): its content can
    /// change behind moltguard's back.
    IncludeNotRegular,
    /// The bytes differ; `line` is the first line (1-based) that does.
    IncludeEdited {
        /// The first line (1-based) that differs.
        line: usize,
    },
    /// The allow token exists while the state admits no traffic.
    TokenPresent,
    /// The allow token is gone while the state admits traffic: nginx
    /// denies everything, so the edge serves less than the state says.
    TokenMissing,
    /// A token, but not the one this generation writes.
    TokenForeign,
}

impl Drift {
    /// Whether this drift alone is harmless: a token under a correct OPEN
    /// include is never read (OPEN returns 503 before any token check).
    pub fn is_harmless_token(&self) -> bool {
        *self == Drift::TokenPresent
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::IncludeMissing => write!(f, "the breaker include is missing"),
            Drift::IncludeNotRegular => {
                write!(f, "the breaker include is not a regular file (a link?)")
            }
            Drift::IncludeEdited { line } => write!(
                f,
                "the breaker include differs from what the state renders, from line {line} \
                 (edited by hand, or left by a cut-off change)"
            ),
            Drift::TokenPresent => write!(f, "the allow token exists, but the breaker is OPEN"),
            Drift::TokenMissing => write!(
                f,
                "the allow token is gone, so nginx denies everything the state allows"
            ),
            Drift::TokenForeign => write!(
                f,
                "the allow token is not the one this generation writes (touched by hand, or stale)"
            ),
        }
    }
}

/// Why the edge files could not be rendered to compare with.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The include's path cannot be trusted.
    #[error(transparent)]
    Unsafe(#[from] UnsafePath),
    /// The key the edge's session cookie is signed with cannot be read.
    #[error("the edge session key {path}: {source}")]
    SessionKey {
        /// The key file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// The include for `record`, exactly as a transition writes it.
pub fn render_include(record: &BreakerRecord, layout: &Layout) -> Result<String, RenderError> {
    let files = layout.state_files();
    let session = session_cookie(&files.session_key, record.generation).map_err(|source| {
        RenderError::SessionKey {
            path: files.session_key.display().to_string(),
            source,
        }
    })?;
    Ok(render::render_include(record, layout, &session)?)
}

/// This generation's session cookie: HMAC-SHA256 of the generation under
/// moltguard's session key, in hex. Every transition has a new generation,
/// so every transition ends every session; only the include (readable by
/// nginx's group, like the htpasswd file) holds the value.
pub fn session_cookie(key_file: &Path, generation: u64) -> io::Result<String> {
    use hmac::{Hmac, Mac};
    let key = session_key(key_file)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(io::Error::other)?;
    mac.update(format!("moltguard edge session, generation {generation}").as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Reads the 32-byte session key, creating it (0600, random) on first use.
/// Two first users race harmlessly: the file is created at most once.
fn session_key(path: &Path) -> io::Result<[u8; 32]> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match fsutil::read_regular(path) {
        Ok((bytes, md)) => {
            let me = nix::unistd::geteuid().as_raw();
            if md.permissions().mode() & 0o077 != 0 || (md.uid() != me && md.uid() != 0) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "others may read it or it is not ours: whoever can read it can forge a session; \
                     delete it (a new one is made, and every session ends)",
                ));
            }
            bytes.try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not 32 bytes: delete it, a new one is made",
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let dir = path.parent().unwrap_or(Path::new("."));
            let mut tmp = tempfile::Builder::new()
                .prefix(".moltguard-")
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(dir)?;
            std::io::Write::write_all(&mut tmp, &key)?;
            tmp.as_file().sync_all()?;
            match tmp.persist_noclobber(path) {
                Ok(_) => Ok(key),
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => session_key(path),
                Err(e) => Err(e.error),
            }
        }
        Err(e) => Err(e),
    }
}

/// Compares the include and the allow token with a fresh rendering of
/// `record`. Empty when they are exactly what moltguard would write.
pub fn check(record: &BreakerRecord, layout: &Layout) -> Result<Vec<Drift>, RenderError> {
    let mut out = Vec::new();
    let include = render_include(record, layout)?;
    match read_if_regular(&layout.include_file()) {
        Present::No => out.push(Drift::IncludeMissing),
        Present::NotRegular => out.push(Drift::IncludeNotRegular),
        Present::Yes(bytes) if bytes != include.as_bytes() => out.push(Drift::IncludeEdited {
            line: first_differing_line(&bytes, include.as_bytes()),
        }),
        Present::Yes(_) => {}
    }
    match (
        render::render_allow_token(record),
        read_if_regular(&layout.allow_token()),
    ) {
        (None, Present::No) => {}
        (None, _) => out.push(Drift::TokenPresent),
        (Some(_), Present::No) => out.push(Drift::TokenMissing),
        (Some(_), Present::NotRegular) => out.push(Drift::TokenForeign),
        (Some(want), Present::Yes(got)) if got != want.as_bytes() => out.push(Drift::TokenForeign),
        (Some(_), Present::Yes(_)) => {}
    }
    Ok(out)
}

/// What the running nginx answered, judged against the committed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// It serves this generation and answers as the state should.
    Matches,
    /// Nothing answers; right for OPEN.
    NothingServed,
    /// The breaker is OPEN and nginx denies (HTTP 503), but from another
    /// config than the committed one (it could not be reloaded, say).
    /// Nothing flows; `served` is the generation it names, if any.
    DeniesFromOtherConfig {
        /// The generation the denying config names, if any.
        served: Option<u64>,
    },
    /// The state admits traffic, but nothing is served: the safe direction.
    NotServing(String),
    /// More may flow than the state allows, or nobody can tell: repair
    /// toward OPEN.
    Violation(String),
}

impl Live {
    /// Whether the edge serves exactly what the state says.
    pub fn is_exact(&self) -> bool {
        matches!(self, Live::Matches | Live::NothingServed)
    }
}

/// Judges one anonymous probe of the edge against `record` (committed,
/// after `settle`: an expired lifetime is already recorded as OPEN).
pub fn judge_served(record: &BreakerRecord, answer: &Result<Served, ProbeError>) -> Live {
    let open = record.state == BreakerState::Open;
    let upper = |s: BreakerState| s.as_str().to_uppercase();
    match answer {
        Ok(s) if s.generation == record.generation => match answers_as_it_should(record.state, s) {
            None => Live::Matches,
            Some(why) => Live::Violation(format!(
                "nginx serves generation {}, but {why}",
                s.generation
            )),
        },
        Ok(s) if open && s.http_status == 503 => Live::DeniesFromOtherConfig {
            served: Some(s.generation),
        },
        Ok(s) => Live::Violation(format!(
            "nginx serves generation {} ({}, HTTP {} to an anonymous request), the state file says generation {} ({})",
            s.generation,
            upper(s.state),
            s.http_status,
            record.generation,
            upper(record.state)
        )),
        Err(ProbeError::Unreachable(_)) if open => Live::NothingServed,
        Err(ProbeError::Unreachable(addr)) => Live::NotServing(format!(
            "nothing answers on {addr} while the breaker is {}",
            upper(record.state)
        )),
        Err(ProbeError::NoHeader { status: 503, .. }) if open => {
            Live::DeniesFromOtherConfig { served: None }
        }
        Err(e) => Live::Violation(e.to_string()),
    }
}

/// What the running edge was seen doing, and the verdict.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The nginx master, if it runs.
    pub pid: Option<i32>,
    /// The process group of workers whose master was killed, if any.
    pub orphans: Option<i32>,
    /// The anonymous probe's answer, when something could be probed.
    pub served: Option<Served>,
    /// What that means for the state.
    pub live: Live,
}

/// Looks at the running nginx (master, orphaned workers, one anonymous
/// probe on a fresh connection) and judges it against `record`.
pub fn observe(
    config: &Config,
    nginx: &Result<Nginx, NginxError>,
    record: &BreakerRecord,
) -> Observed {
    let open = record.state == BreakerState::Open;
    let not_running = |why: String| {
        if open {
            Live::NothingServed
        } else {
            Live::NotServing(why)
        }
    };
    let nginx = match nginx {
        Ok(n) => n,
        Err(e) => {
            return Observed {
                pid: None,
                orphans: None,
                served: None,
                live: not_running(format!("nginx cannot be used: {e}")),
            }
        }
    };
    let pid = nginx.running_pid();
    let orphans = nginx.orphaned_group();
    if let Some(group) = orphans {
        return Observed {
            pid,
            orphans,
            served: None,
            live: Live::Violation(format!(
                "the nginx master was killed, but its workers (process group {group}) still serve \
                 the config they had, and nothing can reload them"
            )),
        };
    }
    if pid.is_none() {
        return Observed {
            pid,
            orphans,
            served: None,
            live: not_running("nginx is not running".into()),
        };
    }
    let edge = &config.settings.edge;
    let answer = probe::probe(
        probe::probe_address(edge.listen_address, edge.port),
        std::time::Duration::from_secs(2),
    );
    Observed {
        pid,
        orphans,
        served: answer.as_ref().ok().copied(),
        live: judge_served(record, &answer),
    }
}

/// How an anonymous request from this machine must be answered under
/// `state`; `None` when `served` is that. OPEN refuses (503); otherwise the
/// password is asked for (401). Anything else means the site overrides the
/// breaker (an `auth_basic off`, a location of its own), or the running
/// config is not what was rendered.
pub fn answers_as_it_should(state: BreakerState, served: &Served) -> Option<String> {
    let want = if state == BreakerState::Open {
        503
    } else {
        401
    };
    (served.http_status != want).then(|| {
        format!(
            "it answers HTTP {} to an anonymous request where the {} include answers {want}",
            served.http_status,
            state.as_str().to_uppercase()
        )
    })
}

enum Present {
    No,
    NotRegular,
    Yes(Vec<u8>),
}

fn read_if_regular(path: &Path) -> Present {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Present::No,
        Ok(md) if !md.file_type().is_file() => Present::NotRegular,
        _ => match fsutil::read_regular(path) {
            Ok((bytes, _)) => Present::Yes(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Present::No,
            // Unreadable counts as not what was rendered.
            Err(_) => Present::NotRegular,
        },
    }
}

fn first_differing_line(a: &[u8], b: &[u8]) -> usize {
    let mut la = a.split(|c| *c == b'\n');
    let mut lb = b.split(|c| *c == b'\n');
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            _ => return n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::state::BreakerState;
    use chrono::Utc;

    fn layout(dir: &Path) -> Layout {
        Layout {
            home: None,
            config_file: dir.join("moltguard.toml"),
            state_dir: dir.join("state"),
            log_dir: dir.join("log"),
            htpasswd: dir.join("htpasswd"),
            nginx_dir: dir.join("nginx"),
        }
    }

    fn written(state: BreakerState) -> (tempfile::TempDir, Layout, BreakerRecord) {
        let dir = tempfile::tempdir().unwrap();
        let l = layout(dir.path());
        std::fs::create_dir_all(l.state_dir.join("edge")).unwrap();
        std::fs::create_dir_all(&l.nginx_dir).unwrap();
        let mut r = BreakerRecord::initial(Utc::now());
        r.state = state;
        std::fs::write(l.include_file(), render_include(&r, &l).unwrap()).unwrap();
        if let Some(t) = render::render_allow_token(&r) {
            std::fs::write(l.allow_token(), t).unwrap();
        }
        (dir, l, r)
    }

    #[test]
    fn a_fresh_rendering_has_no_drift() {
        for s in [
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::Closed,
        ] {
            let (_d, l, r) = written(s);
            assert_eq!(check(&r, &l).unwrap(), vec![], "{s}");
        }
    }

    #[test]
    fn an_edited_include_is_found_at_its_line() {
        let (_d, l, r) = written(BreakerState::Open);
        let text = std::fs::read_to_string(l.include_file()).unwrap();
        let kept: String = text
            .lines()
            .filter(|line| !line.starts_with("return 503"))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(l.include_file(), kept).unwrap();
        let d = check(&r, &l).unwrap();
        assert!(matches!(d[..], [Drift::IncludeEdited { line: 7 }]), "{d:?}");
    }

    #[test]
    fn tokens_must_be_this_generations() {
        let (_d, l, mut r) = written(BreakerState::Closed);
        std::fs::write(l.allow_token(), "").unwrap();
        assert_eq!(check(&r, &l).unwrap(), vec![Drift::TokenForeign]);
        std::fs::remove_file(l.allow_token()).unwrap();
        assert_eq!(check(&r, &l).unwrap(), vec![Drift::TokenMissing]);
        r.state = BreakerState::Open;
        std::fs::write(l.include_file(), render_include(&r, &l).unwrap()).unwrap();
        std::fs::write(l.allow_token(), "x").unwrap();
        let d = check(&r, &l).unwrap();
        assert_eq!(d, vec![Drift::TokenPresent]);
        assert!(d[0].is_harmless_token());
    }

    #[test]
    fn links_are_not_regular_files() {
        let (dir, l, r) = written(BreakerState::Closed);
        let real = dir.path().join("real.conf");
        std::fs::rename(l.include_file(), &real).unwrap();
        std::os::unix::fs::symlink(&real, l.include_file()).unwrap();
        assert_eq!(check(&r, &l).unwrap(), vec![Drift::IncludeNotRegular]);
        std::fs::remove_file(l.include_file()).unwrap();
        assert_eq!(check(&r, &l).unwrap(), vec![Drift::IncludeMissing]);
    }
}
