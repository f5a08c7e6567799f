//! Malware scanning of uploaded files, behind [`MalwareScanner`]: [`Clamd`] asks a ClamAV
//! daemon over TCP (`INSTREAM`); [`NotScanned`] passes everything and says so, for
//! deployments without a scanner (the state of each file records which one judged it).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found; the detail says by whom (`clamd`, or `not scanned`).
    Clean(String),
    /// Malware: the signature's name.
    Infected(String),
}

/// Why a scan could not decide (retry later).
#[derive(Debug, thiserror::Error)]
#[error("malware scan failed: {0}")]
pub struct ScanError(pub String);

/// Scans file contents for malware.
#[async_trait::async_trait]
pub trait MalwareScanner: Send + Sync + std::fmt::Debug {
    /// Scans `content`.
    async fn scan(&self, content: &[u8]) -> Result<Verdict, ScanError>;
}

/// Passes every file: for deployments without a scanner. The verdict says it was not
/// scanned, and the portal logs a warning at start.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotScanned;

#[async_trait::async_trait]
impl MalwareScanner for NotScanned {
    async fn scan(&self, _content: &[u8]) -> Result<Verdict, ScanError> {
        Ok(Verdict::Clean("not scanned (no scanner configured)".into()))
    }
}

/// A ClamAV daemon reachable over TCP (`clamd`'s `TCPSocket`), asked with `INSTREAM`.
#[derive(Debug, Clone)]
pub struct Clamd {
    address: String,
    timeout: Duration,
}

/// Bytes sent per `INSTREAM` chunk (clamd's `StreamMaxLength` bounds the total).
const STREAM_CHUNK: usize = 64 * 1024;

impl Clamd {
    /// A daemon at `address` (`host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Whether the daemon answers `PING`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut stream = self.connect().await?;
        stream
            .write_all(b"zPING\0")
            .await
            .map_err(|err| ScanError(format!("clamd: {err}")))?;
        let reply = self.reply(&mut stream).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(ScanError(format!("clamd answered {reply:?} to PING")))
        }
    }

    async fn connect(&self) -> Result<TcpStream, ScanError> {
        tokio::time::timeout(self.timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| ScanError(format!("clamd at {} did not answer", self.address)))?
            .map_err(|err| ScanError(format!("clamd at {}: {err}", self.address)))
    }

    async fn reply(&self, stream: &mut TcpStream) -> Result<String, ScanError> {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(self.timeout, async {
            let mut buffer = [0_u8; 512];
            loop {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buffer[..n]);
                if reply.contains(&0) || reply.len() > 64 * 1024 {
                    break;
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        match read {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(ScanError(format!("clamd: {err}"))),
            Err(_) => return Err(ScanError("clamd timed out".into())),
        }
        let end = reply.iter().position(|b| *b == 0).unwrap_or(reply.len());
        Ok(String::from_utf8_lossy(&reply[..end]).trim().to_owned())
    }
}

/// Reads clamd's answer to a scan: `stream: OK`, `stream: <signature> FOUND`, or an error.
fn verdict(reply: &str) -> Result<Verdict, ScanError> {
    let answer = reply.strip_prefix("stream:").unwrap_or(reply).trim();
    if answer == "OK" {
        return Ok(Verdict::Clean("clamd".into()));
    }
    if let Some(signature) = answer.strip_suffix("FOUND") {
        return Ok(Verdict::Infected(signature.trim().to_owned()));
    }
    Err(ScanError(format!("clamd: {answer}")))
}

#[async_trait::async_trait]
impl MalwareScanner for Clamd {
    async fn scan(&self, content: &[u8]) -> Result<Verdict, ScanError> {
        let mut stream = self.connect().await?;
        let io = |err: std::io::Error| ScanError(format!("clamd: {err}"));
        stream.write_all(b"zINSTREAM\0").await.map_err(io)?;
        for chunk in content.chunks(STREAM_CHUNK) {
            let length = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            stream.write_all(&length.to_be_bytes()).await.map_err(io)?;
            stream.write_all(chunk).await.map_err(io)?;
        }
        stream.write_all(&[0, 0, 0, 0]).await.map_err(io)?;
        let reply = self.reply(&mut stream).await?;
        verdict(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamd_replies_read_as_verdicts() {
        assert_eq!(
            verdict("stream: OK").ok(),
            Some(Verdict::Clean("clamd".into()))
        );
        assert_eq!(
            verdict("stream: Portal.Test.EICAR.UNOFFICIAL FOUND").ok(),
            Some(Verdict::Infected("Portal.Test.EICAR.UNOFFICIAL".into()))
        );
        assert!(verdict("INSTREAM size limit exceeded. ERROR").is_err());
    }
}
