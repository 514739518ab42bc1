//! Protocol enforcement (920) and protocol attacks (921): malformed request
//! lines, ambiguous framing (Content-Length vs Transfer-Encoding), header
//! and response splitting, smuggled requests, absurd header counts and
//! sizes, restricted headers and content types. HTTP clients built on real
//! libraries never produce these shapes.

use super::{code, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::normalize::ascii_lowercase;
use crate::score::Severity;
use crate::{FirewallConfig, Hits, RequestView};

use Category::{Protocol as P, ProtocolAttack as PA};
use Severity::{Critical as C, Notice as N, Warning as W};
use Transform::Text as T;

/// Protocol rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    code(920100, P, C, 1, loc::ALL, "Malformed request line: method not a token, target neither origin-form, absolute-form, authority-form nor `*`."),
    code(920120, P, C, 1, loc::ALL, "Multipart part name or file name containing quotes, `;`, `=` or backslashes: parser-confusion attempts."),
    code(920160, P, C, 1, loc::ALL, "Content-Length is not a decimal number."),
    code(920170, P, W, 1, loc::ALL, "GET or HEAD request with a body (warning only: some clients send empty or ignored bodies)."),
    code(920171, P, C, 1, loc::ALL, "GET or HEAD request with Transfer-Encoding."),
    code(920180, P, W, 1, loc::ALL, "POST without Content-Length or Transfer-Encoding (HTTP/1.1)."),
    code(920181, P, W, 1, loc::ALL, "Both Content-Length and Transfer-Encoding (warning, as in CRS: the server frames by Transfer-Encoding and drops Content-Length; blocks together with another smuggling sign)."),
    code(920182, P, C, 1, loc::ALL, "Several conflicting Content-Length headers, or a Transfer-Encoding other than chunked."),
    code(920190, P, C, 1, loc::ALL, "Range header whose last byte is before its first byte, or too many ranges."),
    code(920210, P, C, 1, loc::ALL, "Connection header asks for both keep-alive and close."),
    code(920250, P, W, 1, loc::ALL, "Argument is not valid UTF-8 after URL decoding (overlong or truncated sequences). Warning, as in CRS (where it is opt-in): legacy 8-bit form encodings produce such bytes; blocks together with another finding."),
    code(920270, P, C, 1, loc::ALL, "NUL byte in the request target, arguments or headers."),
    code(920280, P, W, 1, loc::ALL, "Missing Host header on HTTP/1.1."),
    code(920290, P, C, 1, loc::ALL, "Empty Host header: no HTTP client sends one."),
    code(920300, P, N, 2, loc::ALL, "Missing Accept header."),
    code(920310, P, N, 1, loc::ALL, "Empty Accept header."),
    code(920330, P, N, 1, loc::ALL, "Empty User-Agent header."),
    code(920320, P, N, 2, loc::ALL, "Missing User-Agent header."),
    code(920340, P, N, 2, loc::ALL, "Body without Content-Type."),
    code(920350, P, W, 1, loc::ALL, "Host header is a numeric IP address: mass scanners, not clients configured with a name."),
    code(920360, P, C, 1, loc::ALL, "Argument name longer than 100 characters."),
    code(920370, P, C, 1, loc::ALL, "Argument value longer than 400,000 characters (non-LLM routes)."),
    code(920380, P, C, 1, loc::ALL, "More than 255 arguments."),
    code(920390, P, C, 1, loc::ALL, "Total argument size over 4 MB (non-LLM routes)."),
    code(920400, P, C, 1, loc::ALL, "Body larger than the configured maximum."),
    code(920420, P, C, 1, loc::ALL, "Content-Type of a request with a body outside the allow-list (form, multipart, JSON, XML, text/plain). A bodiless request has nothing to parse, so its Content-Type is not policed."),
    code(920430, P, C, 1, loc::ALL, "HTTP version outside HTTP/1.0, 1.1, 2, 3."),
    code(920450, P, C, 1, loc::ALL, "Restricted header (method overrides, Proxy, Lock-Token, Content-Range, If)."),
    code(920470, P, C, 1, loc::ALL, "Content-Type header is not a syntactically valid media type."),
    code(920480, P, C, 1, loc::ALL, "Content-Type charset of a request with a body outside utf-8 / iso-8859-1 / iso-8859-15 / windows-1252 (utf-7 and friends bypass filters)."),
    code(920490, P, C, 1, loc::ALL, "Too many headers, or one header too large."),
    code(920530, P, C, 1, loc::ALL, "Content-Type carries more than one charset."),
    code(920600, P, W, 1, loc::ALL, "Accept header with characters no media range contains."),
    code(920601, P, C, 1, loc::ALL, "Accept header asks for a charset outside utf-8/iso-8859-1/windows-1252 (EBCDIC and UTF-16 response tricks)."),
    code(920610, P, C, 2, loc::ALL, "Raw `#` fragment in the request target: clients never send fragments."),
    code(920620, P, C, 2, loc::ALL, "More than one Content-Type header."),
    code(920660, P, C, 1, loc::ALL, "Obsolete Request-Range header (Range DoS vector)."),
    re(920440, P, C, 1, loc::PATH, T,
        r"\.(?:asa|asax|ascx|backup|bak|bat|cdx|cer|cfg|cmd|com|config|conf|cs|csproj|csr|dat|db|dbf|dll|dos|htr|htw|ida|idc|idq|inc|ini|key|licx|lnk|log|mdb|old|pass|pdb|pol|printer|pwd|rdb|resources|resx|sql|swp|sys|vb|vbs|vbproj|vsdisco|webinfo|xsd|xsx|sqlite|sqlite3|pem|p12|pfx|jks|kdbx|tfstate)$",
        "Request for a file extension that is server-side configuration, data or credentials."),
    re(920500, P, C, 1, loc::PATH, T,
        r"(?:\.[^./~]+~(?:/|$)|\.sw[op]$|\.orig$|\.save$|\.tmp$|#$)",
        "Request for an editor backup or temporary file (`index.php~`, `.swp`)."),
    re(920540, P, C, 2, loc::INPUT_PATH, T,
        r"\\u[0-9a-f]{4}",
        "Literal `\\uXXXX` escapes in URL arguments: a filter bypass (JSON bodies are decoded first)."),
    code(920260, P, C, 1, loc::ALL,
        "Full-width `%uFFxx` encoding in the request target (IIS best-fit bypass)."),
    re(921110, PA, C, 1, loc::INPUT, T,
        r"(?:^|[\n\r])\s*(?:get|post|head|options|connect|put|delete|trace|track|patch|propfind|propatch|mkcol|copy|move|lock|unlock)\s+[^\s]+\s+http/\d",
        "A second request line inside an argument: HTTP request smuggling."),
    re(921120, PA, C, 1, loc::INPUT, T,
        r"[\n\r]+\W*?(?:content-(?:type|length)|set-cookie|location):\s*\w",
        "Header lines after CR/LF inside an argument: HTTP response splitting."),
    re(921130, PA, C, 1, loc::INPUT, T,
        r"(?:\bhttp/\d(?:\.\d)?\b|<(?:html|meta)\b)",
        "A status line or HTML head inside an argument: response splitting payload."),
    code(921140, PA, C, 1, loc::ALL, "CR or LF inside a header name or value: header injection."),
    re(921150, PA, C, 1, loc::ARG_NAMES, T, r"[\n\r]",
        "CR or LF inside an argument name: header injection."),
    re(921160, PA, C, 1, loc::QUERY_ARGS, T,
        r"[\n\r]+\W*?(?:content-(?:type|length)|set-cookie|location|refresh|remote-addr|[a-z][a-z0-9-]{1,40})\s*:\s*\S",
        "Header injection through a query argument."),
    re(921190, PA, C, 1, loc::PATH, T, r"[\n\r]",
        "CR or LF in the path: splitting via the request target."),
    re(921200, PA, C, 1, loc::INPUT, T,
        r"^[^:()&|!<>~]*\)\s*(?:\((?:[^,()=&|!<>~]+[><~]?=|\s*[&!|]\s*(?:\)|\()?\s*)|\)\s*\(\s*[&|!]\s*|[&!|]\s*\([^()=&|!<>~]+[><~]?=[^:()&|!<>~]*)",
        "LDAP filter injection: closing a filter and opening a new one (`)(uid=*`)."),
    re(921240, PA, C, 1, loc::PATH | loc::ARGS | loc::ARG_NAMES, T, r"unix:[^|]*\|",
        "mod_proxy `unix:...|http://` SSRF (CVE-2021-40438)."),
    re(921250, PA, C, 1, loc::COOKIE_NAMES, T, r"^\$version",
        "Old RFC 2109 `$Version` cookie: used to smuggle cookie parser differentials."),
    code(921421, PA, C, 1, loc::ALL, "Content-Type hides a JSON or XML media type after a separator: body-parser confusion."),
    code(922110, PA, C, 1, loc::ALL, "Multipart part Content-Type with a charset outside utf-8/iso-8859-1."),
    code(922100, PA, C, 1, loc::ALL, "Multipart `_charset_` field selecting a charset outside utf-8/iso-8859-1."),
    code(922120, PA, C, 1, loc::ALL, "Deprecated Content-Transfer-Encoding header in a multipart part."),
    re(920650, P, W, 2, loc::ARG_NAMES, T, r"^_method$",
        "Method override through a `_method` argument (routing bypass), paranoia 2."),
];

