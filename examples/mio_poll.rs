//! The port as one event source among others: a mio `Poll` watches the serial
//! port and a TCP listener; what arrives from the port goes to the TCP client,
//! what the client sends goes to the port.
//!
//! ```text
//! cargo run --release --example mio_poll            # simulated chip, TX wired to RX
//! nc 127.0.0.1 7878                                 # type: it comes back through the "wire"
//! cargo run --release --example mio_poll -- --usb   # a real adapter (first found)
//! cargo run --release --example mio_poll -- --tty /dev/ttyUSB0
//! ```

use std::io::{Read, Write};

use ftdi_rt::sim::{Loopback, SimChip, SimConfig};
use ftdi_rt::{Port, PortConfig, Selector};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const SERIAL: Token = Token(0);
const LISTENER: Token = Token(1);
const CLIENT: Token = Token(2);

fn open(args: &[String]) -> ftdi_rt::Result<Port> {
    let config = PortConfig::default().best_effort();
    match args.first().map(String::as_str) {
        Some("--usb") => Port::open_usb(&Selector::First, &config),
        Some("--tty") => {
            Port::open_tty(args.get(1).map_or("/dev/ttyUSB0", String::as_str), &config)
        }
        _ => Port::open_sim(
            SimChip::new(Loopback::new(), SimConfig::default())?,
            &config,
        ),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = open(&args)?;
    let mut listener = TcpListener::bind("127.0.0.1:7878".parse()?)?;
    println!(
        "{}; serving 127.0.0.1:7878",
        port.transport_info().description
    );

    // The application: one poll loop for the serial port and the network.
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut port, SERIAL, Interest::READABLE)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let (mut events, mut client, mut buf) =
        (Events::with_capacity(16), None::<TcpStream>, [0u8; 4096]);
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            match event.token() {
                LISTENER => {
                    let (mut stream, _) = listener.accept()?;
                    poll.registry()
                        .register(&mut stream, CLIENT, Interest::READABLE)?;
                    client = Some(stream);
                }
                // Drain until empty: that is what re-arms the port's readiness.
                SERIAL => {
                    while let Some(chunk) = port.try_recv()? {
                        if let Some(c) = client.as_mut() {
                            c.write_all(chunk.payload())?;
                        }
                    }
                }
                CLIENT => loop {
                    match client.as_mut().map(|c| c.read(&mut buf)) {
                        Some(Ok(0)) => return Ok(()), // the client hung up
                        Some(Ok(n)) => port.write_all(&buf[..n])?,
                        _ => break, // WouldBlock: wait for the next event
                    }
                },
                _ => {}
            }
        }
    }
}
