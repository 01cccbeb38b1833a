//! The USB/IP wire format between vhci-hcd (the host) and a device server.
//!
//! Four messages travel on the stream once a device is attached (the
//! `OP_REQ_IMPORT` handshake of `usbipd` is never used by a sysfs attach):
//! the host sends `CMD_SUBMIT` (a URB, with its OUT data behind the header)
//! and `CMD_UNLINK` (cancel a submitted URB); the device answers every URB
//! with `RET_SUBMIT` (with its IN data behind the header) and every unlink
//! with `RET_UNLINK`. Each message starts with a 48-byte big-endian header
//! (`struct usbip_header` in the kernel's `drivers/usb/usbip/usbip_common.h`):
//! five 32-bit words (command, seqnum, devid, direction, endpoint), then 28
//! bytes that depend on the command.
//!
//! Isochronous transfers (which append packet descriptors) are refused: an
//! FTDI chip has no isochronous endpoint, and a non-isochronous URB carries
//! `number_of_packets` 0 (vhci-hcd) or 0xffffffff (the protocol document).
//!
//! Decoding is incremental: [`Command::decode`] and [`Reply::decode`] return
//! `Ok(None)` until the buffer holds a whole message, so a stream read in
//! arbitrary pieces parses the same; malformed input is an error, never a
//! panic and never an allocation larger than [`MAX_TRANSFER_LEN`].

/// Bytes in every message header.
pub const HEADER_LEN: usize = 48;

/// The largest transfer buffer accepted (16 MiB, usbfs's default limit on
/// the memory of all its URBs): a bigger length is malformed input, refused
/// before anything is allocated for it.
pub const MAX_TRANSFER_LEN: usize = 16 << 20;

/// Command code of `USBIP_CMD_SUBMIT` (host → device).
pub const CMD_SUBMIT: u32 = 0x0001;
/// Command code of `USBIP_CMD_UNLINK` (host → device).
pub const CMD_UNLINK: u32 = 0x0002;
/// Command code of `USBIP_RET_SUBMIT` (device → host).
pub const RET_SUBMIT: u32 = 0x0003;
/// Command code of `USBIP_RET_UNLINK` (device → host).
pub const RET_UNLINK: u32 = 0x0004;

/// `number_of_packets` of a non-isochronous URB as the protocol document
/// writes it (vhci-hcd itself sends 0).
const NOT_ISOCHRONOUS: u32 = 0xffff_ffff;

/// Direction of a URB's data stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Host to device (`USBIP_DIR_OUT`, 0).
    Out,
    /// Device to host (`USBIP_DIR_IN`, 1).
    In,
}

/// `USBIP_CMD_SUBMIT`: the host submits a URB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdSubmit {
    /// The URB's identifier; its `RET_SUBMIT` (or the `RET_UNLINK` that
    /// cancels it) refers to it.
    pub seqnum: u32,
    /// The device the host addresses (the value given at attach).
    pub devid: u32,
    /// Direction of the data stage.
    pub direction: Direction,
    /// Endpoint number, 0..=15.
    pub endpoint: u8,
    /// `USBIP_URB_*` flags (e.g. `SHORT_NOT_OK` 0x1, `ZERO_PACKET` 0x40).
    pub transfer_flags: u32,
    /// IN: bytes the host can take. OUT: bytes of `data`.
    pub transfer_buffer_length: u32,
    /// Initial frame (isochronous and interrupt only; 0 otherwise).
    pub start_frame: i32,
    /// Polling interval of interrupt endpoints.
    pub interval: i32,
    /// The setup packet of a control transfer (zeros otherwise).
    pub setup: [u8; 8],
    /// OUT data (`transfer_buffer_length` bytes); empty for IN.
    pub data: Vec<u8>,
}

