//! ftdi-rt under tokio (feature `tokio`): an [`AsyncPort`] on the
//! simulated FT232R, read and written with tokio's I/O traits while a timer
//! task runs beside it, then request/reply transactions with their
//! deadline accounting.
//!
//! ```text
//! cargo run --example tokio_port --features tokio,sim
//! ```

use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt::{AsyncPort, Port, PortConfig, ReplyEnd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let chip = SimChip::new(
        Frobnicator::new(Duration::from_micros(200)),
        SimConfig::default(),
    )?;
    // Best effort: no realtime grant needed for a demonstration.
    let port = Port::open_sim(chip, &PortConfig::default().best_effort())?;
    let mut port = AsyncPort::new(port)?;

    // Other work keeps running while the port waits for its reply.
    let ticker = tokio::spawn(async {
        let mut ticks = 0u32;
        let mut interval = tokio::time::interval(Duration::from_micros(500));
        loop {
            interval.tick().await;
            ticks += 1;
            if ticks == 20 {
                return ticks;
            }
        }
    });

    let request = [0xA5, 1, 2, 3, 4, 0x5A, 6];
    port.write_all(&request).await?;
    let mut reply = [0u8; 1];
    port.read_exact(&mut reply).await?;
    println!(
        "AsyncRead/AsyncWrite: reply {:#04x} (the frobnicator's answer is {:#04x})",
        reply[0],
        Frobnicator::reply_for(&request)
    );
    println!(
        "the timer task, running beside the port, finished its {} ticks",
        ticker.await?
    );

    for i in 0..5u8 {
        let request = [i, 1, 2, 3, 4, 5, 6];
        let t = port
            .transact(&request, ReplyEnd::Length(1), Duration::from_micros(3500))
            .await?;
        println!(
            "transact {i}: reply {:#04x} after {:?}",
            t.bytes()[0],
            t.latency()
        );
    }
    println!("{}", port.get_ref().stats());
    Ok(())
}
