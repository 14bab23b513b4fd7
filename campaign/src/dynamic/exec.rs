//! One dynamic run, executed: the victim's load for the whole run, and each neighbour stay set up
//! when it arrives (cgroup `<run>-t<slot>s<j>`, namespace, server), its levels run back to back
//! by one script, and torn down (processes killed, cgroup removed) when it leaves. The stays are
//! returned as they happened: a stay whose server took time to get ready arrives that much later.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use dataset::runs::{NeighbourStay, SAMPLES_DIR};

use super::DynamicRun;
use crate::cgroup;
use crate::error::{io_err, CampaignError};
use crate::exec::{kill_group, spawn_in};
use crate::machine::{now_ns, ForeignProbe};
use crate::output::{load_script, step_commands, STEP_MARKER};
use crate::plan::App;
use crate::runner::{load_timeout, outcome, Executed, Recording, Runner};
use crate::schedule::TenantSpec;
use crate::slot::Slot;

/// A stay on the machine now.
struct Active<'a> {
    idx: usize,
    slot: Slot<'a>,
    server: Option<Child>,
    load: Option<Child>,
    /// Seconds from the victim's load start when its load began.
    from_s: f64,
}

impl Active<'_> {
    fn stop(mut self) {
        for c in self.load.iter_mut().chain(self.server.iter_mut()) {
            kill_group(c);
            let _ = c.wait();
        }
        self.slot.kill_all();
    }
}

/// The shell script of a stay: each level for its seconds, the first shortened by `late_s` (the
/// time its server took to get ready).
fn stay_script(
    app: &App,
    stay: &NeighbourStay,
    vars: &BTreeMap<String, String>,
    late_s: u32,
) -> String {
    let mut script = String::new();
    for (i, (level, a, b)) in stay.levels.iter().enumerate() {
        let secs = (b - a)
            .saturating_sub(if i == 0 { late_s } else { 0 })
            .max(1);
        let mut v = vars.clone();
        if let Some(l) = app.level(level) {
            v.extend(l.vars.clone());
            if let Some(r) = l.rate {
                v.insert("rate".into(), format!("{}", r.round() as i64));
            }
        }
        script.push_str(&format!("echo '{STEP_MARKER} {i} {level}'\n"));
        script.push_str(&step_commands(app, &v, secs as usize));
    }
    script
}

/// The samples partition of a dynamic run: every application in it, sorted, joined with `+`.
fn app_key(run: &DynamicRun) -> String {
    let apps: BTreeSet<&str> = std::iter::once(run.victim.app.as_str())
        .chain(run.stays.iter().map(|s| s.app.as_str()))
        .collect();
    apps.into_iter().collect::<Vec<_>>().join("+")
}

/// The stay as it happened: its load began at `from_s` and ended at `to_s` (seconds from the
/// victim's load start), its levels clipped to that.
fn as_happened(stay: &NeighbourStay, from_s: f64, to_s: f64) -> NeighbourStay {
    let from = from_s.round().max(0.0) as u32;
    let to = (to_s.round() as u32).max(from);
    let levels = stay
        .levels
        .iter()
        .map(|(l, a, b)| (l.clone(), (*a).clamp(from, to), (*b).clamp(from, to)))
        .filter(|(_, a, b)| a < b)
        .collect();
    NeighbourStay {
        from_s: from,
        to_s: to,
        levels,
        ..stay.clone()
    }
}

/// Sets up stay `idx` (cgroup, namespace, server) and starts its load script; `t0` is the
/// victim's load start (None: not started yet, the stay begins with it).
fn arrive<'a>(
    runner: &'a Runner,
    run: &DynamicRun,
    specs: &'a [TenantSpec],
    idx: usize,
    t0: Option<Instant>,
) -> Result<Active<'a>, CampaignError> {
    let stay = &run.stays[idx];
    let j = run.stays[..idx]
        .iter()
        .filter(|s| s.slot == stay.slot)
        .count();
    let name = format!("t{}s{j}", stay.slot);
    let logs = runner.logs_dir(&run.run_id);
    let mut slot = Slot::new(
        runner.plan,
        &runner.parent,
        &run.run_id,
        &name,
        &specs[idx],
        &logs,
    )?;
    let server = slot.start_server()?;
    let mut a = Active {
        idx,
        slot,
        server,
        load: None,
        from_s: stay.from_s as f64,
    };
    if let Some(t0) = t0 {
        let now = t0.elapsed().as_secs_f64();
        a.from_s = now;
        start_load(&mut a, stay, now)?;
    }
    Ok(a)
}

