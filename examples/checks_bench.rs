//! What the guardian's static checks cost: `cargo run --release --example checks_bench`.
//!
//! Builds, in a temp dir, an nginx config of 200 server blocks (~5,000
//! directives across 9 files, globbed includes), a 10 MB directory of text,
//! an htpasswd file and an agent config, then times each check.

use moltguard::guardian::checks::{self, ProtectedSet, ScanLimits, SecretPlace};
use moltguard::nginxconf;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f(); // warm-up, also the result shown
    let start = Instant::now();
    for _ in 0..runs {
        last = f();
    }
    (start.elapsed() / runs, last)
}

fn write_nginx(dir: &Path) -> usize {
    let breaker = dir.join("breaker.conf");
    fs::write(
        &breaker,
        "default_type application/json;\nif (!-f /tmp/allow) { return 503 'closed\\n'; }\nauth_basic \"moltguard\";\nauth_basic_user_file /etc/moltguard/htpasswd;\n",
    )
    .expect("write breaker");
    fs::create_dir_all(dir.join("sites")).expect("mkdir");
    fs::create_dir_all(dir.join("conf.d")).expect("mkdir");
    fs::write(
        dir.join("nginx.conf"),
        "worker_processes 1;\nevents { worker_connections 1024; }\nhttp {\n    include conf.d/*.conf;\n    include sites/*.conf;\n}\n",
    )
    .expect("write main");
    fs::write(
        dir.join("conf.d/common.conf"),
        "sendfile on;\ntcp_nopush on;\nkeepalive_timeout 65;\ngzip on;\nmap $http_upgrade $c { default upgrade; '' close; }\n",
    )
    .expect("write common");
    let mut directives = 0;
    for f in 0..8 {
        let mut t = String::new();
        for s in 0..25 {
            let n = f * 25 + s;
            // One server in ten fronts a protected port through the breaker.
            let protected = n % 10 == 0;
            let _ = writeln!(t, "server {{");
            let _ = writeln!(t, "    listen 127.0.0.1:{};", 10_000 + n);
            let _ = writeln!(t, "    server_name site{n}.example.internal;");
            if protected {
                let _ = writeln!(t, "    include {};", breaker.display());
            }
            let _ = writeln!(t, "    access_log /var/log/nginx/site{n}.log;");
            let _ = writeln!(t, "    client_max_body_size 10m;");
            for l in 0..3 {
                let _ = writeln!(t, "    location /app{l}/ {{");
                let port = if protected && l == 0 {
                    8787
                } else {
                    20_000 + n
                };
                let _ = writeln!(t, "        proxy_pass http://127.0.0.1:{port};");
                let _ = writeln!(t, "        proxy_set_header Host $host;");
                let _ = writeln!(t, "        proxy_set_header X-Real-IP $remote_addr;");
                let _ = writeln!(
                    t,
                    "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
                );
                let _ = writeln!(t, "        proxy_read_timeout 60s;");
                let _ = writeln!(t, "        add_header X-Frame-Options \"DENY\" always;");
                let _ = writeln!(t, "    }}");
            }
            let _ = writeln!(t, "}}");
            directives += 6 + 3 * 7 + usize::from(protected);
        }
        fs::write(dir.join(format!("sites/s{f}.conf")), t).expect("write site");
    }
    directives
}

