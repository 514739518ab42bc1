//! A faithful nginx configuration reader, for the guardian's static checks.
//!
//! No maintained crate parses nginx syntax as nginx does (quotes, escapes,
//! `${var}`, `if (…)`, Lua blocks, includes with globs), so this one is
//! hand-written after `ngx_conf_file.c`. Guarantees:
//!
//! * it never panics, whatever the bytes, and runs in time linear in the input;
//! * every directive knows its real file and line, also when included;
//! * errors say `file:line: what is wrong`.
//!
//! Entry points: [`parse`] (one file's text), [`load`] (a main file and its
//! includes), [`parse_nginx_t_output`] (the dump of `nginx -T`).

mod include;
mod lexer;
mod parse;

pub use include::{
    load, load_with, parse_nginx_t_output, parse_nginx_t_output_with, split_nginx_t_output,
    LoadLimits,
};
pub use parse::{parse, MAX_NESTING};

use std::fmt;
use std::path::PathBuf;

/// One directive: `name args… ;` or `name args… { block }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, the first word (`listen`, `server`).
    pub name: String,
    /// Unquoted and unescaped. For `*_by_lua_block`, the last one is the Lua body.
    pub args: Vec<String>,
    /// The file this directive is written in (the included file, when included).
    pub file: PathBuf,
    /// 1-based line of the directive's name.
    pub line: usize,
    /// The directives inside `{ … }`, if it is a block.
    pub block: Option<Vec<Directive>>,
    /// For an `include` read by [`load`]: the files it pulled in. Their
    /// directives follow the `include` itself, in place, in the same block.
    pub includes: Vec<PathBuf>,
}

impl Directive {
    /// The block's directives; empty for a simple directive.
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// `file:line`, for findings.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The first argument, or "".
    pub fn arg0(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }
}

/// A loaded configuration: the main file with includes inlined.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The main file, as given.
    pub main: PathBuf,
    /// The main file's directives, with included files' directives in place.
    pub directives: Vec<Directive>,
    /// Every file read (parsed or not), main first, each once.
    pub files: Vec<PathBuf>,
    /// Every problem met: parse errors, unreadable includes, cycles, limits.
    pub errors: Vec<ConfError>,
}

/// A problem in the configuration, at `file:line` (line 0: the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, or 0 when the problem is with the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What [`parse`] fails with.
pub type ParseError = ConfError;

impl ConfError {
    /// `file:line`, or just the file when the line is unknown.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}", self.file.display(), self.line)
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

impl std::error::Error for ConfError {}

/// Calls `f` on every directive, depth first, with its enclosing blocks
/// (outermost first). Nesting is bounded by [`MAX_NESTING`] per file and the
/// include depth, so recursion is bounded too.
pub fn walk<'a>(dirs: &'a [Directive], f: &mut dyn FnMut(&'a Directive, &[&'a Directive])) {
    fn go<'a>(
        dirs: &'a [Directive],
        parents: &mut Vec<&'a Directive>,
        f: &mut dyn FnMut(&'a Directive, &[&'a Directive]),
    ) {
        for d in dirs {
            f(d, parents);
            if let Some(b) = &d.block {
                parents.push(d);
                go(b, parents, f);
                parents.pop();
            }
        }
    }
    go(dirs, &mut Vec::new(), f)
}
