//! PHP injection (933): PHP open tags, stream wrappers, superglobals,
//! dangerous functions called with a parenthesis, serialized objects.
//! Function names must be followed by `(` (possibly after comments), so the
//! words themselves in prose never match.

use super::{lit, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::Php as P;
use Severity::Critical as C;
use Transform::Text as T;

/// PHP rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(933100, P, C, 1, loc::INPUT, T,
        r"<\?(?:php[\s\x0b]|=|xml(?:\s+[^a-z]|:)|$)|<\?[\s\x0b]+(?:php\b|echo\b|print\b|\$|[a-z_][a-z0-9_]*\s*\()|\[[/\\]?php\]|\{/?php\}",
        "PHP open tags (`<?php `, `<?=`), and a short tag `<? ` followed by PHP code (`php`, `echo`, `$x`, a call)."),
    re(933110, P, C, 1, loc::FILENAMES, T,
        r"\.\s*(?:php\d*|phtml|phpt|pht|phar|phps|inc|shtml)\s*(?:\.|$)|\.ph(?:p|tml)\W",
        "Upload of a PHP script file name (also with spaces around the dot or trailing)."),
    re(933120, P, C, 1, loc::INPUT, T,
        r"\b(?:allow_url_(?:fopen|include)|auto_(?:append|prepend)_file|disable_functions|open_basedir|safe_mode|suhosin\.[a-z_.]+|display_errors|error_log|file_uploads|include_path|register_globals|enable_dl|magic_quotes_gpc|memory_limit|max_execution_time|extension_dir|sendmail_path|expose_php|session\.save_path|upload_tmp_dir|zend_extension|engine|extension|short_open_tag|asp_tags|output_handler|user_ini\.filename|auto_detect_line_endings|default_charset|html_errors|log_errors|variables_order|request_order|(?:opcache|mbstring|pcre|zend|xdebug|apc|phar|assert|mysqli?|pdo_mysql|curl|openssl|session|date|allow_url)\.[a-z_]+)\s*=",
        "php.ini directive assignment (`allow_url_include=1`): config injection."),
    re(933130, P, C, 1, loc::INPUT, T,
        r"\$(?:_(?:get|post|cookie|request|server|env|files|session)|globals|http_(?:raw_post_data|get_vars|post_vars|cookie_vars|server_vars|env_vars|post_files|session_vars))\b",
        "PHP superglobals (`$_GET`, `$GLOBALS`) in input."),
    re(933140, P, C, 1, loc::INPUT, T,
        r"\bphp://(?:std(?:in|out|err)|(?:in|out)put|fd|memory|temp|filter)|\b(?:phar|zlib|glob|expect|compress\.(?:zlib|bzip2)|zip|rar|ogg|ssh2(?:\.[a-z]+)?)://",
        "PHP stream wrappers (`php://filter`, `phar://`, `expect://`)."),
    re(933150, P, C, 1, loc::INPUT, T,
        r"\b(?:assert(?:_options)?|base64_decode|call_user_func(?:_array)?|create_function|escapeshellarg|escapeshellcmd|exec|file_get_contents|file_put_contents|fsockopen|fopen|fwrite|fputs|gzinflate|gzuncompress|gzdecode|str_rot13|include(?:_once)?|require(?:_once)?|ini_set|ini_get|mail|move_uploaded_file|passthru|pcntl_exec|phpinfo|popen|proc_open|readfile|shell_exec|system|unserialize|serialize|eval|preg_replace|array_map|array_filter|usort|uasort|uksort|ob_start|highlight_file|show_source|php_uname|getenv|putenv|posix_[a-z]+|dl|chmod|chown|copy|unlink|rmdir|mkdir|rename|symlink|curl_exec|curl_init|parse_str|extract|import_request_variables|var_dump|print_r|var_export|stream_get_contents|session_start|md5_file|file|glob|opendir|scandir|readdir|gethostbyname|get_defined_vars|get_cfg_var|getcwd|getmypid|posix_getpwuid|debug_zval_dump|register_shutdown_function|register_tick_function|set_error_handler|set_exception_handler|array_walk|forward_static_call(?:_array)?|func_get_args|hex2bin|bin2hex|convert_uudecode|openlog|syslog|apache_setenv|virtual|dir|iterator_apply|mb_ereg_replace|ereg_replace|eregi_replace|filter_var|constant|spl_autoload_register)(?:/\*.*?\*/|#[^\n]*\n)*\(",
        "A dangerous PHP function called (`system(`, `base64_decode(`, `eval(`)."),
    re(933151, P, C, 1, loc::INPUT, T,
        r"(?:call_user_func(?:_array)?|fsockopen|pfsockopen|gzdecode|gzinflate|gzuncompress|bzdecompress|str_rot13|base64_decode|shell_exec|proc_open|passthru|pcntl_exec|create_function|assert_options|file_get_contents|file_put_contents|move_uploaded_file|highlight_file|show_source|php_uname|posix_[a-z_]+|preg_replace(?:_callback)?|unserialize|get_defined_vars|phpinfo|array_map|register_shutdown_function)\s*(?:(?:/\*.*?\*/|//[^\n]*[\n\r]|#[^\n]*[\n\r])\s*)*\(",
        "Distinctive PHP function names called, even glued to other text (`FOOcall_user_func(`)."),
    re(933152, P, C, 1, loc::INPUT, T,
        r"\b[a-z_][a-z0-9_]*\s*(?:(?:/\*.*?\*/|//[^\n]*[\n\r]|#[^\n]*[\n\r]|[\r\n])\s*)+\(",
        "A call with a comment or line break between name and parenthesis (`exec//x\n(`): only code does that."),
    re(933160, P, C, 1, loc::INPUT, T,
        r#"\b[a-z_][a-z0-9_]*(?:/\*.*?\*/|#[^\n]*\n|//[^\n]*\n)*\((?:\s*(?:["'][^"']*["']|\$[a-z_]\w*|[a-z_]\w*\s*\([^)]*\)|\d+)\s*,?)*\s*\)\s*[;.]|\b(?:echo|print)\s+\$[a-z_]|\b(?:include|require)(?:_once)?\s+["'$]|\b(?:system|eval)\s+["'$]"#,
        "A PHP-like function call statement (`foo('x');`, `echo $x`, `include '...'`). `echo \"text\"` alone is shell or prose, not PHP."),
    re(933170, P, C, 1, loc::INPUT | loc::HEADERS, T,
        r#"[oc]:\d+:"[^"]+":\d+:\{|\ba:\d+:\{(?:[isbdno]:|\})"#,
        "PHP serialized object or array (`O:8:\"stdClass\":1:{`): object injection."),
    re(933180, P, C, 1, loc::INPUT, T,
        r#"\$+(?:[a-z_\x7f-\xff][a-z0-9_\x7f-\xff]*|\s*\{.+\})(?:\s|/\*.*?\*/|#[^\n]*\n|//[^\n]*\n|\[[^\]]+\]+|\{[^}]+\})*\(.*\)|\$\s*\{\s*[$'"a-z_]"#,
        "PHP variable function call (`$f(...)`, `${'sys'.'tem'}`)."),
    re(933200, P, C, 1, loc::INPUT, T,
        r"\b(?:bzip2|expect|glob|ogg|(?:ph|r)ar|ssh2(?:\.(?:s(?:hell|(?:ft|c)p)|exec|tunnel))?|z(?:ip|lib))://",
        "PHP wrapper scheme (`expect://`, `zlib://`)."),
    re(933210, P, C, 1, loc::INPUT, T,
        r#"(?:\((?:.+\)(?:["'][\-0-9a-z_]+["'])?\(.+|[^)]*string[^)]*\)[\s\x0b"'\-.0-9a-z\[\]_{}]+\([^)]*)|(?:\[[0-9]+\]|\{[0-9]+\}|\$[^(),./;\\]+|["'][\-0-9a-z\\_]+["'])\(.+)\);"#,
        "PHP call built from parenthesised, cast or concatenated parts ending in `);` (`(sy.(st).em)('id');`)."),
    re(933220, P, C, 1, loc::FILENAMES, T,
        r"(?:^|[/\\])sess_[a-z0-9,-]{10,}$",
        "Upload named like a PHP session file (`sess_<id>`): session poisoning."),
    lit(933230, P, C, 1, loc::INPUT, T, &[
        "php://", "phar://", "file_put_contents(", "base64_decode(", "gzinflate(", "str_rot13(",
        "$_server[", "$_get[", "$_post[", "$_request[", "$_cookie[",
    ],
        "Literal PHP payload fragments."),
    re(933161, P, C, 1, loc::INPUT | loc::PATH, T,
        r"\b(?:abs|acos|addslashes|array_[a-z_]+|assert|base64_(?:en|de)code|basename|bin2hex|call_user_func(?:_array)?|chdir|chmod|chown|chr|closedir|compact|constant|copy|count|create_function|crypt|curl_[a-z_]+|date|define|die|dirname|disk_[a-z_]+|each|echo|empty|error_log|escapeshell(?:arg|cmd)|eval|exec|exit|explode|extract|fclose|feof|fflush|fgetc|fgets|file|file_exists|file_get_contents|file_put_contents|fileatime|filegroup|fileinode|filemtime|fileowner|fileperms|filesize|filetype|flock|fopen|fpassthru|fputs|fread|fscanf|fseek|fstat|ftell|ftruncate|func_get_args|fwrite|get_[a-z_]+|getcwd|getenv|gettype|glob|gz[a-z]+|header|hex2bin|highlight_(?:file|string)|html_entity_decode|htmlspecialchars|implode|in_array|include(?:_once)?|ini_[a-z_]+|intval|is_[a-z_]+|isset|join|json_(?:en|de)code|link|list|lstat|mail|mkdir|move_uploaded_file|mt_rand|ob_[a-z_]+|opendir|ord|pack|parse_(?:ini_file|str|url)|passthru|pathinfo|pclose|pfsockopen|php_uname|phpinfo|phpversion|popen|posix_[a-z_]+|preg_[a-z_]+|print|print_r|printf|proc_[a-z_]+|putenv|rand|range|rawurl(?:en|de)code|readdir|readfile|readlink|realpath|rename|require(?:_once)?|rewind|rmdir|scandir|serialize|session_[a-z_]+|set_[a-z_]+|setcookie|shell_exec|show_source|sleep|sprintf|stat|str_[a-z_0-9]+|strip_tags|stripslashes|strlen|strpos|strrev|strtolower|strtoupper|strtr|substr(?:_[a-z]+)?|symlink|system|tempnam|tmpfile|touch|trim|uasort|ucfirst|uksort|umask|uniqid|unlink|unpack|unserialize|urldecode|urlencode|usleep|usort|var_dump|var_export|vfprintf|vprintf|vsprintf)\s*(?:(?:/\*.*?\*/|//[^\n]*[\n\r]|#[^\n]*[\n\r])\s*)*\(\s*(?:[^\s)]|\))",
        "A PHP built-in called with an argument list (`substr(`, `fopen  (x`): the CRS php-function-names family."),
    re(933211, P, C, 1, loc::INPUT, T,
        r#"\(\s*['"]?[a-z_][a-z0-9_]*['"]?\s*\)\(|["'][a-z_][a-z0-9_]*["']\(\s*[a-z0-9_$'"]|\breturn\s*["'][a-z_]+["']\s*\("#,
        "Variable-function tricks: a parenthesised or quoted name called directly (`(system)(id)`, `'system'('id')`)."),
];
