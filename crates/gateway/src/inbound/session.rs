//! The gateway password (argon2id) and the browser sessions it buys.
//!
//! The password is hashed once at startup and the plaintext dropped; a
//! value that already is an argon2 PHC string (`$argon2id$...`) is used as
//! the hash. Sessions are random 256-bit tokens, kept in memory by their
//! SHA-256 (a restart logs browsers out, which is the safe direction),
//! bounded in number, and carried in an HttpOnly, SameSite=Strict cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "moltgate_session";
const MAX_SESSIONS: usize = 1024;

/// The gateway password, as an argon2id PHC string (never the password itself).
pub struct Password {
    phc: String,
}

impl Password {
    /// From the configured secret: a PHC string, or a plaintext to hash.
    pub fn new(secret: &str) -> Result<Password, String> {
        if secret.starts_with("$argon2") {
            PasswordHash::new(secret).map_err(|e| {
                format!("GATEWAY_PASSWORD looks like an argon2 hash but does not parse: {e}")
            })?;
            return Ok(Password {
                phc: secret.to_string(),
            });
        }
        if secret.chars().count() < 12 {
            return Err("GATEWAY_PASSWORD is shorter than 12 characters; choose a longer one (or store an argon2 hash)".into());
        }
        let phc = Argon2::default()
            .hash_password(secret.as_bytes())
            .map_err(|e| format!("cannot hash GATEWAY_PASSWORD: {e}"))?
            .to_string();
        Ok(Password { phc })
    }

    /// Constant-time inside argon2; deliberately slow (tens of ms), which
    /// is also why logins are rate limited per IP before this runs.
    pub fn verify(&self, attempt: &str) -> bool {
        match PasswordHash::new(&self.phc) {
            Ok(h) => Argon2::default()
                .verify_password(attempt.as_bytes(), &h)
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// The browser sessions: digests of their tokens, with their expiry.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// A new session token (hex), valid for `ttl`.
    pub fn create(&self, ttl: Duration) -> String {
        let mut token = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut token);
        let token = hex::encode(token);
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, exp| *exp > now);
        if map.len() >= MAX_SESSIONS {
            // Evict the session closest to expiry, never refuse the login.
            if let Some(k) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                map.remove(&k);
            }
        }
        map.insert(digest(&token), now + ttl);
        token
    }

    /// Whether `token` is a session that has not expired.
    pub fn valid(&self, token: &str) -> bool {
        if token.len() != 64 {
            return false;
        }
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&digest(token))
            .is_some_and(|exp| *exp > Instant::now())
    }

    /// Ends the session `token`, if there is one.
    pub fn end(&self, token: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&digest(token));
    }

    /// How many sessions are live.
    pub fn count(&self) -> usize {
        let now = Instant::now();
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|e| **e > now).count()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session token from a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })
}

/// The `Set-Cookie` value that starts session `token` for `ttl`.
pub fn set_cookie(token: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    )
}

/// The `Set-Cookie` value that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_and_rejects() {
        let p = Password::new("correct horse battery").unwrap();
        assert!(p.phc.starts_with("$argon2id$"));
        assert!(p.verify("correct horse battery"));
        assert!(!p.verify("correct horse batterz"));
        assert!(!p.verify(""));
        // A stored hash is used as is.
        let q = Password::new(&p.phc).unwrap();
        assert!(q.verify("correct horse battery"));
        assert!(Password::new("short").is_err());
        assert!(Password::new("$argon2id$garbage").is_err());
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let t = s.create(Duration::from_secs(60));
        assert!(s.valid(&t));
        assert!(!s.valid(&t.replace(&t[..1], if &t[..1] == "a" { "b" } else { "a" })));
        s.end(&t);
        assert!(!s.valid(&t));
        let short = s.create(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!s.valid(&short));
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            from_cookie_header("a=1; moltgate_session=abc; b=2"),
            Some("abc")
        );
        assert_eq!(from_cookie_header("moltgate_sessionx=abc"), None);
    }
}