/// Content types the firewall can parse and the gateway accepts.
pub const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/related",
    "text/xml",
    "application/xml",
    "application/soap+xml",
    "application/json",
    "text/plain",
    "multipart/mixed",
];

/// Charsets accepted in Content-Type.
pub const ALLOWED_CHARSETS: &[&str] = &[
    "utf-8",
    "iso-8859-1",
    "iso-8859-15",
    "windows-1252",
    "us-ascii",
];

/// Headers that no LLM client needs and that are used to bypass routing.
pub const RESTRICTED_HEADERS: &[&str] = &[
    "proxy",
    "lock-token",
    "content-range",
    "if",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // A compressed request body cannot be inspected.
    "content-encoding",
];

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// What one header value carries, from a single pass (every header of
/// every request is checked): raw CR/LF, a raw NUL, and the escapes
/// `%00` (NUL) and `%0d`/`%0a` (CR, LF).
#[derive(Default)]
struct ValueFlags {
    crlf: bool,
    nul: bool,
    escaped_nul: bool,
    escaped_crlf: bool,
}

impl ValueFlags {
    fn of(value: &[u8]) -> Self {
        let mut f = Self::default();
        for (i, &b) in value.iter().enumerate() {
            match b {
                b'\r' | b'\n' => f.crlf = true,
                0 => f.nul = true,
                b'%' if value.get(i + 1) == Some(&b'0') => {
                    match value.get(i + 2).map(u8::to_ascii_lowercase) {
                        Some(b'0') => f.escaped_nul = true,
                        Some(b'd' | b'a') => f.escaped_crlf = true,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        f
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn request_line_ok(req: &RequestView) -> bool {
    let m = &req.method;
    if m.is_empty() || !m.bytes().all(is_tchar) {
        return false;
    }
    let t = req.target.as_str();
    if t.is_empty() || t.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    let version_ok = req.version.is_empty()
        || (req.version.len() >= 6
            && req.version.starts_with("HTTP/")
            && req.version[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.'));
    if !version_ok {
        return false;
    }
    if m == "CONNECT" {
        // authority-form: host:port
        return match t.rsplit_once(':') {
            Some((h, p)) => !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
            None => false,
        };
    }
    if t == "*" {
        return m == "OPTIONS";
    }
    t.starts_with('/') || t.starts_with("http://") || t.starts_with("https://")
}

fn content_type_syntax_ok(ct: &str) -> bool {
    // type/subtype *( ; param=value ), permissive on value characters.
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    let media_ok = !media.is_empty()
        && media
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/.+*-_".contains(&b))
        && media.matches('/').count() == 1;
    media_ok
        && parts.all(|p| {
            let p = p.trim();
            if p.is_empty() {
                return true;
            }
            match p.split_once('=') {
                Some((k, v)) => {
                    let k = ascii_lowercase(k.trim());
                    // One optional space around `=` is tolerated (as CRS does), more is not.
                    if v.starts_with("  ") || v.starts_with(" \t") || v.starts_with('\t') {
                        return false;
                    }
                    let v = v.trim();
                    matches!(
                        &*k,
                        "action"
                            | "boundary"
                            | "charset"
                            | "component"
                            | "start"
                            | "start-info"
                            | "type"
                            | "version"
                    ) && !v.is_empty()
                        && v.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || b"'\"_.()+,/:=?<>@#*- ".contains(&b)
                        })
                }
                None => false,
            }
        })
}

fn charsets(ct: &str) -> Vec<String> {
    ct.split(';')
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("charset")
                .then(|| v.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
        })
        .collect()
}

/// Runs the code-implemented protocol checks.
pub fn check(req: &RequestView, cfg: &FirewallConfig, hits: &mut Hits<'_>) {
    if !request_line_ok(req) {
        let line = format!("{} {} {}", req.method, req.target, req.version);
        hits.hit(920100, "REQUEST_LINE", &line);
    }
    if !matches!(
        req.version.as_str(),
        "HTTP/1.0" | "HTTP/1.1" | "HTTP/2" | "HTTP/2.0" | "HTTP/3" | "HTTP/3.0"
    ) {
        hits.hit(920430, "REQUEST_PROTOCOL", &req.version);
    }
    if req.target.contains('#') {
        hits.hit(920610, "REQUEST_URI", &req.target);
    }
    if req.target.contains('\0') || contains_ci(req.target.as_bytes(), b"%00") {
        hits.hit(920270, "REQUEST_URI", &req.target);
    }

    // Header count and size.
    if req.headers.len() > cfg.max_header_count {
        hits.hit(
            920490,
            "REQUEST_HEADERS",
            &format!("{} headers", req.headers.len()),
        );
    }
    for (name, value) in &req.headers {
        if name.len() + value.len() > cfg.max_header_bytes {
            hits.hit(
                920490,
                &format!("REQUEST_HEADERS:{name}"),
                "header too large",
            );
        }
        let flags = ValueFlags::of(value);
        if name.bytes().any(|b| b == b'\r' || b == b'\n') || flags.crlf {
            hits.hit(
                921140,
                &format!("REQUEST_HEADERS:{name}"),
                &String::from_utf8_lossy(value),
            );
        }
        if flags.nul || flags.escaped_nul {
            hits.hit(920270, &format!("REQUEST_HEADERS:{name}"), "NUL byte");
        }
        if flags.escaped_crlf {
            hits.hit(
                921140,
                &format!("REQUEST_HEADERS:{name}"),
                &String::from_utf8_lossy(value),
            );
        }
        let lname = name.trim();
        if RESTRICTED_HEADERS
            .iter()
            .any(|h| lname.eq_ignore_ascii_case(h))
        {
            hits.hit(920450, &format!("REQUEST_HEADERS:{name}"), name);
        }
        if lname.eq_ignore_ascii_case("request-range") {
            hits.hit(
                920660,
                &format!("REQUEST_HEADERS:{name}"),
                &String::from_utf8_lossy(value),
            );
        }
    }

    let method = req.method.as_str();
    let get_or_head = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let cl: Vec<String> = req
        .header_values("content-length")
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .collect();
    let te: Vec<String> = req
        .header_values("transfer-encoding")
        .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
        .collect();
    for v in &cl {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            hits.hit(920160, "REQUEST_HEADERS:Content-Length", v);
        }
    }
    if cl.len() > 1 && cl.iter().any(|v| v != &cl[0]) {
        hits.hit(920182, "REQUEST_HEADERS:Content-Length", &cl.join(","));
    }
    if te.iter().any(|v| v != "chunked") {
        hits.hit(920182, "REQUEST_HEADERS:Transfer-Encoding", &te.join(","));
    }
    if !cl.is_empty() && !te.is_empty() {
        hits.hit(
            920181,
            "REQUEST_HEADERS",
            "Content-Length and Transfer-Encoding",
        );
    }
    let declared_len: u64 = cl.first().and_then(|v| v.parse().ok()).unwrap_or(0);
    if get_or_head && (declared_len > 0 || !req.body.is_empty()) {
        let detail = format!("{} with body", method.to_ascii_uppercase());
        hits.hit(920170, "REQUEST_BODY", &detail);
    }
    if get_or_head && !te.is_empty() {
        hits.hit(920171, "REQUEST_HEADERS:Transfer-Encoding", &te.join(","));
    }
    if method.eq_ignore_ascii_case("POST")
        && cl.is_empty()
        && te.is_empty()
        && req.version != "HTTP/2"
        && req.version != "HTTP/2.0"
    {
        hits.hit(920180, "REQUEST_HEADERS", "POST without Content-Length");
    }
    if req.body.len() > cfg.max_body_bytes || declared_len > cfg.max_body_bytes as u64 {
        hits.hit(920400, "REQUEST_BODY", "body too large");
    }

    // Host.
    let host = req.header_str("host");
    match host.as_deref().map(str::trim) {
        None if req.version == "HTTP/1.1" => hits.hit(920280, "REQUEST_HEADERS:Host", "missing"),
        Some("") => hits.hit(920290, "REQUEST_HEADERS:Host", "empty"),
        Some(h) => {
            let host = h.rsplit_once(':').map(|(a, _)| a).unwrap_or(h);
            let host = host.trim_matches(['[', ']']);
            if host.parse::<std::net::IpAddr>().is_ok() {
                hits.hit(920350, "REQUEST_HEADERS:Host", h);
            }
        }
        None => {}
    }

    // Accept / User-Agent.
    match req.header_str("accept") {
        None => hits.hit(920300, "REQUEST_HEADERS:Accept", "missing"),
        Some(a) if a.trim().is_empty() => hits.hit(920310, "REQUEST_HEADERS:Accept", "empty"),
        Some(a) => {
            let lower = a.to_ascii_lowercase();
            if charsets(&lower.replace(',', ";"))
                .iter()
                .any(|c| !ALLOWED_CHARSETS.contains(&c.as_str()))
            {
                hits.hit(920601, "REQUEST_HEADERS:Accept", &a);
            }
            if !a.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b" \t*/.,;=+-_\"'()!#$%&^`|~:?@[]{}".contains(&b)
            }) {
                hits.hit(920600, "REQUEST_HEADERS:Accept", &a);
            }
        }
    }
    match req.header_str("user-agent") {
        None => hits.hit(920320, "REQUEST_HEADERS:User-Agent", "missing"),
        Some(u) if u.trim().is_empty() => hits.hit(920330, "REQUEST_HEADERS:User-Agent", "empty"),
        _ => {}
    }

    // Connection.
    if let Some(c) = req.header_str("connection") {
        let c = c.to_ascii_lowercase();
        let tokens: Vec<&str> = c
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let repeated = tokens
            .iter()
            .enumerate()
            .any(|(i, t)| tokens[..i].contains(t));
        if (c.contains("keep-alive") && c.contains("close")) || repeated {
            hits.hit(920210, "REQUEST_HEADERS:Connection", &c);
        }
    }

    // Range.
    if let Some(r) = req.header_str("range") {
        let spec = r.trim().to_ascii_lowercase();
        let ranges = spec.strip_prefix("bytes=").unwrap_or(&spec);
        let parts: Vec<&str> = ranges.split(',').collect();
        let inverted = parts.iter().any(|p| match p.trim().split_once('-') {
            Some((a, b)) => match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                (Ok(a), Ok(b)) => b < a,
                _ => false,
            },
            None => false,
        });
        if inverted || parts.len() > 5 {
            hits.hit(920190, "REQUEST_HEADERS:Range", &r);
        }
    }

    // Content-Type. The allow-list and the charset policy protect body
    // parsing: they apply when there is a body (or one is announced).
    let has_body = !req.body.is_empty() || declared_len > 0 || !te.is_empty();
    let mut cts = req.header_values("content-type");
    let first_ct = cts.next().map(String::from_utf8_lossy);
    if cts.next().is_some() {
        let all: Vec<_> = req
            .header_values("content-type")
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .collect();
        hits.hit(920620, "REQUEST_HEADERS:Content-Type", &all.join(" | "));
    }
    let first_ct = first_ct.as_deref().map(str::trim);
    if let Some(ct) = first_ct {
        let media = ascii_lowercase(ct.split(';').next().unwrap_or("").trim());
        if !content_type_syntax_ok(ct) {
            hits.hit(920470, "REQUEST_HEADERS:Content-Type", ct);
        } else if has_body && !ALLOWED_CONTENT_TYPES.contains(&&*media) {
            hits.hit(920420, "REQUEST_HEADERS:Content-Type", ct);
        }
        let lower = ascii_lowercase(ct);
        let cs = charsets(&lower);
        if has_body && cs.iter().any(|c| !ALLOWED_CHARSETS.contains(&c.as_str())) {
            hits.hit(920480, "REQUEST_HEADERS:Content-Type", ct);
        }
        if cs.len() > 1 || lower.matches("charset").count() > 1 {
            hits.hit(920530, "REQUEST_HEADERS:Content-Type", ct);
        }
        if let Some(i) = lower.find([' ', ',', ';', '\t']) {
            let rest = &lower[i..];
            if rest.contains("json") && !media.contains("json")
                || rest.contains("xml") && !media.contains("xml")
            {
                hits.hit(921421, "REQUEST_HEADERS:Content-Type", ct);
            }
        }
    } else if !req.body.is_empty() {
        hits.hit(920340, "REQUEST_HEADERS:Content-Type", "missing");
    }

    // Full-width `%uFFxx` encoding only exists to dodge filters.
    if contains_ci(req.target.as_bytes(), b"%uff") {
        hits.hit(920260, "REQUEST_URI", &req.target);
    }
    check_args_shape(req, hits);
    check_multipart(req, first_ct, hits);
}

/// Argument count, name length and encoding validity.
fn check_args_shape(req: &RequestView, hits: &mut Hits<'_>) {
    let query = req.raw_query();
    let ct = req.content_type().unwrap_or_default();
    let form_body = ct.is_empty() || ct == "application/x-www-form-urlencoded";
    let body = if form_body {
        String::from_utf8_lossy(&req.body[..req.body.len().min(1 << 20)]).into_owned()
    } else {
        String::new()
    };
    let mut count = 0usize;
    let mut total = 0usize;
    for part in query
        .split('&')
        .chain(body.split('&'))
        .filter(|p| !p.is_empty())
    {
        count += 1;
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        total += part.len();
        if name.len() > 100 {
            hits.hit(920360, "ARGS_NAMES", name);
        }
        if value.len() > 400_000 {
            hits.hit(920370, "ARGS", "value too long");
        }
        for raw in [name, value] {
            if raw.contains('%') {
                let bytes = crate::normalize::url_decode_once(raw.as_bytes(), true);
                if std::str::from_utf8(&bytes).is_err() {
                    hits.hit(920250, "ARGS", raw);
                }
                if bytes.contains(&0) {
                    hits.hit(920270, "ARGS", raw);
                }
            }
        }
    }
    if count > 255 {
        hits.hit(920380, "ARGS", &format!("{count} arguments"));
    }
    if total > 4_000_000 {
        hits.hit(920390, "ARGS", "combined size");
    }
}

fn disposition_params(line: &str) -> Vec<(String, String)> {
    // Quote-aware split of `form-data; name="a;b"; filename="c"`.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut parts = Vec::new();
    for c in line.chars() {
        match c {
            '"' => {
                in_q = !in_q;
                cur.push(c);
            }
            ';' if !in_q => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts.iter().skip(1) {
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            out.push((k.trim().to_ascii_lowercase(), v.to_string()));
        }
    }
    out
}

/// Removes HTML character references (`&auml;`, `&#228;`): their `;` is
/// not a parameter separator.
fn strip_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .bytes()
            .take(10)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'#')
            .count();
        if len > 0 && after.as_bytes().get(len) == Some(&b';') {
            rest = &after[len + 1..];
        } else {
            out.push('&');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn check_multipart(req: &RequestView, ct: Option<&str>, hits: &mut Hits<'_>) {
    let Some(ct) = ct else { return };
    let multipart = ct
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"));
    if !multipart || req.body.is_empty() {
        return;
    }
    let body = String::from_utf8_lossy(&req.body[..req.body.len().min(1 << 20)]);
    for line in body.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-disposition:") {
            for (k, v) in disposition_params(line) {
                if (k == "name" || k == "filename")
                    && strip_entities(&v).contains(['"', ';', '=', '\\', '\''])
                {
                    hits.hit(920120, "FILES_NAMES", &v);
                }
            }
        } else if lower.starts_with("content-type:") {
            let cs = charsets(&lower);
            if cs.iter().any(|c| {
                !["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252"].contains(&c.as_str())
            }) {
                hits.hit(922110, "MULTIPART_PART_HEADERS", line);
            }
        } else if lower.starts_with("content-transfer-encoding:") {
            hits.hit(922120, "MULTIPART_PART_HEADERS", line);
        }
    }
    if let Some(i) = body.find("name=\"_charset_\"") {
        let after = &body[i..];
        let value = after
            .split("\n")
            .skip_while(|l| !l.trim().is_empty())
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !value.is_empty()
            && !["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252"].contains(&value.as_str())
        {
            hits.hit(922100, "ARGS:_charset_", &value);
        }
    }
}
