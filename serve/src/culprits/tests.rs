use super::*;
use crate::live::TenantSecond;

/// A tenant's own row: `cpu.usage_pct` = `usage`, `mem.current_bytes` = 1 GiB, CPU 0.
fn own(cat: &Catalogue, tenant: &str, usage: f32) -> TenantSecond {
    let nm = cat.n_metrics();
    let mut features = vec![f32::NAN; 2 * nm];
    features[cat.index_of("cpu.usage_pct").unwrap()] = usage;
    features[cat.index_of("mem.current_bytes").unwrap()] = 1_073_741_824.0;
    features[cat.index_of("placement.cpuset_cpus").unwrap()] = 1.0;
    features[cat.index_of("cpu.psi_some_pct").unwrap()] = 40.0;
    // A stale neighbour half, as the agent left it: the plan must not read it.
    features[nm] = 12345.0;
    TenantSecond {
        tenant: tenant.into(),
        features,
        cpus: vec![0],
    }
}

/// Three seconds: a victim at 100 %, a hog at 100 % and an idle tenant on the same CPU; a
/// late tenant joins in the last second only.
fn host(cat: &Catalogue) -> Vec<SecondOfHost> {
    (0..3)
        .map(|s| {
            let mut rows = vec![
                own(cat, "victim", 100.0),
                own(cat, "hog", 100.0),
                own(cat, "idle", 0.0),
            ];
            if s == 2 {
                rows.push(own(cat, "late", 50.0));
            }
            // What the agent recorded for the victim: the demand of everyone on CPU 0.
            let c = cat.index_of("placement.contending_cpu_pct").unwrap();
            rows[0].features[c] = if s == 2 { 150.0 } else { 100.0 };
            SecondOfHost {
                ts_ns: 1_000 + s,
                rows,
            }
        })
        .collect()
}

fn at(w: &WindowData, s: usize, col: usize) -> f32 {
    w.data[s * w.data.len() / w.t + col]
}

/// The window that occludes `resource`.
fn occluding<'a>(p: &'a Plan, resource: &str) -> &'a WindowData {
    let i = p
        .variants
        .iter()
        .position(|v| matches!(v, Variant::Occluded { resource: r, .. } if r == resource))
        .unwrap_or_else(|| panic!("no window occludes {resource}"));
    &p.windows[i]
}

