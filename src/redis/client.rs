//! A Redis connection: where to connect (`redis://[user:password@]host:port`, `unix:///path`
//! or a socket path), AUTH, and the few commands a backup needs, each with a socket deadline
//! so a server that stops answering fails the snapshot instead of hanging it.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::resp::{self, Value};
use crate::error::{Error, Result};

/// How long one command may take to answer (BGSAVE returns at once; waits are polled).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a server listens and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: Addr,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Target {
    // The password stays out of debug output and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("addr", &self.addr).field("user", &self.user).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(String),
    Unix(std::path::PathBuf),
}

impl Target {
    /// Parses `redis://[[user]:password@]host[:port][/db]`, `unix:///path/to.sock` or a path.
    pub fn parse(url: &str) -> Result<Target> {
        let invalid =
            |why: &str| Error::InvalidArgument(format!("--redis {:?}: {why}", crate::error::redact_urls(url)));
        if url.starts_with('/') {
            return Ok(Target { addr: Addr::Unix(url.into()), user: None, password: None });
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid("a unix:// URL needs an absolute socket path"));
            }
            return Ok(Target { addr: Addr::Unix(path.into()), user: None, password: None });
        }
        let rest =
            url.strip_prefix("redis://").ok_or_else(|| invalid("use redis://host:port, unix:///path or a path"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (login, hostport) = match authority.rsplit_once('@') {
            Some((l, h)) => (Some(l), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(invalid("no host"));
        }
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        let (user, password) = match login.map(|l| l.split_once(':').unwrap_or((l, ""))) {
            None => (None, None),
            Some((u, p)) => {
                (Some(u.to_string()).filter(|u| !u.is_empty()), Some(p.to_string()).filter(|p| !p.is_empty()))
            }
        };
        Ok(Target { addr: Addr::Tcp(hostport), user, password })
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An open, authenticated connection.
pub struct Client {
    io: BufReader<Box<dyn Stream>>,
    name: String,
}

fn redis_err(detail: String) -> Error {
    Error::Service { service: "Redis", detail, source: None }
}

impl Client {
    pub fn connect(target: &Target) -> Result<Client> {
        let (stream, name): (Box<dyn Stream>, String) = match &target.addr {
            Addr::Tcp(hp) => {
                let s = connect_tcp(hp).map_err(|e| redis_err(format!("cannot connect to {hp}: {e}")))?;
                (Box::new(s), hp.clone())
            }
            Addr::Unix(p) => {
                let name = p.display().to_string();
                let s = UnixStream::connect(p).map_err(|e| redis_err(format!("cannot connect to {name}: {e}")))?;
                s.set_read_timeout(Some(COMMAND_TIMEOUT))
                    .and_then(|_| s.set_write_timeout(Some(COMMAND_TIMEOUT)))
                    .map_err(|e| redis_err(format!("cannot set a timeout on {name}: {e}")))?;
                (Box::new(s), name)
            }
        };
        let mut client = Client { io: BufReader::new(stream), name };
        if let Some(password) = &target.password {
            let mut args = vec!["AUTH"];
            args.extend(target.user.as_deref());
            args.push(password);
            client.ok(&args)?;
        }
        Ok(client)
    }

    /// Sends one command and reads its reply; a Redis error reply becomes an error naming the
    /// command.
    pub fn call(&mut self, args: &[&str]) -> Result<Value> {
        let what = args.first().copied().unwrap_or_default();
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let io_err = |e: io::Error| redis_err(format!("{what} to {}: {e}", self.name));
        resp::write_command(self.io.get_mut(), &bytes).map_err(io_err)?;
        match resp::read_value(&mut self.io).map_err(|e| redis_err(format!("{what} to {}: {e}", self.name)))? {
            Value::Error(e) => Err(redis_err(format!("{what} refused by {}: {e}", self.name))),
            v => Ok(v),
        }
    }

    /// A command whose only useful reply is success.
    pub fn ok(&mut self, args: &[&str]) -> Result<()> {
        self.call(args).map(|_| ())
    }

    /// `INFO section` as key → value.
    pub fn info(&mut self, section: &str) -> Result<BTreeMap<String, String>> {
        let text =
            self.call(&["INFO", section])?.text().ok_or_else(|| redis_err("INFO did not answer with text".into()))?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    /// `CONFIG GET name`: its value, or `None` when the server has no such parameter.
    pub fn config_get(&mut self, name: &str) -> Result<Option<String>> {
        match self.call(&["CONFIG", "GET", name])? {
            Value::Array(Some(items)) => Ok(items.get(1).and_then(Value::text)),
            other => Err(redis_err(format!("CONFIG GET {name} answered {other:?}"))),
        }
    }

    /// `LASTSAVE`: Unix seconds of the last successful save.
    pub fn lastsave(&mut self) -> Result<i64> {
        match self.call(&["LASTSAVE"])? {
            Value::Int(t) => Ok(t),
            other => Err(redis_err(format!("LASTSAVE answered {other:?}"))),
        }
    }
}

fn connect_tcp(hostport: &str) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in hostport.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                s.set_write_timeout(Some(COMMAND_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_socket_paths_parse() {
        let t = Target::parse("redis://:s3cret@127.0.0.1:6380/0").unwrap();
        assert_eq!(t.addr, Addr::Tcp("127.0.0.1:6380".into()));
        assert_eq!((t.user, t.password.as_deref()), (None, Some("s3cret")));
        let t = Target::parse("redis://backup:pw@db").unwrap();
        assert_eq!(t.addr, Addr::Tcp("db:6379".into()));
        assert_eq!(t.user.as_deref(), Some("backup"));
        assert_eq!(Target::parse("/run/redis.sock").unwrap().addr, Addr::Unix("/run/redis.sock".into()));
        assert_eq!(Target::parse("unix:///run/r.sock").unwrap().addr, Addr::Unix("/run/r.sock".into()));
        for bad in ["http://x", "redis://", "unix://rel", "localhost:6379"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let err = Target::parse("rediss://u:topsecret@h").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
        assert!(!format!("{:?}", Target::parse("redis://:pw@h").unwrap()).contains("pw"));
    }
}