/// `USBIP_CMD_UNLINK`: the host cancels a URB it submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdUnlink {
    /// This request's own identifier; the `RET_UNLINK` answering it carries it.
    pub seqnum: u32,
    /// The device the host addresses.
    pub devid: u32,
    /// The seqnum of the URB to cancel.
    pub victim: u32,
}

/// `USBIP_RET_SUBMIT`: a URB finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetSubmit {
    /// The URB's seqnum.
    pub seqnum: u32,
    /// 0, or a negative Linux errno (`-EPIPE` for a STALL, ...).
    pub status: i32,
    /// Bytes transferred (for IN, the bytes of `data`).
    pub actual_length: u32,
    /// Isochronous error count (0).
    pub error_count: i32,
    /// IN data; empty for OUT.
    pub data: Vec<u8>,
}

/// `USBIP_RET_UNLINK`: the answer to a `CMD_UNLINK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetUnlink {
    /// The seqnum of the `CMD_UNLINK` this answers.
    pub seqnum: u32,
    /// `-ECONNRESET` if the URB was pending and is now cancelled (it gets no
    /// `RET_SUBMIT`), 0 if it had already completed (its `RET_SUBMIT` went
    /// out before this).
    pub status: i32,
}

/// A message from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `USBIP_CMD_SUBMIT`.
    Submit(CmdSubmit),
    /// `USBIP_CMD_UNLINK`.
    Unlink(CmdUnlink),
}

/// A message from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `USBIP_RET_SUBMIT`.
    Submit(RetSubmit),
    /// `USBIP_RET_UNLINK`.
    Unlink(RetUnlink),
}

/// Input that is not a USB/IP message this implementation accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The command word is not one this side of the link receives.
    #[error(
        "command {code:#x} is not one a {side} receives (expected {expected}); the peer does not \
         speak USB/IP, or the stream lost its framing"
    )]
    UnexpectedCommand {
        /// The command word.
        code: u32,
        /// "device" or "host".
        side: &'static str,
        /// What would have been valid.
        expected: &'static str,
    },
    /// The direction word is neither 0 (OUT) nor 1 (IN).
    #[error("direction {0} is neither 0 (OUT) nor 1 (IN)")]
    BadDirection(u32),
    /// The endpoint number is above 15.
    #[error("endpoint {0} is not a USB endpoint number (0..=15)")]
    BadEndpoint(u32),
    /// A transfer length is negative or above [`MAX_TRANSFER_LEN`].
    #[error("transfer length {0} is negative or above the 16 MiB limit")]
    BadLength(i64),
    /// An isochronous URB (or a corrupt `number_of_packets`).
    #[error(
        "number_of_packets {0:#x}: isochronous transfers are not supported (an FTDI chip has no \
         isochronous endpoint)"
    )]
    Isochronous(u32),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The 48-byte header with the five common words filled in and the rest zero.
