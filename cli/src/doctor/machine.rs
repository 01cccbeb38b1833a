//! The machine side of the doctor: the realtime grant, the memory-lock
//! limit, the kernel's preemption model, the CPU frequency governor, deep
//! idle states, and the USB host controller's IRQ thread.

use rustix::process::{Resource, getrlimit};

use super::{Check, Status};
use crate::sysfs::Sys;

/// The reader's default SCHED_FIFO priority (`RealtimeConfig::default`).
const READER_PRIORITY: u64 = 80;
/// Idle states whose exit latency exceeds this delay a wakeup noticeably
/// against a 1 ms latency timer.
const IDLE_LATENCY_LIMIT_US: u64 = 100;
/// Capability bits (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_NICE: u32 = 23;

pub(super) fn checks(sys: &Sys) -> Vec<Check> {
    let caps = effective_caps(sys);
    let release = rustix::system::uname();
    let version = release.version().to_string_lossy().into_owned();
    let release = release.release().to_string_lossy().into_owned();
    let mut checks = vec![
        realtime_grant(caps),
        memlock(caps),
        preemption(sys, &release, &version),
        governor(sys),
        idle_states(sys),
    ];
    checks.extend(usb_irq_threads(sys));
    checks
}

/// The effective capability set of this process (/proc/self/status).
fn effective_caps(sys: &Sys) -> u64 {
    sys.read("/proc/self/status")
        .and_then(|status| {
            status.lines().find_map(|l| {
                let hex = l.strip_prefix("CapEff:")?.trim();
                u64::from_str_radix(hex, 16).ok()
            })
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

fn realtime_grant(caps: u64) -> Check {
    let name = "realtime priority";
    if has(caps, CAP_SYS_NICE) {
        return Check::new(name, Status::Pass, "CAP_SYS_NICE: SCHED_FIFO is granted");
    }
    let limit = getrlimit(Resource::Rtprio).current;
    match limit {
        None => Check::new(name, Status::Pass, "RLIMIT_RTPRIO unlimited"),
        Some(n) if n >= READER_PRIORITY => Check::new(
            name,
            Status::Pass,
            format!("RLIMIT_RTPRIO {n} (the reader needs {READER_PRIORITY})"),
        ),
        Some(n) => Check::new(
            name,
            Status::Fail,
            format!(
                "RLIMIT_RTPRIO {n} and no CAP_SYS_NICE: the reader cannot get SCHED_FIFO {READER_PRIORITY}"
            ),
        )
        .fix(
            "echo \"$USER - rtprio 99\" | sudo tee /etc/security/limits.d/99-ftdi-rt.conf  \
             # then log in again; or: sudo setcap cap_sys_nice+ep <your program>",
        ),
    }
}

fn memlock(caps: u64) -> Check {
    let name = "memory locking";
    if has(caps, CAP_IPC_LOCK) {
        return Check::new(name, Status::Pass, "CAP_IPC_LOCK: any amount can be locked");
    }
    match getrlimit(Resource::Memlock).current {
        None => Check::new(name, Status::Pass, "RLIMIT_MEMLOCK unlimited"),
        // The reader's hot path is a few hundred KiB; 8 MiB is today's default.
        Some(bytes) if bytes >= 1 << 20 => Check::new(
            name,
            Status::Pass,
            format!("RLIMIT_MEMLOCK {} KiB: the reader's hot path fits", bytes / 1024),
        ),
        Some(bytes) => Check::new(
            name,
            Status::Warn,
            format!(
                "RLIMIT_MEMLOCK {} KiB: the reader's hot path may not all be locked",
                bytes / 1024
            ),
        )
        .fix(
            "echo \"$USER - memlock 65536\" | sudo tee -a /etc/security/limits.d/99-ftdi-rt.conf  # then log in again",
        ),
    }
}

/// The kernel's preemption model, from the strongest evidence there is.
fn preemption(sys: &Sys, release: &str, version: &str) -> Check {
    let name = "kernel preemption";
    let config = kernel_config(sys, release);
    let configured = |option: &str| config.lines().any(|l| l == format!("{option}=y"));
    let cmdline = sys.read("/proc/cmdline").unwrap_or_default();
    let dynamic = sys.read("/sys/kernel/debug/sched/preempt");
    let model = if sys.read("/sys/kernel/realtime").as_deref() == Some("1")
        || version.contains("PREEMPT_RT")
        || configured("CONFIG_PREEMPT_RT")
    {
        "rt"
    } else if let Some(choice) = cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("preempt="))
    {
        choice
    } else if let Some(d) = dynamic.as_deref() {
        // "none voluntary (full) lazy": the one in parentheses is active.
        d.split_whitespace()
            .find_map(|w| w.strip_prefix('(')?.strip_suffix(')'))
            .unwrap_or("unknown")
    } else if version.contains("PREEMPT_DYNAMIC") || configured("CONFIG_PREEMPT_DYNAMIC") {
        // A dynamic kernel without preempt= boots its configured default.
        if configured("CONFIG_PREEMPT") {
            "full"
        } else if configured("CONFIG_PREEMPT_VOLUNTARY") {
            "voluntary"
        } else if configured("CONFIG_PREEMPT_NONE") {
            "none"
        } else {
            "dynamic (default unknown)"
        }
    } else if version.contains("PREEMPT") || configured("CONFIG_PREEMPT") {
        "full"
    } else if configured("CONFIG_PREEMPT_VOLUNTARY") {
        "voluntary"
    } else {
        "none"
    };
    let seen = format!("{release}, {version}");
    let dynamic_kernel =
        version.contains("PREEMPT_DYNAMIC") || configured("CONFIG_PREEMPT_DYNAMIC");
    let fix = if dynamic_kernel {
        "add preempt=full to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, \
         then sudo update-grub and reboot), or install a PREEMPT_RT kernel \
         (Debian: sudo apt install linux-image-rt-amd64)"
    } else {
        "install a PREEMPT_RT kernel (Debian: sudo apt install linux-image-rt-amd64)"
    };
    match model {
        "rt" => Check::new(name, Status::Pass, format!("PREEMPT_RT ({seen})")),
        "full" => Check::new(
            name,
            Status::Pass,
            format!("full preemption ({seen}); PREEMPT_RT bounds the tail further"),
        ),
        other => Check::new(
            name,
            Status::Warn,
            format!(
                "preemption model {other} ({seen}): a SCHED_FIFO reader can wait for kernel code to yield"
            ),
        )
        .fix(fix),
    }
}

/// The kernel's build configuration: /boot/config-RELEASE, else
/// /proc/config.gz (CONFIG_IKCONFIG_PROC); empty if neither is there.
fn kernel_config(sys: &Sys, release: &str) -> String {
    if let Some(text) = sys.read(&format!("/boot/config-{release}")) {
        return text;
    }
    let Ok(file) = std::fs::File::open(sys.path("/proc/config.gz")) else {
        return String::new();
    };
    let mut text = String::new();
    match std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(file), &mut text) {
        Ok(_) => text,
        Err(_) => String::new(),
    }
}

const CPUS: &str = "/sys/devices/system/cpu";

fn cpus(sys: &Sys) -> Vec<String> {
    sys.entries(CPUS)
        .into_iter()
        .filter(|c| {
            c.strip_prefix("cpu")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect()
}

fn governor(sys: &Sys) -> Check {
    let name = "cpu governor";
    let governors: Vec<(String, String)> = cpus(sys)
        .into_iter()
        .filter_map(|cpu| {
            let g = sys.read(&format!("{CPUS}/{cpu}/cpufreq/scaling_governor"))?;
            Some((cpu, g))
        })
        .collect();
    if governors.is_empty() {
        return Check::new(
            name,
            Status::Pass,
            "no cpufreq scaling (fixed clock, or a VM): nothing slows a wakeup down",
        );
    }
    let slow: Vec<String> = governors
        .iter()
        .filter(|(_, g)| g != "performance")
        .map(|(c, g)| format!("{c} {g}"))
        .collect();
    if slow.is_empty() {
        Check::new(name, Status::Pass, "performance on every CPU")
    } else {
        Check::new(
            name,
            Status::Warn,
            format!(
                "{}: a clock ramping up adds latency after idle",
                slow.join(", ")
            ),
        )
        .fix(format!(
            "echo performance | sudo tee {CPUS}/cpu*/cpufreq/scaling_governor"
        ))
    }
}

fn idle_states(sys: &Sys) -> Check {
    let name = "cpu idle states";
    let mut deep = Vec::new();
    let mut any = false;
    for cpu in cpus(sys) {
        let dir = format!("{CPUS}/{cpu}/cpuidle");
        for state in sys
            .entries(&dir)
            .into_iter()
            .filter(|s| s.starts_with("state"))
        {
            any = true;
            let read = |f: &str| sys.read(&format!("{dir}/{state}/{f}"));
            let latency: u64 = read("latency").and_then(|l| l.parse().ok()).unwrap_or(0);
            let disabled = read("disable").as_deref() == Some("1");
            if latency > IDLE_LATENCY_LIMIT_US && !disabled {
                let label = format!(
                    "{} ({latency} µs)",
                    read("name").unwrap_or_else(|| state.clone())
                );
                if !deep.contains(&label) {
                    deep.push(label);
                }
            }
        }
    }
    if !any {
        return Check::new(
            name,
            Status::Pass,
            "no cpuidle states (idle=poll/halt, or a VM): no deep-sleep exit latency",
        );
    }
    if deep.is_empty() {
        Check::new(
            name,
            Status::Pass,
            format!("no enabled state exits slower than {IDLE_LATENCY_LIMIT_US} µs"),
        )
    } else {
        Check::new(
            name,
            Status::Warn,
            format!(
                "enabled states slower than {IDLE_LATENCY_LIMIT_US} µs to exit: {}",
                deep.join(", ")
            ),
        )
        .fix(format!(
            "sudo cpupower idle-set -D {IDLE_LATENCY_LIMIT_US}  # disables the deeper states"
        ))
    }
}

/// USB host controller drivers, as /proc/interrupts names them.
const HCD_NAMES: [&str; 6] = ["xhci", "ehci", "ohci", "uhci", "dwc", "musb"];

fn usb_irq_threads(sys: &Sys) -> Vec<Check> {
    let name = "usb irq thread";
    let irqs: Vec<String> = sys
        .read("/proc/interrupts")
        .unwrap_or_default()
        .lines()
        .filter(|l| HCD_NAMES.iter().any(|h| l.contains(h)))
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect();
    if irqs.is_empty() {
        return vec![Check::new(
            name,
            Status::Skip,
            "no USB host controller interrupt in /proc/interrupts",
        )];
    }
    let threads: Vec<(String, String)> = sys
        .entries("/proc")
        .into_iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|pid| {
            let comm = sys.read(&format!("/proc/{pid}/comm"))?;
            let irq = comm.strip_prefix("irq/")?.split('-').next()?.to_string();
            irqs.contains(&irq).then_some((pid, comm))
        })
        .collect();
    if threads.is_empty() {
        return vec![Check::new(
            name,
            Status::Pass,
            format!(
                "IRQ {} handled in hard-IRQ context (no threaded IRQs): nothing to prioritise",
                irqs.join(", ")
            ),
        )];
    }
    threads
        .into_iter()
        .map(|(pid, comm)| {
            let (policy, priority) = sched_of(sys, &pid).unwrap_or((0, 0));
            let fix = format!("sudo chrt -f -p {} {pid}", READER_PRIORITY + 5);
            if policy == 1 && priority > READER_PRIORITY {
                Check::new(
                    name,
                    Status::Pass,
                    format!("{comm} (pid {pid}) runs SCHED_FIFO {priority}, above the reader's {READER_PRIORITY}"),
                )
            } else {
                Check::new(
                    name,
                    Status::Warn,
                    format!(
                        "{comm} (pid {pid}) runs policy {policy} priority {priority}: realtime work at or above it \
                         (the reader's {READER_PRIORITY}, your application) delays USB completions"
                    ),
                )
                .fix(fix)
            }
        })
        .collect()
}

/// Scheduling policy and realtime priority from /proc/PID/stat (fields
/// 41 and 40, counted after the parenthesised command name).
fn sched_of(sys: &Sys, pid: &str) -> Option<(u64, u64)> {
    let stat = sys.read(&format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after ')'.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let rt_priority = fields.get(40 - 3)?.parse().ok()?;
    let policy = fields.get(41 - 3)?.parse().ok()?;
    Some((policy, rt_priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::tests::FakeRoot;

    #[test]
    fn preemption_model_from_each_source() {
        let root = FakeRoot::new("preempt");
        let sys = root.sys();
        assert_eq!(
            preemption(&sys, "6.1.0", "#1 SMP PREEMPT_RT Debian").status,
            Status::Pass
        );
        let c = preemption(&sys, "6.1.0", "#1 SMP Debian 6.1.0");
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("none"), "{}", c.detail);
        root.file(
            "/sys/kernel/debug/sched/preempt",
            "none voluntary (full) lazy\n",
        );
        assert_eq!(
            preemption(&sys, "6.8.0", "#1 SMP PREEMPT_DYNAMIC").status,
            Status::Pass
        );
        root.file("/proc/cmdline", "root=/dev/sda1 preempt=voluntary\n");
        assert_eq!(
            preemption(&sys, "6.8.0", "#1 SMP PREEMPT_DYNAMIC").status,
            Status::Warn
        );
    }

    #[test]
    fn governor_and_idle_states() {
        let root = FakeRoot::new("cpu");
        let sys = root.sys();
        assert_eq!(governor(&sys).status, Status::Pass);
        root.file(
            &format!("{CPUS}/cpu0/cpufreq/scaling_governor"),
            "powersave\n",
        );
        root.file(
            &format!("{CPUS}/cpu1/cpufreq/scaling_governor"),
            "performance\n",
        );
        let g = governor(&sys);
        assert_eq!(g.status, Status::Warn);
        assert!(g.detail.contains("cpu0 powersave") && !g.detail.contains("cpu1"));
        root.file(&format!("{CPUS}/cpu0/cpuidle/state0/latency"), "0\n");
        root.file(&format!("{CPUS}/cpu0/cpuidle/state3/latency"), "133\n");
        root.file(&format!("{CPUS}/cpu0/cpuidle/state3/name"), "C6\n");
        root.file(&format!("{CPUS}/cpu0/cpuidle/state3/disable"), "0\n");
        let i = idle_states(&sys);
        assert_eq!(i.status, Status::Warn);
        assert!(i.detail.contains("C6 (133 µs)"), "{}", i.detail);
        root.file(&format!("{CPUS}/cpu0/cpuidle/state3/disable"), "1\n");
        assert_eq!(idle_states(&sys).status, Status::Pass);
    }

    #[test]
    fn irq_thread_priority() {
        let root = FakeRoot::new("irq");
        let sys = root.sys();
        root.file(
            "/proc/interrupts",
            "           CPU0\n 42:  100  IR-PCI-MSI  xhci_hcd\n  1:  9  IO-APIC  i8042\n",
        );
        assert_eq!(
            usb_irq_threads(&sys)[0].status,
            Status::Pass,
            "not threaded"
        );
        root.file("/proc/77/comm", "irq/42-xhci_hcd\n");
        // 52 fields; field 40 rt_priority 50, field 41 policy 1 (FIFO).
        let mut fields: Vec<String> = (3..=52).map(|_| "0".to_string()).collect();
        fields[40 - 3] = "50".into();
        fields[41 - 3] = "1".into();
        root.file(
            "/proc/77/stat",
            &format!("77 (irq/42-xhci_hcd) {}\n", fields.join(" ")),
        );
        let c = &usb_irq_threads(&sys)[0];
        assert_eq!(c.status, Status::Warn, "{}", c.detail);
        assert_eq!(c.fix.as_deref(), Some("sudo chrt -f -p 85 77"));
        fields[40 - 3] = "90".into();
        root.file(
            "/proc/77/stat",
            &format!("77 (irq/42-xhci_hcd) {}\n", fields.join(" ")),
        );
        assert_eq!(usb_irq_threads(&sys)[0].status, Status::Pass);
    }
}
