use super::*;

pub(super) const GOOD: &str = r#"
seed = 1
run_seconds = 10
colocated_runs = 4
sizes = [2]

[limits]
cpu = 1.0
mem_mb = 512

[[app]]
name = "sb"
load = "sysbench cpu --time={duration} run"
metric = "events_per_s"
higher_is_better = true
run_regex = 'events per second:\s*([0-9.]+)'
second_regex = 'eps: ([0-9.]+)'
levels = [{ name = "one", threads = 1 }]

[[app]]
name = "pg"
server = "postgres -p {port}"
load = "pgbench -p {port} -T {duration} -R {rate}"
metric = "latency_ms"
higher_is_better = false
run_regex = 'latency average = ([0-9.]+)'
levels = [{ name = "low", rate = 100 }]
"#;

fn parse(text: &str) -> Result<Plan, PlanError> {
    Plan::parse_with(text, Path::new("p.toml"), &|b| b != "missingbin")
}

fn line_of_err(e: PlanError) -> (usize, String) {
    match e {
        PlanError::At { line, msg, .. } => (line, msg),
        other => panic!("{other}"),
    }
}

#[test]
fn good_plan_parses() {
    let p = parse(GOOD).unwrap();
    assert_eq!(p.apps.len(), 2);
    assert!(p.apps[1].takes_rate());
    assert_eq!(p.apps[1].levels[0].rate, Some(100.0));
    assert_eq!(p.apps[0].cpu_limit, 1.0);
    assert_eq!(p.repeats, 3);
}

#[test]
fn a_server_dialled_on_loopback_is_refused_in_namespaces() {
    let text = GOOD.replace("pgbench -p {port}", "pgbench -h 127.0.0.1 -p {port}");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 21, "{msg}");
    assert!(msg.contains("`pg`") && msg.contains("{addr}"), "{msg}");
    let host = text.replace("sizes = [2]", "sizes = [2]\nnetwork = \"host\"");
    assert_eq!(parse(&host).unwrap().network, Network::Host);
    let addr = GOOD.replace("pgbench -p {port}", "pgbench -h {addr} -p {port}");
    assert_eq!(parse(&addr).unwrap().network, Network::Namespace);
}

#[test]
fn shapes_are_validated_naming_their_line() {
    let shapes = "\n[[shape]]\nname = \"half\"\ncpu = 0.5\nmem_mb = 256\nweight = 50\n\n[[shape]]\nname = \"one\"\ncpu = 1.0\n";
    let p = parse(&format!("{GOOD}{shapes}")).unwrap();
    assert_eq!(p.shapes.len(), 2);
    assert_eq!(p.shape("half").unwrap().weight, Some(50));
    assert_eq!(p.shape("one").unwrap().mem_mb, 0.0);
    let sched = crate::schedule::schedule(&p);
    let drawn: std::collections::BTreeSet<_> = (sched.iter())
        .flat_map(|r| &r.tenants)
        .map(|t| t.shape.clone().unwrap())
        .collect();
    assert!(drawn.contains("half") || drawn.contains("one"), "{drawn:?}");
    assert!(parse(GOOD).unwrap().shapes.is_empty());
    let first = GOOD.lines().count();
    let dup = shapes.replace("\"one\"", "\"half\"");
    let (line, msg) = line_of_err(parse(&format!("{GOOD}{dup}")).unwrap_err());
    assert_eq!(line, first + 9, "{msg}");
    assert!(msg.contains("defined twice"), "{msg}");
    let big = shapes.replace("cpu = 1.0", "cpu = 99.0");
    let (line, msg) = line_of_err(parse(&format!("{GOOD}{big}")).unwrap_err());
    assert_eq!(line, first + 10, "{msg}");
    assert!(msg.contains("`one`") && msg.contains("99"), "{msg}");
    let heavy = shapes.replace("weight = 50", "weight = 0");
    let (line, msg) = line_of_err(parse(&format!("{GOOD}{heavy}")).unwrap_err());
    assert_eq!(line, first + 6, "{msg}");
}

#[test]
fn a_level_outside_its_range_names_the_line() {
    let ranged = GOOD.replace(
        "levels = [{ name = \"low\", rate = 100 }]",
        "levels = [{ name = \"low\", rate = 100 }, { name = \"max\", rate = 900 }]\nranges = { rate = [1, 500] }",
    );
    let (line, msg) = line_of_err(parse(&ranged).unwrap_err());
    assert_eq!(line, 27, "{msg}");
    assert!(
        msg.contains("`max`") && msg.contains("900") && msg.contains("[1, 500]"),
        "{msg}"
    );
    let fine = ranged.replace("rate = 900", "rate = 500");
    assert!(parse(&fine).is_ok());
    let stray = fine.replace("ranges = { rate", "ranges = { rates");
    let (line, msg) = line_of_err(parse(&stray).unwrap_err());
    assert_eq!(line, 28, "{msg}");
    assert!(msg.contains("`rates`") && msg.contains("no level"), "{msg}");
}

