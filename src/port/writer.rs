//! The writing and configuring half of a port.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::PortConfig;
use crate::error::{Error, Result};
use crate::lock::lock;
use crate::proto::{FlowControl, LatencyTimerError, LineProperties, LineStatus, ModemStatus};
use crate::stats::{Counters, TransportInfo};
use crate::time::{Deadline, Timestamp};
use crate::timing::character_time;
use crate::transport::{Applied, Outbound, Setting};

/// Writes and settings of an open port. All methods take `&self`, so one
/// thread can write while another receives (see [`Port::split`]).
///
/// None of this runs on the realtime reader; the locks here are only ever
/// taken by application threads (and, on a port that resumes, by its
/// watcher while it puts the settings back on a device that returned:
/// writes and settings fail fast meanwhile, the getters wait for it).
///
/// [`Port::split`]: crate::Port::split
#[derive(Debug)]
pub struct Writer {
    /// The device's half; a port that resumes after an unplug puts the
    /// new device's in its place (calls in progress finish on the old one).
    outbound: Mutex<Arc<dyn Outbound>>,
    counters: Arc<Counters>,
    write_timeout: Duration,
    /// What the port is connected to, kept current as settings change.
    info: Mutex<TransportInfo>,
    /// The settings last applied, for the getters (the chip cannot report
    /// them back), the character time the timing features use, and for
    /// putting them back on a device that returns after an unplug.
    line: Mutex<LineSettings>,
}

/// The settings last applied: what a serial API reads back, and what a
/// port that resumes re-applies.
#[derive(Clone, Copy, Debug, Default)]
struct LineSettings {
    /// The rate asked for (0 until one is set); the rate the device runs
    /// at is the transport's (`TransportInfo::actual_baud`).
    baud: u32,
    line: LineProperties,
    flow: FlowControl,
    /// DTR and RTS as last set (`None`: never set).
    dtr: Option<bool>,
    rts: Option<bool>,
    /// The latency timer as last applied (`None`: never, or skipped).
    latency_timer_ms: Option<u8>,
    event_char: Option<u8>,
    error_char: Option<u8>,
}

impl Writer {
    pub(crate) fn new(
        outbound: Box<dyn Outbound>,
        counters: Arc<Counters>,
        write_timeout: Duration,
        info: TransportInfo,
    ) -> Writer {
        Writer {
            outbound: Mutex::new(Arc::from(outbound)),
            counters,
            write_timeout,
            info: Mutex::new(info),
            line: Mutex::new(LineSettings::default()),
        }
    }

