//! Mid-stream resume: a committed stream whose upstream breaks continues,
//! as the same client stream, from the next route.
//!
//! The fallback is asked to continue the partial answer: the text the
//! client has so far goes as a trailing assistant message ("prefill"). What
//! the fallback sends is spliced in ([`Splicer`]) so that the client sees
//! each piece of text once:
//!
//! - it **continues**: its text is passed on, less an overlap it repeats
//!   (the longest end of the text sent, [`MIN_OVERLAP`] bytes or more, that
//!   its first text starts with);
//! - it **restarts** the answer (it ignored the prefill): what it repeats is
//!   dropped while it matches the text sent; if it says something else
//!   before catching up, the two answers cannot be joined and the stream
//!   ends with an error.
//!
//! When resume is not tried, and why, is the relay's business
//! ([`crate::api::stream`]); the rules are in docs/GATEWAY.md.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::provider::{upstream_body_with, Provider, Streamed};
use super::routing::Route;
use crate::api::json;
use crate::Gateway;

/// The most of the fallback's text held back while it could still be a
/// repeat of the text sent (held only while the sent text contains it, so
/// a plain continuation passes at once).
const HOLD: usize = 64;

/// The shortest repeat taken for an overlap: shorter ones are as likely a
/// coincidence ("the " after "… on the ") as a repeat.
pub const MIN_OVERLAP: usize = 8;

/// The longest overlap looked for.
const MAX_OVERLAP: usize = 256;

/// A fallback whose text starts with this many bytes of the answer sent
/// (or all of it, if shorter) is taken to restart the answer.
const RESTART_PREFIX: usize = 16;

/// What a committed stream may fall back to.
pub struct Plan {
    /// The routes after the one serving, in chain order.
    routes: std::vec::IntoIter<(Arc<Provider>, String)>,
    /// The client's request body, to rebuild each continuation from.
    raw: Bytes,
    /// How the serving leg was streamed; each continuation is the same.
    stream: Streamed,
    /// How long one resume may wait for the fallback's first content,
    /// across every route it tries (the request's deadline, afresh: it
    /// bounds waiting, and this is a new wait).
    pub wait: Duration,
}

impl Plan {
    /// The plan for a stream served by `serving`, one of `chain`.
    pub fn new(
        gw: &Gateway,
        chain: &[Route],
        serving: &Route,
        raw: Bytes,
        stream: Streamed,
    ) -> Plan {
        let after = chain
            .iter()
            .position(|r| std::ptr::eq(r, serving))
            .map_or(chain.len(), |i| i + 1);
        let routes: Vec<_> = chain[after..]
            .iter()
            .filter(|r| r.provider != serving.provider || r.model != serving.model)
            .filter_map(|r| Some((gw.provider(&r.provider)?.clone(), r.model.clone())))
            .collect();
        Plan {
            routes: routes.into_iter(),
            raw,
            stream,
            wait: gw.cfg.request_timeout,
        }
    }

    /// Whether any route is left to resume on.
    pub fn has_routes(&self) -> bool {
        self.routes.len() > 0
    }

    /// The next route to resume on: its provider and model.
    pub fn next_route(&mut self) -> Option<(Arc<Provider>, String)> {
        self.routes.next()
    }

    /// The request for `model` that asks to continue `so_far`.
    pub fn continuation(&self, model: &str, so_far: &str) -> Option<Bytes> {
        let fields = json::parse_fields(&self.raw).ok()?;
        continuation_body(&fields, model, self.stream, so_far)
    }
}

/// The client's request with `so_far` appended as an assistant message,
/// for `model`, streamed.
fn continuation_body(
    client: &json::Fields<'_>,
    model: &str,
    stream: Streamed,
    so_far: &str,
) -> Option<Bytes> {
    let messages = client.get("messages")?.get().trim_end();
    let open = messages.strip_suffix(']')?.trim_end();
    let prefill = serde_json::json!({"role": "assistant", "content": so_far});
    let mut spliced = String::with_capacity(open.len() + so_far.len() + 48);
    spliced.push_str(open);
    if !open.ends_with('[') {
        spliced.push(',');
    }
    spliced.push_str(&prefill.to_string());
    spliced.push(']');
    Some(upstream_body_with(client, model, stream, Some(&spliced)))
}

/// Whether a 400 from a fallback says it does not take a trailing
/// assistant message.
pub fn rejects_prefill(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prefill")
        || (m.contains("assistant")
            && (m.contains("last") || m.contains("final") || m.contains("end with")))
}

/// The fallback restarted the answer and then said something else.
#[derive(Debug, PartialEq, Eq)]
pub struct Diverged;

enum Mode {
    /// Holding text until it is clear whether the fallback continues.
    Deciding,
    /// It restarted: dropping what it repeats (`at` bytes of it so far).
    Replaying { at: usize },
    /// Passing text on.
    Passing,
}

/// Joins a fallback's text onto the text the client already has.
pub struct Splicer {
    sent: String,
    held: String,
    mode: Mode,
}

impl Splicer {
    /// A splicer for a client that has already received `sent`.
    pub fn new(sent: &str) -> Splicer {
        Splicer {
            sent: sent.to_string(),
            held: String::new(),
            mode: Mode::Deciding,
        }
    }

    /// Takes the fallback's next text; returns what to send now (maybe
    /// nothing yet).
    pub fn feed(&mut self, text: &str) -> Result<String, Diverged> {
        match self.mode {
            Mode::Passing => Ok(text.to_string()),
            Mode::Replaying { at } => self.replay(at, text),
            Mode::Deciding => {
                self.held.push_str(text);
                if self.held.len() < HOLD && self.sent.contains(self.held.as_str()) {
                    return Ok(String::new());
                }
                self.decide()
            }
        }
    }

