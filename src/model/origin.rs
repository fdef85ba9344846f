//! Where a raw value came from, and the problems found in it.
//!
//! A service can be written as command-line flags or as a JSON service;
//! both become one [`crate::model::raw::RawSpec`] whose every value carries
//! its [`Origin`], so that the one validator
//! ([`crate::model::validate`]) can say *where* each problem is: `--interval`
//! or `services[0].interval`.

use std::fmt;

/// Where a value was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A command-line flag (`--interval`), or a group of them.
    Flag(&'static str),
    /// A JSON path (`services[2].checks[0].timeout`); empty for the whole file.
    Json(String),
}

impl Origin {
    /// The name of the setting, as the user writes it: the flag, or the last
    /// key of the JSON path (`next_hop6` for `services[0].next_hop6`).
    pub fn key(&self) -> &str {
        match self {
            Origin::Flag(f) => f,
            Origin::Json(p) => {
                let last = p.rsplit('.').next().unwrap_or(p);
                last.split('[').next().unwrap_or(last)
            }
        }
    }

    /// A JSON origin one key further down (`services[0]` + `timeout`); a
    /// flag stays the flag.
    pub fn join(&self, key: &str) -> Origin {
        match self {
            Origin::Flag(f) => Origin::Flag(f),
            Origin::Json(p) if p.is_empty() => Origin::Json(key.to_string()),
            Origin::Json(p) => Origin::Json(format!("{p}.{key}")),
        }
    }

    /// A JSON origin one list item further down (`prefixes` + 2); a flag
    /// stays the flag.
    pub fn index(&self, i: usize) -> Origin {
        match self {
            Origin::Flag(f) => Origin::Flag(f),
            Origin::Json(p) => Origin::Json(format!("{p}[{i}]")),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Json(path) => f.write_str(path),
        }
    }
}

/// A raw value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At<T> {
    /// The value as written (a string, mostly: parsed by the validator).
    pub value: T,
    /// Where.
    pub origin: Origin,
}

impl<T> At<T> {
    /// A value at an origin.
    pub fn new(value: T, origin: Origin) -> Self {
        At { value, origin }
    }
}

/// A setting that may be absent; the origin is where it is (or would be)
/// written, so that a rule about a missing setting can name it.
pub type Field<T> = At<Option<T>>;

impl<T> At<Option<T>> {
    /// An absent setting that would be written at `origin`.
    pub fn absent(origin: Origin) -> Self {
        At { value: None, origin }
    }

    /// A setting given at `origin`.
    pub fn given(value: T, origin: Origin) -> Self {
        At { value: Some(value), origin }
    }
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The service is refused.
    Error,
    /// The service works, but probably not as meant.
    Warning,
}

/// One problem found by the validator, at its origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub origin: Origin,
    /// What is wrong, and how to fix it when that is not obvious.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `--interval: must be more than 0`, `services[0].interval: must be more than 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Json(p) if p.is_empty() => f.write_str(&self.message),
            o => write!(f, "{o}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_their_setting() {
        let svc = Origin::Json("services[0]".into());
        assert_eq!(svc.join("checks").index(2).join("timeout").to_string(), "services[0].checks[2].timeout");
        assert_eq!(Origin::Json("services[0].next_hop6".into()).key(), "next_hop6");
        assert_eq!(Origin::Json("defaults.attributes.communities[1]".into()).key(), "communities");
        assert_eq!(Origin::Flag("--next-hop6").join("x").index(3), Origin::Flag("--next-hop6"));
        let p =
            Problem { severity: Severity::Error, origin: Origin::Flag("--rise"), message: "must be at least 1".into() };
        assert_eq!(p.to_string(), "--rise: must be at least 1");
    }
}
