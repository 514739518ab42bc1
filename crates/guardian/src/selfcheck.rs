//! The guardian's own footing: if others can write moltguard's files or
//! binary, they can switch it off or make it lie.

use super::finding::Finding;
use crate::breaker::ReasonCode;
use crate::config::Config;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Findings for moltguard's files and binary that other users could write.
pub fn check(config: &Config) -> Vec<Finding> {
    let l = &config.layout;
    let mut paths: Vec<(PathBuf, &str)> = vec![
        (l.state_dir.clone(), "state directory"),
        (l.nginx_dir.clone(), "nginx directory"),
        (l.config_file.clone(), "config file"),
        (l.state_file(), "state file"),
    ];
    if let Some(dir) = l.config_file.parent() {
        paths.push((dir.to_path_buf(), "config directory"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            paths.push((dir.to_path_buf(), "directory of the moltguard binary"));
        }
        paths.push((exe, "moltguard binary"));
    }
    paths
        .iter()
        .filter_map(|(p, what)| writable_by_others(p, what))
        .collect()
}

fn writable_by_others(path: &Path, what: &str) -> Option<Finding> {
    let md = std::fs::metadata(path).ok()?;
    let mode = md.permissions().mode();
    let me = nix::unistd::geteuid().as_raw();
    let fix = format!(
        "`chmod go-w {}` and make it owned by you or root",
        path.display()
    );
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Some(
            Finding::critical(
                "SELF_WRITABLE_BY_OTHERS",
                ReasonCode::PermissionsUnsafe,
                format!(
                    "the {what} {} is writable by every user (mode {:o})",
                    path.display(),
                    mode & 0o7777
                ),
                fix,
            )
            .at(path.display().to_string()),
        );
    }
    if md.uid() != me && md.uid() != 0 {
        return Some(
            Finding::critical(
                "SELF_OWNED_BY_OTHERS",
                ReasonCode::PermissionsUnsafe,
                format!(
                    "the {what} {} belongs to uid {}, who could change it",
                    path.display(),
                    md.uid()
                ),
                fix,
            )
            .at(path.display().to_string()),
        );
    }
    if mode & 0o020 != 0 {
        return Some(
            Finding::warning(
                "SELF_WRITABLE_BY_GROUP",
                ReasonCode::PermissionsUnsafe,
                format!(
                    "the {what} {} is writable by its group (mode {:o})",
                    path.display(),
                    mode & 0o7777
                ),
                fix,
            )
            .at(path.display().to_string()),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_writable_is_critical_group_writable_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(
            writable_by_others(&p, "file").unwrap().id,
            "SELF_WRITABLE_BY_OTHERS"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(
            writable_by_others(&p, "file").unwrap().id,
            "SELF_WRITABLE_BY_GROUP"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(writable_by_others(&p, "file").is_none());
    }
}
