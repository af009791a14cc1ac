//! Durable, atomic file writes.
//!
//! A reader (or a process restarted after a crash, or after the machine lost power) sees either
//! the old content or the new one, never a mix or an empty file, and the file has exactly the
//! mode asked for from its first byte (a private key is never readable by others, not even for
//! the instant between create and chmod).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of concurrent writers in one process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The temporary file beside `path` (same directory, so the rename is atomic), unique to this
/// process and call.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` with permissions `mode`: a temporary file created with `mode` (set
/// again explicitly, so the umask cannot widen or narrow it), written and fsynced, renamed over
/// `path`, then the directory fsynced so the rename itself is durable. On error `path` is left
/// as it was and the temporary file is removed.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_via_temp(path, bytes, mode, Place::Replace, true)
}

/// `atomic_write` without the fsyncs: whole or absent after a process crash (a reader never
/// sees it half written), not after a power loss. For bookkeeping records that only tests read
/// back (the noop drivers), where an fsync per record would slow every benchmark.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_via_temp(path, bytes, mode, Place::Replace, false)
}

/// Creates `path` with `bytes` only if it does not exist (`Ok(false)` if it does), atomically:
/// the file appears with its whole content or not at all, so a crash can never leave an empty
/// reservation whose owner is unknown. Durable (fsynced) like `atomic_write`.
pub fn create_exclusive(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    match write_via_temp(path, bytes, mode, Place::Exclusive, true) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

enum Place {
    /// Rename over whatever is there.
    Replace,
    /// Hard-link under the name, which fails if the name exists.
    Exclusive,
}

fn write_via_temp(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    place: Place,
    durable: bool,
) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        match place {
            Place::Replace => std::fs::rename(&tmp, path)?,
            Place::Exclusive => std::fs::hard_link(&tmp, path)?,
        }
        if durable {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    // After a rename there is nothing left to remove; after a link (or an error), the temporary
    // name goes.
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_whole_with_the_mode_asked_for_whatever_was_there() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key.pem");
        std::fs::write(&p, "old, world-readable").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        atomic_write(&p, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        assert_eq!(mode(&p), 0o600);
        atomic_write(&p, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(mode(&p), 0o755);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_exclusive_create_is_whole_and_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("10.0.0.1");
        assert!(create_exclusive(&p, b"owner-a", 0o644).unwrap());
        assert!(!create_exclusive(&p, b"owner-b", 0o644).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"owner-a");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("missing-dir").join("f");
        assert!(atomic_write(&p, b"x", 0o600).is_err());
        let q = d.path().join("f");
        std::fs::write(&q, "old").unwrap();
        // A directory in the way of the rename: the write fails, the old content stays.
        let blocked = d.path().join("dir");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("inside"), "x").unwrap();
        assert!(atomic_write(&blocked, b"new", 0o644).is_err());
        assert_eq!(std::fs::read_to_string(&q).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
