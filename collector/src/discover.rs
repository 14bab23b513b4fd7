//! Finding the tenants: the cgroup hierarchies of the host (v2, v1 or hybrid) and the cgroups
//! under them that match the `--tenants` globs, listed again whenever they may have changed.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// `v2`, or the v1 controller name (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`,
    /// `perf_event`).
    pub kind: String,
    pub path: PathBuf,
}

/// The cgroup v1 controllers whose hierarchies tenants are looked for in (kind names).
pub const V1_CONTROLLERS: [&str; 7] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "blkio",
    "pids",
    "perf_event",
];

/// The cgroup hierarchies under `root`: pure v2 (`root/cgroup.controllers`), or hybrid/v1
/// (`root/<ctrl>/` plus v2 at `root/unified` when present).
pub fn hierarchies(root: &Path) -> Vec<Hierarchy> {
    if root.join("cgroup.controllers").exists() {
        return vec![Hierarchy {
            kind: "v2".into(),
            path: root.to_path_buf(),
        }];
    }
    let mut v = Vec::new();
    if root.join("unified/cgroup.controllers").exists() {
        v.push(Hierarchy {
            kind: "v2".into(),
            path: root.join("unified"),
        });
    }
    for c in V1_CONTROLLERS {
        let p = root.join(c);
        // `cpu` and `cpuacct` may be one mount (`cpu,cpuacct`) reached through symlinks.
        if p.join("cgroup.procs").exists() {
            v.push(Hierarchy {
                kind: c.into(),
                path: p,
            });
        }
    }
    v
}

/// Tenants matching any glob (relative to each hierarchy), mapped to their directory in every
/// hierarchy where they exist. Keys are the relative cgroup paths. One-off form of
/// [`Discovery::find`].
pub fn discover(hier: &[Hierarchy], globs: &[String]) -> Found {
    // One listing: no inotify instance (a per-user resource) for it.
    glob_walk(hier, globs, &mut DirCache::default(), None)
}

/// Tenants by relative cgroup path, each with its directory per hierarchy kind.
pub type Found = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// Every this many ticks [`Discovery::poll`] lists the directories again even when inotify
/// reported nothing: a safety net, not the way changes are normally seen.
pub const RELIST_EVERY: u32 = 30;

/// Tenant discovery run every tick. The directories it lists are watched with inotify, so a
/// tick without a cgroup made or removed under them costs one `read` of the inotify queue
/// instead of listing every hierarchy again; it keeps the directories it lists open too.
pub struct Discovery {
    hier: Vec<Hierarchy>,
    globs: Vec<String>,
    dirs: DirCache,
    /// `None`: inotify unavailable, or a `**` glob (whose walk is not watched): list each tick.
    watch: Option<Watch>,
    last: Option<Found>,
    since_listing: u32,
}

impl Discovery {
    pub fn new(hier: Vec<Hierarchy>, globs: Vec<String>) -> Discovery {
        let watch = if globs.iter().any(|g| recursive(g)) {
            None
        } else {
            match Watch::new() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        "inotify unavailable ({e}): tenant directories are listed every tick"
                    );
                    None
                }
            }
        };
        Discovery {
            hier,
            globs,
            dirs: DirCache::default(),
            watch,
            last: None,
            since_listing: 0,
        }
    }

    /// The tenants when they may have changed since the previous call; `None` when inotify
    /// shows that no directory on the globs' paths gained or lost an entry. The first call, a
    /// call after [`Discovery::invalidate`], every [`RELIST_EVERY`]th call, and every call
    /// without inotify list the directories.
    pub fn poll(&mut self) -> Option<&Found> {
        let changed = match self.watch.as_mut() {
            None => true,
            Some(w) => w.drain() || self.last.is_none() || self.since_listing + 1 >= RELIST_EVERY,
        };
        if !changed {
            self.since_listing += 1;
            return None;
        }
        self.since_listing = 0;
        let found = self.find();
        self.last = Some(found);
        self.last.as_ref()
    }

    /// Lists again at the next [`Discovery::poll`] (e.g. after a tenant's files failed).
    pub fn invalidate(&mut self) {
        self.last = None;
    }

    /// The tenants present now (see [`discover`]), listed now.
    pub fn find(&mut self) -> Found {
        glob_walk(&self.hier, &self.globs, &mut self.dirs, self.watch.as_mut())
    }
}

