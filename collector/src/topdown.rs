//! Top-Down level 1 (Yasin's method: retiring, bad speculation, frontend bound, backend bound,
//! each a share of the pipeline's issue slots) from the events the kernel announces for the core
//! PMU in sysfs (`/sys/bus/event_source/devices/cpu/events/topdown-*`):
//!
//! - **perf metrics** (Intel Ice Lake and later): `slots` and `topdown-retiring`, `-bad-spec`,
//!   `-fe-bound`, `-be-bound`, read as one group led by `slots`; each member counts slots.
//! - **slot events** (Intel Skylake-era cores): `topdown-total-slots` (cycles × a `.scale` of 4,
//!   or 2 with SMT where the event counts both threads), `topdown-slots-issued`,
//!   `topdown-slots-retired`, `topdown-fetch-bubbles`, `topdown-recovery-bubbles` (× its scale);
//!   bad speculation = issued − retired + recovery, backend = the rest.
//!
//! Where none are announced (no PMU, as on this VM, or a vendor that does not announce Top-Down
//! events in sysfs, such as AMD) the probe finds nothing and the columns are null.

use std::fs;
use std::path::Path;

/// Where the kernel lists its PMUs.
pub const SYSFS_PMUS: &str = "/sys/bus/event_source/devices";

/// A PMU announces Top-Down events but their description cannot be used (the message names
/// the file and what is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopDownError(pub String);

impl From<String> for TopDownError {
    fn from(s: String) -> TopDownError {
        TopDownError(s)
    }
}

/// Which set of events the core PMU announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    PerfMetrics,
    SlotEvents,
}

/// The five events of one flavour, resolved to `perf_event_attr` type and config values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopDownEvents {
    pub flavour: Flavour,
    /// The PMU's `type` (for `perf_event_attr.type`).
    pub pmu_type: u32,
    /// Configs in group order; the first leads the group.
    pub configs: [u64; 5],
    /// Each event's `.scale` (1 where none is given).
    pub scales: [f64; 5],
}

const PERF_METRICS: [&str; 5] = [
    "slots",
    "topdown-retiring",
    "topdown-bad-spec",
    "topdown-fe-bound",
    "topdown-be-bound",
];
const SLOT_EVENTS: [&str; 5] = [
    "topdown-total-slots",
    "topdown-slots-issued",
    "topdown-slots-retired",
    "topdown-fetch-bubbles",
    "topdown-recovery-bubbles",
];

/// Finds the Top-Down events under `pmus` (normally [`SYSFS_PMUS`]): the core PMU is `cpu`, or
/// `cpu_core` (the big cores of a hybrid Intel part). `Ok(None)` when no PMU announces a full
/// set; `Err` when one does but its description cannot be parsed (named in the message).
pub fn find(pmus: &Path) -> Result<Option<TopDownEvents>, TopDownError> {
    for pmu in ["cpu", "cpu_core"] {
        let dir = pmus.join(pmu);
        if !dir.join("type").exists() {
            continue;
        }
        for (flavour, names) in [
            (Flavour::PerfMetrics, PERF_METRICS),
            (Flavour::SlotEvents, SLOT_EVENTS),
        ] {
            if names.iter().all(|n| dir.join("events").join(n).is_file()) {
                return resolve(&dir, flavour, &names).map(Some);
            }
        }
    }
    Ok(None)
}

fn read_trim(path: &Path) -> Result<String, TopDownError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn resolve(dir: &Path, flavour: Flavour, names: &[&str; 5]) -> Result<TopDownEvents, TopDownError> {
    let type_path = dir.join("type");
    let pmu_type = read_trim(&type_path)?
        .parse::<u32>()
        .map_err(|e| format!("{}: {e}", type_path.display()))?;
    let mut configs = [0u64; 5];
    let mut scales = [1.0f64; 5];
    for (i, name) in names.iter().enumerate() {
        let path = dir.join("events").join(name);
        let terms = read_trim(&path)?;
        configs[i] = event_config(dir, &terms).map_err(|e| format!("{}: {e}", path.display()))?;
        let scale_path = dir.join("events").join(format!("{name}.scale"));
        if scale_path.is_file() {
            scales[i] = read_trim(&scale_path)?
                .parse::<f64>()
                .map_err(|e| format!("{}: {e}", scale_path.display()))?;
        }
    }
    Ok(TopDownEvents {
        flavour,
        pmu_type,
        configs,
        scales,
    })
}

/// The `config` value of an event description such as `event=0x3c,umask=0x0,any=1`, placing
/// each term's value in the bits its `format/<term>` file names (`config:0-7`, `config:21`,
/// or split ranges such as `config:0-7,32-35`). A term without a value means 1.
pub fn event_config(pmu: &Path, terms: &str) -> Result<u64, TopDownError> {
    let mut config = 0u64;
    for term in terms.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (name, value) = match term.split_once('=') {
            Some((n, v)) => (n.trim(), parse_number(v.trim())?),
            None => (term, 1),
        };
        let format = read_trim(&pmu.join("format").join(name))?;
        config |= place(&format, value).map_err(|e| format!("term `{name}`: {e}"))?;
    }
    Ok(config)
}

