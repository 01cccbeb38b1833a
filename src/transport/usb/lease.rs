//! A channel's hold on one interface of a device handle that several
//! channels share (on a shared reader, `shared_context`): the handle's type
//! and the lease. Apart from the context so that what a claimed interface
//! holds depends on nothing else of the transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::proto::Interface;

/// A device handle several channels share.
pub(crate) type SharedHandle = Arc<rusb::DeviceHandle<rusb::Context>>;

/// A channel's hold on its interface of a shared handle: while it lives no
/// other port on the context can claim that interface (usbfs would let the
/// same file claim it twice and two ports would read one endpoint).
#[derive(Debug)]
pub(crate) struct InterfaceLease {
    claimed: Arc<AtomicU8>,
    bit: u8,
}

impl Drop for InterfaceLease {
    fn drop(&mut self) {
        self.claimed.fetch_and(!self.bit, Ordering::AcqRel);
    }
}

impl InterfaceLease {
    /// Takes `interface` in `claimed`; `None` if a port holds it already.
    pub(super) fn take(claimed: &Arc<AtomicU8>, interface: Interface) -> Option<InterfaceLease> {
        // Interfaces are 0..=3: one bit each.
        let bit = 1u8 << (interface.number() & 7);
        let before = claimed.fetch_or(bit, Ordering::AcqRel);
        (before & bit == 0).then(|| InterfaceLease {
            claimed: claimed.clone(),
            bit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_is_leased_once_until_its_lease_drops() {
        let claimed = Arc::new(AtomicU8::new(0));
        let b = InterfaceLease::take(&claimed, Interface::B).expect("B is free");
        let c = InterfaceLease::take(&claimed, Interface::C).expect("C is free");
        assert!(InterfaceLease::take(&claimed, Interface::B).is_none());
        drop(b);
        let b_again = InterfaceLease::take(&claimed, Interface::B);
        assert!(b_again.is_some(), "free again once its port closed");
        drop(c);
        drop(b_again);
        assert_eq!(claimed.load(Ordering::Acquire), 0);
    }
}
