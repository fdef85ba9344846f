//! Knot DNS for the tests: the test zone on a port of 127.0.0.1 of its own,
//! optionally signed by Knot itself (automatic DNSSEC signing).

use std::net::SocketAddr;
use std::path::Path;

use super::{Dig, Server, local_port, tool, zone};

/// Knot serving `example.test` from `dir` with this NSID, signing it
/// itself (automatic DNSSEC signing, keys in `dir`) if `sign`; `None`
/// (said) if knotd or dig is not installed.
pub(crate) fn knot(dir: &Path, nsid: &str, sign: bool) -> Option<Server> {
    let knotd = tool("knotd")?;
    tool("dig")?;
    let port = local_port();
    let d = dir.display();
    std::fs::write(dir.join("example.test.zone"), zone("example.test", 1)).expect("zone");
    let signing = if sign { "    dnssec-signing: on\n" } else { "" };
    let conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    nsid: \"{nsid}\"\n    identity: \"{nsid}\"\n\
         database:\n    storage: \"{d}\"\n\
         log:\n  - target: stderr\n    any: info\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
         zone:\n  - domain: example.test\n{signing}"
    );
    let conf_path = dir.join("knot.conf");
    std::fs::write(&conf_path, conf).expect("knot.conf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Signed, it is ready once the DNSKEY is served.
    let ready = || {
        let dig =
            Dig::run("dig", &["@127.0.0.1", "-p", &port.to_string(), "example.test", "DNSKEY", "+time=1", "+tries=1"]);
        dig.status.as_deref() == Some("NOERROR") && (!sign || !dig.answer.is_empty())
    };
    Some(Server::start("knot", &knotd, &["-c", conf_path.to_str()?], dir.join("knot.log"), addr, ready))
}
