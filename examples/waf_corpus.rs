//! CRS regression corpus runner.
//!
//! ```text
//! cargo run --release --example waf_corpus                 # in-process
//! cargo run --release --example waf_corpus -- --url 127.0.0.1:8080   # raw TCP, 403 = blocked
//! cargo run --release --example waf_corpus -- --dump /tmp/waf         # write misses/FPs
//! ```

use moltguard_test_support::crs;

use moltguard::firewall::{Firewall, FirewallConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let stages = crs::load()?;
    let mk = |pl: u8| -> Result<Box<dyn crs::Target>, Box<dyn std::error::Error>> {
        Ok(match arg("--url") {
            Some(url) => {
                let addr = url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse()?;
                Box::new(crs::Http { addr })
            }
            None => Box::new(crs::InProcess(Firewall::new(FirewallConfig {
                paranoia: pl,
                ..FirewallConfig::default()
            })?)),
        })
    };
    let pl1 = crs::run(&stages, mk(1)?.as_mut(), |s| s.paranoia == Some(1));
    println!("## PL1 tests, firewall at paranoia 1 (default)\n");
    println!("{}", crs::table(&[("PL1", &pl1)]));
    println!("## All levels\n");
    let all_at_4 = if arg("--url").is_some() {
        // Over HTTP the paranoia level is the server's: one pass.
        let all = crs::run(&stages, mk(1)?.as_mut(), |_| true);
        println!("{}", crs::table(&[("all tests (server config)", &all)]));
        all
    } else {
        let all_at_1 = crs::run(&stages, mk(1)?.as_mut(), |_| true);
        let all_at_4 = crs::run(&stages, mk(4)?.as_mut(), |_| true);
        println!(
            "{}",
            crs::table(&[("all tests @PL1", &all_at_1), ("all tests @PL4", &all_at_4)])
        );
        all_at_4
    };
    let t = pl1.total();
    println!(
        "status/response-only stages (not scored): {} at PL1, {} blocked",
        t.other, t.other_blocked
    );
    if let Some(dir) = arg("--dump") {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(format!("{dir}/pl1_misses.txt"), pl1.misses.join("\n"))?;
        std::fs::write(format!("{dir}/pl1_fps.txt"), pl1.false_positives.join("\n"))?;
        std::fs::write(
            format!("{dir}/all_misses_pl4.txt"),
            all_at_4.misses.join("\n"),
        )?;
        std::fs::write(
            format!("{dir}/all_fps_pl4.txt"),
            all_at_4.false_positives.join("\n"),
        )?;
        let fw = Firewall::new(FirewallConfig::default())?;
        let mut why = crs::explain(&stages, &fw, &pl1.false_positives);
        why.extend(crs::explain(&stages, &fw, &pl1.misses));
        std::fs::write(format!("{dir}/pl1_explain.txt"), why.join("\n"))?;
    }
    Ok(())
}
