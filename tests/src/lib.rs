//! The netns cluster test harness: real multi-host rswarm clusters on one machine.
//!
//! A [`Cluster`] is N hosts. Each host is a network namespace with its own address
//! on a shared bridge, and runs its own `rswarm daemon` with its own data dir,
//! control socket and `--node-name hostN`. A test reads like the user's story:
//!
//! ```no_run
//! use rswarm_tests::Cluster;
//!
//! let cluster = Cluster::start(3).unwrap();      // three hosts, daemons running
//! cluster.init_swarm(1, 2).unwrap();             // host1 inits, host2/host3 join as workers
//! let nodes = cluster.host(1).ok(&["node", "ls"]);
//! assert!(nodes.contains("host3"));
//! cluster.host(3).disconnect();                  // pull host3's cable
//! // ... host3 goes Down on host1 ...
//! cluster.host(3).heal();
//! ```
//!
//! # The network
//!
//! Cluster number `c` of test process `pid` is named `rsw<pid>c<c>`. Its bridge `br0`
//! lives in a namespace of its own, `rsw<pid>c<c>sw` (the "switch"), so no firewall
//! of the machine's root namespace sees the hosts' traffic. Host `i` (1-based) is the
//! namespace `rsw<pid>c<c>h<i>` with `eth0` at `10.77.0.(10+i)/24` (host1 is
//! `10.77.0.11`), wired to port `vh<i>` of the bridge. The cluster is an isolated
//! segment: no route leads from it to the machine or beyond, and every cluster has
//! its own, so clusters in parallel tests may reuse the same addresses.
//!
//! # Files
//!
//! Everything a cluster writes is under `/tmp/rsw<pid>c<c>/` (short, because unix
//! socket paths must stay under 108 bytes): `hN/data/` is host N's `--data-dir`,
//! `hN/s.sock` its control socket, `hN/daemon.log` its daemon's stdout and stderr
//! (with `RUST_LOG=info`, or `$RSWARM_TEST_LOG`). The pid in every name lets
//! `tests/cleanup-leftovers.sh` tell leftovers of dead test processes from the
//! clusters of live ones.
//!
//! # Teardown
//!
//! Dropping a [`Cluster`] (also while a test panics) kills every daemon with SIGKILL
//! and reaps it, kills and deletes the containers the daemons left running (`runc
//! --root <data-dir>/runc kill`/`delete --force`, then any cgroup `rswarm/<id>` still
//! there; see [`containers`]), kills the registry, kills whatever else still runs in
//! its namespaces, deletes the namespaces (the hosts' nftables rulesets go with them),
//! lazily unmounts whatever the daemons mounted under `/tmp/rsw<pid>c<c>/` and then
//! removes that directory.
//! When the test is panicking, it first prints the tail of every host's daemon log.
//! `RSWARM_TEST_KEEP_DIRS=1` keeps the directory for a look afterwards.
//!
//! If the test process itself dies (SIGKILL, abort), the daemons still die: they are
//! started with `PR_SET_PDEATHSIG` from one long-lived thread (see [`spawn`]). The
//! namespaces and directories that such a death leaves behind are removed by
//! `tests/cleanup-leftovers.sh`, which `tests/run-all.sh` and `.ci/run` run on exit.
//!
//! # Images and a registry
//!
//! Tests that run containers start their cluster with a registry:
//!
//! ```no_run
//! use rswarm_tests::Cluster;
//!
//! let cluster = Cluster::with_registry(3).unwrap();   // or Cluster::builder(3).with_registry()
//! cluster.init_swarm(1, 2).unwrap();
//! let image = cluster.registry().busybox();          // "10.77.0.2:5000/busybox:1"
//! cluster.host(1).ok(&["service", "create", "--name", "web", &image, "httpd", "-f", "-p", "80"]);
//! ```
//!
//! The registry is Debian's `docker-registry` in the switch namespace on
//! `10.77.0.2:5000` (plain HTTP; the daemons get `--config <dir>/daemon.json` with
//! `"insecure-registries"`), see [`registry`]. The busybox image is built once per test
//! process from Debian's `busybox-static`, with no network, see [`images`]; it can
//! also be written as a `docker save` or OCI archive for `rswarm image load`.
//! [`Host::containers`] lists what runc runs for a host's daemon.
//!
//! # For the benchmarks
//!
//! [`control`] finds the `rswarm` binary and opens a Services API client, [`dockerd`]
//! runs a Docker Engine of our own beside rswarm (Docker Swarm figures
//! on the same machine), [`procfs`] reads processes' CPU and memory, [`cpu_window`]
//! the load and CPU use over a measurement, and [`request_loop`] sends HTTP requests
//! without pause from inside a network namespace, counting the failed ones.
//!
//! # Preconditions
//!
//! The harness must run as root with `ip` (iproute2) and `nsenter` (util-linux)
//! installed, and the `rswarm` binary built ([`rswarm_bin`]); clusters with a registry
//! also need `docker-registry`, `skopeo`, `busybox-static` and `runc`
//! (`tests/packages.txt`). It panics and says what
//! is missing; it never skips a test silently.

pub mod browser;
pub mod cluster;
pub mod command;
pub mod containers;
pub mod control;
pub mod cpu_window;
pub mod dockerd;
pub mod host;
pub mod images;
pub mod lists;
pub mod load;
pub mod metrics;
mod mounts;
pub mod network;
pub mod preflight;
pub mod procfs;
pub mod registry;
pub mod request_loop;
pub mod spawn;
pub mod wait;

pub use cluster::{Cluster, ClusterBuilder};
pub use command::{CmdOutput, COMMAND_TIMEOUT};
pub use containers::Container;
pub use host::{Background, Host};
pub use mounts::mounts_under;
pub use preflight::rswarm_bin;
pub use registry::Registry;
pub use wait::{try_wait_for, wait_for};