fn header(command: u32, seqnum: u32, devid: u32, direction: u32, ep: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    for (i, word) in [command, seqnum, devid, direction, ep]
        .into_iter()
        .enumerate()
    {
        h[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    h
}

fn put32(h: &mut [u8; HEADER_LEN], at: usize, word: u32) {
    h[at..at + 4].copy_from_slice(&word.to_be_bytes());
}

/// A length word as a buffer size, refused if negative or too large.
fn transfer_len(word: u32) -> Result<usize, ProtocolError> {
    let signed = word as i32;
    match usize::try_from(signed) {
        Ok(n) if n <= MAX_TRANSFER_LEN => Ok(n),
        _ => Err(ProtocolError::BadLength(i64::from(signed))),
    }
}

impl Command {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Submit(s) => {
                let dir = match s.direction {
                    Direction::Out => 0,
                    Direction::In => 1,
                };
                let mut h = header(CMD_SUBMIT, s.seqnum, s.devid, dir, u32::from(s.endpoint));
                put32(&mut h, 20, s.transfer_flags);
                put32(&mut h, 24, s.transfer_buffer_length);
                put32(&mut h, 28, s.start_frame as u32);
                put32(&mut h, 32, 0);
                put32(&mut h, 36, s.interval as u32);
                h[40..48].copy_from_slice(&s.setup);
                out.extend_from_slice(&h);
                if s.direction == Direction::Out {
                    out.extend_from_slice(&s.data);
                }
            }
            Command::Unlink(u) => {
                let mut h = header(CMD_UNLINK, u.seqnum, u.devid, 0, 0);
                put32(&mut h, 20, u.victim);
                out.extend_from_slice(&h);
            }
        }
    }

    /// Decodes the message at the start of `buf`: `Ok(None)` until it is
    /// complete, then the message and the bytes it took.
    ///
    /// # Errors
    /// Input that is not a valid host message ([`ProtocolError`]); the
    /// stream cannot be resynchronised after one.
    pub fn decode(buf: &[u8]) -> Result<Option<(Command, usize)>, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (command, seqnum, devid) = (be32(buf, 0), be32(buf, 4), be32(buf, 8));
        match command {
            CMD_SUBMIT => {
                let direction = match be32(buf, 12) {
                    0 => Direction::Out,
                    1 => Direction::In,
                    d => return Err(ProtocolError::BadDirection(d)),
                };
                let endpoint = match be32(buf, 16) {
                    ep @ 0..=15 => ep as u8,
                    ep => return Err(ProtocolError::BadEndpoint(ep)),
                };
                let length = transfer_len(be32(buf, 24))?;
                match be32(buf, 32) {
                    0 | NOT_ISOCHRONOUS => {}
                    n => return Err(ProtocolError::Isochronous(n)),
                }
                let data_len = if direction == Direction::Out {
                    length
                } else {
                    0
                };
                let total = HEADER_LEN + data_len;
                if buf.len() < total {
                    return Ok(None);
                }
                let mut setup = [0u8; 8];
                setup.copy_from_slice(&buf[40..48]);
                let submit = CmdSubmit {
                    seqnum,
                    devid,
                    direction,
                    endpoint,
                    transfer_flags: be32(buf, 20),
                    transfer_buffer_length: length as u32,
                    start_frame: be32(buf, 28) as i32,
                    interval: be32(buf, 36) as i32,
                    setup,
                    data: buf[HEADER_LEN..total].to_vec(),
                };
                Ok(Some((Command::Submit(submit), total)))
            }
            CMD_UNLINK => {
                let unlink = CmdUnlink {
                    seqnum,
                    devid,
                    victim: be32(buf, 20),
                };
                Ok(Some((Command::Unlink(unlink), HEADER_LEN)))
            }
            code => Err(ProtocolError::UnexpectedCommand {
                code,
                side: "device",
                expected: "CMD_SUBMIT 0x1 or CMD_UNLINK 0x2",
            }),
        }
    }
}

