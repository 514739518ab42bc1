//! Remote file inclusion (931): URL-valued arguments that point at an IP
//! address, carry a trailing `?` (include-suffix trick) or use
//! include-only schemes. Ordinary callback URLs use host names.

use super::{re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::Rfi as R;
use Severity::Critical as C;

/// RFI rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(931100, R, C, 1, loc::INPUT, Transform::Text,
        r"^(?:url|php|ftps?|file|https?|data|gopher|ldap|dict|jar|tftp|expect|zlib|glob|phar|ssh2|rar|ogg):/{0,2}(?:\[?[0-9a-f:]*:[0-9a-f:]*\]?|\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?(?:[/?#]|$)",
        "URL argument pointing at a raw IP address (v4 or v6): include/SSRF payloads."),
    re(931110, R, C, 1, loc::QUERY, Transform::Text,
        r"(?:\binclude\s*\([^)]*|mosconfig_absolute_path|_conf\[path\]|_server\[document_root\]|gallery_basedir|path\[docroot\]|appserv_root|config\[root_dir\]|globals\[rootpath\]|configfile|mainpath)=(?:file|ftps?|https?)://",
        "Known vulnerable include parameter set to a remote URL (`mosConfig_absolute_path=http://`)."),
    re(931120, R, C, 1, loc::ARGS, Transform::Text,
        r"^(?:file|ftps?|https?)\S*?\?+$",
        "URL-scheme value ending in `?`: the include-suffix trick that cuts off an appended extension."),
    re(931130, R, C, 2, loc::ARGS, Transform::Text,
        r"^(?:url|php|ftps?|file|https?|data|gopher|ldap|dict|jar|expect|zlib|glob|phar):/{0,2}[^/]",
        "Argument is a URL (off-domain include), only at paranoia 2+."),
];
