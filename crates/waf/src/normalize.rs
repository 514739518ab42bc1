//! The normaliser: turns one raw request field into the canonical forms the
//! rules match against.
//!
//! Attackers hide payloads behind encodings (`%2527`, `%u0027`, `%c0%ae`,
//! `&#x27;`, `..\..\`, `/*comment*/`, `c''a""t`). Each step below undoes one
//! such trick. Every function is a single left-to-right pass over its input
//! with bounded look-ahead, so the whole pipeline is linear in the input
//! size; repeated URL decoding is capped at [`MAX_DECODE_ROUNDS`].

use std::borrow::Cow;

/// Upper bound on URL-decoding passes (`%252527` needs three).
pub const MAX_DECODE_ROUNDS: usize = 4;

/// All canonical forms of one field, computed once and shared by all rules.
/// Forms identical to `text` are not stored twice (most values need no
/// folding), which also tells the matcher it can scan once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// Fully decoded (URL, `%u`, overlong UTF-8, JS escapes, HTML entities),
    /// null bytes removed, lowercased.
    pub text: String,
    path: Option<String>,
    sql: Option<String>,
    cmd: Option<String>,
}

/// A folded form worth storing: one the fold changed. The folds borrow
/// their input when there is nothing to do (most values), so this costs
/// neither an allocation nor a comparison in the common case.
fn differs(form: Cow<'_, str>, text: &str) -> Option<String> {
    match form {
        Cow::Borrowed(_) => None,
        Cow::Owned(f) => (f != text).then_some(f),
    }
}

impl Normalized {
    /// Runs the full pipeline on a raw value. `form` selects `+` as space
    /// (query strings and form bodies) or literal `+` (paths, headers).
    pub fn of(raw: &str, form: bool) -> Self {
        let text = canonical_text(raw, form);
        let may = FoldsThatMayApply::of(&text);
        Self {
            path: may
                .path
                .then(|| differs(resolve_path(&text), &text))
                .flatten(),
            sql: may.sql.then(|| differs(sql_fold(&text), &text)).flatten(),
            cmd: may.cmd.then(|| differs(cmd_fold(&text), &text)).flatten(),
            text,
        }
    }

    /// `text` with path segments resolved and backslashes turned into `/`.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.text)
    }

    /// `text` with SQL comments removed and whitespace collapsed.
    pub fn sql(&self) -> &str {
        self.sql.as_deref().unwrap_or(&self.text)
    }

    /// `text` shell-folded: quotes, escapes and `^` removed, separators spaced.
    pub fn cmd(&self) -> &str {
        self.cmd.as_deref().unwrap_or(&self.text)
    }

    /// All four forms are the same string (lets the matcher scan once).
    pub fn uniform(&self) -> bool {
        self.path.is_none() && self.sql.is_none() && self.cmd.is_none()
    }
}

/// Which folds could change a value, from one pass over it: most values
/// (header values, JSON leaves) need none, and each fold's own check is a
/// pass of its own. A `true` only means "run the fold", which decides.
struct FoldsThatMayApply {
    path: bool,
    sql: bool,
    cmd: bool,
}

impl FoldsThatMayApply {
    fn of(s: &str) -> Self {
        let (mut path, mut sql, mut cmd) = (false, false, false);
        let mut prev = 0u8;
        for &b in s.as_bytes() {
            match b {
                b'\\' => (path, cmd) = (true, true),
                b'.' => path = true,
                b'/' if prev == b'/' => path = true,
                // Both comment delimiters, `/*` and `*/`, have a star.
                b'*' => sql = true,
                b'$' | b'"' | b'\'' | b'^' | b',' => cmd = true,
                b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => (sql, cmd) = (true, true),
                b' ' if prev == b' ' => (sql, cmd) = (true, true),
                0x80.. => sql = true,
                _ => {}
            }
            prev = b;
        }
        Self { path, sql, cmd }
    }
}

