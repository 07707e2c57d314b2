//! Opening input files without trusting their paths: only regular files are read (a FIFO would
//! block forever, a character device never ends), and a file that is read is checked through
//! the handle it is read from, never by its path again. Where the folder a file is listed in is
//! known, no symbolic link anywhere below it is followed, so a link swapped in after listing
//! cannot make hephy read (and put into a layer) a file of the host.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// How a file is opened for reading: never blocking on a FIFO, never becoming the controlling
/// terminal.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// What a file that is not a regular file is, for messages (`None` for regular files).
pub fn special_kind(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("folder")
    } else if kind.is_symlink() {
        Some("symbolic link")
    } else if kind.is_fifo() {
        Some("FIFO (named pipe)")
    } else if kind.is_char_device() {
        Some("character device")
    } else if kind.is_block_device() {
        Some("block device")
    } else if kind.is_socket() {
        Some("socket")
    } else {
        Some("special file")
    }
}

/// `file` if it is a regular file (checked on the handle itself), else an error saying what it is.
fn regular(fd: OwnedFd, path: &Path) -> io::Result<File> {
    let file = File::from(fd);
    let meta = file.metadata()?;
    match special_kind(meta.file_type()) {
        None => Ok(file),
        Some(kind) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is a {kind}, not a regular file", path.display()),
        )),
    }
}

fn symlink_error(e: io::Error, path: &Path) -> io::Error {
    let errno = e.raw_os_error();
    if errno == Some(rustix::io::Errno::LOOP.raw_os_error())
        || errno == Some(rustix::io::Errno::XDEV.raw_os_error())
    {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is reached through a symbolic link (was it replaced after it was listed?)",
                path.display()
            ),
        )
    } else {
        e
    }
}

/// Opens `path` for reading if it is a regular file, following symbolic links (a Dockerfile may
/// be one), but never blocking on a FIFO or reading a device: the answer is checked on the
/// handle, which is what must then be read.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(path, read_flags(), Mode::empty())?;
    regular(fd, path)
}

/// Opens `rel`, a relative path below the folder `dir`, for reading: only a regular file, and
/// no symbolic link is followed on the way (`openat2` with `RESOLVE_NO_SYMLINKS`, or one folder
/// at a time with `O_NOFOLLOW` where the kernel lacks it).
pub fn open_beneath(dir: &File, rel: &Path) -> io::Result<File> {
    open_at(dir, rel, ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)
}

/// [`open_beneath`], except that a link in a folder on the way may be followed while it stays
/// below `dir` (`RESOLVE_BENEATH`): an input reached through a linked folder of the repository
/// is hashed, one whose path leads out of it is not. (Where the kernel lacks `openat2`, no
/// link is followed.)
pub fn open_inside(dir: &File, rel: &Path) -> io::Result<File> {
    open_at(dir, rel, ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)
}

/// Opens `rel` below the folder `dir` for reading, following symbolic links (the file itself
/// may be one, a Dockerfile shared between contexts) only while they stay below `dir`: a link
/// that leads out of it (`/etc/shadow`, `/proc/self/environ`, `../..`) is refused before the
/// file is opened. The path is resolved first (links are read, not their targets), then the
/// resolved path is opened following no link at all, so a link swapped in between is refused
/// too. Only a regular file is opened.
pub fn open_below(dir: &Path, rel: &Path) -> io::Result<File> {
    let root = dir.canonicalize()?;
    let full = dir.join(rel).canonicalize()?;
    if !full.starts_with(&root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("`{}` leads outside its folder through a symbolic link: not read", rel.display()),
        ));
    }
    open_no_symlinks(&full)
}

fn open_at(dir: &File, rel: &Path, resolve: ResolveFlags) -> io::Result<File> {
    let fd = match rustix::fs::openat2(dir, rel, read_flags() | OFlags::NOFOLLOW, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
            walk(dir.as_fd(), rel).map_err(|e| symlink_error(e, rel))?
        }
        Err(e) => return Err(symlink_error(e.into(), rel)),
    };
    regular(fd, rel)
}

