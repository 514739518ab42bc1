//! Java attacks (944): Log4Shell lookups, OGNL/EL expressions, reflective
//! execution (`Runtime.getRuntime().exec`), deserialisation gadget classes
//! and serialized-object magic bytes, JSP uploads. Fully-qualified JDK
//! class names and `${jndi:` never appear in ordinary API arguments.

use super::{lit, re, Category, Matcher, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::Java as J;
use Severity::Critical as C;
use Transform::Text as T;

const JAVA_TARGETS: u16 =
    loc::INPUT | loc::HEADERS | loc::UA | loc::REFERER | loc::PATH | loc::HEADER_NAMES;

/// Java rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(944100, J, C, 1, JAVA_TARGETS, T,
        r"java\.lang\.(?:runtime|processbuilder|reflect|classloader|system|thread|process)\b",
        "`java.lang.Runtime` / `ProcessBuilder`: command execution from OGNL, EL or deserialisation."),
    re(944110, J, C, 1, JAVA_TARGETS, T,
        r"\b(?:runtime|processbuilder)\b.*?\b(?:exec|start|getruntime|command|inheritio)\b|java\.(?:runtime|processbuilder)\b|\bgetruntime\s*\(\s*\)|new\s+processbuilder\b",
        "`Runtime.getRuntime().exec(` and `new ProcessBuilder(`: Java command execution."),
    re(944120, J, C, 1, JAVA_TARGETS, T,
        r"(?:clonetransformer|forclosure|instantiatefactory|instantiatetransformer|invokertransformer|prototypeclonefactory|prototypeserializationfactory|whileclosure|chainedtransformer|constanttransformer|lazymap|templatesimpl|annotationinvocationhandler|badattributevalueexpexception|priorityqueue|hashset.*?templatesimpl|jdbcrowsetimpl|com\.sun\.rowset|bsh\.interpreter|groovy\.util\.expando|org\.codehaus\.groovy\.runtime|spring.*?objectfactory|c3p0.*?poolbackeddatasource|xbean.*?naming|rome\..*?objectbean|commons\.beanutils\.beancomparator|\bjndi(?:ref|lookup))",
        "Deserialisation gadget classes (commons-collections transformers, `TemplatesImpl`, `JdbcRowSetImpl`)."),
    lit(944130, J, C, 1, JAVA_TARGETS, T, &[
        "com.opensymphony.xwork2", "com.sun.org.apache", "java.io.bufferedinputstream",
        "java.io.bufferedreader", "java.io.bytearrayinputstream", "java.io.bytearrayoutputstream",
        "java.io.chararrayreader", "java.io.datainputstream", "java.io.file", "java.io.fileoutputstream",
        "java.io.fileinputstream", "java.io.filereader", "java.io.filewriter",
        "java.io.filterinputstream", "java.io.filteroutputstream", "java.io.filterreader",
        "java.io.inputstream", "java.io.inputstreamreader", "java.io.linenumberreader",
        "java.io.objectoutputstream", "java.io.objectinputstream", "java.io.outputstream",
        "java.io.pipedoutputstream", "java.io.pipedinputstream", "java.io.pipedreader",
        "java.io.printstream", "java.io.printwriter", "java.io.pushbackinputstream", "java.io.reader",
        "java.io.stringreader", "java.io.stringwriter", "java.io.writer", "java.lang.class",
        "java.lang.integer", "java.lang.number", "java.lang.object", "java.lang.process",
        "java.lang.reflect", "java.lang.runtime", "java.lang.string", "java.lang.stringbuilder",
        "java.lang.system", "javax.script.scriptenginemanager", "org.apache.commons", "org.apache.struts",
        "org.apache.struts2", "org.omg.corba", "java.beans.xmldecode", "java.lang.classloader",
        "java.net.url", "java.net.socket", "java.nio.file", "javax.naming", "java.rmi",
        "javax.management", "sun.misc.unsafe", "org.springframework.", "java.util.scanner",
        "javax.el.", "ognl.ognlcontext", "@ognl", "#_memberaccess", "#context[",
        "org.mozilla.javascript", "nashorn", "java.lang.thread", "java.lang.shutdown",
    ],
        "Sensitive JDK / framework class names (`java.io.*`, `java.lang.*`, `org.apache.struts`) in input."),
    re(944140, J, C, 1, loc::FILENAMES, T, r"\.\s*(?:jspx?|jspf|jhtml|jsw|jsv|jws)\s*(?:\.|$)",
        "Upload of a JSP file (web shell)."),
    re(944150, J, C, 1, loc::ALL, T,
        r"\$\{[^}]*(?:\$\{[^}]*\}[^}]*)*(?:jndi|ctx|env|sys|java|lower|upper|date|main|marker|bundle|base64|docker|k8s|log4j|spring|web|:-)\b|\$\{\s*(?:[a-z]+:)?(?:\$\{[^}]*\}|[^}])*j[^}]*n[^}]*d[^}]*i",
        "Log4Shell-style lookups (`${jndi:ldap://`, `${${lower:j}ndi:`, `${env:...}`)."),
    re(944151, J, C, 1, loc::ALL, T,
        r"(?:jndi|ldaps?|rmi|dns|iiop|corba|nds|nis|http)\s*:\s*(?://)?[^\s]*\$\{|\bjndi\s*:\s*(?:ldaps?|rmi|dns|iiop|corba|nds|nis|http)s?:",
        "JNDI lookup URLs (`jndi:ldap://`, `jndi:rmi://`)."),
    re(944200, J, C, 1, JAVA_TARGETS, T,
        r"\xac\xed\x00\x05|\x{fffd}\x{fffd}\x00\x05|ro0ab|aced0005|rO0AB",
        "Java serialized-object magic (`AC ED 00 05`, base64 `rO0AB`, hex `aced0005`)."),
    re(944210, J, C, 1, JAVA_TARGETS, T,
        r"(?:%\{[^}]*[#@(]|\(#[a-z_]+\s*=|@[a-z_]+(?:\.[a-z_]+)+@[a-z_]+\(|\bognl(?:context|util)?\b|#_memberaccess|#context\s*\[|#attr\s*\[|#request\s*\[|#session\s*\[|#parameters\s*\.|#[a-z_]+\s*=\s*#[a-z_]+|#[a-z_]+\.(?:getclass|getruntime|exec|forname)\b)",
        "OGNL / Struts expressions (`%{(#_memberAccess=...)}`, `#context[`)."),
    re(944240, J, C, 1, JAVA_TARGETS, T,
        r"(?:java\.|javax\.|sun\.|com\.sun\.|org\.apache\.)[a-z0-9_.]*\.(?:exec|getruntime|forname|newinstance|getmethod|invoke|loadclass|defineclass|lookup)\b|class\.forname\s*\(|\.getclass\s*\(\s*\)\s*\.\s*(?:forname|getclassloader)|t\s*\(\s*java\.",
        "Reflective Java execution chains (`Class.forName(`, `T(java.lang...)`, `.getClass().forName`)."),
    Rule {
        id: 944300,
        category: J,
        severity: C,
        paranoia: 3,
        targets: loc::INPUT | loc::HEADERS,
        transform: T,
        matcher: Matcher::Base64Of(&[
            "runtime", "processbuilder", "processimpl", "clonetransformer", "forclosure",
            "instantiatefactory", "instantiatetransformer", "invokertransformer",
            "prototypeclonefactory", "prototypeserializationfactory", "whileclosure",
            "getruntime", "java.lang", "templatesimpl", "jndi:",
        ]),
        description: "Base64-encoded Java execution and gadget keywords (`cnVudGltZQ` is `runtime`), at any alignment inside a blob. Paranoia 3: long random tokens can contain such fragments.",
    },
];
