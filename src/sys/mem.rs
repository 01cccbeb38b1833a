//! Memory: locking (`mlock`, `mlockall`), the page size, the calling
//! thread's stack and prefaulting it, and page-fault counts (`getrusage`,
//! `/proc`) for the realtime memory modes and the statistics.

use std::io;

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`: no page of this process may be
/// swapped out or lazily faulted in behind the realtime thread's back.
pub(crate) fn lock_all_memory() -> io::Result<()> {
    syscall!(
        // SAFETY: mlockall takes a flag word only.
        unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) }
    )
    .map(drop)
}

/// `mlock(2)` of `len` bytes from `addr` (both page-aligned by the caller):
/// the pages are faulted in (writable ones written, so copy-on-write is
/// broken now) and stay resident. Fails with `ENOMEM` past RLIMIT_MEMLOCK.
pub(crate) fn mlock(addr: usize, len: usize) -> io::Result<()> {
    syscall!(
        // SAFETY: mlock reads no memory of ours; the kernel checks that the range
        // is mapped and fails with ENOMEM if it is not.
        unsafe { libc::mlock(addr as *const libc::c_void, len) }
    )
    .map(drop)
}

/// `munlock(2)`: the pages may be paged out again (they stay mapped).
pub(crate) fn munlock(addr: usize, len: usize) -> io::Result<()> {
    syscall!(
        // SAFETY: as for mlock; unlocking never touches the memory.
        unsafe { libc::munlock(addr as *const libc::c_void, len) }
    )
    .map(drop)
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

/// Minor and major page faults the calling thread has taken since it started
/// (`getrusage(RUSAGE_THREAD)`).
pub(crate) fn thread_page_faults() -> io::Result<(u64, u64)> {
    // SAFETY: rusage is plain data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    syscall!(
        // SAFETY: `usage` is a writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }
    )?;
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

/// CPU time thread `tid` of this process has run, in nanoseconds, from
/// `/proc/self/task/<tid>/schedstat` (its first field; nanosecond
/// resolution, where `stat`'s utime and stime count 10 ms ticks). Allocates.
pub(crate) fn task_cpu_ns(tid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
    stat.split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected schedstat format"))
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
    syscall!(
        // SAFETY: `lim` is a valid, writable rlimit.
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) }
    )?;
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

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
