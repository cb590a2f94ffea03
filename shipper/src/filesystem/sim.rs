//! A simulated filesystem that forgets, at a power loss, everything a real one may forget.
//!
//! # Durability model
//!
//! POSIX makes a write durable only through `fsync` (`fsync(2)`: "transfers all modified
//! in-core data of the file … so that all changed information can be retrieved even if the
//! system crashes"), and says of the name: "calling fsync() does not necessarily ensure that the
//! entry in the directory containing the file has also reached disk. For that an explicit
//! fsync() on a file descriptor for the directory is also needed" (Linux `fsync(2)`). ext4 in
//! its default `data=ordered` mode adds that a file's size is committed only after its data, so
//! an unsynced file reads back as a prefix of what was written, never with garbage, and that a
//! rename is one journal transaction. The simulation keeps exactly those guarantees and nothing
//! more:
//!
//! * **File content.** Each file has its current content and its durable content, the content
//!   at its last `sync_all`. At a power loss a file written since its last `sync_all` comes back
//!   as any prefix of its current content at least as long as its durable content (when the
//!   writes only appended, as every write of the spool does), or else as its durable content or
//!   any prefix of its current content: torn, lost, or whole.
//! * **Directory entries.** Every create, rename and remove is an operation on the entries of a
//!   directory; it is durable once that directory is fsynced (`sync_dir`), and only that
//!   directory's operations are: fsyncing the source directory of a rename does not make its
//!   destination entry durable. At a power loss each operation not yet durable survives or
//!   not, independently, chosen by the seed, and the survivors are applied in their original
//!   order.
//! * **Renames** are two operations, the new name in the destination directory and the removal
//!   of the old one in the source directory, tied as ext4 ties them: while both are pending, the
//!   removal survives only if the new name does. An unsynced rename so leaves the old name, the
//!   new one, or both (a file linked twice), never neither — unless the program fsynced only the
//!   source directory, which makes the removal durable on its own.
//! * A directory whose own entry did not survive takes its whole subtree with it; locks are
//!   released; every handle is dead.
//!
//! [`SimFs::cut_power_after`] makes the `n+1`-th mutating operation (and everything after it)
//! fail, as if the machine stopped there; [`SimFs::power_loss`] returns the filesystem a reboot
//! would find. Seed 0 keeps nothing that was not made durable, `u64::MAX` keeps everything,
//! any other seed chooses at random.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{DiskSpace, FileKind, Fs, FsFile, Metadata};

type Ino = usize;

const ROOT: Ino = 0;

#[derive(Debug, Clone)]
enum Node {
    File { data: Vec<u8>, durable: Vec<u8>, modified: SystemTime },
    Dir { entries: BTreeMap<OsString, Ino>, durable: BTreeMap<OsString, Ino> },
}

/// A directory operation not yet made durable by fsyncing its directory.
#[derive(Debug, Clone)]
struct DirOp {
    id: u64,
    dir: Ino,
    name: OsString,
    /// The inode the name now refers to, or `None` for a removal.
    target: Option<Ino>,
    /// Another pending operation this one cannot survive without (a rename's new name).
    requires: Option<u64>,
}

#[derive(Debug, Default)]
struct Sim {
    nodes: Vec<Node>,
    pending: Vec<DirOp>,
    next_op: u64,
    /// Mutating operations left before the power goes (`None`: never).
    budget: Option<u64>,
    dead: bool,
    /// Mutating operations done so far.
    mutations: u64,
    locked: HashSet<PathBuf>,
}

/// The simulated filesystem; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct SimFs {
    sim: Arc<Mutex<Sim>>,
}

