//! Tests of the parent module.

use std::time::Duration;

use super::*;
use crate::model::bgp::{Community, parse_list};
use crate::model::service::{Action, Attributes};

fn settings(args: &[&str]) -> Result<Settings, Vec<String>> {
    Args::try_parse_from(std::iter::once("exaprobe").chain(args.iter().copied())).unwrap().settings()
}

#[test]
fn healthcheck_defaults() {
    let s = settings(&["--ip", "198.51.100.1/32", "--cmd", "true"]).unwrap();
    let t = &s.service.timing;
    assert_eq!(
        (t.interval, t.fast_interval, t.timeout),
        (Duration::from_secs(5), Duration::from_secs(1), Duration::from_secs(5))
    );
    assert_eq!((t.rise.get(), t.fall.get()), (3, 3));
    assert_eq!(s.service.up.med, Some(100));
    assert_eq!(s.service.down, Action::Announce(Attributes { med: Some(1000), ..Attributes::default() }));
    assert_eq!(s.service.disabled, Action::Announce(Attributes { med: Some(500), ..Attributes::default() }));
    assert_eq!(s.service.name, "198.51.100.1/32");
    assert_eq!(s.options.ack, AckMode::Wait(Duration::from_secs(2)));
}

#[test]
fn every_error_is_reported_at_once() {
    let errs = settings(&[
        "--ip",
        "198.51.100.1/24",
        "--rise",
        "0",
        "--interval",
        "soon",
        "--community",
        "65000:1\nshutdown",
        "--tcp",
        "example.com:80",
        "--sudo",
    ])
    .unwrap_err();
    let all = errs.join("\n");
    for needle in [
        "--ip: ",
        "host bits",
        "--rise: must be at least 1",
        "--interval: ",
        "--community: ",
        "--tcp: ",
        "--sudo is not supported",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn next_hop_families_are_checked() {
    let e = settings(&["--ip", "2001:db8::1/128", "--next-hop", "198.51.100.254"]).unwrap_err();
    assert!(e[0].contains("--next-hop6"), "{e:?}");
    let e = settings(&["--ip", "198.51.100.1/32", "--next-hop", "2001:db8::1"]).unwrap_err();
    assert!(e[0].contains("--next-hop"), "{e:?}");
    let e = settings(&["--ip", "2001:db8::1/128", "--next-hop6", "198.51.100.1"]).unwrap_err();
    assert!(e[0].contains("IPv4 address"), "{e:?}");
    assert!(
        settings(&["--ip", "2001:db8::1/128", "--next-hop", "198.51.100.254", "--next-hop6", "2001:db8::ff"]).is_ok()
    );
}

#[test]
fn compatibility_flags() {
    let s = settings(&[
        "--ip",
        "198.51.100.0/30",
        "--deaggregate-networks",
        "--start-ip",
        "1",
        "--neighbor",
        "*",
        "--no-syslog",
        "--no-ip-setup",
        "--debounce",
        "--silent",
        "--local-preference",
        "-1",
        "--interval",
        "0.5",
        "--timeout",
        "250ms",
        "--withdraw-on-down",
    ])
    .unwrap();
    let p: Vec<String> = s.service.prefixes.iter().map(ToString::to_string).collect();
    // Every address, network and broadcast too, from the second on.
    assert_eq!(p, ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32", "198.51.100.0/32"]);
    assert!(s.service.neighbors.is_empty());
    assert_eq!(s.service.down, Action::Withdraw);
    assert_eq!(s.service.timing.interval, Duration::from_millis(500));
    assert_eq!(s.log_level, LevelFilter::Warn);
    assert!(settings(&["--ip", "198.51.100.1/32", "--interval", "0"]).unwrap_err()[0].contains("respawn"));
}

#[test]
fn meds_count_down_with_a_negative_increase_and_stop_at_0() {
    let s = settings(&[
        "--ip",
        "198.51.100.1/32",
        "--ip",
        "198.51.100.2/32",
        "--ip",
        "198.51.100.3/32",
        "--increase",
        "-60",
        "--start-ip",
        "4",
    ])
    .unwrap();
    let lines = crate::exabgp::encoder::lines(&s.service, crate::core::fsm::Advert::Up);
    assert_eq!(
        lines,
        [
            "announce route 198.51.100.2/32 next-hop self med 100",
            "announce route 198.51.100.3/32 next-hop self med 40",
            // The healthcheck would write `med -20`, which ExaBGP refuses.
            "announce route 198.51.100.1/32 next-hop self med 0",
        ]
    );
}

#[test]
fn per_state_attributes() {
    let s = settings(&[
        "--ip",
        "198.51.100.1/32",
        "--community",
        "65000:1",
        "--disabled-community",
        "65000:666",
        "--as-path",
        "65001",
        "--down-as-path",
        "65001 65001 65001",
    ])
    .unwrap();
    assert_eq!(s.service.up.communities, parse_list::<Community>("65000:1").unwrap());
    let Action::Announce(down) = &s.service.down else { panic!("down should announce") };
    assert_eq!(down.communities, parse_list::<Community>("65000:666").unwrap());
    assert_eq!(down.as_path.as_ref().unwrap().0, [65001, 65001, 65001]);
    assert_eq!(s.service.up.as_path.as_ref().unwrap().0, [65001]);
}

#[test]
fn config_file_lines_become_flags_before_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hc.conf");
    std::fs::write(&f, "# comment\nip = 198.51.100.1/32\ncmd = curl -sf http://127.0.0.1/\nwithdraw-on-down\nrise=5\n")
        .unwrap();
    let argv: Vec<OsString> =
        ["exaprobe", "-F", f.to_str().unwrap(), "--rise", "2"].iter().map(OsString::from).collect();
    let args = Args::try_parse_from(expand_config(argv).unwrap()).unwrap();
    assert_eq!(args.cmd.as_deref(), Some("curl -sf http://127.0.0.1/"));
    assert!(args.withdraw_on_down);
    assert_eq!(args.rise, 2, "the command line wins");
    std::fs::write(&f, "{\"services\": []}").unwrap();
    let argv: Vec<OsString> = ["exaprobe", "--config", f.to_str().unwrap()].iter().map(OsString::from).collect();
    let expanded = expand_config(argv.clone()).unwrap();
    assert_eq!(
        expanded,
        [OsString::from("exaprobe"), OsString::from(format!("--config={}", f.display()))],
        "a JSON file stays a --config argument"
    );
}
