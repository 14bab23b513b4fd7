//! `cloudformer up`: the main job. The agent on this host's tenants plus the server with the
//! bundled default model, in one process.

use std::path::PathBuf;

use super::serve::{config, serve_blocking, LiveArgs, NetArgs};

/// Tenant discovery used when no --tenants is given: libvirt/QEMU VMs, systemd services, and
/// Docker / containerd / Podman containers (globs relative to the cgroup root).
pub const DEFAULT_TENANTS: &[&str] = &[
    "machine.slice/machine-qemu*",
    "machine.slice/libpod-*.scope",
    "system.slice/*.service",
    "system.slice/docker-*.scope",
    "system.slice/containerd-*.scope",
];

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Model directory (default: the bundled models/default/ of this repository).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Tenant cgroup globs relative to --cgroup-root (default: libvirt VMs, systemd services, containers).
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub tenants: Vec<String>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub live_opts: LiveArgs,
}

/// The bundled model: `models/default` in the working directory, else in the source tree.
fn default_model() -> Result<PathBuf, anyhow::Error> {
    let cwd = PathBuf::from("models/default");
    if cwd.join("config.json").is_file() {
        return Ok(cwd);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    if repo.join("config.json").is_file() {
        return Ok(repo);
    }
    anyhow::bail!(
        "the bundled default model is missing: no checkpoint (config.json + model.safetensors) at {} or {}; \
         train one with `cloudformer train` (see models/README) or pass --model DIR",
        cwd.display(),
        repo.display()
    )
}

pub fn run(args: UpArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    let model = match &args.model {
        Some(m) => {
            if !m.join("config.json").is_file() {
                anyhow::bail!(
                    "no checkpoint at {} (expected config.json + model.safetensors)",
                    m.display()
                );
            }
            m.clone()
        }
        None => default_model()?,
    };
    let tenants: Vec<String> = if args.tenants.is_empty() {
        DEFAULT_TENANTS.iter().map(|s| s.to_string()).collect()
    } else {
        args.tenants.clone()
    };
    let cfg = config(&model, &args.net, Some((&tenants, &args.live_opts)))?;
    serve_blocking(cfg, |addr, info, token| {
        let auth = match token {
            Some(_) => " -H \"Authorization: Bearer $(cat TOKEN_FILE)\"",
            None => "",
        };
        println!("cloudformer up: serving http://{addr}");
        println!(
            "  model {} (catalogue {}) from {}",
            info.model_id, info.catalogue_hash, info.dir
        );
        println!("  tenants: {}", tenants.join(" "));
        println!("  try:  curl -s{auth} http://{addr}/v1/tenants");
        println!("  docs: http://{addr}/openapi.json   metrics: http://{addr}/metrics");
    })
}
