//! Where providers may connect (server-side request forgery guard).
//!
//! A provider is *remote* (Groq, OpenRouter, OpenAI, any hosted API) or
//! *local* (Ollama, a model server on this machine or LAN), and says so in
//! its config. A remote provider may not reach private, loopback,
//! link-local, CGNAT or cloud-metadata addresses; no provider may reach a
//! metadata address. The check runs on every DNS resolution the provider's
//! HTTP client makes, i.e. at connect time: a name that resolved to a
//! public address at startup and to 169.254.169.254 later (DNS rebinding)
//! is refused then.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Cloud metadata endpoints: never a legitimate LLM provider.
pub fn is_metadata(ip: IpAddr) -> bool {
    match crate::inbound::client_ip::canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            // AWS/GCP/Azure/OpenStack, Alibaba, Oracle.
            o == [169, 254, 169, 254] || o == [100, 100, 100, 200] || o == [192, 0, 0, 192]
        }
        IpAddr::V6(v6) => v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
    }
}

/// Addresses a remote provider must not resolve to.
pub fn is_internal(ip: IpAddr) -> bool {
    match crate::inbound::client_ip::canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || o[0] == 0
                // CGNAT 100.64/10 (also Tailscale).
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                // unique local fc00::/7, link-local fe80::/10
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Why an address is refused for this provider, if it is.
pub fn refusal(provider: &str, local: bool, ip: IpAddr) -> Option<String> {
    if is_metadata(ip) {
        return Some(format!(
            "provider {provider}: refusing to connect to {ip}, a cloud metadata address (SSRF guard)"
        ));
    }
    if !local && is_internal(ip) {
        return Some(format!(
            "provider {provider}: its host resolves to {ip}, a private/loopback/link-local address, but the provider is marked remote; refusing (SSRF guard). If it really runs on this machine or network, set `local = true` in its [providers.{provider}] section"
        ));
    }
    None
}

/// A reqwest DNS resolver that applies [`refusal`] to every answer.
pub struct GuardedResolver {
    provider: String,
    local: bool,
}

impl GuardedResolver {
    /// A resolver for `provider`; `local` providers may resolve to internal addresses.
    pub fn new(provider: &str, local: bool) -> Arc<Self> {
        Arc::new(GuardedResolver {
            provider: provider.to_string(),
            local,
        })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let provider = self.provider.clone();
        let local = self.local;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            // One bad answer refuses the whole name: an attacker controlling
            // DNS would otherwise mix a public and an internal address.
            if let Some(why) = addrs.iter().find_map(|a| refusal(&provider, local, a.ip())) {
                return Err(why.into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_is_refused_even_for_local_providers() {
        for a in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(refusal("x", true, ip(a)).is_some(), "{a}");
        }
    }

    #[test]
    fn remote_providers_stay_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(refusal("groq", false, ip(a)).is_some(), "{a}");
            assert!(
                refusal("ollama", true, ip(a)).is_none() || is_metadata(ip(a)),
                "{a}"
            );
        }
        for a in ["104.18.2.3", "2606:4700::1", "8.8.8.8"] {
            assert!(refusal("groq", false, ip(a)).is_none(), "{a}");
        }
        let why = refusal("groq", false, ip("10.0.0.1")).unwrap();
        assert!(why.contains("local = true"), "{why}");
    }
}