/// The directories matching `globs` in every hierarchy, listed now (watched with `watch`).
fn glob_walk(
    hier: &[Hierarchy],
    globs: &[String],
    dirs: &mut DirCache,
    mut watch: Option<&mut Watch>,
) -> Found {
    let mut out: Found = BTreeMap::new();
    for h in hier {
        for g in globs {
            let g = g.trim_start_matches('/');
            for p in glob_dirs(dirs, watch.as_deref_mut(), &h.path, g) {
                let Ok(rel) = p.strip_prefix(&h.path) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                if rel.is_empty() {
                    continue;
                }
                out.entry(rel.to_string())
                    .or_default()
                    .insert(h.kind.clone(), p.clone());
            }
        }
    }
    out
}

/// Whether a glob has a `**` component (walked by the glob crate, not component by component).
fn recursive(pattern: &str) -> bool {
    pattern.split('/').any(|c| c == "**")
}

/// Directories under `root` matching the glob `pattern`, walked one path component at a time
/// by listing each directory with its entries' own types (no `stat` per candidate: discovery
/// runs every tick, and a `stat` of every cgroup under a wildcard was a quarter of the agent's
/// CPU). Patterns with `**` use the glob crate's recursive walk.
///
/// With `watch`, every directory the walk looks into is watched before it is looked into, so
/// an entry made after it was listed is reported by inotify.
fn glob_dirs(
    dirs: &mut DirCache,
    mut watch: Option<&mut Watch>,
    root: &Path,
    pattern: &str,
) -> Vec<PathBuf> {
    if recursive(pattern) {
        let Some(pat) = root.join(pattern).to_str().map(str::to_string) else {
            return Vec::new();
        };
        let Ok(paths) = glob::glob(&pat) else {
            return Vec::new();
        };
        return paths.flatten().filter(|p| p.is_dir()).collect();
    }
    let mut level = vec![root.to_path_buf()];
    // Whether the paths of `level` are known to be directories (from their entries' types).
    let mut known_dirs = true;
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let wild = comp.contains(['*', '?', '[']);
        if let Some(w) = watch.as_deref_mut() {
            for dir in &level {
                w.add(dir);
            }
        }
        let mut next = Vec::new();
        if wild {
            let Ok(pat) = glob::Pattern::new(comp) else {
                return Vec::new();
            };
            for dir in &level {
                dirs.subdirs(dir, |name| {
                    if name.to_str().is_some_and(|n| pat.matches(n)) {
                        next.push(dir.join(name));
                    }
                });
            }
            known_dirs = true;
        } else {
            next = level.iter().map(|d| d.join(comp)).collect();
            known_dirs = false;
        }
        level = next;
        if level.is_empty() {
            break;
        }
    }
    if !known_dirs {
        level.retain(|p| p.is_dir());
    }
    level.sort();
    level
}

/// An inotify instance watching directories for entries made, removed or renamed.
struct Watch {
    fd: OwnedFd,
    /// A watch could not be added: changes may go unseen, so every poll lists.
    incomplete: bool,
    buf: Vec<u8>,
}

