//! VM shapes (`[[shape]]`): the CPU quota, memory limit and CPU weight a tenant is given, like a
//! cloud's instance sizes. With shapes in a plan every tenant draws one (seeded), its baseline is
//! taken in the same shape, and its row records it.

use super::raw::RawShape;
use super::text::{key_line, line_of};
use super::validate::Checker;
use super::PlanError;

/// A validated shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub name: String,
    /// vCPUs (CFS quota); > 0.
    pub cpu: f64,
    /// MiB; 0 = none. A tenant that needs more reclaims (and swaps) at this limit: v1
    /// `memory.limit_in_bytes`; v2 `memory.high`, with `memory.max` an eighth above it.
    pub mem_mb: f64,
    /// Relative CPU weight (v2 `cpu.weight`, 1–10000, 100 by default; v1 `cpu.shares` =
    /// weight × 1024 / 100).
    pub weight: Option<u32>,
}

impl Checker<'_> {
    /// Every `[[shape]]`: a unique name, a quota and memory this machine can give, a weight in
    /// 1..=10000; the error names the shape's line.
    pub fn shapes(&self, raw: &[RawShape]) -> Result<Vec<Shape>, PlanError> {
        let mut out: Vec<Shape> = Vec::new();
        let mut from = 1;
        for r in raw {
            let line = key_line(self.text, "name", line_of_shape(self.text, from));
            from = line + 1;
            let named_ok = !r.name.is_empty()
                && (r.name.chars()).all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !named_ok || out.iter().any(|s| s.name == r.name) {
                let why = if named_ok {
                    "is defined twice"
                } else {
                    "must be [A-Za-z0-9_-]+"
                };
                return Err(self.err(line, format!("shape name `{}` {why}", r.name)));
            }
            if !(r.cpu >= 0.01 && r.cpu <= self.ncpu as f64) {
                let msg = format!(
                    "shape `{}`: cpu = {} vCPUs must be in 0.01..={} (this machine's CPUs)",
                    r.name, r.cpu, self.ncpu
                );
                return Err(self.err(key_line(self.text, "cpu", line), msg));
            }
            if r.mem_mb.is_nan() || r.mem_mb < 0.0 || r.mem_mb > self.mem_mb {
                let msg = format!(
                    "shape `{}`: mem_mb = {} is impossible (machine has {:.0} MiB)",
                    r.name, r.mem_mb, self.mem_mb
                );
                return Err(self.err(key_line(self.text, "mem_mb", line), msg));
            }
            if r.weight.is_some_and(|w| !(1..=10_000).contains(&w)) {
                let msg = format!("shape `{}`: weight must be in 1..=10000", r.name);
                return Err(self.err(key_line(self.text, "weight", line), msg));
            }
            out.push(Shape {
                name: r.name.clone(),
                cpu: r.cpu,
                mem_mb: r.mem_mb,
                weight: r.weight,
            });
        }
        Ok(out)
    }
}

/// The line of the next `[[shape]]` header from line `from` on.
fn line_of_shape(text: &str, from: usize) -> usize {
    let rest: String = text
        .lines()
        .skip(from.saturating_sub(1))
        .collect::<Vec<_>>()
        .join("\n");
    from.saturating_sub(1) + line_of(&rest, "[[shape]]")
}
