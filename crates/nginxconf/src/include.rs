//! Following `include` directives, from disk or from `nginx -T` output.
//!
//! nginx resolves a relative include against its configuration prefix (the
//! directory of `nginx.conf` unless `-p`/`-c` say otherwise), so the caller
//! passes that `base_dir`. Patterns with `*`, `?` or `[` are globs that may
//! match nothing; a plain path that cannot be read is an error, as in nginx.
//!
//! Every problem (unreadable file, parse error, cycle, limits) is recorded in
//! [`Tree::errors`] and loading goes on with the rest: the checks report
//! each one, and never see a half-read file as if it were whole.

use super::{parse, ConfError, Directive, Tree};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bounds on what one load may read; any input, cycles included, stays within them.
#[derive(Debug, Clone)]
pub struct LoadLimits {
    /// Deepest chain of includes (nginx.conf → a → b … counts each step).
    pub max_depth: usize,
    /// Most files read in, counting each inclusion (a file included twice counts twice).
    pub max_includes: usize,
    /// Largest file read.
    pub max_file_bytes: u64,
    /// Most directives in the whole inlined tree.
    pub max_directives: usize,
    /// Most bytes parsed in all, a file included twice counting twice.
    pub max_total_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_includes: 1024,
            max_file_bytes: 16 << 20,
            max_directives: 1_000_000,
            max_total_bytes: 64 << 20,
        }
    }
}

/// Where config text comes from.
trait Source {
    fn read(&self, path: &Path, max: u64) -> io::Result<String>;
    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String>;
    /// A stable identity for cycle detection.
    fn key(&self, path: &Path) -> PathBuf;
}

struct Disk;

impl Source for Disk {
    fn read(&self, path: &Path, max: u64) -> io::Result<String> {
        let meta = fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {max} bytes"),
            ));
        }
        let b = fs::read(path)?;
        Ok(String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String> {
        let pat = pattern.to_string_lossy();
        let paths = glob::glob(&pat).map_err(|e| e.to_string())?;
        let mut out: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        Ok(out)
    }

    fn key(&self, path: &Path) -> PathBuf {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The files of an `nginx -T` dump, by path.
struct Memory(BTreeMap<PathBuf, String>);

impl Source for Memory {
    fn read(&self, path: &Path, max: u64) -> io::Result<String> {
        match self.0.get(path) {
            Some(t) if t.len() as u64 > max => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {max} bytes"),
            )),
            Some(t) => Ok(t.clone()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not in the `nginx -T` output",
            )),
        }
    }

    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String> {
        let pat = glob::Pattern::new(&pattern.to_string_lossy()).map_err(|e| e.to_string())?;
        Ok(self
            .0
            .keys()
            .filter(|k| pat.matches_path(k))
            .cloned()
            .collect())
    }

    fn key(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

struct Loader<'s> {
    src: &'s dyn Source,
    base: PathBuf,
    limits: LoadLimits,
    files: Vec<PathBuf>,
    errors: Vec<ConfError>,
    includes: usize,
    directives: usize,
    /// File texts by key; `None` when reading failed (reported once).
    cache: HashMap<PathBuf, Option<Rc<str>>>,
    /// Keys of the files being included right now, outermost first.
    stack: Vec<PathBuf>,
    budget_reported: bool,
    bytes: u64,
    bytes_reported: bool,
}

