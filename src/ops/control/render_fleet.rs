//! The fleet guard's lines in `exaprobe status`: the store's state on top,
//! and under each guarded service whether it is held, with the count.

use std::fmt::Write as _;

use super::proto::{FleetStatus, GuardStatus};

/// The store line: connected, or why every service decides locally.
pub(super) fn store(out: &mut String, f: &FleetStatus) {
    if f.connected {
        let _ = writeln!(out, "fleet store: connected ({})", f.detail);
    } else {
        let _ = writeln!(out, "fleet store: NOT connected ({}): every service decides locally", f.detail);
    }
}

/// A guarded service's line.
pub(super) fn guard(out: &mut String, g: &GuardStatus) {
    let count = match (g.others_announcing, g.sites) {
        (Some(o), Some(s)) => format!("{o} other(s) of {s} sites announcing"),
        _ => "no count yet".to_string(),
    };
    let _ = if g.held {
        writeln!(out, "  fleet: HELD: withdrawing would leave {count}; min_sites {}", g.min_sites)
    } else if g.asking {
        writeln!(out, "  fleet: asking the store before withdrawing (min_sites {})", g.min_sites)
    } else {
        writeln!(out, "  fleet: guarded, min_sites {}", g.min_sites)
    };
    if let Some(why) = &g.local {
        let _ = writeln!(out, "  fleet: last withdraw decided locally: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_shows_the_count_and_a_lost_store_says_local() {
        let mut out = String::new();
        store(&mut out, &FleetStatus { connected: false, detail: "lease lost".into() });
        let g = GuardStatus {
            min_sites: 1,
            held: true,
            asking: false,
            others_announcing: Some(0),
            sites: Some(3),
            local: None,
        };
        guard(&mut out, &g);
        assert_eq!(
            out,
            "fleet store: NOT connected (lease lost): every service decides locally\n  fleet: HELD: withdrawing would \
             leave 0 other(s) of 3 sites announcing; min_sites 1\n"
        );
    }
}
