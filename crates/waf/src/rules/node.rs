//! Node.js / JavaScript server-side injection and generic code injection
//! (934): prototype pollution, `child_process`, `require(`, `eval` of
//! strings, SSRF to metadata endpoints, template injection.

use super::{code, re, Category, Rule, Transform};
use crate::fields::{loc, Field};
use crate::score::Severity;
use crate::Hits;

use Category::Node as N;
use Severity::Critical as C;
use Transform::Text as T;

/// Node / generic rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(934100, N, C, 1, loc::INPUT, T,
        r"\b(?:__js_function|_\$\$nd_func\$\$_|xyqktkrfrlvoqyqk|console\s*\.\s*(?:log|info|warn|error|debug|dir|trace)\s*\(|module\s*\.\s*exports\s*=|child_process|process\.(?:binding|mainmodule|env|exit|kill|dlopen)|require\s*\(|module\.(?:constructor|exports\.|children)|global\.process|this\.constructor|constructor\s*\(\s*['\x22]return|new\s+function\s*\(|function\s*\(\s*\)\s*\{|\bexecsync\b|\bspawnsync\b|\bexecfile\b|\.exec\s*\(|\.spawn\s*\(|\beval\s*\(|settimeout\s*\(\s*['\x22]|setinterval\s*\(\s*['\x22]|_\$\$nd_func\$\$_|\bfs\.(?:readfile|writefile|readdir|unlink)|\bvm\.run|\bnew\s+buffer\s*\()",
        "Node.js code execution primitives (`child_process`, `require(`, `process.mainModule`)."),
    re(934110, N, C, 1, loc::INPUT, T,
        r"(?:^|\b)(?:gopher|dict|ldap)://metadata\.google\.internal|(?:^|\b)(?:https?|gopher|dict|ftp|ldap|file)://(?:169\.254\.169\.254|\[?fd00:ec2::254|metadata(?:\.google\.internal)?/computemetadata|metadata\.azure\.com|100\.100\.100\.200|instance-data|localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|\[::1?\]|0x7f[0-9a-f]*|2130706433|017700000001|\[::ffff:[^\]]+\])",
        "SSRF: URL pointing at cloud metadata (the metadata API path, as CRS) or loopback addresses."),
    re(934120, N, C, 1, loc::INPUT, T,
        r"\b(?:https?|gopher|dict|ftp|ldap)://(?:\d{8,10}|0x[0-9a-f]{6,8}|0[0-7]{8,11}|(?:0x[0-9a-f]{1,2}|0[0-7]{1,3})(?:\.(?:0x[0-9a-f]{1,2}|0[0-7]{1,3}|\d{1,3})){1,3}|[^/@]*@?\[?[0-9a-f:]*::[0-9a-f:]*\]?)(?:[:/]|$)",
        "SSRF: IP address written in decimal, octal, hex or IPv6 to evade allow-lists."),
    re(934130, N, C, 1, loc::INPUT, T,
        r"(?:__proto__|constructor\s*(?:\.|\[\s*['\x22]?)\s*prototype)",
        "JavaScript prototype pollution (`__proto__`, `constructor.prototype`)."),
    code(934131, N, C, 1, loc::ARG_NAMES,
        "Argument name path into `__proto__` or `constructor[prototype]` (qs-style prototype pollution)."),
    re(934150, N, C, 1, loc::INPUT, T,
        r"\bprocess\s*\.\s*(?:mainmodule|binding|env|argv|exit|kill|cwd|chdir|dlopen|stdout|stdin)\b|\bglobal\s*\.\s*process\b",
        "Node.js `process.*` access from input."),
    re(934160, N, C, 1, loc::INPUT, T,
        r#"\bwhile\s*\(\s*(?:true|1|infinity|!\s*(?:false|0|\+0|-0|""|''|``|null|undefined|nan|\[\]\s*\.\s*length)|!!\s*[\[{1]|\[\]|\{\})\s*\)|\bfor\s*\(\s*;\s*;\s*\)|\bthrow\s+new\s+\w+|\brequire\s*\(\s*['\x22`](?:child_process|fs|net|vm|os|http|dgram|cluster|worker_threads)|\bbuffer\.from\s*\(|\.(?:tostring|call|apply|bind)\s*\(\s*\)\s*\("#,
        "Node.js denial-of-service loops and dangerous module loads."),
    re(934170, N, C, 1, loc::INPUT, T,
        r"^data:(?:(?:\w+/\w[\w.+-]*)?(?:;[\w-]+=[\w-]+)*)?(?:;base64)?,",
        "`data:` URL as a whole argument (SSRF/inclusion with inline content)."),
    re(934180, N, C, 1, loc::INPUT, T,
        r"\{\{.*?(?:\b(?:self|config|request|lipsum|cycler|joiner|namespace|range|dict|class|mro|subclasses|globals|builtins|import|popen|os\.|getattr|__\w+__)\b).*?\}\}|\{%.*?(?:import|include|extends|for|if|set|macro).*?%\}|\$\{[^}]*(?:\bt\(|getclass|forname|runtime|processbuilder|new\s+java)|#\{[^}]*(?:runtime|exec|system|`)|<%=?[^%]*(?:system|exec|runtime|eval|require)",
        "Server-side template injection (Jinja2 `{{config}}`, Twig, EL `${T(...)}`, ERB `<%= %>`)."),
    re(934191, N, C, 1, loc::ARGS, T,
        r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^/@]*@)?(?:localhost[a-z0-9.-]*|ip6-(?:localhost|loopback)|ipv6-(?:localhost|loopback)|0\.0\.0\.0|127(?:\.\d{1,3}){3}|\[(?:0*:)*:?0*1?\])(?::\d+(?:[/?#]|$)|[/?#])",
        "URL-like argument pointing at a loopback host name (`localhost/`, `ip6-loopback`): SSRF."),
    re(934190, N, C, 1, loc::INPUT, T,
        r"\b(?:fetch|xmlhttprequest|websocket|import)\s*\(|\bnew\s+(?:function|worker|websocket)\s*\(",
        "JavaScript network or dynamic-code constructs in an argument."),
    re(934101, N, C, 1, loc::INPUT, T,
        r"\b(?:process|require|console|global|globalthis|module)\s*\[|\bconsole\s*\.\s*[a-z]+\s*\.\s*(?:call|apply|bind)\s*\(|\brequire\s*\.\s*(?:main|cache|resolve)\b|\.constructor\s*\.\s*_load\s*\(|\breaddirsync\s*\(|\b(?:readfilesync|writefilesync|execsync|spawnsync)\b",
        "Node.js internals reached through brackets or loaders (`process['env']`, `require.main`, `readdirSync(`)."),
    re(934161, N, C, 1, loc::INPUT, T,
        r"\bwhile\(\s*(?:\(\s*)*(?:!\s*(?:false|0|\+0|-0|null|undefined|nan|\x22\x22|''|``)|!!\s*[^)]{1,12}|[-+]?(?:true|infinity|[1-9]\d*)|this|string|number|object|array|date|new\s+[a-z]+|\{\s*\}|\[\s*\])[\s)]*\)|\bd2hpbgu",
        "JavaScript infinite loops on a constant (`while(!![])`, `while(-Infinity)`, base64 `while(`): event-loop DoS."),
    re(934192, N, C, 1, loc::ARGS, T,
        r"(?:^|//|@)(?:host|gateway|kubernetes)\.docker\.internal\b|(?:^|//|@)host\.containers\.internal\b|(?:^|//|@)kubernetes\.default(?:\.svc)?\b|(?:^|//|@)metadata(?:\.google)?\.internal/computemetadata",
        "Container/orchestrator internal host names in URL arguments: SSRF to the host or cluster API."),
    re(934140, N, C, 2, loc::INPUT, T,
        r"@\{\s*\[",
        "Perl `@{[ ... ]}` interpolation (code execution in Perl templates)."),
    re(934200, N, C, 1, loc::INPUT, T,
        r"\{\{\s*\d+\s*[*+/-]\s*\d+\s*\}\}|<%=?\s*\d+\s*[*+/-]\s*\d+\s*%>|[#$]\{\s*\d+\s*[*+/-]\s*\d+\s*\}|\$\{\{\s*\d+\s*[*+]\s*\d+\s*\}\}",
        "Template-injection probes (`{{7*7}}`, `<%= 7*7 %>`, `#{7*7}`): arithmetic inside template delimiters."),
];

/// Code check for qs-style bracket paths (`a[__proto__][x]=1`).
pub fn check_field(f: &Field, hits: &mut Hits<'_>) {
    if f.loc & loc::ARG_NAMES == 0 || hits.seen(934131) {
        return;
    }
    let n = &f.norm.text;
    if n.contains("[__proto__]")
        || n.contains("[constructor][prototype]")
        || n.contains(".__proto__.")
    {
        hits.hit(934131, &f.name, n);
    }
}
