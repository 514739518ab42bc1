//! Files in the repo that show users exactly what moltguard writes
//! (`nginx/examples/`, `launchd/`, `systemd/`), kept identical to the code by
//! tests. `MOLTGUARD_BLESS=1 cargo test` rewrites them.

/// Asserts that `rel` (relative to the repo root) holds exactly `text`.
pub fn check(rel: &str, text: &str) {
    let path = crate::repo_root().join(rel);
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
        "{} is stale: run `MOLTGUARD_BLESS=1 cargo test`",
        path.display()
    );
}

/// Asserts that the part of `rel` between `<!-- generated: NAME -->` and
/// `<!-- end: NAME -->` (a table in a document, say) is exactly `text`.
pub fn check_section(rel: &str, name: &str, text: &str) {
    let path = crate::repo_root().join(rel);
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = (
        format!("<!-- generated: {name} -->\n"),
        format!("<!-- end: {name} -->"),
    );
    let section = on_disk.find(&start).and_then(|a| {
        let from = a + start.len();
        on_disk[from..].find(&end).map(|b| (from, from + b))
    });
    let Some((from, to)) = section else {
        panic!("{} has no `{start}` … `{end}` section", path.display());
    };
    if std::env::var_os("MOLTGUARD_BLESS").is_some() {
        let blessed = format!("{}{text}{}", &on_disk[..from], &on_disk[to..]);
        std::fs::write(&path, blessed).unwrap();
        return;
    }
    assert_eq!(
        &on_disk[from..to],
        text,
        "{}'s `{name}` section is stale: run `MOLTGUARD_BLESS=1 cargo test`",
        path.display()
    );
}