    /// Publishes the character time the line settings in force give (for
    /// the timing features), from the baud rate the device actually runs at.
    fn note_line_timing(&self) {
        // No baud rate set yet (0): no character time.
        if let Some(c) = character_time(self.baud_rate(), lock(&self.line).line) {
            let ns = u64::try_from(c.as_nanos()).unwrap_or(u64::MAX);
            self.counters.char_time_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// The reader's counters (the writer counts the bytes it wrote there).
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn info_mut(&self) -> MutexGuard<'_, TransportInfo> {
        lock(&self.info)
    }

    /// The device's half, or `Disconnected` at once while a port that
    /// resumes waits for its device (no call waits out a timeout on a
    /// device that is gone).
    fn link(&self) -> Result<Arc<dyn Outbound>> {
        if self.counters.link_down.load(Ordering::Acquire) {
            return Err(Error::Disconnected);
        }
        Ok(lock(&self.outbound).clone())
    }

    fn apply(&self, setting: Setting) -> Result<Applied> {
        let applied = self.link()?.apply(setting)?;
        self.note_applied(&applied);
        Ok(applied)
    }

    /// Keeps what applying a setting reported in the transport info.
    fn note_applied(&self, applied: &Applied) {
        match applied {
            Applied::Baud(actual) => self.info_mut().actual_baud = Some(*actual),
            Applied::Skipped(note) => {
                let mut info = self.info_mut();
                if !info.notes.contains(note) {
                    info.notes.push(note.clone());
                }
            }
            Applied::Done => {}
        }
    }

    /// Writes all of `data`, waiting up to the port's write timeout.
    ///
    /// On a USB port writes are written behind: this returns once the bytes
    /// are queued for the device (two bulk-OUT transfers in flight and a
    /// queue behind them, so back-to-back writes keep the line busy), and
    /// waits only while that queue is full. [`flush`](Writer::flush) waits
    /// until the device has taken them. A transfer that fails later is
    /// reported by the next write or flush. Queued bytes wait for the
    /// device as long as flow control holds them. Settings go to the chip at
    /// once, ahead of bytes still queued: flush first when a setting must
    /// follow the bytes written before it; [`purge_tx`](Writer::purge_tx)
    /// drops the queued bytes too. Closing the port sends what is queued
    /// first, waiting at most 2 s (as a tty's close waits for its buffer).
    /// On a kernel tty the
    /// bytes go into the tty's buffer, as with `write(2)`; on the simulated
    /// chip they are in its TX FIFO when this returns.
    ///
    /// # Errors
    /// [`Error::TimedOut`] if the bytes did not fit in time (flow control
    /// holding the device, a stalled device), [`Error::Disconnected`]. A
    /// failure of bytes an earlier call queued names itself (operation
    /// `"earlier write ..."`; an unplug is `Disconnected`); nothing of
    /// `data` was written then.
    pub fn write_all(&self, data: &[u8]) -> Result<()> {
        self.write_all_within(data, self.write_timeout)
    }

    /// Writes all of `data` within `timeout` of now.
    pub(crate) fn write_all_within(&self, data: &[u8], timeout: Duration) -> Result<()> {
        let deadline = Deadline::from_now(timeout);
        let mut done = 0;
        while done < data.len() {
            let now = Timestamp::now();
            if deadline.is_past(now) {
                return Err(Error::TimedOut {
                    operation: "write",
                    after: timeout,
                });
            }
            let n = self.link()?.write(&data[done..], deadline.remaining(now))?;
            self.counters.bytes_written.add(n as u64);
            done += n;
        }
        Ok(())
    }

    /// Writes what the device (or on USB, the write queue) accepts of
    /// `data` within the write timeout; returns how much that was (at least
    /// one byte). See [`write_all`](Writer::write_all).
    ///
    /// # Errors
    /// As [`write_all`](Writer::write_all) when nothing could be written.
    pub fn write(&self, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.link()?.write(data, self.write_timeout)?;
        self.counters.bytes_written.add(n as u64);
        Ok(n)
    }

    /// Waits, up to the port's write timeout, until the device has taken
    /// every byte written, and reports a failure of any of them (USB). On
    /// the simulated chip writes are already in its TX FIFO, and on a kernel
    /// tty in the tty's buffer (as after `write(2)`; this does not
    /// `tcdrain`): there is nothing to wait for.
    ///
    /// # Errors
    /// [`Error::TimedOut`] if the device did not take them in time; a failed
    /// transfer as in [`write_all`](Writer::write_all).
    pub fn flush(&self) -> Result<()> {
        self.link()?.flush(self.write_timeout)
    }

    /// [`flush`](Writer::flush) with its own time limit (a caller's deadline).
    pub(crate) fn flush_within(&self, timeout: Duration) -> Result<()> {
        self.link()?.flush(timeout)
    }

    /// Sets the baud rate; returns the rate the device actually runs at.
    ///
    /// # Errors
    /// [`Error::Baud`] when the chip cannot get within 3 %, or the device's refusal.
    pub fn set_baud_rate(&self, baud: u32) -> Result<u32> {
        let actual = match self.apply(Setting::Baud(baud))? {
            Applied::Baud(actual) => actual,
            _ => baud,
        };
        lock(&self.line).baud = baud;
        self.note_line_timing();
        Ok(actual)
    }

    /// The baud rate the device runs at (the chip's nearest rate to the
    /// one asked for), or the one asked for where the transport cannot say.
    pub fn baud_rate(&self) -> u32 {
        let actual = self.info_mut().actual_baud;
        actual.unwrap_or_else(|| lock(&self.line).baud)
    }

    /// The data bits, parity and stop bits last set.
    pub fn line_properties(&self) -> LineProperties {
        lock(&self.line).line
    }

    /// The flow control last set.
    pub fn flow_control(&self) -> FlowControl {
        lock(&self.line).flow
    }

    /// Sets data bits, parity and stop bits.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the transport cannot do it, or the device's refusal.
    pub fn set_line_properties(&self, line: LineProperties) -> Result<()> {
        self.apply(Setting::Line(line))?;
        lock(&self.line).line = line;
        self.note_line_timing();
        Ok(())
    }

    /// Sets flow control.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the transport cannot do it, or the device's refusal.
    pub fn set_flow_control(&self, flow: FlowControl) -> Result<()> {
        self.apply(Setting::Flow(flow))?;
        lock(&self.line).flow = flow;
        Ok(())
    }

    /// Sets the DTR output.
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_dtr(&self, on: bool) -> Result<()> {
        self.apply(Setting::ModemLines {
            dtr: Some(on),
            rts: None,
        })?;
        lock(&self.line).dtr = Some(on);
        Ok(())
    }

    /// Sets the RTS output (ignored by the chip while RTS/CTS flow control is on).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_rts(&self, on: bool) -> Result<()> {
        self.apply(Setting::ModemLines {
            dtr: None,
            rts: Some(on),
        })?;
        lock(&self.line).rts = Some(on);
        Ok(())
    }

