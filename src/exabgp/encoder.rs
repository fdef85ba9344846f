//! Renders ExaBGP text-API command lines. Pure: a function of the validated
//! service and the advert to assert.
//!
//! Every line is valid for both ExaBGP 4.2 and 5.0:
//! - no selector when no neighbor is named (the command then goes to every
//!   neighbor that lists the process), `neighbor A, neighbor B …` otherwise;
//! - `announce route` / `withdraw route` (4.2 lacks `announce ipv4 unicast`);
//! - `as-path [ … ]` always bracketed (5.0 rejects the bare form);
//! - withdraws carry no next hop: ExaBGP matches withdraws on prefix and path
//!   id only, and 4.2 answers nothing at all to an IPv6 `next-hop self` on an
//!   IPv4 session.
//!
//! Attribute order follows the bundled healthcheck's lines.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::core::fsm::Advert;
use crate::model::bgp::{NextHop, Prefix};
use crate::model::service::{Action, Attributes, Service};

/// The lines that put every prefix of `service` into the `advert` state.
pub fn lines(service: &Service, advert: Advert) -> Vec<String> {
    match service.action(advert) {
        Action::Withdraw => withdraw_all(service),
        Action::Announce(attrs) => service
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let med = attrs.med.map(|m| service.med(m, i));
                announce(&service.neighbors, p, service.next_hop_for(p), &attrs, med, service.path_id)
            })
            .collect(),
    }
}

/// A withdraw line for every prefix of `service`.
pub fn withdraw_all(service: &Service) -> Vec<String> {
    service.prefixes.iter().map(|p| withdraw(&service.neighbors, p, service.path_id)).collect()
}

fn selector(neighbors: &[IpAddr]) -> String {
    let mut s = String::new();
    for (i, n) in neighbors.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}neighbor {n}");
    }
    if !s.is_empty() {
        s.push(' ');
    }
    s
}

/// One `announce route` line.
pub fn announce(
    neighbors: &[IpAddr],
    prefix: &Prefix,
    next_hop: NextHop,
    attrs: &Attributes,
    med: Option<u32>,
    path_id: Option<u32>,
) -> String {
    let mut s = format!("{}announce route {prefix} next-hop {next_hop}", selector(neighbors));
    if let Some(m) = med {
        let _ = write!(s, " med {m}");
    }
    if let Some(lp) = attrs.local_preference {
        let _ = write!(s, " local-preference {lp}");
    }
    if let Some(o) = attrs.origin {
        let _ = write!(s, " origin {o}");
    }
    list(&mut s, "community", &attrs.communities);
    list(&mut s, "extended-community", &attrs.extended_communities);
    list(&mut s, "large-community", &attrs.large_communities);
    if let Some(path) = &attrs.as_path {
        let _ = write!(s, " as-path {path}");
    }
    if let Some(id) = path_id {
        let _ = write!(s, " path-information {id}");
    }
    s
}

/// One `withdraw route` line.
pub fn withdraw(neighbors: &[IpAddr], prefix: &Prefix, path_id: Option<u32>) -> String {
    let mut s = format!("{}withdraw route {prefix}", selector(neighbors));
    if let Some(id) = path_id {
        let _ = write!(s, " path-information {id}");
    }
    s
}

fn list<T: std::fmt::Display>(s: &mut String, keyword: &str, items: &[T]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(s, " {keyword} [");
    for item in items {
        let _ = write!(s, " {item}");
    }
    s.push_str(" ]");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::bgp::parse_list;
    use crate::model::service::Timing;
    use std::num::NonZeroU32;
    use std::time::Duration;

    pub(crate) fn service() -> Service {
        Service {
            name: "web".into(),
            prefixes: vec!["198.51.100.100/32".parse().unwrap(), "2001:db8::100/128".parse().unwrap()],
            next_hop: NextHop::Own,
            next_hop6: Some("2001:db8:ffff::1".parse().unwrap()),
            neighbors: vec![],
            path_id: None,
            med_increase: 1,
            up: Attributes { med: Some(100), ..Attributes::default() },
            degraded: Attributes {
                med: Some(200),
                as_path: Some("65001 65001 65001".parse().unwrap()),
                communities: parse_list("65000:911").unwrap(),
                ..Attributes::default()
            },
            down: Action::Announce(Attributes { med: Some(1000), ..Attributes::default() }),
            disabled: Action::Withdraw,
            checks: vec![],
            require: crate::core::fsm::Require::All,
            disable_files: vec![],
            drain: crate::model::service::DrainPolicy::graceful(&Attributes {
                med: Some(100),
                ..Attributes::default()
            }),
            dampening: None,
            guard: None,
            covering: None,
            watch: Default::default(),
            timing: Timing {
                interval: Duration::from_secs(5),
                fast_interval: Duration::from_secs(1),
                timeout: Duration::from_secs(5),
                rise: NonZeroU32::MIN,
                fall: NonZeroU32::MIN,
                reassert: None,
            },
        }
    }

    #[test]
    fn golden_lines_per_state() {
        let s = service();
        assert_eq!(
            lines(&s, Advert::Up),
            [
                "announce route 198.51.100.100/32 next-hop self med 100",
                "announce route 2001:db8::100/128 next-hop 2001:db8:ffff::1 med 101",
            ]
        );
        assert_eq!(
            lines(&s, Advert::Down),
            [
                "announce route 198.51.100.100/32 next-hop self med 1000",
                "announce route 2001:db8::100/128 next-hop 2001:db8:ffff::1 med 1001",
            ]
        );
        assert_eq!(
            lines(&s, Advert::Disabled),
            ["withdraw route 198.51.100.100/32", "withdraw route 2001:db8::100/128"]
        );
    }

    #[test]
    fn golden_full_attribute_line() {
        // The bundled healthcheck's full-option example (exabgp-api.md §3.5),
        // which exaprobe renders the same way.
        let mut s = service();
        s.prefixes.truncate(1);
        s.next_hop = "198.51.100.254".parse().unwrap();
        s.neighbors = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        s.path_id = Some(7);
        s.up = Attributes {
            med: Some(10),
            local_preference: Some(200),
            origin: None,
            as_path: Some("65000 65001".parse().unwrap()),
            communities: parse_list("65000:1 65000:2").unwrap(),
            extended_communities: parse_list("target:65000:1").unwrap(),
            large_communities: parse_list("65000:1:1").unwrap(),
        };
        assert_eq!(
            lines(&s, Advert::Up),
            ["neighbor 127.0.0.2, neighbor 127.0.0.3 announce route 198.51.100.100/32 next-hop 198.51.100.254 \
              med 10 local-preference 200 community [ 65000:1 65000:2 ] extended-community [ target:65000:1 ] \
              large-community [ 65000:1:1 ] as-path [ 65000 65001 ] path-information 7"]
        );
        assert_eq!(
            withdraw_all(&s),
            ["neighbor 127.0.0.2, neighbor 127.0.0.3 withdraw route 198.51.100.100/32 path-information 7"]
        );
    }

    #[test]
    fn med_increase_saturates() {
        let mut s = service();
        s.up.med = Some(u32::MAX);
        assert!(lines(&s, Advert::Up)[1].ends_with(&format!("med {}", u32::MAX)));
    }
}