fn power_lost() -> io::Error {
    io::Error::other("simulated power loss")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

impl Sim {
    fn dir_entries(&self, ino: Ino) -> Option<&BTreeMap<OsString, Ino>> {
        match &self.nodes[ino] {
            Node::Dir { entries, .. } => Some(entries),
            Node::File { .. } => None,
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for c in path.components() {
            match c {
                Component::RootDir => ino = ROOT,
                Component::CurDir => {}
                Component::Normal(name) => {
                    let entries = self.dir_entries(ino).ok_or_else(|| not_found(path))?;
                    ino = *entries.get(name).ok_or_else(|| not_found(path))?;
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "the simulation takes plain paths"));
                }
            }
        }
        Ok(ino)
    }

    /// The directory holding `path` and the final name.
    fn parent(&self, path: &Path) -> io::Result<(Ino, OsString)> {
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = self.lookup(path.parent().unwrap_or(Path::new("/")))?;
        if self.dir_entries(dir).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{}", path.display())));
        }
        Ok((dir, name.to_owned()))
    }

    /// Counts a mutating operation; fails once the power is gone.
    fn mutate(&mut self) -> io::Result<()> {
        self.alive()?;
        if let Some(budget) = &mut self.budget {
            if *budget == 0 {
                self.dead = true;
                return Err(power_lost());
            }
            *budget -= 1;
        }
        self.mutations += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.dead { Err(power_lost()) } else { Ok(()) }
    }

    /// Sets (or removes) `name` in `dir` now and records the operation as pending.
    fn dir_op(&mut self, dir: Ino, name: OsString, target: Option<Ino>, requires: Option<u64>) -> u64 {
        let Node::Dir { entries, .. } = &mut self.nodes[dir] else { unreachable!("checked by parent()") };
        match target {
            Some(ino) => entries.insert(name.clone(), ino),
            None => entries.remove(&name),
        };
        let id = self.next_op;
        self.next_op += 1;
        self.pending.push(DirOp { id, dir, name, target, requires });
        id
    }

    fn new_node(&mut self, node: Node) -> Ino {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn metadata(&self, ino: Ino) -> Metadata {
        match &self.nodes[ino] {
            Node::File { data, modified, .. } => {
                Metadata { kind: FileKind::File, len: data.len() as u64, modified: *modified, dev: 1, stamp: None }
            }
            Node::Dir { .. } => {
                Metadata { kind: FileKind::Dir, len: 4096, modified: SystemTime::UNIX_EPOCH, dev: 1, stamp: None }
            }
        }
    }
}

/// splitmix64: a small deterministic generator for the power-loss choices.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

