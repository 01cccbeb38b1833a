//! Where the guest's one vCPU went over a measured window: how busy it was
//! (`/proc/stat`) and which threads used it (each thread's own
//! `/proc/<pid>/task/<tid>/schedstat`, grouped by name).
//!
//! A case that runs many channels on the one vCPU can saturate it; then
//! every latency it measures is the queue behind the CPU, not the path it
//! means to measure. This says so with figures beside the latencies,
//! instead of leaving the reader to guess.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;

/// The counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    /// `/proc/stat`'s `cpu` line: (busy, total) in clock ticks.
    ticks: (u64, u64),
    /// Nanoseconds on the CPU per thread, keyed by (tid, name).
    threads: BTreeMap<(u32, String), u64>,
}

impl CpuSnapshot {
    /// Reads the counters now (what cannot be read counts as zero: a thread
    /// that ended between listing and reading is simply missing).
    pub fn take() -> CpuSnapshot {
        let ticks = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| stat.lines().next().map(cpu_ticks))
            .unwrap_or_default();
        let mut threads = BTreeMap::new();
        for task in tasks() {
            let name = fs::read_to_string(format!("{task}/comm")).unwrap_or_default();
            let ns = fs::read_to_string(format!("{task}/schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            let tid = task.rsplit('/').next().and_then(|t| t.parse().ok());
            if let (Some(tid), Some(ns)) = (tid, ns) {
                threads.insert((tid, group(name.trim())), ns);
            }
        }
        CpuSnapshot { ticks, threads }
    }

    /// What was used between `earlier` and this snapshot, over `wall_ns`.
    pub fn since(&self, earlier: &CpuSnapshot, wall_ns: u64) -> CpuUse {
        let busy = self.ticks.0.saturating_sub(earlier.ticks.0);
        let total = self.ticks.1.saturating_sub(earlier.ticks.1);
        let busy_pct = if total == 0 {
            None
        } else {
            Some(100.0 * busy as f64 / total as f64)
        };
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for (key, ns) in &self.threads {
            let before = earlier.threads.get(key).copied().unwrap_or(0);
            *by_name.entry(key.1.clone()).or_default() += ns.saturating_sub(before);
        }
        let mut groups: Vec<(String, f64)> = by_name
            .into_iter()
            .filter(|(_, ns)| *ns > 0)
            .map(|(name, ns)| (name, 100.0 * ns as f64 / wall_ns.max(1) as f64))
            .collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse { busy_pct, groups }
    }
}

/// The guest CPU used over a window.
#[derive(Clone, Debug)]
pub struct CpuUse {
    /// Percentage of the window the CPU was not idle (`None`: unreadable).
    pub busy_pct: Option<f64>,
    /// Threads grouped by name, most CPU first, as percentages of the window.
    pub groups: Vec<(String, f64)>,
}

impl CpuUse {
    /// The busy percentage as a metric value.
    pub fn busy(&self) -> String {
        self.busy_pct
            .map_or_else(|| "unknown".into(), |p| format!("{p:.1}"))
    }
}

impl fmt::Display for CpuUse {
    /// `guest CPU 97.3 % busy; vhci_rx 21.0 %, ...` (the six largest groups).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest CPU {} % busy", self.busy())?;
        for (i, (name, pct)) in self.groups.iter().take(6).enumerate() {
            let sep = if i == 0 { ";" } else { "," };
            write!(f, "{sep} {name} {pct:.1} %")?;
        }
        Ok(())
    }
}

/// (busy, total) ticks from `/proc/stat`'s `cpu` line: idle and iowait are
/// the idle part; guest time is already inside user.
fn cpu_ticks(line: &str) -> (u64, u64) {
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Every thread's `/proc/<pid>/task/<tid>` directory.
fn tasks() -> Vec<String> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pid in procs.flatten() {
        let name = pid.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(tids) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for tid in tids.flatten() {
            if let Some(tid) = tid.file_name().to_str() {
                out.push(format!("/proc/{pid}/task/{tid}"));
            }
        }
    }
    out
}

/// A thread name without its per-CPU or per-instance number
/// (`ksoftirqd/0` → `ksoftirqd`, `kworker/0:1H-kblockd` → `kworker`,
/// `irq/4-ttyS0` stays), so that threads of one kind add up.
fn group(name: &str) -> String {
    if name.starts_with("irq/") {
        return name.to_string();
    }
    let head = name.split('/').next().unwrap_or(name);
    head.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == ':')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let (busy, total) = cpu_ticks("cpu  10 1 20 60 9 3 2 0 0 0");
        assert_eq!(total, 105);
        assert_eq!(busy, 36);
    }

    #[test]
    fn threads_of_one_kind_add_up_under_one_name() {
        assert_eq!(group("ksoftirqd/0"), "ksoftirqd");
        assert_eq!(group("kworker/0:1H-kblockd"), "kworker");
        assert_eq!(group("vhci_rx"), "vhci_rx");
        assert_eq!(group("irq/4-ttyS0"), "irq/4-ttyS0");
        assert_eq!(group("ftdi-rt-rd0"), "ftdi-rt-rd");
    }

    #[test]
    fn use_is_per_group_over_the_window_and_largest_first() {
        let before = CpuSnapshot {
            ticks: (10, 100),
            threads: [((1, "a".to_string()), 0), ((2, "b".to_string()), 100)].into(),
        };
        let after = CpuSnapshot {
            ticks: (60, 200),
            threads: [
                ((1, "a".to_string()), 100),
                ((2, "b".to_string()), 400),
                ((3, "b".to_string()), 100),
            ]
            .into(),
        };
        let used = after.since(&before, 1000);
        assert_eq!(used.busy(), "50.0");
        assert_eq!(used.groups, vec![("b".into(), 40.0), ("a".into(), 10.0)]);
        assert!(
            used.to_string()
                .starts_with("guest CPU 50.0 % busy; b 40.0 %, a 10.0 %")
        );
    }
}
