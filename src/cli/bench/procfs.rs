//! CPU time and peak memory of other processes, read from Linux `/proc`.

/// The fields of `/proc/<pid>/stat` the bench uses (times in clock ticks).
struct Stat {
    comm: String,
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: it ends at the last ')'.
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 of proc(5) (the state).
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        comm,
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

fn ticks_to_us(ticks: u64) -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks * 1_000_000 / u64::try_from(per_sec).unwrap_or(100).max(1)
}

/// User + system CPU time the process has used so far, in µs (all its
/// threads); `None` once it is gone.
pub fn cpu_us(pid: u32) -> Option<u64> {
    stat(pid).map(|s| ticks_to_us(s.utime + s.stime))
}

/// Peak resident set size of a process (`VmHWM`), in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The 1-minute load average: a bench's figures mean little when other
/// work shares the machine.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The CPU of a PostgreSQL server running on this machine: the postmaster,
/// the children it has reaped and its live children (backends, background
/// workers), minus one backend left out (the bench's own connection).
pub struct PostgresCpu {
    postmaster: u32,
    excluded_backend: u32,
}

impl PostgresCpu {
    /// From the pid of one of the server's backends (`pg_backend_pid()`),
    /// which every sample leaves out. `None` when that pid is not a local
    /// PostgreSQL process (a remote server, or another pid namespace).
    pub fn find(backend: u32) -> Option<PostgresCpu> {
        let is_postgres = |s: &Stat| matches!(s.comm.as_str(), "postgres" | "postmaster");
        let postmaster = stat(backend).filter(is_postgres)?.ppid;
        stat(postmaster).filter(is_postgres)?;
        Some(PostgresCpu {
            postmaster,
            excluded_backend: backend,
        })
    }

    /// CPU time the server has used so far, in µs.
    pub fn sample_us(&self) -> Option<u64> {
        let server = stat(self.postmaster)?;
        let own_and_reaped = server.utime + server.stime + server.cutime + server.cstime;
        let live: u64 = children(self.postmaster).map(|c| c.utime + c.stime).sum();
        let excluded = stat(self.excluded_backend)?;
        Some(ticks_to_us(
            (own_and_reaped + live).saturating_sub(excluded.utime + excluded.stime),
        ))
    }
}

fn children(parent: u32) -> impl Iterator<Item = Stat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .filter(move |s| s.ppid == parent)
}
