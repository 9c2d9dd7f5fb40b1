//! Writing the report to a path the user typed, without destroying anything by accident.
//!
//! See issue 9: `report PATH` used to overwrite existing files, follow symlinks and try device
//! paths. [`save`] now:
//!
//! - refuses `/proc`, `/sys` and `/dev` (as typed, and after resolving the folder's symlinks),
//!   and anything that exists but is not a regular file (a folder, a device, a FIFO, a socket);
//! - without `overwrite`, refuses an existing file and any symlink (even a dangling one), and says
//!   so with [`SaveError::Exists`] / [`SaveError::Symlink`] so the caller can ask;
//! - with `overwrite`, replaces an existing file, and writes through a symlink to the regular file
//!   it points at (the link stays a link);
//! - always writes a temporary file next to the target first and then moves it into place, so
//!   a failed write never leaves half a report, and a new file is linked into place without
//!   replacing one that appeared meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a report was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// The path names nothing.
    #[error("the path is empty")]
    Empty,
    /// A pseudo-file system or device folder.
    #[error(
        "{0} is a system path (/proc, /sys or /dev); reports are written to ordinary files only"
    )]
    SystemPath(String),
    /// Something that is not a regular file is already there.
    #[error("{path} exists and is {kind}, not a regular file")]
    NotAFile {
        /// The path as typed.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A regular file is already there and overwriting was not asked for.
    #[error("{0} already exists")]
    Exists(String),
    /// The path is a symlink and writing through it was not asked for.
    #[error("{path} is a symbolic link to {target}")]
    Symlink {
        /// The path as typed.
        path: String,
        /// Where it points.
        target: String,
    },
    /// The file system said no.
    #[error("{path}: {source}")]
    Io {
        /// The path written (or the temporary file next to it).
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl SaveError {
    /// Whether asking the user (and then saving with `overwrite`) could succeed.
    pub(crate) fn can_confirm(&self) -> bool {
        matches!(self, Self::Exists(_) | Self::Symlink { .. })
    }
}

/// Writes `contents` to `path` under the rules of the [module docs](self). Returns the file
/// written when it was reached through a symlink (`None` when `path` itself was written).
pub(crate) fn save(
    path: &str,
    contents: &[u8],
    overwrite: bool,
) -> Result<Option<PathBuf>, SaveError> {
    if path.trim().is_empty() {
        return Err(SaveError::Empty);
    }
    let typed = Path::new(path);
    let io_err = |p: &Path| {
        let p = p.display().to_string();
        move |source| SaveError::Io { path: p, source }
    };
    let absolute = if typed.is_absolute() {
        typed.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_err(typed))?.join(typed)
    };
    refuse_system(&absolute, path)?;
    let mut target = absolute.clone();
    let mut existing = None;
    let mut through_link = false;
    match fs::symlink_metadata(&absolute) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(typed)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let link = fs::read_link(&absolute).map_err(io_err(typed))?;
            if !overwrite {
                return Err(SaveError::Symlink {
                    path: path.to_owned(),
                    target: link.display().to_string(),
                });
            }
            // Writing through the link means writing the file it names, which must itself be
            // an ordinary file outside the system folders.
            let resolved = fs::canonicalize(&absolute).map_err(io_err(typed))?;
            refuse_system(&resolved, path)?;
            let meta = fs::metadata(&resolved).map_err(io_err(&resolved))?;
            if !meta.is_file() {
                return Err(SaveError::NotAFile {
                    path: path.to_owned(),
                    kind: kind_of(&meta.file_type()),
                });
            }
            target = resolved;
            existing = Some(meta);
            through_link = true;
        }
        Ok(meta) if !meta.is_file() => {
            return Err(SaveError::NotAFile {
                path: path.to_owned(),
                kind: kind_of(&meta.file_type()),
            });
        }
        Ok(_) if !overwrite => return Err(SaveError::Exists(path.to_owned())),
        Ok(meta) => existing = Some(meta),
    }
    // The folder's own symlinks may lead into a system folder.
    let dir = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let real_dir = fs::canonicalize(&dir).map_err(io_err(&dir))?;
    refuse_system(&real_dir, path)?;

    let (tmp_path, mut file) = temporary(&real_dir, &target).map_err(io_err(&real_dir))?;
    let written = (|| {
        file.write_all(contents)?;
        if let Some(meta) = &existing {
            file.set_permissions(meta.permissions())?;
        }
        file.sync_all()
    })();
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(io_err(&target)(e));
    }
    let placed = if existing.is_some() {
        fs::rename(&tmp_path, &target)
    } else {
        // A hard link never replaces what is there, so a file created since the check above is
        // kept; where links are not supported, fall back to a rename after one more check.
        match fs::hard_link(&tmp_path, &target) {
            Ok(()) => fs::remove_file(&tmp_path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp_path);
                return Err(SaveError::Exists(path.to_owned()));
            }
            Err(_) if fs::symlink_metadata(&target).is_ok() => {
                let _ = fs::remove_file(&tmp_path);
                return Err(SaveError::Exists(path.to_owned()));
            }
            Err(_) => fs::rename(&tmp_path, &target),
        }
    };
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp_path);
        return Err(io_err(&target)(e));
    }
    Ok(through_link.then_some(target))
}

