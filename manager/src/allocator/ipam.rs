//! IPv4 address management: CIDR arithmetic, carving subnets for new
//! networks out of the cluster's default address pool, and one bitmap per
//! subnet that hands out task addresses and service VIPs.
//!
//! A [`Pool`] covers one subnet. Its bitmap spans the addresses tasks may get
//! (the `--ip-range` if one was given, else the whole subnet); the subnet's
//! network and broadcast addresses and the gateway are never handed out.
//! Allocation is next-fit: it goes on after the address handed out last and
//! wraps around, so an address just freed is the last to be reused (a stale
//! DNS answer or neighbour entry for a departed task then points nowhere
//! rather than at a new task). Only IPv4 is supported.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The smallest subnet a network may have: a /30 keeps one address for a
/// task besides the network, gateway and broadcast addresses.
pub const MAX_PREFIX: u8 = 30;
/// The largest subnet a network may have (its bitmap is 2 MiB).
pub const MIN_PREFIX: u8 = 8;

/// What can go wrong with addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR {0:?}: expected an IPv4 address and a prefix length, like 10.20.0.0/24")]
    InvalidCidr(String),
    #[error("invalid IP address {0:?}")]
    InvalidAddress(String),
    #[error("invalid subnet {subnet}: the prefix length must be between /{MIN_PREFIX} and /{MAX_PREFIX}")]
    SubnetSize { subnet: Cidr },
    #[error("ipam configuration: subnet {subnet} does not contain gateway {gateway}")]
    GatewayOutside { subnet: Cidr, gateway: Ipv4Addr },
    #[error(
        "ipam configuration: gateway {gateway} is the network or broadcast address of {subnet}"
    )]
    GatewayReserved { subnet: Cidr, gateway: Ipv4Addr },
    #[error("ipam configuration: subnet {subnet} does not contain range {range}")]
    RangeOutside { subnet: Cidr, range: Cidr },
    #[error("ipam configuration: range {range} leaves no address for tasks in {subnet}")]
    RangeEmpty { subnet: Cidr, range: Cidr },
    #[error("address {addr} is not in the assignable range {range}")]
    OutOfRange { addr: Ipv4Addr, range: Cidr },
    #[error("address {0} is already allocated")]
    AlreadyAllocated(Ipv4Addr),
}

