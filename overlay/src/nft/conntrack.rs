//! Forgetting the connections of a backend that is gone: the conntrack
//! entries whose reply comes from its address are deleted in a namespace
//! where a VIP or the routing mesh translated connections to it.
//!
//! A translated connection keeps its backend for as long as its conntrack
//! entry lives (that is what lets a draining task finish its connections).
//! Once the task is gone, an entry left behind keeps sending the client's
//! packets to an address nobody answers: a TCP client hangs until its
//! retransmissions give up (minutes), a UDP flow is black-holed until the
//! entry times out. With the entry deleted, the client's next packet is a
//! new flow to the rules: it is translated to a backend that is there,
//! which answers a TCP segment of an unknown connection with a reset (the
//! client sees `ECONNRESET` at once), or it is refused by the rules when no
//! backend is left; a UDP flow simply moves to a live backend.
//!
//! This is a small ctnetlink client (`NETLINK_NETFILTER`, the interface of
//! the `conntrack` tool) on `netlink-sys`: one dump of the namespace's IPv4
//! table, filtered here on the reply tuple's source address, then one
//! delete per match, by its original tuple (and zone). An entry that ends
//! between the dump and its delete is not an error. The socket is made on a
//! thread switched into the namespace, so nothing else changes namespace.
//! Blocking: call it through `spawn_blocking` from async code.

use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::NftError;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
/// An attribute's type without its "nested" and "byte order" flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

const AF_INET: u8 = libc::AF_INET as u8;
const HEADER: usize = 16;
const NFGENMSG: usize = 4;
const RECV_BUF: usize = 256 * 1024;
/// The longest a read from the kernel may take.
const RECV_TIMEOUT_SECS: libc::time_t = 5;

/// One entry to delete: its original tuple and zone attributes, as the
/// kernel sent them (a delete names the entry by them).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    orig: Vec<u8>,
    zone: Option<Vec<u8>>,
    reply_src: Option<Ipv4Addr>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes in `buf`: (type without flags, payload, whole attribute).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8], &[u8])> {
    let mut out = vec![];
    while buf.len() >= 4 {
        let (Some(len), Some(kind)) = (u16_at(buf, 0), u16_at(buf, 2)) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &buf[4..len], &buf[..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// The payload and whole bytes of the first attribute of type `kind`.
fn find<'a>(attrs: &[(u16, &'a [u8], &'a [u8])], kind: u16) -> Option<(&'a [u8], &'a [u8])> {
    attrs
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, payload, whole)| (*payload, *whole))
}

/// The entry described by one ctnetlink message payload (after the
/// netlink header): nfgenmsg, then attributes.
fn parse_entry(payload: &[u8]) -> Option<Entry> {
    let attrs = attributes(payload.get(NFGENMSG..)?);
    let (_, orig) = find(&attrs, CTA_TUPLE_ORIG)?;
    let zone = find(&attrs, CTA_ZONE).map(|(_, whole)| whole.to_vec());
    let reply_src = find(&attrs, CTA_TUPLE_REPLY).and_then(|(tuple, _)| {
        let (ip, _) = find(&attributes(tuple), CTA_TUPLE_IP)?;
        let (src, _) = find(&attributes(ip), CTA_IP_V4_SRC)?;
        let octets: [u8; 4] = src.try_into().ok()?;
        Some(Ipv4Addr::from(octets))
    });
    Some(Entry {
        orig: orig.to_vec(),
        zone,
        reply_src,
    })
}