impl SimFs {
    /// An empty filesystem: only `/`, durable.
    pub(crate) fn new() -> SimFs {
        let root = Node::Dir { entries: BTreeMap::new(), durable: BTreeMap::new() };
        SimFs { sim: Arc::new(Mutex::new(Sim { nodes: vec![root], ..Sim::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mutating operations so far (creates, writes, fsyncs, renames, removes, locks).
    pub(crate) fn mutations(&self) -> u64 {
        self.lock().mutations
    }

    /// The power goes after `n` more mutating operations: the next one fails, and so does
    /// every operation after it.
    pub(crate) fn cut_power_after(&self, n: u64) {
        self.lock().budget = Some(n);
    }

    /// Whether the power is gone.
    pub(crate) fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// What the disk holds after the power goes now and comes back: a fresh filesystem with
    /// every durable entry and content, plus the unsynced operations and writes `seed` keeps
    /// (see the module documentation). This filesystem is left as it is, so that several
    /// outcomes can be taken from one state (`power_loss(u64::MAX)` of a filesystem with
    /// nothing pending is an exact copy).
    pub(crate) fn power_loss(&self, seed: u64) -> SimFs {
        let sim = self.lock();
        let mut rng = Rng(seed);
        let keep = |rng: &mut Rng| match seed {
            0 => false,
            u64::MAX => true,
            _ => rng.next() & 1 == 1,
        };
        let mut survived = BTreeSet::new();
        let pending_ids: BTreeSet<u64> = sim.pending.iter().map(|op| op.id).collect();
        for op in &sim.pending {
            let dependency_ok = op.requires.is_none_or(|r| !pending_ids.contains(&r) || survived.contains(&r));
            if keep(&mut rng) && dependency_ok {
                survived.insert(op.id);
            }
        }
        let mut nodes = sim.nodes.clone();
        for node in &mut nodes {
            match node {
                Node::Dir { entries, durable } => *entries = durable.clone(),
                Node::File { data, durable, .. } => {
                    if data != durable {
                        let appended = data.starts_with(durable);
                        let len = match seed {
                            0 if appended => durable.len(),
                            0 => usize::MAX,
                            u64::MAX => data.len(),
                            _ if appended => rng.between(durable.len(), data.len()),
                            // Not an append: the old content, or a prefix of the new one.
                            _ => match rng.between(0, data.len() + 1) {
                                0 => usize::MAX,
                                n => n - 1,
                            },
                        };
                        if len != usize::MAX {
                            data.truncate(len);
                        } else {
                            *data = durable.clone();
                        }
                        *durable = data.clone();
                    }
                }
            }
        }
        for op in sim.pending.iter().filter(|op| survived.contains(&op.id)) {
            let Node::Dir { entries, durable } = &mut nodes[op.dir] else { continue };
            match op.target {
                Some(ino) => {
                    entries.insert(op.name.clone(), ino);
                }
                None => {
                    entries.remove(&op.name);
                }
            }
            *durable = entries.clone();
        }
        SimFs { sim: Arc::new(Mutex::new(Sim { nodes, ..Sim::default() })) }
    }

    /// Creates `path` with `bytes`, fsyncs it and its directory (how a careful caller hands
    /// files over).
    pub(crate) fn write_durable(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = self.create_new(path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        self.sync_dir(path.parent().unwrap_or(Path::new("/")))
    }

    /// Cuts the durable (and current) content of the file at `path` to its first `len` bytes, as
    /// a disk that tore it would have left it.
    pub(crate) fn tear(&self, path: &Path, len: usize) -> io::Result<()> {
        let mut sim = self.lock();
        let ino = sim.lookup(path)?;
        let Node::File { data, durable, .. } = &mut sim.nodes[ino] else {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "not a file"));
        };
        data.truncate(len);
        durable.truncate(len);
        Ok(())
    }

    /// Every file under `dir`, by path relative to it, with its content (empty if `dir` does not
    /// exist).
    pub(crate) fn files_under(&self, dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let sim = self.lock();
        let mut out = BTreeMap::new();
        let Ok(ino) = sim.lookup(dir) else { return out };
        let mut stack = vec![(String::new(), ino)];
        while let Some((prefix, ino)) = stack.pop() {
            match &sim.nodes[ino] {
                Node::File { data, .. } => {
                    out.insert(prefix, data.clone());
                }
                Node::Dir { entries, .. } => {
                    for (name, &child) in entries {
                        let name = name.to_string_lossy();
                        let rel = if prefix.is_empty() { name.into_owned() } else { format!("{prefix}/{name}") };
                        stack.push((rel, child));
                    }
                }
            }
        }
        out
    }
}

/// An open file of [`SimFs`].
#[derive(Debug)]
pub(crate) struct SimFile {
    fs: SimFs,
    ino: Ino,
    pos: usize,
}

impl Read for SimFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let sim = self.fs.lock();
        sim.alive()?;
        let Node::File { data, .. } = &sim.nodes[self.ino] else { unreachable!("files only") };
        let n = buf.len().min(data.len().saturating_sub(self.pos));
        buf[..n].copy_from_slice(&data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sim = self.fs.lock();
        sim.mutate()?;
        let Node::File { data, modified, .. } = &mut sim.nodes[self.ino] else { unreachable!("files only") };
        let end = self.pos + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[self.pos..end].copy_from_slice(buf);
        self.pos = end;
        *modified = SystemTime::now();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FsFile for SimFile {
    fn sync_all(&self) -> io::Result<()> {
        let mut sim = self.fs.lock();
        sim.mutate()?;
        let Node::File { data, durable, .. } = &mut sim.nodes[self.ino] else { unreachable!("files only") };
        *durable = data.clone();
        Ok(())
    }
}

/// A held lock of [`SimFs`]; released when dropped.
#[derive(Debug)]
pub(crate) struct SimLock {
    fs: SimFs,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.lock().locked.remove(&self.path);
    }
}

impl Fs for SimFs {
    type File = SimFile;
    type ReadDir = std::vec::IntoIter<io::Result<OsString>>;
    type Lock = SimLock;

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut sim = self.lock();
        sim.mutate()?;
        let (dir, name) = sim.parent(path)?;
        if sim.dir_entries(dir).is_some_and(|e| e.contains_key(&name)) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        let node = Node::File { data: Vec::new(), durable: Vec::new(), modified: SystemTime::now() };
        let ino = sim.new_node(node);
        sim.dir_op(dir, name, Some(ino), None);
        Ok(SimFile { fs: self.clone(), ino, pos: 0 })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let sim = self.lock();
        sim.alive()?;
        let ino = sim.lookup(path)?;
        if sim.dir_entries(ino).is_some() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
        }
        Ok(SimFile { fs: self.clone(), ino, pos: 0 })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        let (from_dir, from_name) = sim.parent(from)?;
        let (to_dir, to_name) = sim.parent(to)?;
        let ino = *sim.dir_entries(from_dir).and_then(|e| e.get(&from_name)).ok_or_else(|| not_found(from))?;
        if let Some(&old) = sim.dir_entries(to_dir).and_then(|e| e.get(&to_name))
            && sim.dir_entries(old).is_some()
        {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", to.display())));
        }
        if (from_dir, &from_name) == (to_dir, &to_name) {
            return Ok(());
        }
        let link = sim.dir_op(to_dir, to_name, Some(ino), None);
        sim.dir_op(from_dir, from_name, None, Some(link));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        let (dir, name) = sim.parent(path)?;
        let ino = *sim.dir_entries(dir).and_then(|e| e.get(&name)).ok_or_else(|| not_found(path))?;
        if sim.dir_entries(ino).is_some() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{} is a directory", path.display())));
        }
        sim.dir_op(dir, name, None, None);
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        let (dir, name) = sim.parent(path)?;
        if sim.dir_entries(dir).is_some_and(|e| e.contains_key(&name)) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists", path.display())));
        }
        let ino = sim.new_node(Node::Dir { entries: BTreeMap::new(), durable: BTreeMap::new() });
        sim.dir_op(dir, name, Some(ino), None);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut current = PathBuf::from("/");
        for c in path.components() {
            if let Component::Normal(name) = c {
                current.push(name);
                match self.create_dir(&current) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !self.metadata(&current)?.is_dir() {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Self::ReadDir> {
        let sim = self.lock();
        sim.alive()?;
        let ino = sim.lookup(path)?;
        let entries = sim.dir_entries(ino).ok_or_else(|| io::Error::new(io::ErrorKind::NotADirectory, "a file"))?;
        Ok(entries.keys().map(|n| Ok(n.clone())).collect::<Vec<_>>().into_iter())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.lock();
        sim.mutate()?;
        let ino = sim.lookup(path)?;
        let Node::Dir { entries, durable } = &mut sim.nodes[ino] else {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "a file"));
        };
        *durable = entries.clone();
        sim.pending.retain(|op| op.dir != ino);
        Ok(())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.symlink_metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        let sim = self.lock();
        sim.alive()?;
        let ino = sim.lookup(path)?;
        Ok(sim.metadata(ino))
    }

    fn disk_space(&self, _path: &Path) -> io::Result<DiskSpace> {
        let sim = self.lock();
        sim.alive()?;
        let used: u64 = sim
            .nodes
            .iter()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                Node::Dir { .. } => 0,
            })
            .sum();
        let blocks = 1 << 30;
        let free = blocks - used.div_ceil(4096).min(blocks);
        Ok(DiskSpace { fragment_size: 4096, blocks, free, available: free })
    }

