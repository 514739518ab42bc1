//! Files in the repo that show users exactly what moltguard writes
//! (`nginx/examples/`, `launchd/`, `systemd/`), kept identical to the code by
//! tests. `MOLTGUARD_BLESS=1 cargo test --lib` rewrites them.

use std::path::Path;

/// Asserts that `rel` (relative to the repo root) holds exactly `text`.
pub fn check(rel: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var_os("MOLTGUARD_BLESS").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        text,
        "{} is stale: run `MOLTGUARD_BLESS=1 cargo test --lib`",
        path.display()
    );
}
