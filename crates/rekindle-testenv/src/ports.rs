//! Free loopback ports for the control plane.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// `N` distinct free TCP ports on 127.0.0.1.
///
/// The kernel picks each port; all listeners are held until every port is
/// chosen, so the same port is never handed out twice in one call. Another
/// process may still take a port between this call and the server binding it,
/// a window small enough for tests.
pub(crate) fn free_ports<const N: usize>() -> io::Result<[u16; N]> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        *port = listener.local_addr()?.port();
        listeners.push(listener);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports::<4>().expect("free ports");
        for (i, port) in ports.iter().enumerate() {
            assert_ne!(*port, 0);
            assert!(!ports[..i].contains(port), "{ports:?}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, *port)).expect("port is free again");
        }
    }
}
