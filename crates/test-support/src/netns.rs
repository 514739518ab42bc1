//! Network namespaces a test makes for itself, so that what crosses a
//! network is real and stays inside the test: the calling thread moves into
//! a private namespace (with only loopback), and an "outside" namespace is
//! joined to it by a veth pair. Nothing here can reach any other address
//! of this machine, or any other machine. Needs root.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const IP: &str = "/usr/sbin/ip";

/// Whether this process may create namespaces, and the tools are there.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("root, to create network namespaces".into());
    }
    for tool in [IP, "/usr/sbin/nft"] {
        if !std::path::Path::new(tool).exists() {
            return Err(format!(
                "{tool} (iproute2, nftables; scripts/install-deps.sh)"
            ));
        }
    }
    Ok(())
}

fn ip(args: &[&str]) {
    let out = Command::new(IP).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the calling thread (and every process and thread it starts from
/// now on) into a new network namespace with only loopback, up.
pub fn enter_private() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) needs root");
    ip(&["link", "set", "lo", "up"]);
    let links = Command::new(IP).args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(links.lines().count(), 1, "only loopback: {links}");
}

/// Another namespace, joined to the caller's by a veth pair: the network
/// as it looks from another machine.
pub struct Outside {
    name: String,
    /// The caller's address on the pair (what "outside" connects to).
    pub inside_ip: IpAddr,
    pub outside_ip: IpAddr,
}

impl Outside {
    /// Call from a thread that is in its private namespace already.
    pub fn create() -> Outside {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 10_000;
        let name = format!("mg-out-{id}-{n}");
        let (a, b) = (format!("mgi{id}x{n}"), format!("mgo{id}x{n}"));
        let net = format!("10.{}.{}", 200 + n % 50, id % 250);
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{net}.1/30"), "dev", &a]);
        ip(&["link", "set", &a, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{net}.2/30"),
            "dev",
            &b,
        ]);
        ip(&["-n", &name, "link", "set", &b, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Outside {
            name,
            inside_ip: format!("{net}.1").parse().unwrap(),
            outside_ip: format!("{net}.2").parse().unwrap(),
        }
    }

    /// Whether a TCP connection from outside to `port` on the inside address
    /// is accepted (within 2 s).
    pub fn can_connect(&self, port: u16) -> bool {
        let path = format!("/run/netns/{}", self.name);
        let to = SocketAddr::new(self.inside_ip, port);
        std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = Command::new(IP).args(["netns", "del", &self.name]).status();
    }
}

/// `nft list tables`, as the caller's namespace has them.
pub fn nft_tables() -> String {
    let out = Command::new("/usr/sbin/nft")
        .args(["list", "tables"])
        .output()
        .expect("nft (nftables; scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs an nftables script in the caller's namespace.
pub fn nft(script: &str) {
    use std::io::Write;
    let mut c = Command::new("/usr/sbin/nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "nft -f: {script}");
}
