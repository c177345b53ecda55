//! The light metrics sent with every check-in, read from `/proc` and `statvfs(3)`: load, CPU
//! share since the previous sample, memory, swap, local file systems, uptime, boot id, kernel.
//! A file that cannot be read leaves its fields at zero or `None` rather than failing the
//! check-in.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use patchdeck_proto::agent::{DiskUsage, Metrics};

/// File systems that hold no local data: kernel interfaces, memory-backed, and network or
/// user-space (FUSE) file systems, whose `statvfs` may hang when the server is away.
const NOT_LOCAL: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "ramfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "squashfs",
    "nfs",
    "nfs4",
    "nfsd",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "afs",
    "lustre",
    "gpfs",
    "davfs",
    "virtiofs",
    "sshfs",
    "fuse",
];

/// Most file systems reported.
const MAX_DISKS: usize = 64;

/// Whether a file system type (`/proc/self/mounts`, third field) holds local data.
pub fn is_local_fs(fstype: &str) -> bool {
    // `fuseblk` is a local block device through FUSE (ntfs-3g, exfat); other `fuse.*` are not.
    if fstype == "fuseblk" {
        return true;
    }
    !(NOT_LOCAL.contains(&fstype) || fstype.starts_with("fuse."))
}

/// Cumulative CPU time from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub total: u64,
    /// `idle` plus `iowait`.
    pub idle: u64,
}

/// The aggregate CPU times and the number of CPUs (`cpuN` lines) in `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<(CpuTimes, u32)> {
    let mut times = None;
    let mut count = 0u32;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values: Vec<u64> = fields.map_while(|f| f.parse().ok()).collect();
                if values.len() < 4 {
                    return None;
                }
                // user nice system idle iowait irq softirq steal (guest is counted in user).
                let total = values.iter().take(8).sum();
                let idle = values[3] + values.get(4).copied().unwrap_or(0);
                times = Some(CpuTimes { total, idle });
            }
            Some(name) if name.starts_with("cpu") && name[3..].bytes().all(|b| b.is_ascii_digit()) => count += 1,
            _ => {}
        }
    }
    times.map(|t| (t, count))
}

/// Busy share of the CPUs between two samples, 0–100; `None` when no time passed.
pub fn cpu_percent(previous: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(previous.total)?;
    let idle = now.idle.checked_sub(previous.idle)?;
    if total == 0 {
        return None;
    }
    let busy = total.saturating_sub(idle) as f64 / total as f64 * 100.0;
    Some(busy.clamp(0.0, 100.0))
}

/// `/proc/loadavg`: the 1, 5 and 15 minute averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// The memory figures of `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

pub fn parse_meminfo(text: &str) -> MemInfo {
    let mut info = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let mut parts = rest.split_ascii_whitespace();
        let Some(value) = parts.next().and_then(|v| v.parse::<u64>().ok()) else { continue };
        let bytes = if parts.next() == Some("kB") { value.saturating_mul(1024) } else { value };
        match key {
            "MemTotal" => info.total = bytes,
            "MemAvailable" => info.available = bytes,
            "SwapTotal" => info.swap_total = bytes,
            "SwapFree" => info.swap_free = bytes,
            _ => {}
        }
    }
    info
}

/// `/proc/uptime`: whole seconds since boot.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// One line of `/proc/self/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub mount_point: String,
    pub fstype: String,
}

