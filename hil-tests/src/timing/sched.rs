//! Scheduling of other tasks: finding kernel threads by name, reading and
//! setting their policy. The timing tier needs it for one knob: the vhci-hcd
//! kthreads `vhci_rx` (which gives every URB back, so it runs every
//! completion callback: ftdi_sio's and usbfs's) and `vhci_tx` play the host
//! controller's interrupt, and their priority decides whether a busy
//! realtime task delays the completions themselves (reference
//! usbip-timing-rig.md §4.1, §4.4).

use std::io;
use std::path::Path;

use super::row::Vhci;

/// A task's scheduling as `/proc/<pid>/stat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSched {
    /// `SCHED_OTHER` 0, `SCHED_FIFO` 1, `SCHED_RR` 2, ...
    pub policy: u32,
    /// The realtime priority (0 for normal policies).
    pub rt_priority: u32,
}

impl std::fmt::Display for TaskSched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.policy {
            0 => write!(f, "SCHED_OTHER"),
            1 => write!(f, "SCHED_FIFO {}", self.rt_priority),
            2 => write!(f, "SCHED_RR {}", self.rt_priority),
            p => write!(f, "policy {p} priority {}", self.rt_priority),
        }
    }
}

/// Parses the policy and realtime priority out of a `/proc/<pid>/stat` line
/// (fields 41 and 40; counted after the `)` that ends the command name,
/// which may itself hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<TaskSched> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field k is fields[k - 3].
    Some(TaskSched {
        rt_priority: fields.get(40 - 3)?.parse().ok()?,
        policy: fields.get(41 - 3)?.parse().ok()?,
    })
}

/// The scheduling of task `pid`.
pub fn task_sched(pid: u32) -> io::Result<TaskSched> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: cannot parse {stat:?}"),
        )
    })
}

/// Processes (not threads) whose `comm` is exactly `name`, ascending by pid.
/// Kernel threads are processes of their own, so this finds them.
pub fn pids_named(name: &str) -> Vec<u32> {
    pids_named_in(Path::new("/proc"), name)
}

fn pids_named_in(proc_root: &Path, name: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
                .is_ok_and(|c| c.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Sets task `pid` to `SCHED_FIFO priority`, or to `SCHED_OTHER` (nice
/// unchanged) when `priority` is `None`.
pub fn set_task_sched(pid: u32, priority: Option<u8>) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    let (policy, prio) = match priority {
        Some(p) => (libc::SCHED_FIFO, libc::c_int::from(p)),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: sched_setscheduler reads `param`, a valid sched_param that
    // lives across the call; it has no other memory effects.
    let rc = unsafe { libc::sched_setscheduler(pid, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The names of the vhci-hcd kthreads (one pair per attached device's
/// connection: vhci creates them when a port is attached).
pub const VHCI_KTHREADS: [&str; 2] = ["vhci_rx", "vhci_tx"];

/// The priority the `fifo50` setting gives the vhci kthreads.
pub const VHCI_FIFO_PRIORITY: u8 = 50;

/// Applies `setting` to every vhci kthread and checks it took; returns what
/// was set, e.g. `vhci_rx 103 SCHED_FIFO 50, vhci_tx 105 SCHED_FIFO 50`.
///
/// # Errors
/// No vhci kthread exists (nothing attached), or one refused the setting.
pub fn apply_vhci(setting: Vhci) -> Result<String, String> {
    apply_vhci_priority(match setting {
        Vhci::Fifo50 => Some(VHCI_FIFO_PRIORITY),
        Vhci::Other => None,
    })
}

/// As [`apply_vhci`], with any `SCHED_FIFO` priority (`None`: SCHED_OTHER).
///
/// # Errors
/// As [`apply_vhci`].
pub fn apply_vhci_priority(priority: Option<u8>) -> Result<String, String> {
    let want = TaskSched {
        policy: if priority.is_some() { 1 } else { 0 },
        rt_priority: u32::from(priority.unwrap_or(0)),
    };
    let mut done = Vec::new();
    for name in VHCI_KTHREADS {
        let pids = pids_named(name);
        if pids.is_empty() {
            return Err(format!(
                "no {name} kthread: is a device attached to vhci-hcd?"
            ));
        }
        for pid in pids {
            set_task_sched(pid, priority).map_err(|e| format!("{name} {pid}: {e}"))?;
            let now = task_sched(pid).map_err(|e| format!("{name} {pid}: {e}"))?;
            if now != want {
                return Err(format!("{name} {pid} is {now} after setting {want}"));
            }
            done.push(format!("{name} {pid} {now}"));
        }
    }
    Ok(done.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces_and_parentheses() {
        // A shortened real line: fields 3..=41 after the command name.
        let mut fields: Vec<String> = (3..=52).map(|k| k.to_string()).collect();
        fields[40 - 3] = "50".into();
        fields[41 - 3] = "1".into();
        let line = format!("103 (vhci (rx) 1) {}", fields.join(" "));
        assert_eq!(
            parse_stat(&line),
            Some(TaskSched {
                policy: 1,
                rt_priority: 50
            })
        );
        assert_eq!(parse_stat("103 (short) S 1 2"), None);
    }

    #[test]
    fn reads_this_process_and_finds_it_by_name() {
        let me = std::process::id();
        let s = task_sched(me).unwrap();
        assert!(s.policy <= 6, "{s:?}");
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        assert!(pids_named(comm.trim_end()).contains(&me));
        assert!(pids_named("no-such-task-name-here").is_empty());
    }
}
