//! How the chunks of a `ban -` or `unban -` are asked of the daemon.
//!
//! Each chunk whose next one is read already says `follows`, and the next
//! goes on the same connection right after it, before its answer is read:
//! the daemon reads and parses one while its engine carries out the one
//! before, and the client reads an answer while the daemon works on the
//! next (docs/cli.md, "`ban`"). The engine still takes the chunks one at a
//! time and in order, and the answers come in order. Before, each chunk
//! went on a connection of its own once the one before was answered, and
//! the engine waited between chunks for the answer to be written, read
//! and printed and the next request to be sent and parsed (measured in
//! docs/performance.md, "a command's chunks on one connection").
//!
//! A daemon from before `follows` (or before `more`) refuses the field as
//! unknown and carries nothing out: the chunk goes again without it, as
//! do the command's next ones, each on a connection of its own as before.
//! Such a daemon reads only the first line of a connection, so the next
//! request, sent after it before its answer was read, goes again too.

use std::path::PathBuf;

use crate::control::client::Pipe;
use crate::control::{Request, Response};

/// The daemon as the asking sees it: requests sent on a connection, their
/// answers read from it in order.
pub(super) trait Daemon {
    /// Send `req`, on a new connection if none is open.
    fn send(&mut self, req: &Request) -> anyhow::Result<()>;
    /// The answer to the oldest request sent and not yet answered.
    fn answer(&mut self) -> anyhow::Result<Response>;
    /// Leave the connection: the daemon ends it after answering a request
    /// that does not say `follows` (or one it refused).
    fn close(&mut self);
}

/// The daemon behind a control socket.
pub(super) struct Socket {
    path: PathBuf,
    pipe: Option<Pipe>,
}

impl Socket {
    pub(super) fn new(path: PathBuf) -> Socket {
        Socket { path, pipe: None }
    }
}

impl Daemon for Socket {
    fn send(&mut self, req: &Request) -> anyhow::Result<()> {
        let pipe = match &mut self.pipe {
            Some(pipe) => pipe,
            None => self.pipe.insert(Pipe::open(&self.path)?),
        };
        pipe.send(req);
        Ok(())
    }

    fn answer(&mut self) -> anyhow::Result<Response> {
        match &mut self.pipe {
            Some(pipe) => Ok(pipe.answer()?),
            None => anyhow::bail!("no request is waiting for an answer"),
        }
    }

    fn close(&mut self) {
        self.pipe = None;
    }
}

/// The asking of one command's chunks.
pub(super) struct Asking<D> {
    daemon: D,
    /// The daemon does not know `more` (nor, then, `follows`).
    plain: bool,
    /// Whether the daemon takes `follows`: unknown until it answers one.
    follows: Option<bool>,
    /// The request sent with `follows` whose answer is still to be read
    /// (kept to be sent again should the daemon not know `follows`).
    owed: Option<Request>,
}

impl<D: Daemon> Asking<D> {
    pub(super) fn new(daemon: D) -> Asking<D> {
        Asking {
            daemon,
            plain: false,
            follows: None,
            owed: None,
        }
    }

    /// Whether a chunk may say `follows` (as far as the daemon is known).
    pub(super) fn may_follow(&self) -> bool {
        !self.plain && self.follows != Some(false)
    }

    /// Ask `req`, with `more` and `follows` as the command has them (they
    /// are cleared here for a daemon that does not know them). Every
    /// answer, in the requests' order, goes to `deliver`, which says
    /// whether to go on: `Ok(false)` once it said not to (a refusal, or
    /// nobody to print).
    pub(super) fn ask(&mut self, mut req: Request, deliver: &mut impl FnMut(Response) -> bool) -> anyhow::Result<bool> {
        let may_follow = self.may_follow();
        let (more, follows) = match fields(&mut req) {
            Some((more, follows)) => {
                *more &= !self.plain;
                *follows &= *more && may_follow;
                (*more, *follows)
            }
            None => (false, false),
        };
        self.daemon.send(&req)?;
        if let Some(before) = self.owed.take() {
            let resp = self.daemon.answer()?;
            if self.follows.is_none() && self.knows_not(&resp) {
                // Neither was carried out, and the connection ended: both
                // go again, one after the other, without the field.
                self.daemon.close();
                return Ok(self.ask(before, deliver)? && self.ask(req, deliver)?);
            }
            self.follows = Some(true);
            if !deliver(resp) {
                return Ok(false);
            }
        }
        if follows {
            self.owed = Some(req);
            return Ok(true);
        }
        let resp = self.daemon.answer()?;
        self.daemon.close();
        if more && self.knows_not(&resp) {
            return self.ask(req, deliver);
        }
        Ok(deliver(resp))
    }

