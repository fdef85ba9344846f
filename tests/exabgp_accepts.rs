//! Every attribute form exaprobe accepts, parsed by its types
//! (`src/model/bgp.rs`) and rendered by its encoder, is accepted by a real
//! ExaBGP 4.2.25 and 5.0.15 (`done`, never `error`), and where the attribute
//! survives to the peer, BIRD 2 shows the value the form means: the same
//! value through both versions, which is the point of the canonical
//! rendering (4.2 and 5.0 encode some extended-community forms differently).
//!
//! The test is the API process: ExaBGP's process is `relay.sh`, which joins
//! the process's stdin and stdout to two FIFOs this test holds (as in
//! tests/exabgp_channel.rs). BIRD is RIB-only on loopback (127.0.42.1 <-
//! 127.0.42.2, port 17942); one 198.51.100.N/32 route per form.
//! Ignored: run with `EXAPROBE_EXABGP4`/`EXAPROBE_EXABGP5` set
//! (scripts/install-deps), `cargo test --test exabgp_accepts -- --ignored`.

mod api_process;

use std::thread;
use std::time::{Duration, Instant};

use exaprobe::exabgp::Routed;
use exaprobe::exabgp::encoder;
use exaprobe::model::bgp::{AsPath, Community, ExtCommunity, LargeCommunity, NextHop, Origin, PathId, Prefix};
use exaprobe::model::service::Attributes;

const WAIT: Duration = Duration::from_secs(20);

/// What a form sets, and what BIRD's `show route all` must then contain
/// (`None`: the attribute does not reach the peer, or BIRD does not show it).
struct Form {
    keyword: &'static str,
    text: &'static str,
    bird: Option<&'static str>,
}

const fn form(keyword: &'static str, text: &'static str, bird: Option<&'static str>) -> Form {
    Form { keyword, text, bird }
}

fn forms() -> Vec<Form> {
    let large = ((65000u128 << 64) | (1 << 32) | 2).to_string().leak();
    vec![
        form("community", "65000:100", Some("BGP.community: (65000,100)")),
        form("community", "blackhole", Some("BGP.community: (65535,666)")),
        form("community", "no-peer", Some("BGP.community: (65535,65284)")),
        form("community", "nopeer", Some("BGP.community: (65535,65284)")),
        form("community", "no-export", Some("BGP.community: (65535,65281)")),
        form("community", "no_export", Some("BGP.community: (65535,65281)")),
        form("community", "no-advertise", Some("BGP.community: (65535,65282)")),
        form("community", "no_advertise", Some("BGP.community: (65535,65282)")),
        form("community", "no-export-subconfed", Some("BGP.community: (65535,65283)")),
        form("community", "0xFDE80064", Some("BGP.community: (65000,100)")),
        form("community", "4259840100", Some("BGP.community: (65000,100)")),
        form("extended-community", "target:65000:1", Some("(rt, 65000, 1)")),
        form("extended-community", "65000:1", Some("(rt, 65000, 1)")),
        form("extended-community", "origin:65000:1", Some("(ro, 65000, 1)")),
        form("extended-community", "target:65000:4294967295", Some("(rt, 65000, 4294967295)")),
        form("extended-community", "target:65000:198.51.100.1", Some("(rt, 65000, 3325256705)")),
        form("extended-community", "0x0002fde800000001", Some("(rt, 65000, 1)")),
        form("extended-community", "target:4200000000:7", Some("(rt, 4200000000, 7)")),
        form("extended-community", "origin:4200000000:7", Some("(ro, 4200000000, 7)")),
        form("extended-community", "target:65000L:7", Some("(rt, 65000, 7)")),
        form("extended-community", "target4:65000:7", Some("(rt, 65000, 7)")),
        form("extended-community", "origin4:65000:7", Some("(ro, 65000, 7)")),
        form("extended-community", "target:198.51.100.1:5", Some("(rt, 198.51.100.1, 5)")),
        form("extended-community", "origin:198.51.100.1:5", Some("(ro, 198.51.100.1, 5)")),
        form("extended-community", "redirect:65000:10", Some("(generic, 0x8008fde8, 0xa)")),
        form("extended-community", "redirect-to-nexthop", Some("(generic, 0x8000000, 0x0)")),
        form("extended-community", "l2info:19:0:1500:111", Some("(generic, 0x800a1300, 0x5dc006f)")),
        form("extended-community", "bandwidth:65000:125000000", Some("(unknown 0x4004, 65000, 1290693416)")),
        form("large-community", "65000:1:2", Some("BGP.large_community: (65000, 1, 2)")),
        form("large-community", large, Some("BGP.large_community: (65000, 1, 2)")),
        form("large-community", "4294967295:0:4294967295", Some("(4294967295, 0, 4294967295)")),
        form("as-path", "65010 65020", Some("BGP.as_path: 65010 65020")),
        form("as-path", "[AS65010, 65020]", Some("BGP.as_path: 65010 65020")),
        form("as-path", "1.10 65020", Some("BGP.as_path: 65546 65020")),
        form("as-path", "4200000000", Some("BGP.as_path: 4200000000")),
        form("origin", "igp", Some("BGP.origin: IGP")),
        form("origin", "EGP", Some("BGP.origin: EGP")),
        form("origin", "Incomplete", Some("BGP.origin: Incomplete")),
        form("med", "0", Some("BGP.med: 0")),
        form("med", "4294967295", Some("BGP.med: 4294967295")),
        // eBGP: BIRD ignores a LOCAL_PREF from an external peer.
        form("local-preference", "0", None),
        form("local-preference", "4294967295", None),
        // No ADD-PATH on the session: ExaBGP takes the id and sends none.
        form("path-information", "7", None),
        form("path-information", "0.0.0.7", None),
    ]
}

