//! Plain descriptor I/O: opening a device node, flags, one `read(2)` or
//! `write(2)` (the tty transport's reader and writer).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens `path` read/write without becoming its controlling terminal,
/// without waiting for carrier, close-on-exec. Allocates the C path.
pub(crate) fn open_device(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))?;
    let fd = syscall!(
        // SAFETY: `c_path` is a NUL-terminated string that outlives the call; the
        // flags need no mode argument.
        unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        }
    )?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets O_NONBLOCK on the open file description (shared by every dup of it).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = syscall!(
        // SAFETY: F_GETFL takes no argument and only reads the flags of our descriptor.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }
    )?;
    syscall!(
        // SAFETY: F_SETFL takes an int flag word; the descriptor is ours.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }
    )
    .map(drop)
}

/// One `read(2)` into `buf`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    syscall!(
        // SAFETY: writes at most `buf.len()` bytes into `buf`, which is writable for that length.
        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    )
    .map(|n| n as usize)
}

/// One `write(2)` of `data`.
pub(crate) fn write(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    syscall!(
        // SAFETY: reads at most `data.len()` bytes from `data`, which is readable for that length.
        unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) }
    )
    .map(|n| n as usize)
}

/// Whether another open file description holds an `flock(2)` lock, shared
/// or exclusive, on the file `fd` refers to: then serialport's exclusive
/// open (which takes `LOCK_EX`) would fail. Tried with an exclusive lock
/// that is released at once; the answer can be stale by the time it is
/// read, so it only names a failure that follows.
pub(crate) fn flock_held_elsewhere(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let taken = syscall!(
        // SAFETY: flock takes our descriptor and an operation word; it touches no memory.
        unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }
    );
    match taken {
        Ok(_) => {
            syscall!(
                // SAFETY: as above; releases the lock this descriptor just took.
                unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) }
            )?;
            Ok(false)
        }
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(true),
        Err(e) => Err(e),
    }
}
