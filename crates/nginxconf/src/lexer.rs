//! nginx's tokenizer, after `ngx_conf_read_token` (nginx 1.22+).
//!
//! The rules it reproduces:
//! * Tokens are separated by whitespace; `;`, `{` and `}` are tokens of their own
//!   when they start a token. Inside a bare word only whitespace, `;` and `{`
//!   end it (a `}` in the middle of a word is part of it, as in nginx), and a
//!   `{` right after `$` belongs to the word: `${var}`.
//! * `#` starts a comment only where a token could start (`a#b` is one word).
//! * A token starting with `"` or `'` runs to the matching quote; `\"`, `\'`,
//!   `\\`, `\t`, `\r`, `\n` are unescaped, any other `\x` is kept as is.
//!   Braces and semicolons inside quotes are plain text. A `)` right after the
//!   closing quote is a separator, as in `if ($a = "b")`.
//! * `*_by_lua_block { ... }` bodies are Lua, not nginx: [`Lexer::raw_block`]
//!   skips them by balanced braces, minding Lua strings and comments.
//!
//! One pass over the bytes, no backtracking: time is linear in the input.

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare or quoted word, unescaped.
    Word(String),
    /// `;`
    Semi,
    /// `{`
    Open,
    /// `}`
    Close,
}

/// A token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
}

/// A tokenizing error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Tokenizes nginx config text.
pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

