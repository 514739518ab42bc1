//! Path traversal and local file inclusion (930). Normal API arguments do
//! not climb directories or name OS files; chat content that does is exempt
//! (see `llm.rs`).

use super::{lit, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::Lfi as L;
use Severity::Critical as C;

/// LFI rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(930100, L, C, 1, loc::INPUT_PATH | loc::HEADERS | loc::FILENAMES, Transform::Text,
        r"(?:^|[\\/;])\.{2,3}[\\/;]|\.\.\.\.//|0x(?:2e|5c|2f)(?:\.|0x(?:2e|5c|2f))",
        "Directory traversal (`../`, `..\\`, `...;/`) after full decoding; APIs take identifiers, not relative paths."),
    re(930110, L, C, 1, loc::INPUT_PATH, Transform::Text,
        r"(?:^|[\\/])\.\.(?:\x{fffd}|%)",
        "Traversal built from broken or nested encodings (`..%`, `...`)."),
    lit(930120, L, C, 1, loc::INPUT | loc::HEADERS | loc::FILENAMES, Transform::Path, &[
        "etc/passwd", "etc/shadow", "/sys/class", "/sys/kernel", "/sys/devices", "proc/interrupts", "backup.sql", "etc/group", "etc/hosts", "etc/issue", "etc/motd", "etc/crontab",
        "etc/sudoers", "etc/hostname", "etc/resolv.conf", "etc/fstab", "etc/mtab", "etc/security/",
        "etc/ssh/", "etc/apache", "etc/httpd", "etc/nginx", "etc/mysql", "etc/php", "etc/redis",
        "etc/master.passwd", "etc/pwd.db", "etc/spwd.db", "etc/gshadow", "etc/inittab", "etc/profile",
        "etc/bashrc", "etc/environment", "etc/ld.so", "etc/os-release", "etc/lsb-release",
        "etc/redhat-release", "etc/debian_version", "etc/network/", "etc/init.d/", "etc/rc.d/",
        "etc/sysconfig/", "etc/x11/", "etc/cron", "etc/logrotate", "etc/syslog", "etc/rsyslog",
        "etc/shells", "etc/aliases", "etc/exports", "etc/passwd-", "etc/shadow-",
        "proc/self/", "proc/version", "proc/cpuinfo", "proc/meminfo", "proc/net/", "proc/mounts",
        "proc/1/", "proc/sched_debug", "proc/cmdline", "/var/log/", "var/lib/mysql", "var/mail/",
        "var/spool/", "var/www/", "/usr/local/apache", "/usr/local/etc", "/root/",
        "/home/", "boot.ini", "win.ini", "system.ini", "system32/drivers/", "system32/config/sam", "winnt/system32",
        "system32/drivers/etc", "system32/config/", "windows/repair", "inetpub/", "autoexec.bat",
        "config.sys", "web.config", "web-inf/", "meta-inf/", ".htaccess", ".htpasswd", "httpd.conf",
        "php.ini", "my.cnf", "my.ini", "wp-config.php", "localsettings.php", "configuration.php",
        ".bash_history", ".bashrc", ".bash_profile", ".profile", ".zsh_history", ".mysql_history",
        ".psql_history", ".viminfo", ".ssh/", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519",
        "authorized_keys", "known_hosts", ".aws/", ".docker/", ".kube/", ".git/", ".svn/", ".hg/",
        "/.env", ".npmrc", ".pypirc", ".netrc", ".pgpass", ".gnupg/", "/dev/tcp/", "/dev/udp/",
        "sam.bak", "repair/sam", "/etc/", "/bin/sh", "/bin/bash", "cmd.exe", "/usr/bin/",
        "/tmp/", "%systemroot%", "c:/windows", "c:/boot", "c:/inetpub",
    ],
        "Argument names a well-known OS, server or credential file (`/etc/passwd`, `win.ini`, `.ssh/id_rsa`)."),
    lit(930130, L, C, 1, loc::PATH, Transform::Path, &[
        "/.htaccess", "/.htpasswd", "/.htdigest", "/web.config", "/web-inf/", "/meta-inf/",
        "/.idea/", "/.vscode/", "/sys/class", "/sys/kernel", "/sys/devices", "/proc/", "/@fs/", "/@id/", "/.aiignore", "/.cursorignore", "/.codeiumignore", "/.aiexclude", "/.ds_store", "/.bash_history", "/.bashrc", "/.profile",
        "/.svn/", "/.hg/", "/.bzr/", "/cvs/", "/.cvs", "/.gitignore", "/.gitconfig",
        "/.npmrc", "/.dockerenv", "/dockerfile", "/docker-compose", "/composer.json", "/composer.lock",
        "/package-lock.json", "/yarn.lock", "/.travis.yml", "/.gitlab-ci.yml", "/phpinfo.php",
        "/server-status", "/server-info", "/wp-config.php", "/config.php", "/configuration.php",
        "/localsettings.php", "/settings.php", "/appsettings.json", "/secrets.json", "/credentials",
        "/.well-known/security.txt.bak", "/id_rsa", "/.mysql_history", "/.psql_history",
        "/.terraform", "/terraform.tfstate", "/.vagrant", "/.kube/", "/.docker/", "/.config/",
        "/.local/", "/.cache/", "/.history", "/.sh_history", "/.zsh_history", "/.viminfo",
        "/nohup.out", "/.user.ini", "/php.ini", "/.perf", "/.htpasswd",
    ],
        "Request for a restricted server file (`.htaccess`, `WEB-INF/`, VCS metadata); the gateway serves none."),
];
