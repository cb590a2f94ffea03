//! The Debian package, end to end: `cargo deb` builds it (from the binary this test run built;
//! a release package is built the same way, see README "Install as a service"), `dpkg -i`
//! installs it into a throw-away copy of this machine's root (an overlay in a chroot, so the
//! machine itself is left untouched), and the test checks the files, the user and the
//! permissions, that the unit passes `systemd-analyze verify`, that an edited configuration
//! survives an upgrade, and runs the installed binary the way the unit does — as the callvault
//! user with only CAP_NET_RAW and no new privileges (`setpriv`), with a systemd notify socket
//! and watchdog — against a veth pair: it records a call, ships it, and stops cleanly.
//! The unit's file-system sandbox (ProtectSystem=...) is systemd's and is not reproduced here.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use callgen::{CallSpec, Scenario};
use common::live::{Netns, Running, can_run, sh};
use common::{records, skipped, text};

/// The cargo-deb binary: `$CALLVAULT_CARGO_DEB`, the copy scripts/deps.sh installs, or PATH.
fn cargo_deb() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CALLVAULT_CARGO_DEB").map(PathBuf::from),
        Some(PathBuf::from("/var/tmp/callvault-tools/bin/cargo-deb")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file()).or_else(|| {
        let out = Command::new("sh").args(["-c", "command -v cargo-deb"]).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

/// A copy-on-write copy of `/` (overlay, changes in a tmpfs) with /proc, /dev and /sys, for
/// chroot. `xino=on` gives every file the overlay's device number, as on a single file system
/// (the spool moves recordings by rename and checks that work and spool share a device).
/// Unmounted on drop.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Option<Root> {
        let dir = tempfile::Builder::new().prefix("callvault-root").tempdir().ok()?;
        let d = dir.path().display();
        let ok = sh(&format!(
            "mkdir {d}/up {d}/root && mount -t tmpfs tmpfs {d}/up && mkdir {d}/up/u {d}/up/w && \
             mount -t overlay overlay -o lowerdir=/,upperdir={d}/up/u,workdir={d}/up/w,xino=on {d}/root && \
             mount -t proc proc {d}/root/proc && mount --rbind /dev {d}/root/dev && \
             mount --rbind /sys {d}/root/sys && mount --make-rslave {d}/root/sys && \
             mount --make-rslave {d}/root/dev"
        ));
        let root = Root { dir };
        ok.then_some(root)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `chroot <root> <program> <args>`.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("chroot").arg(self.path()).arg(program).args(args).env_remove("CALLVAULT_CONFIG").output().unwrap()
    }

    fn at(&self, path: &str) -> PathBuf {
        self.path().join(path.trim_start_matches('/'))
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let d = self.dir.path().display();
        sh(&format!("umount -R -l {d}/root 2>/dev/null; umount -l {d}/up 2>/dev/null; true"));
    }
}

/// Builds the .deb with cargo-deb from this test run's binary.
fn build_deb(cargo_deb: &Path, out: &Path) -> PathBuf {
    let stage = out.join("target");
    std::fs::create_dir_all(stage.join("release")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_callvault"), stage.join("release/callvault")).unwrap();
    let built = Command::new(cargo_deb)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &stage)
        .args(["--no-build", "--strip", "--fast", "--quiet", "--output"])
        .arg(out)
        .output()
        .unwrap();
    assert!(built.status.success(), "cargo deb failed\n{}", text(&built));
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb")
}

