//! What moltguard's tests, examples and benches share: the real parts they
//! start and the one stand-in they may use.
//!
//! - [`fake_provider`]: a fake OpenAI-compatible provider, a real HTTP
//!   server over TCP that can hang, stall, cut, reset and misbehave.
//! - [`stack`]: a private moltguard home with a real nginx on a private
//!   prefix, driven through the real `moltguard` binary.
//! - [`moltgate`]: a real `moltgate` on a temporary home, and the CLI
//!   pointed at it.
//! - [`netns`]: network namespaces a test makes for itself (root only).
//! - [`crs`]: the OWASP CRS regression corpus runner.
//! - [`golden`]: files and document sections kept equal to what the code
//!   generates (`MOLTGUARD_BLESS=1` rewrites them).
//!
//! The binaries under test are the ones cargo built for the test run
//! ([`binary`]).

use std::path::{Path, PathBuf};

pub mod crs;
pub mod fake_provider;
pub mod golden;
pub mod moltgate;
// Network namespaces are Linux's.
#[cfg(target_os = "linux")]
pub mod netns;
pub mod stack;

/// The repository's root (where `../shared` is found beside it).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A binary of the workspace, as cargo builds it for the running test:
/// `target/<profile>/NAME`, the directory above the test's own
/// executable (`target/<profile>/deps/…`, or `…/examples/…`).
/// `MOLTGUARD_TEST_BIN_DIR` names another directory.
///
/// # Panics
/// If the binary is not there: an integration test gets its package's
/// binaries built first, so that means it was run some other way.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("MOLTGUARD_TEST_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("the test's own path");
            let parent = exe.parent().expect("the test runs from a directory");
            let in_profile = matches!(
                parent.file_name().and_then(|n| n.to_str()),
                Some("deps" | "examples")
            );
            if in_profile {
                parent.parent().unwrap_or(parent).to_path_buf()
            } else {
                parent.to_path_buf()
            }
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test` (it builds the binaries first) \
         or set MOLTGUARD_TEST_BIN_DIR",
        path.display()
    );
    path
}
