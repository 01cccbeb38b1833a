//! A transfer set without USB, after probe-rs's fake probe: the test decides
//! when and how every transfer finishes, what each wait returns, and reads
//! back what the event loop submitted. Time is virtual: a wait or a back-off
//! advances it by its length instead of sleeping.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;
use crate::transport::usb::event_loop::{Finished, Polled, Transfers};
use crate::transport::usb::mailbox::CONTROL_DATA;

/// One fake OUT transfer's buffer, as the real ones (`OUT_CAPACITY`).
pub(crate) const OUT_BUFFER: usize = 4096;

/// One fake transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum State {
    #[default]
    Idle,
    Pending,
    Finished(Result<usize, TransferError>),
}

#[derive(Debug, Default)]
pub(crate) struct FakeTransfer {
    pub(crate) state: State,
    /// IN: the bytes it will hand over; OUT: what was submitted; control: the data stage.
    pub(crate) data: Vec<u8>,
    pub(crate) timeout_ms: u32,
}

impl FakeTransfer {
    fn take(&mut self) -> Option<Result<usize, TransferError>> {
        match std::mem::take(&mut self.state) {
            State::Finished(result) => Some(result),
            other => {
                self.state = other;
                None
            }
        }
    }

    pub(crate) fn finish(&mut self, result: Result<usize, TransferError>) {
        assert_eq!(
            self.state,
            State::Pending,
            "only a pending transfer finishes"
        );
        self.state = State::Finished(result);
    }
}

#[derive(Debug, Default)]
pub(crate) struct FakeTransfers {
    pub(crate) ins: Vec<FakeTransfer>,
    pub(crate) outs: Vec<FakeTransfer>,
    pub(crate) control: FakeTransfer,
    /// Every IN submission, by index, in order.
    pub(crate) submitted_in: Vec<usize>,
    /// Every OUT submission, by index, in order.
    pub(crate) submitted_out: Vec<usize>,
    /// OUT transfers cancelled one by one.
    pub(crate) out_cancels: Vec<usize>,
    /// The next OUT submissions fail with these.
    pub(crate) submit_out_errors: VecDeque<TransferError>,
    /// Every control request submitted, in order.
    pub(crate) requests: Vec<ControlRequest>,
    /// The next IN submissions fail with these.
    pub(crate) submit_in_errors: VecDeque<TransferError>,
    /// What the next waits return (then: ready, nothing to report).
    pub(crate) polls: VecDeque<io::Result<Polled>>,
    /// What the next event handlings return (then: Ok).
    pub(crate) events: VecDeque<Result<(), TransferError>>,
    /// Every pause the loop took.
    pub(crate) back_offs: Vec<Duration>,
    pub(crate) clear_halts: usize,
    pub(crate) cancels: usize,
    /// Cancelled transfers never come back (a device that ignores the cancel).
    pub(crate) cancel_is_ignored: bool,
    /// OUT and control transfers finish at once with this (for tests where
    /// another thread runs the loop; an OUT's `Ok` carries its length);
    /// `None`: the test finishes them.
    pub(crate) auto_out: Option<Result<usize, TransferError>>,
    pub(crate) auto_control: Option<(Result<usize, TransferError>, Vec<u8>)>,
    /// Waits block on this doorbell for real (threaded tests); otherwise they
    /// return at once. Either way each advances the virtual clock by its
    /// timeout.
    pub(crate) block_on: Option<Arc<Doorbell>>,
    pub(crate) now: Timestamp,
    pub(crate) hot_memory_reported: bool,
}

impl FakeTransfers {
    /// `ins` IN transfers and two OUT transfers, all idle.
    pub(crate) fn new(ins: usize) -> FakeTransfers {
        FakeTransfers {
            ins: (0..ins).map(|_| FakeTransfer::default()).collect(),
            outs: (0..2).map(|_| FakeTransfer::default()).collect(),
            now: Timestamp::from_nanos(1_000_000_000),
            ..FakeTransfers::default()
        }
    }

    /// IN transfer `i` completes with `data`.
    pub(crate) fn complete_in(&mut self, i: usize, data: &[u8]) {
        self.ins[i].data = data.to_vec();
        self.ins[i].finish(Ok(data.len()));
    }

    /// IN transfer `i` fails with `e`.
    pub(crate) fn fail_in(&mut self, i: usize, e: TransferError) {
        self.ins[i].finish(Err(e));
    }

    pub(crate) fn pending_ins(&self) -> usize {
        self.ins
            .iter()
            .filter(|t| t.state == State::Pending)
            .count()
    }
}