impl Watch {
    fn new() -> std::io::Result<Watch> {
        // SAFETY: inotify_init1 has no memory-safety preconditions; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Watch {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            incomplete: false,
            buf: vec![0; 4096],
        })
    }

    /// Watches `dir` (again: inotify keeps one watch per inode). A directory that does not
    /// exist yet needs no watch: its parent's is what reports it being made.
    fn add(&mut self, dir: &Path) {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return;
        };
        let mask = libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE_SELF
            | libc::IN_MOVE_SELF
            | libc::IN_ONLYDIR;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) {
                if !self.incomplete {
                    tracing::warn!(
                        "cannot watch {} ({e}): tenant directories are listed every tick",
                        dir.display()
                    );
                }
                self.incomplete = true;
            }
        }
    }

    /// Empties the event queue: whether anything happened (or may have: an error, an overflow,
    /// or a watch that could not be added).
    fn drain(&mut self) -> bool {
        let mut any = self.incomplete;
        loop {
            // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                any = true;
            }
            return any;
        }
    }
}

/// Open directories, listed again each tick by rewinding them (`lseek` + `getdents64`): an
/// `open`, `fstat` and `close` per listed directory per tick were 4 % of the agent's CPU.
#[derive(Default)]
struct DirCache {
    open: HashMap<PathBuf, File>,
    buf: Vec<u8>,
}

impl DirCache {
    /// Calls `f` with the name of each subdirectory of `dir` (none if it cannot be listed).
    fn subdirs(&mut self, dir: &Path, mut f: impl FnMut(&OsStr)) {
        // A directory removed while open lists as empty (or fails) from then on, even if one of
        // the same name is made again, so an empty or failed listing from a kept handle is
        // retried once on a fresh one.
        let cached = self.open.contains_key(dir);
        let found = self.list(dir, &mut f);
        if cached && found.is_none_or(|n| n == 0) {
            self.list(dir, &mut f);
        }
    }

    /// Lists `dir` through its kept handle (opened if needed): `Some(number of subdirectories)`,
    /// or `None` when it cannot be read (the handle is then dropped).
    fn list(&mut self, dir: &Path, f: &mut impl FnMut(&OsStr)) -> Option<usize> {
        // Looked up by `&Path`: a kept handle costs no allocation per tick.
        if !self.open.contains_key(dir) {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(dir)
                .ok()?;
            self.open.insert(dir.to_path_buf(), file);
        }
        let fd = self.open.get(dir)?.as_raw_fd();
        if self.buf.is_empty() {
            self.buf = vec![0; 32 * 1024];
        }
        let mut count = 0;
        // SAFETY: `fd` is an open directory descriptor owned by `file`.
        if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } != 0 {
            self.open.remove(dir);
            return None;
        }
        loop {
            // SAFETY: the kernel writes at most `buf.len()` bytes of dirent64 records into it.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd,
                    self.buf.as_mut_ptr(),
                    self.buf.len(),
                )
            };
            if n < 0 {
                self.open.remove(dir);
                return None;
            }
            if n == 0 {
                break;
            }
            for (name, d_type) in Dirents(&self.buf[..n as usize]) {
                if name == b"." || name == b".." {
                    continue;
                }
                let name = OsStr::from_bytes(name);
                let is_dir = match d_type {
                    libc::DT_DIR => true,
                    libc::DT_UNKNOWN => dir.join(name).is_dir(),
                    _ => false,
                };
                if is_dir {
                    count += 1;
                    f(name);
                }
            }
        }
        if count == 0 {
            // Nothing to keep it for; an empty directory is opened afresh next time.
            self.open.remove(dir);
        }
        Some(count)
    }
}

/// The (name, type) of each `linux_dirent64` record in a `getdents64` result: d_ino (8 bytes),
/// d_off (8), d_reclen (2), d_type (1), then the NUL-terminated name.
struct Dirents<'a>(&'a [u8]);

impl<'a> Iterator for Dirents<'a> {
    type Item = (&'a [u8], u8);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        let reclen = usize::from(u16::from_ne_bytes([*b.get(16)?, *b.get(17)?]));
        if reclen < 20 || reclen > b.len() {
            return None;
        }
        let d_type = b[18];
        let name = &b[19..reclen];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        self.0 = &b[reclen..];
        Some((name, d_type))
    }
}
