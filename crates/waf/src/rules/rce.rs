//! Remote command execution, unix and windows (932). Rules look for the
//! *shape* of an injection: a command separator (`;`, `|`, `&&`, backtick,
//! `$(`) followed by a command, shell syntax that has no meaning outside a
//! shell, or absolute paths of interpreters. Plain words ("time", "find",
//! "cat") in prose do not match on their own.

use super::{lit, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::{RceUnix as U, RceWindows as W};
use Severity::Critical as C;
use Transform::{Cmd, Text};

/// Tools whose names are not English words: after a separator they are a command.
macro_rules! unix_tools {
    () => {
        r"(?:wget|curl|n(?:et)?cat|nc|bash|z?sh|[kc]sh|tcsh|dash|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node|lua[0-9.]*|nmap|whoami|uname|ifconfig|netstat|nslookup|chmod|chown|chgrp|useradd|usermod|passwd|crontab|base64|xxd|telnet|socat|busybox|sudo|mkfifo|mknod|nohup|g?awk|sed|uname|hostname|systemctl|pkill|killall|lwp-(?:download|request|mirror|get)|fetch|tftp|ftp|ssh|scp|rsync|sftp|gcc|cc|make|chattr|setfacl|dig|host|traceroute|tracepath|ping6?|env|printenv|xargs|eval|exec|sleep|tac|rev|od|strings|hexdump|openssl|gpg|tar|zip|unzip|gzip|gunzip|bzip2|7z|dd|install|ln|mv|cp|rm|rmdir|touch|mkdir|echo|printf|cat|ls|id|ps|ss|ip|kill|who|w|last|df|du|free|uptime|head|tail|more|less|grep|egrep|fgrep|find|locate|which|whereis|file|stat|column|nl|tee|cut|sort|uniq|wc|diff|cmp|vi|vim|nano|ex|ed|emacs|pico|jq|yes|timeout|nice|time|su|chroot|mount|umount|iptables|nft|tcpdump|wireshark|tshark|arp|route|ssh-keygen|at|batch|watch|screen|tmux|script|expect|tclsh|wish|java|javac|jrunscript|jjs|gdb|strace|ltrace|docker|kubectl|podman|crictl|aws|gcloud|az|git|svn|hg|flock|cpulimit|perf|strace|ltrace|taskset|ionice|stdbuf|setsid|runuser|doas|pkexec|toybox|ansible(?:-[a-z]+)?|chef|puppet|salt|irb|gcc[0-9.]*|g\+\+|clang|bsdtar|apt(?:-get)?|aptitude|yum|dnf|apk|rpm|dpkg|pip[0-9.]*|npm|npx|yarn|gem|cscli|ab)"
    };
}

/// The PL1 subset after a separator, as CRS 932230/932235 at paranoia 1:
/// commands of up to three letters that are also English words or very
/// common (`cat`, `cut`, `dig`, `vi`, `id`, `rm`...) and the CRS-curated
/// words (`time`, `more`, `less`, `last`, `watch`) are left to paranoia 2,
/// where [`unix_tools!`] is used in full.
macro_rules! unix_tools_pl1 {
    () => {
        r"(?:wget|curl|n(?:et)?cat|bash|z?sh|[kc]sh|tcsh|dash|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nmap|whoami|uname|ifconfig|netstat|nslookup|chmod|chown|chgrp|useradd|usermod|passwd|crontab|base64|xxd|telnet|socat|busybox|sudo|mkfifo|mknod|nohup|g?awk|sed|hostname|systemctl|pkill|killall|lwp-(?:download|request|mirror|get)|fetch|tftp|ssh|scp|rsync|sftp|gcc|make|chattr|setfacl|host|traceroute|tracepath|ping6?|env|printenv|xargs|eval|exec|sleep|tac|strings|hexdump|openssl|gpg|unzip|gzip|gunzip|bzip2|7z|install|rmdir|touch|mkdir|echo|printf|ls|kill|df|free|uptime|head|tail|grep|egrep|fgrep|find|locate|which|whereis|file|stat|column|sort|uniq|wc|diff|cmp|nano|emacs|pico|jq|timeout|nice|chroot|mount|umount|iptables|nft|tcpdump|wireshark|tshark|route|ssh-keygen|batch|screen|tmux|script|expect|tclsh|wish|java|javac|jrunscript|jjs|gdb|strace|ltrace|docker|kubectl|podman|crictl|gcloud|svn|flock|cpulimit|perf|taskset|ionice|stdbuf|setsid|runuser|doas|pkexec|toybox|ansible(?:-[a-z]+)?|chef|puppet|salt|irb|gcc[0-9.]*|clang|bsdtar|aptitude|yum|dnf|dpkg|yarn|cscli)"
    };
}

/// The PL1 subset at the start of a value, as CRS 932250/932260 at
/// paranoia 1: a value that merely *starts* with a common command name
/// (`bash -c ...`, `curl x`, `echo x`, `find . -name`) is left to paranoia 2.
macro_rules! unix_tools_start_pl1 {
    () => {
        r"(?:wget|n(?:et)?cat|z?sh|[kc]sh|tcsh|perl[0-9.]*|whoami|uname|netstat|chgrp|useradd|usermod|base64|xxd|telnet|socat|busybox|sudo|mkfifo|mknod|nohup|sed|pkill|lwp-(?:download|request|mirror|get)|ssh|scp|rsync|sftp|gcc|traceroute|tracepath|env|printenv|xargs|gpg|gzip|gunzip|bzip2|7z|rmdir|printf|ls|df|uptime|egrep|fgrep|whereis|wc|diff|jq|timeout|umount|nft|javac|jjs|gdb|kubectl|podman|crictl|gcloud|svn|setsid|runuser|doas|pkexec|toybox|ansible(?:-[a-z]+)?|irb|gcc[0-9.]*|bsdtar|yum|dnf|cscli)"
    };
}

/// RCE rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(932100, U, C, 1, loc::INPUT | loc::HEADERS | loc::UA | loc::REFERER, Cmd,
        concat!(r"(?:[;&|`\n]|\$\(|\$\{|\|\||&&)\s*(?:\{\s*)?(?:[a-z]*/)*(?:s?bin/)?", unix_tools_pl1!(),
            r"(?:\s+(?:-{1,2}[a-z0-9]|/|~|\$|\.\.?/)|\s*(?:[|;&<>`)}]|$)|/)"),
        "A command separator followed by a unix command and an option, path, redirect or end of input. Commands that are common words (`cat`, `cut`, `vi`, `time`) only at paranoia 2 (932102), as in CRS."),
    re(932102, U, C, 2, loc::INPUT | loc::HEADERS | loc::UA | loc::REFERER, Cmd,
        concat!(r"(?:[;&|`\n]|\$\(|\$\{|\|\||&&)\s*(?:\{\s*)?(?:[a-z]*/)*(?:s?bin/)?", unix_tools!(),
            r"(?:\s+(?:-{1,2}[a-z0-9]|/|~|\$|\.\.?/)|\s*(?:[|;&<>`)}]|$)|/)"),
        "932100 with every command, including common words (`;cat /path`, `` `cut x` ``, `;vi -c`): paranoia 2, as CRS 932236."),
    re(932101, U, C, 1, loc::INPUT, Cmd,
        concat!(r"^\s*(?:(?:time|nohup|strace|ltrace|nice|sudo|doas|env|exec|command|builtin|xargs|stdbuf|setsid|flock\s+(?:-\S+\s+)*\S+|cpulimit(?:\s+-\S+(?:\s+\d+)?)*|timeout\s+\d+\w?|taskset\s+\S+|ionice)\s+)+(?:[a-z]*/)*", unix_tools_pl1!(), r"\b|^\s*(?:[a-z]*/)*(?:s?bin/)?", unix_tools_start_pl1!(), r"\s+(?:-{1,2}[a-z0-9]+\s+\S|/[a-z]|~/)"),
        "A whole argument that is a unix command with an option and operand, or a path (`wget -O x http://`, `ls -la /`). A value that merely starts with a common command (`bash -c x`, `cat /x`, `curl x`) only at paranoia 2 (932103), as in CRS."),
    re(932103, U, C, 2, loc::INPUT, Cmd,
        concat!(r"^\s*(?:(?:time|nohup|strace|ltrace|nice|sudo|doas|env|exec|command|builtin|xargs|stdbuf|setsid|flock\s+(?:-\S+\s+)*\S+|cpulimit(?:\s+-\S+(?:\s+\d+)?)*|timeout\s+\d+\w?|taskset\s+\S+|ionice)\s+)+(?:[a-z]*/)*", unix_tools!(), r"\b|^\s*(?:[a-z]*/)*(?:s?bin/)?", unix_tools!(), r"\s+(?:-{1,2}[a-z0-9]+\s+\S|/[a-z]|~/)"),
        "932101 with every command (`cat /etc/x`, `bash -c x`): paranoia 2."),
    re(932106, U, C, 1, loc::INPUT, Cmd,
        r"[;&|`\n]\s*[a-z][a-z0-9_.+-]*\s*<<<|\$shell\s+-[a-z]*c\b|\$\{?shell\}?\s",
        "Here-strings (`cmd<<<input`) and `$SHELL -c`: shell-only syntax."),
    re(932105, U, C, 1, loc::INPUT, Cmd,
        r"(?:[;&|`\n]|\$\()\s*(?:wget|curl|lwp-download|fetch|tftp)\s+\S+",
        "Download tool after a separator (`;wget http://...`): staging a payload."),
    re(932110, W, C, 1, loc::INPUT, Cmd,
        r"(?:^\s*cmd(?:\.exe)?\s*/[ck]|(?:[;&|`\n]|\$\()\s*(?:cmd(?:\.exe)?\s*/[ck]|powershell(?:\.exe)?\b|pwsh\b|certutil(?:\.exe)?\s|bitsadmin\b|mshta(?:\.exe)?\s|regsvr32\b|rundll32\b|wmic\b|cscript\b|wscript\b|schtasks\b|vssadmin\b|bcdedit\b|bcdboot\b|regedit\b|reg(?:\.exe)?\s+(?:add|query|delete|save|export|import)\b|net(?:\.exe)?\s+(?:user|localgroup|group|share|use|view|start|stop)\b|netsh\b|tasklist\b|taskkill\b|systeminfo\b|ipconfig\b|whoami\b|type\s+[a-z]:|dir\s+[a-z]:|copy\s+[a-z]:|del\s+[a-z]:|attrib\s|icacls\b|cacls\b|takeown\b|sc\s+(?:create|config|start|stop|query)\b|at\s+\d|msiexec\b|forfiles\b|wevtutil\b|cipher\s+/|diskpart\b|fsutil\b|ntdsutil\b|dsquery\b|nltest\b|klist\b|runas\b|start\s+/b\b))",
        "A separator followed by a windows command (`& cmd /c`, `| powershell`, `;certutil`)."),
    re(932115, W, C, 1, loc::INPUT, Text,
        r"(?:^|[;&|])\s*(?:[a-z]:\\|\\\\)[^\s]*\.(?:exe|bat|cmd|com|ps1|vbs|hta)\b",
        "A separator followed by a windows executable path."),
    lit(932120, W, C, 1, loc::INPUT, Cmd, &[
        "invoke-webrequest", "invoke-expression", "invoke-command", "invoke-restmethod", "invoke-wmimethod",
        "invoke-item", "invoke-shellcode", "invoke-mimikatz", "start-process", "new-object net.webclient",
        "net.webclient", "downloadstring(", "downloadfile(", "downloaddata(", "frombase64string(",
        "get-wmiobject", "set-executionpolicy", "-encodedcommand", "-executionpolicy bypass", "-exec bypass",
        "-windowstyle hidden", "-nop -w hidden", "get-childitem", "get-content", "set-content", "add-content",
        "remove-item", "copy-item", "move-item", "new-item", "get-process", "stop-process", "get-service",
        "start-bitstransfer", "get-itemproperty", "set-itemproperty", "new-itemproperty", "get-acl", "set-acl",
        "get-credential", "convertto-securestring", "[system.convert]", "[convert]::", "system.reflection.assembly",
        "[reflection.assembly]", "add-type", "out-file", "test-connection", "test-netconnection", "get-netadapter",
        "get-localuser", "new-localuser", "add-localgroupmember", "register-scheduledtask", "new-scheduledtask",
        "invoke-cimmethod", "get-ciminstance", "new-psdrive", "enter-pssession", "new-pssession",
        "get-wmiobject", "write-output", "write-host",
    ],
        "PowerShell cmdlets and .NET download idioms; never present in API arguments."),
    re(932125, W, C, 1, loc::INPUT, Cmd,
        r"(?:^|[;&|`\n]|\$\()\s*(?:iwr|iex|irm|iwmi|icm|saps|sajb|gci|gc|gwmi|ls|dir|cp|del|rm|rmdir|ri|mv|spps|cd|sl|gl|ni|md|sc|sv|gv|clc|cls|invoke-[a-z]+)\s+(?:-[a-z]|https?://|[a-z]:|\\|\$|\.\\|/)",
        "A separator followed by a PowerShell alias with an argument (`;iwr http://`). Aliases that are also unix commands or words (`cat`, `echo`, `curl`, `type`, `set`) are left to the unix rules, as in CRS."),
    re(932130, U, C, 1, loc::INPUT | loc::HEADERS, Text,
        r"\$\([^)]+\)|\$\{[^}]+\}|<\([^)]+\)|>\([^)]+\)",
        "Shell expansions: command substitution `$(...)`, `${...}`, process substitution `<(...)`. Backticks are a separator for 932100 (PL1 commands) and 932132 (paranoia 2), as in CRS."),
    re(932132, U, C, 2, loc::INPUT | loc::HEADERS, Text,
        concat!(r"`\s*(?:[a-z]*/)*", unix_tools!(), r"\b[^`]*`"),
        "Backtick command substitution with any command (`` `cut x` ``): paranoia 2, as CRS 932200."),
    re(932140, W, C, 1, loc::INPUT, Text,
        r"\b(?:if(?:\s*/i)?(?:\s+not)?(?:\s+exist\b|\s+defined\b|\s+errorlevel\b|\s+cmdextversion\b|(?:\s|\().*(?:\bgeq\b|\bequ\b|\bneq\b|\bleq\b|\bgtr\b|\blss\b)|(?:\s|\().*==)|for(?:\s*/[dflr][^%]*)?\s+%+[^\s]+\s+in\s*\(.*\)\s*do\b)",
        "Windows batch `IF EXIST`/`IF %x% EQU`/`FOR %%G IN (...) DO` constructs."),
    re(932160, U, C, 1, loc::INPUT | loc::HEADERS, Cmd,
        r"(?:^|[\s;&|`(=/])(?:usr/(?:local/)?)?s?bin/[a-z][a-z0-9_.+-]*(?:\s|$|[;&|`)])",
        "Absolute path of a shell or system binary (`/bin/sh`, `/usr/bin/perl`)."),
    re(932170, U, C, 1, loc::ALL, Text, r"^\(\s*\)\s*\{",
        "Shellshock function definition `() {` at the start of a header or argument (CVE-2014-6271)."),
    re(932171, U, C, 1, loc::INPUT | loc::HEADERS, Text, r"\(\s*\)\s*\{\s*[^}]*;\s*\}\s*;|^\(\s*\)\s*\{",
        "Shellshock payload anywhere in an argument."),
    re(932175, U, C, 1, loc::INPUT, Text, r#"\balias\s+(?:[-+][a-z]+\s+)*['"]?[a-z0-9_.-]+['"]?=\S"#,
        "`alias name=command`: shell alias definition used to obfuscate commands."),
    re(932180, U, C, 1, loc::FILENAMES, Text,
        r"(?:^|/)(?:\.htaccess|\.htdigest|\.htpasswd|wp-config\.php|config\.ya?ml|config_(?:dev|prod|test)\.ya?ml|parameters\.ya?ml|routing\.ya?ml|security\.ya?ml|services\.ya?ml|default\.settings\.php|settings(?:\.local)?\.php|local\.xml|\.env|web\.config|\.user\.ini|php\.ini|\.boto|mtrr|acpi|\.bash_history|\.bashrc|\.profile|authorized_keys|\.netrc|\.npmrc|\.pypirc|\.gitconfig|\.git-credentials)$|wp-config",
        "Upload of a server configuration file name (`.htaccess`, `settings.php`)."),
    re(932200, U, C, 1, loc::INPUT, Text,
        r"(?:/[a-z.]*[?*][a-z.?*]*){2,}|\b[a-z]+(?:''|\x22\x22|\\)[a-z]+(?:''|\x22\x22|\\)?[a-z]*\s+/|\$\{?ifs\b|\$@[a-z]|\b[a-z]+\$[0-9@*][a-z]+\b",
        "Bash evasion: glob paths (`/e??/p?ss??`), quote/backslash splitting (`c''at /`), `$IFS`, `$@` padding."),
    re(932220, U, C, 1, loc::INPUT, Cmd,
        concat!(r"\|\s*(?:[a-z]*/)*", unix_tools_pl1!(), r"\b"),
        "A pipe into a unix command (common-word commands only at paranoia 2, 932221)."),
    re(932221, U, C, 2, loc::INPUT, Cmd,
        concat!(r"\|\s*(?:[a-z]*/)*", unix_tools!(), r"\b"),
        "A pipe into any unix command, including common words (`| cat`, `| tee`): paranoia 2."),
    re(932230, U, C, 1, loc::INPUT, Cmd,
        r"(?:^|[;&|`\n]|\$\()\s*(?:cat|more|less|head|tail|nl|tac|od|xxd|strings)\s+[^\s]*(?:/etc/|/proc/|\.ssh|\.bash|\.env|passwd|shadow)",
        "A separator and a file reader aimed at system files."),
    re(932235, U, C, 1, loc::INPUT, Cmd,
        r"(?:[;&|`\n]|\$\()\s*(?:find\s+/[^\s]*\s+-(?:name|exec|perm|type)|cd\s+/[a-z]*\s*(?:[;&|]|$)|column\s+[a-z/]+|ls\s+-[a-z]+|ls\s*$|id\s*$|uname\s+-[a-z]+|ps\s+-?[a-z]*\s*$|ps\s*$|env\s*$|set\s*$|w\s*$|pwd\s*$|whoami\s*$|(?:who|whois|last(?:log(?:in)?)?|dmesg|df|hostname|vmstat|iostat|htop|reboot|shutdown|su|mysql|psql|aptitude)\s*$)",
        "Reconnaissance commands after a separator (`;id`, `;ls -la`, `;find / -name`), and commands that need no argument at the end of a value (`;who`, `;last`), as CRS 932340."),
    re(932250, U, C, 1, loc::INPUT, Cmd,
        r"(?:[;&|`\n]|\$\()\s*(?:[a-z]*/)*(?:ba|da|z|k|c|tc|fi|a)?sh\s+-[a-z]*c\b|^\s*(?:[a-z]*/)*(?:z|k|c|tc)?sh\s+-[a-z]*c\b|(?:^|[\s;&|])(?:c99|c89|gcc|cc)\s+-wrapper\s",
        "`sh -c`, `bash -c` and compiler `-wrapper` tricks: running a command string. A value that starts with `bash -c` (a quoted command line) counts only after a separator, as in CRS 932250/932260."),
    re(932260, U, C, 1, loc::INPUT, Cmd,
        r"^(?:python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|node|lua[0-9.]*)(?:\s+-[a-z]*[ec]\b|\s+[a-z0-9_./-]+$)|^printf\s+\S+\s+(?:\S+\s+)*\|\s*(?:rev|sh|bash)|\|\s*(?:ba)?sh\s*$",
        "Interpreter invoked with inline code (`python -c`, `perl -e`) or output piped into a shell."),
    re(932270, U, C, 1, loc::INPUT, Text, r"^~[+-]\s*$|^~[+-][0-9]*$",
        "Bash tilde expansion `~+`/`~-` as a whole value."),
    re(932280, U, C, 1, loc::INPUT, Text, r"\{[a-z/.-][a-z0-9/.-]*,[,/.a-z0-9-]*\}",
        "Bash brace expansion (`{l,-lh}s`, `c{a,o}t`)."),
    re(932330, U, C, 1, loc::INPUT, Text, r"!-\d|!!\s*$|^!\d+$",
        "Bash history expansion (`!-1`, `!!`)."),
    re(932370, W, C, 1, loc::INPUT, Cmd,
        r"(?:[;&|`\n])\s*(?:mshta|regedit|regsvr32|rundll32|certutil|bitsadmin|cscript|wscript|wmic|msbuild|installutil|regasm|regsvcs|odbcconf|msxsl|cmstp|forfiles|pcalua|scriptrunner|syncappvpublishingserver|hh|control|esentutl|expand|extrac32|findstr|makecab|replace|xwizard|bcdboot|bcdedit|diskshadow|dnscmd|ftp|ieexec|infdefaultinstall|mavinject|microsoft\.workflow\.compiler|msconfig|msdt|msiexec|netsh|presentationhost|register-cimprovider|rpcping|runonce|sc|schtasks|vssadmin|wevtutil|xcopy|robocopy|icacls|takeown|attrib|cipher|compact|fsutil|ntdsutil|nltest|dsquery)(?:\.exe)?\b",
        "Windows LOLBins after a separator (`; mshta http://`, `& bcdboot`)."),
    re(932380, W, C, 1, loc::INPUT, Cmd,
        r"(?:[;&|`\n])\s*(?:bcdboot|bcdedit|bootcfg|chkdsk|diskpart|format|label|mountvol|recover|sfc|shutdown|tasklist|taskkill|systeminfo|ver|vol|whoami|hostname|ipconfig|arp|getmac|nbtstat|netstat|route|tracert|pathping|nslookup|qwinsta|rwinsta|query|quser|logoff|tscon|tsdiscon)(?:\.exe)?(?:\s+[/<>]|\s*$)",
        "Windows system commands with switches after a separator."),
    re(932236, U, C, 1, loc::INPUT | loc::UA | loc::REFERER, Cmd,
        r"(?:[;&|`\n]|\$\(|&&|\|\|)\s*(?:[a-z]*/)*(?:ansible(?:-[a-z]+)?|chef-[a-z]+|visudo|cscli|rmt-(?:tar|dump)|lastlog(?:in)?|whoami|wget|curl|ncat|netcat|socat|telnet|nmap|bash|zsh|ksh|tcsh|python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|php[0-9.]*|ifconfig|netstat|nslookup|chmod|chown|useradd|usermod|passwd|crontab|xxd|busybox|sudo|mkfifo|nohup|pkill|killall|systemctl|uname|strace|ltrace|msfconsole|msfvenom|trap|perf|aptitude|apt-get|tftp|lwp-[a-z]+)\b",
        "A separator followed by a distinctive tool name (`; whoami`, `| ansible`, `&& wget`)."),
    re(932237, U, C, 1, loc::INPUT, Text,
        r"\(\s*(?:ba|da|z|k|c|tc)?sh\s*\)|/dev/(?:tcp|udp)/|\d?>&?\s*\$\w+/(?:tcp|udp)/|\b(?:ba|da|z|k|c)?sh\$[a-z_{]+",
        "Reverse-shell and padding idioms: `(sh)`, `/dev/tcp/host/port`, `sh$X`."),
    re(932131, U, C, 1, loc::INPUT, Text,
        r"\$\[|/[a-z0-9_]*\[[^\]]{1,10}\][a-z]*(?:/|$)",
        "Bash arithmetic `$[...]` and bracket globs inside paths (`/bi[n]/bash`, `/usr/[a-z]in/`)."),
    re(932261, U, C, 1, loc::INPUT, Cmd,
        r"^\s*(?:[a-z]*/)*(?:ansible(?:-[a-z]+)?|chef-[a-z]+|visudo|cscli|whoami|ifconfig|netstat|nslookup|msfconsole|msfvenom|useradd|usermod|systemctl|nmap|ncat|netcat|socat|perf\s+-)\b",
        "A whole argument that starts with a system-administration or attack tool (`whoami;`, `ansible all`, `visudo`)."),
];
