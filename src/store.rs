// SPDX-License-Identifier: MIT

//! The frame store: the frames of one pad, in arrival order.
//!
//! Upstream buffers often come from fixed pools (hardware decoders, capture sources) that starve
//! when a downstream element holds many of them. The store therefore keeps at most `max_refs`
//! upstream buffers by reference (the newest ones) and replaces older ones by copies it owns:
//! in memory while the [`Budget`] shared by both pads allows, past it in a spill file in the
//! temp directory. The spill file has no name (or loses it as soon as it is created), so it disappears when
//! the store is dropped (state change to NULL, error, or a crash) and never outlives the process.

use crate::align::features::{HeldThumb, KeptThumb, Thumb, Thumbs};
#[cfg(test)]
use crate::align::temporal::FeatureRows;
use crate::align::temporal::{RowSpill, Spills};
use gst::prelude::*;
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
enum Slot {
    /// Upstream's buffer, or a copy in memory.
    Buffer(gst::Buffer),
    /// A copy in the spill file, in the default layout of the pad's video info.
    Spilled { offset: u64, len: usize },
}

#[derive(Debug)]
struct Stored {
    slot: Slot,
}

#[derive(Debug)]
pub struct StoreError {
    msg: String,
    /// The disk (or the file size limit) is full.
    pub full: bool,
}

impl StoreError {
    fn new(msg: String) -> Self {
        StoreError { msg, full: false }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for StoreError {}

/// Memory for frame copies, shared by the stores of both pads.
#[derive(Debug, Default)]
pub struct Budget {
    /// Bytes; 0 = unlimited.
    limit: u64,
    used: AtomicU64,
    /// The most `used` has been.
    peak: AtomicU64,
}

impl Budget {
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if self.limit > 0 && used.saturating_add(bytes) > self.limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(used + bytes, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    fn give(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes taken at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The limit (0 = unlimited).
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// How `max-memory` is shared out: frames (a windowed or live run's held frames, a store's
/// copies), thumbnails per pad and features per stream. Thumbnails and features get an eighth
/// of it each (at most [`THUMBS_IN_MEMORY`]), frames the rest: at least half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Bytes; 0 = unlimited.
    pub frames: u64,
    pub thumbs: usize,
    pub features: usize,
}

impl Shares {
    pub fn of(max_memory: u64) -> Shares {
        if max_memory == 0 {
            return Shares {
                frames: 0,
                thumbs: usize::MAX,
                features: usize::MAX,
            };
        }
        let each = usize::try_from(max_memory / 8)
            .unwrap_or(usize::MAX)
            .min(THUMBS_IN_MEMORY);
        Shares {
            frames: max_memory.saturating_sub(4 * each as u64).max(1),
            thumbs: each,
            features: each,
        }
    }

    /// The smallest `max-memory` whose frame share holds `frame_bytes` (a bg and a fg frame:
    /// what one output needs at once).
    pub fn min_memory(frame_bytes: u64) -> u64 {
        let rest = 4 * THUMBS_IN_MEMORY as u64;
        if frame_bytes <= rest {
            2 * frame_bytes
        } else {
            frame_bytes + rest
        }
    }
}

/// An unlinked temp file that bytes are appended to and read back from at their offsets.
#[derive(Debug)]
pub struct SpillFile {
    file: File,
    len: u64,
    dir: PathBuf,
}

impl SpillFile {
    /// Creates an anonymous file in `dir` (`O_TMPFILE` where the file system has it, else a
    /// random name unlinked at once): its space is freed when it is closed, whatever happens.
    pub fn create(dir: PathBuf) -> Result<SpillFile, StoreError> {
        let file = tempfile::tempfile_in(&dir).map_err(|e| {
            StoreError::new(format!(
                "cannot create a spill file in temp-dir {}: {e}",
                dir.display()
            ))
        })?;
        Ok(SpillFile { file, len: 0, dir })
    }

    /// Appends `bytes`; returns their offset.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, StoreError> {
        let offset = self.len;
        let mut w = &self.file;
        w.write_all_at(bytes, offset)
            .and_then(|_| w.flush())
            .map_err(|e| {
                let full = matches!(e.raw_os_error(), Some(27) | Some(28));
                StoreError {
                    msg: format!(
                        "cannot write {} bytes to the spill file in temp-dir {} ({} bytes \
                         spilled so far): {e}",
                        bytes.len(),
                        self.dir.display(),
                        self.len
                    ),
                    full,
                }
            })?;
        self.len += bytes.len() as u64;
        Ok(offset)
    }

    /// Writes `bytes` at `offset`, which must lie within the file or at its end (the file
    /// grows to hold them).
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), StoreError> {
        self.file.write_all_at(bytes, offset).map_err(|e| {
            let full = matches!(e.raw_os_error(), Some(27) | Some(28));
            StoreError {
                msg: format!(
                    "cannot write {} bytes to the spill file in temp-dir {}: {e}",
                    bytes.len(),
                    self.dir.display()
                ),
                full,
            }
        })
    }

    /// Reads `buf.len()` bytes at `offset` (any thread; the file has no shared cursor).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where the analysis keeps features past a byte limit per stream: unlinked spill files in the
/// temp directory (gone when the analysis drops them). Counts the bytes written, and records
/// the first failure to write one (those features stay in memory: a warning) and to read one
/// back (that frame was analysed as flat: an error).
#[derive(Debug, Clone)]
pub struct FeatureSpills {
    limit: usize,
    temp_dir: Option<PathBuf>,
    spilled: Arc<AtomicU64>,
    write_failure: Arc<std::sync::Mutex<Option<String>>>,
    read_failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl FeatureSpills {
    /// Features of more than `limit` bytes go to a file in `temp_dir` (the system's temp
    /// directory when `None`).
    pub fn new(limit: usize, temp_dir: Option<PathBuf>) -> Self {
        FeatureSpills {
            limit,
            temp_dir,
            spilled: Arc::new(AtomicU64::new(0)),
            write_failure: Default::default(),
            read_failure: Default::default(),
        }
    }

    /// Bytes of features written to spill files.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Why features past the limit stayed in memory, if they did.
    pub fn write_failure(&self) -> Option<String> {
        first(&self.write_failure)
    }

    /// The first failure to read features back, if any.
    pub fn read_failure(&self) -> Option<String> {
        first(&self.read_failure)
    }
}

impl Default for FeatureSpills {
    fn default() -> Self {
        Self::new(THUMBS_IN_MEMORY, None)
    }
}

fn first(slot: &std::sync::Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|f| f.clone())
}

fn record(slot: &std::sync::Mutex<Option<String>>, why: String) {
    if let Ok(mut f) = slot.lock() {
        f.get_or_insert(why);
    }
}

impl Spills for FeatureSpills {
    fn spill(&self, bytes: usize) -> Option<Box<dyn RowSpill>> {
        if bytes <= self.limit {
            return None;
        }
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        match SpillFile::create(dir) {
            Ok(file) => Some(Box::new(FeatureSpill {
                file,
                spills: self.clone(),
            })),
            Err(e) => {
                record(&self.write_failure, e.to_string());
                None
            }
        }
    }
}

/// One stream's spilled features.
#[derive(Debug)]
struct FeatureSpill {
    file: SpillFile,
    spills: FeatureSpills,
}

impl RowSpill for FeatureSpill {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.file.append(bytes) {
            Ok(_) => {
                self.spills
                    .spilled
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                record(&self.spills.write_failure, e.to_string());
                Err(std::io::Error::other(e.to_string()))
            }
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_at(buf, offset).inspect_err(|e| {
            record(
                &self.spills.read_failure,
                format!(
                    "cannot read {} bytes of features back from the spill file in {}: {e}",
                    buf.len(),
                    self.file.dir.display()
                ),
            )
        })
    }
}

/// The frames of one pad.
#[derive(Debug)]
pub struct PadStore {
    frames: Vec<Stored>,
    /// Index of the oldest frame still held by reference; all later ones are references too.
    first_ref: usize,
    max_refs: usize,
    owned_bytes: usize,
    budget: Arc<Budget>,
    temp_dir: Option<PathBuf>,
    spill: Option<SpillFile>,
    spilled_bytes: u64,
}

/// Upstream buffers held by reference per pad, at most.
pub const DEFAULT_MAX_REFS: usize = 2;

impl Default for PadStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_REFS, Budget::new(0), None)
    }
}