/// Starts a stay's load script (unless its server failed: then the neighbour is present, idle).
fn start_load(a: &mut Active, stay: &NeighbourStay, now_s: f64) -> Result<(), CampaignError> {
    if let Some(why) = &a.slot.early_fail {
        tracing::warn!(tenant = %a.slot.cgroup.name, %why, "neighbour's server failed: it stays idle");
        return Ok(());
    }
    let late = (now_s - stay.from_s as f64).max(0.0).round() as u32;
    let script = stay_script(a.slot.app, stay, &a.slot.vars, late);
    let place = a.slot.client_place();
    a.load = Some(spawn_in(place, &script, &a.slot.load_log, &a.slot.workdir)?);
    Ok(())
}

/// The neighbour stays of a run: those to come, those on the machine, those gone.
struct Timeline<'a> {
    runner: &'a Runner<'a>,
    run: &'a DynamicRun,
    specs: &'a [TenantSpec],
    pending: Vec<usize>,
    active: Vec<Active<'a>>,
    happened: Vec<NeighbourStay>,
}

impl<'a> Timeline<'a> {
    /// Sets up the stays present from the start (their servers ready before the load begins).
    fn new(
        runner: &'a Runner<'a>,
        run: &'a DynamicRun,
        specs: &'a [TenantSpec],
    ) -> Result<Timeline<'a>, CampaignError> {
        let mut pending: Vec<usize> = (0..run.stays.len()).collect();
        pending.sort_by_key(|&i| (run.stays[i].from_s, i));
        let mut t = Timeline {
            runner,
            run,
            specs,
            pending,
            active: Vec::new(),
            happened: Vec::new(),
        };
        while let Some(&i) = t.pending.first().filter(|&&i| run.stays[i].from_s == 0) {
            t.active.push(arrive(runner, run, specs, i, None)?);
            t.pending.remove(0);
        }
        Ok(t)
    }

    /// At the victim's load start: the loads of the stays present from the start.
    fn begin(&mut self) -> Result<(), CampaignError> {
        for a in self.active.iter_mut() {
            start_load(a, &self.run.stays[a.idx], 0.0)?;
        }
        Ok(())
    }

    /// At `now` s after `t0`: stays due to leave leave, stays due to arrive arrive.
    fn tick(&mut self, t0: Instant) -> Result<(), CampaignError> {
        let now = t0.elapsed().as_secs_f64();
        let stays = &self.run.stays;
        let (leaving, staying): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| stays[a.idx].to_s as f64 <= now);
        self.active = staying;
        for a in leaving {
            self.happened
                .push(as_happened(&stays[a.idx], a.from_s, now));
            a.stop();
        }
        while let Some(&i) = self
            .pending
            .first()
            .filter(|&&i| stays[i].from_s as f64 <= now)
        {
            let a = arrive(self.runner, self.run, self.specs, i, Some(t0))?;
            self.active.push(a);
            self.pending.remove(0);
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.pending.is_empty() && self.active.is_empty()
    }

    /// Ends every stay still there at `now`; the stays as they happened, by slot and time.
    fn close(mut self, now: f64) -> Vec<NeighbourStay> {
        for a in std::mem::take(&mut self.active) {
            self.happened
                .push(as_happened(&self.run.stays[a.idx], a.from_s, now));
            a.stop();
        }
        self.happened.sort_by_key(|s| (s.slot, s.from_s));
        self.happened
    }
}