/// Refuses a path under `/proc`, `/sys` or `/dev` (compared component by component, so
/// `/devices-report.md` is fine).
fn refuse_system(path: &Path, typed: &str) -> Result<(), SaveError> {
    let mut parts = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    let first_two = (parts.next(), parts.next());
    if let (Some(Component::RootDir), Some(Component::Normal(top))) = first_two
        && ["proc", "sys", "dev"].iter().any(|s| top == *s)
    {
        return Err(SaveError::SystemPath(typed.to_owned()));
    }
    Ok(())
}

fn kind_of(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() { "a folder" } else { "not a file" }
}

/// A new, empty temporary file in `dir`, named after `target`, readable by the owner only (the
/// report names people and what they did).
fn temporary(dir: &Path, target: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pim-save-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn s(p: &Path) -> String {
        p.display().to_string()
    }

    #[test]
    fn a_new_file_is_written_and_no_temporary_is_left() {
        let d = dir("new");
        let p = d.join("r.md");
        assert_eq!(save(&s(&p), b"report", false).unwrap(), None);
        assert_eq!(fs::read_to_string(&p).unwrap(), "report");
        let left: Vec<_> = fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn an_existing_file_is_kept_unless_overwrite_is_asked() {
        let d = dir("exists");
        let p = d.join("r.md");
        fs::write(&p, "precious").unwrap();
        let e = save(&s(&p), b"report", false).unwrap_err();
        assert!(matches!(e, SaveError::Exists(_)) && e.can_confirm(), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "precious");
        save(&s(&p), b"report", true).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "report");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_not_followed_unless_asked_and_then_stays_a_link() {
        let d = dir("link");
        let real = d.join("real.md");
        fs::write(&real, "precious").unwrap();
        let link = d.join("link.md");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = save(&s(&link), b"report", false).unwrap_err();
        assert!(
            matches!(e, SaveError::Symlink { .. }) && e.can_confirm(),
            "{e}"
        );
        assert!(e.to_string().contains("real.md"), "{e}");
        assert_eq!(fs::read_to_string(&real).unwrap(), "precious");
        // A dangling link is refused too: creating its target is writing through it.
        let dangling = d.join("dangling.md");
        std::os::unix::fs::symlink(d.join("nowhere.md"), &dangling).unwrap();
        assert!(matches!(
            save(&s(&dangling), b"x", false),
            Err(SaveError::Symlink { .. })
        ));
        assert!(!d.join("nowhere.md").exists());

        let written = save(&s(&link), b"report", true).unwrap();
        assert_eq!(written, Some(fs::canonicalize(&real).unwrap()));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "report");
    }

    #[cfg(unix)]
    #[test]
    fn devices_proc_and_non_files_are_refused_even_with_overwrite() {
        for p in [
            "/dev/null",
            "/dev/stdout",
            "/proc/self/fd/1",
            "/sys/kernel/x",
            "/proc/../proc/self/environ",
        ] {
            for overwrite in [false, true] {
                let e = save(p, b"x", overwrite).unwrap_err();
                assert!(matches!(e, SaveError::SystemPath(_)), "{p}: {e}");
                assert!(!e.can_confirm());
            }
        }
        let d = dir("nonfile");
        let e = save(&s(&d), b"x", true).unwrap_err();
        assert!(
            matches!(
                e,
                SaveError::NotAFile {
                    kind: "a folder",
                    ..
                }
            ),
            "{e}"
        );
        // A link to a device, or a folder that links into /dev, is refused after resolving.
        let link = d.join("null.md");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(matches!(
            save(&s(&link), b"x", true),
            Err(SaveError::SystemPath(_))
        ));
        let via = d.join("devdir");
        std::os::unix::fs::symlink("/dev", &via).unwrap();
        assert!(matches!(
            save(&s(&via.join("r.md")), b"x", true),
            Err(SaveError::SystemPath(_))
        ));
        assert!(matches!(save("  ", b"x", true), Err(SaveError::Empty)));
    }

    #[cfg(unix)]
    #[test]
    fn a_new_report_is_private_and_an_overwritten_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = dir("mode");
        let p = d.join("r.md");
        save(&s(&p), b"x", false).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        save(&s(&p), b"y", true).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