impl Loader<'_> {
    /// `site` is the include directive's file and line, for read errors.
    /// A file included again is parsed again from its cached text: cheaper
    /// than keeping a copy of every parsed tree, and errors are reported once.
    fn parsed(&mut self, path: &Path, key: &Path, site: (&Path, usize)) -> Option<Vec<Directive>> {
        if let Some(cached) = self.cache.get(key) {
            let cached = cached.clone()?;
            if !self.take_bytes(cached.len(), site) {
                return None;
            }
            return parse(&cached, path).ok();
        }
        let (text, result) = match self.src.read(path, self.limits.max_file_bytes) {
            Ok(text) => {
                // Listed even if it does not parse: it is still scanned for secrets.
                self.files.push(path.to_path_buf());
                let result = if !self.take_bytes(text.len(), site) {
                    None
                } else {
                    match parse(&text, path) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            self.errors.push(e);
                            None
                        }
                    }
                };
                (Some(Rc::from(text)), result)
            }
            Err(e) => {
                self.errors.push(ConfError {
                    file: site.0.to_path_buf(),
                    line: site.1,
                    message: format!("cannot read the included file {}: {e}", path.display()),
                });
                (None, None)
            }
        };
        self.cache.insert(key.to_path_buf(), text);
        result
    }

    /// Counts `n` more bytes to parse; false (reported once) past the limit.
    fn take_bytes(&mut self, n: usize, site: (&Path, usize)) -> bool {
        self.bytes = self.bytes.saturating_add(n as u64);
        if self.bytes <= self.limits.max_total_bytes {
            return true;
        }
        if !self.bytes_reported {
            self.bytes_reported = true;
            self.errors.push(ConfError {
                file: site.0.to_path_buf(),
                line: site.1,
                message: format!(
                    "the configuration is more than {} bytes (counting repeated includes); the rest was not read",
                    self.limits.max_total_bytes
                ),
            });
        }
        false
    }

    fn over_budget(&mut self, at: &Directive) -> bool {
        if self.directives <= self.limits.max_directives {
            return false;
        }
        if !self.budget_reported {
            self.budget_reported = true;
            self.errors.push(ConfError {
                file: at.file.clone(),
                line: at.line,
                message: format!(
                    "the configuration inlines more than {} directives; the rest was not read",
                    self.limits.max_directives
                ),
            });
        }
        true
    }

    /// Inlines includes in `dirs`, recursively into blocks.
    fn expand(&mut self, dirs: Vec<Directive>) -> Vec<Directive> {
        let mut out = Vec::with_capacity(dirs.len());
        for mut d in dirs {
            self.directives += 1;
            if self.over_budget(&d) {
                break;
            }
            if let Some(block) = d.block.take() {
                d.block = Some(self.expand(block));
            }
            if d.name == "include" && d.block.is_none() {
                let inlined = self.include(&mut d);
                out.push(d);
                out.extend(inlined);
            } else {
                out.push(d);
            }
        }
        out
    }

    fn include(&mut self, d: &mut Directive) -> Vec<Directive> {
        let at = |message: String| ConfError {
            file: d.file.clone(),
            line: d.line,
            message,
        };
        let [arg] = d.args.as_slice() else {
            self.errors.push(at(format!(
                "include takes exactly one path, got {}",
                d.args.len()
            )));
            return Vec::new();
        };
        let target = self.base.join(arg);
        let paths = if is_glob(arg) {
            match self.src.glob(&target) {
                Ok(p) => p,
                Err(e) => {
                    self.errors
                        .push(at(format!("bad include pattern {arg:?}: {e}")));
                    return Vec::new();
                }
            }
        } else {
            vec![target]
        };
        let mut out = Vec::new();
        for path in paths {
            if self.stack.len() >= self.limits.max_depth {
                self.errors.push(at(format!(
                    "includes nested deeper than {} levels at {}",
                    self.limits.max_depth,
                    path.display()
                )));
                continue;
            }
            if self.includes >= self.limits.max_includes {
                self.errors.push(at(format!(
                    "more than {} includes; {} and the rest were not read",
                    self.limits.max_includes,
                    path.display()
                )));
                break;
            }
            let key = self.src.key(&path);
            if self.stack.contains(&key) {
                self.errors.push(at(format!(
                    "include cycle: {} includes itself (directly or through other files)",
                    path.display()
                )));
                continue;
            }
            self.includes += 1;
            let Some(parsed) = self.parsed(&path, &key, (&d.file, d.line)) else {
                continue;
            };
            self.stack.push(key);
            out.extend(self.expand(parsed));
            self.stack.pop();
            d.includes.push(path);
        }
        out
    }
}

