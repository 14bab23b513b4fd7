//! `promtool check metrics` (Prometheus' own linter) on both `/metrics` pages, with real cgroup
//! tenants so every per-tenant series is there: the server's in live mode with the bundled model
//! (tenant gauges, top culprits, connections, requests) and the agent's (`collect --listen`).
//! Needs root, a cgroup hierarchy, stress-ng and promtool (Debian's `prometheus`, installed by
//! scripts/setup.sh); fails naming what is missing otherwise.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{get, skip_reason, Tenants};

/// `promtool check metrics` on `text`: whether it is clean, and what promtool said.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_servers_and_the_agents_metrics_pages_pass_promtool() {
    let name = "the_servers_and_the_agents_metrics_pages_pass_promtool";
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run(name, &why);
        return;
    }
    if !common::have("promtool") {
        collector::testing::cannot_run(
            name,
            "`promtool` is not installed (Debian package prometheus; scripts/setup.sh)",
        );
        return;
    }
    let prefix = format!("cf-prom-{}", std::process::id());
    let tenants = Tenants::start(
        &prefix,
        &[
            ("busy", "stress-ng --cpu 1 --cpu-load 50 --timeout 60s"),
            ("idle", "sleep 60"),
        ],
    );
    let (mut server, addr) = common::spawn_live_bundled(&prefix, 6);
    let agent_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let out = tempfile::tempdir().unwrap();
    let glob = format!("{prefix}/*");
    let agent_listen = agent_addr.to_string();
    let mut agent = common::bin()
        .args([
            "--quiet",
            "collect",
            "--tenants",
            &glob,
            "--duration",
            "40s",
        ])
        .args(["--listen", &agent_listen, "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cloudformer collect");
    std::thread::sleep(Duration::from_secs(10));
    let served = get(addr, "/metrics").text();
    let agents = get(agent_addr, "/metrics").text();
    for c in [&mut server, &mut agent] {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(tenants);

    let busy = format!("{prefix}/busy");
    assert!(
        served.contains(&format!("cloudformer_tenant_p{{tenant=\"{busy}\"}}")),
        "{served}"
    );
    assert!(
        served.contains("cloudformer_tenant_top_culprit_info{"),
        "{served}"
    );
    assert!(agents.contains(&busy), "{agents}");
    for (page, text) in [("serve --live", &served), ("collect --listen", &agents)] {
        let (clean, said) = promtool(text);
        assert!(clean, "promtool check metrics on the {page} page:\n{said}");
        eprintln!("{page}: {} lines, promtool clean", text.lines().count());
    }
}