impl Drop for PadStore {
    fn drop(&mut self) {
        self.clear();
    }
}

impl PadStore {
    /// A store keeping `max_refs` upstream buffers, copies in memory under `budget`, the rest
    /// in a spill file in `temp_dir` (the system's temp directory when `None`).
    pub fn new(max_refs: usize, budget: Arc<Budget>, temp_dir: Option<PathBuf>) -> Self {
        PadStore {
            frames: Vec::new(),
            first_ref: 0,
            max_refs,
            owned_bytes: 0,
            budget,
            temp_dir,
            spill: None,
            spilled_bytes: 0,
        }
    }

    fn temp_dir(&self) -> PathBuf {
        self.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Appends a frame (of `info`). Older references beyond `max_refs` are copied, so
    /// upstream gets its buffers back.
    pub fn push(
        &mut self,
        buffer: gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<(), StoreError> {
        self.frames.push(Stored {
            slot: Slot::Buffer(buffer),
        });
        while self.frames.len() - self.first_ref > self.max_refs {
            let i = self.first_ref;
            let Slot::Buffer(buffer) = &self.frames[i].slot else {
                return Err(StoreError::new("a held frame was already copied".into()));
            };
            let size = buffer.size();
            let slot = if self.budget.take(size as u64) {
                let copy = buffer
                    .copy_deep()
                    .map_err(|e| StoreError::new(format!("could not copy a frame: {e}")))?;
                self.owned_bytes += size;
                Slot::Buffer(copy)
            } else {
                let buffer = buffer.clone();
                self.spill(&buffer, info)?
            };
            self.frames[i].slot = slot;
            self.first_ref += 1;
        }
        Ok(())
    }

    /// Appends a frame to the spill file, in the default layout of `info`.
    fn spill(
        &mut self,
        buffer: &gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<Slot, StoreError> {
        let flat = flat_copy(buffer, info)?;
        if self.spill.is_none() {
            self.spill = Some(SpillFile::create(self.temp_dir())?);
        }
        let Some(spill) = self.spill.as_mut() else {
            return Err(StoreError::new("no spill file".into()));
        };
        let map = flat
            .map_readable()
            .map_err(|_| StoreError::new("cannot map a frame".into()))?;
        let offset = spill.append(map.as_slice())?;
        self.spilled_bytes += map.size() as u64;
        Ok(Slot::Spilled {
            offset,
            len: map.size(),
        })
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The buffer of frame `i`: a cheap reference, or read back from the spill file.
    pub fn buffer(&self, i: usize) -> Result<gst::Buffer, StoreError> {
        let f = self
            .frames
            .get(i)
            .ok_or_else(|| StoreError::new(format!("frame {i} is not in the store")))?;
        match &f.slot {
            Slot::Buffer(b) => Ok(b.clone()),
            Slot::Spilled { offset, len } => {
                let spill = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| StoreError::new("no spill file".into()))?;
                read_back(spill, *offset, *len)
                    .map_err(|e| StoreError::new(format!("frame {i}: {e}")))
            }
        }
    }

    /// How many frames are still upstream's buffers, held by reference.
    pub fn refs_held(&self) -> usize {
        self.frames.len() - self.first_ref
    }

    /// Bytes of frame memory the store owns.
    pub fn owned_bytes(&self) -> usize {
        self.owned_bytes
    }

    /// Bytes written to the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.first_ref = 0;
        self.budget.give(self.owned_bytes as u64);
        self.owned_bytes = 0;
        self.spill = None;
        self.spilled_bytes = 0;
    }
}

/// A new buffer of the `len` bytes at `offset` of `spill`.
fn read_back(spill: &SpillFile, offset: u64, len: usize) -> Result<gst::Buffer, StoreError> {
    let mut b = gst::Buffer::with_size(len)
        .map_err(|e| StoreError::new(format!("cannot allocate a frame: {e}")))?;
    {
        let bm = b
            .get_mut()
            .ok_or_else(|| StoreError::new("a new buffer is not writable".into()))?;
        let mut m = bm
            .map_writable()
            .map_err(|_| StoreError::new("cannot map a frame".into()))?;
        spill.read_at(m.as_mut_slice(), offset).map_err(|e| {
            StoreError::new(format!("cannot read a frame back from the spill file: {e}"))
        })?;
    }
    Ok(b)
}

/// A spill file of frame-sized slots, each used again once the frame in it is let go: its size
/// follows the most frames spilled at once, not the input's length.
#[derive(Debug)]
struct SlotFile {
    file: SpillFile,
    slots: std::sync::Mutex<Slots>,
    /// Buffers frames are read back into, by size: their memory is used again once the
    /// output made on them is let go downstream (fresh memory costs page faults per frame).
    pools: std::sync::Mutex<Vec<(usize, gst::BufferPool)>>,
    /// The first failure to read a thumbnail back (it was analysed as flat).
    read_failure: std::sync::Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Slots {
    len: u64,
    /// Free slots: offset and length.
    free: Vec<(u64, usize)>,
}

impl Drop for SlotFile {
    fn drop(&mut self) {
        // Buffers still out (downstream) are freed when they come back.
        if let Ok(pools) = self.pools.lock() {
            for (_, p) in pools.iter() {
                let _ = p.set_active(false);
            }
        }
    }
}

impl SlotFile {
    /// A buffer of `len` bytes read back from `offset`, from a pool of that size.
    fn read_back(&self, offset: u64, len: usize) -> Result<gst::Buffer, StoreError> {
        let pooled = (|| {
            let mut pools = self.pools.lock().ok()?;
            let pool = match pools.iter().find(|(l, _)| *l == len) {
                Some((_, p)) => p.clone(),
                None => {
                    let pool = gst::BufferPool::new();
                    let mut config = pool.config();
                    config.set_params(None, u32::try_from(len).ok()?, 0, 0);
                    pool.set_config(config).ok()?;
                    pool.set_active(true).ok()?;
                    pools.push((len, pool.clone()));
                    pool
                }
            };
            drop(pools);
            pool.acquire_buffer(None).ok()
        })();
        let Some(mut b) = pooled else {
            return read_back(&self.file, offset, len);
        };
        {
            let bm = b
                .get_mut()
                .ok_or_else(|| StoreError::new("a pooled buffer is not writable".into()))?;
            let mut m = bm
                .map_writable()
                .map_err(|_| StoreError::new("cannot map a frame".into()))?;
            self.file.read_at(m.as_mut_slice(), offset).map_err(|e| {
                StoreError::new(format!("cannot read a frame back from the spill file: {e}"))
            })?;
        }
        Ok(b)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `bytes` into a free slot of their length, else at the end.
    fn put(self: &Arc<Self>, bytes: &[u8]) -> Result<SpilledFrame, StoreError> {
        let len = bytes.len();
        let offset = {
            let mut s = self.slots();
            match s.free.iter().position(|&(_, l)| l == len) {
                Some(i) => s.free.swap_remove(i).0,
                None => {
                    s.len += len as u64;
                    s.len - len as u64
                }
            }
        };
        // Taken first, so that a failed write gives the slot back.
        let frame = SpilledFrame {
            file: self.clone(),
            offset,
            len,
        };
        self.file.write_at(bytes, offset)?;
        Ok(frame)
    }
}

/// A thumbnail in memory, counted against its pad's thumbnail share while held.
#[derive(Debug)]
struct ChargedThumb {
    thumb: Thumb,
    _charge: Charge,
}

impl KeptThumb for ChargedThumb {
    fn thumb(&self) -> Cow<'_, Thumb> {
        Cow::Borrowed(&self.thumb)
    }
}

/// A thumbnail in a slot of the spill file, read back whenever it is asked for.
#[derive(Debug)]
struct SpilledThumb {
    slot: SpilledFrame,
    factor: usize,
    width: usize,
    height: usize,
}

impl KeptThumb for SpilledThumb {
    fn thumb(&self) -> Cow<'_, Thumb> {
        let f = &self.slot;
        let mut data = vec![0u8; f.len];
        if let Err(e) = f.file.file.read_at(&mut data, f.offset) {
            data.fill(0);
            if let Ok(mut failure) = f.file.read_failure.lock() {
                failure.get_or_insert_with(|| {
                    format!("cannot read a thumbnail back from the spill file: {e}")
                });
            }
        }
        Cow::Owned(Thumb {
            factor: self.factor,
            width: self.width,
            height: self.height,
            data: data.into(),
        })
    }
}

/// A frame in a [`SlotFile`]; its slot is free again once this is dropped.
#[derive(Debug)]
struct SpilledFrame {
    file: Arc<SlotFile>,
    offset: u64,
    len: usize,
}

impl Drop for SpilledFrame {
    fn drop(&mut self) {
        self.file.slots().free.push((self.offset, self.len));
    }
}

/// Bytes of a [`Budget`] taken while this lives.
#[derive(Debug)]
struct Charge {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

#[derive(Debug)]
enum Kept {
    /// Upstream's buffer (or a copy), counted against the budget while held.
    Memory {
        buffer: gst::Buffer,
        _charge: Charge,
    },
    /// Past the budget: in the spill file, in the default layout of its video info.
    Spilled(SpilledFrame),
}

/// A frame held by a windowed or live run: in memory while the budget allows, else in a spill
/// file. Clones share it (a search's thread may read it while the run holds it).
#[derive(Debug, Clone)]
pub struct HeldFrame(Arc<Kept>);

impl HeldFrame {
    /// The frame as a buffer: the one held, or read back from the spill file (with no
    /// timestamps or metas).
    pub fn buffer(&self) -> Result<gst::Buffer, StoreError> {
        match &*self.0 {
            Kept::Memory { buffer, .. } => Ok(buffer.clone()),
            Kept::Spilled(f) => f.file.read_back(f.offset, f.len),
        }
    }

    /// The frame as a buffer no one else holds where it can be (to write the output on):
    /// upstream's own when this was its last holder, a read-back copy when spilled.
    pub fn into_buffer(self) -> Result<gst::Buffer, StoreError> {
        match Arc::try_unwrap(self.0) {
            Ok(Kept::Memory { buffer, .. }) => Ok(buffer),
            Ok(kept) => HeldFrame(Arc::new(kept)).buffer(),
            Err(shared) => HeldFrame(shared).buffer(),
        }
    }

    /// `len` bytes at `offset` of a spilled frame (in the default layout of its video info);
    /// `None` for a frame in memory.
    pub fn read_spilled(&self, offset: usize, len: usize) -> Option<Result<Vec<u8>, StoreError>> {
        let Kept::Spilled(f) = &*self.0 else {
            return None;
        };
        if offset.checked_add(len).is_none_or(|end| end > f.len) {
            return Some(Err(StoreError::new(format!(
                "bytes {offset}..+{len} lie outside a spilled frame of {} bytes",
                f.len
            ))));
        }
        let mut bytes = vec![0u8; len];
        Some(
            f.file
                .file
                .read_at(&mut bytes, f.offset + offset as u64)
                .map(|_| bytes)
                .map_err(|e| {
                    StoreError::new(format!("cannot read a frame back from the spill file: {e}"))
                }),
        )
    }

    /// Whether the frame is in the spill file.
    pub fn is_spilled(&self) -> bool {
        matches!(&*self.0, Kept::Spilled(_))
    }
}

/// Holds a windowed or live run's frames: in memory under the frame share of the budget, past
/// it in a spill file of reused slots in `temp-dir`.
#[derive(Debug)]
pub struct FrameHolder {
    budget: Arc<Budget>,
    /// Per pad (bg, fg): the thumbnails' share of `max-memory`.
    thumbs: [Arc<Budget>; 2],
    temp_dir: Option<PathBuf>,
    spill: Option<Arc<SlotFile>>,
    spilled_bytes: u64,
    spilled_thumb_bytes: u64,
}

impl Default for FrameHolder {
    fn default() -> Self {
        Self::new(Budget::new(0), 0, None)
    }
}

impl FrameHolder {
    /// Frames under `budget`; each pad's thumbnails under `thumbs` bytes (0 = unlimited).
    pub fn new(budget: Arc<Budget>, thumbs: u64, temp_dir: Option<PathBuf>) -> Self {
        FrameHolder {
            budget,
            thumbs: [Budget::new(thumbs), Budget::new(thumbs)],
            temp_dir,
            spill: None,
            spilled_bytes: 0,
            spilled_thumb_bytes: 0,
        }
    }

    /// Holds `buffer` (a frame of `info`): in memory if its bytes fit the budget, else
    /// written to the spill file, and upstream's buffer let go.
    pub fn hold(
        &mut self,
        buffer: gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<HeldFrame, StoreError> {
        let bytes = buffer.size() as u64;
        if self.budget.take(bytes) {
            return Ok(HeldFrame(Arc::new(Kept::Memory {
                buffer,
                _charge: Charge {
                    budget: self.budget.clone(),
                    bytes,
                },
            })));
        }
        let spill = self.spill_file()?;
        let flat = buffer.meta::<gst_video::VideoMeta>().is_none() && buffer.size() == info.size();
        let frame = if flat {
            let map = buffer
                .map_readable()
                .map_err(|_| StoreError::new("cannot map a frame".into()))?;
            spill.put(map.as_slice())?
        } else {
            let copy = flat_copy(&buffer, info)?;
            let map = copy
                .map_readable()
                .map_err(|_| StoreError::new("cannot map a frame".into()))?;
            spill.put(map.as_slice())?
        };
        self.spilled_bytes += frame.len as u64;
        Ok(HeldFrame(Arc::new(Kept::Spilled(frame))))
    }

    /// The spill file, created when first asked for.
    fn spill_file(&mut self) -> Result<Arc<SlotFile>, StoreError> {
        if let Some(spill) = &self.spill {
            return Ok(spill.clone());
        }
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let spill = Arc::new(SlotFile {
            file: SpillFile::create(dir)?,
            slots: Default::default(),
            pools: Default::default(),
            read_failure: Default::default(),
        });
        self.spill = Some(spill.clone());
        Ok(spill)
    }

    /// Holds a thumbnail of pad `pad` (0: bg, 1: fg): in memory while the pad's thumbnail
    /// share allows, else in a slot of the spill file, read back whenever it is asked for.
    /// Where it cannot be written there, it is given back with the reason (it may still be
    /// kept in memory: analysis works, it only costs memory).
    pub fn hold_thumb(
        &mut self,
        pad: usize,
        thumb: Thumb,
    ) -> Result<HeldThumb, (Thumb, StoreError)> {
        let bytes = thumb.data.len() as u64;
        let budget = &self.thumbs[pad.min(1)];
        if budget.take(bytes) {
            return Ok(Arc::new(ChargedThumb {
                thumb,
                _charge: Charge {
                    budget: budget.clone(),
                    bytes,
                },
            }));
        }
        let spilled = match self.spill_file() {
            Ok(spill) => spill.put(&thumb.data),
            Err(e) => Err(e),
        };
        match spilled {
            Ok(slot) => {
                self.spilled_thumb_bytes += bytes;
                Ok(Arc::new(SpilledThumb {
                    slot,
                    factor: thumb.factor,
                    width: thumb.width,
                    height: thumb.height,
                }))
            }
            Err(e) => Err((thumb, e)),
        }
    }

    /// The first failure to read a frame or a thumbnail back from the spill file, if any
    /// (the thumbnail was analysed as flat).
    pub fn read_failure(&self) -> Option<String> {
        let spill = self.spill.as_ref()?;
        spill.read_failure.lock().ok().and_then(|f| f.clone())
    }

    /// Frame bytes written to the spill file so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Thumbnail bytes written to the spill file so far.
    pub fn spilled_thumbnail_bytes(&self) -> u64 {
        self.spilled_thumb_bytes
    }

    /// The most frame bytes held in memory at once (by this holder and the stores sharing its
    /// budget).
    pub fn peak_bytes(&self) -> u64 {
        self.budget.peak()
    }
}

/// A copy of `buffer` (a frame of `info`) in the default layout of `info`.
fn flat_copy(buffer: &gst::Buffer, info: &gst_video::VideoInfo) -> Result<gst::Buffer, StoreError> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
        .map_err(|_| StoreError::new("a frame does not match its caps".into()))?;
    let mut flat = gst::Buffer::with_size(info.size())
        .map_err(|e| StoreError::new(format!("cannot allocate a frame: {e}")))?;
    {
        let flat = flat
            .get_mut()
            .ok_or_else(|| StoreError::new("a new buffer is not writable".into()))?;
        let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(flat, info)
            .map_err(|_| StoreError::new("cannot map a frame".into()))?;
        frame
            .copy(&mut dst)
            .map_err(|e| StoreError::new(format!("cannot copy a frame: {e}")))?;
    }
    Ok(flat)
}

/// Thumbnail bytes a [`ThumbStore`] keeps in memory by default; later thumbnails go to its
/// spill file. 8 MiB is about 580 thumbnails of 160x90 (24 s of a 24 fps stream), so short
/// inputs never touch the disk, and a long one costs the same memory as a short one.
pub const THUMBS_IN_MEMORY: usize = 8 << 20;

/// Where one thumbnail is.
#[derive(Debug)]
enum ThumbSlot {
    Memory(Thumb),
    Spilled {
        offset: u64,
        factor: u16,
        width: u32,
        height: u32,
    },
}

/// The thumbnails of one pad: the first ones in memory (up to a byte limit), the rest in an
/// unlinked spill file in the temp directory. If the file cannot be created or written, the
/// rest stay in memory and [`ThumbStore::spill_failure`] says why (analysis still works; it
/// only costs memory).
#[derive(Debug)]
pub struct ThumbStore {
    thumbs: Vec<ThumbSlot>,
    memory_bytes: usize,
    limit: usize,
    temp_dir: Option<PathBuf>,
    spill: Option<SpillFile>,
    spill_failure: Option<String>,
    read_failure: std::sync::Mutex<Option<String>>,
}

impl Default for ThumbStore {
    fn default() -> Self {
        Self::new(THUMBS_IN_MEMORY, None)
    }
}

impl ThumbStore {
    /// A store keeping `limit` bytes of thumbnails in memory and the rest in a spill file in
    /// `temp_dir` (the system's temp directory when `None`).
    pub fn new(limit: usize, temp_dir: Option<PathBuf>) -> Self {
        ThumbStore {
            thumbs: Vec::new(),
            memory_bytes: 0,
            limit,
            temp_dir,
            spill: None,
            spill_failure: None,
            read_failure: std::sync::Mutex::new(None),
        }
    }

    pub fn push(&mut self, t: Thumb) {
        let bytes = t.data.len();
        if self.memory_bytes + bytes <= self.limit || self.spill_failure.is_some() {
            self.memory_bytes += bytes;
            self.thumbs.push(ThumbSlot::Memory(t));
            return;
        }
        let spilled = (|| {
            if self.spill.is_none() {
                let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
                self.spill = Some(SpillFile::create(dir)?);
            }
            let Some(spill) = self.spill.as_mut() else {
                return Err(StoreError::new("no spill file".into()));
            };
            spill.append(&t.data)
        })();
        match (
            spilled,
            u16::try_from(t.factor),
            u32::try_from(t.width),
            u32::try_from(t.height),
        ) {
            (Ok(offset), Ok(factor), Ok(width), Ok(height)) => {
                self.thumbs.push(ThumbSlot::Spilled {
                    offset,
                    factor,
                    width,
                    height,
                })
            }
            (res, ..) => {
                self.spill_failure = Some(match res {
                    Err(e) => e.to_string(),
                    Ok(_) => "a thumbnail too large to spill".into(),
                });
                self.memory_bytes += bytes;
                self.thumbs.push(ThumbSlot::Memory(t));
            }
        }
    }

    /// Why thumbnails past the memory limit stayed in memory, if they did.
    pub fn spill_failure(&self) -> Option<&str> {
        self.spill_failure.as_deref()
    }

    /// The first failure to read a thumbnail back (it was analysed as flat), if any.
    pub fn read_failure(&self) -> Option<String> {
        self.read_failure.lock().ok().and_then(|f| f.clone())
    }

    /// Bytes of thumbnails held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Bytes of thumbnails in the spill file.
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, SpillFile::len)
    }

    pub fn clear(&mut self) {
        *self = Self::new(self.limit, self.temp_dir.take());
    }
}

impl Thumbs for ThumbStore {
    fn len(&self) -> usize {
        self.thumbs.len()
    }

