//! API keys: `mgk_<id>_<secret>`.
//!
//! The id is the public prefix (listed, logged, used to find the record);
//! the secret is 32 random alphanumerics (~190 bits) and is shown once, at
//! creation. Only a salted SHA-256 of the secret is stored: with that much
//! entropy a slow hash buys nothing, and a fast one keeps every request's
//! check at a microsecond. Comparison is constant-time.

use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scope::Scopes;
use crate::admin::store::{now_ms, KeyRow};

/// Every moltgate key starts with this.
pub const PREFIX: &str = "mgk_";
const ID_LEN: usize = 10;
const SECRET_LEN: usize = 32;

/// What a request's key resolved to.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The key's public id: `<id>` in `mgk_<id>_<secret>`.
    pub id: String,
    /// Its label, chosen by whoever made it.
    pub label: String,
    /// What it may do.
    pub scopes: Scopes,
    salt: [u8; 16],
    hash: [u8; 32],
    /// When it expires (milliseconds since the epoch), if ever.
    pub expires_at: Option<i64>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Its own rate limit, instead of `RATE_LIMIT_KEY_PER_MINUTE`.
    pub rate_per_minute: Option<u32>,
    /// Allowed models (exact names, or `provider/*`); empty means any.
    pub models: Vec<String>,
}

/// Why a presented key was refused (all count as failed authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// Not shaped like a moltgate key.
    Malformed,
    /// No key has that id, or the secret does not match.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl KeyRejection {
    /// What to tell the caller (the same for a wrong secret and an unknown id).
    pub fn describe(self) -> &'static str {
        match self {
            KeyRejection::Malformed => {
                "the API key is malformed (moltgate keys look like mgk_<id>_<secret>)"
            }
            KeyRejection::Unknown => "the API key is not valid",
            KeyRejection::Revoked => "the API key was revoked",
            KeyRejection::Expired => "the API key has expired",
        }
    }
}

/// A freshly made key: the row to store and the full key to show once.
pub struct NewKey {
    /// The row to store (a salted hash, never the key).
    pub row: KeyRow,
    /// The full key: shown once, and never stored.
    pub plaintext: String,
}

/// A new key with a random id and secret.
pub fn generate(
    label: &str,
    scopes: Scopes,
    expires_at: Option<i64>,
    rate_per_minute: Option<u32>,
    models: &[String],
) -> NewKey {
    let mut rng = rand::thread_rng();
    let id = Alphanumeric
        .sample_string(&mut rng, ID_LEN)
        .to_ascii_lowercase();
    let secret = Alphanumeric.sample_string(&mut rng, SECRET_LEN);
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let hash = digest(&salt, &secret);
    NewKey {
        plaintext: format!("{PREFIX}{id}_{secret}"),
        row: KeyRow {
            id,
            label: label.to_string(),
            salt: hex::encode(salt),
            hash: hex::encode(hash),
            scopes: scopes.to_string(),
            created_at: now_ms(),
            expires_at,
            revoked_at: None,
            rate_per_minute,
            models: (!models.is_empty()).then(|| models.join(",")),
        },
    }
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// Splits `mgk_<id>_<secret>` into id and secret.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == ID_LEN
        && secret.len() == SECRET_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((id, secret))
}

impl KeyRecord {
    /// Parses a stored row; a row that does not parse is skipped by the
    /// caller (and so grants nothing).
    pub fn from_row(r: &KeyRow) -> Result<KeyRecord, String> {
        let salt: [u8; 16] = hex::decode(&r.salt)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| format!("key {}: bad salt", r.id))?;
        let hash: [u8; 32] = hex::decode(&r.hash)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| format!("key {}: bad hash", r.id))?;
        Ok(KeyRecord {
            id: r.id.clone(),
            label: r.label.clone(),
            scopes: Scopes::parse_list(&r.scopes).map_err(|e| format!("key {}: {e}", r.id))?,
            salt,
            hash,
            expires_at: r.expires_at,
            revoked: r.revoked_at.is_some(),
            rate_per_minute: r.rate_per_minute,
            models: r
                .models
                .as_deref()
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Checks the secret (constant-time) and the key's state.
    pub fn verify(&self, secret: &str, now_ms: i64) -> Result<(), KeyRejection> {
        let ok: bool = digest(&self.salt, secret).ct_eq(&self.hash).into();
        if !ok {
            return Err(KeyRejection::Unknown);
        }
        if self.revoked {
            return Err(KeyRejection::Revoked);
        }
        if self.expires_at.is_some_and(|t| t <= now_ms) {
            return Err(KeyRejection::Expired);
        }
        Ok(())
    }

    /// Whether this key may use `model` (as requested by the client).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.models.iter().any(|m| match m.strip_suffix("/*") {
                Some(provider) => model.split_once('/').is_some_and(|(p, _)| p == provider),
                None => m == model,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(models: &[String]) -> (KeyRecord, String) {
        let k = generate("agent", Scopes::NONE, None, None, models);
        (KeyRecord::from_row(&k.row).unwrap(), k.plaintext)
    }

    #[test]
    fn a_new_key_verifies_and_its_row_holds_no_secret() {
        let k = generate("agent", Scopes::admin(), None, Some(10), &[]);
        let (id, secret) = split(&k.plaintext).unwrap();
        assert_eq!(id, k.row.id);
        assert!(!format!("{:?}", k.row).contains(secret));
        let rec = KeyRecord::from_row(&k.row).unwrap();
        assert_eq!(rec.verify(secret, now_ms()), Ok(()));
        assert_eq!(rec.rate_per_minute, Some(10));
    }

    #[test]
    fn wrong_revoked_and_expired_keys_are_refused() {
        let (mut rec, key) = record(&[]);
        let (_, secret) = split(&key).unwrap();
        let mut wrong = secret.to_string();
        wrong.replace_range(0..1, if secret.starts_with('a') { "b" } else { "a" });
        assert_eq!(rec.verify(&wrong, 0), Err(KeyRejection::Unknown));
        rec.expires_at = Some(1000);
        assert_eq!(rec.verify(secret, 1000), Err(KeyRejection::Expired));
        assert_eq!(rec.verify(secret, 999), Ok(()));
        rec.revoked = true;
        assert_eq!(rec.verify(secret, 0), Err(KeyRejection::Revoked));
    }

    #[test]
    fn malformed_keys_do_not_split() {
        for k in [
            "",
            "mgk_",
            "sk-abc",
            "mgk_short_secret",
            "mgk_abcdefghij_tooshort",
            "mgk_abcdefgh!j_0123456789abcdef0123456789abcdef",
        ] {
            assert!(split(k).is_none(), "{k}");
        }
    }

    #[test]
    fn model_allow_list() {
        let (rec, _) = record(&["groq/*".into(), "gpt-4o-mini".into()]);
        assert!(rec.allows_model("groq/llama-3.1-8b-instant"));
        assert!(rec.allows_model("gpt-4o-mini"));
        assert!(!rec.allows_model("openrouter/x"));
        assert!(!rec.allows_model("groq"));
        let (any, _) = record(&[]);
        assert!(any.allows_model("whatever"));
    }
}