/// `s` lowercased, borrowed when it already is (the usual case for header
/// names and media types).
pub fn ascii_lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// URL-decode (repeatedly), HTML-entity-decode, drop NULs, lowercase.
pub fn canonical_text(raw: &str, form: bool) -> String {
    // Fast path: nothing to decode (the common case for header values).
    if raw.is_ascii()
        && !raw
            .bytes()
            .any(|b| matches!(b, b'%' | b'&' | b'\\' | b'\0') || (form && b == b'+'))
    {
        return raw.to_ascii_lowercase();
    }
    let decoded = url_decode_repeated(raw, form);
    let escapes = js_unescape(&decoded);
    let entities = html_entity_decode(&escapes);
    let no_nul = remove_nulls(&entities);
    fold_width(&no_nul).to_lowercase()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One URL-decoding pass over bytes: `%XX`, IIS-style `%uXXXX` (emitted as
/// UTF-8), optionally `+` as space. Invalid escapes are kept literally.
pub fn url_decode_once(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(&h), Some(&l)) = (input.get(i + 1), input.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U')) && i + 6 <= input.len() {
                let digits = &input[i + 2..i + 6];
                if digits.iter().all(|d| hex_val(*d).is_some()) {
                    let cp = digits.iter().fold(0u32, |acc, d| {
                        acc << 4 | u32::from(hex_val(*d).unwrap_or(0))
                    });
                    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
            out.push(b);
        } else if b == b'+' && plus_as_space {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// Decodes until stable or [`MAX_DECODE_ROUNDS`] passes; `+` is a space only
/// in the first pass (a literal `%2B` must stay a plus).
pub fn url_decode_repeated(raw: &str, form: bool) -> String {
    let mut cur = raw.as_bytes().to_vec();
    for round in 0..MAX_DECODE_ROUNDS {
        let plus_pending = form && round == 0 && cur.contains(&b'+');
        if !cur.contains(&b'%') && !plus_pending {
            break;
        }
        let next = url_decode_once(&cur, form && round == 0);
        if next == cur {
            break;
        }
        cur = next;
    }
    decode_utf8_lenient(&cur)
}

/// UTF-8 decoding that also accepts overlong forms (`C0 AE` is `.`), the
/// classic way to smuggle `../` past byte-level filters. Invalid bytes become
/// U+FFFD; never fails.
pub fn decode_utf8_lenient(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let cont = |k: usize| bytes.get(i + k).is_some_and(|c| c & 0xC0 == 0x80);
        if b < 0x80 {
            out.push(char::from(b));
            i += 1;
        } else if b & 0xE0 == 0xC0 && cont(1) {
            let cp = u32::from(b & 0x1F) << 6 | u32::from(bytes[i + 1] & 0x3F);
            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            i += 2;
        } else if b & 0xF0 == 0xE0 && cont(1) && cont(2) {
            let cp = u32::from(b & 0x0F) << 12
                | u32::from(bytes[i + 1] & 0x3F) << 6
                | u32::from(bytes[i + 2] & 0x3F);
            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            i += 3;
        } else if b & 0xF8 == 0xF0 && cont(1) && cont(2) && cont(3) {
            let cp = u32::from(b & 0x07) << 18
                | u32::from(bytes[i + 1] & 0x3F) << 12
                | u32::from(bytes[i + 2] & 0x3F) << 6
                | u32::from(bytes[i + 3] & 0x3F);
            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            i += 4;
        } else {
            out.push('\u{fffd}');
            i += 1;
        }
    }
    out
}

/// Decodes JavaScript/JSON `\uXXXX` and `\xHH` escapes (`c\u006fnsole`),
/// a classic way to hide identifiers from filters.
pub fn js_unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let (len, hex) = match b.get(i + 1) {
                Some(b'u') => (4, i + 2),
                Some(b'x') => (2, i + 2),
                _ => (0, 0),
            };
            if len > 0
                && hex + len <= b.len()
                && b[hex..hex + len].iter().all(u8::is_ascii_hexdigit)
            {
                let cp = b[hex..hex + len]
                    .iter()
                    .fold(0u32, |a, d| a << 4 | u32::from(hex_val(*d).unwrap_or(0)));
                if let Some(c) = char::from_u32(cp) {
                    out.push_str(&s[last..i]);
                    out.push(c);
                    i = hex + len;
                    last = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

/// Fullwidth ASCII forms (U+FF01..U+FF5E) fold to ASCII, as IIS "best fit"
/// mapping does (`％２ｅ` and `＜script＞` tricks).
pub fn fold_width(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Removes NUL characters (`file.php%00.png`).
pub fn remove_nulls(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s.to_string()
    }
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "colon" => ':',
        "semi" => ';',
        "tab" => '\t',
        "newline" => '\n',
        "lpar" => '(',
        "rpar" => ')',
        "sol" => '/',
        "bsol" => '\\',
        "comma" => ',',
        "period" => '.',
        "excl" => '!',
        "equals" => '=',
        "num" => '#',
        "dollar" => '$',
        "percnt" => '%',
        "grave" => '`',
        "lbrack" => '[',
        "rbrack" => ']',
        "lcub" => '{',
        "rcub" => '}',
        "vert" => '|',
        "plus" => '+',
        "ast" => '*',
        "quest" => '?',
        _ => return None,
    })
}

/// Decodes HTML character references: `&#60;`, `&#x3c;` (semicolon optional,
/// as browsers accept) and the named entities used in XSS evasion.
pub fn html_entity_decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'&' {
            i += 1;
            continue;
        }
        // Bounded look-ahead keeps this linear.
        let end = (i + 12).min(b.len());
        let mut decoded: Option<(char, usize)> = None;
        if b.get(i + 1) == Some(&b'#') {
            let hex = matches!(b.get(i + 2), Some(b'x' | b'X'));
            let start = if hex { i + 3 } else { i + 2 };
            let mut j = start;
            let mut cp: u32 = 0;
            while j < end && j < b.len() {
                let d = if hex {
                    hex_val(b[j]).map(u32::from)
                } else {
                    (b[j] as char).to_digit(10)
                };
                match d {
                    Some(d) => {
                        cp = cp
                            .saturating_mul(if hex { 16 } else { 10 })
                            .saturating_add(d)
                    }
                    None => break,
                }
                j += 1;
            }
            if j > start {
                let len = if b.get(j) == Some(&b';') { j + 1 } else { j } - i;
                decoded = Some((char::from_u32(cp).unwrap_or('\u{fffd}'), len));
            }
        } else {
            let mut j = i + 1;
            while j < end && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j < b.len() && b[j] == b';' && j > i + 1 {
                if let Some(c) = s.get(i + 1..j).and_then(named_entity_ci) {
                    decoded = Some((c, j + 1 - i));
                }
            }
        }
        if let Some((c, len)) = decoded {
            out.push_str(&s[last..i]);
            out.push(c);
            i += len;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last..]);
    out
}

fn named_entity_ci(name: &str) -> Option<char> {
    named_entity(&name.to_ascii_lowercase())
}

/// Nothing for [`resolve_path`] to do: no `\\`, no `//`, no `.` or `..`
/// segment (one pass).
fn path_plain(s: &str) -> bool {
    let b = s.as_bytes();
    let mut seg_start = 0;
    for i in 0..=b.len() {
        match b.get(i) {
            Some(b'\\') => return false,
            Some(b'/') | None => {
                if matches!(&b[seg_start..i], b"." | b"..") {
                    return false;
                }
                if b.get(i) == Some(&b'/') && i > 0 && b[i - 1] == b'/' {
                    return false;
                }
                seg_start = i + 1;
            }
            Some(_) => {}
        }
    }
    true
}

/// Resolves `.` and `..` segments, turns `\` into `/` and collapses `//`.
/// A `..` that would climb above the root is kept (as `/../`), so traversal
/// attempts stay visible to the rules.
pub fn resolve_path(s: &str) -> Cow<'_, str> {
    if path_plain(s) {
        return Cow::Borrowed(s);
    }
    let unified = s.replace('\\', "/");
    let absolute = unified.starts_with('/');
    let trailing = unified.ends_with('/');
    let mut segs: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if matches!(segs.last(), Some(l) if *l != "..") {
                    segs.pop();
                } else {
                    segs.push("..");
                }
            }
            other => segs.push(other),
        }
    }
    let mut out = String::with_capacity(unified.len());
    if absolute {
        out.push('/');
    }
    out.push_str(&segs.join("/"));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Nothing for [`sql_fold`] to do: ASCII, no comment delimiters, no
