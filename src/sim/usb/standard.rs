//! The standard device requests (USB 2.0 §9.4) a simulated FTDI chip
//! answers on its default control pipe.
//!
//! Answered: GET_DESCRIPTOR, SET_ADDRESS, SET/GET_CONFIGURATION,
//! GET_STATUS (device, interface, endpoint), CLEAR_FEATURE(ENDPOINT_HALT),
//! SET/CLEAR_FEATURE(DEVICE_REMOTE_WAKEUP) on a chip whose configuration
//! offers remote wakeup, SET/GET_INTERFACE for alternate setting 0.
//! Everything else STALLs, including SET_FEATURE(ENDPOINT_HALT) (the
//! endpoints are never halted) and interface or endpoint requests before the
//! device is configured (§9.4: a request error in the Address state).

use super::SetupPacket;
use super::descriptors::Descriptors;

const GET_STATUS: u8 = 0;
const CLEAR_FEATURE: u8 = 1;
const SET_FEATURE: u8 = 3;
const SET_ADDRESS: u8 = 5;
const GET_DESCRIPTOR: u8 = 6;
const GET_CONFIGURATION: u8 = 8;
const SET_CONFIGURATION: u8 = 9;
const GET_INTERFACE: u8 = 10;
const SET_INTERFACE: u8 = 11;

/// Feature selectors (USB 2.0 table 9-6).
const ENDPOINT_HALT: u16 = 0;
const DEVICE_REMOTE_WAKEUP: u16 = 1;

/// bmRequestType recipients (bits 4..0).
const RECIPIENT_DEVICE: u8 = 0;
const RECIPIENT_INTERFACE: u8 = 1;
const RECIPIENT_ENDPOINT: u8 = 2;

/// What the standard requests change: the device's USB state.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DeviceState {
    pub(super) address: u8,
    /// 0: not configured (the Address state); 1: configured.
    pub(super) configuration: u8,
    pub(super) remote_wakeup: bool,
}

/// The device's shape as the standard requests see it.
pub(super) struct Shape<'a> {
    pub(super) descriptors: &'a Descriptors,
    pub(super) interfaces: u8,
}

impl Shape<'_> {
    fn has_interface(&self, state: &DeviceState, number: u16) -> bool {
        state.configuration != 0 && number < u16::from(self.interfaces)
    }

    /// Endpoint 0 always; the bulk endpoints of each interface once configured.
    fn has_endpoint(&self, state: &DeviceState, address: u16) -> bool {
        let Ok(address) = u8::try_from(address) else {
            return false;
        };
        let number = address & 0x0F;
        if address & 0x70 != 0 {
            return false;
        }
        if number == 0 {
            return true;
        }
        let index = if address & 0x80 != 0 {
            // IN endpoints are 1, 3, 5, 7.
            (number % 2 == 1).then(|| (number - 1) / 2)
        } else {
            // OUT endpoints are 2, 4, 6, 8.
            number.is_multiple_of(2).then(|| (number - 2) / 2)
        };
        state.configuration != 0 && index.is_some_and(|i| i < self.interfaces)
    }
}

/// Answers a standard request: `Some` IN data (empty for OUT requests, not
/// yet cut to wLength) or `None` for a STALL.
pub(super) fn handle(
    state: &mut DeviceState,
    shape: &Shape<'_>,
    setup: SetupPacket,
) -> Option<Vec<u8>> {
    let recipient = setup.request_type & 0x1F;
    let (value, index) = (setup.value, setup.index);
    let ok = Some(Vec::new());
    match (setup.is_in(), recipient, setup.request) {
        (true, RECIPIENT_DEVICE, GET_STATUS) if value == 0 && index == 0 => {
            // Bit 0 self-powered (never: the chips are bus powered).
            Some(vec![u8::from(state.remote_wakeup) << 1, 0])
        }
        (true, RECIPIENT_INTERFACE, GET_STATUS) if value == 0 => {
            shape.has_interface(state, index).then(|| vec![0, 0])
        }
        (true, RECIPIENT_ENDPOINT, GET_STATUS) if value == 0 => {
            // Bit 0 halted: the endpoints never are.
            shape.has_endpoint(state, index).then(|| vec![0, 0])
        }
        (false, RECIPIENT_ENDPOINT, CLEAR_FEATURE) if value == ENDPOINT_HALT => {
            // Resets the data toggle on silicon; nothing here depends on it.
            shape.has_endpoint(state, index).then_some(Vec::new())
        }
        (false, RECIPIENT_DEVICE, CLEAR_FEATURE | SET_FEATURE)
            if value == DEVICE_REMOTE_WAKEUP && shape.descriptors.remote_wakeup_capable() =>
        {
            state.remote_wakeup = setup.request == SET_FEATURE;
            ok
        }
        (false, RECIPIENT_DEVICE, SET_ADDRESS) if value <= 127 && index == 0 => {
            state.address = value as u8;
            ok
        }
        (true, RECIPIENT_DEVICE, GET_DESCRIPTOR) => {
            let [index_lo, kind] = value.to_le_bytes();
            shape.descriptors.get(kind, index_lo).map(<[u8]>::to_vec)
        }
        (true, RECIPIENT_DEVICE, GET_CONFIGURATION) if value == 0 && index == 0 => {
            Some(vec![state.configuration])
        }
        (false, RECIPIENT_DEVICE, SET_CONFIGURATION) if value <= 1 && index == 0 => {
            state.configuration = value as u8;
            ok
        }
        (true, RECIPIENT_INTERFACE, GET_INTERFACE) if value == 0 => {
            shape.has_interface(state, index).then(|| vec![0])
        }
        (false, RECIPIENT_INTERFACE, SET_INTERFACE) if value == 0 => {
            shape.has_interface(state, index).then_some(Vec::new())
        }
        _ => None,
    }
}
