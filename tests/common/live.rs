//! Live capture in tests: a network namespace made for the test with a veth pair in it
//! (tcpreplay sends into one end, callvault captures on the other), and a running callvault
//! whose output is collected while it runs.

#![allow(clippy::disallowed_methods)] // test support times what it waits for (clippy.toml)

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::skipped;

/// Whether this machine can run live tests (root, iproute2, tcpreplay); records the skip if not.
pub fn can_run(test: &str) -> bool {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let have = |cmd: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {cmd}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = is_root && have("ip") && have("tcpreplay");
    if !ok {
        skipped(&format!("{test}: needs root, iproute2 and tcpreplay"));
    }
    ok
}

/// Runs a shell command, true on success.
pub fn sh(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(cmd).status().is_ok_and(|s| s.success())
}

/// The start of every namespace and interface name: `$CALLVAULT_NETNS_PREFIX`, default `cv`
/// (several checkouts running these tests at once each set their own).
pub fn prefix() -> String {
    std::env::var("CALLVAULT_NETNS_PREFIX").unwrap_or_else(|_| "cv".into())
}

/// A network namespace with a veth pair `a` (send) – `b` (capture), IPv6 off so that the
/// kernel sends nothing on its own: the wire carries only what a test replays. Removed on drop.
pub struct Netns {
    /// Namespace name.
    pub name: String,
    /// The end tcpreplay sends into.
    pub a: String,
    /// The end callvault captures on.
    pub b: String,
}

impl Netns {
    /// A fresh namespace; `tag` (one or two letters) keeps names apart within a test binary.
    pub fn new(tag: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let cut = |s: String| s[..s.len().min(15)].to_owned();
        let p = prefix();
        let ns =
            Netns { name: format!("{p}{tag}{id}"), a: cut(format!("{p}{tag}a{id}")), b: cut(format!("{p}{tag}b{id}")) };
        assert!(
            sh(&format!(
                "ip netns add {n} && ip netns exec {n} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
                 net.ipv6.conf.default.disable_ipv6=1 && ip -n {n} link add {a} type veth peer name {b} \
                 && ip -n {n} link set {a} up && ip -n {n} link set {b} up",
                n = ns.name,
                a = ns.a,
                b = ns.b
            )),
            "cannot make network namespace {}",
            ns.name
        );
        ns
    }

    /// Another veth pair in the namespace `ns`: (send end, capture end).
    pub fn pair_in(ns: &Netns, tag: &str) -> (String, String) {
        let id = std::process::id();
        let cut = |s: String| s[..s.len().min(15)].to_owned();
        let p = prefix();
        let (a, b) = (cut(format!("{p}{tag}a{id}")), cut(format!("{p}{tag}b{id}")));
        assert!(sh(&format!(
            "ip -n {n} link add {a} type veth peer name {b} && ip -n {n} link set {a} up && ip -n {n} link set {b} up",
            n = ns.name
        )));
        (a, b)
    }

