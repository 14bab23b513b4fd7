//! Neighbours that come and go: the schedule of a dynamic run's neighbours as the runs table
//! records it (`neighbour_schedule`, JSON), and which of them were present, at what level, in
//! each second of the run.

use serde::{Deserialize, Serialize};

/// One neighbour's stay on the machine during a run: it arrives (its cgroup is made and its
/// load starts) at `from_s`, runs each level of `levels` in turn and leaves (its load ends and
/// its cgroup is removed) at `to_s`. Seconds from the start of the victim's load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourStay {
    /// Tenant slot of the neighbour in the run (`t1`, `t2`, …): a slot's stays never overlap.
    pub slot: u32,
    pub app: String,
    pub from_s: u32,
    pub to_s: u32,
    /// `(level, from_s, to_s)` back to back from `from_s` to `to_s`: a level change is an
    /// intensity change of the same neighbour.
    pub levels: Vec<(String, u32, u32)>,
    /// The neighbour's VM shape, when the plan has shapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
}

impl NeighbourStay {
    /// The level this stay runs at second `t`, if it is present then.
    pub fn level_at(&self, t: u32) -> Option<&str> {
        self.levels
            .iter()
            .find(|(_, a, b)| *a <= t && t < *b)
            .map(|(l, _, _)| l.as_str())
    }
}

/// Encodes a schedule for the runs table (empty for a run whose neighbours stay throughout).
pub fn schedule_to_json(stays: &[NeighbourStay]) -> String {
    if stays.is_empty() {
        return String::new();
    }
    serde_json::to_string(stays).unwrap_or_default()
}

/// Decodes the runs table's `neighbour_schedule` (empty: none).
pub fn schedule_from_json(s: &str) -> Result<Vec<NeighbourStay>, serde_json::Error> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(s)
}

/// For each of `seconds` seconds, the neighbours present as `app@level`.
pub fn presence_per_second(stays: &[NeighbourStay], seconds: u32) -> Vec<Vec<String>> {
    (0..seconds)
        .map(|t| {
            stays
                .iter()
                .filter_map(|s| s.level_at(t).map(|l| format!("{}@{l}", s.app)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stay of an application called `stress` (also for the other modules' tests).
    pub(crate) fn stay(
        slot: u32,
        from: u32,
        to: u32,
        levels: &[(&str, u32, u32)],
    ) -> NeighbourStay {
        NeighbourStay {
            slot,
            app: "stress".into(),
            from_s: from,
            to_s: to,
            levels: levels
                .iter()
                .map(|(l, a, b)| (l.to_string(), *a, *b))
                .collect(),
            shape: None,
        }
    }

    #[test]
    fn presence_follows_arrivals_level_changes_and_departures() {
        let s = vec![
            stay(1, 2, 6, &[("low", 2, 4), ("high", 4, 6)]),
            stay(2, 0, 3, &[("low", 0, 3)]),
        ];
        let p = presence_per_second(&s, 7);
        assert_eq!(p[0], vec!["stress@low"]);
        assert_eq!(p[2], vec!["stress@low", "stress@low"]);
        assert_eq!(p[4], vec!["stress@high"]);
        assert!(p[6].is_empty());
        let back = schedule_from_json(&schedule_to_json(&s)).unwrap();
        assert_eq!(back, s);
        assert_eq!(schedule_to_json(&[]), "");
        assert!(schedule_from_json("").unwrap().is_empty());
        assert!(schedule_from_json("{not json").is_err());
    }
}
