//! A stand-in for the `rswarm` binary, used only by the harness's own self-test
//! (`tests/harness.rs`), so that starting, killing, stopping and restarting daemons
//! can be tested without the product.
//!
//! - `fake-rswarm [-H URL] daemon --socket PATH [...]`: removes a stale socket file,
//!   listens on PATH, says so on stderr, accepts and drops connections until killed.
//! - `fake-rswarm [-H URL] fail`: prints an error on stderr and exits 1.
//! - `fake-rswarm ARGS`: prints `ARGS` on stdout and exits 0.

use std::os::unix::net::UnixListener;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        Some("-H") => &args[2.min(args.len())..],
        _ => &args[..],
    };
    match command.first().map(String::as_str) {
        Some("daemon") => daemon(&command[1..]),
        Some("fail") => {
            eprintln!("Error: asked to fail");
            std::process::exit(1);
        }
        _ => println!("{}", args.join(" ")),
    }
}

fn daemon(args: &[String]) {
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|at| args.get(at + 1))
            .unwrap_or_else(|| panic!("fake daemon: missing {flag}"))
    };
    let socket = value_of("--socket");
    let name = value_of("--node-name");
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .unwrap_or_else(|err| panic!("fake daemon: bind {socket}: {err}"));
    eprintln!("fake daemon {name} listening on {socket}");
    for connection in listener.incoming() {
        drop(connection);
    }
}