    /// `ip netns exec <ns> <program>`.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Replays `pcap` in real time into end `a`; returns when tcpreplay is done.
    pub fn replay(&self, pcap: &Path) {
        let status = self.exec("tcpreplay").args(["--quiet", "--intf1", &self.a]).arg(pcap).status().unwrap();
        assert!(status.success(), "tcpreplay failed");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Two network namespaces joined by a veth pair (end `a` in the first, `b` in the second), the
/// loopback up in both and each end given its address (`cidr_a`, `cidr_b`): two hosts on one
/// wire, for real endpoints (sipp) on either side. Both removed on drop.
pub fn linked_pair(tag: &str, cidr_a: &str, cidr_b: &str) -> (Netns, Netns) {
    static N: AtomicU32 = AtomicU32::new(0);
    let id = format!("{}{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let cut = |s: String| s[..s.len().min(15)].to_owned();
    let p = prefix();
    let (a, b) = (cut(format!("{p}{tag}a{id}")), cut(format!("{p}{tag}b{id}")));
    let one = Netns { name: format!("{p}{tag}1{id}"), a: a.clone(), b: String::new() };
    let two = Netns { name: format!("{p}{tag}2{id}"), a: String::new(), b: b.clone() };
    let (n1, n2) = (&one.name, &two.name);
    assert!(
        sh(&format!(
            "ip netns add {n1} && ip netns add {n2} && ip link add {a} netns {n1} type veth peer name {b} netns {n2} \
             && ip -n {n1} addr add {cidr_a} dev {a} && ip -n {n2} addr add {cidr_b} dev {b} \
             && ip -n {n1} link set lo up && ip -n {n2} link set lo up \
             && ip -n {n1} link set {a} up && ip -n {n2} link set {b} up"
        )),
        "cannot make network namespaces {n1} and {n2}"
    );
    (one, two)
}

/// A running process whose stdout and stderr are collected as it runs.
pub struct Running {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with its output collected.
    pub fn start(mut cmd: Command) -> Running {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start a process");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for stream in streams {
            let out = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            }));
        }
        Running { child, output, readers }
    }

    /// The process id (callvault's own: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until it printed `text` (panics after `timeout`, or if it exited).
    pub fn wait_for(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the process exited ({status}) before printing {text:?}\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no {text:?} after {timeout:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `done` holds while it runs (panics with `what` and its output after
    /// `timeout`).
    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for it to exit on its own (panics with `what` and its output after `timeout`).
    pub fn wait_exit(&mut self, what: &str, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} did not finish within {timeout:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`TERM`, `HUP`, ...).
    pub fn signal(&self, sig: &str) {
        assert!(sh(&format!("kill -{sig} {}", self.pid())));
    }

    /// Sends SIGTERM and waits for the exit (panics after `timeout`); returns the status, the
    /// whole output and how long the exit took.
    pub fn stop(mut self, timeout: Duration) -> (ExitStatus, String, Duration) {
        let t = Instant::now();
        self.signal("TERM");
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(t.elapsed() < timeout, "the process did not stop within {timeout:?} of SIGTERM\n{}", self.log());
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = t.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, self.log(), took)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The kernel counters of the summary's line for `iface`: (received, dropped, read), and the
/// shutdown line's (drained, unread).
pub fn kernel_counters(log: &str, iface: &str) -> ((u64, u64, u64), (u64, u64)) {
    let num = |s: &str| s.trim().replace(',', "").parse::<u64>().unwrap_or_else(|_| panic!("{s:?} in\n{log}"));
    let line = log
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("kernel ({iface}):")))
        .unwrap_or_else(|| panic!("no kernel line for {iface}\n{log}"));
    let rest = line.split_once("):").unwrap().1;
    let received = num(rest.split(" received").next().unwrap());
    let dropped = num(rest.split(", ").nth(1).unwrap().split(" dropped").next().unwrap());
    let read = num(rest.rsplit("; ").next().unwrap().trim_end_matches(" read"));
    let shutdown = log.lines().find(|l| l.trim_start().starts_with("shutdown:")).expect("shutdown line");
    let drained = num(shutdown.trim_start().trim_start_matches("shutdown:").split(" packets").next().unwrap());
    let unread = num(shutdown.rsplit(", ").next().unwrap().split(" could").next().unwrap());
    ((received, dropped, read), (drained, unread))
}

/// Starts `callvault run` in `ns`, capturing on its end `b`, recording into `data` and
/// shipping to `archive`, with its API on the namespace's loopback (brought up here); returns
/// it once it captures, and the API's base URL.
pub fn run_with_api(ns: &Netns, data: &Path, archive: &Path, extra: &[&str]) -> (Running, String) {
    assert!(sh(&format!("ip -n {} link set lo up", ns.name)));
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["run", "--interface", &ns.b, "--buffer-mib", "16", "--user", "root", "--api-listen", "127.0.0.1:0"])
        .arg("--output")
        .arg(data)
        .arg("--archive")
        .arg(archive)
        .args(extra);
    let mut cv = Running::start(cmd);
    cv.wait_for("capturing", Duration::from_secs(60));
    let log = cv.log();
    let base = log
        .split("API on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("no API address in the log\n{log}"));
    (cv, base)
}
