//! Whether a migration's target host answers, asked before the spawn.
//!
//! `MPI_Comm_spawn` cannot be interrupted: toward a host that is down or
//! cut off, the MPI launcher may wait for minutes (an ssh connect, TCP
//! retransmissions) or abort the job. So the leaving process first knocks
//! on the target: a TCP connection to the port the launcher uses (ssh's
//! 22 unless `FERRY_PROBE_PORT` says otherwise), bounded by
//! `FERRY_PROBE_TIMEOUT_MS` (2000 by default). A host that accepts or
//! refuses the connection is up (a refusal is an answer from its kernel);
//! one that does not answer in time, or that has no route, is down, and
//! the migration is refused with the reason while the job goes on.
//! `FERRY_PROBE_PORT=0` turns the knock off.
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Default port: the launcher's (ssh).
pub const DEFAULT_PORT: u16 = 22;
/// Default bound on the whole knock.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

/// How to knock, from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knock {
    /// `None`: no knock (`FERRY_PROBE_PORT=0`).
    pub port: Option<u16>,
    pub timeout: Duration,
}

impl Knock {
    /// From `FERRY_PROBE_PORT` and `FERRY_PROBE_TIMEOUT_MS` (values that
    /// do not parse keep the defaults, with a warning).
    pub fn from_env() -> Knock {
        Knock::parse(
            std::env::var("FERRY_PROBE_PORT").ok().as_deref(),
            std::env::var("FERRY_PROBE_TIMEOUT_MS").ok().as_deref(),
        )
    }

    fn parse(port: Option<&str>, timeout_ms: Option<&str>) -> Knock {
        let port = match port.map(str::trim) {
            None | Some("") => Some(DEFAULT_PORT),
            Some(p) => match p.parse::<u16>() {
                Ok(0) => None,
                Ok(p) => Some(p),
                Err(_) => {
                    log::warn!("FERRY_PROBE_PORT={p:?} is not a port; using {DEFAULT_PORT}");
                    Some(DEFAULT_PORT)
                }
            },
        };
        let timeout = match timeout_ms.map(str::trim) {
            None | Some("") => DEFAULT_TIMEOUT,
            Some(t) => match t.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    log::warn!(
                        "FERRY_PROBE_TIMEOUT_MS={t:?} is not a positive number of milliseconds; using {}",
                        DEFAULT_TIMEOUT.as_millis()
                    );
                    DEFAULT_TIMEOUT
                }
            },
        };
        Knock { port, timeout }
    }
}

/// What a knock found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The host answered (it accepted or refused the connection), after
    /// this long.
    Up(Duration),
    /// It did not: why, in words for the refusal message.
    Down(String),
}

/// Knocks on `host` as `knock` says. Tries each address the name resolves
/// to, within one overall bound; the first answer wins.
pub fn knock(host: &str, knock: Knock) -> Answer {
    let Some(port) = knock.port else {
        return Answer::Up(Duration::ZERO);
    };
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Answer::Down(format!("its name does not resolve ({e})")),
    };
    if addrs.is_empty() {
        return Answer::Down("its name resolves to no address".into());
    }
    let start = Instant::now();
    let mut last = String::new();
    for addr in &addrs {
        let left = knock.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(_) => return Answer::Up(start.elapsed()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Answer::Up(start.elapsed())
            }
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                last = format!(
                    "no answer from {addr} within {} ms",
                    knock.timeout.as_millis()
                );
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    if last.is_empty() {
        last = format!("no answer within {} ms", knock.timeout.as_millis());
    }
    Answer::Down(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn environment() {
        assert_eq!(
            Knock::parse(None, None),
            Knock {
                port: Some(22),
                timeout: DEFAULT_TIMEOUT
            }
        );
        assert_eq!(Knock::parse(Some("0"), None).port, None);
        assert_eq!(Knock::parse(Some("2222"), None).port, Some(2222));
        assert_eq!(Knock::parse(Some("ssh"), None).port, Some(22));
        assert_eq!(
            Knock::parse(None, Some("150")).timeout,
            Duration::from_millis(150)
        );
        assert_eq!(Knock::parse(None, Some("0")).timeout, DEFAULT_TIMEOUT);
        assert_eq!(Knock::parse(None, Some("soon")).timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_listening_host_is_up() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let k = Knock {
            port: Some(port),
            timeout: Duration::from_secs(2),
        };
        assert!(matches!(knock("127.0.0.1", k), Answer::Up(_)));
    }

    #[test]
    fn a_refusing_host_is_up() {
        // A port nobody listens on: the kernel refuses, so the host is up.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let k = Knock {
            port: Some(port),
            timeout: Duration::from_secs(2),
        };
        assert!(matches!(knock("localhost", k), Answer::Up(_)));
    }

    #[test]
    fn no_knock_is_up() {
        let k = Knock {
            port: None,
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(knock("no-such-host.invalid", k), Answer::Up(Duration::ZERO));
    }

    #[test]
    fn an_unknown_name_is_down() {
        let k = Knock {
            port: Some(22),
            timeout: Duration::from_millis(200),
        };
        assert!(matches!(knock("no-such-host.invalid", k), Answer::Down(_)));
    }
    // A host that is down (no answer, no route) is checked on the cluster
    // of network namespaces, with its link cut: the harness's hosts::host-down cases.
}