fn bytes_to_string(v: Vec<u8>) -> String {
    // Only ASCII bytes are ever substituted, so valid input stays valid UTF-8.
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn unescape(n: u8) -> Option<u8> {
    match n {
        b'"' | b'\'' | b'\\' => Some(n),
        b't' => Some(b'\t'),
        b'r' => Some(b'\r'),
        b'n' => Some(b'\n'),
        _ => None,
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.src.get(self.pos).copied()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// The next token, `Ok(None)` at the end of the input.
    pub(crate) fn next_token(&mut self) -> Result<Option<Token>, LexError> {
        loop {
            let Some(c) = self.peek() else {
                return Ok(None);
            };
            let line = self.line;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.bump();
                }
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b';' | b'{' | b'}' => {
                    self.bump();
                    let tok = match c {
                        b';' => Tok::Semi,
                        b'{' => Tok::Open,
                        _ => Tok::Close,
                    };
                    return Ok(Some(Token { tok, line }));
                }
                b'"' | b'\'' => {
                    self.bump();
                    let w = self.quoted(c, line)?;
                    return Ok(Some(Token {
                        tok: Tok::Word(w),
                        line,
                    }));
                }
                _ => {
                    let w = self.word();
                    return Ok(Some(Token {
                        tok: Tok::Word(w),
                        line,
                    }));
                }
            }
        }
    }

    fn quoted(&mut self, quote: u8, start_line: usize) -> Result<String, LexError> {
        let mut out = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(LexError {
                    line: start_line,
                    message: format!(
                        "unterminated string: the {} opened here is never closed",
                        if quote == b'"' { "\"" } else { "'" }
                    ),
                });
            };
            if c == quote {
                break;
            }
            if c == b'\\' {
                match self.bump() {
                    Some(n) => match unescape(n) {
                        Some(u) => out.push(u),
                        None => {
                            out.push(b'\\');
                            out.push(n);
                        }
                    },
                    None => out.push(b'\\'),
                }
                continue;
            }
            out.push(c);
        }
        if self.peek() == Some(b')') {
            self.bump();
        }
        Ok(bytes_to_string(out))
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        let mut after_dollar = false;
        // Fast path: a word without backslashes is a slice of the input (it
        // cannot hold a newline, so the line count is unchanged).
        loop {
            match self.src.get(self.pos).copied() {
                Some(b'{') if after_dollar => {}
                None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{') => {
                    return String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                }
                Some(b'\\') => break,
                Some(_) => {}
            }
            after_dollar = self.src.get(self.pos) == Some(&b'$');
            self.pos += 1;
        }
        let mut out = self.src[start..self.pos].to_vec();
        while let Some(c) = self.peek() {
            match c {
                b'{' if after_dollar => {}
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' => break,
                b'\\' => {
                    self.bump();
                    match self.bump() {
                        Some(n) => match unescape(n) {
                            Some(u) => out.push(u),
                            None => {
                                out.push(b'\\');
                                out.push(n);
                            }
                        },
                        None => out.push(b'\\'),
                    }
                    after_dollar = false;
                    continue;
                }
                _ => {}
            }
            after_dollar = c == b'$';
            out.push(c);
            self.bump();
        }
        bytes_to_string(out)
    }

    /// Skips a Lua body after its opening `{` up to the matching `}`, and
    /// returns the text between them. Lua strings (`'…'`, `"…"`, `[[…]]`,
    /// `[==[…]==]`) and comments (`--…`, `--[[…]]`) may hold braces.
    pub(crate) fn raw_block(&mut self, start_line: usize) -> Result<String, LexError> {
        let start = self.pos;
        let mut depth = 1usize;
        let unclosed = |what: &str| LexError {
            line: start_line,
            message: format!("unexpected end of file inside the Lua block opened here ({what})"),
        };
        while let Some(c) = self.bump() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        let body = &self.src[start..self.pos - 1];
                        return Ok(String::from_utf8_lossy(body).into_owned());
                    }
                }
                b'"' | b'\'' => loop {
                    match self.bump() {
                        None => return Err(unclosed("unterminated string")),
                        Some(b'\\') => {
                            self.bump();
                        }
                        Some(x) if x == c => break,
                        Some(_) => {}
                    }
                },
                b'-' if self.peek() == Some(b'-') => {
                    self.bump();
                    if let Some(level) = self.long_bracket_open() {
                        self.long_bracket_close(level)
                            .ok_or_else(|| unclosed("unterminated comment"))?;
                    } else {
                        while let Some(c) = self.peek() {
                            if c == b'\n' {
                                break;
                            }
                            self.pos += 1;
                        }
                    }
                }
                b'[' => {
                    self.pos -= 1;
                    if let Some(level) = self.long_bracket_open() {
                        self.long_bracket_close(level)
                            .ok_or_else(|| unclosed("unterminated long string"))?;
                    } else {
                        self.pos += 1;
                    }
                }
                _ => {}
            }
        }
        Err(unclosed("missing '}'"))
    }

    /// At `[`, `[=[`, `[==[`…: consumes it and returns the level.
    fn long_bracket_open(&mut self) -> Option<usize> {
        if self.peek() != Some(b'[') {
            return None;
        }
        let mut i = self.pos + 1;
        while self.src.get(i) == Some(&b'=') {
            i += 1;
        }
        if self.src.get(i) == Some(&b'[') {
            let level = i - self.pos - 1;
            self.pos = i + 1;
            Some(level)
        } else {
            None
        }
    }

    /// Consumes up to and including `]`, `level` `=`, `]`.
    fn long_bracket_close(&mut self, level: usize) -> Option<()> {
        while let Some(c) = self.bump() {
            if c == b']' {
                let mut i = self.pos;
                while i - self.pos < level && self.src.get(i) == Some(&b'=') {
                    i += 1;
                }
                if i - self.pos == level && self.src.get(i) == Some(&b']') {
                    self.pos = i + 1;
                    return Some(());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s);
        let mut v = Vec::new();
        while let Some(t) = l.next_token().unwrap() {
            v.push(t.tok);
        }
        v
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.to_string())
    }

    #[test]
    fn words_quotes_and_escapes() {
        assert_eq!(
            toks(r#"a "b c" 'd;}' e\"f "g\"h\x";"#),
            vec![
                w("a"),
                w("b c"),
                w("d;}"),
                w("e\"f"),
                w("g\"h\\x"),
                Tok::Semi
            ]
        );
    }

    #[test]
    fn comments_only_at_token_start() {
        assert_eq!(toks("a#b # c ; {\nd;"), vec![w("a#b"), w("d"), Tok::Semi]);
    }

    #[test]
    fn variables_with_braces_and_close_brace_inside_word() {
        assert_eq!(
            toks("set $x ${host}x;}"),
            vec![w("set"), w("$x"), w("${host}x"), Tok::Semi, Tok::Close]
        );
        assert_eq!(toks("a}b;"), vec![w("a}b"), Tok::Semi]);
    }

    #[test]
    fn if_condition_paren_after_quote() {
        assert_eq!(
            toks(r#"if ($a ~ "^x{2}$") { return 403; }"#),
            vec![
                w("if"),
                w("($a"),
                w("~"),
                w("^x{2}$"),
                Tok::Open,
                w("return"),
                w("403"),
                Tok::Semi,
                Tok::Close
            ]
        );
    }

    #[test]
    fn unterminated_string_reports_its_line() {
        let mut l = Lexer::new("a;\nb \"xyz\n\n");
        let mut err = None;
        loop {
            match l.next_token() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(err.map(|e| e.line), Some(2));
    }

    #[test]
    fn lua_body_is_skipped_by_balanced_braces() {
        let src = "{ local t = {a = \"}\"} -- }\n s = [[ } ]] --[==[ } ]==] }rest;";
        let mut l = Lexer::new(src);
        assert_eq!(l.next_token().unwrap().map(|t| t.tok), Some(Tok::Open));
        let body = l.raw_block(1).unwrap();
        assert!(body.contains("local t"));
        assert_eq!(l.next_token().unwrap().map(|t| t.tok), Some(w("rest")));
        let mut l = Lexer::new("{ x = '");
        l.next_token().unwrap();
        assert!(l.raw_block(1).is_err());
    }
}
