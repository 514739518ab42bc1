//! The `moltguard` command: see `moltguard --help`.

fn main() -> std::process::ExitCode {
    moltguard::cli::main()
}