#[test]
fn slices_and_a_second_regex_are_one_too_many() {
    let text = GOOD.replace(
        "second_regex = 'eps: ([0-9.]+)'",
        "second_regex = 'eps: ([0-9.]+)'\nslices = true",
    );
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 18, "{msg}");
    assert!(msg.contains("slices") && msg.contains("`sb`"), "{msg}");
    let sliced = text.replace("second_regex = 'eps: ([0-9.]+)'\n", "");
    let p = parse(&sliced).unwrap();
    assert!(p.apps[0].slices && p.apps[0].reports_per_second());
    assert!(!p.apps[1].reports_per_second());
}

#[test]
fn an_unknown_network_names_the_line() {
    let text = GOOD.replace("sizes = [2]", "sizes = [2]\nnetwork = \"bridge\"");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("bridge") && msg.contains("namespace"), "{msg}");
}

#[test]
fn unknown_application_names_the_line() {
    let text = GOOD.replace("sizes = [2]", "sizes = [2]\napps = [\"sb\", \"nosuch\"]");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("nosuch"), "{msg}");
}

#[test]
fn missing_binary_names_the_line() {
    let text = GOOD.replace("sysbench cpu", "missingbin cpu");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 12, "{msg}");
    assert!(msg.contains("missingbin") && msg.contains("sb"), "{msg}");
}

#[test]
fn bad_regex_names_the_line() {
    let text = GOOD.replace(
        r"latency average = ([0-9.]+)",
        r"latency (average = [0-9.]+",
    );
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 26, "{msg}");
    assert!(msg.contains("run_regex") && msg.contains("pg"), "{msg}");
}

#[test]
fn regex_without_group_is_rejected() {
    let text = GOOD.replace(r"'eps: ([0-9.]+)'", r"'eps: [0-9.]+'");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 17, "{msg}");
    assert!(msg.contains("capture group"), "{msg}");
}

#[test]
fn impossible_limits_name_the_line() {
    let text = GOOD.replace("cpu = 1.0", "cpu = 64.0");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("64"), "{msg}");
    let text = GOOD.replace("mem_mb = 512", "mem_mb = 99999999");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("memory"), "{msg}");
}

#[test]
fn too_few_repeats_and_bad_toml_name_the_line() {
    let text = GOOD.replace("seed = 1", "seed = 1\nrepeats = 2");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("at least 3"), "{msg}");
    let text = GOOD.replace("colocated_runs = 4", "colocated_runs = = 4");
    let (line, _) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 4);
}

#[test]
fn baselines_may_be_shorter_than_runs_for_static_loads_only() {
    let p = parse(GOOD).unwrap();
    assert_eq!(p.baseline_seconds, 10, "defaults to run_seconds");
    let p = parse(&GOOD.replace("seed = 1", "seed = 1\nbaseline_seconds = 4")).unwrap();
    assert_eq!(p.seconds_alone(Scenario::Static), 4);
    assert_eq!(
        p.seconds_alone(Scenario::Periodic),
        10,
        "a trace replays whole"
    );
    for bad in [2, 11] {
        let text = GOOD.replace("seed = 1", &format!("seed = 1\nbaseline_seconds = {bad}"));
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("3..=run_seconds (10)"), "{msg}");
    }
}

#[test]
fn rate_app_needs_rates_and_placeholders_are_checked() {
    let text = GOOD.replace(r#"{ name = "low", rate = 100 }"#, r#"{ name = "low" }"#);
    let (_, msg) = line_of_err(parse(&text).unwrap_err());
    assert!(msg.contains("rate"), "{msg}");
    let text = GOOD.replace("--time={duration}", "--time={durration}");
    let (line, msg) = line_of_err(parse(&text).unwrap_err());
    assert_eq!(line, 12);
    assert!(msg.contains("{durration}"), "{msg}");
}

#[test]
fn first_program_skips_wrappers() {
    assert_eq!(
        first_program("FOO=1 timeout -s INT 5 redis-benchmark -q").as_deref(),
        Some("redis-benchmark")
    );
    assert_eq!(
        first_program("runuser -u postgres -- pgbench -T 3").as_deref(),
        Some("pgbench")
    );
    assert_eq!(parse_cpulist("0-1,3").unwrap(), vec![0, 1, 3]);
    assert!(parse_cpulist("2-1").is_err());
}
