//! Thread-per-core serving.
//!
//! One current-thread runtime per core, each accepting on its own listener
//! (`SO_REUSEPORT`: the kernel spreads connections) and calling upstreams
//! through its own connection pool. A request, its upstream connection and
//! their wakeups then stay on one thread: on a multi-threaded runtime the
//! profile was dominated by cross-thread wakeups (scheduler and futex time),
//! not by the gateway's own work. Shared state (circuit breakers, metrics,
//! stats) stays shared behind the `Arc<Gateway>`.

use crate::Gateway;
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

static COUNT: OnceLock<usize> = OnceLock::new();

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How many serving threads (and so upstream pools per provider) there are.
/// 1 unless [`set_count`] was called before the gateway was built.
pub fn count() -> usize {
    *COUNT.get().unwrap_or(&1)
}

/// Fixes the number of serving threads; call once, before `Gateway::new`.
pub fn set_count(n: usize) {
    let _ = COUNT.set(n.max(1));
}

/// This thread's serving index (0 outside serving threads).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// A listener that shares its port with the other serving threads.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Binds every serving thread's listener on `addr` (all or nothing, so a
/// port in use is reported before anything serves).
///
/// `SO_REUSEPORT` would also let a second moltgate started by mistake join
/// the same port and silently take half the connections; so the port is
/// first claimed with a plain socket, which fails if anything holds it.
pub fn bind(addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
    let exclusive = std::net::TcpListener::bind(addr)?;
    let addr = exclusive.local_addr()?;
    drop(exclusive);
    let first = reuseport_listener(addr)?;
    let mut all = vec![first];
    for _ in 1..count() {
        all.push(reuseport_listener(addr)?);
    }
    Ok(all)
}

/// Serves on every listener, one thread each, until `shutdown` turns true.
pub fn serve(
    gw: Arc<Gateway>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<std::thread::JoinHandle<std::io::Result<()>>> {
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, std_listener)| {
            let gw = gw.clone();
            let mut shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("moltgate-{i}"))
                .spawn(move || {
                    INDEX.with(|x| x.set(i));
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(std_listener)?;
                        let stop = async move {
                            let _ = shutdown.wait_for(|s| *s).await;
                        };
                        crate::serve_with_shutdown(gw, listener, stop).await
                    })
                })
                .expect("spawn a serving thread")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_even_with_reuseport() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(bind(addr).is_err());
        // And a second gateway cannot join a first one's port.
        drop(taken);
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(bind(first[0].local_addr().unwrap()).is_err());
    }
}