    /// No page cache here: the file must exist, and nothing changes.
    fn drop_cached(&self, path: &Path) -> io::Result<()> {
        let sim = self.lock();
        sim.alive()?;
        sim.lookup(path).map(|_| ())
    }

    fn lock_exclusive(&self, path: &Path, content: &[u8]) -> io::Result<SimLock> {
        {
            let mut sim = self.lock();
            sim.alive()?;
            if !sim.locked.insert(path.to_owned()) {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked by another holder"));
            }
        }
        let lock = SimLock { fs: self.clone(), path: path.to_owned() };
        let mut file = match self.open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create_new(path)?,
            Err(e) => return Err(e),
        };
        {
            let mut sim = self.lock();
            sim.mutate()?;
            if let Node::File { data, .. } = &mut sim.nodes[file.ino] {
                data.clear();
            }
        }
        file.write_all(content)?;
        Ok(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fs: &SimFs, dir: &str) -> Vec<String> {
        let mut v: Vec<String> =
            fs.read_dir(Path::new(dir)).unwrap().map(|n| n.unwrap().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn synced_file_and_directory_survive_every_power_loss() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.write_durable(Path::new("/d/a"), b"hello").unwrap();
        for seed in [0, 1, 2, 3, u64::MAX] {
            let after = fs.power_loss(seed);
            assert_eq!(after.read(Path::new("/d/a")).unwrap(), b"hello");
        }
    }

    #[test]
    fn unsynced_content_comes_back_as_a_prefix() {
        let fs = SimFs::new();
        let mut f = fs.create_new(Path::new("/a")).unwrap();
        f.write_all(b"0123456789").unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        assert_eq!(fs.power_loss(0).read(Path::new("/a")).unwrap(), b"");
        assert_eq!(fs.power_loss(u64::MAX).read(Path::new("/a")).unwrap(), b"0123456789");
        let lengths: BTreeSet<usize> = (1..64).map(|s| fs.power_loss(s).read(Path::new("/a")).unwrap().len()).collect();
        assert!(lengths.len() > 3, "{lengths:?}");
        for s in 1..64 {
            let got = fs.power_loss(s).read(Path::new("/a")).unwrap();
            assert!(b"0123456789".starts_with(&got));
        }
    }

    #[test]
    fn an_entry_is_durable_only_after_its_directory_is_synced() {
        let fs = SimFs::new();
        let mut f = fs.create_new(Path::new("/a")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
        assert!(fs.power_loss(0).read(Path::new("/a")).is_err());
        fs.sync_dir(Path::new("/")).unwrap();
        assert_eq!(fs.power_loss(0).read(Path::new("/a")).unwrap(), b"x");
    }

    #[test]
    fn an_unsynced_rename_leaves_old_new_or_both_never_neither() {
        let fs = SimFs::new();
        for d in ["/src", "/dst"] {
            fs.create_dir(Path::new(d)).unwrap();
        }
        fs.sync_dir(Path::new("/")).unwrap();
        fs.write_durable(Path::new("/src/f"), b"data").unwrap();
        fs.rename(Path::new("/src/f"), Path::new("/dst/f")).unwrap();
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let after = fs.power_loss(seed);
            let state = (names(&after, "/src") == ["f"], names(&after, "/dst") == ["f"]);
            assert_ne!(state, (false, false), "seed {seed} lost the file");
            seen.insert(state);
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        // Syncing the source directory alone makes the removal durable, not the new name.
        fs.sync_dir(Path::new("/src")).unwrap();
        assert!(fs.power_loss(0).files_under(Path::new("/")).is_empty());
    }

    #[test]
    fn a_lost_directory_entry_takes_its_subtree() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.write_durable(Path::new("/d/a"), b"x").unwrap();
        assert!(fs.power_loss(0).files_under(Path::new("/")).is_empty());
        fs.sync_dir(Path::new("/")).unwrap();
        assert_eq!(fs.power_loss(0).files_under(Path::new("/")).len(), 1);
    }

    #[test]
    fn power_goes_at_the_chosen_operation() {
        let fs = SimFs::new();
        fs.cut_power_after(2);
        fs.create_dir(Path::new("/a")).unwrap();
        fs.create_dir(Path::new("/b")).unwrap();
        assert!(fs.create_dir(Path::new("/c")).is_err());
        assert!(fs.is_dead());
        assert!(fs.read_dir(Path::new("/")).is_err());
        assert_eq!(fs.mutations(), 2);
    }

    #[test]
    fn a_lock_excludes_until_dropped() {
        let fs = SimFs::new();
        let lock = fs.lock_exclusive(Path::new("/l"), b"1\n").unwrap();
        let e = fs.lock_exclusive(Path::new("/l"), b"2\n").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(lock);
        fs.lock_exclusive(Path::new("/l"), b"3\n").unwrap();
        assert_eq!(fs.read(Path::new("/l")).unwrap(), b"3\n");
    }
}
