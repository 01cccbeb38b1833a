//! Thin, safe wrappers over the Linux system calls the crate needs.
//!
//! Every `libc` call outside the libusb transfer code lives here, behind the
//! [`syscall!`] helper (mio's pattern), so the rest of the crate is safe Rust.
//! Nothing in this module allocates except where a doc comment says so; the
//! realtime reader and the channel call into it on the hot path.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Calls a `libc` function and turns a negative return into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract;
        // the comment at the call site says why.
        let res = unsafe { libc::$fn($($arg),*) };
        if res < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Reads `CLOCK_MONOTONIC` in nanoseconds (vDSO, no system call on x86_64).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An `eventfd(2)` counter used as a wakeup: the writer adds 1, the reader drains.
///
/// Non-blocking and close-on-exec. It is the file descriptor the application
/// polls, so it must never block the realtime thread that signals it.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes plain integer arguments.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: eventfd just returned this descriptor and nothing else owns it.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable. Never blocks; a saturated counter is
    /// already readable, so `EAGAIN` is success.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call, to our own fd.
        let _ = syscall!(write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8));
    }

    /// Resets the counter; returns whether it was signalled.
    pub(crate) fn drain(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into `value`, which is 8 bytes and writable.
        syscall!(read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8)).is_ok()
    }

    /// Blocks until signalled or `timeout` passes; `None` waits forever.
    /// Returns whether it was signalled (the counter is left as it was).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut fds = [pollfd(self.0.as_fd(), libc::POLLIN)];
        Ok(poll(&mut fds, timeout)? > 0)
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Builds a `pollfd` entry for [`poll`].
pub(crate) fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// `ppoll(2)` with nanosecond timeout resolution (plain `poll` rounds to
/// milliseconds, which is the whole latency budget here). `EINTR` counts as a
/// timeout so callers simply loop.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid slice of pollfd for its length; `ts_ptr` is null or points
    // to `ts`, which outlives the call; a null sigmask keeps the current mask.
    match syscall!(ppoll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        ts_ptr,
        std::ptr::null()
    )) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Sleeps until the absolute `CLOCK_MONOTONIC` time `t`.
pub(crate) fn sleep_until(t: crate::time::Timestamp) {
    let ns = t.as_nanos();
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be
        // null with TIMER_ABSTIME. The error number is returned, not set.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`: no page of this process may be
/// swapped out or lazily faulted in behind the realtime thread's back.
pub(crate) fn lock_all_memory() -> io::Result<()> {
    // SAFETY: mlockall takes a flag word only.
    syscall!(mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE)).map(drop)
}

/// `mlock(2)` of `len` bytes from `addr` (both page-aligned by the caller):
/// the pages are faulted in (writable ones written, so copy-on-write is
/// broken now) and stay resident. Fails with `ENOMEM` past RLIMIT_MEMLOCK.
pub(crate) fn mlock(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: mlock reads no memory of ours; the kernel checks that the range
    // is mapped and fails with ENOMEM if it is not.
    syscall!(mlock(addr as *const libc::c_void, len)).map(drop)
}

/// `munlock(2)`: the pages may be paged out again (they stay mapped).
pub(crate) fn munlock(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: as for mlock; unlocking never touches the memory.
    syscall!(munlock(addr as *const libc::c_void, len)).map(drop)
}

/// The page size (4096 on x86_64, up to 64 KiB on some arm64 kernels).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf takes an integer name and reads no memory.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// The calling thread's stack mapping as `(lowest, highest)` addresses. For
/// a thread glibc created, the top holds its TLS and thread descriptor.
pub(crate) fn current_stack() -> io::Result<(usize, usize)> {
    // SAFETY: pthread_attr_t is plain data that pthread_getattr_np initialises.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: pthread_self is always valid; `attr` is writable. The function
    // returns an error number instead of setting errno.
    let rc = unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialised above; both out-pointers are writable.
    let rc = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is destroyed once.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let low = addr as usize;
    Ok((low, low.saturating_add(size)))
}

/// The calling thread's kernel thread id (the `tid` of `/proc/self/task/<tid>`).
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and always succeeds.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Minor and major page faults the calling thread has taken since it started
/// (`getrusage(RUSAGE_THREAD)`).
pub(crate) fn thread_page_faults() -> io::Result<(u64, u64)> {
    // SAFETY: rusage is plain data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a writable rusage.
    syscall!(getrusage(libc::RUSAGE_THREAD, &mut usage))?;
    let n = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
    Ok((n(usage.ru_minflt), n(usage.ru_majflt)))
}

