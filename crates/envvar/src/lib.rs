//! Settings read from the environment, parsed one way everywhere (moltgate's
//! config, moltguard's switches, the REST mirror's query strings).
//!
//! A boolean is one of `1 true yes on` or `0 false no off` (any case,
//! spaces trimmed); an empty value is unset; anything else is an error that
//! names the variable, never a silent default: `SECURITY_FIREWALL=of` must
//! not quietly turn the firewall off, nor leave it on unremarked.

use std::str::FromStr;

/// `v` as the boolean the variable `var` means.
pub fn parse_bool(var: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{var}={v:?} is not a boolean (true/false, on/off, yes/no, 1/0)"
        )),
    }
}

/// The boolean variable `var` of this process, if set.
pub fn bool_var(var: &str) -> Result<Option<bool>, String> {
    value(var).map(|v| parse_bool(var, &v)).transpose()
}

/// The number in variable `var` of this process, if set.
pub fn number_var<T: FromStr>(var: &str) -> Result<Option<T>, String> {
    value(var)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{var}={v:?} is not a number"))
        })
        .transpose()
}

/// A set, non-empty value.
fn value(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_take_the_documented_words_and_nothing_else() {
        for on in ["1", "true", "YES", " on "] {
            assert_eq!(parse_bool("X", on), Ok(true), "{on}");
        }
        for off in ["0", "False", "no", "OFF"] {
            assert_eq!(parse_bool("X", off), Ok(false), "{off}");
        }
        for bad in ["of", "2", "enabled", ""] {
            let e = parse_bool("SECURITY_FIREWALL", bad).unwrap_err();
            assert!(e.starts_with("SECURITY_FIREWALL="), "{e}");
        }
    }

    #[test]
    fn unset_and_empty_are_none_and_numbers_are_checked() {
        // Names no other test sets.
        std::env::remove_var("MOLTGUARD_ENVVAR_TEST_UNSET");
        assert_eq!(bool_var("MOLTGUARD_ENVVAR_TEST_UNSET"), Ok(None));
        std::env::set_var("MOLTGUARD_ENVVAR_TEST_NUM", "x4");
        let e = number_var::<usize>("MOLTGUARD_ENVVAR_TEST_NUM").unwrap_err();
        assert!(e.contains("MOLTGUARD_ENVVAR_TEST_NUM"), "{e}");
        std::env::set_var("MOLTGUARD_ENVVAR_TEST_NUM", " 4 ");
        assert_eq!(
            number_var::<usize>("MOLTGUARD_ENVVAR_TEST_NUM"),
            Ok(Some(4))
        );
        std::env::set_var("MOLTGUARD_ENVVAR_TEST_NUM", "");
        assert_eq!(number_var::<usize>("MOLTGUARD_ENVVAR_TEST_NUM"), Ok(None));
    }
}