    fn get(&self, i: usize) -> Cow<'_, Thumb> {
        match &self.thumbs[i] {
            ThumbSlot::Memory(t) => Cow::Borrowed(t),
            &ThumbSlot::Spilled {
                offset,
                factor,
                width,
                height,
            } => {
                let (width, height) = (width as usize, height as usize);
                let mut data = vec![0u8; width * height];
                let read = self
                    .spill
                    .as_ref()
                    .ok_or_else(|| std::io::Error::other("no spill file"))
                    .and_then(|s| s.read_at(&mut data, offset));
                if let Err(e) = read {
                    data.fill(0);
                    if let Ok(mut f) = self.read_failure.lock() {
                        f.get_or_insert_with(|| {
                            format!("cannot read thumbnail {i} back from the spill file: {e}")
                        });
                    }
                }
                Cow::Owned(Thumb {
                    factor: factor as usize,
                    width,
                    height,
                    data: data.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_video::prelude::*;

    fn gray(w: u32, h: u32) -> gst_video::VideoInfo {
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, w, h)
            .build()
            .unwrap()
    }

    #[test]
    fn keeps_only_a_few_upstream_buffers() {
        gst::init().unwrap();
        let info = gray(4, 4);
        let mut s = PadStore::new(2, Budget::new(0), None);
        let mut upstream = Vec::new();
        for i in 0..5u8 {
            let b = gst::Buffer::from_mut_slice(vec![i; 16]);
            upstream.push(b.clone());
            s.push(b, &info).unwrap();
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s.refs_held(), 2);
        assert_eq!(s.owned_bytes(), 3 * 16);
        // The first three upstream buffers are referenced only by the test now.
        for (i, b) in upstream.iter().enumerate() {
            let held = !b.is_writable();
            assert_eq!(held, i >= 3, "frame {i}");
            let m = s.buffer(i).unwrap().into_mapped_buffer_readable().unwrap();
            assert!(m.iter().all(|&v| v == i as u8));
        }
    }

    #[test]
    fn past_the_budget_frames_spill_to_an_unlinked_file() {
        gst::init().unwrap();
        let info = gray(4, 4);
        let dir = std::env::temp_dir().join(format!("vidkompy-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Room for two copies, shared by two pads.
        let budget = Budget::new(40);
        let mut a = PadStore::new(1, budget.clone(), Some(dir.clone()));
        let mut b = PadStore::new(1, budget.clone(), Some(dir.clone()));
        for i in 0..4u8 {
            let buf = |v: u8| gst::Buffer::from_mut_slice(vec![v; 16]);
            a.push(buf(i), &info).unwrap();
            b.push(buf(100 + i), &info).unwrap();
        }
        // Copies alternate between the pads: frame 0 of each fits in memory, frames 1 and 2
        // spill, frame 3 is still held by reference.
        assert_eq!(budget.used(), 32);
        assert_eq!((a.owned_bytes(), a.spilled_bytes()), (16, 32));
        assert_eq!((b.owned_bytes(), b.spilled_bytes()), (16, 32));
        for i in 0..4u8 {
            let m = a
                .buffer(i as usize)
                .unwrap()
                .into_mapped_buffer_readable()
                .unwrap();
            assert!(m.iter().all(|&v| v == i), "a {i}");
            let m = b
                .buffer(i as usize)
                .unwrap()
                .into_mapped_buffer_readable()
                .unwrap();
            assert!(m.iter().all(|&v| v == 100 + i), "b {i}");
        }
        // Nothing is left in the directory, even while the store lives.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(a);
        assert_eq!(budget.used(), 16);
        drop(b);
        assert_eq!(budget.used(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Thumbnails past a pad's share go to slots of the spill file, read back as they were;
    /// a slot and a charge are given back when their thumbnail is dropped.
    #[test]
    fn held_thumbnails_past_their_share_go_to_the_spill_file() {
        gst::init().unwrap();
        let dir = std::env::temp_dir().join(format!("vidkompy-thumbs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Room for two 4x3 thumbnails per pad.
        let mut h = FrameHolder::new(Budget::new(0), 24, Some(dir.clone()));
        let thumb = |v: u8| Thumb {
            factor: 2,
            width: 4,
            height: 3,
            data: vec![v; 12].into(),
        };
        let bg: Vec<HeldThumb> = (0..4u8)
            .map(|i| h.hold_thumb(0, thumb(i)).unwrap())
            .collect();
        // The fg has a share of its own.
        let fg = h.hold_thumb(1, thumb(9)).unwrap();
        assert!(matches!(fg.thumb(), Cow::Borrowed(_)));
        assert_eq!(h.spilled_thumbnail_bytes(), 2 * 12);
        assert_eq!(h.spilled_bytes(), 0);
        for (i, t) in bg.iter().enumerate() {
            assert_eq!(*t.thumb(), thumb(i as u8), "thumbnail {i}");
            assert_eq!(matches!(t.thumb(), Cow::Owned(_)), i >= 2, "thumbnail {i}");
        }
        // Dropped: a memory thumbnail's room and a spilled one's slot are used again.
        let len = |h: &FrameHolder| h.spill.as_ref().map_or(0, |f| f.slots().len);
        assert_eq!(len(&h), 24);
        let mut bg = bg;
        bg.drain(1..3);
        let more: Vec<HeldThumb> = (4..6u8)
            .map(|i| h.hold_thumb(0, thumb(i)).unwrap())
            .collect();
        assert!(matches!(more[0].thumb(), Cow::Borrowed(_)));
        assert_eq!(*more[1].thumb(), thumb(5));
        assert_eq!(len(&h), 24);
        assert_eq!(h.read_failure(), None);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop((bg, more, fg, h));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn held_frames_past_the_budget_go_to_slots_used_again() {
        gst::init().unwrap();
        let info = gray(4, 4);
        let dir = std::env::temp_dir().join(format!("vidkompy-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Room for two frames.
        let budget = Budget::new(32);
        let mut h = FrameHolder::new(budget.clone(), 0, Some(dir.clone()));
        let buf = |v: u8| gst::Buffer::from_mut_slice(vec![v; 16]);
        let mut held: Vec<HeldFrame> = (0..5u8).map(|i| h.hold(buf(i), &info).unwrap()).collect();
        assert_eq!(budget.used(), 32);
        assert_eq!(h.spilled_bytes(), 3 * 16);
        let spilled: Vec<bool> = held.iter().map(HeldFrame::is_spilled).collect();
        assert_eq!(spilled, [false, false, true, true, true]);
        for (i, f) in held.iter().enumerate() {
            let m = f.buffer().unwrap().into_mapped_buffer_readable().unwrap();
            assert!(m.iter().all(|&v| v == i as u8), "frame {i}");
        }
        // A part of a spilled frame; none of one in memory.
        assert_eq!(held[3].read_spilled(4, 8).unwrap().unwrap(), vec![3u8; 8]);
        assert!(held[3].read_spilled(12, 8).unwrap().is_err());
        assert!(held[0].read_spilled(0, 16).is_none());
        // A clone keeps the frame (and its charge) until both are dropped.
        let shared = held[0].clone();
        held.remove(0);
        assert_eq!(budget.used(), 32);
        // The last holder gets upstream's buffer itself, and the charge is given back.
        let own = shared.into_buffer().unwrap();
        assert_eq!(budget.used(), 16);
        assert!(own.is_writable());
        // Dropping spilled frames frees their slots: the next ones go there, and the file
        // does not grow (frames 2 and 3 gone; 5 fits in memory, 6 and 7 take their slots).
        let len = |h: &FrameHolder| h.spill.as_ref().map_or(0, |f| f.slots().len);
        assert_eq!(len(&h), 48);
        held.drain(1..3);
        let more: Vec<HeldFrame> = (5..8u8).map(|i| h.hold(buf(i), &info).unwrap()).collect();
        assert_eq!(len(&h), 48);
        assert_eq!(more.iter().filter(|f| f.is_spilled()).count(), 2);
        for (i, f) in more.iter().enumerate() {
            let m = f.buffer().unwrap().into_mapped_buffer_readable().unwrap();
            assert!(m.iter().all(|&v| v == 5 + i as u8), "frame {}", 5 + i);
        }
        assert_eq!(budget.peak(), 32);
        // Nothing is left in the directory, even while frames are spilled.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop((held, more, h));
        assert_eq!(budget.used(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn max_memory_is_shared_out_and_its_least_holds_one_output_s_frames() {
        let s = Shares::of(0);
        assert_eq!((s.frames, s.thumbs), (0, usize::MAX));
        let s = Shares::of(64 << 20);
        assert_eq!(
            (s.frames, s.thumbs, s.features),
            (32 << 20, 8 << 20, 8 << 20)
        );
        let s = Shares::of(2 << 30);
        assert_eq!(s.frames, (2 << 30) - (32 << 20));
        assert_eq!(Shares::of(1).frames, 1);
        // The least max-memory for each size of a bg and a fg frame holds them in its share.
        for bytes in [
            1u64,
            345_600,
            4_147_200,
            9_000_000,
            16 << 20,
            40 << 20,
            200 << 20,
        ] {
            let least = Shares::min_memory(bytes);
            assert!(Shares::of(least).frames >= bytes, "{bytes}");
        }
    }

    #[test]
    fn spilled_frames_come_back_in_the_default_layout() {
        gst::init().unwrap();
        let info = gray(3, 2);
        // Rows padded to 8 bytes, described by a video meta.
        let mut buf =
            gst::Buffer::from_mut_slice(vec![1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
        gst_video::VideoMeta::add_full(
            buf.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Gray8,
            3,
            2,
            &[0],
            &[8],
        )
        .unwrap();
        let mut s = PadStore::new(0, Budget::new(1), None);
        s.push(buf, &info).unwrap();
        assert_eq!(s.spilled_bytes(), info.size() as u64);
        let back = s.buffer(0).unwrap();
        let f = gst_video::VideoFrame::from_buffer_readable(back, &info).unwrap();
        let stride = f.plane_stride()[0] as usize;
        let d = f.plane_data(0).unwrap();
        assert_eq!(&d[..3], &[1, 2, 3]);
        assert_eq!(&d[stride..stride + 3], &[4, 5, 6]);
    }

    #[test]
    fn an_unusable_temp_dir_is_an_error_that_names_it() {
        gst::init().unwrap();
        let info = gray(4, 4);
        let file = std::env::temp_dir().join(format!("vidkompy-notadir-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("sub");
        let mut s = PadStore::new(0, Budget::new(1), Some(dir.clone()));
        let e = s
            .push(gst::Buffer::from_mut_slice(vec![0; 16]), &info)
            .unwrap_err();
        let _ = std::fs::remove_file(&file);
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        assert!(e.to_string().contains("cannot create a spill file"), "{e}");
    }

    fn thumb(v: u8) -> Thumb {
        Thumb {
            factor: 12,
            width: 16,
            height: 9,
            data: (0..144).map(|i| v.wrapping_add(i as u8)).collect(),
        }
    }

    #[test]
    fn thumbnails_past_the_limit_go_to_the_spill_file_and_come_back() {
        let mut s = ThumbStore::new(144 * 3, None);
        for v in 0..10u8 {
            s.push(thumb(v * 20));
        }
        assert_eq!(s.memory_bytes(), 144 * 3);
        assert_eq!(s.spilled_bytes(), 144 * 7);
        assert!(s.spill_failure().is_none());
        for v in 0..10u8 {
            let t = s.get(v as usize);
            assert_eq!(*t, thumb(v * 20), "thumbnail {v}");
            assert_eq!(matches!(t, Cow::Borrowed(_)), v < 3);
        }
        assert!(s.read_failure().is_none());
    }

    #[test]
    fn thumbnails_stay_in_memory_when_the_spill_file_cannot_be_made() {
        let file = std::env::temp_dir().join(format!("vidkompy-thumbs-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").unwrap();
        let mut s = ThumbStore::new(144, Some(file.join("sub")));
        for v in 0..4u8 {
            s.push(thumb(v));
        }
        let _ = std::fs::remove_file(&file);
        let why = s.spill_failure().unwrap_or_default().to_string();
        assert!(why.contains("cannot create a spill file"), "{why}");
        assert_eq!(s.memory_bytes(), 144 * 4);
        assert_eq!(*s.get(3), thumb(3));
    }

    /// Features of `n` frames, row `i` of `d` values all `i`-ish.
    fn features(n: usize, d: usize, spills: &FeatureSpills) -> std::sync::Arc<dyn FeatureRows> {
        crate::align::temporal::build_features(n, d, spills, |i, out| {
            for (k, o) in out.iter_mut().enumerate() {
                *o = ((i * 7 + k) % 13) as f32 / 16.0 - 0.4;
            }
            (i as f32, 10.0)
        })
    }

    #[test]
    fn features_past_the_limit_go_to_a_spill_file_and_come_back() {
        let kept = features(50, 24, &FeatureSpills::new(usize::MAX, None));
        let spills = FeatureSpills::new(50 * 24 * 2 - 1, None);
        let spilled = features(50, 24, &spills);
        assert_eq!(spills.spilled_bytes(), 50 * 24 * 2);
        assert!(kept.in_memory().is_some() && spilled.in_memory().is_none());
        let idx = [0, 1, 2, 30, 49, 5];
        assert_eq!(spilled.select(&idx).q, kept.select(&idx).q);
        assert_eq!(spilled.meta().mean, kept.meta().mean);
        assert!(spills.read_failure().is_none() && spills.write_failure().is_none());
        // Under the limit: in memory.
        let small = FeatureSpills::new(50 * 24 * 2, None);
        assert!(features(50, 24, &small).in_memory().is_some());
        assert_eq!(small.spilled_bytes(), 0);
    }

    #[test]
    fn features_stay_in_memory_when_the_spill_file_cannot_be_made() {
        let file = std::env::temp_dir().join(format!("vidkompy-feats-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").unwrap();
        let spills = FeatureSpills::new(1, Some(file.join("sub")));
        let f = features(20, 8, &spills);
        let _ = std::fs::remove_file(&file);
        assert!(f.in_memory().is_some());
        let why = spills.write_failure().unwrap_or_default();
        assert!(why.contains("cannot create a spill file"), "{why}");
        assert_eq!(
            f.select(&[19]).q,
            features(20, 8, &FeatureSpills::new(usize::MAX, None))
                .select(&[19])
                .q
        );
    }
}