    /// The fallback's text is over: what is still held.
    pub fn flush(&mut self) -> Result<String, Diverged> {
        let text = match self.mode {
            Mode::Deciding => self.decide()?,
            _ => String::new(),
        };
        match self.mode {
            // It restarted and stopped before catching up.
            Mode::Replaying { at } if at < self.sent.len() => Err(Diverged),
            _ => Ok(text),
        }
    }

    fn decide(&mut self) -> Result<String, Diverged> {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return Ok(held);
        }
        let common = common_prefix(&held, &self.sent);
        if common > 0 && common >= RESTART_PREFIX.min(self.sent.len()).min(held.len()) {
            self.mode = Mode::Replaying { at: 0 };
            return self.replay(0, &held);
        }
        self.mode = Mode::Passing;
        let longest = held.len().min(self.sent.len()).min(MAX_OVERLAP);
        let overlap = (MIN_OVERLAP..=longest)
            .rev()
            .find(|&k| held.is_char_boundary(k) && self.sent.ends_with(&held[..k]))
            .unwrap_or(0);
        Ok(held[overlap..].to_string())
    }

    /// Drops what `text` repeats of the sent text from byte `at` on.
    fn replay(&mut self, at: usize, text: &str) -> Result<String, Diverged> {
        let rest = &self.sent[at..];
        let common = common_prefix(text, rest);
        if common == rest.len() {
            self.mode = Mode::Passing;
            return Ok(text[common..].to_string());
        }
        if common == text.len() {
            self.mode = Mode::Replaying { at: at + common };
            return Ok(String::new());
        }
        Err(Diverged)
    }
}

/// The length in bytes of the longest common prefix, on a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT: &str = "The quick brown fox jumps over the lazy dog";

    /// Feeds `pieces` as the fallback's text and returns what the client
    /// gets after `SENT`.
    fn splice(pieces: &[&str]) -> Result<String, Diverged> {
        let mut s = Splicer::new(SENT);
        let mut out = String::new();
        for p in pieces {
            out += &s.feed(p)?;
        }
        out += &s.flush()?;
        Ok(out)
    }

    #[test]
    fn a_continuation_passes_whole() {
        assert_eq!(
            splice(&[", and ", "then it ", "naps."]).unwrap(),
            ", and then it naps."
        );
    }

    #[test]
    fn a_continuation_is_not_held_back() {
        let mut s = Splicer::new(SENT);
        // Not in the text sent: it cannot be a repeat, so it goes at once.
        assert_eq!(s.feed(", and").unwrap(), ", and");
        assert_eq!(s.feed(" then").unwrap(), " then");
        // A piece the text sent contains is held until it is clear.
        let mut s = Splicer::new(SENT);
        assert_eq!(s.feed(" the lazy").unwrap(), "");
        assert_eq!(s.feed(" dog, and").unwrap(), ", and");
    }

    #[test]
    fn a_repeated_end_is_dropped() {
        assert_eq!(
            splice(&[" the lazy dog", ", and then it naps."]).unwrap(),
            ", and then it naps."
        );
        // A short coincidence is kept.
        assert_eq!(splice(&[" dog."]).unwrap(), " dog.");
    }

    #[test]
    fn a_restart_is_dropped_until_it_catches_up() {
        let text = format!("{SENT}, and then it naps.");
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        assert_eq!(splice(&pieces).unwrap(), ", and then it naps.");
    }

    #[test]
    fn a_restart_that_says_something_else_cannot_be_joined() {
        assert_eq!(
            splice(&[
                "The quick brown fox ",
                "sleeps all day long, every day of the week"
            ]),
            Err(Diverged)
        );
        // Or one that stops short of what was sent.
        assert_eq!(splice(&["The quick brown"]), Err(Diverged));
    }

    #[test]
    fn text_is_cut_only_on_character_boundaries() {
        let mut s = Splicer::new("prix: 5 €, très cher ");
        let out = s.feed("très cher — ").unwrap() + &s.flush().unwrap();
        assert_eq!(out, "— ");
    }

    #[test]
    fn the_continuation_carries_the_partial_answer_last() {
        let raw = br#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.2,"fallbacks":["b/y"]}"#;
        let fields = json::parse_fields(raw).unwrap();
        let body = continuation_body(&fields, "m2", Streamed::ForClient, "Hel\"lo").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "m2");
        assert_eq!(v["stream"], true);
        assert!(v.get("stream_options").is_none());
        let assembled = continuation_body(&fields, "m2", Streamed::ToAssemble, "x").unwrap();
        let a: serde_json::Value = serde_json::from_slice(&assembled).unwrap();
        assert_eq!(a["stream_options"]["include_usage"], true, "{a}");
        assert_eq!(v["temperature"], 0.2);
        assert!(v.get("fallbacks").is_none());
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            serde_json::json!({"role": "assistant", "content": "Hel\"lo"})
        );
    }

    #[test]
    fn prefill_refusals_are_recognised() {
        for m in [
            "This model does not support assistant message prefill.",
            "The final message must be a user message, not assistant",
            "conversation must end with a user message; last message role is assistant",
        ] {
            assert!(rejects_prefill(m), "{m}");
        }
        assert!(!rejects_prefill("max_tokens must be an integer"));
    }
}