/// Waits for the victim's load while the neighbours come and go: its exit status (None: killed
/// at the deadline), and the stays as they happened.
fn follow(
    mut timeline: Timeline,
    load: &mut Child,
    t0: Instant,
    plan: &crate::plan::Plan,
) -> Result<(Option<ExitStatus>, Vec<NeighbourStay>), CampaignError> {
    let timeout = load_timeout(plan.run_seconds).as_secs_f64();
    let end = plan.run_seconds as f64;
    let status = loop {
        if cgroup::interrupted() {
            kill_group(load);
            let _ = load.wait();
            timeline.close(0.0);
            return Err(CampaignError::Interrupted);
        }
        timeline.tick(t0)?;
        let now = t0.elapsed().as_secs_f64();
        let exited = load
            .try_wait()
            .map_err(|e| CampaignError::Setup(format!("wait: {e}")))?;
        if let Some(st) = exited.filter(|_| now >= end || timeline.done()) {
            break Some(st);
        }
        if now > timeout {
            kill_group(load);
            let _ = load.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok((status, timeline.close(t0.elapsed().as_secs_f64())))
}

fn stop_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        kill_group(c);
        let _ = c.wait();
    }
}

/// Runs a dynamic run: the victim's outcome, and the stays as they happened.
pub fn execute_dynamic(
    runner: &Runner,
    run: &DynamicRun,
) -> Result<(Executed, Vec<NeighbourStay>), CampaignError> {
    let plan = runner.plan;
    let id = &run.run_id;
    runner.clear_run(id)?;
    let logs = runner.logs_dir(id);
    fs::create_dir_all(&logs).map_err(io_err(&logs))?;
    let key = app_key(run);
    let samples_dir = format!("{SAMPLES_DIR}/app={key}/run={id}");
    let specs: Vec<TenantSpec> = run.stays.iter().map(|s| run.stay_spec(s)).collect();
    let mut victim = Slot::new(plan, &runner.parent, id, "t0", &run.victim, &logs)?;
    let mut servers: Vec<Child> = victim.start_server()?.into_iter().collect();
    if victim.early_fail.is_some() {
        stop_all(&mut servers);
        let (now, o) = (now_ns(), outcome(&victim, None, plan.run_seconds));
        let ex = Executed {
            start_ns: now,
            end_ns: now,
            foreign_cpu_pct: f64::NAN,
            samples_dir,
            tenants: vec![o],
        };
        return Ok((ex, Vec::new()));
    }
    let mut timeline = Timeline::new(runner, run, &specs)?;
    let recording = Recording::start(runner.agent_config(&key, id));
    std::thread::sleep(Duration::from_secs(plan.warmup_seconds.max(1) as u64));

    let start_ns = now_ns();
    let probe = ForeignProbe::start_at(runner.parent.cpu_seconds());
    let t0 = Instant::now();
    let script = load_script(victim.app, &run.victim, &victim.vars, plan.run_seconds);
    let place = victim.client_place();
    let mut load = spawn_in(place, &script, &victim.load_log, &victim.workdir)?;
    timeline.begin()?;
    let (status, happened) = follow(timeline, &mut load, t0, plan)?;
    let foreign = probe.finish_at(runner.parent.cpu_seconds());
    let end_ns = now_ns();
    stop_all(&mut servers);
    recording.stop()?;
    let o = outcome(&victim, status, plan.run_seconds);
    victim.kill_all();
    let ex = Executed {
        start_ns,
        end_ns,
        foreign_cpu_pct: foreign,
        samples_dir,
        tenants: vec![o],
    };
    Ok((ex, happened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stay_as_it_happened_is_clipped_to_its_real_times() {
        let s = NeighbourStay {
            slot: 1,
            app: "a".into(),
            from_s: 10,
            to_s: 40,
            levels: vec![("low".into(), 10, 25), ("high".into(), 25, 40)],
            shape: None,
        };
        let h = as_happened(&s, 12.4, 39.6);
        assert_eq!((h.from_s, h.to_s), (12, 40));
        assert_eq!(h.levels[0], ("low".into(), 12, 25));
        let h = as_happened(&s, 27.0, 40.0);
        assert_eq!(h.levels, vec![("high".into(), 27, 40)]);
    }
}