/// [`open_beneath`] one component at a time.
fn walk(dir: std::os::fd::BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(Ok(part)),
            Component::CurDir => None,
            _ => Some(Err(io::Error::new(io::ErrorKind::InvalidInput, "not a path below the folder"))),
        })
        .collect::<io::Result<_>>()?;
    let Some((last, folders)) = parts.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file named"));
    };
    let mut at: Option<OwnedFd> = None;
    for part in folders {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let next = match &at {
            Some(fd) => rustix::fs::openat(fd, *part, flags, Mode::empty())?,
            None => rustix::fs::openat(dir, *part, flags, Mode::empty())?,
        };
        at = Some(next);
    }
    let flags = read_flags() | OFlags::NOFOLLOW;
    Ok(match &at {
        Some(fd) => rustix::fs::openat(fd, *last, flags, Mode::empty())?,
        None => rustix::fs::openat(dir, *last, flags, Mode::empty())?,
    })
}

/// Opens `path` for reading when no component of it is a symbolic link and it is a regular
/// file: for paths made of a canonical folder and a listed file below it (a build context's).
pub fn open_no_symlinks(path: &Path) -> io::Result<File> {
    let (start, rel) = match path.strip_prefix("/") {
        Ok(rel) => (Path::new("/"), rel),
        Err(_) => (Path::new("."), path),
    };
    let dir = File::open(start)?;
    open_beneath(&dir, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_opened_and_no_link_is_followed() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/file"), "x").expect("write");
        std::fs::write(root.join("outside"), "secret").expect("write");
        std::os::unix::fs::symlink(root.join("outside"), root.join("sub/link")).expect("symlink");
        std::os::unix::fs::symlink("sub", root.join("linked")).expect("symlink");
        let status = std::process::Command::new("mkfifo").arg(root.join("fifo")).status().expect("mkfifo");
        assert!(status.success());
        let folder = File::open(root).expect("open root");
        assert!(open_beneath(&folder, Path::new("sub/file")).is_ok());
        let link = open_beneath(&folder, Path::new("sub/link")).expect_err("a link at the end");
        assert!(link.to_string().contains("symbolic link"), "{link}");
        assert!(open_beneath(&folder, Path::new("linked/file")).is_err(), "a link on the way");
        assert!(open_inside(&folder, Path::new("linked/file")).is_ok(), "a link on the way, inside");
        // A folder outside, beside the root (the host's own files are not the test's to assume).
        let away = tempfile::tempdir().expect("temp dir");
        std::fs::write(away.path().join("hostname"), "host").expect("write");
        std::os::unix::fs::symlink(away.path(), root.join("etc")).expect("symlink");
        assert!(open_inside(&folder, Path::new("etc/hostname")).is_err(), "a link out of the folder");
        assert!(walk(folder.as_fd(), Path::new("linked/file")).is_err(), "a link on the way, walking");
        assert!(walk(folder.as_fd(), Path::new("sub/link")).is_err(), "a link at the end, walking");
        assert!(walk(folder.as_fd(), Path::new("sub/file")).is_ok());
        let fifo = open_beneath(&folder, Path::new("fifo")).expect_err("a FIFO");
        assert!(fifo.to_string().contains("FIFO"), "{fifo}");
        assert!(open_regular(&root.join("fifo")).is_err(), "a FIFO is not read, and not waited for");
        assert!(open_regular(Path::new("/dev/zero")).is_err(), "a device is not read");
        assert!(open_regular(&root.join("linked/file")).is_ok(), "open_regular follows links");
        assert!(open_no_symlinks(&root.canonicalize().expect("canonical").join("sub/file")).is_ok());
        assert!(open_no_symlinks(&root.canonicalize().expect("canonical").join("linked/file")).is_err());
        assert!(open_below(root, Path::new("sub/link")).is_ok(), "a link that stays below");
        let out = open_below(root, Path::new("etc/hostname")).expect_err("a link out");
        assert!(out.to_string().contains("leads outside"), "{out}");
        std::os::unix::fs::symlink(away.path().join("hostname"), root.join("host")).expect("symlink");
        assert!(open_below(root, Path::new("host")).is_err(), "an absolute link out");
        let up = Path::new("..").join(away.path().file_name().expect("a name")).join("hostname");
        assert!(root.join(&up).is_file(), "the two temp folders are siblings");
        std::os::unix::fs::symlink(&up, root.join("up")).expect("symlink");
        assert!(open_below(root, Path::new("up")).is_err(), "a relative link out");
        assert!(open_below(root, Path::new("fifo")).is_err(), "a FIFO");
    }
}
