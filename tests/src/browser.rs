//! A real headless browser for the tests: Debian's `chromium`, started in a
//! host's network namespace and driven through the DevTools protocol over
//! `--remote-debugging-pipe` (JSON messages ended by NUL on fds 3 and 4),
//! so no WebSocket client is needed. Each [`Browser::open`] makes a fresh
//! tab, optionally sending an `Authorization: Bearer` header with every
//! request it makes (the page's own fetches too).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::Host;

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Debian's chromium, if installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: PathBuf,
}

impl Browser {
    /// Starts `binary` headless in `host`'s namespace with a fresh profile.
    pub fn start(host: &Host, binary: &std::path::Path) -> Browser {
        let profile = host.dir().join(format!("chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("chromium profile dir");
        let (cmd_read, cmd_write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
        let (out_read, out_write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
        let (r3, w4) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut cmd = Command::new(binary);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-pipe",
            &format!("--user-data-dir={}", profile.display()),
            "about:blank",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(host.dir().join("chromium.log")).expect("chromium log"));
        // SAFETY: only async-signal-safe dup2 calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r3, 3) < 0 || libc::dup2(w4, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = host.in_netns(|| cmd.spawn().expect("starting chromium"));
        drop(cmd_read);
        drop(out_write);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = File::from(out_read);
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to_browser: File::from(cmd_write),
            from_browser: rx,
            next_id: 0,
            session: None,
            _profile: profile,
        }
    }

    fn call_in(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium: sending {method}: {e}"));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_browser.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(e) = v.get("error") {
                        panic!("chromium: {method}: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(_) => continue, // an event, or another call's answer
                Err(RecvTimeoutError::Timeout) => panic!("chromium: no answer to {method}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium exited during {method}"),
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call_in(s, method, params)
    }

    /// A fresh tab on `url`, sending `Authorization: Bearer TOKEN` with every
    /// request when a token is given; returns when the document has loaded.
    pub fn open(&mut self, url: &str, token: Option<&str>) {
        let target = self.call_in(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call_in(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        self.session = Some(
            attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_string(),
        );
        self.call("Network.enable", json!({}));
        if let Some(t) = token {
            self.call(
                "Network.setExtraHTTPHeaders",
                json!({ "headers": { "Authorization": format!("Bearer {t}") } }),
            );
        }
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_true(
            "the page to load",
            &format!(
                "location.href.startsWith({}) && document.readyState === 'complete'",
                json!(url)
            ),
            Duration::from_secs(15),
        );
    }

    /// The value of a JavaScript expression in the tab (strings as they are,
    /// anything else as JSON).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("chromium: {expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// A PNG of the tab as it looks now.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub fn eval_string(&mut self, expr: &str) -> String {
        match self.eval(expr) {
            Value::String(s) => s,
            v => v.to_string(),
        }
    }

    /// Polls `expr` until it is `true`; panics after `timeout`.
    pub fn wait_true(&mut self, what: &str, expr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            );
            if r["result"]["value"] == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what} ({expr}): last {r}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask first, so its helper processes go with it; then make sure.
        let _ = self
            .to_browser
            .write_all(b"{\"id\":999999,\"method\":\"Browser.close\"}\0");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
