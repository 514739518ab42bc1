//! Probes for secrets and agent configuration (945). Nothing under these
//! paths is ever served by the gateway; a request for them is
//! reconnaissance, whatever the route.

use super::{lit, re, Category, Rule, Transform};
use crate::fields::loc;
use crate::score::Severity;

use Category::SecretProbe as S;
use Severity::Critical as C;

/// Secret/agent-config probe rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    re(945100, S, C, 1, loc::PATH, Transform::Path,
        r"(?:^|/)(?:\.env(?:\.[a-z0-9_-]+)?|\.git|\.svn|\.hg|\.aws|\.ssh|\.gnupg|\.docker|\.kube|\.azure|\.gcloud|\.config/gcloud|\.npmrc|\.pypirc|\.netrc|\.pgpass|\.git-credentials|\.gitconfig|\.bash_history|\.zsh_history|\.clawdbot|\.openclaw|\.moltbot|\.moltguard|\.claude|\.cursor|\.codex|\.continue|\.aider[a-z._-]*|\.vscode|\.idea|\.zed|\.cline|\.clinerules|\.kiro|\.windsurf|\.rovodev|\.roo|\.gemini|\.copilot|\.codeium|\.tabnine|\.amazonq|\.junie|\.augment|\.qodo|\.trae|\.opencode|\.goose|\.crush|\.mcp|\.plandex|\.fabric|\.n8n|\.langchain|\.flowise|\.dify|\.continuerc|\.aiignore|\.cursorignore|\.anthropic|\.openai|\.ollama|\.huggingface|\.cache/huggingface|\.config/(?:gh|gcloud|openai|anthropic))(?:/|$)",
        "Secret stores and agent configuration directories (`/.env`, `/.git/`, `/.aws/`, `/.ssh/`, `.clawdbot/`, `.openclaw/`, `.moltbot/`)."),
    re(945110, S, C, 1, loc::PATH, Transform::Path,
        r"(?:^|/)(?:id_(?:rsa|dsa|ecdsa|ed25519)(?:\.pub)?|credentials(?:\.json|\.xml|\.ya?ml)?|secrets?\.(?:json|ya?ml|toml|env)|service[-_]account[a-z0-9_-]*\.json|\.?htpasswd|wp-config\.php|config\.php|settings\.py|local_settings\.py|database\.yml|docker-compose\.ya?ml|terraform\.tfstate(?:\.backup)?|\.?dockercfg|kubeconfig|auth\.json|clawdbot\.json|openclaw\.json|moltbot\.json|moltguard\.toml|\.mcp\.json|mcp\.json|claude_desktop_config\.json)$",
        "Credential and config files by name (`id_rsa`, `credentials.json`, `terraform.tfstate`, agent JSON configs)."),
    re(945120, S, C, 1, loc::PATH, Transform::Path,
        r"\.(?:bak|backup|bkp|old|orig|save|swp|swo|tmp|temp|copy|dist|sql|sql\.gz|dump|tar|tar\.gz|tgz|zip|rar|7z|gz)$|~$",
        "Backup, dump and archive files (`config.php.bak`, `db.sql.gz`, `site.zip`): the gateway serves none."),
    lit(945130, S, C, 1, loc::PATH, Transform::Path, &[
        "/wp-admin", "/wp-login.php", "/xmlrpc.php", "/phpmyadmin",
        "/pma/", "/myadmin", "/adminer", "/cgi-bin/", "/actuator/", "/jolokia", "/console/login",
        "/manager/html", "/solr/admin", "/_ignition/", "/telescope/", "/vendor/phpunit",
        "/boaform/", "/hnap1", "/owa/auth", "/ecp/", "/autodiscover/autodiscover.xml",
        "/_profiler", "/debug/pprof", "/server-status", "/.well-known/openid-configuration/../",
    ],
        "Well-known scanner targets (WordPress login/admin/XML-RPC, phpMyAdmin, Spring actuator, PHPUnit RCE, router admin pages). Static asset folders (`wp-content/`, `wp-includes/`) are not probes."),
];