#[test]
fn each_window_rebuilds_the_neighbour_columns_from_the_tenants_it_keeps() {
    let cat = Catalogue::builtin();
    let nm = cat.n_metrics();
    let usage = cat.index_of("cpu.usage_pct").unwrap();
    let contending = cat.index_of("placement.contending_cpu_pct").unwrap();
    let neighbours = cat.index_of("placement.neighbours").unwrap();
    let seconds = host(cat);
    let p = plan("victim", &seconds, cat);
    let v = |x: &Variant| &p.windows[p.variants.iter().position(|y| y == x).unwrap()];
    assert_eq!(p.windows.len(), p.variants.len());
    assert!(p
        .windows
        .iter()
        .all(|w| w.t == 3 && w.data.len() == 3 * 2 * nm));

    let all = v(&Variant::All);
    assert_eq!(
        at(all, 0, contending),
        100.0,
        "the hog's 100 % lands on CPU 0"
    );
    assert_eq!(at(all, 0, neighbours), 2.0);
    assert_eq!(at(all, 0, nm + usage), 50.0, "mean of hog and idle");
    assert_eq!(at(all, 2, nm + usage), 50.0, "mean of hog, idle, late");
    assert_eq!(at(all, 2, contending), 150.0);
    assert!(at(all, 0, nm).is_finite() && at(all, 0, nm) != 12345.0);

    let no_hog = v(&Variant::Without("hog".into()));
    assert_eq!(at(no_hog, 0, contending), 0.0);
    assert_eq!(at(no_hog, 0, neighbours), 1.0);
    assert_eq!(at(no_hog, 0, nm + usage), 0.0, "only the idle one is left");
    let no_idle = v(&Variant::Without("idle".into()));
    assert_eq!(at(no_idle, 0, contending), 100.0);
    assert_eq!(at(no_idle, 0, nm + usage), 100.0);

    let alone = v(&Variant::Alone);
    assert_eq!(at(alone, 1, neighbours), 0.0);
    assert!((0..nm).all(|k| at(alone, 1, nm + k).is_nan()));
    assert_eq!(at(alone, 1, usage), 100.0, "the own half is untouched");

    let mem = cat.index_of("mem.current_bytes").unwrap();
    let no_cpu = occluding(&p, "cpu");
    assert!(at(no_cpu, 0, nm + usage).is_nan());
    assert_eq!(at(no_cpu, 0, nm + mem), 1_073_741_824.0);
    assert_eq!(
        at(no_cpu, 0, contending),
        0.0,
        "the neighbours' CPU no longer contends for the victim's CPU"
    );
    assert_eq!(at(no_cpu, 0, usage), 100.0, "the own usage stays");
    let no_mem = occluding(&p, "mem");
    assert!(at(no_mem, 0, nm + mem).is_nan());
    assert_eq!(at(no_mem, 0, nm + usage), 50.0);
    assert_eq!(at(no_mem, 0, contending), 100.0, "own columns stay");
    // Only resources with neighbour values are occluded.
    let occluded: Vec<&str> = p
        .variants
        .iter()
        .filter_map(|x| match x {
            Variant::Occluded { resource, .. } => Some(resource.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(occluded, vec!["cpu", "mem", "placement"]);
}

#[test]
fn leaving_a_neighbour_out_scales_the_own_waits_by_the_contending_demand_left() {
    let cat = Catalogue::builtin();
    let nm = cat.n_metrics();
    let psi = cat.index_of("cpu.psi_some_pct").unwrap();
    let usage = cat.index_of("cpu.usage_pct").unwrap();
    let p = plan("victim", &host(cat), cat);
    let v = |x: &Variant| &p.windows[p.variants.iter().position(|y| y == x).unwrap()];
    let u = crate::rebuild::UNATTRIBUTED_DEMAND_PCT;
    let close = |a: f32, b: f32| (a - b).abs() < 1e-4;

    let all = v(&Variant::All);
    assert_eq!(at(all, 0, psi), 40.0, "the served window is not scaled");
    // Without the hog only the idle tenant's 0 % contends: the waits shrink to u / (100 + u).
    let no_hog = v(&Variant::Without("hog".into()));
    assert!(close(at(no_hog, 0, psi), 40.0 * u / (100.0 + u)));
    assert!(
        close(at(no_hog, 0, nm + psi), 40.0),
        "the idle tenant's own waits are its own"
    );
    assert_eq!(at(no_hog, 0, usage), 100.0, "usage is not a wait");
    // Without the idle tenant all the demand is left: nothing moves.
    let no_idle = v(&Variant::Without("idle".into()));
    assert_eq!(at(no_idle, 0, psi), 40.0);
    // Without the late one (last second only): 100 of 150 left.
    let no_late = v(&Variant::Without("late".into()));
    assert!(close(at(no_late, 2, psi), 40.0 * (100.0 + u) / (150.0 + u)));
    assert_eq!(at(no_late, 1, psi), 40.0);
    let alone = v(&Variant::Alone);
    assert!(close(at(alone, 2, psi), 40.0 * u / (150.0 + u)));
    assert!(
        at(alone, 2, nm + psi).is_nan(),
        "no neighbour half to scale"
    );
    // Occluding the neighbours' CPU takes all their demand off: the waits of "alone";
    // occluding their memory moves no wait.
    let no_cpu = occluding(&p, "cpu");
    assert!(close(at(no_cpu, 0, psi), 40.0 * u / (100.0 + u)));
    assert!(close(at(no_cpu, 2, psi), at(alone, 2, psi)));
    assert_eq!(at(occluding(&p, "mem"), 2, psi), 40.0);
}

#[test]
fn neighbours_and_resources_are_ranked_by_how_much_their_absence_raises_p() {
    let cat = Catalogue::builtin();
    let seconds = host(cat);
    let p = plan("victim", &seconds, cat);
    // A made-up model: P̂ = 1 − contending / 200 at the last second, so only CPU demand hurts.
    let contending = cat.index_of("placement.contending_cpu_pct").unwrap();
    let nm = cat.n_metrics();
    let usage = cat.index_of("cpu.usage_pct").unwrap();
    let preds: Vec<Pred> = p
        .windows
        .iter()
        .map(|w| {
            let c = at(w, 2, contending);
            let u = at(w, 2, nm + usage);
            Pred {
                p: 1.0 - c / 200.0 + if u.is_nan() { 0.1 } else { 0.0 },
                std: 0.01,
                coverage: 1.0,
                out_of_distribution: false,
            }
        })
        .collect();
    let c = assemble("victim", &seconds, &p.variants, &preds).unwrap();
    assert_eq!(c.t, 3);
    assert_eq!((c.from_ts_ns, c.to_ts_ns), (1_000, 1_002));
    assert_eq!(c.with_all.p, 0.25);
    assert!((c.alone.p - 1.1).abs() < 1e-6, "{}", c.alone.p);
    let order: Vec<(&str, usize)> = c
        .neighbours
        .iter()
        .map(|n| (n.id.as_str(), n.seconds_present))
        .collect();
    assert_eq!(order, vec![("hog", 3), ("late", 1), ("idle", 3)]);
    assert_eq!(c.neighbours[0].delta_p, 0.5);
    assert_eq!(c.neighbours[2].delta_p, 0.0);
    assert_eq!(c.resources[0].resource, "cpu");
    assert!(c.resources[0].delta_p > 0.05 && c.resources[0].columns >= 1);
    assert!(assemble("victim", &seconds, &p.variants, &preds[1..]).is_err());
}

#[test]
fn a_tenant_alone_has_no_neighbour_and_no_resource_to_occlude() {
    let cat = Catalogue::builtin();
    let seconds: Vec<SecondOfHost> = (0..2)
        .map(|s| SecondOfHost {
            ts_ns: s,
            rows: vec![own(cat, "solo", 60.0)],
        })
        .collect();
    let p = plan("solo", &seconds, cat);
    assert_eq!(p.variants, vec![Variant::All, Variant::Alone]);
    assert_eq!(p.windows[0].data.len(), p.windows[1].data.len());
    let same = p.windows[0]
        .data
        .iter()
        .zip(&p.windows[1].data)
        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
    assert!(same, "alone and with all neighbours are the same window");
}