fn write_tree(dir: &Path, total: usize) -> usize {
    let line = "const handler = async (req, res) => { res.json({ ok: true, items: list.map(x => x.id) }); };\n";
    let per_file = 50_000;
    let mut files = 0;
    let mut written = 0;
    while written < total {
        let sub = dir.join(format!("d{}", files % 10));
        fs::create_dir_all(&sub).expect("mkdir");
        let mut t = line.repeat(per_file / line.len());
        if files % 50 == 0 {
            t.push_str(&format!("GROQ_API_KEY=gsk_{}\n", "Qw3Er4Ty5Ui6".repeat(4)));
        }
        written += t.len();
        fs::write(sub.join(format!("f{files}.js")), t).expect("write");
        files += 1;
    }
    files
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ngx = tmp.path().join("nginx");
    fs::create_dir_all(&ngx).expect("mkdir");
    let written = write_nginx(&ngx);
    let protected = ProtectedSet {
        ports: vec![8443, 8787, 18789],
        breaker_include: ngx.join("breaker.conf"),
    };
    let main = ngx.join("nginx.conf");

    let (t_load, tree) = time(50, || nginxconf::load(&main, &ngx).expect("load"));
    let all: Vec<(std::path::PathBuf, String)> = tree
        .files
        .iter()
        .map(|p| (p.clone(), fs::read_to_string(p).expect("read")))
        .collect();
    let bytes: usize = all.iter().map(|(_, t)| t.len()).sum();
    let (t_parse, _) = time(50, || {
        all.iter()
            .map(|(p, t)| nginxconf::parse(t, p).map(|d| d.len()).unwrap_or(0))
            .sum::<usize>()
    });
    let mut count = 0;
    nginxconf::walk(&tree.directives, &mut |_, _| count += 1);
    let servers = tree
        .directives
        .iter()
        .map(|d| d.children().len())
        .sum::<usize>();
    let (t_check, findings) = time(200, || checks::check_nginx(&tree, &protected));
    let (t_sec, sec) = time(50, || {
        checks::check_nginx_secrets(&tree, &ScanLimits::default())
    });
    println!(
        "nginx: {} files, {count} directives (~{written} in sites), {servers} top-level entries",
        tree.files.len()
    );
    println!(
        "  parse only ({:.0} KB)        {:>8.0} µs/run ({:.0} MB/s)",
        bytes as f64 / 1e3,
        t_parse.as_secs_f64() * 1e6,
        bytes as f64 / 1e6 / t_parse.as_secs_f64()
    );
    println!(
        "  load+parse (with includes) {:>8.0} µs/run",
        t_load.as_secs_f64() * 1e6
    );
    println!(
        "  check_nginx                {:>8.0} µs/run ({} findings)",
        t_check.as_secs_f64() * 1e6,
        findings.len()
    );
    println!(
        "  secrets in nginx files     {:>8.0} µs/run ({} findings)",
        t_sec.as_secs_f64() * 1e6,
        sec.len()
    );

    let www = tmp.path().join("www");
    let files = write_tree(&www, 10 << 20);
    let (t_scan, f) = time(5, || {
        checks::check_secrets(SecretPlace::WebRoot, &www, &ScanLimits::default())
    });
    let scan = checks::scan_dir(&www, &ScanLimits::default());
    println!(
        "secrets: {} files, {:.1} MB scanned, {} findings",
        files,
        scan.bytes_scanned as f64 / 1e6,
        f.len()
    );
    println!(
        "  scan_dir 10 MB             {:>8.1} ms/run ({:.0} MB/s)",
        t_scan.as_secs_f64() * 1e3,
        scan.bytes_scanned as f64 / 1e6 / t_scan.as_secs_f64()
    );

    let h = tmp.path().join("htpasswd");
    fs::write(
        &h,
        "alice:$apr1$abcdefgh$0123456789abcdefghijkl\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n",
    )
    .expect("write");
    let (t_h, _) = time(1000, || checks::check_htpasswd(&h, None));
    println!(
        "htpasswd: check_htpasswd     {:>8.1} µs/run",
        t_h.as_secs_f64() * 1e6
    );
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join(".openclaw")).expect("mkdir");
    fs::write(
        home.join(".openclaw/openclaw.json"),
        "{ // agent\n  gateway: { port: 18789, bind: 'loopback', auth: { mode: 'token', token: 'q8Zr2LmX9vB4nT7kW1pY5sD3' } },\n}\n",
    )
    .expect("write");
    let (t_a, _) = time(1000, || checks::check_agent(&home, false));
    println!(
        "agent: check_agent           {:>8.1} µs/run",
        t_a.as_secs_f64() * 1e6
    );
    let per_scan = t_load + t_check + t_sec + t_h + t_a;
    println!(
        "total per guardian pass without the web-root scan: {:.2} ms",
        per_scan.as_secs_f64() * 1e3
    );
}
