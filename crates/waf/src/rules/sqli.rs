//! SQL and NoSQL injection (942).
//!
//! Rule 942100 is a libinjection-style detector: the value is tokenised the
//! way a SQL parser would see it, three times (as-is, and as if it
//! continued a single- or double-quoted literal), and the first tokens are
//! reduced to a fingerprint (`s&1o1`: string, logic, number, operator,
//! number). Injections have a small set of fingerprint shapes: breaking out
//! of a literal and continuing with logic, a comment, a stacked query or a
//! `UNION`. Prose produces barewords and unterminated strings, which do not
//! match. The regex rules below cover payloads that are unambiguous by
//! vocabulary (catalog tables, timing functions, `UNION ... SELECT`).

use super::{code, re, Category, Rule, Transform};
use crate::fields::{loc, Field};
use crate::score::Severity;

use Category::Sqli as S;
use Severity::Critical as C;
use Transform::{Sql, Text};

const SQL_TARGETS: u16 = loc::INPUT;

/// SQLi rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    code(942100, S, C, 1, loc::INPUT,
        "Tokenizer fingerprint of a literal breakout, tautology, stacked query or UNION (libinjection-style)."),
    re(942140, S, C, 1, SQL_TARGETS, Sql,
        r"\b(?:information_schema|pg_catalog|pg_toast|pg_shadow|pg_user|pg_database|mysql\.(?:db|user)|master\.\.sysdatabases|msysaccessobjects|msysaces|msysobjects|msysqueries|msysrelationships|msysaccessstorage|msysaccessxml|msysmodules2?|msdb|northwind|tempdb|sysobjects|syscolumns|sysusers|sys\.database_name|sysaux|sqlite(?:_temp)?_master|all_tables|user_tables|dba_users|v\$version)\b",
        "Database catalog names (`information_schema`, `pg_catalog`, `sqlite_master`)."),
    re(942151, S, C, 1, SQL_TARGETS, Sql,
        r"\b(?:adddate|addtime|aes_(?:de|en)crypt|benchmark|bin_to_uuid|bit_(?:and|count|length|or|xor)|char(?:acter)?_length|coercibility|concat(?:_ws)?|connection_id|convert_tz|crc32|curdate|current_(?:date|time(?:stamp)?|user)|curtime|date_(?:add|format|sub)|datediff|dayof(?:month|week|year)|des_(?:de|en)crypt|export_set|extractvalue|find_in_set|found_rows|from_(?:base64|days|unixtime)|get_(?:format|lock)|group_concat|inet6?_(?:aton|ntoa)|is_(?:free_lock|ipv4(?:_compat|_mapped)?|ipv6|used_lock)|json_[a-z_]+|last_(?:day|insert_id)|load_file|make_set|makedate|maketime|master_pos_wait|name_const|old_password|period_(?:add|diff)|pg_[a-z_]+|random_bytes|regexp_(?:instr|like|replace|substr)|release_(?:all_)?locks?|row_count|sec_to_time|session_user|str_to_date|strcmp|subdate|substr(?:ing(?:_index)?)?|subtime|sys_(?:context|eval|exec)|sysdate|system_user|time_format|time_to_sec|timediff|timestamp(?:add|diff)|to_(?:base64|char|days|seconds|number)|uncompress(?:ed_length)?|unhex|unix_timestamp|updatexml|utc_(?:date|time(?:stamp)?)|uuid_(?:short|to_bin)|weight_string|xmltype|yearweek|xp_[a-z_]+|sp_[a-z_]+|openrowset|opendatasource|openquery|db_name|host_name|is_srvrolemember|has_dbaccess|object_id|schema_name|suser_sname|serverproperty|nvarchar|varchar|nchar|datalength|lo_import|lo_export|lo_get|current_setting|query_to_xml|array_to_string|string_agg|sqlite_version|randomblob|zeroblob|ifnull|nullif|isnull|coalesce|lcase|ucase|lpad|rpad|ltrim|rtrim|sha[12]|md5|ascii|unicode|soundex|instr|locate|elt|chr|hex|ord|mid|starts_with|unistr|to_hex|string_to_array|regexp_matches)\s*\(|\b(?:compress|cos|database|decode|encode|version|user|char|concat|substring|ascii|count|length|cast|convert|exp|floor|rand|sleep|insert|trim|left|right|replace|reverse|repeat|lower|upper|round|format|position|locate|field|mid|ltrim|rtrim|space|quote|sign|sin|tan|log|ln|pi|pow|power|sqrt|now|if|ifnull|min|max|sum|avg)\s*\($",
        "A database-specific SQL function call (`extractvalue(`, `load_file(`, `ascii(substring(`, `pg_sleep(`)."),
    re(942153, S, C, 2, SQL_TARGETS, Sql,
        r"\b(?:dbms_[a-z_]+\.[a-z_]+|utl_(?:http|inaddr|file|tcp|smtp)\.[a-z_]+|ctxsys\.[a-z_]+)\s*\(",
        "Oracle package calls (`dbms_pipe.receive_message(`, `utl_http.request(`): out-of-band and timing primitives. Paranoia 2: CRS has no PL1 rule for them."),
    re(942152, S, C, 1, SQL_TARGETS, Sql,
        r"\b(?:abs|acos|asin|atan2?|avg|bin|cast|ceil(?:ing)?|char|charset|collation|compress|conv|convert|cos|cot|database|day|dayname|decode|degrees|encode|encrypt|exp|extract|field|floor|format|greatest|hour|if|insert|interval|least|left|length|ln|local(?:time(?:stamp)?)?|log(?:10|2)?|lower|minute|mod|month(?:name)?|now|oct|octet_length|password|pi|position|pow(?:er)?|quarter|quote|radians|rand|repeat|replace|reverse|right|round|schema|second|sign|sin|sleep|space|sqrt|std(?:dev)?|sum|tan|time|trim|truncate|upper|user|uuid|variance|version|week(?:day|ofyear)?|len|count|max|min)\((?:\s*(?:select|\d|'|\x22|@|\w+\s*\(|\w+\s*[,)])|\))",
        "A common-word SQL function written like code (`char(`, `version()`, `user()` with no space before the parenthesis and a SQL-ish argument)."),
    re(942160, S, C, 1, SQL_TARGETS | loc::PATH, Sql,
        r#"\b(?:sleep\s*\(\s*[-\d.'"(]|benchmark\s*\(.*?,.*?\)|pg_sleep\s*\(|dbms_lock\.sleep|randomblob\s*\(\s*\d{6,})"#,
        "Blind SQLi timing functions (`sleep(5)`, `benchmark(`)."),
    re(942170, S, C, 1, SQL_TARGETS, Sql,
        r"(?:select|;)\s+(?:benchmark|sleep|if)\s*?\(\s*?\(?\s*?\w+",
        "SQL benchmark/sleep injection inside a conditional query."),
    re(942190, S, C, 1, SQL_TARGETS, Sql,
        r#"["'`]\s*(?:x?or|and|div)\s+[\w\s-]+\s*[+<>=(),-]\s*[\d"'`]|\bexec\s*(?:xp_cmdshell|sp_[a-z]+)|\bunion\b(?:\s+(?:all|distinct))?\s*\(?\s*select\b|\bselect\s+.*?\bfrom\s+.*?\bwhere\b|\b(?:group\s+by|order\s+by)\s+\d+\s*(?:--|#|;|$)|\bselect\s+(?:@@|user\(|version\(|database\(|schema\(|current_user|system_user|null\b)|@@(?:version|datadir|hostname|basedir|tmpdir|servername)\b|^["'`!]+\s*$|["'`]\s*!\s*["'`]"#,
        "MSSQL code execution and information gathering (`exec xp_cmdshell`, `UNION SELECT`, `@@version`)."),
    re(942220, S, C, 1, SQL_TARGETS, Text,
        r"^(?:-?(?:2147483648|4294967295|4294967296|9223372036854775807|9223372036854775808|18446744073709551615|18446744073709551616)|(?:2\.2250738585072011e-308|2\.2250738585072012e-308|1e309))$",
        "Integer and float overflow magic values (`4294967296`, `2.2250738585072011e-308`)."),
    re(942230, S, C, 1, SQL_TARGETS, Sql,
        r"\bcase\s+when\b|\)\s*like\s*\(|\bhaving\s+[\w'\x22(]+\s*[=<>]|\bif\s*\(\s*\w+\s*[=<>~]",
        "Conditional SQL injection (`) like (`, `case(`, `if(x=`)."),
    re(942240, S, C, 1, SQL_TARGETS, Sql,
        r#"alter\s*\w+.*?char(?:acter)?\s+set\s+\w+|["'`;]\s*;?\s*waitfor\s+(?:time|delay)\s+["'`]|["'`];.*?:\s*goto"#,
        "MySQL charset switch and MSSQL `WAITFOR DELAY` injection."),
    re(942250, S, C, 1, SQL_TARGETS, Sql,
        r#"merge.*?using\s*\(|execute\s*immediate\s*["'`]|match\s*[\w(),+-]+\s*against\s*\("#,
        "`MERGE ... USING`, `EXECUTE IMMEDIATE`, `MATCH ... AGAINST` injection."),
    re(942270, S, C, 1, SQL_TARGETS, Sql,
        r"union.*?select.*?from",
        "`UNION ... SELECT ... FROM`: basic SQL injection."),
    re(942280, S, C, 1, SQL_TARGETS, Sql,
        r#"select\s*pg_sleep|waitfor\s*delay\s?["'`]+\s?\d|;\s*shutdown\s*(?:[#;{]|/\*|--)"#,
        "`pg_sleep`, `WAITFOR DELAY`, `; SHUTDOWN` injection."),
    re(942290, S, C, 1, loc::INPUT, Text,
        r"\[?\$(?:(?:s(?:lic|iz)|wher)e|e(?:lemmatch|xists|q)|n(?:o[rt]|in?|e)|l(?:ike|te?)|t(?:ext|ype)|a(?:ll|nd)|g(?:te?)|jsonschema|between|regex|x?or|div|mod|expr|function|accumulator|lookup)\]?\b",
        "MongoDB query operators in input (`[$ne]`, `$where`, `$regex`)."),
    re(942330, S, C, 1, loc::INPUT | loc::PATH, Sql,
        r"::\s*(?:int[248]?|integer|bigint|smallint|text|varchar|char|numeric|decimal|real|bool(?:ean)?|jsonb?|regclass|regproc|oid|bytea|inet|uuid|xml|money)\b|\bdiv\s*\(\s*-?[\d.]+\s*,",
        "PostgreSQL casts (`password::int`) and `div(` used for error-based extraction."),
    re(942320, S, C, 1, SQL_TARGETS, Sql,
        r"create\s+(?:procedure|function)\s*\w+\s*\(\s*\)\s*-|declare[^\w]+[@#]\s*\w+|exec\s*\(\s*@|procedure\s+analyse\s*\(",
        "Stored procedure / dynamic SQL injection (`DECLARE @x`, `EXEC(@`, `PROCEDURE ANALYSE(`)."),
    re(942350, S, C, 1, SQL_TARGETS, Sql,
        r"create\s+function\s.+\sreturns|;\s*(?:alter|create|truncate|update|rename|delete|desc|drop|insert|select|load|grant|revoke|exec|execute|declare|shutdown)\b\s*[\[(]?\w{2,}",
        "Stacked query: `;` followed by a DDL/DML statement (`; DROP TABLE`)."),
    re(942360, S, C, 1, SQL_TARGETS, Sql,
        r#"\b(?:(?:alter|create|truncate|update|rename|delete|desc|insert|select|load)\s+(?:char|group_concat|load_file)\b\s*\(?|end\s*\);)|[\s(]load_file\s*\(|["'`]\s+regexp\W|[\d"'`][\s\S]*?\bas\s+["'`]?\w+["'`]?\s+from\b|\b(?:insert\s+into|delete\s+from|drop\s+(?:table|database|schema|user|view|index)|truncate\s+table|alter\s+table|create\s+(?:table|database|user))\b"#,
        "Concatenated or stand-alone SQL statements (`SELECT CHAR(`, `INSERT INTO`, `DROP TABLE`)."),
    re(942500, S, C, 1, SQL_TARGETS, Text,
        r"/\*[!+](?:[\w\s=_\-()]+)?\*/|/\*!\d{0,5}",
        "MySQL executable comments (`/*!50000select*/`)."),
    re(942540, S, C, 1, loc::INPUT, Text,
        r#"^(?:[^']*'|[^"]*"|[^`]*`)[\s\d]*;"#,
        "Authentication bypass: a quote closing a literal followed by `;`."),
    re(942550, S, C, 1, loc::INPUT | loc::PATH, Sql,
        r#"["'`][\[{].*[\]}]["'`].*(?:::.*jsonb?)?.*(?:(?:@|->?)>|<@|\?[&|]?|#>>?|[<>]|<-)|(?:(?:@|->?)>|<@|\?[&|]?|#>>?|[<>]|<-)\s*["'`][\[{].*[\]}]+["'`]|json_extract.*\(.*\)|::\s*jsonb?\b"#,
        "JSON-operator SQL injection (`'{\"a\":1}'::jsonb @> ...`)."),
    re(942560, S, C, 1, SQL_TARGETS, Sql,
        r"\d\.e[(),]",
        "MySQL scientific-notation bypass (`1.e(`)."),
    // ---- paranoia 2+ (strict mode): shapes that also occur in rich text ----
    re(942120, S, C, 2, SQL_TARGETS, Sql,
        r"\b(?:like\s+null|n?regexp|rlike|sounds\s+like|is\s+not\s+null)\b|!=|<=>|>>|<<|&&|\|\|",
        "SQL operators (`<=>`, `RLIKE`, `LIKE NULL`, `||`) in an argument."),
    re(942210, S, C, 2, SQL_TARGETS, Sql,
        r#"\b(?:and|or|xor|div|like|between|not)\b[\s(]+[\w.@]+[\s)]*[!=<>+]+[\s\d]*["'`()=]|@\.\s*=\s*\(\s*select"#,
        "Chained SQL conditions (`AND 2771=1709)`, `or 120=121=`)."),
    re(942362, S, C, 2, SQL_TARGETS, Sql,
        r#"\)\s*as\s+[`"']?\w+[`"']?\s+from\b"#,
        "Aliased subquery fragment (`) AS x FROM`)."),
    re(942380, S, C, 2, SQL_TARGETS, Sql,
        r"\b(?:order\s+by|group\s+by|select\s*\(\s*case|from\s+\S+\s+limit|into\s+(?:out|dump)file|limit\s+\d+\s*,\s*\d+|exists\s*\(\s*select)\b",
        "SQL clauses (`ORDER BY`, `LIMIT 0,1`, `INTO OUTFILE`) in an argument."),
    re(942390, S, C, 2, SQL_TARGETS, Sql,
        r#"\b(?:x?or|and|div)\s+['"`]?\w+['"`]?\s*[<>=!]"#,
        "Boolean SQL comparison after a logic keyword (`xor 2 <`, `or 'a' <`)."),
    re(942440, S, C, 2, SQL_TARGETS, Text,
        r"/\*!?|\*/|[';]--|--(?:[\s\x0b]|[^-]*?-)|[^&-]#.*?[\s\x0b]|;?\x00",
        "SQL comment sequences (`/*`, `';--`, `# `) used to truncate queries."),
    re(942470, S, C, 2, SQL_TARGETS, Sql,
        r"\b(?:xp_[a-z_]+|sp_(?:password|executesql|makewebtask|oacreate|addextendedproc|configure)|n?varchar|nchar|exec\s+master|openrowset|opendatasource|sysobjects|syscolumns|utl_http|dbms_[a-z_]+)\b",
        "MSSQL/Oracle dangerous procedures and types (`xp_cmdshell`, `nvarchar`)."),
    re(942490, S, C, 3, SQL_TARGETS, Sql,
        r#"^["'`]+\s*[,*>=<]\s*\d|(?:['"]\s*,\s*){2,}|["'`]\s*,\s*\d+\s*$|`\s*>\s*\d"#,
        "Quoted-list and comparison fragments typical of column-count probing (`'', '', 13`)."),
    re(942520, S, C, 2, SQL_TARGETS, Sql,
        r#"['"`]\s*(?:is\s+not|not\s+(?:like|glob|between|in|regexp))\b"#,
        "Literal breakout followed by a negated comparison (`id'is not-id--`)."),
];

