//! The route table: what exaprobe last told ExaBGP about each route.
//!
//! A route is identified by its withdraw line (neighbor selector, prefix and
//! path id: what ExaBGP matches a withdraw on). Every line the engine writes
//! goes through [`Routes::want`], which compares the wanted state with the
//! last one sent and returns the line to write, if any. Because the table,
//! not the order of events, decides what is written:
//! - a reload that moves a prefix from one service to another computes the
//!   whole wanted table first, so a prefix still wanted announced is never
//!   withdrawn by its old owner's removal, in whatever order the services are
//!   listed;
//! - a final flush withdraws exactly the routes that may be announced: every
//!   route last sent announced, and every route of a configured service that
//!   was never told (a previous instance, killed, may have announced it:
//!   crash safety).

use std::collections::HashMap;

/// What was last sent for a route.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sent {
    /// This announce line.
    Announced(String),
    /// A withdraw.
    Withdrawn,
}

/// The state one route should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// Announced with this line.
    Announce(String),
    /// Withdrawn.
    Withdraw,
}

/// The table, keyed by withdraw line. A route missing from it was never
/// told to ExaBGP by this process: its state in ExaBGP is unknown.
#[derive(Debug, Default)]
pub struct Routes {
    sent: HashMap<String, Sent>,
}

impl Routes {
    /// Records that `key` should be in state `want`; returns the line to
    /// write when that differs from what was last sent (or nothing was).
    pub fn want(&mut self, key: &str, want: Want) -> Option<String> {
        let new = match &want {
            Want::Announce(line) => Sent::Announced(line.clone()),
            Want::Withdraw => Sent::Withdrawn,
        };
        if self.sent.get(key) == Some(&new) {
            return None;
        }
        self.sent.insert(key.to_string(), new);
        Some(match want {
            Want::Announce(line) => line,
            Want::Withdraw => key.to_string(),
        })
    }

    /// The announce line last sent for `key`, if it is announced.
    pub fn announced(&self, key: &str) -> Option<&str> {
        match self.sent.get(key) {
            Some(Sent::Announced(line)) => Some(line),
            _ => None,
        }
    }

    /// The line last sent for `key`: its announce line, or its withdraw
    /// line (the key itself); `None` when nothing was sent.
    pub fn last_line<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        match self.sent.get(key)? {
            Sent::Announced(line) => Some(line),
            Sent::Withdrawn => Some(key),
        }
    }

    /// True when `key` may be announced in ExaBGP: sent announced, or never
    /// told.
    pub fn may_be_announced(&self, key: &str) -> bool {
        !matches!(self.sent.get(key), Some(Sent::Withdrawn))
    }

    /// Every route sent announced, as withdraw lines.
    pub fn all_announced(&self) -> impl Iterator<Item = &str> {
        self.sent.iter().filter(|(_, s)| matches!(s, Sent::Announced(_))).map(|(k, _)| k.as_str())
    }

    /// Forgets withdrawn routes that no service owns any more, so the table
    /// stays bounded by the configured routes across reloads.
    pub fn retain_withdrawn(&mut self, owned: impl Fn(&str) -> bool) {
        self.sent.retain(|k, s| matches!(s, Sent::Announced(_)) || owned(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_changes_and_the_first_withdraw() {
        let mut r = Routes::default();
        let k = "withdraw route 198.51.100.1/32";
        assert!(r.may_be_announced(k), "never told: unknown");
        assert_eq!(r.want(k, Want::Withdraw).as_deref(), Some(k), "first withdraw always written");
        assert_eq!(r.want(k, Want::Withdraw), None);
        assert!(!r.may_be_announced(k));
        let a = "announce route 198.51.100.1/32 next-hop self".to_string();
        assert_eq!(r.want(k, Want::Announce(a.clone())), Some(a.clone()));
        assert_eq!(r.want(k, Want::Announce(a.clone())), None);
        assert_eq!(r.announced(k), Some(a.as_str()));
        assert_eq!(r.all_announced().collect::<Vec<_>>(), [k]);
    }
}
