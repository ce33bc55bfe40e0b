//! `faultline proxy FILE`: runs the fault-injecting TCP proxy of [`faultline_real::proxy`]
//! from a proxy file until Ctrl-C (or SIGTERM), then shuts it down cleanly: listeners and
//! live connections closed, the control API stopped, every task ended.
//!
//! At start it prints, one line each, the seed, every route (`route NAME: LISTEN ->
//! UPSTREAM`, with the port the OS picked for a `:0`) and the control API's address, so a
//! script can read where to connect. A bad file is one line, `file:line:col: field:
//! message`, and exit 2.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use faultline_real::proxy::{Proxy, load_config};

use crate::output;

/// Runs the proxy described by `config`; `seed` overrides the file's.
pub fn run(config: &Path, seed: Option<u64>) -> Result<()> {
    let file = load_config(config).map_err(|e| anyhow!(e.0))?;
    let seed = seed.or(file.seed).unwrap_or_else(|| {
        // A fresh seed for the faults' draws, printed so that a run can name it again.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        faultline::sim::rng::splitmix64(nanos ^ u64::from(std::process::id())) % 1_000_000_000
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("proxy")
        .build()
        .context("cannot start the proxy's runtime")?;
    runtime.block_on(async move {
        let specs = file.routes.iter().map(|r| r.spec.clone()).collect();
        let proxy = Proxy::start(specs, file.control, seed).await.map_err(|e| anyhow!("{}: {e}", config.display()))?;
        for route in &file.routes {
            for fault in &route.faults {
                proxy.add_fault(&route.spec.name, fault.clone()).map_err(|e| anyhow!("{}: {e}", config.display()))?;
            }
        }
        let mut lines = format!("seed {seed}\n");
        for r in proxy.routes() {
            lines.push_str(&format!("route {}: {} -> {}\n", r.name, r.listen, r.upstream));
        }
        if let Some(addr) = proxy.control_addr() {
            lines.push_str(&format!("control: http://{addr}\n"));
        }
        output::print(lines.as_bytes())?;
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.context("cannot watch for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
        proxy.shutdown().await;
        Ok(())
    })
}
