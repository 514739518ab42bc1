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

/// Asserts that the part of `rel` between `<!-- generated: NAME -->` and
/// `<!-- end: NAME -->` (a table in a document, say) is exactly `text`.
pub fn check_section(rel: &str, name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
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
        "{}'s `{name}` section is stale: run `MOLTGUARD_BLESS=1 cargo test --lib`",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    /// Documents of the crates that cannot see this module.
    #[test]
    fn the_firewall_rule_table_is_the_code() {
        super::check_section(
            "crates/waf/WAF.md",
            "rules",
            &crate::firewall::rules::table_markdown(),
        );
    }

    #[test]
    fn the_exit_codes_table_is_the_code() {
        super::check_section(
            "docs/BREAKER.md",
            "exit-codes",
            &crate::cli::Exit::markdown(),
        );
    }
}
