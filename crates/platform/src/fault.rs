//! Crash injection for the fault tests: when `FAULT_POINT` names a point, the process dies there
//! as `kill -9` would (no unwinding, no flushing). Unset in every real deployment.

use std::sync::OnceLock;

pub fn point(name: &str) {
    static CONFIGURED: OnceLock<Option<String>> = OnceLock::new();
    let configured = CONFIGURED.get_or_init(|| std::env::var("FAULT_POINT").ok().filter(|v| !v.is_empty()));
    if configured.as_deref() == Some(name) {
        eprintln!("fault injection: dying at {name}");
        std::process::abort();
    }
}