impl Transfers for FakeTransfers {
    fn hot_memory(&mut self, _regions: &mut HotRegions) {
        self.hot_memory_reported = true;
    }

    fn poll(&mut self, timeout: Duration) -> io::Result<Polled> {
        if let Some(scripted) = self.polls.pop_front() {
            return scripted;
        }
        if let Some(bell) = &self.block_on {
            bell.wait(Some(timeout))?;
        }
        // At most that long passed: bounds measured on this clock end.
        self.now = self.now + timeout;
        Ok(Polled::default())
    }

    fn handle_events(&mut self) -> Result<(), TransferError> {
        self.events.pop_front().unwrap_or(Ok(()))
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn back_off(&mut self, pause: Duration) {
        self.back_offs.push(pause);
        self.now = self.now + pause;
    }

    fn in_count(&self) -> usize {
        self.ins.len()
    }

    fn submit_in(&mut self, i: usize) -> Result<(), TransferError> {
        if let Some(e) = self.submit_in_errors.pop_front() {
            return Err(e);
        }
        assert_eq!(
            self.ins[i].state,
            State::Idle,
            "IN {i} submitted while busy"
        );
        self.ins[i].state = State::Pending;
        self.submitted_in.push(i);
        Ok(())
    }

    fn take_in(&mut self, i: usize) -> Option<Finished<'_>> {
        let t = &mut self.ins[i];
        let result = t.take()?;
        let n = *result.as_ref().unwrap_or(&0);
        Some(Finished {
            result,
            at: self.now,
            data: &t.data[..n],
        })
    }

    fn clear_in_halt(&mut self) -> Result<(), TransferError> {
        self.clear_halts += 1;
        Ok(())
    }

    fn out_count(&self) -> usize {
        self.outs.len()
    }

    fn out_idle(&self, k: usize) -> bool {
        self.outs[k].state == State::Idle
    }

    fn submit_out(
        &mut self,
        k: usize,
        timeout_ms: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<(), TransferError> {
        let out = &mut self.outs[k];
        assert_eq!(out.state, State::Idle, "OUT {k} submitted while busy");
        let mut buf = [0u8; OUT_BUFFER];
        let n = fill(&mut buf);
        if let Some(e) = self.submit_out_errors.pop_front() {
            return Err(e);
        }
        out.data = buf[..n].to_vec();
        out.timeout_ms = timeout_ms;
        out.state = State::Pending;
        self.submitted_out.push(k);
        if let Some(result) = self.auto_out {
            out.finish(result.map(|_| n));
        }
        Ok(())
    }

    fn take_out(&mut self, k: usize) -> Option<(Result<usize, TransferError>, usize)> {
        let result = self.outs[k].take()?;
        let actual = match result {
            Ok(n) | Err(TransferError::TimedOut { transferred: n }) => n,
            Err(_) => 0,
        };
        Some((result, actual))
    }

    fn cancel_out(&mut self, k: usize) {
        self.out_cancels.push(k);
        if !self.cancel_is_ignored && self.outs[k].state == State::Pending {
            self.outs[k].state = State::Finished(Err(TransferError::Cancelled));
        }
    }

    fn control_idle(&self) -> bool {
        self.control.state == State::Idle
    }

    fn submit_control(
        &mut self,
        request: ControlRequest,
        timeout_ms: u32,
    ) -> Result<(), TransferError> {
        assert_eq!(
            self.control.state,
            State::Idle,
            "control submitted while busy"
        );
        self.requests.push(request);
        self.control.timeout_ms = timeout_ms;
        self.control.state = State::Pending;
        if let Some((result, data)) = self.auto_control.clone() {
            self.control.data = data;
            self.control.finish(result);
        }
        Ok(())
    }

    fn take_control(&mut self) -> Option<Finished<'_>> {
        let result = self.control.take()?;
        let n = (*result.as_ref().unwrap_or(&0)).min(self.control.data.len());
        debug_assert!(n <= CONTROL_DATA);
        Some(Finished {
            result,
            at: self.now,
            data: &self.control.data[..n],
        })
    }

    fn cancel_all(&mut self) {
        self.cancels += 1;
        if self.cancel_is_ignored {
            return;
        }
        let all = self
            .ins
            .iter_mut()
            .chain(self.outs.iter_mut())
            .chain([&mut self.control]);
        for t in all {
            if t.state == State::Pending {
                t.state = State::Finished(Err(TransferError::Cancelled));
            }
        }
    }

    fn any_pending(&self) -> bool {
        let all = self.ins.iter().chain(&self.outs).chain([&self.control]);
        all.into_iter().any(|t| t.state == State::Pending)
    }
}
