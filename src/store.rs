// SPDX-License-Identifier: MIT

//! The frame store: the frames of one pad, in arrival order, with their times.
//!
//! Upstream buffers often come from fixed pools (hardware decoders, capture sources) that starve
//! when a downstream element holds many of them. The store therefore keeps at most `max_refs`
//! upstream buffers by reference (the newest ones) and replaces older ones by deep copies into
//! memory it owns. Later work extends this behind the same interface (a memory budget and a
//! temp-file spill).

use std::fmt;

/// Times of one stored frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameTimes {
    /// Presentation timestamp as received.
    pub pts: Option<gst::ClockTime>,
    /// Duration as received.
    pub duration: Option<gst::ClockTime>,
    /// Running time of `pts` in the pad's segment.
    pub running_time: Option<gst::ClockTime>,
}

#[derive(Debug)]
struct Stored {
    buffer: gst::Buffer,
    times: FrameTimes,
}

#[derive(Debug)]
pub struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// The frames of one pad.
#[derive(Debug)]
pub struct PadStore {
    frames: Vec<Stored>,
    /// Index of the oldest frame still held by reference; all later ones are references too.
    first_ref: usize,
    max_refs: usize,
    owned_bytes: usize,
}

/// Upstream buffers held by reference per pad, at most.
pub const DEFAULT_MAX_REFS: usize = 2;

impl Default for PadStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REFS)
    }
}

impl PadStore {
    pub fn new(max_refs: usize) -> Self {
        PadStore {
            frames: Vec::new(),
            first_ref: 0,
            max_refs,
            owned_bytes: 0,
        }
    }

    /// Appends a frame. Older references beyond `max_refs` are copied into owned memory, so
    /// upstream gets its buffers back.
    pub fn push(&mut self, buffer: gst::Buffer, times: FrameTimes) -> Result<(), StoreError> {
        self.frames.push(Stored { buffer, times });
        while self.frames.len() - self.first_ref > self.max_refs {
            let f = &mut self.frames[self.first_ref];
            let copy = f
                .buffer
                .copy_deep()
                .map_err(|e| StoreError(format!("could not copy a frame: {e}")))?;
            self.owned_bytes += copy.size();
            f.buffer = copy;
            self.first_ref += 1;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The buffer of frame `i` (a cheap reference).
    pub fn buffer(&self, i: usize) -> Option<&gst::Buffer> {
        self.frames.get(i).map(|f| &f.buffer)
    }

    pub fn times(&self, i: usize) -> Option<FrameTimes> {
        self.frames.get(i).map(|f| f.times)
    }

    pub fn all_times(&self) -> impl Iterator<Item = FrameTimes> + '_ {
        self.frames.iter().map(|f| f.times)
    }

    /// How many frames are still upstream's buffers, held by reference.
    pub fn refs_held(&self) -> usize {
        self.frames.len() - self.first_ref
    }

    /// Bytes of frame memory the store owns.
    pub fn owned_bytes(&self) -> usize {
        self.owned_bytes
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.first_ref = 0;
        self.owned_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_a_few_upstream_buffers() {
        gst::init().unwrap();
        let mut s = PadStore::new(2);
        let mut upstream = Vec::new();
        for i in 0..5u8 {
            let b = gst::Buffer::from_mut_slice(vec![i; 16]);
            upstream.push(b.clone());
            s.push(b, FrameTimes::default()).unwrap();
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s.refs_held(), 2);
        assert_eq!(s.owned_bytes(), 3 * 16);
        // The first three upstream buffers are referenced only by the test now.
        for (i, b) in upstream.iter().enumerate() {
            let held = !b.is_writable();
            assert_eq!(held, i >= 3, "frame {i}");
            let m = s.buffer(i).unwrap().map_readable().unwrap();
            assert!(m.iter().all(|&v| v == i as u8));
        }
    }
}
