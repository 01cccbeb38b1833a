//! Unplug: every pending URB completes `NoDevice`, and so does every later one.

use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::usb::{UrbStatus, UsbFunction, VirtualFtdi};
use ftdi_rt::{Chip, FlowControl, Interface};

use crate::host::{Host, T0};

const A: Interface = Interface::A;

#[test]
fn unplug_fails_pending_and_later_urbs() {
    let mut h = Host::configured(VirtualFtdi::builder(Chip::Ft4232H).build(T0).unwrap());
    h.setup(A, 115_200, 16);
    h.vendor(ControlRequest::flow_control(A, FlowControl::RtsCts))
        .unwrap();
    let in_a = h.submit_in(A, 512);
    let in_d = h.submit_in(Interface::D, 512);
    let out = h.submit_out(A, &[0; 4000]); // CTS low: the FIFO takes 2048
    h.run_for(Duration::from_millis(5));
    assert!(h.done.is_empty());
    assert!(!h.dev.is_unplugged());

    h.unplug();
    for id in [in_a, in_d] {
        let (_, c) = h.take(id).expect("pending IN completes");
        assert_eq!(c.status, UrbStatus::NoDevice);
    }
    let (_, c) = h.take(out).unwrap();
    assert_eq!((c.status, c.actual_length), (UrbStatus::NoDevice, 2048));
    assert!(h.dev.is_unplugged());
    assert_eq!(h.dev.poll_timeout(), None);

    let later = h.submit_in(A, 512);
    assert_eq!(h.take(later).unwrap().1.status, UrbStatus::NoDevice);
    assert_eq!(h.descriptor(1, 0, 18), Err(UrbStatus::NoDevice));
    assert_eq!(h.vendor(ControlRequest::reset(A)), Err(UrbStatus::NoDevice));
    assert!(!h.unlink(in_a));
}

#[test]
fn unplug_at_a_time_lets_what_came_before_through() {
    let mut h = Host::ft232r();
    h.setup(A, 115_200, 1);
    let gone = T0 + Duration::from_micros(5_500);
    h.dev.unplug_at(gone);
    let got = h.stream_in(A, 64, 1, T0 + Duration::from_millis(10));
    let statuses: Vec<(u64, UrbStatus)> = got
        .iter()
        .map(|(t, c)| (t.saturating_since(T0).as_micros() as u64, c.status))
        .collect();
    let ok = UrbStatus::Completed;
    assert_eq!(
        statuses,
        [
            (1000, ok),
            (2000, ok),
            (3000, ok),
            (4000, ok),
            (5000, ok),
            (5500, UrbStatus::NoDevice)
        ]
    );
    assert!(h.dev.is_unplugged());
}
