//! One interface of the virtual chip on the bus: its channel engine and the
//! URBs pending on its bulk IN and OUT endpoints, moved between the two by
//! the rules [`VirtualFtdi`](super::VirtualFtdi) documents.
//!
//! The IN side gives the engine one IN token while an IN URB is pending (and
//! no held packet is due first), none otherwise. A head URB that is still
//! pending holds only full packets (a short one would have completed it),
//! so when it is unlinked its bytes cut back into packets at max-packet
//! boundaries, which the next IN URB receives first.

use std::collections::VecDeque;

use super::{UrbCompletion, UrbStatus};
use crate::sim::{ChannelEngine, InPacket};
use crate::time::Timestamp;

#[derive(Debug)]
struct PendingIn {
    id: u32,
    capacity: usize,
    data: Vec<u8>,
}

#[derive(Debug)]
struct PendingOut {
    id: u32,
    data: Vec<u8>,
    accepted: usize,
}

/// An interface: its engine and the URBs on its two bulk endpoints.
#[derive(Debug)]
pub(super) struct BulkChannel {
    pub(super) engine: ChannelEngine,
    ins: VecDeque<PendingIn>,
    outs: VecDeque<PendingOut>,
    /// Packets the chip sent into an IN URB that was then unlinked: the
    /// next IN URB gets them first.
    held: VecDeque<InPacket>,
}

fn completion(id: u32, status: UrbStatus, data: Vec<u8>, actual_length: usize) -> UrbCompletion {
    UrbCompletion {
        id,
        status,
        data,
        actual_length,
    }
}

impl BulkChannel {
    pub(super) fn new(engine: ChannelEngine) -> BulkChannel {
        BulkChannel {
            engine,
            ins: VecDeque::new(),
            outs: VecDeque::new(),
            held: VecDeque::new(),
        }
    }

    pub(super) fn submit_in(
        &mut self,
        now: Timestamp,
        id: u32,
        capacity: usize,
        done: &mut VecDeque<UrbCompletion>,
    ) {
        self.ins.push_back(PendingIn {
            id,
            capacity,
            data: Vec::with_capacity(capacity.min(64 * 1024)),
        });
        self.service(now, done);
    }

    pub(super) fn submit_out(
        &mut self,
        now: Timestamp,
        id: u32,
        data: Vec<u8>,
        done: &mut VecDeque<UrbCompletion>,
    ) {
        self.outs.push_back(PendingOut {
            id,
            data,
            accepted: 0,
        });
        self.service(now, done);
    }

    /// Cancels URB `id` if it is pending here (its completion says
    /// `Cancelled`); returns whether it was.
    pub(super) fn unlink(
        &mut self,
        now: Timestamp,
        id: u32,
        done: &mut VecDeque<UrbCompletion>,
    ) -> bool {
        if let Some(pos) = self.ins.iter().position(|u| u.id == id) {
            let Some(urb) = self.ins.remove(pos) else {
                return false;
            };
            let mps = self.engine.max_packet_size();
            // Only the head receives packets, and only full ones leave it pending.
            for chunk in urb.data.chunks(mps).rev() {
                let mut packet = InPacket {
                    len: chunk.len() as u16,
                    sent_at: now,
                    ..InPacket::default()
                };
                packet.data[..chunk.len()].copy_from_slice(chunk);
                self.held.push_front(packet);
            }
            done.push_back(completion(id, UrbStatus::Cancelled, Vec::new(), 0));
        } else if let Some(pos) = self.outs.iter().position(|u| u.id == id) {
            let Some(urb) = self.outs.remove(pos) else {
                return false;
            };
            // What the FIFO accepted is on its way to the wire regardless.
            done.push_back(completion(
                id,
                UrbStatus::Cancelled,
                Vec::new(),
                urb.accepted,
            ));
        } else {
            return false;
        }
        self.service(now, done);
        true
    }

    /// Completes every pending URB with `status` (the device went away).
    pub(super) fn fail_all(&mut self, status: UrbStatus, done: &mut VecDeque<UrbCompletion>) {
        for urb in self.ins.drain(..) {
            done.push_back(completion(urb.id, status, Vec::new(), 0));
        }
        for urb in self.outs.drain(..) {
            done.push_back(completion(urb.id, status, Vec::new(), urb.accepted));
        }
        self.held.clear();
    }

    /// Moves what the engine did at `now` onto the URBs, and gives the engine
    /// the IN token and OUT data the URBs now stand for.
    pub(super) fn service(&mut self, now: Timestamp, done: &mut VecDeque<UrbCompletion>) {
        loop {
            while !self.ins.is_empty() {
                let Some(packet) = self.held.pop_front() else {
                    break;
                };
                self.deliver(&packet, done);
            }
            while let Some(packet) = self.engine.poll_packet() {
                if !self.ins.is_empty() {
                    self.deliver(&packet, done);
                } else if !packet.is_status_only() {
                    // Sent against a token whose URB is gone: the chip keeps it.
                    self.held.push_back(packet);
                }
            }
            self.feed_out(now, done);
            // One IN token while an IN URB is pending and nothing held is due first.
            let tokens = u32::from(!self.ins.is_empty() && self.held.is_empty());
            if self.engine.in_credits() == tokens || self.engine.is_unplugged() {
                return;
            }
            // A flush already due goes at once: go round again to deliver it.
            self.engine.set_in_credits(now, tokens);
        }
    }

    /// Appends one packet to the head IN URB, completing it if the packet is
    /// short or fills it.
    fn deliver(&mut self, packet: &InPacket, done: &mut VecDeque<UrbCompletion>) {
        let mps = self.engine.max_packet_size();
        let Some(head) = self.ins.front_mut() else {
            return;
        };
        let bytes = packet.bytes();
        let room = head.capacity - head.data.len();
        let status = if bytes.len() > room {
            Some(UrbStatus::Overflow)
        } else if bytes.len() < mps || bytes.len() == room {
            Some(UrbStatus::Completed)
        } else {
            None
        };
        head.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if let Some(status) = status
            && let Some(urb) = self.ins.pop_front()
        {
            let n = urb.data.len();
            done.push_back(completion(urb.id, status, urb.data, n));
        }
    }

    /// Offers the head OUT URBs to the TX FIFO, a max packet at a time.
    fn feed_out(&mut self, now: Timestamp, done: &mut VecDeque<UrbCompletion>) {
        let mps = self.engine.max_packet_size();
        let fifo = self.engine.tx_space() + self.engine.tx_queued();
        while let Some(head) = self.outs.front_mut() {
            while head.accepted < head.data.len() {
                let packet = (head.data.len() - head.accepted).min(mps);
                // A packet is ACKed whole or NAKed whole.
                if self.engine.tx_space() < packet.min(fifo) {
                    break;
                }
                let end = head.accepted + packet;
                let n = self.engine.write(now, &head.data[head.accepted..end]);
                head.accepted += n;
                if n < packet {
                    break;
                }
            }
            if head.accepted < head.data.len() {
                return;
            }
            if let Some(urb) = self.outs.pop_front() {
                done.push_back(completion(
                    urb.id,
                    UrbStatus::Completed,
                    Vec::new(),
                    urb.accepted,
                ));
            }
        }
    }
}