/// whitespace but single spaces (one pass, as most values qualify).
fn sql_plain(s: &str) -> bool {
    let mut prev = 0u8;
    for &b in s.as_bytes() {
        let pair = matches!((prev, b), (b'/', b'*') | (b'*', b'/') | (b' ', b' '));
        if pair || b >= 0x80 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            return false;
        }
        prev = b;
    }
    true
}

/// SQL folding: `/* ... */` comments become a space (MySQL `/*!50000 ... */`
/// keeps its content, since MySQL executes it), `--` and `#` line comments
/// are kept as a marker token, whitespace runs collapse to one space.
pub fn sql_fold(s: &str) -> Cow<'_, str> {
    if sql_plain(s) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last_space = false;
    let push = |out: &mut String, c: char, last_space: &mut bool| {
        if c.is_whitespace() {
            if !*last_space {
                out.push(' ');
            }
            *last_space = true;
        } else {
            out.push(c);
            *last_space = false;
        }
    };
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            if b.get(i + 2) == Some(&b'!') {
                // Executable comment: skip the marker and version digits.
                i += 3;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                push(&mut out, ' ', &mut last_space);
                continue;
            }
            match s[i + 2..].find("*/") {
                Some(k) => i = i + 2 + k + 2,
                None => i = b.len(),
            }
            push(&mut out, ' ', &mut last_space);
            continue;
        }
        if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            i += 2;
            push(&mut out, ' ', &mut last_space);
            continue;
        }
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        push(&mut out, c, &mut last_space);
        i += c.len_utf8();
    }
    Cow::Owned(out)
}

