//! One second's rows from every tenant's own columns: the cross-tenant placement columns
//! (`placement.neighbours`, `placement.contending_cpu_pct`; see `dataset::placement`), then, for
//! every metric, the mean over the other tenants with a value (`nbr.*`).

use dataset::placement::{fill_cross_tenant, PlacementColumns};

use crate::tick::TenantRow;

/// A tenant's own columns at one tick, before the cross-tenant ones.
#[derive(Debug, Clone)]
pub struct OwnRow {
    pub tenant: String,
    /// `2 × n_metrics` wide; the own half set, the `nbr.` half NaN.
    pub features: Vec<f32>,
    pub gap: bool,
    pub dt_s: f32,
    /// The CPUs the tenant may run on.
    pub cpus: Vec<usize>,
}

/// The rows of one second (`nm` metrics per tenant; `placement`: where the cross-tenant columns
/// are, if the catalogue has them).
pub fn rows_of_second(
    mut own: Vec<OwnRow>,
    nm: usize,
    placement: Option<&PlacementColumns>,
) -> Vec<TenantRow> {
    if let Some(c) = placement {
        let mut feats: Vec<Vec<f32>> = own
            .iter_mut()
            .map(|o| std::mem::take(&mut o.features))
            .collect();
        let cpus: Vec<Option<&[usize]>> = own.iter().map(|o| Some(o.cpus.as_slice())).collect();
        let mut rows: Vec<&mut [f32]> = feats.iter_mut().map(|f| f.as_mut_slice()).collect();
        fill_cross_tenant(&mut rows, &cpus, c);
        for (o, f) in own.iter_mut().zip(feats) {
            o.features = f;
        }
    }
    let mut sum = vec![0f64; nm];
    let mut cnt = vec![0u32; nm];
    for o in &own {
        for ((s, c), &x) in sum.iter_mut().zip(cnt.iter_mut()).zip(&o.features[..nm]) {
            if !x.is_nan() {
                *s += x as f64;
                *c += 1;
            }
        }
    }
    let n_t = own.len() as u32;
    own.into_iter()
        .map(|mut o| {
            let (mine, nb) = o.features.split_at_mut(nm);
            for (((n, &x), &s), &c) in nb.iter_mut().zip(mine.iter()).zip(&sum).zip(&cnt) {
                let (mut s, mut c) = (s, c);
                if !x.is_nan() {
                    s -= x as f64;
                    c -= 1;
                }
                *n = if c > 0 {
                    (s / c as f64) as f32
                } else {
                    f32::NAN
                };
            }
            TenantRow {
                tenant: o.tenant,
                features: o.features,
                n_neighbours: n_t.saturating_sub(1),
                gap: o.gap,
                dt_s: o.dt_s,
                cpus: o.cpus,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::catalogue::Catalogue;

    fn own(name: &str, usage: f32, cpus: &[usize], c: &PlacementColumns) -> OwnRow {
        let mut features = vec![f32::NAN; 2 * c.n_metrics];
        features[c.cpu_usage_pct] = usage;
        features[c.cpuset_cpus] = cpus.len() as f32;
        OwnRow {
            tenant: name.into(),
            features,
            gap: false,
            dt_s: 1.0,
            cpus: cpus.to_vec(),
        }
    }

    #[test]
    fn an_idle_neighbour_adds_no_contending_demand_and_neighbour_means_follow() {
        let cat = Catalogue::builtin();
        let c = PlacementColumns::of(cat).unwrap();
        let nm = cat.n_metrics();
        let rows = rows_of_second(
            vec![
                own("busy", 100.0, &[0], &c),
                own("idle", 0.0, &[0], &c),
                own("elsewhere", 100.0, &[1], &c),
            ],
            nm,
            Some(&c),
        );
        let busy = &rows[0].features;
        let idle = &rows[1].features;
        assert_eq!(
            busy[c.contending_cpu_pct], 0.0,
            "the idle neighbour contends with nothing"
        );
        assert_eq!(idle[c.contending_cpu_pct], 100.0);
        assert_eq!(rows[2].features[c.contending_cpu_pct], 0.0, "another CPU");
        assert_eq!(busy[c.neighbours], 2.0);
        assert_eq!(rows[0].n_neighbours, 2);
        // nbr.cpu.usage_pct of busy = mean of the other two.
        assert_eq!(busy[nm + c.cpu_usage_pct], 50.0);
        assert_eq!(idle[nm + c.contending_cpu_pct], 0.0);
        // A tenant alone: no neighbour, nothing contends, no neighbour means.
        let alone = rows_of_second(vec![own("a", 60.0, &[0], &c)], nm, Some(&c));
        assert_eq!(alone[0].features[c.contending_cpu_pct], 0.0);
        assert_eq!(alone[0].features[c.neighbours], 0.0);
        assert!(alone[0].features[nm + c.cpu_usage_pct].is_nan());
    }
}
