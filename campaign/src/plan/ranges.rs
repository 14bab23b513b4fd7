//! The allowed range of an application's level values (`ranges = { load = [1, 100] }`): a level
//! outside it (`--cpu-load 150`) is refused before any run, naming the plan line.

use super::raw::RawApp;
use super::text::key_line;
use super::validate::Checker;
use super::{Level, PlanError};

impl Checker<'_> {
    /// Every level's value of every ranged key lies in its range; a range whose key no level
    /// has is refused too (it would check nothing).
    pub fn ranges(&self, a: &RawApp, levels: &[Level], line: usize) -> Result<(), PlanError> {
        let rline = key_line(self.text, "ranges", line);
        for (key, [lo, hi]) in &a.ranges {
            if lo.is_nan() || hi.is_nan() || lo > hi {
                let msg = format!(
                    "application `{}`: range of `{key}` [{lo}, {hi}] is empty",
                    a.name
                );
                return Err(self.err(rline, msg));
            }
            if !levels.iter().any(|l| l.vars.contains_key(key)) {
                let msg = format!(
                    "application `{}`: a range is given for `{key}`, which no level sets",
                    a.name
                );
                return Err(self.err(rline, msg));
            }
            for l in levels {
                let Some(v) = l.vars.get(key) else {
                    continue;
                };
                let ok = v.parse::<f64>().is_ok_and(|x| *lo <= x && x <= *hi);
                if !ok {
                    let msg = format!(
                        "application `{}` level `{}`: {key} = {v} is outside its range [{lo}, {hi}]",
                        a.name, l.name
                    );
                    return Err(self.err(key_line(self.text, "levels", line), msg));
                }
            }
        }
        Ok(())
    }
}
