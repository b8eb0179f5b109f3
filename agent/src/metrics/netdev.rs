//! A task's network bytes: `/proc/<pid>/net/dev` of its init process shows
//! the interfaces of the task's network namespace (`lo` left out).

/// Bytes received and sent over every interface but `lo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetBytes {
    pub rx: u64,
    pub tx: u64,
}

/// The network bytes of the namespace process `pid` is in; None when the
/// process is gone.
pub(crate) fn read(pid: u32) -> Option<NetBytes> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse(&text))
}

/// Sums the receive and transmit byte columns of a `net/dev` text.
pub(crate) fn parse(text: &str) -> NetBytes {
    let mut out = NetBytes::default();
    // Two header lines, then `iface: rx_bytes packets … (8 rx) tx_bytes …`.
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let cols: Vec<u64> = rest
            .split_whitespace()
            .map(|c| c.parse().unwrap_or(0))
            .collect();
        if cols.len() < 9 {
            continue;
        }
        out.rx = out.rx.saturating_add(cols[0]);
        out.tx = out.tx.saturating_add(cols[8]);
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sums_every_interface_but_lo() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:  123456     100    0    0    0     0          0         0    65432      80    0    0    0     0       0          0
  eth1:1000000000  900    0    0    0     0          0         0        7       1    0    0    0     0       0          0
";
        assert_eq!(
            parse(text),
            NetBytes {
                rx: 123456 + 1_000_000_000,
                tx: 65432 + 7
            }
        );
        assert_eq!(parse(""), NetBytes::default());
        assert_eq!(parse("h\nh\n  eth0: 1 2 3\n"), NetBytes::default());
    }
}
