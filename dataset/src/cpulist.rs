//! Linux cpu lists (`0-1,3`), as cgroup `cpuset.cpus` files and the runs table's `cpuset`
//! column write them.

/// A cpu list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    #[error("bad cpu list `{0}`")]
    Bad(String),
    #[error("empty cpu list `{0}`")]
    Empty(String),
}

/// Parses a cpu list such as `0-1,3`.
pub fn parse_cpulist(s: &str) -> Result<Vec<usize>, CpuListError> {
    let bad = || CpuListError::Bad(s.to_string());
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if b < a {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() {
        return Err(CpuListError::Empty(s.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_singles_and_errors() {
        assert_eq!(parse_cpulist("0-1,3").unwrap(), vec![0, 1, 3]);
        assert_eq!(parse_cpulist(" 2 ").unwrap(), vec![2]);
        assert!(matches!(parse_cpulist("2-1"), Err(CpuListError::Bad(_))));
        assert!(matches!(parse_cpulist("a"), Err(CpuListError::Bad(_))));
        assert!(matches!(parse_cpulist(""), Err(CpuListError::Empty(_))));
    }
}
