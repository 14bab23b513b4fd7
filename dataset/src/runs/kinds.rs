//! The runs table's domain values as enums: what kind of run a row is, how it ended, the trace
//! its load followed and where its tenants were placed. Each is written to the table as the
//! string `as_str` gives (the format of `runs.parquet` is unchanged), and a string outside the
//! set is refused when the table is read, naming the column and the value.

use std::fmt;
use std::str::FromStr;

/// A string outside an enum's set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (one of {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// An enum of unit variants, each written as one fixed string.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, default $def:ident,
     { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $var,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The string written to the runs table (and accepted in plans).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $s,)+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$def
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        expected: expected($name::ALL.iter().map(|v| v.as_str())),
                    })
            }
        }
    };
}

fn expected<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

string_enum!(
    /// What a row of the runs table is.
    RunKind, "run kind", default Colocated, {
        /// The tenant alone (an isolated repeat; its performance is the ideal).
        Baseline => "baseline",
        /// The tenant beside others.
        Colocated => "colocated",
    }
);

string_enum!(
    /// How a tenant-run ended.
    RunStatus, "run status", default Ok, {
        /// Ran and reported its performance.
        Ok => "ok",
        /// Crashed, or its output could not be parsed.
        Failed => "failed",
        /// A co-located tenant whose every isolated baseline failed (no label possible).
        NoBaseline => "no_baseline",
    }
);

string_enum!(
    /// The trace a tenant's load follows. `static` keeps the level's rate; the others modulate
    /// it every step.
    Scenario, "scenario", default Static, {
        Static => "static",
        Increasing => "increasing",
        Decreasing => "decreasing",
        Periodic => "periodic",
        Random => "random",
    }
);

impl Scenario {
    /// Whether the load changes during the run.
    pub fn is_dynamic(self) -> bool {
        self != Scenario::Static
    }
}

/// Where a run's tenants were placed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Placement {
    /// A baseline: the tenant alone on the machine.
    Alone,
    /// Every tenant on CPU 0.
    #[default]
    SameCore,
    /// Tenant k on CPU k mod the number of CPUs.
    CrossCore,
    /// No cpuset.
    Unpinned,
    /// Every tenant on this cpu list (`cpuset:<list>` in plans and the table).
    Cpuset(String),
}

impl Placement {
    /// The placements a plan names by word (besides `cpuset:<list>`).
    pub const NAMED: &'static [Placement] = &[
        Placement::SameCore,
        Placement::CrossCore,
        Placement::Unpinned,
    ];

    const CPUSET_PREFIX: &'static str = "cpuset:";
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Alone => f.write_str("alone"),
            Placement::SameCore => f.write_str("same-core"),
            Placement::CrossCore => f.write_str("cross-core"),
            Placement::Unpinned => f.write_str("unpinned"),
            Placement::Cpuset(list) => write!(f, "{}{list}", Placement::CPUSET_PREFIX),
        }
    }
}

impl FromStr for Placement {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        if let Some(list) = s.strip_prefix(Placement::CPUSET_PREFIX) {
            return Ok(Placement::Cpuset(list.to_string()));
        }
        [Placement::Alone]
            .iter()
            .chain(Placement::NAMED)
            .find(|p| p.to_string() == s)
            .cloned()
            .ok_or_else(|| UnknownValue {
                what: "placement",
                value: s.to_string(),
                expected: expected(
                    [
                        "alone",
                        "same-core",
                        "cross-core",
                        "unpinned",
                        "cpuset:<list>",
                    ]
                    .into_iter(),
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_string() {
        for k in RunKind::ALL {
            assert_eq!(k.as_str().parse::<RunKind>().unwrap(), *k);
        }
        for s in RunStatus::ALL {
            assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), *s);
        }
        for s in Scenario::ALL {
            assert_eq!(s.as_str().parse::<Scenario>().unwrap(), *s);
        }
        for p in Placement::NAMED
            .iter()
            .cloned()
            .chain([Placement::Alone, Placement::Cpuset("0-1,3".into())])
        {
            assert_eq!(p.to_string().parse::<Placement>().unwrap(), p);
        }
        assert_eq!(RunStatus::NoBaseline.as_str(), "no_baseline");
        assert_eq!(RunKind::default(), RunKind::Colocated);
    }

    #[test]
    fn unknown_values_name_what_is_expected() {
        let e = "colocatd".parse::<RunKind>().unwrap_err().to_string();
        assert!(e.contains("run kind") && e.contains("`colocatd`"), "{e}");
        assert!(e.contains("`baseline`") && e.contains("`colocated`"), "{e}");
        let e = "same_core".parse::<Placement>().unwrap_err().to_string();
        assert!(
            e.contains("same-core") && e.contains("cpuset:<list>"),
            "{e}"
        );
        assert!("sideways".parse::<Scenario>().is_err());
    }
}