/// Minor and major page faults of thread `tid` of this process, from
/// `/proc/self/task/<tid>/stat` (fields 10 and 12). Allocates.
pub(crate) fn task_page_faults(tid: i32) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis, which is field 3's start.
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat format");
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let mut field = |n: usize| -> io::Result<u64> {
        fields.nth(n).and_then(|f| f.parse().ok()).ok_or_else(bad)
    };
    // After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt(10) cminflt majflt(12).
    let minor = field(7)?;
    let major = field(1)?;
    Ok((minor, major))
}

/// Bytes of memory this process has locked (`VmLck` in `/proc/self/status`),
/// all locks together (mlock, mlockall, anyone's). Allocates.
pub(crate) fn process_locked_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// `RLIMIT_MEMLOCK` soft limit in bytes; `None` means unlimited.
pub(crate) fn memlock_limit() -> io::Result<Option<u64>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    syscall!(getrlimit(libc::RLIMIT_MEMLOCK, &mut lim))?;
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

/// `RLIMIT_RTPRIO` soft limit (the highest SCHED_FIFO priority an unprivileged
/// process may take).
pub(crate) fn rtprio_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    syscall!(getrlimit(libc::RLIMIT_RTPRIO, &mut lim))?;
    Ok(lim.rlim_cur)
}

/// The CPUs the calling thread may run on, as a bit set (CPUs 0..1024).
pub(crate) fn current_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed; pid 0 means the calling thread.
    syscall!(sched_getaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &mut set
    ))?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_ISSET stays inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The CPUs this process may use: the calling thread's mask the first time
/// any thread asks (before anything here pins a thread), so a `taskset` the
/// process was started under is respected while a pinning a thread inherited
/// from its creator is not mistaken for the process's set. Allocates once.
pub(crate) fn process_cpus() -> io::Result<&'static [usize]> {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    if let Some(cpus) = CPUS.get() {
        return Ok(cpus);
    }
    let cpus = current_affinity()?;
    Ok(CPUS.get_or_init(|| cpus))
}

/// Lets the calling thread run on exactly `cpus`.
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_SET stays inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid mask of the size passed; pid 0 = this thread.
    syscall!(sched_setaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &set
    ))
    .map(drop)
}

/// Lets the calling thread run on every CPU of [`process_cpus`] (a thread
/// inherits its creator's pinning, so "unpinned" must be set).
pub(crate) fn unpin() -> io::Result<()> {
    set_affinity(process_cpus()?)
}

/// The CPU the calling thread runs on right now.
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    (cpu >= 0).then_some(cpu as usize)
}

/// Sets the calling thread's timer slack (how late the kernel may fire its
/// timers to batch wakeups; 50 µs by default for normal threads).
pub(crate) fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer; the unused arguments are zero.
    syscall!(prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0)).map(drop)
}

/// Whether the effective capability set holds `cap` (a CAP_* number), read
/// from `/proc/self/status` so no capability library is needed. Allocates.
pub(crate) fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// CAP_IPC_LOCK: may lock memory beyond RLIMIT_MEMLOCK.
pub(crate) const CAP_IPC_LOCK: u32 = 14;

/// Bytes of stack [`prefault_stack`] touches; realtime threads are spawned
/// with a larger stack than this.
pub(crate) const PREFAULT_STACK_BYTES: usize = 256 * 1024;

/// Touches the top [`PREFAULT_STACK_BYTES`] of the current thread's stack so
/// the pages are resident before the realtime loop starts (the top of it is
/// then locked, see `realtime::STACK_LOCK_BYTES`): the first call into a deep
/// function must not page-fault.
#[inline(never)]
pub(crate) fn prefault_stack() {
    let mut block = [0u8; PREFAULT_STACK_BYTES];
    // black_box makes the zeroing observable, so every page is written.
    std::hint::black_box(&mut block);
}

// --- tty ---
//
// The kernel tty transport and the pty responder: descriptors handed over by
// serialport, termios2, modem lines, break, flushing and the serial_struct
// of TIOCGSERIAL/TIOCSSERIAL.