/// Shell folding in the spirit of ModSecurity's `t:cmdLine`: deletes the
/// characters shells ignore or glue away (`\ " ' ^`), expands the empty
/// variables used as separators (`$@`, `${IFS}`, `$IFS`), turns `,`
/// into a space and collapses whitespace (`;` stays: it separates commands).
pub fn cmd_fold(s: &str) -> Cow<'_, str> {
    let mut prev = 0u8;
    let plain = s.bytes().all(|b| {
        let folds = matches!(
            b,
            b'$' | b'\\' | b'"' | b'\'' | b'^' | b'\t' | b'\n' | b'\r' | b',' | 0x0b | 0x0c
        ) || (prev == b' ' && b == b' ');
        prev = b;
        !folds
    });
    if plain {
        return Cow::Borrowed(s);
    }
    let s = if s.contains('$') {
        Cow::Owned(
            s.replace("${ifs}", " ")
                .replace("$ifs", " ")
                .replace("$@", "")
                .replace("$*", ""),
        )
    } else {
        Cow::Borrowed(s)
    };
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        match c {
            '\\' | '"' | '\'' | '^' => {}
            '\n' | '\r' => {
                // A newline ends a command, like `;`.
                if last_space {
                    out.pop();
                }
                out.push(';');
                last_space = false;
            }
            ' ' | '\t' | ',' | '\u{b}' | '\u{c}' => {
                if !last_space {
                    out.push(' ');
                }
                last_space = true;
            }
            _ => {
                out.push(c);
                last_space = false;
            }
        }
    }
    Cow::Owned(out)
}
