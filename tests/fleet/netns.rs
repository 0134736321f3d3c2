//! Network namespaces for the partition test: one central host and three edge hosts, each edge
//! joined to the central host by its own veth pair on 10.77.<n>.0/24 (edge .2, central .1). No
//! interface or address is created outside these namespaces. [`Fleet`] removes them when dropped,
//! also when the test panics; namespaces left by a test process that died are removed at the next
//! start.

use std::process::Command;

/// Prefix of every namespace these tests create (`spf<pid>-<host>`).
const PREFIX: &str = "spf";

/// Why the network test cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return Some("it needs root (network namespaces)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip netns list` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("`ip` (iproute2) is not available: {e}")),
    }
}

/// Runs `ip args…`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

/// The namespaces of one test run.
pub struct Fleet {
    pub central: String,
    /// One per edge, in `EDGES` order.
    pub edges: Vec<String>,
}

impl Fleet {
    /// Creates `central` and `n` edges, links and addresses; loopback up everywhere.
    pub fn create(n: usize) -> Fleet {
        remove_stale();
        let pid = std::process::id();
        let fleet = Fleet {
            central: format!("{PREFIX}{pid}-central"),
            edges: (1..=n).map(|i| format!("{PREFIX}{pid}-edge{i}")).collect(),
        };
        // From here on, Drop cleans up whatever was created.
        for ns in fleet.all() {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        for (i, edge) in fleet.edges.iter().enumerate() {
            let n = i + 1;
            let central_if = format!("e{n}");
            // Both ends are created directly inside their namespaces.
            ip(&[
                "-n",
                edge,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &central_if,
                "netns",
                &fleet.central,
            ]);
            ip(&["-n", edge, "addr", "add", &format!("{}/24", fleet.edge_addr(i)), "dev", "eth0"]);
            ip(&["-n", &fleet.central, "addr", "add", &format!("{}/24", fleet.central_addr(i)), "dev", &central_if]);
            ip(&["-n", edge, "link", "set", "eth0", "up"]);
            ip(&["-n", &fleet.central, "link", "set", &central_if, "up"]);
        }
        fleet
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.central).chain(&self.edges)
    }

    /// Edge `i`'s address (0-based).
    pub fn edge_addr(&self, i: usize) -> String {
        format!("10.77.{}.2", i + 1)
    }

    /// The central host's address on edge `i`'s link.
    pub fn central_addr(&self, i: usize) -> String {
        format!("10.77.{}.1", i + 1)
    }

    /// `ip netns exec <ns>`, to prefix a command with.
    pub fn exec(ns: &str) -> [&str; 4] {
        ["ip", "netns", "exec", ns]
    }

    /// Shapes edge `i`'s link with the kernel's token bucket filter: `up_kbit` leaving the edge,
    /// `down_kbit` leaving the central host towards it (the real link's rates; the journeys' own
    /// traffic stays on the edge and is shaped by netem in userspace).
    pub fn shape(&self, i: usize, up_kbit: u64, down_kbit: u64) {
        for (ns, dev, kbit) in
            [(&self.edges[i], "eth0".to_owned(), up_kbit), (&self.central, format!("e{}", i + 1), down_kbit)]
        {
            let rate = format!("{kbit}kbit");
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "tc", "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", &rate])
                .args(["burst", "32kbit", "latency", "400ms"])
                .output()
                .expect("running tc");
            assert!(out.status.success(), "tc tbf on {ns}/{dev}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }

    /// Cuts (or restores) edge `i`'s link: its end of the veth pair goes down (or up).
    pub fn set_link(&self, i: usize, up: bool) {
        ip(&["-n", &self.edges[i], "link", "set", "eth0", if up { "up" } else { "down" }]);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for ns in self.all() {
            // Deleting a namespace deletes its veth ends (and so their peers).
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Deletes namespaces left by a test process that no longer runs (killed before its Drop ran).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}
