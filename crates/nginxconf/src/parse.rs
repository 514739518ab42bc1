//! Tokens to directives: `name arg… ;` and `name arg… { … }`.
//!
//! The parser keeps its own stack instead of recursing, and refuses nesting
//! deeper than [`MAX_NESTING`], so no input can overflow the stack (neither
//! here nor in the checks that walk the tree, nor when the tree is dropped).

use super::lexer::{Lexer, Tok};
use super::{ConfError, Directive};
use std::path::Path;

/// Deepest block nesting accepted. Real configs stay under 10
/// (`http { server { location { if { … } } } }`).
pub const MAX_NESTING: usize = 64;

struct Frame {
    name: String,
    args: Vec<String>,
    line: usize,
    children: Vec<Directive>,
}

/// A directive name as shown in an error: only if it looks like one
/// (`[a-z0-9_]`, at most 40 characters). Anything else may be a stray
/// secret pasted into the file, and errors are shown and logged.
fn shown_name(w: Option<&String>) -> String {
    match w {
        Some(w)
            if !w.is_empty()
                && w.len() <= 40
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            format!("{w:?}")
        }
        _ => "(not shown)".into(),
    }
}

/// Parses one file's text. `file` is recorded in every directive and error.
///
/// # Examples
///
/// ```
/// use moltguard_nginxconf::parse;
/// use std::path::Path;
///
/// let text = "server {\n    listen 127.0.0.1:8080;\n    add_header X-Who \"a b\";\n}\n";
/// let dirs = parse(text, Path::new("site.conf"))?;
/// assert_eq!(dirs.len(), 1);
/// assert_eq!(dirs[0].name, "server");
/// let listen = &dirs[0].children()[0];
/// assert_eq!((listen.name.as_str(), listen.arg0()), ("listen", "127.0.0.1:8080"));
/// assert_eq!(listen.location(), "site.conf:2");
/// assert_eq!(dirs[0].children()[1].args, ["X-Who", "a b"]);
///
/// let err = parse("server {\n    listen 80\n}\n", Path::new("bad.conf")).unwrap_err();
/// assert_eq!(err.line, 2);
/// assert!(err.to_string().starts_with("bad.conf:2: missing ';'"));
/// # Ok::<(), moltguard_nginxconf::ConfError>(())
/// ```
pub fn parse(text: &str, file: &Path) -> Result<Vec<Directive>, ConfError> {
    let err = |line: usize, message: String| ConfError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let mut lexer = Lexer::new(text);
    let mut top: Vec<Directive> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The words of the directive being read, and the line of its name.
    let mut words: Vec<String> = Vec::new();
    let mut words_line = 0usize;

    loop {
        let token = lexer.next_token().map_err(|e| err(e.line, e.message))?;
        let Some(token) = token else { break };
        match token.tok {
            Tok::Word(w) => {
                if words.is_empty() {
                    words_line = token.line;
                }
                words.push(w);
            }
            Tok::Semi => {
                if words.is_empty() {
                    return Err(err(
                        token.line,
                        "unexpected ';' with no directive before it".into(),
                    ));
                }
                let mut it = std::mem::take(&mut words).into_iter();
                let d = Directive {
                    name: it.next().unwrap_or_default(),
                    args: it.collect(),
                    file: file.to_path_buf(),
                    line: words_line,
                    block: None,
                    includes: Vec::new(),
                };
                match stack.last_mut() {
                    Some(f) => f.children.push(d),
                    None => top.push(d),
                }
            }
            Tok::Open => {
                if words.is_empty() {
                    return Err(err(
                        token.line,
                        "unexpected '{' with no directive name before it".into(),
                    ));
                }
                let mut it = std::mem::take(&mut words).into_iter();
                let name = it.next().unwrap_or_default();
                let mut args: Vec<String> = it.collect();
                if name.ends_with("_by_lua_block") {
                    // Lua, not nginx: kept as the last argument, unparsed.
                    let body = lexer
                        .raw_block(token.line)
                        .map_err(|e| err(e.line, e.message))?;
                    args.push(body);
                    let d = Directive {
                        name,
                        args,
                        file: file.to_path_buf(),
                        line: words_line,
                        block: None,
                        includes: Vec::new(),
                    };
                    match stack.last_mut() {
                        Some(f) => f.children.push(d),
                        None => top.push(d),
                    }
                    continue;
                }
                if stack.len() >= MAX_NESTING {
                    return Err(err(
                        token.line,
                        format!("blocks nested deeper than {MAX_NESTING} levels"),
                    ));
                }
                stack.push(Frame {
                    name,
                    args,
                    line: words_line,
                    children: Vec::new(),
                });
            }
            Tok::Close => {
                if !words.is_empty() {
                    return Err(err(
                        words_line,
                        format!(
                            "missing ';' after the directive {} before '}}' (line {})",
                            shown_name(words.first()),
                            token.line
                        ),
                    ));
                }
                let Some(f) = stack.pop() else {
                    return Err(err(
                        token.line,
                        "unexpected '}': no block is open here".into(),
                    ));
                };
                let d = Directive {
                    name: f.name,
                    args: f.args,
                    file: file.to_path_buf(),
                    line: f.line,
                    block: Some(f.children),
                    includes: Vec::new(),
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(d),
                    None => top.push(d),
                }
            }
        }
    }
    if !words.is_empty() {
        return Err(err(
            words_line,
            format!(
                "missing ';' after the directive {} (end of file reached)",
                shown_name(words.first())
            ),
        ));
    }
    if let Some(f) = stack.last() {
        return Err(err(
            f.line,
            format!(
                "unbalanced braces: the block {:?} opened here is never closed (missing '}}')",
                f.name
            ),
        ));
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Directive>, ConfError> {
        parse(s, Path::new("/t.conf"))
    }

    #[test]
    fn directives_blocks_and_lines() {
        let d = p("user nginx;\nhttp {\n  server {\n    listen 80;\n  }\n}\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].name.as_str(), d[0].line), ("user", 1));
        let http = &d[1];
        assert_eq!(http.line, 2);
        let server = &http.children()[0];
        assert_eq!(server.name, "server");
        assert_eq!(server.children()[0].args, vec!["80"]);
        assert_eq!(server.children()[0].line, 4);
        assert_eq!(server.children()[0].location(), "/t.conf:4");
    }

    #[test]
    fn map_types_if_and_lua() {
        let d = p(concat!(
            "map $http_upgrade $c { default upgrade; '' close; }\n",
            "types { text/html html htm; }\n",
            "if ($request_method = POST) { return 405; }\n",
            "content_by_lua_block { ngx.say(\"}\") }\n",
            "x 1;\n"
        ))
        .unwrap();
        let names: Vec<_> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["map", "types", "if", "content_by_lua_block", "x"]);
        assert_eq!(d[0].children()[1].name, "");
        assert_eq!(d[0].children()[1].args, vec!["close"]);
        assert_eq!(d[2].args, vec!["($request_method", "=", "POST)"]);
        assert_eq!(d[4].line, 5);
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = p("http {\n  server {\n    listen 80;\n}\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("never closed"), "{e}");
        let e = p("a;\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unexpected '}'"));
        let e = p("server {\n listen 80\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("missing ';'"));
        let e = p("a b").unwrap_err();
        assert!(
            e.message.contains("missing ';' after the directive \"a\""),
            "{e}"
        );
        let e = p("gsk_Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6\n").unwrap_err();
        assert!(!e.message.contains("Qw3"), "{e}");
        let e = p("a 'b;\n").unwrap_err();
        assert!(e.message.contains("unterminated"));
        assert_eq!(
            e.to_string(),
            "/t.conf:1: unterminated string: the ' opened here is never closed"
        );
        assert!(p(&"a{".repeat(100_000)).is_err());
    }
}
