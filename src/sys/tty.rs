//! Terminals: descriptors handed over by serialport, termios2, modem lines,
//! break, flushing and the `serial_struct` of TIOCGSERIAL/TIOCSSERIAL (the
//! kernel tty transport).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// Whether `fd` is a terminal (isatty: TCGETS succeeds).
pub(crate) fn is_tty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the descriptor, which `fd` keeps open.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// The tty's termios with arbitrary baud rates (TCGETS2).
pub(crate) fn tcgets2(fd: BorrowedFd<'_>) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain data; all-zero is a valid value.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    syscall!(
        // SAFETY: TCGETS2 writes one termios2 into `t`, which is writable and that size.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCGETS2, &mut t as *mut libc::termios2) }
    )?;
    Ok(t)
}

/// Applies a termios at once (TCSETS2). The kernel may adjust what it cannot
/// do without failing: read it back with [`tcgets2`].
pub(crate) fn tcsets2(fd: BorrowedFd<'_>, t: &libc::termios2) -> io::Result<()> {
    syscall!(
        // SAFETY: TCSETS2 reads one termios2 from `t`, which lives across the call.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCSETS2, t as *const libc::termios2) }
    )
    .map(drop)
}

/// The modem lines (TIOCMGET, `TIOCM_*` bits). ENOTTY where the driver has
/// none (a pty).
pub(crate) fn modem_lines(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut bits: libc::c_int = 0;
    syscall!(
        // SAFETY: TIOCMGET writes one int into `bits`.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TIOCMGET,
                &mut bits as *mut libc::c_int,
            )
        }
    )?;
    Ok(bits)
}

/// Raises (`on`) or lowers the `TIOCM_*` output lines in `bits` (TIOCMBIS/TIOCMBIC).
pub(crate) fn set_modem_lines(fd: BorrowedFd<'_>, bits: libc::c_int, on: bool) -> io::Result<()> {
    let request = if on { libc::TIOCMBIS } else { libc::TIOCMBIC };
    syscall!(
        // SAFETY: TIOCMBIS/TIOCMBIC read one int from `bits`, which lives across the call.
        unsafe { libc::ioctl(fd.as_raw_fd(), request, &bits as *const libc::c_int) }
    )
    .map(drop)
}

/// Holds TX in break (TIOCSBRK) or releases it (TIOCCBRK).
pub(crate) fn set_break(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let request = if on { libc::TIOCSBRK } else { libc::TIOCCBRK };
    syscall!(
        // SAFETY: TIOCSBRK/TIOCCBRK take no argument.
        unsafe { libc::ioctl(fd.as_raw_fd(), request) }
    )
    .map(drop)
}

/// Bytes written but not yet sent by the driver (TIOCOUTQ).
pub(crate) fn output_queue(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    syscall!(
        // SAFETY: TIOCOUTQ writes one int into `n`.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) }
    )?;
    Ok(n.max(0) as usize)
}

/// Discards received (`libc::TCIFLUSH`) or unsent (`libc::TCOFLUSH`) data.
pub(crate) fn flush(fd: BorrowedFd<'_>, queue: libc::c_int) -> io::Result<()> {
    syscall!(
        // SAFETY: tcflush takes the descriptor and a queue selector only.
        unsafe { libc::tcflush(fd.as_raw_fd(), queue) }
    )
    .map(drop)
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
        syscall!(
            // SAFETY: TIOCGSERIAL writes one serial_struct into `ss`, whose layout matches the
            // kernel's (checked by size above).
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGSERIAL, ss as *mut SerialStruct) }
        )
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
    syscall!(
        // SAFETY: TIOCSSERIAL reads one serial_struct from `ss`, which lives across the call.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TIOCSSERIAL,
                &ss as *const SerialStruct,
            )
        }
    )?;
    get(&mut ss)?;
    Ok((ss.flags & ASYNC_LOW_LATENCY != 0) == on)
}