    /// Holds TX low (break) or releases it.
    ///
    /// # Errors
    /// The device's refusal.
    pub fn set_break(&self, on: bool) -> Result<()> {
        self.apply(Setting::Break(on)).map(drop)
    }

    /// Sets the FTDI latency timer (1..=255 ms). On a kernel tty this writes
    /// the ftdi_sio sysfs attribute where permitted (and sets
    /// `ASYNC_LOW_LATENCY` for 1 ms).
    ///
    /// # Errors
    /// [`Error::LatencyTimer`] for 0; [`Error::Unsupported`] where the
    /// setting has no effect (a pty, a tty of another driver, a sysfs
    /// attribute the user may not write: the reason says which); or the
    /// device's refusal.
    pub fn set_latency_timer(&self, ms: u8) -> Result<()> {
        match self.apply_latency_timer(ms)? {
            Applied::Skipped(reason) => Err(Error::Unsupported {
                setting: format!("latency timer {ms} ms"),
                transport: self.info_mut().description.clone(),
                reason,
            }),
            _ => Ok(()),
        }
    }

    /// Applies the latency timer; a transport without one says so in a
    /// note (opening goes on: the statistics show it).
    fn apply_latency_timer(&self, ms: u8) -> Result<Applied> {
        if ms == 0 {
            return Err(Error::LatencyTimer(LatencyTimerError));
        }
        let applied = self.apply(Setting::LatencyTimer(ms))?;
        if let Applied::Done = applied {
            self.counters.latency_timer_ms.store(ms, Ordering::Relaxed);
            lock(&self.line).latency_timer_ms = Some(ms);
        }
        Ok(applied)
    }

    /// Sets (or with `None` disables) the event character.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on transports without one.
    pub fn set_event_char(&self, ch: Option<u8>) -> Result<()> {
        self.apply(Setting::EventChar(ch))?;
        lock(&self.line).event_char = ch;
        Ok(())
    }

    /// Sets (or with `None` disables) the error character.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on transports without one.
    pub fn set_error_char(&self, ch: Option<u8>) -> Result<()> {
        self.apply(Setting::ErrorChar(ch))?;
        lock(&self.line).error_char = ch;
        Ok(())
    }