impl Reply {
    /// Appends the encoded message to `out`. As usbip-host does, the devid,
    /// direction and endpoint words of a reply are zero: the host finds the
    /// URB by seqnum alone.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Submit(r) => {
                let mut h = header(RET_SUBMIT, r.seqnum, 0, 0, 0);
                put32(&mut h, 20, r.status as u32);
                put32(&mut h, 24, r.actual_length);
                put32(&mut h, 28, 0);
                put32(&mut h, 32, 0);
                put32(&mut h, 36, r.error_count as u32);
                out.extend_from_slice(&h);
                out.extend_from_slice(&r.data);
            }
            Reply::Unlink(u) => {
                let mut h = header(RET_UNLINK, u.seqnum, 0, 0, 0);
                put32(&mut h, 20, u.status as u32);
                out.extend_from_slice(&h);
            }
        }
    }

    /// Decodes the reply at the start of `buf` (the host's side, used by
    /// tests and tools). A `RET_SUBMIT` carries `actual_length` bytes of data
    /// only for an IN URB, which the header does not say: `is_in(seqnum)`
    /// tells, as the host knows from its own URB.
    ///
    /// # Errors
    /// Input that is not a valid device message.
    pub fn decode(
        buf: &[u8],
        is_in: impl Fn(u32) -> bool,
    ) -> Result<Option<(Reply, usize)>, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (command, seqnum) = (be32(buf, 0), be32(buf, 4));
        match command {
            RET_SUBMIT => {
                let actual = transfer_len(be32(buf, 24))?;
                let data_len = if is_in(seqnum) { actual } else { 0 };
                let total = HEADER_LEN + data_len;
                if buf.len() < total {
                    return Ok(None);
                }
                let reply = RetSubmit {
                    seqnum,
                    status: be32(buf, 20) as i32,
                    actual_length: actual as u32,
                    error_count: be32(buf, 36) as i32,
                    data: buf[HEADER_LEN..total].to_vec(),
                };
                Ok(Some((Reply::Submit(reply), total)))
            }
            RET_UNLINK => {
                let reply = RetUnlink {
                    seqnum,
                    status: be32(buf, 20) as i32,
                };
                Ok(Some((Reply::Unlink(reply), HEADER_LEN)))
            }
            code => Err(ProtocolError::UnexpectedCommand {
                code,
                side: "host",
                expected: "RET_SUBMIT 0x3 or RET_UNLINK 0x4",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn submit_out(seqnum: u32, data: &[u8]) -> CmdSubmit {
        CmdSubmit {
            seqnum,
            devid: 0x0001_0002,
            direction: Direction::Out,
            endpoint: 2,
            transfer_flags: 0,
            transfer_buffer_length: data.len() as u32,
            start_frame: 0,
            interval: 0,
            setup: [0; 8],
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_control_in_submit_is_laid_out_as_the_kernel_lays_it_out() {
        let get_descriptor = CmdSubmit {
            seqnum: 7,
            devid: 0x0001_0002,
            direction: Direction::In,
            endpoint: 0,
            transfer_flags: 0x200,
            transfer_buffer_length: 18,
            start_frame: 0,
            interval: 0,
            setup: [0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00],
            data: Vec::new(),
        };
        let mut wire = Vec::new();
        Command::Submit(get_descriptor.clone()).encode(&mut wire);
        assert_eq!(wire.len(), HEADER_LEN, "an IN submit carries no data");
        assert_eq!(&wire[0..4], &[0, 0, 0, 1], "CMD_SUBMIT, big-endian");
        assert_eq!(&wire[4..8], &[0, 0, 0, 7]);
        assert_eq!(&wire[8..12], &[0, 1, 0, 2]);
        assert_eq!(&wire[12..16], &[0, 0, 0, 1], "direction IN");
        assert_eq!(&wire[24..28], &[0, 0, 0, 18]);
        assert_eq!(&wire[40..48], &get_descriptor.setup);
        assert_eq!(
            Command::decode(&wire),
            Ok(Some((Command::Submit(get_descriptor), HEADER_LEN)))
        );
    }

    #[test]
    fn out_data_follows_the_header_and_a_partial_message_waits() {
        let cmd = Command::Submit(submit_out(3, b"hello, chip"));
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        assert_eq!(wire.len(), HEADER_LEN + 11);
        for cut in 0..wire.len() {
            assert_eq!(Command::decode(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(Command::decode(&wire), Ok(Some((cmd, wire.len()))));
    }

    #[test]
    fn the_protocol_documents_non_isochronous_marker_is_accepted() {
        let mut wire = Vec::new();
        Command::Submit(submit_out(1, b"x")).encode(&mut wire);
        wire[32..36].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        assert!(matches!(Command::decode(&wire), Ok(Some(_))));
        wire[32..36].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(Command::decode(&wire), Err(ProtocolError::Isochronous(3)));
    }

    #[test]
    fn unlink_and_replies_round_trip() {
        let unlink = Command::Unlink(CmdUnlink {
            seqnum: 9,
            devid: 5,
            victim: 4,
        });
        let mut wire = Vec::new();
        unlink.encode(&mut wire);
        assert_eq!(Command::decode(&wire), Ok(Some((unlink, HEADER_LEN))));

        let ret_in = Reply::Submit(RetSubmit {
            seqnum: 4,
            status: 0,
            actual_length: 2,
            error_count: 0,
            data: vec![0x01, 0x60],
        });
        let ret_out = Reply::Submit(RetSubmit {
            seqnum: 5,
            status: -libc::EPIPE,
            actual_length: 11,
            error_count: 0,
            data: Vec::new(),
        });
        let ret_unlink = Reply::Unlink(RetUnlink {
            seqnum: 9,
            status: -libc::ECONNRESET,
        });
        let mut wire = Vec::new();
        for r in [&ret_in, &ret_out, &ret_unlink] {
            r.encode(&mut wire);
        }
        let is_in = |seq: u32| seq == 4;
        let (a, n1) = Reply::decode(&wire, is_in).unwrap().unwrap();
        let (b, n2) = Reply::decode(&wire[n1..], is_in).unwrap().unwrap();
        let (c, n3) = Reply::decode(&wire[n1 + n2..], is_in).unwrap().unwrap();
        assert_eq!((a, b, c), (ret_in, ret_out, ret_unlink));
        assert_eq!(n1 + n2 + n3, wire.len());
        assert_eq!(&wire[n1 + 20..n1 + 24], &(-32i32).to_be_bytes(), "-EPIPE");
    }

    #[test]
    fn malformed_headers_are_refused() {
        let mut wire = Vec::new();
        Command::Submit(submit_out(1, b"")).encode(&mut wire);
        let with = |at: usize, word: u32| {
            let mut w = wire.clone();
            w[at..at + 4].copy_from_slice(&word.to_be_bytes());
            Command::decode(&w)
        };
        assert_eq!(with(12, 2), Err(ProtocolError::BadDirection(2)));
        assert_eq!(with(16, 16), Err(ProtocolError::BadEndpoint(16)));
        assert_eq!(with(24, u32::MAX), Err(ProtocolError::BadLength(-1)));
        assert_eq!(
            with(24, (MAX_TRANSFER_LEN + 1) as u32),
            Err(ProtocolError::BadLength(MAX_TRANSFER_LEN as i64 + 1))
        );
        assert!(matches!(
            with(0, RET_SUBMIT),
            Err(ProtocolError::UnexpectedCommand { code: 3, .. })
        ));
        assert!(matches!(
            Reply::decode(&wire, |_| false),
            Err(ProtocolError::UnexpectedCommand { code: 1, .. })
        ));
    }

    proptest! {
        /// Whatever arrives, decoding neither panics nor claims more bytes
        /// than it was given.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some((_, used))) = Command::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
            if let Ok(Some((_, used))) = Reply::decode(&bytes, |s| s % 2 == 0) {
                prop_assert!(used <= bytes.len());
            }
        }

        /// A stream of commands cut into arbitrary pieces decodes to the same
        /// commands as the whole stream.
        #[test]
        fn pieces_decode_like_the_whole(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..6),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let cmds: Vec<Command> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| Command::Submit(submit_out(i as u32, p)))
                .collect();
            let mut wire = Vec::new();
            cmds.iter().for_each(|c| c.encode(&mut wire));
            let (mut fed, mut buf, mut got) = (0, Vec::new(), Vec::new());
            for cut in cuts.iter().cycle() {
                if fed == wire.len() {
                    break;
                }
                let next = (fed + cut).min(wire.len());
                buf.extend_from_slice(&wire[fed..next]);
                fed = next;
                while let Some((cmd, used)) = Command::decode(&buf).unwrap() {
                    got.push(cmd);
                    buf.drain(..used);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, cmds);
        }
    }
}
