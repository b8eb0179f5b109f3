//! What the registry-auth tests share: a private registry (Debian's
//! docker-registry with basic auth, user `alice`) beside a cluster, holding
//! the busybox test image as `app:1`, and the CLI run on a host as a user
//! with a HOME of their own (where `rswarm login` keeps its config.json).

use std::path::PathBuf;

use rswarm_tests::{Cluster, CmdOutput, Host, Registry};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

pub struct Private {
    /// Kept so the registry lives as long as the test.
    _registry: Registry,
    /// The pushed image's full reference.
    pub image: String,
    /// The registry's address, as `rswarm login` takes it.
    pub server: String,
    /// The user's HOME.
    pub home: PathBuf,
}

/// Starts the registry on the cluster's switch and pushes the image.
pub fn start(cluster: &Cluster) -> Private {
    let hash = bcrypt::hash_with_result(PASSWORD, 4)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let registry = Registry::start_with_auth(
        cluster.switch_netns(),
        &cluster.dir().join("private-registry"),
        &format!("{USER}:{hash}\n"),
        USER,
        PASSWORD,
    )
    .expect("a registry with basic auth");
    let image = registry
        .push(rswarm_tests::images::busybox(), "app:1")
        .expect("push with credentials");
    let server = registry.addr().to_string();
    let home = cluster.dir().join("home");
    std::fs::create_dir_all(&home).expect("home");
    Private {
        _registry: registry,
        image,
        server,
        home,
    }
}

impl Private {
    /// `rswarm ARGS` on `h` as the user runs it, with their HOME (a shell
    /// line, so ARGS may pipe stdin in).
    pub fn cli(&self, h: &Host, args: &str) -> CmdOutput {
        let (bin, sock) = (h.binary(), h.socket());
        h.exec(&[
            "sh",
            "-c",
            &format!(
                "HOME={} {} -H unix://{} {args}",
                self.home.display(),
                bin.display(),
                sock.display()
            ),
        ])
    }
}