/// Token classes, one letter each as in libinjection fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Str,     // s
    Num,     // 1
    Word,    // n
    Kw,      // k
    Union,   // U
    Func,    // f
    Op,      // o
    Logic,   // &
    Comma,   // ,
    LParen,  // (
    RParen,  // )
    Semi,    // ;
    Comment, // c
    Var,     // v
}

impl Tok {
    fn letter(self) -> char {
        match self {
            Tok::Str => 's',
            Tok::Num => '1',
            Tok::Word => 'n',
            Tok::Kw => 'k',
            Tok::Union => 'U',
            Tok::Func => 'f',
            Tok::Op => 'o',
            Tok::Logic => '&',
            Tok::Comma => ',',
            Tok::LParen => '(',
            Tok::RParen => ')',
            Tok::Semi => ';',
            Tok::Comment => 'c',
            Tok::Var => 'v',
        }
    }
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "insert",
    "into",
    "values",
    "update",
    "set",
    "delete",
    "drop",
    "table",
    "create",
    "alter",
    "exec",
    "execute",
    "declare",
    "having",
    "group",
    "order",
    "by",
    "limit",
    "offset",
    "like",
    "rlike",
    "regexp",
    "between",
    "is",
    "null",
    "not",
    "in",
    "case",
    "when",
    "then",
    "else",
    "end",
    "waitfor",
    "delay",
    "shutdown",
    "truncate",
    "procedure",
    "distinct",
    "all",
    "as",
    "join",
    "sounds",
    "collate",
    "escape",
    "true",
    "false",
    "top",
    "into",
    "outfile",
    "dumpfile",
    "load_file",
    "information_schema",
];

const FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "char",
    "chr",
    "concat",
    "substring",
    "substr",
    "ascii",
    "ord",
    "mid",
    "version",
    "database",
    "user",
    "count",
    "length",
    "if",
    "ifnull",
    "extractvalue",
    "updatexml",
    "load_file",
    "pg_sleep",
    "cast",
    "convert",
    "hex",
    "unhex",
    "md5",
    "group_concat",
    "now",
    "rand",
    "floor",
    "exp",
    "elt",
    "make_set",
    "iif",
    "coalesce",
    "nullif",
    "isnull",
];

/// Upper bound on tokens looked at (a fingerprint is a prefix).
const MAX_TOKENS: usize = 8;

fn tokenize(s: &str, prefix_quote: Option<u8>) -> Vec<(Tok, usize, usize)> {
    let b = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    if let Some(q) = prefix_quote {
        // Continue an already-open literal: it ends at the first matching quote.
        match b.iter().position(|&c| c == q) {
            Some(end) => {
                toks.push((Tok::Str, 0, end + 1));
                i = end + 1;
            }
            None => return toks,
        }
    }
    while i < b.len() && toks.len() < MAX_TOKENS {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => {
                i += 1;
                continue;
            }
            b'\'' | b'"' | b'`' => {
                let q = c;
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                toks.push((if q == b'`' { Tok::Word } else { Tok::Str }, start, i));
            }
            b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                toks.push((Tok::Num, start, i));
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                toks.push((Tok::Num, start, i));
            }
            b'@' => {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'@'
                        || b[i] == b'.')
                {
                    i += 1;
                }
                toks.push((Tok::Var, start, i));
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                toks.push((Tok::Comment, start, b.len()));
                break;
            }
            b'#' => {
                toks.push((Tok::Comment, start, b.len()));
                break;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                toks.push((Tok::Comment, start, b.len()));
                break;
            }
            b'(' => {
                i += 1;
                toks.push((Tok::LParen, start, i));
            }
            b')' => {
                i += 1;
                toks.push((Tok::RParen, start, i));
            }
            b',' => {
                i += 1;
                toks.push((Tok::Comma, start, i));
            }
            b';' => {
                i += 1;
                toks.push((Tok::Semi, start, i));
            }
            b'&' if b.get(i + 1) == Some(&b'&') => {
                i += 2;
                toks.push((Tok::Logic, start, i));
            }
            b'|' if b.get(i + 1) == Some(&b'|') => {
                i += 2;
                toks.push((Tok::Logic, start, i));
            }
            b'=' | b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'|' | b'&'
            | b'~' | b':' => {
                i += 1;
                while i < b.len() && matches!(b[i], b'=' | b'<' | b'>' | b'!' | b'|' | b'&' | b':')
                {
                    i += 1;
                }
                toks.push((Tok::Op, start, i));
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] == b'.'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &s[start..i];
                let next_paren = b[i..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'(');
                let tok = match word {
                    "and" | "or" | "xor" | "div" => Tok::Logic,
                    "union" => Tok::Union,
                    w if next_paren && (FUNCS.contains(&w) || KEYWORDS.contains(&w)) => Tok::Func,
                    w if KEYWORDS.contains(&w) => Tok::Kw,
                    _ => Tok::Word,
                };
                toks.push((tok, start, i));
            }
            _ => {
                // Any other byte (including a UTF-8 continuation) is skipped.
                i += 1;
            }
        }
    }
    toks
}

