//! Containment: when a protected port listens beyond loopback, the breaker
//! closing nginx is not enough (the agent's own port is still reachable
//! from the network). The guardian then blocks inbound traffic to that port
//! from every interface but loopback with the host firewall, in a table of
//! its own, and removes exactly that table when the bind is fixed and a
//! person has closed the breaker again.
//!
//! - Linux: an nftables table `inet moltguard` (IPv4 and IPv6) with one
//!   input chain, replaced in one `nft -f` transaction; nothing else in the
//!   ruleset is read or written.
//! - macOS: the pf anchor `com.apple/moltguard` (pf evaluates `com.apple/*`
//!   in the stock `/etc/pf.conf`), loaded with `pfctl -a … -f -` and
//!   flushed with `pfctl -a … -F rules`. Not yet verified on a real Mac.
//!
//! What is contained, and since which breaker generation, is kept in
//! `STATE_DIR/containment.json`, so a restarted guardian knows its rules.

use crate::config::Config;
use crate::exec;
use crate::fsutil;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the guardian has blocked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Containment {
    /// Ports blocked from every interface but loopback.
    pub ports: BTreeSet<u16>,
    /// The breaker generation when containment began: it is lifted only
    /// after a later transition that admits traffic (a person closed again).
    pub since_generation: u64,
    /// When containment began.
    pub since: Option<DateTime<Utc>>,
    /// Which firewall holds the rules, in words (`nftables table inet moltguard`).
    pub firewall: String,
}

impl Containment {
    /// Whether any port is blocked.
    pub fn is_active(&self) -> bool {
        !self.ports.is_empty()
    }
}

fn state_file(config: &Config) -> PathBuf {
    config.layout.state_dir.join("containment.json")
}

/// What is contained now (nothing when the file is missing or unreadable:
/// the firewall then holds no rule of ours that this guardian made).
pub fn read(config: &Config) -> Containment {
    std::fs::read(state_file(config))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write(config: &Config, c: &Containment) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(c).map_err(std::io::Error::other)?;
    json.push(b'\n');
    fsutil::write_atomic(&state_file(config), &json, 0o644)
}

/// What one reconciliation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing to do.
    Unchanged,
    /// These ports were blocked.
    Contained(BTreeSet<u16>),
    /// These ports were released.
    Released(BTreeSet<u16>),
    /// Containment is wanted but cannot be done here (no firewall, no root).
    Unavailable(String),
}

/// Brings the firewall to what the scan found: `exposed` are the protected
/// ports listening beyond loopback now; `generation` and `admits_traffic`
/// describe the committed breaker state.
pub fn reconcile(
    config: &Config,
    exposed: &BTreeSet<u16>,
    generation: u64,
    admits_traffic: bool,
) -> Change {
    let current = read(config);
    let mut want = current.ports.clone();
    want.extend(exposed.iter().copied());
    // Lifted only once nothing is exposed and a person closed the breaker again.
    if exposed.is_empty() && admits_traffic && generation > current.since_generation {
        want.clear();
    }
    if want == current.ports {
        return Change::Unchanged;
    }
    let fw = match Firewall::find() {
        Ok(fw) => fw,
        Err(why) if !want.is_empty() => return Change::Unavailable(why),
        Err(_) => return Change::Unchanged,
    };
    let done = if want.is_empty() {
        fw.clear()
    } else {
        fw.apply(&want)
    };
    if let Err(why) = done {
        return Change::Unavailable(why);
    }
    let next = if want.is_empty() {
        Containment::default()
    } else {
        Containment {
            since_generation: if current.is_active() {
                current.since_generation
            } else {
                generation
            },
            since: current.since.or(Some(Utc::now())),
            firewall: fw.describe(),
            ports: want.clone(),
        }
    };
    if let Err(e) = write(config, &next) {
        return Change::Unavailable(format!(
            "the firewall rules are in place, but {} cannot be written: {e}",
            state_file(config).display()
        ));
    }
    if want.is_empty() {
        Change::Released(current.ports)
    } else {
        Change::Contained(want)
    }
}

