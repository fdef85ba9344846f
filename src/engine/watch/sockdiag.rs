//! Listener watches through the kernel's socket diagnostics (netlink
//! NETLINK_SOCK_DIAG): exaprobe never connects to a listener to watch it.
//!
//! - **Events** (preferred): a netlink socket joined to the socket-destroy
//!   multicast groups (TCP and UDP, IPv4 and IPv6; on Linux 6.18 any user
//!   may join them, tested as uid 65534; older kernels or a security policy
//!   may refuse). The kernel sends one message per socket it destroys;
//!   a message for an unconnected socket on a watched address and port is
//!   confirmed by a dump (another socket, SO_REUSEPORT or a new one, may
//!   still listen there) before the listener counts as gone.
//! - **Polling** (fallback, where the groups cannot be joined, or chosen
//!   with `EXAPROBE_SOCK_DIAG=poll` in the environment): one dump of the
//!   listening sockets every [`POLL_EVERY`] for all listen watches.
//!
//! A dump (SOCK_DIAG_BY_FAMILY, TCP in LISTEN, UDP unconnected) also arms
//! the watches at start and re-checks the ones whose listener is absent.
//!
//! The messages are `struct nlmsghdr` + `struct inet_diag_req_v2` /
//! `struct inet_diag_msg` (linux/inet_diag.h), written and read here as
//! bytes: no unsafe, no bindings crate.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send, setsockopt, socket,
    sockopt,
};
use nix::sys::time::TimeVal;

use crate::model::watch::{Listen, Proto};

/// How often listeners are dumped when the destroy groups cannot be joined.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(100);

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// SKNLGRP_INET_TCP_DESTROY, _UDP, INET6_TCP, INET6_UDP: groups 1 to 4,
/// bits 0 to 3 of the bind mask.
const DESTROY_GROUPS: u32 = 0b1111;
const TCP_LISTEN: u32 = 10;
const TCP_CLOSE: u32 = 7;
const INET_DIAG_PROTOCOL: u16 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// sizeof(struct inet_diag_msg).
const DIAG_MSG_LEN: usize = 72;
/// Most bytes read from one dump: a host with this many listening
/// sockets is beyond what this watch is for (about 100 000 of them).
const DUMP_MAX: usize = 8 << 20;

/// How listeners are watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Destroy notifications, confirmed by dumps.
    Events,
    /// A dump every [`POLL_EVERY`]; why.
    Poll(String),
}

/// A socket the kernel destroyed: its protocol (when the message says) and
/// local address, and whether it had a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Destroyed {
    pub(super) proto: Option<Proto>,
    pub(super) local: SocketAddr,
    pub(super) connected: bool,
}

/// The listening sockets of a dump: (protocol, local address).
pub(super) type Listeners = HashSet<(Proto, SocketAddr)>;

/// The netlink sockets.
pub(super) struct Diag {
    /// Joined to the destroy groups (events mode).
    events: Option<OwnedFd>,
    /// For dumps.
    query: OwnedFd,
    pub(super) mode: Mode,
    seq: u32,
}

fn netlink(nonblock: bool) -> nix::Result<OwnedFd> {
    let flags = if nonblock { SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK } else { SockFlag::SOCK_CLOEXEC };
    socket(AddressFamily::Netlink, SockType::Raw, flags, SockProtocol::NetlinkSockDiag)
}

impl Diag {
    /// The query socket, and the events socket where the groups can be
    /// joined.
    pub(super) fn new() -> Result<Diag, String> {
        let query = netlink(false).map_err(|e| format!("netlink sock_diag socket: {e}"))?;
        // A dump answers within microseconds; this only bounds a stuck one.
        let _ = setsockopt(&query, sockopt::ReceiveTimeout, &TimeVal::new(1, 0));
        if std::env::var("EXAPROBE_SOCK_DIAG").as_deref() == Ok("poll") {
            return Ok(Diag { events: None, query, mode: Mode::Poll("EXAPROBE_SOCK_DIAG=poll".into()), seq: 0 });
        }
        let (events, mode) = match netlink(true).and_then(|fd| {
            bind(fd.as_fd().as_raw_fd_compat(), &NetlinkAddr::new(0, DESTROY_GROUPS))?;
            Ok(fd)
        }) {
            Ok(fd) => {
                // Room for bursts: every socket closed on the host is announced.
                let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
                (Some(only_unconnected(fd)), Mode::Events)
            }
            Err(e) => {
                let why = match e {
                    Errno::EPERM => {
                        "joining the socket-destroy groups: not permitted (CAP_NET_ADMIN may help)".to_string()
                    }
                    e => format!("joining the socket-destroy groups: {e}"),
                };
                (None, Mode::Poll(why))
            }
        };
        Ok(Diag { events, query, mode, seq: 0 })
    }

