//! Least privilege for `callvault run`.
//!
//! Capture needs CAP_NET_RAW only to open the capture handles; everything after that (reading
//! packets from open handles, writing recordings, shipping) needs no privilege at all. So `run`
//! opens its handles first and then gives up everything it can, before it starts any thread:
//!
//! * started as root: it becomes the `[service]` user and group (`callvault` by default; the
//!   supplementary groups are dropped too), after removing every capability from the bounding
//!   set, so that nothing can be regained;
//! * either way: the effective, permitted, inheritable and ambient capability sets are emptied
//!   and `PR_SET_NO_NEW_PRIVS` is set, so no executed program can gain privileges;
//! * then it checks: going back to root fails, no capability is left, and opening a new
//!   capture fails. If any check does not hold, `run` stops with an error.
//!
//! Files are created with the umask 027 (set for every command in `main`): recordings 0640,
//! directories 0750, readable by the service's group for whoever consumes them locally.

use std::os::unix::fs::{DirBuilderExt, chown};
use std::path::Path;

use anyhow::{Context, bail};
use rustix::process::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::config::Service;

/// What the process runs as after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningAs {
    /// User name (or uid when it has none).
    pub user: String,
    /// Numeric ids.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Whether it started as root and changed user.
    pub changed_user: bool,
}

/// The account to become, looked up by name.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

fn lookup(service: &Service) -> anyhow::Result<Account> {
    let user = nix::unistd::User::from_name(&service.user)
        .with_context(|| format!("cannot look up the user {:?}", service.user))?
        .with_context(|| {
            format!(
                "the user {:?} (service.user, --user) does not exist; the Debian package creates \"callvault\" \
                 (or: adduser --system --group callvault), or set another user",
                service.user
            )
        })?;
    let gid = match &service.group {
        Some(name) => {
            nix::unistd::Group::from_name(name)
                .with_context(|| format!("cannot look up the group {name:?}"))?
                .with_context(|| format!("the group {name:?} (service.group, --group) does not exist"))?
                .gid
        }
        None => user.gid,
    };
    Ok(Account { name: service.user.clone(), uid: user.uid.as_raw(), gid: gid.as_raw() })
}

/// Creates `dirs` that do not exist yet (mode 0750) and, when root will become another user,
/// gives them to that user, so that the data directory of a fresh install is writable after
/// the drop. Existing directories are left as they are.
pub fn prepare_dirs(service: &Service, dirs: &[&Path]) -> anyhow::Result<()> {
    let owner =
        if rustix::process::geteuid().is_root() && service.user != "root" { Some(lookup(service)?) } else { None };
    for dir in dirs {
        if dir.exists() {
            continue;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("cannot create directory '{}'", dir.display()))?;
        if let Some(a) = &owner {
            chown(dir, Some(a.uid), Some(a.gid))
                .with_context(|| format!("cannot give directory '{}' to the user {}", dir.display(), a.name))?;
        }
    }
    Ok(())
}

/// Gives up root (for the `[service]` account) and every capability, and forbids gaining any
/// again. Must run before any other thread is started: these calls change the calling thread.
pub fn drop_privileges(service: &Service) -> anyhow::Result<RunningAs> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned())));
    if threads.as_deref() != Some("1") {
        bail!("internal error: privileges must be dropped before any thread starts (threads: {threads:?})");
    }
    let root = rustix::process::geteuid().is_root();
    let mut running = RunningAs {
        user: String::new(),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        changed_user: false,
    };
    if root && service.user != "root" {
        let account = lookup(service)?;
        // Nothing may come back: empty the bounding set while CAP_SETPCAP is still held.
        for bit in 0..64 {
            match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << bit)) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => bail!("cannot drop capability {bit} from the bounding set: {e}"),
            }
        }
        let gid = Gid::from_raw(account.gid);
        let uid = Uid::from_raw(account.uid);
        rustix::thread::set_thread_groups(&[gid]).context("cannot drop the supplementary groups (setgroups)")?;
        rustix::thread::set_thread_res_gid(gid, gid, gid)
            .with_context(|| format!("cannot change to group id {}", account.gid))?;
        rustix::thread::set_thread_res_uid(uid, uid, uid)
            .with_context(|| format!("cannot change to user {} (uid {})", account.name, account.uid))?;
        running = RunningAs { user: account.name, uid: account.uid, gid: account.gid, changed_user: true };
    } else if root {
        tracing::warn!("running as root (service.user = \"root\"): recordings are written as root");
    }
    let none = CapabilitySet::empty();
    rustix::thread::set_capabilities(None, CapabilitySets { effective: none, permitted: none, inheritable: none })
        .context("cannot drop capabilities")?;
    rustix::thread::clear_ambient_capability_set().context("cannot clear the ambient capabilities")?;
    rustix::thread::set_no_new_privs(true).context("cannot set no_new_privs")?;
    if running.user.is_empty() {
        running.user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(running.uid))
            .ok()
            .flatten()
            .map_or_else(|| running.uid.to_string(), |u| u.name);
    }
    verify(&running)?;
    Ok(running)
}

/// Checks that the drop took: no way back to root, no capability left.
fn verify(running: &RunningAs) -> anyhow::Result<()> {
    if running.changed_user {
        let zero = Uid::from_raw(0);
        if rustix::thread::set_thread_res_uid(zero, zero, zero).is_ok() {
            bail!("privilege drop failed: the process could become root again");
        }
    }
    let caps = rustix::thread::capabilities(None).context("cannot read the capabilities")?;
    if !(caps.effective.is_empty() && caps.permitted.is_empty() && caps.inheritable.is_empty()) {
        bail!("privilege drop failed: capabilities left: {caps:?}");
    }
    if !rustix::thread::no_new_privs().unwrap_or(false) {
        bail!("privilege drop failed: no_new_privs is not set");
    }
    Ok(())
}
