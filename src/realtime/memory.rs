//! Keeping what a realtime thread touches resident, without taking the
//! application's memory hostage.
//!
//! By default ([`MemoryLocking::HotPath`]) a thread locks only the pages its
//! hot path touches: the top of its stack (with its TLS) and, for the reader,
//! the channel ring, the transfer buffers and the state it writes per packet,
//! which each component reports into [`HotRegions`] after writing through its
//! fresh buffers (prefaulting them). `mlock(2)` on those ranges needs no
//! capability while the process stays within `RLIMIT_MEMLOCK`; what does not
//! fit stays prefaulted and the status says so. Locking the whole process
//! (`mlockall`) is the explicit [`MemoryLocking::WholeProcess`].
//!
//! mlock is per page and not counted: two ports whose state shares a heap
//! page would unlock each other's page on close. A process-wide registry
//! counts the holders of each page this crate locked, so a page is unlocked
//! only when its last holder lets go; its mutex is taken at setup and
//! teardown only, never per packet. Pages someone else had already locked
//! (the application's own `mlock`/`mlockall`) are detected from `VmLck` not
//! growing by what was locked, and are then never unlocked by this crate.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// How a realtime thread keeps its memory resident (new in issue 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryLocking {
    /// Nothing is locked. Fresh buffers and the top of the stack are still
    /// prefaulted, so only memory pressure (swap) can fault them again.
    Off,
    /// Lock (`mlock`) and prefault only what the thread's hot path touches.
    /// Needs no grant while it fits `RLIMIT_MEMLOCK` (8 MiB by default on
    /// current kernels, 64 KiB on older ones); what does not fit is
    /// prefaulted but not locked, and [`MemoryStatus::not_locked`] says why.
    #[default]
    HotPath,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)`: every page of the process, now
    /// and later, for applications that want their own memory locked too.
    /// Needs `CAP_IPC_LOCK` or an unlimited `RLIMIT_MEMLOCK`; it stays in
    /// force after the port closes (the process chose it).
    WholeProcess,
}

/// One kind of memory on the hot path and its page-rounded size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HotRegion {
    /// What it is ("stack", "channel ring", "transfer buffers", ...).
    pub what: &'static str,
    /// Bytes, rounded out to whole pages.
    pub bytes: usize,
}

/// What was made resident, and how (new in issue 17).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStatus {
    /// What was asked for.
    pub locking: MemoryLocking,
    /// The hot path's memory by kind.
    pub regions: Vec<HotRegion>,
    /// All of it (the sum of [`regions`](Self::regions)), prefaulted before
    /// the first packet.
    pub hot_path_bytes: usize,
    /// Of that, bytes locked: by `mlock` (HotPath) or by `mlockall` (WholeProcess).
    pub locked_bytes: usize,
    /// Bytes the whole process had locked right after setup (`VmLck`), when readable.
    pub process_locked_bytes: Option<usize>,
    /// Why part of the hot path is prefaulted but not locked, if it is.
    pub not_locked: Option<String>,
}

impl MemoryStatus {
    /// Adds what a later locking step obtained (the reader locks its stack
    /// first, its buffers after).
    pub(crate) fn absorb(&mut self, later: MemoryStatus) {
        for region in later.regions {
            match self.regions.iter_mut().find(|r| r.what == region.what) {
                Some(r) => r.bytes += region.bytes,
                None => self.regions.push(region),
            }
        }
        self.hot_path_bytes += later.hot_path_bytes;
        self.locked_bytes += later.locked_bytes;
        self.process_locked_bytes = later.process_locked_bytes.or(self.process_locked_bytes);
        self.not_locked = match (self.not_locked.take(), later.not_locked) {
            (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
    }
}

impl fmt::Display for MemoryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |b: usize| b.div_ceil(1024);
        match self.locking {
            MemoryLocking::Off => write!(
                f,
                "memory not locked (hot path {} KiB prefaulted)",
                kib(self.hot_path_bytes)
            ),
            MemoryLocking::WholeProcess => {
                write!(f, "whole process locked (mlockall")?;
                if let Some(b) = self.process_locked_bytes {
                    write!(f, ", {} KiB", kib(b))?;
                }
                write!(f, "), hot path {} KiB", kib(self.hot_path_bytes))
            }
            MemoryLocking::HotPath => {
                write!(f, "hot path {} KiB", kib(self.hot_path_bytes))?;
                match &self.not_locked {
                    None => write!(f, " locked (mlock)"),
                    Some(why) => write!(
                        f,
                        " prefaulted, {} KiB of it locked (mlock): {why}",
                        kib(self.locked_bytes)
                    ),
                }
            }
        }
    }
}

/// The address ranges a hot path touches, collected before it runs.
#[derive(Debug, Default)]
pub(crate) struct HotRegions {
    ranges: Vec<(&'static str, usize, usize)>,
}

impl HotRegions {
    /// Adds the memory of `value` (a struct, an array, a slice).
    pub(crate) fn add<T: ?Sized>(&mut self, what: &'static str, value: &T) {
        let addr = (value as *const T).cast::<u8>() as usize;
        self.add_range(what, addr, std::mem::size_of_val(value));
    }

    /// Writes `fill` into every free slot of `ring` without publishing it
    /// (the consumer never sees uncommitted slots), so the slots are
    /// resident, and adds them. rtrb allocates the slots uninitialised.
    pub(crate) fn prefault_ring<T: Copy>(
        &mut self,
        what: &'static str,
        ring: &mut rtrb::Producer<T>,
        fill: T,
    ) {
        self.add(what, ring.buffer());
        let free = ring.slots();
        if let Ok(mut chunk) = ring.write_chunk_uninit(free) {
            let (a, b) = chunk.as_mut_slices();
            for slot in a.iter_mut().chain(b.iter_mut()) {
                slot.write(fill);
            }
            self.add(what, &*a);
            self.add(what, &*b);
            // Dropped without commit: nothing is published.
        }
    }

    /// Adds `len` bytes from `addr`.
    pub(crate) fn add_range(&mut self, what: &'static str, addr: usize, len: usize) {
        if len > 0 {
            self.ranges.push((what, addr, len));
        }
    }
}

/// Pages this crate locked, with how many holders each has.
static LOCKED_PAGES: Mutex<BTreeMap<usize, u32>> = Mutex::new(BTreeMap::new());

/// Some thread of this process ran `mlockall` through this crate: every page
/// is locked, and unlocking a range would punch a hole into that.
static WHOLE_PROCESS_LOCKED: AtomicBool = AtomicBool::new(false);

/// Records that `mlockall` succeeded.
pub(crate) fn note_whole_process_locked() {
    WHOLE_PROCESS_LOCKED.store(true, Ordering::SeqCst);
}

/// Pages locked on behalf of one holder; unlocks them (those no other holder
/// needs) when released or dropped. Release it while the memory is mapped.
#[derive(Debug, Default)]
pub(crate) struct MemoryLease {
    pages: Vec<usize>,
    /// Some of the pages were locked by someone else before: leave all locked.
    keep_locked: bool,
}

impl MemoryLease {
    /// Lets go of the pages; unlocks those no other holder needs.
    pub(crate) fn release(&mut self) {
        if self.pages.is_empty() {
            return;
        }
        let page = sys::mem::page_size();
        let keep = self.keep_locked || WHOLE_PROCESS_LOCKED.load(Ordering::SeqCst);
        let mut registry = LOCKED_PAGES.lock().unwrap_or_else(|p| p.into_inner());
        let mut freed = Vec::new();
        for p in self.pages.drain(..) {
            if let Some(count) = registry.get_mut(&p) {
                *count -= 1;
                if *count == 0 {
                    registry.remove(&p);
                    freed.push(p);
                }
            }
        }
        if !keep {
            for (start, n) in runs(&freed) {
                // Failure leaves the pages locked, which is safe.
                let _ = sys::mem::munlock(start * page, n * page);
            }
        }
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.release();
    }
}

/// Consecutive page numbers of a sorted list, as `(first, count)`.
fn runs(pages: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &p in pages {
        match out.last_mut() {
            Some((start, n)) if *start + *n == p => *n += 1,
            _ => out.push((p, 1)),
        }
    }
    out
}

/// Bytes `mlock` may still add without CAP_IPC_LOCK (`None`: no limit applies).
fn memlock_budget() -> Option<(usize, usize, usize)> {
    if sys::sched::has_capability(sys::sched::CAP_IPC_LOCK) {
        return None;
    }
    let limit = usize::try_from(sys::mem::memlock_limit().ok()??).unwrap_or(usize::MAX);
    let used = sys::mem::process_locked_bytes().unwrap_or(0);
    Some((limit, used, limit.saturating_sub(used)))
}

/// Makes `regions` resident as `locking` asks; the caller has already written
/// through fresh buffers. Returns the lease (empty unless pages were locked
/// here) and what was obtained. Never fails: what cannot be locked is
/// reported in [`MemoryStatus::not_locked`].
pub(crate) fn lock_regions(
    locking: MemoryLocking,
    regions: &HotRegions,
) -> (MemoryLease, MemoryStatus) {
    let page = sys::mem::page_size();
    let mut status = MemoryStatus {
        locking,
        ..MemoryStatus::default()
    };
    // Page sets in priority order (the order the regions were added), each
    // page counted once, under the first kind that names it.
    let mut seen = BTreeSet::new();
    let mut ordered: Vec<(&'static str, Vec<usize>)> = Vec::new();
    for &(what, addr, len) in &regions.ranges {
        let first = addr / page;
        let last = addr.saturating_add(len - 1) / page;
        let fresh: Vec<usize> = (first..=last).filter(|p| seen.insert(*p)).collect();
        status.hot_path_bytes += fresh.len() * page;
        match status.regions.iter_mut().find(|r| r.what == what) {
            Some(r) => r.bytes += fresh.len() * page,
            None => status.regions.push(HotRegion {
                what,
                bytes: fresh.len() * page,
            }),
        }
        ordered.push((what, fresh));
    }
    // A kind whose pages were all counted under an earlier kind is not listed.
    status.regions.retain(|r| r.bytes > 0);
    let mut lease = MemoryLease::default();
    match locking {
        MemoryLocking::Off => return (lease, status),
        MemoryLocking::WholeProcess => {
            status.locked_bytes = status.hot_path_bytes;
            status.process_locked_bytes = sys::mem::process_locked_bytes();
            return (lease, status);
        }
        MemoryLocking::HotPath if WHOLE_PROCESS_LOCKED.load(Ordering::SeqCst) => {
            // mlockall is in force: everything is locked already.
            status.locked_bytes = status.hot_path_bytes;
            status.process_locked_bytes = sys::mem::process_locked_bytes();
            return (lease, status);
        }
        MemoryLocking::HotPath => {}
    }

    let budget = memlock_budget();
    let mut left = budget.map_or(usize::MAX, |(_, _, left)| left / page);
    let mut refused: Option<std::io::Error> = None;
    let mut newly_locked = 0usize;
    let mut registry = LOCKED_PAGES.lock().unwrap_or_else(|p| p.into_inner());
    let before = sys::mem::process_locked_bytes();
    for (_, pages) in &ordered {
        let mut fresh = Vec::new();
        for &p in pages {
            match registry.get_mut(&p) {
                // Another holder locked it: share it.
                Some(count) => {
                    *count += 1;
                    lease.pages.push(p);
                    status.locked_bytes += page;
                }
                None => fresh.push(p),
            }
        }
        for (start, n) in runs(&fresh) {
            let fit = n.min(left);
            if fit == 0 || refused.is_some() {
                continue;
            }
            match sys::mem::mlock(start * page, fit * page) {
                Ok(()) => {
                    for p in start..start + fit {
                        registry.insert(p, 1);
                        lease.pages.push(p);
                    }
                    left -= fit;
                    newly_locked += fit;
                    status.locked_bytes += fit * page;
                }
                Err(e) => refused = Some(e),
            }
        }
    }
    let after = sys::mem::process_locked_bytes();
    drop(registry);
    // VmLck grows only by pages that were not locked before: if it grew by
    // less, some belonged to someone else's lock, which must survive ours.
    lease.keep_locked = match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) < newly_locked * page,
        _ => true,
    };
    status.process_locked_bytes = after;
    if status.locked_bytes < status.hot_path_bytes {
        let missing = status.hot_path_bytes - status.locked_bytes;
        status.not_locked = Some(match (&refused, budget) {
            (Some(e), _) => format!("mlock was refused ({e})"),
            (None, Some((limit, used, _))) => format!(
                "RLIMIT_MEMLOCK is {} KiB and {} KiB were locked already; raising it by {} KiB \
                 (`<user> - memlock <KiB>` in /etc/security/limits.d/, LimitMEMLOCK= for a \
                 service) or CAP_IPC_LOCK locks the rest",
                limit / 1024,
                used / 1024,
                missing.div_ceil(1024)
            ),
            (None, None) => "mlock could not lock it".into(),
        });
    }
    (lease, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Locked:` figure (KiB) of the mapping that holds `addr`, from
    /// /proc/self/smaps: a per-mapping view no other test disturbs.
    fn locked_kib_of_mapping(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
            if inside && let Some(v) = line.strip_prefix("Locked:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn shared_pages_stay_locked_until_the_last_holder_lets_go() {
        let page = sys::mem::page_size();
        // A mapping of its own: glibc serves 40 MiB with mmap whatever its
        // dynamic threshold (at most 32 MiB), untouched until locked.
        let buf = vec![0u8; 40 << 20];
        let base = buf.as_ptr() as usize;
        let start = base.next_multiple_of(page);
        let mut a = HotRegions::default();
        a.add_range("a", start, 2 * page);
        let mut b = HotRegions::default();
        b.add_range("b", start + page, 2 * page);

        let (mut lease_a, status_a) = lock_regions(MemoryLocking::HotPath, &a);
        assert_eq!(status_a.hot_path_bytes, 2 * page);
        assert_eq!(status_a.locked_bytes, 2 * page, "{status_a}");
        let (mut lease_b, status_b) = lock_regions(MemoryLocking::HotPath, &b);
        assert_eq!(status_b.locked_bytes, 2 * page, "{status_b}");
        assert_eq!(locked_kib_of_mapping(start) * 1024, 3 * page);

        // A's release must not unlock the page B shares.
        lease_a.release();
        assert_eq!(locked_kib_of_mapping(start + page) * 1024, 2 * page);
        lease_b.release();
        assert_eq!(locked_kib_of_mapping(start + page), 0);
        drop(buf);
    }

    #[test]
    fn off_prefaults_nothing_itself_and_locks_nothing() {
        let page = sys::mem::page_size();
        let buf = vec![3u8; 64 * page];
        let mut r = HotRegions::default();
        r.add("buffer", &buf[..]);
        let (lease, status) = lock_regions(MemoryLocking::Off, &r);
        assert!(lease.pages.is_empty());
        assert_eq!(status.locked_bytes, 0);
        assert!(status.hot_path_bytes >= buf.len());
        assert_eq!(status.regions.len(), 1);
        assert!(status.to_string().contains("not locked"), "{status}");
    }

    #[test]
    fn runs_group_consecutive_pages() {
        assert_eq!(runs(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 1), (9, 2)]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn a_partial_lock_says_why_and_how_much() {
        let s = MemoryStatus {
            locking: MemoryLocking::HotPath,
            regions: vec![],
            hot_path_bytes: 600 * 1024,
            locked_bytes: 64 * 1024,
            process_locked_bytes: Some(64 * 1024),
            not_locked: Some("RLIMIT_MEMLOCK is 64 KiB".into()),
        };
        let text = s.to_string();
        assert!(text.contains("600 KiB prefaulted"), "{text}");
        assert!(text.contains("64 KiB of it locked"), "{text}");
        assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
    }
}