/// Takes over the descriptor of a serialport `TTYPort` (closed on drop, with
/// no TIOCNXCL: only the port's main descriptor owns the exclusivity).
pub(crate) fn owned_fd_of(port: serialport::TTYPort) -> OwnedFd {
    use std::os::fd::IntoRawFd;
    let raw = port.into_raw_fd();
    // SAFETY: into_raw_fd hands over the open descriptor the TTYPort owned and
    // forgets the TTYPort, so nothing else will close it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Borrows the descriptor of a serialport `TTYPort` for the calls below.
pub(crate) fn tty_fd(port: &serialport::TTYPort) -> BorrowedFd<'_> {
    // SAFETY: a TTYPort holds an open descriptor from creation until it is
    // dropped or consumed; the borrow cannot outlive `port`.
    unsafe { BorrowedFd::borrow_raw(port.as_raw_fd()) }
}

/// Opens `path` read/write without becoming its controlling terminal,
/// without waiting for carrier, close-on-exec. Allocates the C path.
pub(crate) fn open_device(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call; the
    // flags need no mode argument.
    let fd = syscall!(open(
        c_path.as_ptr(),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC
    ))?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` is a terminal (isatty: TCGETS succeeds).
pub(crate) fn is_tty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the descriptor, which `fd` keeps open.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// Sets O_NONBLOCK on the open file description (shared by every dup of it).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL takes no argument and only reads the flags of our descriptor.
    let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
    // SAFETY: F_SETFL takes an int flag word; the descriptor is ours.
    syscall!(fcntl(
        fd.as_raw_fd(),
        libc::F_SETFL,
        flags | libc::O_NONBLOCK
    ))
    .map(drop)
}

/// Sets FD_CLOEXEC on a descriptor that was opened without it.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_SETFD takes an int flag word; the descriptor is ours.
    syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC)).map(drop)
}

/// One `read(2)` into `buf`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: writes at most `buf.len()` bytes into `buf`, which is writable for that length.
    syscall!(read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// One `write(2)` of `data`.
pub(crate) fn write(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: reads at most `data.len()` bytes from `data`, which is readable for that length.
    syscall!(write(fd.as_raw_fd(), data.as_ptr().cast(), data.len())).map(|n| n as usize)
}

/// The tty's termios with arbitrary baud rates (TCGETS2).
pub(crate) fn tcgets2(fd: BorrowedFd<'_>) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain data; all-zero is a valid value.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    // SAFETY: TCGETS2 writes one termios2 into `t`, which is writable and that size.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::TCGETS2,
        &mut t as *mut libc::termios2
    ))?;
    Ok(t)
}

/// Applies a termios at once (TCSETS2). The kernel may adjust what it cannot
/// do without failing: read it back with [`tcgets2`].
pub(crate) fn tcsets2(fd: BorrowedFd<'_>, t: &libc::termios2) -> io::Result<()> {
    // SAFETY: TCSETS2 reads one termios2 from `t`, which lives across the call.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::TCSETS2,
        t as *const libc::termios2
    ))
    .map(drop)
}

/// The modem lines (TIOCMGET, `TIOCM_*` bits). ENOTTY where the driver has
/// none (a pty).
pub(crate) fn modem_lines(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut bits: libc::c_int = 0;
    // SAFETY: TIOCMGET writes one int into `bits`.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::TIOCMGET,
        &mut bits as *mut libc::c_int
    ))?;
    Ok(bits)
}

/// Raises (`on`) or lowers the `TIOCM_*` output lines in `bits` (TIOCMBIS/TIOCMBIC).
pub(crate) fn set_modem_lines(fd: BorrowedFd<'_>, bits: libc::c_int, on: bool) -> io::Result<()> {
    let request = if on { libc::TIOCMBIS } else { libc::TIOCMBIC };
    // SAFETY: TIOCMBIS/TIOCMBIC read one int from `bits`, which lives across the call.
    syscall!(ioctl(fd.as_raw_fd(), request, &bits as *const libc::c_int)).map(drop)
}

/// Holds TX in break (TIOCSBRK) or releases it (TIOCCBRK).
pub(crate) fn set_break(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let request = if on { libc::TIOCSBRK } else { libc::TIOCCBRK };
    // SAFETY: TIOCSBRK/TIOCCBRK take no argument.
    syscall!(ioctl(fd.as_raw_fd(), request)).map(drop)
}

/// Bytes written but not yet sent by the driver (TIOCOUTQ).
pub(crate) fn output_queue(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int into `n`.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::TIOCOUTQ,
        &mut n as *mut libc::c_int
    ))?;
    Ok(n.max(0) as usize)
}

/// Discards received (`libc::TCIFLUSH`) or unsent (`libc::TCOFLUSH`) data.
pub(crate) fn flush(fd: BorrowedFd<'_>, queue: libc::c_int) -> io::Result<()> {
    // SAFETY: tcflush takes the descriptor and a queue selector only.
    syscall!(tcflush(fd.as_raw_fd(), queue)).map(drop)
}

/// `ASYNC_LOW_LATENCY` (bit 13 of `serial_struct.flags`): ftdi_sio then runs
/// the chip's latency timer at 1 ms whatever sysfs says.
pub(crate) const ASYNC_LOW_LATENCY: libc::c_int = 1 << 13;

/// `struct serial_struct` of `<linux/serial.h>` (libc does not define it),
/// field for field, so TIOCGSERIAL writes exactly this many bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SerialStruct {
    kind: libc::c_int,
    line: libc::c_int,
    port: libc::c_uint,
    irq: libc::c_int,
    flags: libc::c_int,
    xmit_fifo_size: libc::c_int,
    custom_divisor: libc::c_int,
    baud_base: libc::c_int,
    close_delay: libc::c_ushort,
    io_type: libc::c_char,
    reserved_char: [libc::c_char; 1],
    hub6: libc::c_int,
    closing_wait: libc::c_ushort,
    closing_wait2: libc::c_ushort,
    iomem_base: *mut libc::c_uchar,
    iomem_reg_shift: libc::c_ushort,
    port_high: libc::c_uint,
    iomap_base: libc::c_ulong,
}

// The kernel copies sizeof(struct serial_struct) bytes: 72 on 64-bit, 60 on 32-bit.
const _: () = assert!(
    std::mem::size_of::<SerialStruct>()
        == if cfg!(target_pointer_width = "64") {
            72
        } else {
            60
        }
);

/// Sets or clears `ASYNC_LOW_LATENCY` (TIOCGSERIAL, TIOCSSERIAL, then
/// TIOCGSERIAL again). Returns whether the flag is now as asked: a driver may
/// accept the call and ignore the flag. ENOTTY where the driver has no
/// serial_struct (a pty).
pub(crate) fn set_low_latency(fd: BorrowedFd<'_>, on: bool) -> io::Result<bool> {
    let get = |ss: &mut SerialStruct| {
        // SAFETY: TIOCGSERIAL writes one serial_struct into `ss`, whose layout matches the
        // kernel's (checked by size above).
        syscall!(ioctl(
            fd.as_raw_fd(),
            libc::TIOCGSERIAL,
            ss as *mut SerialStruct
        ))
        .map(drop)
    };
    // SAFETY: SerialStruct is plain data (a null pointer is a valid raw pointer); all-zero is valid.
    let mut ss: SerialStruct = unsafe { std::mem::zeroed() };
    get(&mut ss)?;
    if on {
        ss.flags |= ASYNC_LOW_LATENCY;
    } else {
        ss.flags &= !ASYNC_LOW_LATENCY;
    }
    // SAFETY: TIOCSSERIAL reads one serial_struct from `ss`, which lives across the call.
    syscall!(ioctl(
        fd.as_raw_fd(),
        libc::TIOCSSERIAL,
        &ss as *const SerialStruct
    ))?;
    get(&mut ss)?;
    Ok((ss.flags & ASYNC_LOW_LATENCY != 0) == on)
}

// --- scheduling of other threads (the USB/IP front end) ---

/// Puts thread `pid` (any thread, e.g. a kernel thread found in /proc)
/// under `SCHED_FIFO` at `priority`. Needs CAP_SYS_NICE.
#[cfg(feature = "usbip")]
pub(crate) fn set_fifo_priority_of(pid: libc::pid_t, priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: `param` is a valid sched_param that lives across the call; the
    // kernel checks the pid and the priority and reports errors through errno.
    syscall!(sched_setscheduler(pid, libc::SCHED_FIFO, &param)).map(drop)
}

/// The scheduling policy (`SCHED_*`) and realtime priority of thread `pid`.
#[cfg(feature = "usbip")]
pub(crate) fn scheduler_of(pid: libc::pid_t) -> io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: sched_getscheduler takes a pid only.
    let policy = syscall!(sched_getscheduler(pid))?;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, writable sched_param.
    syscall!(sched_getparam(pid, &mut param))?;
    Ok((policy, param.sched_priority))
}
