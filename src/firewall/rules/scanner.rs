//! Scanner and attack-tool user agents (913). These tools announce
//! themselves; legitimate SDKs (`OpenAI/Python`, `node-fetch`, `curl`) never
//! contain these names.

use super::{lit, Category, Rule, Transform};
use crate::firewall::fields::loc;
use crate::firewall::score::Severity;

/// Scanner rules.
pub const RULES: &[Rule] = &[lit(
    913100,
    Category::Scanner,
    Severity::Critical,
    1,
    loc::UA,
    Transform::Text,
    &[
        "nikto", "sqlmap", "nessus", "nmap", "masscan", "zgrab", "nuclei", "havij", "arachni",
        "acunetix", "netsparker", "w3af", "dirbuster", "gobuster", "feroxbuster", "wpscan",
        "openvas", "jaeles", "whatweb", "skipfish", "paros", "webinspect", "appscan", "burpcollaborator",
        "commix", "fimap", "nsauditor", "brutus", "hydra", "medusa", "metis",
        "morfeus", "mysqloit", "n-stealth", "netlab360", "pangolin", "satori",
        "sqlninja", "struts-pwn", "webtrends security", "wfuzz", "zmeu", "xsstrike",
        "bsqlbf", "blackwidow", "bilbo", "cgichk", "dirb/", "ffuf", "jorgee",
        "absinthe", "webshag", "webvulnscan", "(hydra)", "crimscanner", "domino hunter",
        "floodgate", "get-minimal", "gootkit", "grendel-scan", "inspath", "internet ninja",
        "isc systems irc search", "mozilla/5.0 sf", "nsauditor", "nstealth", "pmafind",
        "security scan", "springenwerk", "teh forest lobster", "toata", "uil2pn", "vega/",
        "voideye", "webbandit", "webshag", "zollard", "mysqloit", "censysinspect", "wprecon",
        "fuzz faster u fool", "interactsh", "zgrab", "masscan", "nmap scripting engine",
    ],
    "User-Agent names a vulnerability scanner or attack tool.",
)];
