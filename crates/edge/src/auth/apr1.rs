//! APR1-MD5 password hashes (`$apr1$salt$hash`), the htpasswd format that
//! nginx verifies with its own code on every platform.
//!
//! Why this hash: nginx checks `$apr1$`, `{SHA}`, `{SSHA}` and `{PLAIN}`
//! itself and hands every other format to the system's crypt(3). glibc's
//! libxcrypt knows bcrypt and SHA-crypt, but macOS's crypt(3) only knows
//! DES, so a bcrypt line that works on Linux locks everyone out on a Mac.
//! Of the formats nginx implements itself, APR1 is the only salted,
//! iterated one. Its weakness (1,000 MD5 rounds) is bounded by the edge
//! being on loopback and by moltgate's login rate limits.
//!
//! The algorithm is the FreeBSD md5-crypt with the magic `$apr1$`.
//! No maintained crate implements it, so it is written out here and checked
//! against `openssl passwd -apr1` and Apache's `htpasswd -m`.

use md5::{Digest, Md5};
use rand::Rng;
use subtle::ConstantTimeEq;

const MAGIC: &str = "$apr1$";
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Hashes `password` with a fresh random 8-character salt.
pub fn hash(password: &str) -> String {
    let mut rng = rand::thread_rng();
    let salt: String = (0..8)
        .map(|_| ITOA64[rng.gen_range(0..64)] as char)
        .collect();
    hash_with_salt(password.as_bytes(), salt.as_bytes())
}

/// Hashes with a given salt (at most 8 bytes are used, as in the reference).
pub fn hash_with_salt(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let pw = password;

    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(MAGIC.as_bytes());
    ctx.update(salt);
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();

    // 1,000 rounds, mixing password, salt and the running digest.
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }

    let mut out = String::with_capacity(37);
    out.push_str(MAGIC);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        let v = (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]);
        push_b64(&mut out, v, 4);
    }
    push_b64(&mut out, u32::from(fin[11]), 2);
    out
}

fn push_b64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize] as char);
        v >>= 6;
    }
}

/// Checks `password` against an `$apr1$` hash in constant time.
/// Returns false for anything that is not a well-formed APR1 hash.
pub fn verify(password: &str, stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix(MAGIC) else {
        return false;
    };
    let Some((salt, _)) = rest.split_once('$') else {
        return false;
    };
    let computed = hash_with_salt(password.as_bytes(), salt.as_bytes());
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from `openssl passwd -apr1 -salt SALT PASSWORD`.
    #[test]
    fn matches_openssl_reference_vectors() {
        assert_eq!(
            hash_with_salt(b"password", b"abcdefgh"),
            "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1"
        );
        assert_eq!(
            hash_with_salt(b"correct horse battery staple", b"Zq3./xY9"),
            "$apr1$Zq3./xY9$ouRR3ybQE83PFkrpfGL.W/"
        );
    }

    #[test]
    fn verify_accepts_own_hashes_and_rejects_others() {
        let h = hash("s3cret-Passphrase");
        assert!(h.starts_with("$apr1$") && h.len() == 37, "{h}");
        assert!(verify("s3cret-Passphrase", &h));
        assert!(!verify("s3cret-passphrase", &h));
        assert!(!verify("s3cret-Passphrase", "$1$abc$def"));
        assert!(!verify("x", "$apr1$"));
        assert!(!verify("x", ""));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(hash("same"), hash("same"));
    }
}
