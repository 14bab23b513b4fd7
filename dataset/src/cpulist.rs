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
    let mut out = Vec::new();
    parse_cpulist_into(s, &mut out)?;
    Ok(out)
}

/// [`parse_cpulist`] into `out` (cleared first), reusing its memory: what the agent calls every
/// second per tenant. `out` is left empty on an error.
pub fn parse_cpulist_into(s: &str, out: &mut Vec<usize>) -> Result<(), CpuListError> {
    out.clear();
    let bad = |out: &mut Vec<usize>| {
        out.clear();
        CpuListError::Bad(s.to_string())
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) else {
                return Err(bad(out));
            };
            if b < a {
                return Err(bad(out));
            }
            out.extend(a..=b);
        } else {
            match part.parse() {
                Ok(c) => out.push(c),
                Err(_) => return Err(bad(out)),
            }
        }
    }
    if out.is_empty() {
        return Err(CpuListError::Empty(s.to_string()));
    }
    Ok(())
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
        let mut out = vec![7, 7, 7];
        parse_cpulist_into("1-2", &mut out).unwrap();
        assert_eq!(out, vec![1, 2], "cleared, then filled");
        assert!(parse_cpulist_into("0,x", &mut out).is_err() && out.is_empty());
    }
}