/// An IPv4 network: its first address and prefix length. Host bits are
/// always clear (parsing `10.20.0.5/24` gives `10.20.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits (at most 32).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Cidr {
        let prefix = prefix.min(32);
        Cidr {
            base: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address (the network address).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The last address (the broadcast address).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    /// How many addresses it spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.base
    }

    /// Whether `other` lies entirely within this network.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// `addr` written with this network's prefix length, as task addresses
    /// and VIPs are stored (`10.20.0.3/24`).
    pub fn with_addr(&self, addr: Ipv4Addr) -> String {
        format!("{addr}/{}", self.prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Cidr, IpamError> {
        let bad = || IpamError::InvalidCidr(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr::new(addr, prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// Parses an address as stored on tasks and services: `10.20.0.3/24` or a
/// bare `10.20.0.3`.
pub fn parse_addr(s: &str) -> Result<Ipv4Addr, IpamError> {
    let addr = s.split_once('/').map(|(a, _)| a).unwrap_or(s);
    addr.trim()
        .parse()
        .map_err(|_| IpamError::InvalidAddress(s.to_string()))
}

/// The first `/mask_length` subnet of `pool` that overlaps none of `taken`.
pub fn carve(pool: &Cidr, mask_length: u8, taken: &[Cidr]) -> Option<Cidr> {
    if mask_length < pool.prefix || mask_length > 32 {
        return None;
    }
    let step = 1u64 << (32 - u32::from(mask_length));
    let mut start = u64::from(pool.base);
    let end = u64::from(pool.last());
    while start + step - 1 <= end {
        let candidate = Cidr {
            base: start as u32,
            prefix: mask_length,
        };
        match taken
            .iter()
            .filter(|t| t.overlaps(&candidate))
            .map(|t| u64::from(t.last()))
            .max()
        {
            None => return Some(candidate),
            // Skip past the highest overlapping network, to the next
            // boundary of `step`.
            Some(last) => start = (last / step + 1) * step,
        }
    }
    None
}

/// The addresses of one subnet: which are handed out, which are free.
#[derive(Debug, Clone)]
pub struct Pool {
    subnet: Cidr,
    gateway: Ipv4Addr,
    /// Where task addresses and VIPs come from (the subnet, or its ip-range).
    range: Cidr,
    /// One bit per address of `range`; set = not available.
    bits: Vec<u64>,
    free: u64,
    /// Offset in `range` where the next search starts.
    next: u64,
}

impl Pool {
    /// A pool for `subnet` whose gateway is `gateway` (default: the first
    /// address after the network address), handing out addresses from
    /// `range` (default: the whole subnet).
    pub fn new(
        subnet: Cidr,
        gateway: Option<Ipv4Addr>,
        range: Option<Cidr>,
    ) -> Result<Pool, IpamError> {
        if subnet.prefix < MIN_PREFIX || subnet.prefix > MAX_PREFIX {
            return Err(IpamError::SubnetSize { subnet });
        }
        let gateway = gateway.unwrap_or_else(|| default_gateway(&subnet));
        if !subnet.contains(gateway) {
            return Err(IpamError::GatewayOutside { subnet, gateway });
        }
        if gateway == subnet.network() || gateway == subnet.broadcast() {
            return Err(IpamError::GatewayReserved { subnet, gateway });
        }
        let range = range.unwrap_or(subnet);
        if !subnet.contains_cidr(&range) {
            return Err(IpamError::RangeOutside { subnet, range });
        }
        let size = range.size();
        let mut pool = Pool {
            subnet,
            gateway,
            range,
            bits: vec![0; size.div_ceil(64) as usize],
            free: size,
            next: 0,
        };
        for reserved in [subnet.network(), gateway, subnet.broadcast()] {
            if let Some(i) = pool.offset(reserved) {
                if !pool.is_set(i) {
                    pool.set(i);
                    pool.free -= 1;
                }
            }
        }
        if pool.free == 0 {
            return Err(IpamError::RangeEmpty { subnet, range });
        }
        Ok(pool)
    }

    pub fn subnet(&self) -> Cidr {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The addresses handed out come from here.
    pub fn range(&self) -> Cidr {
        self.range
    }

    /// How many addresses are still free.
    pub fn available(&self) -> u64 {
        self.free
    }

    /// Hands out a free address (next-fit), or `None` when none is left.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        if self.free == 0 {
            return None;
        }
        let size = self.range.size();
        let mut i = self.next % size;
        // Whole words at a time where possible; at most one lap.
        let mut scanned = 0u64;
        while scanned < size {
            let word = self.bits[(i / 64) as usize];
            if i & 63 == 0 && word == u64::MAX {
                i = (i + 64) % size;
                scanned += 64;
                continue;
            }
            if !self.is_set(i) {
                self.set(i);
                self.free -= 1;
                self.next = (i + 1) % size;
                return Some(self.addr_at(i));
            }
            i = (i + 1) % size;
            scanned += 1;
        }
        None
    }

    /// Marks `addr` as handed out (an allocation read back from the store).
    pub fn reserve(&mut self, addr: Ipv4Addr) -> Result<(), IpamError> {
        let i = self.offset(addr).ok_or(IpamError::OutOfRange {
            addr,
            range: self.range,
        })?;
        if self.is_set(i) {
            return Err(IpamError::AlreadyAllocated(addr));
        }
        self.set(i);
        self.free -= 1;
        Ok(())
    }

    /// Gives `addr` back. False if it was not handed out (or is one of the
    /// addresses never handed out: network, gateway, broadcast).
    pub fn release(&mut self, addr: Ipv4Addr) -> bool {
        if self.is_reserved(addr) {
            return false;
        }
        match self.offset(addr) {
            Some(i) if self.is_set(i) => {
                self.clear(i);
                self.free += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `addr` is currently handed out by this pool.
    pub fn is_allocated(&self, addr: Ipv4Addr) -> bool {
        !self.is_reserved(addr) && self.offset(addr).is_some_and(|i| self.is_set(i))
    }

    fn is_reserved(&self, addr: Ipv4Addr) -> bool {
        addr == self.gateway || addr == self.subnet.network() || addr == self.subnet.broadcast()
    }

    fn offset(&self, addr: Ipv4Addr) -> Option<u64> {
        self.range
            .contains(addr)
            .then(|| u64::from(u32::from(addr) - self.range.base))
    }

    fn addr_at(&self, i: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.range.base + i as u32)
    }

    fn is_set(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64) {
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: u64) {
        self.bits[(i / 64) as usize] &= !(1 << (i % 64));
    }
}

/// The gateway a subnet gets when none is given: its first host address.
pub fn default_gateway(subnet: &Cidr) -> Ipv4Addr {
    Ipv4Addr::from(subnet.base.wrapping_add(1))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("valid CIDR in test")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address in test")
    }

    fn drain(pool: &mut Pool) -> Vec<Ipv4Addr> {
        std::iter::from_fn(|| pool.allocate()).collect()
    }

    #[test]
    fn cidrs_parse_normalise_and_compare() {
        assert_eq!(cidr("10.20.0.5/24").to_string(), "10.20.0.0/24");
        assert_eq!(cidr("10.20.0.0/24").broadcast(), ip("10.20.0.255"));
        assert!(cidr("10.0.0.0/8").contains_cidr(&cidr("10.20.0.0/24")));
        assert!(!cidr("10.20.0.0/24").contains_cidr(&cidr("10.0.0.0/8")));
        assert!(cidr("10.0.0.0/8").overlaps(&cidr("10.20.0.0/24")));
        assert!(!cidr("10.20.0.0/24").overlaps(&cidr("10.20.1.0/24")));
        for bad in ["10.0.0.0", "10.0.0.0/33", "fe80::/64", "x/24", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} should not parse");
        }
        assert_eq!(parse_addr("10.1.2.3/24"), Ok(ip("10.1.2.3")));
        assert_eq!(parse_addr("10.1.2.3"), Ok(ip("10.1.2.3")));
        assert!(parse_addr("10.1.2/24").is_err());
    }

    #[test]
    fn addresses_are_distinct_and_never_network_gateway_or_broadcast() {
        let mut pool = Pool::new(cidr("10.20.0.0/24"), None, None).expect("pool");
        assert_eq!(pool.gateway(), ip("10.20.0.1"));
        assert_eq!(pool.available(), 253);
        let all = drain(&mut pool);
        assert_eq!(all.len(), 253);
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 253, "no address handed out twice");
        for reserved in ["10.20.0.0", "10.20.0.1", "10.20.0.255"] {
            assert!(!distinct.contains(&ip(reserved)), "{reserved} handed out");
        }
        assert_eq!(all[0], ip("10.20.0.2"), "first free address first");
        assert_eq!(pool.available(), 0);
        assert_eq!(pool.allocate(), None, "exhausted");
    }

    #[test]
    fn a_freed_address_is_reused_once_the_others_are_taken() {
        let mut pool = Pool::new(cidr("10.20.0.0/29"), None, None).expect("pool");
        let all = drain(&mut pool);
        assert_eq!(all.len(), 5, ".2 … .6");
        assert!(pool.release(ip("10.20.0.4")));
        assert!(!pool.release(ip("10.20.0.4")), "already free");
        assert!(!pool.release(ip("10.20.0.1")), "the gateway is never freed");
        assert_eq!(pool.allocate(), Some(ip("10.20.0.4")));
        assert_eq!(pool.allocate(), None);
    }

    #[test]
    fn next_fit_does_not_reuse_a_freed_address_at_once() {
        let mut pool = Pool::new(cidr("10.20.0.0/24"), None, None).expect("pool");
        let a = pool.allocate().expect("a");
        let b = pool.allocate().expect("b");
        assert!(pool.release(a));
        let c = pool.allocate().expect("c");
        assert_ne!(c, a);
        assert_ne!(c, b);
    }

    #[test]
    fn ip_range_limits_what_is_handed_out() {
        let mut pool =
            Pool::new(cidr("10.20.0.0/24"), None, Some(cidr("10.20.0.128/29"))).expect("pool");
        let all = drain(&mut pool);
        assert_eq!(
            all.len(),
            8,
            "the whole /29 range: no reserved address in it"
        );
        assert!(all.iter().all(|a| cidr("10.20.0.128/29").contains(*a)));
        assert_eq!(
            pool.reserve(ip("10.20.0.5")),
            Err(IpamError::OutOfRange {
                addr: ip("10.20.0.5"),
                range: cidr("10.20.0.128/29")
            })
        );
        // A range at the start of the subnet loses the network address and
        // the gateway.
        let mut low =
            Pool::new(cidr("10.20.0.0/24"), None, Some(cidr("10.20.0.0/29"))).expect("pool");
        assert_eq!(drain(&mut low).len(), 6);
        assert!(matches!(
            Pool::new(cidr("10.20.0.0/24"), None, Some(cidr("10.30.0.0/28"))),
            Err(IpamError::RangeOutside { .. })
        ));
        assert!(matches!(
            Pool::new(cidr("10.20.0.0/24"), None, Some(cidr("10.20.0.1/32"))),
            Err(IpamError::RangeEmpty { .. })
        ));
    }

    #[test]
    fn a_given_gateway_is_reserved_and_checked() {
        let mut pool = Pool::new(cidr("10.20.0.0/29"), Some(ip("10.20.0.6")), None).expect("pool");
        let all = drain(&mut pool);
        assert_eq!(all.len(), 5);
        assert!(
            all.contains(&ip("10.20.0.1")),
            "the default gateway is free"
        );
        assert!(!all.contains(&ip("10.20.0.6")));
        assert!(matches!(
            Pool::new(cidr("10.20.0.0/24"), Some(ip("10.30.0.1")), None),
            Err(IpamError::GatewayOutside { .. })
        ));
        assert!(matches!(
            Pool::new(cidr("10.20.0.0/24"), Some(ip("10.20.0.255")), None),
            Err(IpamError::GatewayReserved { .. })
        ));
    }

    #[test]
    fn a_slash_30_has_exactly_one_address_and_smaller_subnets_are_refused() {
        let mut pool = Pool::new(cidr("192.168.7.4/30"), None, None).expect("pool");
        assert_eq!(pool.gateway(), ip("192.168.7.5"));
        assert_eq!(pool.allocate(), Some(ip("192.168.7.6")));
        assert_eq!(pool.allocate(), None);
        assert!(pool.release(ip("192.168.7.6")));
        assert_eq!(pool.allocate(), Some(ip("192.168.7.6")));
        for small in ["192.168.7.4/31", "192.168.7.4/32"] {
            assert!(matches!(
                Pool::new(cidr(small), None, None),
                Err(IpamError::SubnetSize { .. })
            ));
        }
        assert!(matches!(
            Pool::new(cidr("10.0.0.0/7"), None, None),
            Err(IpamError::SubnetSize { .. })
        ));
    }

    #[test]
    fn reserving_rebuilds_state_without_duplicates() {
        let mut pool = Pool::new(cidr("10.20.0.0/29"), None, None).expect("pool");
        pool.reserve(ip("10.20.0.2")).expect("reserve .2");
        pool.reserve(ip("10.20.0.5")).expect("reserve .5");
        assert_eq!(
            pool.reserve(ip("10.20.0.5")),
            Err(IpamError::AlreadyAllocated(ip("10.20.0.5")))
        );
        assert_eq!(
            pool.reserve(ip("10.20.0.1")),
            Err(IpamError::AlreadyAllocated(ip("10.20.0.1"))),
            "the gateway is taken"
        );
        let rest = drain(&mut pool);
        assert_eq!(
            rest,
            vec![ip("10.20.0.3"), ip("10.20.0.4"), ip("10.20.0.6")]
        );
        assert!(pool.is_allocated(ip("10.20.0.5")));
        assert!(!pool.is_allocated(ip("10.20.0.1")));
    }

    #[test]
    fn large_subnets_scan_whole_words() {
        let mut pool = Pool::new(cidr("10.0.0.0/16"), None, None).expect("pool");
        let all = drain(&mut pool);
        assert_eq!(all.len(), 65_533);
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 65_533);
        assert!(pool.release(ip("10.0.200.7")));
        assert_eq!(pool.allocate(), Some(ip("10.0.200.7")));
    }

    #[test]
    fn carving_skips_taken_subnets() {
        let pool = cidr("10.0.0.0/8");
        assert_eq!(carve(&pool, 24, &[]), Some(cidr("10.0.0.0/24")));
        let taken = [
            cidr("10.0.0.0/24"),
            cidr("10.0.1.0/24"),
            cidr("10.0.3.0/25"),
        ];
        assert_eq!(carve(&pool, 24, &taken), Some(cidr("10.0.2.0/24")));
        let taken = [cidr("10.0.0.0/16"), cidr("10.1.0.0/24")];
        assert_eq!(carve(&pool, 24, &taken), Some(cidr("10.1.1.0/24")));
        // A bigger network elsewhere covering part of the pool.
        let taken = [cidr("0.0.0.0/0")];
        assert_eq!(carve(&pool, 24, &taken), None);
        let small = cidr("10.9.0.0/23");
        let taken = [cidr("10.9.0.0/24"), cidr("10.9.1.0/24")];
        assert_eq!(carve(&small, 24, &taken), None, "pool exhausted");
        assert_eq!(carve(&small, 22, &[]), None, "mask shorter than the pool");
    }
}