    /// The events socket, for the epoll set.
    pub(super) fn events_fd(&self) -> Option<BorrowedFd<'_>> {
        self.events.as_ref().map(AsFd::as_fd)
    }

    /// The destroyed sockets announced since the last call; `Err` when
    /// notifications were lost (the caller dumps to resynchronise).
    pub(super) fn read_destroyed(&self) -> Result<Vec<Destroyed>, ()> {
        let Some(fd) = &self.events else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded: at most this many reads per wake-up; the rest waits for
        // the next one (level-triggered).
        for _ in 0..64 {
            match recv(fd.as_fd().as_raw_fd_compat(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(n) => {
                    for (ty, _, payload) in messages(&buf[..n]) {
                        if ty == SOCK_DIAG_BY_FAMILY
                            && let Some(d) = parse_msg(payload)
                        {
                            out.push(d);
                        }
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => break,
                Err(Errno::ENOBUFS) => return Err(()),
                Err(e) => {
                    log::warn!("reading socket-destroy notifications: {e}");
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    /// Listeners are polled from now on (the events socket could not be
    /// put in the epoll set): why.
    pub(super) fn fall_back_to_poll(&mut self, why: String) {
        self.events = None;
        self.mode = Mode::Poll(why);
    }

    /// The listening sockets of these protocols and families. Only the
    /// replies to this dump's own requests count (their `nlmsg_seq`): what
    /// is left of an earlier dump that timed out is read away first and
    /// skipped. A dump larger than [`DUMP_MAX`] is an error (a partial one
    /// would call every listener not in it absent).
    pub(super) fn dump(&mut self, kinds: &HashSet<(Proto, bool)>) -> Result<Listeners, String> {
        let mut all = Listeners::new();
        let fd = self.query.as_fd().as_raw_fd_compat();
        let mut buf = vec![0u8; 64 * 1024];
        // Left over from an earlier dump (bounded: at most DUMP_MAX).
        let mut stale = 0usize;
        while stale <= DUMP_MAX {
            match recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => stale += n,
                _ => break,
            }
        }
        for &(proto, v6) in kinds {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            let req = request(proto, v6, seq);
            send(fd, &req, MsgFlags::empty()).map_err(|e| format!("sock_diag dump: {e}"))?;
            let mut total = 0usize;
            'dump: loop {
                let n = recv(fd, &mut buf, MsgFlags::empty()).map_err(|e| format!("sock_diag dump: {e}"))?;
                total += n;
                if n == 0 {
                    return Err("sock_diag dump: ended without NLMSG_DONE".to_string());
                }
                if total > DUMP_MAX {
                    return Err(format!("sock_diag dump: more than {} MiB of sockets", DUMP_MAX >> 20));
                }
                for (ty, got, payload) in messages(&buf[..n]) {
                    if got != seq {
                        continue;
                    }
                    match ty {
                        NLMSG_DONE => break 'dump,
                        NLMSG_ERROR => {
                            let code = payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                            if code != 0 {
                                return Err(format!("sock_diag dump: {}", Errno::from_raw(-code)));
                            }
                            break 'dump;
                        }
                        SOCK_DIAG_BY_FAMILY => {
                            if let Some(d) = parse_msg(payload).filter(|d| !d.connected) {
                                all.insert((proto, d.local));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(all)
    }
}

/// Attaches a classic BPF filter that drops, in the kernel, the destroy
/// notifications of connected sockets (a destination port): every TCP
/// connection closed on the host is one, exaprobe's own probes included,
/// and none can be a listener. Without this, 1000 services probed every
/// second would wake the watcher a few thousand times a second. A filter
/// that cannot be attached only costs that CPU.
fn only_unconnected(fd: OwnedFd) -> OwnedFd {
    use socket2::SockFilter;
    // The offset of idiag_dport: nlmsghdr (16) + family, state, timer,
    // retrans (4) + idiag_sport (2).
    const DPORT: u32 = 22;
    let program = [
        SockFilter::new(0x28, 0, 0, DPORT),       // ld h [22]
        SockFilter::new(0x15, 0, 1, 0),           // jeq #0, accept, drop
        SockFilter::new(0x06, 0, 0, 0xffff_ffff), // accept: ret #-1
        SockFilter::new(0x06, 0, 0, 0),           // drop: ret #0
    ];
    let socket = socket2::Socket::from(fd);
    if let Err(e) = socket.attach_filter(&program) {
        log::warn!("filtering socket-destroy notifications: {e}");
    }
    socket.into()
}

/// `as_raw_fd` for nix 0.30's functions that take a raw fd.
trait RawCompat {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd;
}

impl RawCompat for BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// A dump request: nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes).
fn request(proto: Proto, v6: bool, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&72u32.to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    let family = if v6 { nix::libc::AF_INET6 } else { nix::libc::AF_INET } as u8;
    let (protocol, states) = match proto {
        Proto::Tcp => (IPPROTO_TCP, 1u32 << TCP_LISTEN),
        Proto::Udp => (IPPROTO_UDP, 1u32 << TCP_CLOSE),
    };
    m.extend_from_slice(&[family, protocol, 0, 0]);
    m.extend_from_slice(&states.to_ne_bytes());
    m.resize(72, 0); // inet_diag_sockid: any
    m
}

/// The netlink messages of a datagram: (type, sequence number, payload).
fn messages(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            break;
        }
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((ty, seq, &buf[16..len]));
        let aligned = (len + 3) & !3;
        buf = buf.get(aligned..).unwrap_or(&[]);
    }
    out
}

/// An inet_diag_msg: family, state, timer, retrans, then the socket id
/// (sport and dport big-endian, src and dst 16 bytes each, interface,
/// cookie), expires, queues, uid, inode; then attributes.
fn parse_msg(p: &[u8]) -> Option<Destroyed> {
    if p.len() < DIAG_MSG_LEN {
        return None;
    }
    let family = i32::from(p[0]);
    let sport = u16::from_be_bytes([p[4], p[5]]);
    let dport = u16::from_be_bytes([p[6], p[7]]);
    let src = &p[8..24];
    let ip = if family == nix::libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]))
    } else if family == nix::libc::AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?))
    } else {
        return None;
    };
    let dst = &p[24..40];
    let connected = dport != 0 || dst.iter().any(|b| *b != 0);
    // Attributes: the destroy notifications carry INET_DIAG_PROTOCOL.
    let mut proto = None;
    let mut attrs = &p[DIAG_MSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if ty == INET_DIAG_PROTOCOL && len >= 5 {
            proto = match attrs[4] {
                IPPROTO_TCP => Some(Proto::Tcp),
                IPPROTO_UDP => Some(Proto::Udp),
                _ => None,
            };
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Some(Destroyed { proto, local: SocketAddr::new(ip, sport), connected })
}

/// Whether a socket of `proto` bound to `local` serves the watched
/// listener: the same address, or the wildcard of its family, or the IPv6
/// wildcard (a dual-stack socket) for an IPv4 listener.
pub(super) fn serves(watch: &Listen, proto: Proto, local: SocketAddr) -> bool {
    if proto != watch.proto || local.port() != watch.addr.port() {
        return false;
    }
    local.ip() == watch.addr.ip() || local.ip().is_unspecified() && (local.is_ipv6() || watch.addr.is_ipv4())
}

/// Whether a dump shows a listener serving `watch`.
pub(super) fn present(watch: &Listen, listeners: &Listeners) -> bool {
    let port = watch.addr.port();
    let mut candidates = vec![watch.addr, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)];
    if watch.addr.is_ipv4() {
        candidates.push(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    candidates.iter().any(|a| listeners.contains(&(watch.proto, *a)))
}

/// The (protocol, IPv6?) pairs to dump for these listeners: an IPv4
/// listener may be served by a dual-stack IPv6 socket.
pub(super) fn kinds<'a>(listens: impl Iterator<Item = &'a Listen>) -> HashSet<(Proto, bool)> {
    let mut k = HashSet::new();
    for l in listens {
        k.insert((l.proto, true));
        if l.addr.is_ipv4() {
            k.insert((l.proto, false));
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, UdpSocket};

    use super::*;
    use crate::model::watch::parse_listen;

    #[test]
    fn a_dump_sees_tcp_and_udp_listeners_and_not_connections() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let mut d = Diag::new().unwrap();
        let t = parse_listen(&tcp.local_addr().unwrap().to_string()).unwrap();
        let u = parse_listen(&format!("udp:{}", udp.local_addr().unwrap())).unwrap();
        let client = parse_listen(&conn.local_addr().unwrap().to_string()).unwrap();
        let all = d.dump(&kinds([t, u, client].iter())).unwrap();
        assert!(present(&t, &all) && present(&u, &all));
        assert!(!present(&client, &all), "a connected socket is no listener");
        drop(tcp);
        let all = d.dump(&kinds([t].iter())).unwrap();
        assert!(!present(&t, &all));
    }

    #[test]
    fn a_dump_skips_the_replies_left_from_an_earlier_one() {
        let mut d = Diag::new().unwrap();
        let fd = d.query.as_fd().as_raw_fd_compat();
        // An earlier dump whose replies were never read (one that timed out).
        send(fd, &request(Proto::Tcp, false, 999), MsgFlags::empty()).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let kinds: HashSet<(Proto, bool)> = [(Proto::Tcp, false)].into();
        let all = d.dump(&kinds).unwrap();
        assert!(all.contains(&(Proto::Tcp, l.local_addr().unwrap())), "the new listener: {all:?}");
        // Nothing is left behind for the next dump either.
        drop(l);
        let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(d.dump(&kinds).unwrap().contains(&(Proto::Tcp, l2.local_addr().unwrap())));
    }

    #[test]
    fn wildcards_serve_specific_addresses() {
        let w = parse_listen("127.0.0.1:53").unwrap();
        assert!(serves(&w, Proto::Tcp, "0.0.0.0:53".parse().unwrap()));
        assert!(serves(&w, Proto::Tcp, "[::]:53".parse().unwrap()));
        assert!(!serves(&w, Proto::Udp, "127.0.0.1:53".parse().unwrap()));
        assert!(!serves(&w, Proto::Tcp, "127.0.0.2:53".parse().unwrap()));
        let w6 = parse_listen("[::1]:53").unwrap();
        assert!(!serves(&w6, Proto::Tcp, "0.0.0.0:53".parse().unwrap()));
    }

    #[test]
    fn destroy_notifications_name_a_closed_listener() {
        let d = Diag::new().unwrap();
        if let Mode::Poll(why) = &d.mode {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root: {why}");
            eprintln!("skipped: {why}");
            return;
        }
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let _ = d.read_destroyed();
        // A connection, closed on both ends first: filtered out in the kernel.
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = tcp.accept().unwrap();
        drop((client, server));
        drop(tcp);
        let fd = d.events_fd().unwrap();
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        let mut seen = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !seen.iter().any(|x: &Destroyed| x.local == addr) && std::time::Instant::now() < until {
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap();
            // Other tests close sockets in parallel: the socket may overflow
            // (the watcher re-dumps then); ours is looked for again.
            if let Ok(batch) = d.read_destroyed() {
                seen.extend(batch);
            }
        }
        let ours = seen.iter().find(|x| x.local == addr).expect("a destroy message for the listener");
        assert!(!ours.connected);
        assert_eq!(ours.proto, Some(Proto::Tcp));
        // The accepted connection had the listener's local address too: the
        // kernel filter drops it (other tests' sockets are not ours to judge).
        let connected: Vec<_> = seen.iter().filter(|x| x.local == addr && x.connected).collect();
        assert!(connected.is_empty(), "connected sockets are filtered: {connected:?}");
    }
}