/// `Key=value` of the unit's [Service] section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .trim()
        .to_owned()
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn the_debian_package_installs_and_runs_as_the_unit_does() {
    if !can_run("Debian package") {
        return;
    }
    let tools = ["dpkg", "chroot", "setpriv", "systemd-analyze", "adduser"];
    if let Some(missing) = tools.iter().find(|t| !sh(&format!("command -v {t} >/dev/null"))) {
        skipped(&format!("Debian package test: {missing} is missing"));
        return;
    }
    let Some(cargo_deb) = cargo_deb() else {
        skipped("Debian package test: cargo-deb is not installed (scripts/deps.sh test installs it)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(&cargo_deb, work.path());
    let Some(root) = Root::new() else {
        skipped("Debian package test: cannot mount an overlay of / to install into");
        return;
    };

    // Install.
    std::fs::copy(&deb, root.at("/var/cache/callvault-test.deb")).unwrap();
    let installed = root.run("dpkg", &["-i", "/var/cache/callvault-test.deb"]);
    assert!(installed.status.success(), "dpkg -i failed\n{}", text(&installed));

    // The user, the files and their permissions.
    let passwd = String::from_utf8(root.run("getent", &["passwd", "callvault"]).stdout).unwrap();
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "no callvault user: {passwd:?}");
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(uid < 1000, "a system user: {passwd}");
    assert_eq!(fields[5], "/var/lib/callvault", "{passwd}");
    assert!(fields[6].ends_with("nologin") || fields[6].ends_with("false"), "no login shell: {passwd}");
    let group = String::from_utf8(root.run("getent", &["group", "callvault"]).stdout).unwrap();
    assert!(group.starts_with(&format!("callvault:x:{gid}:")), "{group}");
    assert_eq!(mode_owner(&root.at("/usr/bin/callvault")), (0o755, 0, 0));
    assert_eq!(mode_owner(&root.at("/etc/callvault")), (0o750, 0, gid));
    assert_eq!(mode_owner(&root.at("/etc/callvault/callvault.toml")), (0o640, 0, gid));
    assert_eq!(mode_owner(&root.at("/var/lib/callvault")), (0o750, uid, gid));
    // The site's signing key, made by the install step: private to the service user, its
    // fingerprint printed for the installer to keep.
    assert_eq!(mode_owner(&root.at("/etc/callvault/signing.key")), (0o600, uid, gid));
    let signing_key = std::fs::read(root.at("/etc/callvault/signing.key")).unwrap();
    assert!(
        String::from_utf8_lossy(&installed.stdout).contains("keep its fingerprint offline: "),
        "{}",
        text(&installed)
    );
    // The monitoring files, as they are in deploy/.
    for (installed, source) in [
        ("/usr/share/callvault/prometheus/callvault-alerts.yml", "deploy/prometheus/callvault-alerts.yml"),
        ("/usr/share/callvault/prometheus/callvault-alerts.test.yml", "deploy/prometheus/callvault-alerts.test.yml"),
        ("/usr/share/callvault/grafana/callvault-dashboard.json", "deploy/grafana/callvault-dashboard.json"),
        ("/usr/share/callvault/grafana/provisioning.yml", "deploy/grafana/provisioning.yml"),
    ] {
        let want = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(source)).unwrap();
        assert_eq!(std::fs::read(root.at(installed)).ok(), Some(want), "{installed}");
        assert_eq!(mode_owner(&root.at(installed)), (0o644, 0, 0), "{installed}");
    }
    let unit_path = "/usr/lib/systemd/system/callvault.service";
    assert_eq!(mode_owner(&root.at(unit_path)).0, 0o644);
    let conffiles = root.run("dpkg-query", &["-W", "-f=${Conffiles}", "callvault"]);
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains("/etc/callvault/callvault.toml"),
        "{}",
        text(&conffiles)
    );
    let example = std::fs::read_to_string(root.at("/etc/callvault/callvault.toml")).unwrap();
    assert_eq!(
        example,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/callvault.toml")).unwrap()
    );

    // The unit as installed passes systemd's own check, without a warning.
    let verify = root.run("systemd-analyze", &["verify", unit_path]);
    assert!(verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(), "{}", text(&verify));

    // An edited configuration survives an upgrade (a conffile), and so do the user and data.
    let ns = Netns::new("k");
    let edited = example.replace("interfaces = [\"eth1\"]", &format!("interfaces = [\"{}\"]", ns.b));
    assert_ne!(edited, example);
    std::fs::write(root.at("/etc/callvault/callvault.toml"), &edited).unwrap();
    let upgraded = root.run("dpkg", &["-i", "/var/cache/callvault-test.deb"]);
    assert!(upgraded.status.success(), "{}", text(&upgraded));
    assert_eq!(std::fs::read_to_string(root.at("/etc/callvault/callvault.toml")).unwrap(), edited);
    assert_eq!(mode_owner(&root.at("/etc/callvault/callvault.toml")), (0o640, 0, gid));
    assert_eq!(std::fs::read(root.at("/etc/callvault/signing.key")).unwrap(), signing_key, "the key is kept");
    let check = root.run("/usr/bin/callvault", &["config", "check"]);
    assert!(check.status.success() && String::from_utf8_lossy(&check.stdout).contains(": OK"), "{}", text(&check));

    // Run it the way the unit does.
    let unit = std::fs::read_to_string(root.at(unit_path)).unwrap();
    let (user, group_name) = (unit_value(&unit, "User"), unit_value(&unit, "Group"));
    let ambient = unit_value(&unit, "AmbientCapabilities");
    assert_eq!(ambient, "CAP_NET_RAW");
    assert_eq!(unit_value(&unit, "CapabilityBoundingSet"), "CAP_NET_RAW");
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    let cap = ambient.trim_start_matches("CAP_").to_ascii_lowercase();
    let notify_path = root.at("/run/callvault-test-notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut cmd = ns.exec("chroot");
    cmd.arg(root.path())
        .arg("setpriv")
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={group_name}"))
        .arg("--init-groups")
        .arg(format!("--inh-caps=-all,+{cap}"))
        .arg(format!("--ambient-caps=-all,+{cap}"))
        .arg(format!("--bounding-set=-all,+{cap}"))
        .arg("--no-new-privs")
        .arg("--")
        .args(unit_value(&unit, "ExecStart").split_whitespace())
        .env_remove("CALLVAULT_CONFIG")
        .env("NOTIFY_SOCKET", "/run/callvault-test-notify.sock")
        .env("WATCHDOG_USEC", "1000000")
        .env("JOURNAL_STREAM", "8:1");
    for line in unit.lines().filter_map(|l| l.strip_prefix("Environment=")) {
        let (key, value) = line.split_once('=').expect("Environment=KEY=VALUE");
        cmd.env(key, value);
    }
    let mut cv = Running::start(cmd);
    let mut messages = String::new();
    let mut buf = [0u8; 4096];
    while !messages.contains("READY=1") {
        let n = notify.recv(&mut buf).unwrap_or_else(|e| panic!("no READY=1 ({e})\n{}", cv.log()));
        messages.push_str(&String::from_utf8_lossy(&buf[..n]));
        messages.push('\n');
    }
    cv.wait_for("capturing", Duration::from_secs(60));
    let status = std::fs::read_to_string(format!("/proc/{}/status", cv.pid())).unwrap();
    assert!(status.contains(&format!("\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")), "{status}");
    assert!(
        status.contains("\nCapEff:\t0000000000000000\n") && status.contains("\nCapPrm:\t0000000000000000\n"),
        "{status}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("call.pcap");
    let spec = CallSpec::answered(7, 1_735_689_600 * 1_000_000_000, 1000);
    let truth = callgen::write_pcap(&Scenario::new(vec![spec]), &pcap).unwrap();
    ns.replay(&pcap);
    let archive = root.at("/var/lib/callvault/archive");
    cv.wait_until("the call in the installed archive", Duration::from_secs(60), || records(&archive).len() == 1);
    let (exit, log, _) = cv.stop(Duration::from_secs(30));
    assert!(exit.success(), "{log}");
    while let Ok(n) = notify.recv(&mut buf) {
        messages.push_str(&String::from_utf8_lossy(&buf[..n]));
        messages.push('\n');
        if messages.contains("STOPPING=1") {
            break;
        }
    }
    assert!(messages.contains("WATCHDOG=1") && messages.contains("STOPPING=1"), "{messages}");
    assert!(!log.contains('\u{1b}'), "no colour codes in a journal\n{log}");
    let rec = &records(&archive)[0];
    assert_eq!(rec.value["call_id"], truth.calls[0].call_id.as_str());
    assert_eq!(rec.value["state"], "completed");
    assert_eq!(mode_owner(&rec.json), (0o640, uid, gid));
    assert_eq!(mode_owner(rec.wav.as_ref().unwrap()), (0o640, uid, gid));
    assert_eq!(mode_owner(rec.json.parent().unwrap()), (0o750, uid, gid));
}
