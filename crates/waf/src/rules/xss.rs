//! Cross-site scripting (941): script tags, event handlers, `javascript:`
//! URIs, dangerous elements and DOM sinks. API arguments are identifiers,
//! numbers and short strings; HTML in chat content is exempt (`llm.rs`).

use super::{lit, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::Xss as X;
use Severity::Critical as C;
use Transform::Text as T;

const XSS_TARGETS: u16 = loc::INPUT | loc::PATH | loc::UA | loc::FILENAMES;
/// Tag and handler rules also look at arbitrary headers (reflected by apps and logs).
const XSS_HDR: u16 = XSS_TARGETS | loc::HEADERS;
const XSS_INPUT: u16 = loc::INPUT | loc::UA | loc::FILENAMES;

/// XSS rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(941100, X, C, 1, XSS_HDR, T,
        r#"<\s*/?\s*(?:script|iframe|frame|frameset|object|embed|applet|meta|base|link|style|isindex|xss|bgsound|layer|ilayer|template|noscript|plaintext|xmp|listing|import|vmlframe)\b|<[a-z][a-z0-9:-]*\b[^>]*?[\s/"'`](?:on[a-z]{3,}|style|fscommand|seeksegmenttime)\s*=|<[a-z][a-z0-9:-]*\b[^>]*?(?:href|src|action|formaction|data|xlink:href|background|lowsrc|dynsrc|poster|code|codebase|srcdoc)\s*=\s*["'`]?\s*(?:javascript|vbscript|livescript|data|mocha)\s*:"#,
        "HTML that executes or loads code: script-capable elements, inline handlers, `javascript:` URLs in attributes. Plain markup (`<a href=https://...>`, `<p>`) does not match."),
    re(941110, X, C, 1, XSS_TARGETS | loc::HEADERS, T,
        r"<script[^>]*>[\s\S]*?|<\s*/\s*script\s*>",
        "A `<script>` tag."),
    re(941120, X, C, 1, XSS_HDR, T,
        r#"[\s"'`;/0-9=\x0b\x09\x0c,(]on[a-z]{3,50}[\s\x0b\x09\x0c;,(]*?=[^=]"#,
        "An inline event handler attribute (`onerror=`, `onload=`) after a delimiter."),
    re(941130, X, C, 1, XSS_TARGETS, T,
        r"\b(?:xlink:href|xhtml)\b|data:text/html|\bformaction\b|!entity\s+(?:%\s+)?[^\s]+\s+(?:system|public)|@import",
        "XSS via attributes and declarations (`xlink:href`, `data:text/html`, `<!ENTITY ... SYSTEM`)."),
    re(941140, X, C, 1, XSS_TARGETS, T,
        r"(?:url\s*\(\s*['\x22]?\s*(?:javascript|vbscript|livescript|data):|\bexpression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url)",
        "CSS-based script execution (`url(javascript:`, `expression(`, `-moz-binding`)."),
    re(941160, X, C, 1, XSS_HDR, T,
        r#"<[^\w<>]*(?:[^<>"'\s]*:)?[^\w<>]*(?:s\W*c\W*r\W*i\W*p\W*t|f\W*o\W*r\W*m|s\W*t\W*y\W*l\W*e|s\W*v\W*g|m\W*a\W*r\W*q\W*u\W*e\W*e|l\W*i\W*n\W*k|o\W*b\W*j\W*e\W*c\W*t|e\W*m\W*b\W*e\W*d|a\W*p\W*p\W*l\W*e\W*t|p\W*a\W*r\W*a\W*m|i?\W*f\W*r\W*a\W*m\W*e|b\W*a\W*s\W*e|b\W*o\W*d\W*y|m\W*e\W*t\W*a|i\W*m\W*a?\W*g\W*e?|v\W*i\W*d\W*e\W*o|a\W*u\W*d\W*i\W*o|b\W*i\W*n\W*d\W*i\W*n\W*g\W*s|a\W*n\W*i\W*m\W*a\W*t\W*e)(?:[^>\w]|$)|(?:<\w[\s\S]*[\s/]|['"](?:[\s\S]*[\s/])?)(?:formaction|style|background|src|lowsrc|ping|on[a-z]{3,20})[\s\x08]*?=|<[a-z][a-z0-9]*[\s/][^>]*\bhref\s*=\s*['"]?\s*(?:javascript|vbscript|data):"#,
        "Obfuscated dangerous tags and attributes (`<s/cr/ipt`, `<x src=`, `<a href=javascript:`)."),
    re(941170, X, C, 1, XSS_TARGETS, T,
        r#"(?:\W|^)(?:javascript\s*:(?:[\s\S]+[=\\(\[.<]|[\s\S]*?(?:\bname\b|\\[ux]\d))|vbscript\s*:|livescript\s*:|data:(?:(?:[a-z]\w+/\w[\w+-]+\w)?[;,]|[\s\S]*?;[\s\S]*?\b(?:base64|charset=)|[\s\S]*?,[\s\S]*?<[\s\S]*?\w[\s\S]*?>))|@\W*i\W*m\W*p\W*o\W*r\W*t\W*(?:/\*[\s\S]*?)?(?:["']|\W*u\W*r\W*l[\s\S]*?\()"#,
        "`javascript:` / `vbscript:` / `data:` URIs with code, CSS `@import`."),
    lit(941180, X, C, 1, XSS_INPUT, T, &[
        "document.cookie", "document.write", "document.domain", "document.location", ".parentnode",
        ".innerhtml", ".outerhtml", "window.location", "-moz-binding", "<![cdata[",
        "window.open", "window.name", "location.href", "location.hash", "fromcharcode", "settimeout(",
        "setinterval(", "createelement(", "appendchild(", ".insertadjacenthtml", "srcdoc=",
    ],
        "DOM sinks and sources used by XSS payloads."),
    re(941190, X, C, 1, XSS_TARGETS, T,
        r"<style.*?>.*?(?:@[i\\]|(?:[:=]|&#x?0*(?:58|3a|61|3d);?).*?(?:[(\\]|&#x?0*(?:40|28|92|5c);?))",
        "`<style>` with imports or expression calls."),
    re(941200, X, C, 1, XSS_TARGETS, T,
        r"<.*[:]?vmlframe.*?[\s/+]*?src[\s/+]*=|<[^>]*\b(?:v|vml):[a-z]+|<.*[:]?binding\s*=|xbl:|<[^>]*\s+xmlns\s*=",
        "VML / XBL / namespaced element vectors."),
    re(941210, X, C, 1, XSS_TARGETS, T,
        r"(?:j|&#x?0*(?:74|4a|106|6a);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:a|&#x?0*(?:65|41|97|61);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:v|&#x?0*(?:86|56|118|76);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:a|&#x?0*(?:65|41|97|61);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:s|&#x?0*(?:115|73|83|53);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:c|&#x?0*(?:99|63|67|43);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:r|&#x?0*(?:82|52|114|72);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:i|&#x?0*(?:73|49|105|69);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:p|&#x?0*(?:80|50|112|70);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?:t|&#x?0*(?:84|54|116|74);?)(?:\t|\n|\r|&(?:#x?0*(?:9|13|10|a|d);?|tab;|newline;))*(?::|&(?:#x?0*(?:58|3a);?|colon;))",
        "`javascript:` split by tabs, newlines or entities."),
    re(941310, X, C, 1, XSS_TARGETS, T,
        r"\x{be}\s*script\s*\x{bc}|\x{bc}\s*/\s*script\s*\x{be}|\x{bc}\s*script",
        "US-ASCII 7-bit-stripped `<script>` (`¼script¾`)."),
    re(941350, X, C, 1, XSS_TARGETS, T,
        r"\+ad[wv]-|\+acij-|\+ai[ij]-|\+adw-\w",
        "UTF-7 encoded `<` / `\"` (`+ADw-script+AD4-`)."),
    re(941370, X, C, 1, XSS_TARGETS, T,
        r"(?:self|document|this|top|window)\s*(?:/\*|[\[)]).+?(?:\]|\*/)",
        "JavaScript global object accessed through comments or brackets (`window['al'+'ert']`)."),
    re(941380, X, C, 1, XSS_TARGETS, T,
        r"\{\{.*?\}\}.*?(?:constructor|\$eval|\$on|alert|prompt)|\{\{\s*[a-z_]+\s*\.\s*constructor",
        "AngularJS client-side template injection (`{{constructor.constructor(...)}}`)."),
    re(941390, X, C, 1, XSS_INPUT, T,
        r"\b(?:eval|set(?:timeout|interval)|new\s+function|a(?:lert|tob)|btoa|prompt|confirm)\s*(?:\(|`|\[|/\*)",
        "JavaScript sinks called (`alert(`, `eval(`, `atob(`)."),
    re(941400, X, C, 1, XSS_TARGETS, T,
        r"\[\s*\]\s*\[\s*['\x22`][a-z]+['\x22`]\s*\]\s*\[|\b(?:window|self|top|this|parent|frames|globalthis)\s*\[\s*['\x22`]",
        "JavaScript functions reached without parentheses (`[]['constructor']['constructor']`)."),
    re(941360, X, C, 1, XSS_INPUT, T,
        r"!!\s*\[\s*\]|!\s*\[\s*\]\s*\+|\(\s*!\s*\[\s*\]|\+\s*!\s*\+?\s*\[|\[\s*\]\s*\[\s*\(|\+\s*\[\s*\]\s*\)",
        "JSFuck-style obfuscation (`(![]+[])[+!+[]]`, `+!![]`): JavaScript built from `[]!+()` only."),
];
