//! A raw packet capture for the tests: an `AF_PACKET` socket bound to one
//! interface of a namespace, collecting every frame (both directions) on a
//! thread until stopped; plus byte-level probes of the frames.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// Frames seen on one interface.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    /// Start capturing on `dev` in the namespace at `ns`; returns once the
    /// socket is bound (frames from then on are seen).
    pub fn start(ns: &Path, dev: &str) -> Capture {
        let file = std::fs::File::open(ns).unwrap_or_else(|e| panic!("open {ns:?}: {e}"));
        let dev = std::ffi::CString::new(dev).expect("device name");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread = std::thread::spawn(move || {
            let fd = match open(&file, &dev) {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Vec::new();
                }
            };
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::SeqCst) {
                // SAFETY: reading into a buffer we own, of the length given.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 {
                    frames.push(buf[..n as usize].to_vec());
                }
            }
            // SAFETY: closing the socket opened above, once.
            unsafe { libc::close(fd) };
            frames
        });
        ready_rx
            .recv()
            .expect("capture thread died")
            .unwrap_or_else(|e| panic!("capture: {e}"));
        Capture {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop and return the frames (Ethernet headers included).
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("capture thread panicked")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(ns: &std::fs::File, dev: &std::ffi::CStr) -> Result<i32, String> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns: {e}"))?;
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain syscalls on values we own; results are checked.
    unsafe {
        let index = libc::if_nametoindex(dev.as_ptr());
        if index == 0 {
            return Err(format!("no interface {dev:?}"));
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        if libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(format!("bind: {}", std::io::Error::last_os_error()));
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let size: libc::c_int = 8 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        Ok(fd)
    }
}

/// How many times `needle` occurs in the frames (a frame may be a GSO
/// super-packet carrying many segments).
pub fn count_containing(frames: &[Vec<u8>], needle: &[u8]) -> usize {
    frames
        .iter()
        .map(|f| f.windows(needle.len()).filter(|w| *w == needle).count())
        .sum()
}

/// The UDP ports (source, destination) of an Ethernet/IPv4/UDP frame.
pub fn udp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 17 || ip.len() < ihl + 8 {
        return None;
    }
    let udp = &ip[ihl..];
    Some((
        u16::from_be_bytes([udp[0], udp[1]]),
        u16::from_be_bytes([udp[2], udp[3]]),
    ))
}

/// How many frames are UDP to or from `port` whose payload starts with a
/// WireGuard message type (1 to 4, then three zero bytes).
pub fn count_wireguard(frames: &[Vec<u8>], port: u16) -> usize {
    frames
        .iter()
        .filter(|f| {
            udp_ports(f).is_some_and(|(s, d)| s == port || d == port) && {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let payload = &f[14 + ihl + 8..];
                payload.len() >= 4 && (1..=4).contains(&payload[0]) && payload[1..4] == [0, 0, 0]
            }
        })
        .count()
}