/// The mounts listed in `/proc/self/mounts` (octal escapes such as `\040` decoded).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = unescape(fields.next()?);
            let mount_point = unescape(fields.next()?);
            let fstype = fields.next()?.to_owned();
            Some(Mount { source, mount_point, fstype })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        let value = octal.map(|d| d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')));
        if let (b'\\', Some(value @ 0..=255)) = (bytes[i], value) {
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Usage of the local file systems among `mounts`, one entry per file system (bind mounts of
/// the same device are reported once, at the first mount point).
pub fn local_disks(mounts: &[Mount]) -> Vec<DiskUsage> {
    let mut seen_devices = HashSet::new();
    let mut disks = Vec::new();
    for mount in mounts.iter().filter(|m| is_local_fs(&m.fstype)) {
        if disks.len() >= MAX_DISKS {
            break;
        }
        let path = Path::new(&mount.mount_point);
        let Ok(stat) = rustix::fs::stat(path) else { continue };
        if !seen_devices.insert(stat.st_dev) {
            continue;
        }
        let Ok(vfs) = rustix::fs::statvfs(path) else { continue };
        let total = vfs.f_blocks.saturating_mul(vfs.f_frsize);
        if total == 0 {
            continue;
        }
        disks.push(DiskUsage {
            mount_point: mount.mount_point.clone(),
            filesystem: mount.fstype.clone(),
            total_bytes: total,
            available_bytes: vfs.f_bavail.saturating_mul(vfs.f_frsize),
        });
    }
    disks
}

/// Where the kernel tells the boot id (a new random UUID at every boot).
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// Takes samples; remembers the previous CPU times for the CPU share.
#[derive(Debug)]
pub struct MetricsSampler {
    proc: PathBuf,
    boot_id: PathBuf,
    previous_cpu: Option<CpuTimes>,
}

impl Default for MetricsSampler {
    fn default() -> Self {
        MetricsSampler::new()
    }
}

impl MetricsSampler {
    /// Reads this host's `/proc`.
    pub fn new() -> Self {
        MetricsSampler { proc: PathBuf::from("/proc"), boot_id: PathBuf::from(BOOT_ID_PATH), previous_cpu: None }
    }

    /// Reads the boot id from `path` instead (`reboot.boot_id_path`; tests simulate a reboot).
    pub fn with_boot_id_path(mut self, path: PathBuf) -> Self {
        self.boot_id = path;
        self
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.proc.join(name)).ok()
    }

    /// A sample now. `reboot_required` comes from the latest scan.
    pub fn sample(&mut self, reboot_required: bool) -> Metrics {
        let stat = self.read("stat").as_deref().and_then(parse_stat);
        let cpu_percent = match (self.previous_cpu, stat) {
            (Some(previous), Some((now, _))) => cpu_percent(previous, now),
            _ => None,
        };
        if let Some((now, _)) = stat {
            self.previous_cpu = Some(now);
        }
        let memory = self.read("meminfo").as_deref().map(parse_meminfo).unwrap_or_default();
        let mounts = self.read("self/mounts").as_deref().map(parse_mounts).unwrap_or_default();
        Metrics {
            load: self.read("loadavg").as_deref().and_then(parse_loadavg).unwrap_or_default(),
            cpu_count: stat
                .map(|(_, n)| n)
                .filter(|n| *n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)),
            cpu_percent,
            memory_total_bytes: memory.total,
            memory_available_bytes: memory.available,
            swap_total_bytes: memory.swap_total,
            swap_free_bytes: memory.swap_free,
            disks: local_disks(&mounts),
            uptime_secs: self.read("uptime").as_deref().and_then(parse_uptime).unwrap_or(0),
            boot_id: std::fs::read_to_string(&self.boot_id).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            kernel: Some(rustix::system::uname().release().to_string_lossy().into_owned()),
            reboot_required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_read_recorded_proc_files() {
        let stat = "cpu  58129 0 19883 74868 4640 0 179 98 0 0\ncpu0 28464 0 9261 39002 2071 0 22 46 0 0\n\
                    cpu1 29664 0 10621 35865 2568 0 157 51 0 0\nintr 1 2 3\nctxt 99\n";
        let (times, count) = parse_stat(stat).unwrap();
        assert_eq!(count, 2);
        assert_eq!(times, CpuTimes { total: 58129 + 19883 + 74868 + 4640 + 179 + 98, idle: 74868 + 4640 });
        let later = CpuTimes { total: times.total + 200, idle: times.idle + 150 };
        assert_eq!(cpu_percent(times, later), Some(25.0));
        assert_eq!(cpu_percent(times, times), None, "no time passed");
        assert_eq!(parse_loadavg("0.13 1.05 0.81 1/144 31293\n"), Some([0.13, 1.05, 0.81]));
        assert_eq!(parse_loadavg("garbage"), None);
        let mem = parse_meminfo(
            "MemTotal:       24683664 kB\nMemFree: 1 kB\nMemAvailable:   23946672 kB\nSwapTotal: 2048 kB\nSwapFree: 1024 kB\n",
        );
        assert_eq!(
            mem,
            MemInfo {
                total: 24683664 * 1024,
                available: 23946672 * 1024,
                swap_total: 2048 * 1024,
                swap_free: 1024 * 1024
            }
        );
        assert_eq!(parse_uptime("795.04 748.68\n"), Some(795));
        let mounts = parse_mounts(
            "/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/sdb1 /mnt/My\\040Disk xfs rw 0 0\n\
             server:/export /net nfs4 rw 0 0\nsshfs#x /s fuse.sshfs rw 0 0\n/dev/sdc1 /win fuseblk rw 0 0\n",
        );
        assert_eq!(mounts[2].mount_point, "/mnt/My Disk");
        let local: Vec<&str> =
            mounts.iter().filter(|m| is_local_fs(&m.fstype)).map(|m| m.mount_point.as_str()).collect();
        assert_eq!(local, ["/", "/mnt/My Disk", "/win"]);
    }

    /// This machine's own /proc, twice, so the CPU share is measured.
    #[test]
    fn samples_of_this_host_are_sane() {
        let mut sampler = MetricsSampler::new();
        let first = sampler.sample(false);
        assert_eq!(first.cpu_percent, None, "no CPU share without a previous sample");
        // Burn a little CPU so that ticks pass between the samples.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(150) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let m = sampler.sample(true);
        assert!(m.reboot_required);
        assert!(m.cpu_count >= 1 && m.cpu_count <= 4096, "{m:?}");
        let cpu = m.cpu_percent.expect("a CPU share on the second sample");
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(m.load.iter().all(|l| l.is_finite() && *l >= 0.0), "{m:?}");
        assert!(m.memory_total_bytes > 64 * 1024 * 1024, "{m:?}");
        assert!(m.memory_available_bytes > 0 && m.memory_available_bytes <= m.memory_total_bytes, "{m:?}");
        assert!(m.swap_free_bytes <= m.swap_total_bytes, "{m:?}");
        assert!(m.uptime_secs > 0, "{m:?}");
        let boot_id = m.boot_id.as_deref().expect("boot id");
        assert_eq!(boot_id.len(), 36, "{boot_id}");
        assert_eq!(m.kernel.as_deref(), Some(rustix::system::uname().release().to_str().unwrap()));
        let root = m.disks.iter().find(|d| d.mount_point == "/").expect("the root file system is local");
        assert!(root.total_bytes > 0 && root.available_bytes <= root.total_bytes, "{root:?}");
        assert!(m.disks.iter().all(|d| is_local_fs(&d.filesystem)), "{:?}", m.disks);
        assert!(!m.disks.iter().any(|d| d.mount_point.starts_with("/proc") || d.mount_point == "/sys"));
    }
}
