//! DNS over UDP and TCP (RFC 1035 §4.2, RFC 7766): one query, the reply
//! that matches it, by a deadline. The TCP framing (a two-byte length) is
//! shared with DNS over TLS.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use domain::base::Message;

use super::wire::matching_reply;
use super::{Exchange, MAX_MESSAGE};
use crate::probe::tcp::remaining;
use crate::probe::{Outcome, io_reason};

/// The local address to bind: `source`, or the unspecified address of the
/// server's family.
fn local_addr(source: Option<IpAddr>, server: SocketAddr) -> SocketAddr {
    let ip = source.unwrap_or(if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    SocketAddr::new(ip, 0)
}

/// One query over UDP; datagrams that are not the reply are skipped until
/// the deadline.
pub(super) fn exchange_udp(
    source: Option<IpAddr>,
    server: SocketAddr,
    query: &Message<Vec<u8>>,
    deadline: Instant,
) -> Exchange {
    let io = |e: std::io::Error| Outcome::down(io_reason(&e));
    // Connected, so only the server's datagrams (its address and port)
    // arrive, and an ICMP port-unreachable reads as `refused`.
    let socket = UdpSocket::bind(local_addr(source, server)).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.send(query.as_slice()).map_err(io)?;
    let mut mismatch = None;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let timed_out = || mismatch.clone().unwrap_or_else(|| Outcome::down("timeout"));
        let Some(left) = remaining(deadline) else { return Err(timed_out()) };
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out());
            }
            Err(e) => return Err(io(e)),
        };
        match matching_reply(buf[..n].to_vec(), query) {
            Ok(reply) => return Ok(reply),
            Err(outcome) => mismatch = Some(outcome),
        }
    }
}

/// One query over a fresh TCP connection.
pub(super) fn exchange_tcp(
    source: Option<IpAddr>,
    server: SocketAddr,
    query: &Message<Vec<u8>>,
    deadline: Instant,
) -> Exchange {
    let io = |e: std::io::Error| Outcome::down(io_reason(&e));
    let mut stream = connect_tcp(source, server, deadline).map_err(io)?;
    let timeouts = |s: &mut TcpStream, left: Duration| {
        s.set_read_timeout(Some(left))?;
        s.set_write_timeout(Some(left))
    };
    let reply = framed_exchange(&mut stream, query, deadline, timeouts).map_err(io)?;
    // A TCP connection carries only our exchange: a mismatch is final.
    matching_reply(reply, query)
}

/// Connects to `server` from `source` (if given) by the deadline.
///
/// Nagle's algorithm is off: over TLS, the query's record follows the
/// handshake's last flight in a second small write, which Nagle would hold
/// back until the server's delayed ACK (40 ms on Linux).
pub(super) fn connect_tcp(source: Option<IpAddr>, server: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
    let stream = connect_tcp_from(source, server, deadline)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn connect_tcp_from(source: Option<IpAddr>, server: SocketAddr, deadline: Instant) -> std::io::Result<TcpStream> {
    let left = remaining(deadline).ok_or(ErrorKind::TimedOut)?;
    let Some(source) = source else {
        return TcpStream::connect_timeout(&server, left);
    };
    // std cannot bind before connecting; socket2 can.
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(server),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&server.into(), left)?;
    Ok(socket.into())
}

/// Writes `query` with its length prefix and reads one length-prefixed
/// reply, giving up at `deadline` even if bytes keep trickling in;
/// `timeouts` sets the stream's read and write timeouts before each step.
pub(super) fn framed_exchange<S: Read + Write>(
    stream: &mut S,
    query: &Message<Vec<u8>>,
    deadline: Instant,
    timeouts: impl Fn(&mut S, Duration) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.as_slice().len()).map_err(|_| ErrorKind::InvalidInput)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query.as_slice());
    timeouts(stream, remaining(deadline).ok_or(ErrorKind::TimedOut)?)?;
    stream.write_all(&framed)?;
    stream.flush()?;
    let mut len = [0u8; 2];
    read_exact_by(stream, &mut len, deadline, &timeouts)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_exact_by(stream, &mut reply, deadline, &timeouts)?;
    Ok(reply)
}

/// Fills `buf` from `stream` by `deadline`.
fn read_exact_by<S: Read>(
    stream: &mut S,
    mut buf: &mut [u8],
    deadline: Instant,
    timeouts: &impl Fn(&mut S, Duration) -> std::io::Result<()>,
) -> std::io::Result<()> {
    while !buf.is_empty() {
        let left = remaining(deadline).ok_or(ErrorKind::TimedOut)?;
        timeouts(stream, left)?;
        match stream.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