/// One netlink message: (type, flags, payload), for each in a datagram.
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    while buf.len() >= HEADER {
        let (Some(len), Some(kind)) = (u32_at(buf, 0), u16_at(buf, 4)) else {
            break;
        };
        let len = len as usize;
        if len < HEADER || len > buf.len() {
            break;
        }
        out.push((kind, &buf[HEADER..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// A ctnetlink request: header, nfgenmsg (IPv4), then `attrs` as given.
fn request(kind: u16, flags: u16, seq: u32, attrs: &[&[u8]]) -> Vec<u8> {
    let body: usize = attrs.iter().map(|a| align4(a.len())).sum();
    let len = HEADER + NFGENMSG + body;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[AF_INET, 0, 0, 0]);
    for a in attrs {
        m.extend_from_slice(a);
        m.resize(align4(m.len()), 0);
    }
    m
}

/// The errno of an NLMSG_ERROR payload (0 for an acknowledgement).
fn error_of(payload: &[u8]) -> i32 {
    u32_at(payload, 0).map(|e| -(e as i32)).unwrap_or(0)
}

fn io_err(context: &str, source: io::Error) -> NftError {
    NftError::Io {
        context: format!("conntrack: {context}"),
        source,
    }
}

fn recv(sock: &Socket, buf: &mut Vec<u8>) -> Result<(), NftError> {
    buf.clear();
    sock.recv(buf, 0)
        .map_err(|e| io_err("reading ctnetlink", e))?;
    Ok(())
}

/// Every IPv4 entry of the socket's namespace.
fn dump(sock: &Socket, buf: &mut Vec<u8>) -> Result<Vec<Entry>, NftError> {
    let req = request(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]);
    sock.send(&req, 0)
        .map_err(|e| io_err("asking for the table", e))?;
    let mut entries = vec![];
    loop {
        recv(sock, buf)?;
        for (kind, payload) in messages(buf) {
            match kind {
                NLMSG_DONE => return Ok(entries),
                NLMSG_ERROR => {
                    let errno = error_of(payload);
                    if errno != 0 {
                        return Err(io_err(
                            "listing the table",
                            io::Error::from_raw_os_error(errno),
                        ));
                    }
                }
                k if k == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW => {
                    entries.extend(parse_entry(payload));
                }
                _ => {}
            }
        }
    }
}

/// Deletes one entry; false when it was already gone.
fn delete(sock: &Socket, buf: &mut Vec<u8>, seq: u32, e: &Entry) -> Result<bool, NftError> {
    let mut attrs: Vec<&[u8]> = vec![&e.orig];
    if let Some(z) = &e.zone {
        attrs.push(z);
    }
    let req = request(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, &attrs);
    sock.send(&req, 0)
        .map_err(|e| io_err("deleting an entry", e))?;
    loop {
        recv(sock, buf)?;
        for (kind, payload) in messages(buf) {
            if kind == NLMSG_ERROR {
                return match error_of(payload) {
                    0 => Ok(true),
                    libc::ENOENT => Ok(false),
                    errno => Err(io_err(
                        "deleting an entry",
                        io::Error::from_raw_os_error(errno),
                    )),
                };
            }
        }
    }
}

/// Deletes, in the namespace at `netns`, every IPv4 conntrack entry whose
/// reply source is one of `backends` (connections translated to them);
/// returns how many went.
pub(crate) fn forget(netns: &Path, backends: &[Ipv4Addr]) -> Result<usize, NftError> {
    if backends.is_empty() {
        return Ok(0);
    }
    let wanted: HashSet<Ipv4Addr> = backends.iter().copied().collect();
    let fd = crate::netns::open(netns).map_err(|source| NftError::Namespace {
        path: netns.to_path_buf(),
        source,
    })?;
    let run = crate::netns::run_in(std::os::fd::AsFd::as_fd(&fd), || {
        let mut sock =
            Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("opening ctnetlink", e))?;
        sock.bind_auto()
            .map_err(|e| io_err("binding ctnetlink", e))?;
        // The kernel answers at once; a stuck read must not hold a thread.
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a valid timeval.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io_err("setting a read timeout", io::Error::last_os_error()));
        }
        let mut buf = Vec::with_capacity(RECV_BUF);
        let doomed: Vec<Entry> = dump(&sock, &mut buf)?
            .into_iter()
            .filter(|e| e.reply_src.is_some_and(|ip| wanted.contains(&ip)))
            .collect();
        let mut gone = 0;
        for (i, e) in doomed.iter().enumerate() {
            if delete(&sock, &mut buf, 2 + i as u32, e)? {
                gone += 1;
            }
        }
        Ok(gone)
    });
    run.map_err(|source| NftError::Namespace {
        path: netns.to_path_buf(),
        source,
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    const NESTED: u16 = 0x8000;

    fn tuple(kind: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(2, &dst)].concat();
        attr(kind | NESTED, &attr(CTA_TUPLE_IP | NESTED, &ip))
    }

    /// A dump message as the kernel sends it.
    fn entry_message(orig_src: [u8; 4], reply_src: [u8; 4], zone: bool) -> Vec<u8> {
        let mut attrs = [
            tuple(CTA_TUPLE_ORIG, orig_src, [10, 0, 0, 2]),
            tuple(CTA_TUPLE_REPLY, reply_src, orig_src),
            attr(7, &[0, 0, 0, 30]), // CTA_TIMEOUT, skipped
        ]
        .concat();
        if zone {
            attrs.extend(attr(CTA_ZONE | 0x4000, &[0, 3]));
        }
        let attrs: &[u8] = &attrs;
        request(IPCTNL_MSG_CT_NEW, 2, 7, &[attrs])
    }

    #[test]
    fn an_entry_is_read_from_a_dump_message() {
        let m = entry_message([10, 0, 0, 9], [10, 0, 0, 5], true);
        let msgs = messages(&m);
        assert_eq!(msgs.len(), 1);
        let e = parse_entry(msgs[0].1).expect("an entry");
        assert_eq!(e.reply_src, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(e.orig, tuple(CTA_TUPLE_ORIG, [10, 0, 0, 9], [10, 0, 0, 2]));
        // The whole attribute, without its padding.
        assert_eq!(
            e.zone.as_deref(),
            Some(&attr(CTA_ZONE | 0x4000, &[0, 3])[..6])
        );
        let plain = parse_entry(messages(&entry_message([1, 2, 3, 4], [5, 6, 7, 8], false))[0].1)
            .expect("an entry");
        assert_eq!(plain.zone, None);
    }

    #[test]
    fn several_messages_in_one_datagram_and_truncation_are_handled() {
        let mut d = entry_message([10, 0, 0, 9], [10, 0, 0, 5], false);
        d.extend(entry_message([10, 0, 0, 8], [10, 0, 0, 6], false));
        let srcs: Vec<_> = messages(&d)
            .iter()
            .filter_map(|(_, p)| parse_entry(p)?.reply_src)
            .collect();
        assert_eq!(
            srcs,
            [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)]
        );
        // A cut datagram yields what is whole, never a panic.
        for cut in 0..d.len() {
            for (_, p) in messages(&d[..cut]) {
                let _ = parse_entry(p);
            }
        }
        assert!(parse_entry(&[]).is_none());
        assert!(parse_entry(&[2, 0, 0, 0, 3, 0]).is_none());
    }

    #[test]
    fn a_delete_names_the_entry_by_its_original_tuple_and_zone() {
        let e = parse_entry(messages(&entry_message([10, 0, 0, 9], [10, 0, 0, 5], true))[0].1)
            .expect("an entry");
        let req = request(
            IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
            4,
            &[&e.orig, e.zone.as_deref().unwrap_or_default()],
        );
        let msgs = messages(&req);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, (1 << 8) | 2);
        assert_eq!(u32_at(&req, 0), Some(req.len() as u32));
        let attrs = attributes(&msgs[0].1[NFGENMSG..]);
        let kinds: Vec<u16> = attrs.iter().map(|a| a.0).collect();
        assert_eq!(kinds, [CTA_TUPLE_ORIG, CTA_ZONE]);
        assert_eq!(msgs[0].1[0], AF_INET);
    }

    #[test]
    fn errors_are_read_from_error_messages() {
        assert_eq!(error_of(&(-libc::ENOENT).to_ne_bytes()), libc::ENOENT);
        assert_eq!(error_of(&0i32.to_ne_bytes()), 0);
        assert_eq!(error_of(&[]), 0);
    }
}
