//! The server's resident memory (`VmRSS` of `/proc/<pid>/status`) and CPU
//! time (`/proc/<pid>/stat`), summed over the given processes and all their
//! descendants (nginx's workers, for example). CPU time per message is the
//! figure that holds on a shared machine: it does not depend on how much
//! of the machine the server could get.

use std::collections::BTreeSet;

/// `VmRSS` in bytes of `pids` and their descendants.
pub fn tree_bytes(pids: &[u32]) -> u64 {
    let mut all = BTreeSet::new();
    let mut todo: Vec<u32> = pids.to_vec();
    while let Some(pid) = todo.pop() {
        if all.insert(pid) {
            todo.extend(children(pid));
        }
    }
    all.into_iter().filter_map(vm_rss).sum()
}

fn vm_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| text.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// CPU time (user + system) in seconds used so far by `pids` and their
/// descendants, from `/proc/<pid>/stat` (ticks of USER_HZ, 100 on Linux).
pub fn tree_cpu_seconds(pids: &[u32]) -> f64 {
    let mut all = BTreeSet::new();
    let mut todo: Vec<u32> = pids.to_vec();
    while let Some(pid) = todo.pop() {
        if all.insert(pid) {
            todo.extend(children(pid));
        }
    }
    all.into_iter().filter_map(cpu_ticks).sum::<u64>() as f64 / 100.0
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
