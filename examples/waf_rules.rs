//! Prints the firewall rule table (markdown), as included in WAF.md.
//!
//! `cargo run --example waf_rules`

use moltguard::firewall::fields::loc;
use moltguard::firewall::rules::{self, Matcher};

fn targets(t: u16) -> String {
    if t == loc::ALL {
        return "request".to_string();
    }
    let names = [
        (loc::PATH, "path"),
        (loc::ARG_NAMES, "arg names"),
        (loc::ARGS, "args"),
        (loc::COOKIE_NAMES, "cookie names"),
        (loc::COOKIES, "cookies"),
        (loc::HEADERS, "headers"),
        (loc::UA, "UA"),
        (loc::REFERER, "referer"),
        (loc::FILENAMES, "file names"),
        (loc::HEADER_NAMES, "header names"),
    ];
    names
        .iter()
        .filter(|(bit, _)| t & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    println!(
        "| id | category | severity | PL | kind | inspects | catches / why not a false positive |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut all = rules::all();
    all.sort_by_key(|r| r.id);
    for r in all {
        let kind = match r.matcher {
            Matcher::Regex(_) => format!("regex/{:?}", r.transform).to_lowercase(),
            Matcher::Literals(l) => format!("{} literals", l.len()),
            Matcher::Base64Of(l) => format!("base64 of {} literals", l.len()),
            Matcher::Check => "code".to_string(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.category,
            r.severity,
            r.paranoia,
            kind,
            targets(r.targets),
            r.description.replace('|', "\\|")
        );
    }
}