    /// Whether `resp` refuses `follows` or `more` as unknown (a daemon
    /// from before them): then it is not asked them again.
    fn knows_not(&mut self, resp: &Response) -> bool {
        if resp.refuses_field("follows") {
            self.follows = Some(false);
        } else if resp.refuses_field("more") {
            self.plain = true;
        } else {
            return false;
        }
        true
    }

    /// Read and deliver the answer still owed, if any (the command ended
    /// after a request that said `follows`).
    pub(super) fn settle(&mut self, deliver: &mut impl FnMut(Response) -> bool) -> anyhow::Result<()> {
        if self.owed.take().is_some() {
            deliver(self.daemon.answer()?);
            self.daemon.close();
        }
        Ok(())
    }
}

/// A chunk's `more` and `follows` (a request of another kind has none).
fn fields(req: &mut Request) -> Option<(&mut bool, &mut bool)> {
    match req {
        Request::Ban { more, follows, .. } | Request::Unban { more, follows, .. } => Some((more, follows)),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// The requests as a daemon from before `more` reads them: it denies
    /// unknown fields.
    #[derive(serde::Deserialize)]
    #[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum BeforeMore {
        Ban {
            addrs: Vec<String>,
            jail: Option<String>,
            bantime: Option<u64>,
            #[serde(default)]
            force: bool,
        },
        Unban {
            addrs: Vec<String>,
            jail: Option<String>,
        },
    }

    /// As a daemon from before `follows` reads them.
    #[derive(serde::Deserialize)]
    #[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum BeforeFollows {
        Unban {
            addrs: Vec<String>,
            jail: Option<String>,
            #[serde(default)]
            more: bool,
        },
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    pub(in crate::commands) enum Age {
        BeforeMore,
        BeforeFollows,
        Now,
    }

    /// A daemon of an `age` as the control server is: one request a
    /// connection unless it says `follows`, a refused one ends the
    /// connection, and nothing is carried out on a connection after a
    /// refusal. It answers each request with its number (refusing number
    /// `refuse`), and writes down what happened, in order.
    pub(in crate::commands) struct Fake {
        age: Age,
        refuse: Option<usize>,
        open: bool,
        /// The connection takes no more requests (it ended, as far as the
        /// daemon is concerned).
        ended: bool,
        answers: VecDeque<Response>,
        carried: usize,
        log: Vec<String>,
        /// The addresses of each request carried out, and its `more`.
        pub(in crate::commands) sizes: Vec<(usize, bool)>,
    }

    impl Fake {
        pub(in crate::commands) fn new(age: Age, refuse: Option<usize>) -> Fake {
            Fake {
                age,
                refuse,
                open: false,
                ended: false,
                answers: VecDeque::new(),
                carried: 0,
                log: Vec::new(),
                sizes: Vec::new(),
            }
        }
    }

    impl Daemon for Fake {
        fn send(&mut self, req: &Request) -> anyhow::Result<()> {
            if !self.open {
                self.open = true;
                self.ended = false;
                self.log.push("connect".into());
            }
            let line = serde_json::to_string(req).unwrap();
            let (more, follows) = (req.clone().more(), req.follows());
            if self.ended {
                // The daemon reads no more of this connection.
                self.log
                    .push(format!("send more={more} follows={follows}, not carried out"));
                return Ok(());
            }
            self.log.push(format!("send more={more} follows={follows}"));
            let parsed = match self.age {
                Age::BeforeMore => serde_json::from_str::<BeforeMore>(&line).map(drop),
                Age::BeforeFollows => serde_json::from_str::<BeforeFollows>(&line).map(drop),
                Age::Now => serde_json::from_str::<Request>(&line).map(drop),
            };
            let resp = match parsed {
                Err(e) => Response::err(format!("bad request: {e}")),
                Ok(()) => {
                    self.carried += 1;
                    let addrs = match req {
                        Request::Ban { addrs, .. } | Request::Unban { addrs, .. } => addrs.len(),
                        _ => 0,
                    };
                    self.sizes.push((addrs, more));
                    match self.refuse == Some(self.carried) {
                        true => Response::err(format!("chunk {} refused", self.carried)),
                        false => Response::ok(self.carried),
                    }
                }
            };
            self.ended = !(follows && resp.ok && self.age == Age::Now);
            self.answers.push_back(resp);
            Ok(())
        }

        fn answer(&mut self) -> anyhow::Result<Response> {
            let resp = self.answers.pop_front().expect("an answer to read");
            self.log.push(format!("answer {}", resp.data.get()));
            Ok(resp)
        }

        fn close(&mut self) {
            self.open = false;
            self.log.push("close".into());
        }
    }

    impl Request {
        fn more(mut self) -> bool {
            fields(&mut self).is_some_and(|(more, _)| *more)
        }
    }

    /// A daemon lent to an asking, to be looked at after it.
    impl<D: Daemon> Daemon for &mut D {
        fn send(&mut self, req: &Request) -> anyhow::Result<()> {
            (**self).send(req)
        }
        fn answer(&mut self) -> anyhow::Result<Response> {
            (**self).answer()
        }
        fn close(&mut self) {
            (**self).close()
        }
    }

    fn unban(n: usize, more: bool, follows: bool) -> Request {
        Request::Unban {
            addrs: vec![format!("192.0.2.{n}")],
            jail: None,
            more,
            follows,
        }
    }

    /// Ask four chunks (each but the last saying `more`, and `follows`
    /// while the next is "read"): what was delivered, and the daemon.
    fn four(age: Age, refuse: Option<usize>) -> (Vec<Result<usize, String>>, Fake) {
        let mut asking = Asking::new(Fake::new(age, refuse));
        let mut got = Vec::new();
        let mut deliver = |resp: Response| {
            let ok = resp.ok;
            got.push(match ok {
                true => Ok(resp.data().unwrap()),
                false => Err(resp.error.unwrap()),
            });
            ok
        };
        for n in 1..=4 {
            let more = n < 4;
            if !asking.ask(unban(n, more, more), &mut deliver).unwrap() {
                break;
            }
        }
        asking.settle(&mut deliver).unwrap();
        (got, asking.daemon)
    }

    /// The requests a daemon read, and how many it did not.
    fn sends(daemon: &Fake) -> (Vec<&str>, usize) {
        let sent = daemon.log.iter().filter(|l| l.starts_with("send"));
        let unread = sent.clone().filter(|l| l.ends_with(", not carried out")).count();
        (
            sent.filter(|l| !l.ends_with(", not carried out"))
                .map(String::as_str)
                .collect(),
            unread,
        )
    }

    /// A daemon that knows `follows`: each chunk goes before the answer to
    /// the one before it is read, all on one connection, and every answer
    /// is delivered once, in order.
    #[test]
    fn chunks_follow_on_one_connection() {
        let (got, daemon) = four(Age::Now, None);
        assert_eq!(got, [Ok(1), Ok(2), Ok(3), Ok(4)]);
        assert_eq!(
            daemon.log,
            [
                "connect",
                "send more=true follows=true",
                "send more=true follows=true",
                "answer 1",
                "send more=true follows=true",
                "answer 2",
                "send more=false follows=false",
                "answer 3",
                "answer 4",
                "close",
            ]
        );
    }

    /// A daemon from before `follows` (or `more`) refuses it, carries
    /// nothing out and reads no further: the first chunk and the one sent
    /// after it go again without it, and so do the next ones, each on a
    /// connection of its own.
    #[test]
    fn an_older_daemon_gets_each_chunk_on_its_own_connection() {
        let (got, daemon) = four(Age::BeforeFollows, None);
        assert_eq!(got, [Ok(1), Ok(2), Ok(3), Ok(4)]);
        assert_eq!(daemon.sizes, [(1, true), (1, true), (1, true), (1, false)]);
        assert_eq!(
            sends(&daemon),
            (
                vec![
                    "send more=true follows=true",
                    "send more=true follows=false",
                    "send more=true follows=false",
                    "send more=true follows=false",
                    "send more=false follows=false",
                ],
                1
            )
        );
        assert_eq!(daemon.log.iter().filter(|l| *l == "connect").count(), 5);

        let (got, daemon) = four(Age::BeforeMore, None);
        assert_eq!(got, [Ok(1), Ok(2), Ok(3), Ok(4)]);
        let (sent, unread) = sends(&daemon);
        assert_eq!((sent[0], sent.len(), unread), ("send more=true follows=true", 5, 1));
        assert!(
            sent[1..].iter().all(|s| *s == "send more=false follows=false"),
            "{sent:?}"
        );
    }

    /// A refusal is the last answer delivered, and what was sent after it
    /// is not carried out; other refusals are not sent again.
    #[test]
    fn a_refusal_ends_the_asking() {
        let (got, daemon) = four(Age::Now, Some(3));
        assert_eq!(got, [Ok(1), Ok(2), Err("chunk 3 refused".into())]);
        assert_eq!(
            daemon.carried, 3,
            "the chunk sent after the refused one is not carried out"
        );
        assert!(
            daemon
                .log
                .contains(&"send more=false follows=false, not carried out".to_string()),
            "{:?}",
            daemon.log
        );
        let (got, daemon) = four(Age::Now, Some(1));
        assert_eq!(got, [Err("chunk 1 refused".into())]);
        assert_eq!((daemon.carried, sends(&daemon).1), (1, 1));
    }
}