fn parse_number(s: &str) -> Result<u64, TopDownError> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse::<u64>(),
    };
    r.map_err(|e| format!("`{s}`: {e}").into())
}

/// Places `value`'s bits, lowest first, into the bit ranges of a format such as `config:8-15`.
fn place(format: &str, mut value: u64) -> Result<u64, TopDownError> {
    let (field, ranges) = format
        .split_once(':')
        .ok_or_else(|| format!("format `{format}` has no `config:` prefix"))?;
    if field != "config" {
        let why = format!("format `{format}` uses `{field}`, only `config` is supported");
        return Err(why.into());
    }
    let mut out = 0u64;
    for range in ranges.split(',') {
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range.trim(), range.trim()),
        };
        let lo: u32 = lo.parse().map_err(|e| format!("`{range}`: {e}"))?;
        let hi: u32 = hi.parse().map_err(|e| format!("`{range}`: {e}"))?;
        if hi < lo || hi > 63 {
            return Err(format!("bit range `{range}` out of order or past 63").into());
        }
        let width = hi - lo + 1;
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        out |= (value & mask) << lo;
        value = value.checked_shr(width).unwrap_or(0);
    }
    if value != 0 {
        return Err(format!("value too wide for `{format}`").into());
    }
    Ok(out)
}

/// Turns summed group counts into the four level-1 categories as cumulative slot counts
/// `[slots, retiring, bad speculation, frontend bound, backend bound]`, so that each category's
/// share of a second is Δcategory / Δslots. For slot events the derived categories (bad
/// speculation, backend) are accumulated from per-read deltas clamped at 0, as perf clamps
/// their shares, so they never decrease.
#[derive(Debug, Default)]
pub struct Derive {
    /// The previous read's categories before clamping (zeros before the first read, so that the
    /// first read's deltas are its totals).
    last: [f64; 4],
    cum: [f64; 5],
}

impl Derive {
    pub fn update(&mut self, ev: &TopDownEvents, counts: [u64; 5]) -> [f64; 5] {
        let c = std::array::from_fn::<f64, 5, _>(|i| counts[i] as f64 * ev.scales[i]);
        let [slots, issued, retired, fetch, recovery] = match ev.flavour {
            Flavour::PerfMetrics => return c,
            Flavour::SlotEvents => c,
        };
        let cur = [slots, retired, issued - retired + recovery, fetch];
        let d: [f64; 4] = std::array::from_fn(|i| cur[i] - self.last[i]);
        self.last = cur;
        let bad = d[2].max(0.0);
        let backend = (d[0] - d[1] - bad - d[3]).max(0.0);
        self.cum[0] = slots;
        self.cum[1] = retired;
        self.cum[2] += bad;
        self.cum[3] = fetch;
        self.cum[4] += backend;
        self.cum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_placement() {
        assert_eq!(place("config:0-7", 0x3c).unwrap(), 0x3c);
        assert_eq!(place("config:8-15", 0x4).unwrap(), 0x400);
        assert_eq!(place("config:21", 1).unwrap(), 1 << 21);
        // AMD's 12-bit event select: low 8 bits at 0-7, high 4 at 32-35.
        assert_eq!(place("config:0-7,32-35", 0x1a0).unwrap(), 0xa0 | (1 << 32));
        assert!(place("config:0-7", 0x100).is_err());
        assert!(place("config1:0-15", 1).is_err());
        assert!(place("nonsense", 1).is_err());
    }

    #[test]
    fn slot_events_derive_shares_that_never_decrease() {
        let ev = TopDownEvents {
            flavour: Flavour::SlotEvents,
            pmu_type: 4,
            configs: [0; 5],
            scales: [4.0, 1.0, 1.0, 1.0, 4.0],
        };
        let mut d = Derive::default();
        // 1000 cycles = 4000 slots; issued 1500, retired 1200, fetch bubbles 800, recovery
        // 50 cycles = 200 slots: bad = 1500 - 1200 + 200 = 500, backend = 4000-1200-500-800.
        let a = d.update(&ev, [1000, 1500, 1200, 800, 50]);
        assert_eq!(a, [4000.0, 1200.0, 500.0, 800.0, 1500.0]);
        // Next second: 1000 cycles more, more retired than issued (bad share would be < 0).
        let b = d.update(&ev, [2000, 2500, 2400, 1600, 50]);
        assert_eq!(b[2], 500.0, "bad speculation clamped at 0, never decreases");
        assert_eq!(b[4] - a[4], 4000.0 - 1200.0 - 800.0);
        let shares: Vec<f64> = (1..5).map(|i| (b[i] - a[i]) / (b[0] - a[0])).collect();
        assert!(
            (shares.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{shares:?}"
        );
    }
}
