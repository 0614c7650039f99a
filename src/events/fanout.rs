//! The bounded fan-out from the engine to the subscribers of events.
//!
//! The engine's thread publishes; it must never wait for a subscriber, so
//! each one has a queue of its own of [`Hub::QUEUE`] events, filled with
//! `try_send`. A subscriber whose queue is full (it reads slower than bans
//! happen: a paused `nftban events | less`, a sink whose disk hangs) loses
//! the event, and the count of what it lost comes with the next event it
//! gets, or when it next finds its queue empty: it reads a `lost` event in
//! the place where events went missing. A subscriber that is gone is
//! dropped at the next publish. The engine asks [`Hub::listened`] first,
//! so that without subscribers no event is even built.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::Event;

/// An event on its way, with how many were lost just before it.
type Queued = (u64, Arc<Event>);

/// One subscriber, as the hub holds it.
struct Sub {
    tx: SyncSender<Queued>,
    /// Only this jail's events, if given.
    jail: Option<String>,
    /// Events lost since the last one delivered; shared with the reader,
    /// which takes it when it finds its queue empty.
    lost: Arc<Mutex<u64>>,
}

struct Inner {
    subs: Mutex<Vec<Sub>>,
    /// `subs.len()`, read without the lock.
    count: AtomicUsize,
    queue: usize,
    most: usize,
    /// [`Hub::close`] was called.
    closed: AtomicBool,
}

/// The engine's end: cheap to clone, every clone the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("busy: {0} subscribers of events already; try again")]
pub struct TooMany(pub usize);

impl Default for Hub {
    fn default() -> Hub {
        Hub::new(Hub::QUEUE, Hub::SUBSCRIBERS)
    }
}

impl Hub {
    /// Events queued for one subscriber at most: a burst of bans (a flood
    /// caught by the kernel meter, `nftban ban -` of many addresses) past
    /// it is lost to a subscriber that does not keep up, not held.
    pub const QUEUE: usize = 4096;
    /// Subscribers at once: each may hold [`Hub::QUEUE`] events.
    pub const SUBSCRIBERS: usize = 64;

    /// A hub with queues of `queue` events and at most `most` subscribers.
    pub fn new(queue: usize, most: usize) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                subs: Mutex::new(Vec::new()),
                count: AtomicUsize::new(0),
                queue: queue.max(1),
                most,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Whether anyone listens: if not, events need not be built.
    pub fn listened(&self) -> bool {
        self.inner.count.load(Ordering::Relaxed) > 0
    }

    /// A new subscriber to every event from now on, or only `jail`'s.
    pub fn subscribe(&self, jail: Option<String>) -> Result<Subscription, TooMany> {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|e| e.into_inner());
        if subs.len() >= self.inner.most {
            return Err(TooMany(self.inner.most));
        }
        let (tx, rx) = mpsc::sync_channel(self.inner.queue);
        let lost = Arc::new(Mutex::new(0));
        if self.inner.closed.load(Ordering::Relaxed) {
            // Its sender dropped here: it reads the end.
            return Ok(Subscription { rx, lost, held: None });
        }
        subs.push(Sub {
            tx,
            jail,
            lost: lost.clone(),
        });
        self.inner.count.store(subs.len(), Ordering::Relaxed);
        Ok(Subscription { rx, lost, held: None })
    }

    /// No more events: every subscriber reads what is queued for it, then
    /// the end ([`Next::Closed`]); later subscriptions get the end at once.
    /// The daemon closes its hub when it stops, so that the sinks write
    /// the last events before the process ends.
    pub fn close(&self) {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.clear();
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.count.store(0, Ordering::Relaxed);
    }

    /// Hand `event` to every subscriber that wants it, waiting for none.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        let mut subs = self.inner.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|sub| {
            if sub.jail.as_ref().is_some_and(|j| event.jail.as_ref() != Some(j)) {
                return true;
            }
            let mut lost = sub.lost.lock().unwrap_or_else(|e| e.into_inner());
            match sub.tx.try_send((*lost, event.clone())) {
                Ok(()) => {
                    *lost = 0;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    *lost += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        self.inner.count.store(subs.len(), Ordering::Relaxed);
    }
}

/// What a subscriber reads next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Event(Arc<Event>),
    /// Nothing within the wait.
    Idle,
    /// The hub is gone (the daemon stops).
    Closed,
}

/// A subscriber's end.
pub struct Subscription {
    rx: Receiver<Queued>,
    lost: Arc<Mutex<u64>>,
    /// An event that came after a loss, given once the `lost` event is.
    held: Option<Arc<Event>>,
}

