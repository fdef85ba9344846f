//! TCP probe: the service is healthy when a TCP connection to it succeeds
//! within the timeout.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::Duration;

use super::{Outcome, io_reason};

/// Connects to one address. `localhost:PORT` is accepted and means
/// `127.0.0.1:PORT`; other host names are refused at parse time, because a
/// name lookup has no timeout and a probe must not hang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    /// Where to connect.
    pub address: SocketAddr,
}

impl FromStr for TcpProbe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(port) = s.strip_prefix("localhost:") {
            let port: u16 = port.parse().map_err(|_| format!("invalid port in {s:?}"))?;
            return Ok(TcpProbe { address: SocketAddr::from(([127, 0, 0, 1], port)) });
        }
        s.parse::<SocketAddr>().map(|address| TcpProbe { address }).map_err(|_| {
            format!("{s:?} is not IP:PORT (IPv6 as [ADDR]:PORT; host names are not resolved)")
        })
    }
}

impl fmt::Display for TcpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)
    }
}

impl TcpProbe {
    /// Connects once; healthy if the handshake completes within `timeout`.
    pub fn run(&self, timeout: Duration) -> Outcome {
        // connect_timeout panics on a zero duration.
        let timeout = timeout.max(Duration::from_millis(1));
        match TcpStream::connect_timeout(&self.address, timeout) {
            Ok(_) => Outcome::healthy("connected"),
            Err(e) => Outcome::down(io_reason(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Health;
    use std::net::TcpListener;

    #[test]
    fn parses_addresses() {
        assert_eq!("127.0.0.1:80".parse::<TcpProbe>().unwrap().address.port(), 80);
        assert!("[::1]:53".parse::<TcpProbe>().unwrap().address.is_ipv6());
        assert_eq!("localhost:8080".parse::<TcpProbe>().unwrap().to_string(), "127.0.0.1:8080");
        assert!("example.com:80".parse::<TcpProbe>().is_err());
        assert!("127.0.0.1".parse::<TcpProbe>().is_err());
    }

    #[test]
    fn connects_to_a_listener_and_reports_refused_when_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let probe = TcpProbe { address: listener.local_addr().unwrap() };
        assert_eq!(probe.run(Duration::from_secs(2)).health, Health::Healthy);
        drop(listener);
        let outcome = probe.run(Duration::from_secs(2));
        assert_eq!(outcome, Outcome::down("refused"));
    }
}
