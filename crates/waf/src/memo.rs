//! A per-thread memory of field values that matched no rule.
//!
//! An API client sends the same few values on every request: its `Host`,
//! `Content-Type` and `Authorization` headers, the model name, the message
//! roles, the path. Matching a field is a pure function of the firewall,
//! the field's location bits and its canonical text (the other forms are
//! derived from that text), so a value once found clean is clean the next
//! time too, and scanning it again is wasted work.
//!
//! Only clean results are remembered: a value that matched anything is
//! always matched again, so its incident carries the full details. The
//! memory is per thread (no locks on the serving path), bounded in entries
//! and value length, and cleared when it fills up or when another firewall
//! (another configuration) asks. Values an attacker varies simply miss.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries kept per thread before the memory is cleared.
const MAX_ENTRIES: usize = 512;
/// Longer values are not remembered (the usual ones are short).
const MAX_TEXT: usize = 256;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A distinct id for each compiled firewall, so one configuration's
/// results never answer for another's.
pub(crate) fn new_firewall_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Clean {
    firewall: u64,
    /// Canonical text -> the location bit sets it was clean for.
    texts: HashMap<Box<str>, Vec<u16>>,
}

thread_local! {
    static CLEAN: RefCell<Clean> = RefCell::default();
}

/// Whether `text` at `loc` is known to match no rule of `firewall`.
pub(crate) fn is_clean(firewall: u64, loc: u16, text: &str) -> bool {
    CLEAN.with(|c| {
        let c = c.borrow();
        c.firewall == firewall && c.texts.get(text).is_some_and(|locs| locs.contains(&loc))
    })
}

/// Records that `text` at `loc` matched no rule of `firewall`.
pub(crate) fn remember_clean(firewall: u64, loc: u16, text: &str) {
    if text.len() > MAX_TEXT {
        return;
    }
    CLEAN.with(|c| {
        let mut c = c.borrow_mut();
        if c.firewall != firewall {
            c.texts.clear();
            c.firewall = firewall;
        }
        if let Some(locs) = c.texts.get_mut(text) {
            if !locs.contains(&loc) {
                locs.push(loc);
            }
            return;
        }
        if c.texts.len() >= MAX_ENTRIES {
            c.texts.clear();
        }
        c.texts.insert(text.into(), vec![loc]);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_firewall_and_location() {
        let (a, b) = (new_firewall_id(), new_firewall_id());
        assert!(!is_clean(a, 1, "application/json"));
        remember_clean(a, 1, "application/json");
        assert!(is_clean(a, 1, "application/json"));
        assert!(!is_clean(a, 2, "application/json"), "another location");
        assert!(!is_clean(b, 1, "application/json"), "another firewall");
        remember_clean(b, 1, "x");
        assert!(
            !is_clean(a, 1, "application/json"),
            "cleared for the other firewall"
        );
    }

    #[test]
    fn is_bounded() {
        let fw = new_firewall_id();
        remember_clean(fw, 1, &"a".repeat(MAX_TEXT + 1));
        assert!(!is_clean(fw, 1, &"a".repeat(MAX_TEXT + 1)));
        for i in 0..MAX_ENTRIES * 2 {
            remember_clean(fw, 1, &i.to_string());
        }
        CLEAN.with(|c| assert!(c.borrow().texts.len() <= MAX_ENTRIES));
    }
}
