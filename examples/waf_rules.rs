//! Prints the firewall rule table (markdown), as crates/waf/WAF.md shows it
//! (a test keeps the two equal: `MOLTGUARD_BLESS=1 cargo test`
//! rewrites the document's copy).
//!
//! `cargo run --example waf_rules`

fn main() {
    print!("{}", moltguard::firewall::rules::table_markdown());
}