fn run(
    src: &dyn Source,
    main: &Path,
    base_dir: &Path,
    limits: &LoadLimits,
) -> Result<Tree, ConfError> {
    let mut l = Loader {
        src,
        base: base_dir.to_path_buf(),
        limits: limits.clone(),
        files: Vec::new(),
        errors: Vec::new(),
        includes: 0,
        directives: 0,
        cache: HashMap::new(),
        stack: Vec::new(),
        budget_reported: false,
        bytes: 0,
        bytes_reported: false,
    };
    let text = src
        .read(main, limits.max_file_bytes)
        .map_err(|e| ConfError {
            file: main.to_path_buf(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
    l.files.push(main.to_path_buf());
    l.bytes = text.len() as u64;
    let directives = match parse(&text, main) {
        Ok(d) => {
            l.stack.push(src.key(main));
            let d = l.expand(d);
            l.stack.pop();
            d
        }
        Err(e) => {
            l.errors.push(e);
            Vec::new()
        }
    };
    Ok(Tree {
        main: main.to_path_buf(),
        directives,
        files: l.files,
        errors: l.errors,
    })
}

/// Loads `main` and everything it includes. Relative include paths are
/// resolved against `base_dir`. Fails only if `main` itself cannot be read;
/// every other problem is in [`Tree::errors`].
pub fn load(main: &Path, base_dir: &Path) -> Result<Tree, ConfError> {
    load_with(main, base_dir, &LoadLimits::default())
}

/// [`load`] with explicit limits.
pub fn load_with(main: &Path, base_dir: &Path, limits: &LoadLimits) -> Result<Tree, ConfError> {
    run(&Disk, main, base_dir, limits)
}

/// The marker `nginx -T` prints before each file.
const T_MARKER: &str = "# configuration file ";

/// Splits `nginx -T` output into `(path, text)` sections, in order.
pub fn split_nginx_t_output(text: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(p) = bare
            .strip_prefix(T_MARKER)
            .and_then(|r| r.strip_suffix(':'))
        {
            out.push((PathBuf::from(p), String::new()));
        } else if let Some((_, t)) = out.last_mut() {
            t.push_str(line);
        }
    }
    out
}

/// Builds the tree from `nginx -T` output: the first file shown is the main
/// one, and relative includes resolve against its directory.
pub fn parse_nginx_t_output(text: &str) -> Result<Tree, ConfError> {
    parse_nginx_t_output_with(text, &LoadLimits::default())
}

/// [`parse_nginx_t_output`] with explicit limits.
pub fn parse_nginx_t_output_with(text: &str, limits: &LoadLimits) -> Result<Tree, ConfError> {
    let sections = split_nginx_t_output(text);
    let Some(main) = sections.first().map(|(p, _)| p.clone()) else {
        return Err(ConfError {
            file: PathBuf::from("<nginx -T>"),
            line: 0,
            message: "no \"# configuration file …:\" section found in the output".into(),
        });
    };
    let base = main.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut map = BTreeMap::new();
    for (p, t) in sections {
        // nginx prints a file once even if it is included many times.
        map.entry(p).or_insert(t);
    }
    run(&Memory(map), &main, &base, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn inlines_in_place_and_keeps_real_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let main = write(
            d,
            "nginx.conf",
            "http {\n include sites/*.conf;\n include x.conf;\n}\n",
        );
        write(d, "sites/a.conf", "server { listen 1; }\n");
        write(d, "sites/b.conf", "\nserver { listen 2; }\n");
        write(d, "x.conf", "gzip on;\n");
        let tree = load(&main, d).unwrap();
        assert!(tree.errors.is_empty(), "{:?}", tree.errors);
        let http = tree.directives[0].children();
        let names: Vec<_> = http.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["include", "server", "server", "include", "gzip"]);
        assert_eq!(http[0].includes.len(), 2);
        assert_eq!(http[2].file, d.join("sites/b.conf"));
        assert_eq!(http[2].line, 2);
        assert_eq!(tree.files.len(), 4);
    }

    #[test]
    fn missing_cycles_and_depth_are_errors_not_panics() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let main = write(
            d,
            "nginx.conf",
            "include a.conf;\ninclude missing.conf;\ninclude none/*.conf;\n",
        );
        write(d, "a.conf", "include b.conf;\n");
        write(d, "b.conf", "include a.conf;\n");
        let tree = load(&main, d).unwrap();
        let msgs: Vec<String> = tree.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("cycle") && msgs[0].contains("b.conf:1"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("missing.conf") && msgs[1].contains("cannot read"));
        let self_inc = write(d, "self.conf", "include self.conf;\n");
        assert_eq!(load(&self_inc, d).unwrap().errors.len(), 1);
        assert!(load(&d.join("nope.conf"), d).is_err());
    }

    #[test]
    fn diamond_includes_are_bounded() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for i in 0..30 {
            write(
                d,
                &format!("f{i}.conf"),
                &format!("include f{n}.conf;\ninclude f{n}.conf;\n", n = i + 1),
            );
        }
        write(d, "f30.conf", "x;\n");
        let tree = load(&d.join("f0.conf"), d).unwrap();
        assert!(!tree.errors.is_empty());
    }

    #[test]
    fn repeated_includes_count_against_the_byte_limit() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(d, "big.conf", &"x 1;\n".repeat(1000));
        let main = write(d, "nginx.conf", &"include big.conf;\n".repeat(50));
        let limits = LoadLimits {
            max_total_bytes: 20_000,
            ..LoadLimits::default()
        };
        let tree = load_with(&main, d, &limits).unwrap();
        assert_eq!(tree.errors.len(), 1, "{:?}", tree.errors);
        assert!(tree.errors[0].message.contains("more than 20000 bytes"));
        assert_eq!(tree.files.len(), 2);
    }

    #[test]
    fn nginx_t_output() {
        let out = concat!(
            "# configuration file /etc/nginx/nginx.conf:\n",
            "http {\n    include sites/*;\n}\n\n",
            "# configuration file /etc/nginx/sites/one:\n",
            "server {\n  listen 127.0.0.1:80;\n}\n"
        );
        let tree = parse_nginx_t_output(out).unwrap();
        assert!(tree.errors.is_empty(), "{:?}", tree.errors);
        let http = tree.directives[0].children();
        assert_eq!(http[1].name, "server");
        assert_eq!(http[1].children()[0].location(), "/etc/nginx/sites/one:2");
        assert!(parse_nginx_t_output("nothing").is_err());
    }
}