impl Subscription {
    /// The next event, waiting at most `wait`. Events lost before it come
    /// first, as one `lost` event.
    pub fn next(&mut self, wait: Duration) -> Next {
        if let Some(event) = self.held.take() {
            return Next::Event(event);
        }
        match self.rx.recv_timeout(wait) {
            Ok((0, event)) => Next::Event(event),
            Ok((lost, event)) => {
                self.held = Some(event);
                Next::Event(Arc::new(Event::lost(lost, SystemTime::now())))
            }
            Err(RecvTimeoutError::Timeout) => {
                // Caught up: what was lost after the last event queued.
                let lost = std::mem::take(&mut *self.lost.lock().unwrap_or_else(|e| e.into_inner()));
                if lost > 0 {
                    Next::Event(Arc::new(Event::lost(lost, SystemTime::now())))
                } else {
                    Next::Idle
                }
            }
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// The next event if one waits, without waiting.
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        match self.next(Duration::ZERO) {
            Next::Event(e) => Some(e),
            Next::Idle | Next::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;

    fn ban(i: u32) -> Event {
        Event::new(Kind::Ban, "sshd", format!("192.0.2.{i}"), SystemTime::UNIX_EPOCH)
    }

    /// What a subscriber reads until its queue is empty: addresses, and
    /// `lost:N` in their place.
    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Next::Event(e) = sub.next(Duration::ZERO) {
            out.push(match e.event {
                Kind::Lost => format!("lost:{}", e.lost.unwrap()),
                _ => e.ip.clone().unwrap(),
            });
        }
        out
    }

    /// A subscriber that does not read never holds the publisher: past its
    /// queue it loses events, and reads how many where they went missing,
    /// then the events after them.
    #[test]
    fn a_slow_subscriber_loses_events_and_is_told_how_many() {
        let hub = Hub::new(2, 8);
        let mut slow = hub.subscribe(None).unwrap();
        let mut quick = hub.subscribe(None).unwrap();
        for i in 1..=5 {
            hub.publish(ban(i));
            if i <= 3 {
                assert_eq!(drain(&mut quick).len(), 1);
            }
        }
        // Queue of 2: 3, 4, 5 were lost to the slow one so far...
        assert_eq!(drain(&mut slow), ["192.0.2.1", "192.0.2.2", "lost:3"]);
        // ... and once it reads again, nothing more is.
        hub.publish(ban(6));
        hub.publish(ban(7));
        assert_eq!(drain(&mut slow), ["192.0.2.6", "192.0.2.7"]);
        // Each has its own queue: the other one, not read meanwhile, lost
        // those two.
        assert_eq!(drain(&mut quick), ["192.0.2.4", "192.0.2.5", "lost:2"]);
    }

    /// A loss followed by more events is told in its place: before the
    /// first event that came after it.
    #[test]
    fn the_lost_count_comes_before_the_next_event() {
        let hub = Hub::new(1, 8);
        let mut sub = hub.subscribe(None).unwrap();
        hub.publish(ban(1));
        hub.publish(ban(2));
        hub.publish(ban(3));
        assert_eq!(sub.next(Duration::ZERO), Next::Event(Arc::new(ban(1))));
        hub.publish(ban(4));
        assert_eq!(drain(&mut sub), ["lost:2", "192.0.2.4"]);
    }

    #[test]
    fn a_jail_subscriber_gets_only_its_jail() {
        let hub = Hub::default();
        let mut sshd = hub.subscribe(Some("sshd".into())).unwrap();
        let mut all = hub.subscribe(None).unwrap();
        hub.publish(Event::new(
            Kind::Ban,
            "asterisk",
            "192.0.2.1".into(),
            SystemTime::UNIX_EPOCH,
        ));
        hub.publish(ban(2));
        assert_eq!(drain(&mut sshd), ["192.0.2.2"]);
        assert_eq!(drain(&mut all), ["192.0.2.1", "192.0.2.2"]);
    }

    /// Subscribers that left are forgotten at the next publish; past the
    /// cap a new one is refused.
    #[test]
    fn gone_subscribers_leave_and_the_cap_holds() {
        let hub = Hub::new(4, 2);
        assert!(!hub.listened());
        let a = hub.subscribe(None).unwrap();
        let _b = hub.subscribe(None).unwrap();
        assert!(hub.listened());
        assert_eq!(hub.subscribe(None).err(), Some(TooMany(2)));
        drop(a);
        hub.publish(ban(1));
        assert!(hub.subscribe(None).is_ok());
    }

    /// Closed, the hub lets each subscriber read what was queued for it,
    /// then the end; a subscription after that reads the end at once.
    #[test]
    fn a_closed_hub_delivers_what_was_queued_then_the_end() {
        let hub = Hub::default();
        let mut sub = hub.subscribe(None).unwrap();
        hub.publish(ban(1));
        hub.publish(ban(2));
        hub.close();
        hub.publish(ban(3));
        assert!(!hub.listened());
        assert_eq!(drain(&mut sub), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(sub.next(Duration::from_secs(5)), Next::Closed);
        let mut late = hub.subscribe(None).unwrap();
        assert_eq!(late.next(Duration::from_secs(5)), Next::Closed);
    }

    /// The hub gone, a subscriber reads the end, not an endless wait.
    #[test]
    fn a_dropped_hub_closes_its_subscribers() {
        let hub = Hub::default();
        let mut sub = hub.subscribe(None).unwrap();
        hub.publish(ban(1));
        drop(hub);
        assert!(matches!(sub.next(Duration::ZERO), Next::Event(_)));
        assert_eq!(sub.next(Duration::from_secs(5)), Next::Closed);
    }
}
