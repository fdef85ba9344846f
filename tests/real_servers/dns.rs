//! What the DNS servers of the tests share: the test zone they serve and
//! the check that a server answers.

use std::net::SocketAddr;

use super::Dig;

/// True once a DNS server at `addr` answers a query over UDP (any rcode).
pub(crate) fn answers(addr: SocketAddr, name: &str) -> bool {
    Dig::run("dig", &[&format!("@{}", addr.ip()), "-p", &addr.port().to_string(), name, "+time=1", "+tries=1"])
        .status
        .is_some()
}

/// A zone file for `origin` with a SOA, an NS, `www` A 192.0.2.1, and
/// `big`: TXT records of 1200 bytes in all (over UDP's 512 without EDNS,
/// within dig's 1232 with it).
pub(crate) fn zone(origin: &str, serial: u32) -> String {
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns1 hostmaster {serial} 3600 900 604800 300\n@ NS ns1\n\
         ns1 A 127.0.0.1\nwww A 192.0.2.1\n"
    );
    for i in 0..12 {
        z.push_str(&format!("big TXT \"{i:02}{}\"\n", "x".repeat(78)));
    }
    z
}