    /// Empties the device's receive FIFO (data the host has not read yet).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn purge_rx(&self) -> Result<()> {
        self.apply(Setting::PurgeRx).map(drop)
    }

    /// Empties the device's transmit FIFO (data not sent yet).
    ///
    /// # Errors
    /// The device's refusal.
    pub fn purge_tx(&self) -> Result<()> {
        self.apply(Setting::PurgeTx).map(drop)
    }

    /// Asks the device for its modem and line status (a control request on
    /// FTDI transports, TIOCMGET on a tty).
    ///
    /// # Errors
    /// The transport's error.
    pub fn query_status(&self) -> Result<(ModemStatus, LineStatus)> {
        self.link()?.query_status()
    }

    /// The modem and line status of the last packet the reader saw (no I/O;
    /// zero before the first packet and on transports without status).
    pub fn latest_status(&self) -> (ModemStatus, LineStatus) {
        self.counters.latest_status()
    }

    /// Reads the chip's configuration EEPROM: `words` words from address 0,
    /// one READ_EEPROM request each (64 for a 93C46). Read-only: nothing is
    /// ever written. Decode it with [`Eeprom::decode`](crate::proto::Eeprom::decode).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a kernel tty; the device's refusal.
    pub fn read_eeprom(&self, words: u16) -> Result<Vec<u16>> {
        (0..words)
            .map(|w| self.link()?.read_eeprom_word(w))
            .collect()
    }

    /// Reads the latency timer from the chip itself (ms).
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a kernel tty; the device's refusal.
    pub fn read_latency_timer(&self) -> Result<u8> {
        self.link()?.read_latency_timer()
    }

    /// What the port is connected to and how it is set up.
    pub fn transport_info(&self) -> TransportInfo {
        self.info_mut().clone()
    }

    /// Applies the settings of `config` in the order the chip wants them.
    pub(crate) fn apply_config(&self, config: &PortConfig) -> Result<()> {
        self.set_baud_rate(config.baud)?;
        self.set_line_properties(config.line)?;
        self.set_flow_control(config.flow)?;
        self.apply(Setting::ModemLines {
            dtr: Some(config.dtr),
            rts: Some(config.rts),
        })?;
        {
            let mut line = lock(&self.line);
            line.dtr = Some(config.dtr);
            line.rts = Some(config.rts);
        }
        self.apply_latency_timer(config.latency_timer_ms)?;
        // Explicitly off unless asked: a chip's error character survives RESET.
        self.set_event_char(config.event_char)?;
        self.set_error_char(config.error_char)?;
        Ok(())
    }

    /// For a port that resumes whose new reader could not start: writes
    /// and settings fail fast again, as they did while the device was gone.
    pub(crate) fn link_lost(&self) {
        self.counters.link_down.store(true, Ordering::Release);
    }

    /// For a port that resumes: puts every setting last applied (baud,
    /// line, flow control, DTR/RTS, latency timer, event and error
    /// characters, in the order the chip wants them) on `outbound`, the
    /// half of the device that came back, then makes it the port's and
    /// lets writes and settings through again. The settings lock is held
    /// throughout, so a setting changed meanwhile is not lost.
    ///
    /// # Errors
    /// The new device's refusal; the port keeps waiting then.
    pub(crate) fn resume_on(&self, outbound: Box<dyn Outbound>) -> Result<()> {
        let outbound: Arc<dyn Outbound> = Arc::from(outbound);
        let line = lock(&self.line);
        let mut settings = Vec::with_capacity(7);
        if line.baud != 0 {
            settings.push(Setting::Baud(line.baud));
        }
        settings.push(Setting::Line(line.line));
        settings.push(Setting::Flow(line.flow));
        settings.push(Setting::ModemLines {
            dtr: line.dtr,
            rts: line.rts,
        });
        settings.extend(line.latency_timer_ms.map(Setting::LatencyTimer));
        settings.push(Setting::EventChar(line.event_char));
        settings.push(Setting::ErrorChar(line.error_char));
        for setting in settings {
            let applied = outbound.apply(setting)?;
            self.note_applied(&applied);
        }
        let old = std::mem::replace(&mut *lock(&self.outbound), outbound);
        self.counters.link_down.store(false, Ordering::Release);
        drop(line);
        // Outside the locks: releasing the old device can take a while
        // (libusb gives the interface back to ftdi_sio).
        drop(old);
        Ok(())
    }
}