/// The announce line exaprobe's encoder renders for one form: the text goes
/// through exaprobe's parser first, never to ExaBGP as typed.
fn line(f: &Form, prefix: &Prefix) -> String {
    let mut attrs = Attributes::default();
    let (mut med, mut path_id) = (None, None);
    match f.keyword {
        "community" => attrs.communities = vec![parse::<Community>(f)],
        "extended-community" => attrs.extended_communities = vec![parse::<ExtCommunity>(f)],
        "large-community" => attrs.large_communities = vec![parse::<LargeCommunity>(f)],
        "as-path" => attrs.as_path = Some(parse::<AsPath>(f)),
        "origin" => attrs.origin = Some(parse::<Origin>(f)),
        "med" => med = Some(parse::<u32>(f)),
        "local-preference" => attrs.local_preference = Some(parse::<u32>(f)),
        "path-information" => path_id = Some(parse::<PathId>(f).0),
        k => panic!("no keyword {k}"),
    }
    encoder::announce(&[], prefix, NextHop::Own, &attrs, med, path_id)
}

fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(f: &Form) -> T {
    f.text.parse().unwrap_or_else(|e| panic!("exaprobe refuses {} {:?}: {e}", f.keyword, f.text))
}

use api_process::ApiProcess as Real;

fn accepts(exabgp_env: &str) {
    let Ok(exabgp) = std::env::var(exabgp_env) else {
        panic!("{exabgp_env} is not set: run scripts/install-deps and export what it prints");
    };
    let mut x = Real::start(&exabgp, "accepts", 42, 17942);
    x.pump("the session to come up", |_, r| {
        matches!(r, Routed::Event(exaprobe::exabgp::Incoming::Neighbor(l)) if l.ends_with(" up")).then_some(())
    });
    let forms = forms();
    assert!(forms.len() < 250, "one 198.51.100.N/32 per form");
    let mut refused = Vec::new();
    let mut sent = Vec::new();
    for (i, f) in forms.iter().enumerate() {
        let prefix: Prefix = format!("198.51.100.{}/32", i + 1).parse().unwrap();
        let line = line(f, &prefix);
        let before = x.writer.counters();
        x.writer.send(line.clone(), None, Instant::now()).unwrap();
        x.idle();
        let after = x.writer.counters();
        if after.error != before.error || after.done != before.done + 1 {
            refused.push(format!("{} {:?} -> {line:?}: {after:?}", f.keyword, f.text));
        }
        sent.push((f, prefix, line));
    }
    assert_eq!(refused, Vec::<String>::new(), "{exabgp_env}: forms ExaBGP did not answer `done` to");

    // What BIRD got, once every route is in its table.
    let until = Instant::now() + WAIT;
    let want = forms.len().to_string();
    loop {
        let count = x.birdc(&["show", "route", "count"]);
        if count.contains(&format!("{want} of {want} routes")) {
            break;
        }
        assert!(Instant::now() < until, "BIRD never had all {want} routes: {count}");
        thread::sleep(Duration::from_millis(100));
    }
    let mut wrong = Vec::new();
    for (f, prefix, line) in &sent {
        let Some(expect) = f.bird else { continue };
        let shown = x.birdc(&["show", "route", "all", "for", &prefix.to_string()]);
        if !shown.contains(expect) {
            wrong.push(format!("{} {:?} sent as {line:?}: BIRD lacks {expect:?} in\n{shown}", f.keyword, f.text));
        }
    }
    assert!(wrong.is_empty(), "{exabgp_env}: BIRD shows other values:\n{}", wrong.join("\n"));
}

#[test]
#[ignore = "needs ExaBGP and BIRD: run scripts/test"]
fn every_attribute_form_is_accepted_by_exabgp4() {
    accepts("EXAPROBE_EXABGP4");
}

#[test]
#[ignore = "needs ExaBGP and BIRD: run scripts/test"]
fn every_attribute_form_is_accepted_by_exabgp5() {
    accepts("EXAPROBE_EXABGP5");
}