fn fingerprint(toks: &[(Tok, usize, usize)]) -> String {
    toks.iter().map(|t| t.0.letter()).collect()
}

/// Whether a fingerprint has an injection shape. `quoted` says the value
/// was tokenised as the continuation of a literal (the leading `s` is the
/// attacker closing it).
fn dangerous(fp: &str, quoted: bool) -> bool {
    let f = fp.as_bytes();
    if f.is_empty() {
        return false;
    }
    if fp.contains("U") && (fp.contains("Uk") || fp.contains("U(") || fp.contains("Uf")) {
        return true;
    }
    if quoted {
        // `'` + something that only makes sense in SQL.
        return match f.get(1) {
            Some(b'&') => f.len() >= 3,
            Some(b';') => f.len() >= 3 && matches!(f.get(2), Some(b'k' | b'f' | b'c')),
            Some(b'c') => f.len() == 2,
            Some(b'o') => {
                f.len() >= 3
                    && matches!(f.get(2), Some(b's' | b'1' | b'f' | b'(' | b'v' | b'k'))
                    && !matches!(f.get(3), Some(b'n'))
            }
            Some(b')') => {
                matches!(f.get(2), Some(b'&' | b';' | b'c' | b'U' | b'o')) && f.len() >= 3
            }
            Some(b'U') => matches!(f.get(2), Some(b'k' | b'(' | b'f')),
            Some(b'k') => f.len() >= 3 && matches!(f.get(2), Some(b'1' | b's' | b'(' | b'f')),
            _ => false,
        };
    }
    // Unquoted (numeric context): `1 or 1=1`, `1;drop`, `1)) or`, `-1 union`.
    let mut j = 0;
    while j < f.len() && f[j] == b'o' {
        j += 1;
    }
    if f.get(j) != Some(&b'1') {
        return false;
    }
    let rest = &fp[j + 1..];
    let rest = rest.trim_start_matches(')');
    rest.starts_with("&1")
        || rest.starts_with("&s")
        || rest.starts_with("&f")
        || rest.starts_with("&(")
        || rest.starts_with("&v")
        || rest.starts_with(";k")
        || rest.starts_with(";f")
        || rest.starts_with("U")
        || (rest.starts_with('c') && fp.len() >= 2 && j + 1 < fp.len() - 1)
}

/// Runs the tokenizer on one field; returns rule id and the byte range in
/// `field.norm.sql()` that forms the suspicious fingerprint.
pub fn detect(field: &Field) -> Option<(u32, usize, usize)> {
    if field.loc & (loc::ARGS | loc::ARG_NAMES | loc::COOKIES) == 0 {
        return None;
    }
    let s = field.norm.sql();
    if s.len() < 2 || !s.bytes().any(|c| !c.is_ascii_alphanumeric() && c != b' ') {
        return None;
    }
    for (quote, quoted) in [(None, false), (Some(b'\''), true), (Some(b'"'), true)] {
        if let Some(q) = quote {
            if !s.as_bytes().contains(&q) {
                continue;
            }
        }
        let toks = tokenize(s, quote);
        if toks.len() < 2 {
            continue;
        }
        let fp = fingerprint(&toks);
        if dangerous(&fp, quoted) {
            let end = toks.last().map(|t| t.2).unwrap_or(s.len());
            return Some((942100, 0, end.min(s.len())));
        }
    }
    None
}