/// The host firewall moltguard writes its own rules into.
pub struct Firewall {
    binary: PathBuf,
}

impl Firewall {
    /// The firewall program, found as every program moltguard runs as root is.
    pub fn find() -> Result<Firewall, String> {
        let (name, candidates): (&str, &[&str]) = if cfg!(target_os = "macos") {
            ("pfctl", &["/sbin/pfctl"])
        } else {
            ("nft", &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"])
        };
        let binary = exec::resolve(name, None, candidates).map_err(|e| {
            format!("{e}; install it (Debian: `apt-get install nftables`) to contain exposed ports")
        })?;
        if !exec::running_as_root() {
            return Err(format!(
                "{name} needs root: run the guardian as root (`sudo moltguard install`) to contain exposed ports"
            ));
        }
        Ok(Firewall { binary })
    }

    /// The firewall's name and moltguard's table in it, in words.
    pub fn describe(&self) -> String {
        if cfg!(target_os = "macos") {
            format!("pf anchor {PF_ANCHOR}")
        } else {
            format!("nftables table inet {NFT_TABLE}")
        }
    }

    /// Replaces moltguard's rules with a block of `ports`, in one transaction.
    pub fn apply(&self, ports: &BTreeSet<u16>) -> Result<(), String> {
        if cfg!(target_os = "macos") {
            self.run(&["-a", PF_ANCHOR, "-f", "-"], &pf_rules(ports))
        } else {
            self.run(&["-f", "-"], &nft_ruleset(ports))
        }
    }

    /// Removes moltguard's rules, and nothing else.
    pub fn clear(&self) -> Result<(), String> {
        if cfg!(target_os = "macos") {
            self.run(&["-a", PF_ANCHOR, "-F", "rules"], "")
        } else {
            self.run(
                &["-f", "-"],
                &format!("table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"),
            )
        }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Result<(), String> {
        run(&self.binary, args, stdin)
    }
}

/// The name of moltguard's nftables table.
pub const NFT_TABLE: &str = "moltguard";
/// moltguard's pf anchor, under the `com.apple/*` anchor the stock pf.conf loads.
pub const PF_ANCHOR: &str = "com.apple/moltguard";

/// The nftables script that replaces moltguard's table atomically (the
/// first line makes the `delete` safe when the table does not exist yet).
/// Loopback is never blocked: the edge and local tools keep working.
pub fn nft_ruleset(ports: &BTreeSet<u16>) -> String {
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "table inet {NFT_TABLE}\n\
         delete table inet {NFT_TABLE}\n\
         table inet {NFT_TABLE} {{\n\
         \x20   chain input {{\n\
         \x20       type filter hook input priority -10; policy accept;\n\
         \x20       iifname != \"lo\" tcp dport {{ {list} }} counter reject with tcp reset comment \"moltguard: listens beyond loopback\"\n\
         \x20   }}\n\
         }}\n"
    )
}

/// The pf rules for moltguard's anchor.
pub fn pf_rules(ports: &BTreeSet<u16>) -> String {
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!("block return in quick on ! lo0 proto tcp from any to any port {{ {list} }}\n")
}

fn run(binary: &Path, args: &[&str], stdin: &str) -> Result<(), String> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}",
            binary.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nft_script_replaces_only_its_own_table() {
        let s = nft_ruleset(&BTreeSet::from([18789, 8787]));
        assert!(
            s.starts_with("table inet moltguard\ndelete table inet moltguard\n"),
            "{s}"
        );
        assert!(
            s.contains("iifname != \"lo\" tcp dport { 8787, 18789 }"),
            "{s}"
        );
        assert!(s.contains("reject with tcp reset"));
        // No other table, chain or flush: nothing of anyone else's is touched.
        assert!(!s.contains("flush"));
        assert_eq!(s.matches("table ").count(), 3);
    }

    #[test]
    fn pf_rules_spare_loopback() {
        let s = pf_rules(&BTreeSet::from([18789]));
        assert_eq!(
            s,
            "block return in quick on ! lo0 proto tcp from any to any port { 18789 }\n"
        );
    }
}
