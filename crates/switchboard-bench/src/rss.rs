//! The server's resident memory, from `/proc/<pid>/status` (`VmRSS`),
//! summed over the given processes and all their descendants (nginx's
//! workers, for example).

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
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
