// SPDX-License-Identifier: MIT

//! The GPU implementation of [`Compute`]: WGSL compute shaders through wgpu on a Vulkan adapter
//! (a hardware GPU, or Mesa's lavapipe on the CPU when asked for explicitly).
//!
//! One device per process, created on first use and shared by every element instance. Every
//! kernel is bit-exact with the CPU path: integer arithmetic only, so the two never disagree.

use super::Compute;
use crate::align::kernels::Kernels;
use crate::align::ncc::WindowDots;
use crate::align::temporal::{Accumulated, Accumulation, Features};
use crate::align::{Cancel, Cancelled};
use crate::composite::{self, CompositeError, Overlay, PlaneLayout, PlaneMut, PlaneRef};
use std::sync::{Arc, Mutex, OnceLock};

/// The adapter the process's device runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name as the driver reports it (e.g. "NVIDIA H100", "llvmpipe (LLVM 15.0.6,
    /// 256 bits)").
    pub name: String,
    /// "discrete", "integrated", "virtual", "cpu" or "other".
    pub kind: &'static str,
    /// A real GPU (discrete, integrated or virtual), not a software rasteriser.
    pub hardware: bool,
    pub driver: String,
}

/// A compiled kernel: its pipeline and the layout of its bindings.
#[derive(Debug)]
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The process's GPU device and its kernels.
#[derive(Debug)]
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: AdapterInfo,
    composite: Kernel,
    dots: Kernel,
    dtw: Kernel,
    window_dots: Kernel,
    /// The first uncaptured error the device reported (they are otherwise panics in wgpu).
    uncaptured: Arc<Mutex<Option<String>>>,
}

static ADAPTER: OnceLock<Result<(wgpu::Adapter, AdapterInfo), String>> = OnceLock::new();
static CONTEXT: OnceLock<Result<Arc<Context>, String>> = OnceLock::new();

/// The best Vulkan adapter of this machine (discrete, then integrated, virtual, software),
/// looked up once; no device is opened. An error says why there is none.
pub fn adapter() -> Result<AdapterInfo, String> {
    find_adapter().map(|(_, info)| info.clone())
}

fn find_adapter() -> Result<&'static (wgpu::Adapter, AdapterInfo), String> {
    ADAPTER
        .get_or_init(|| {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends: wgpu::Backends::VULKAN,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
            let adapter = adapters
                .into_iter()
                .min_by_key(|a| kind_of(a.get_info().device_type).1)
                .ok_or_else(|| {
                    "no Vulkan adapter found (a GPU driver, or mesa-vulkan-drivers for the \
                     software one)"
                        .to_string()
                })?;
            let raw = adapter.get_info();
            let (kind, rank) = kind_of(raw.device_type);
            let info = AdapterInfo {
                name: raw.name.clone(),
                kind,
                hardware: rank <= 2,
                driver: format!("{} {}", raw.driver, raw.driver_info)
                    .trim()
                    .to_string(),
            };
            Ok((adapter, info))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The process's GPU device on [`adapter`], opened on the first call and shared.
pub fn context() -> Result<Arc<Context>, String> {
    CONTEXT.get_or_init(|| init().map(Arc::new)).clone()
}

fn kind_of(t: wgpu::DeviceType) -> (&'static str, u8) {
    match t {
        wgpu::DeviceType::DiscreteGpu => ("discrete", 0),
        wgpu::DeviceType::IntegratedGpu => ("integrated", 1),
        wgpu::DeviceType::VirtualGpu => ("virtual", 2),
        wgpu::DeviceType::Cpu => ("cpu", 3),
        wgpu::DeviceType::Other => ("other", 4),
    }
}

/// Bytes a single binding may span at most, requested explicitly (the adapter's limit when
/// lower): long sequences are processed in bands that stay below it.
pub const MAX_BINDING: u64 = 1 << 30;

fn init() -> Result<Context, String> {
    let (adapter, info) = find_adapter()?;
    let info = info.clone();
    let have = adapter.limits();
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: have.max_storage_buffer_binding_size.min(MAX_BINDING),
        max_buffer_size: have.max_buffer_size.min(MAX_BINDING),
        max_storage_buffers_per_shader_stage: 8,
        ..wgpu::Limits::downlevel_defaults()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("vidkompy"),
        required_features: wgpu::Features::empty(),
        required_limits: limits,
        ..Default::default()
    }))
    .map_err(|e| format!("cannot open {}: {e}", info.name))?;
    let uncaptured = Arc::new(Mutex::new(None));
    let seen = uncaptured.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        if let Ok(mut s) = seen.lock() {
            s.get_or_insert_with(|| e.to_string());
        }
    }));
    let composite = kernel(&device, "composite", include_str!("shaders/composite.wgsl"))?;
    let dots = kernel(&device, "dots", include_str!("shaders/dots.wgsl"))?;
    let dtw = kernel(&device, "dtw", include_str!("shaders/dtw.wgsl"))?;
    let window_dots = kernel(
        &device,
        "window_dots",
        include_str!("shaders/window_dots.wgsl"),
    )?;
    Ok(Context {
        device,
        queue,
        info,
        composite,
        dots,
        dtw,
        window_dots,
        uncaptured,
    })
}

/// Compiles one WGSL kernel (entry point `main`), catching validation errors.
fn kernel(device: &wgpu::Device, label: &str, source: &str) -> Result<Kernel, String> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(format!("kernel {label}: {e}"));
    }
    let layout = pipeline.get_bind_group_layout(0);
    Ok(Kernel { pipeline, layout })
}

impl Context {
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    fn storage(&self, label: &str, bytes: &[u8], writable: bool) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        let mut usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        if writable {
            usage |= wgpu::BufferUsages::COPY_SRC;
        }
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage,
            })
    }

    fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Runs `kernel` over `groups` workgroups with `buffers` bound in order (binding 0, 1, …),
    /// then reads back `out` (a STORAGE | COPY_SRC buffer). Errors name what failed.
    fn run(
        &self,
        kernel: &Kernel,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
        out: &wgpu::Buffer,
    ) -> Result<Vec<u8>, String> {
        let mut all = self.run_all(kernel, buffers, groups, &[(out, 0..out.size())])?;
        all.pop().ok_or_else(|| "GPU readback missing".to_string())
    }

    /// [`Context::run`], reading back a byte range of each of `outs`.
    fn run_all(
        &self,
        kernel: &Kernel,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
        outs: &[(&wgpu::Buffer, std::ops::Range<u64>)],
    ) -> Result<Vec<Vec<u8>>, String> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        });
        let readbacks: Vec<wgpu::Buffer> = outs
            .iter()
            .map(|(_, range)| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: range.end - range.start,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        for ((out, range), readback) in outs.iter().zip(&readbacks) {
            enc.copy_buffer_to_buffer(out, range.start, readback, 0, range.end - range.start);
        }
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        for readback in &readbacks {
            let tx = tx.clone();
            readback.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        }
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| format!("GPU wait failed: {e}"))?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("GPU validation: {e}"));
        }
        if let Some(e) = self.uncaptured.lock().ok().and_then(|e| e.clone()) {
            return Err(format!("GPU error: {e}"));
        }
        for _ in &readbacks {
            rx.recv()
                .map_err(|_| "GPU readback was dropped".to_string())?
                .map_err(|e| format!("GPU readback failed: {e}"))?;
        }
        readbacks
            .iter()
            .map(|readback| {
                let data = readback
                    .get_mapped_range(..)
                    .map_err(|e| format!("GPU readback failed: {e}"))?
                    .to_vec();
                readback.unmap();
                Ok(data)
            })
            .collect()
    }
}

/// The GPU backend.
#[derive(Debug, Clone)]
pub struct Gpu {
    ctx: Arc<Context>,
    name: String,
    /// The first failure since it was last taken (the work then ran on the CPU).
    failure: Arc<Mutex<Option<String>>>,
    /// Composites on the device (else on the CPU: the analysis kernels alone run here).
    composites: bool,
    /// Planes composited on the device so far.
    device_planes: Arc<std::sync::atomic::AtomicU64>,
}

impl Gpu {
    /// The process's GPU, if there is one: the analysis kernels and compositing on it.
    pub fn new() -> Result<Gpu, String> {
        let ctx = context()?;
        let name = format!("gpu: {}", ctx.info.name);
        Ok(Gpu {
            ctx,
            name,
            failure: Arc::new(Mutex::new(None)),
            composites: true,
            device_planes: Default::default(),
        })
    }

    /// The analysis kernels on the GPU, compositing on the CPU. Compositing a frame on the
    /// device takes a blocking round trip per plane (upload, dispatch, read back), which on a
    /// discrete GPU likely costs more than the CPU's paste of the footprint: until that is
    /// measured on hardware, `device=auto` keeps per-frame work on the CPU.
    pub fn analysis_only(self) -> Gpu {
        Gpu {
            name: format!("{} (analysis; compositing on cpu)", self.name),
            composites: false,
            ..self
        }
    }

    /// Planes composited on the device so far.
    pub fn device_planes(&self) -> u64 {
        self.device_planes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn info(&self) -> &AdapterInfo {
        &self.ctx.info
    }
}

/// Rows of features packed two values per word, low half first, as `dots.wgsl` reads them.
fn pack(f: &Features, rows: std::ops::Range<usize>) -> Vec<u32> {
    let words = f.d.div_ceil(2);
    let mut out = Vec::with_capacity(rows.len() * words);
    for i in rows {
        let row = f.row(i);
        out.extend((0..words).map(|w| {
            let lo = row[2 * w] as u16 as u32;
            let hi = row.get(2 * w + 1).map_or(0, |&v| v as u16 as u32);
            lo | (hi << 16)
        }));
    }
    out
}

/// Bytes of dot products one dispatch writes, at most (well below any binding limit).
const DOTS_PER_DISPATCH_BYTES: usize = 64 << 20;

impl Gpu {
    /// As [`crate::align::temporal::band_dots`]: the dot products of fg row `i` with bg rows
    /// `lo[i] .. lo[i] + width` (0 past the last bg row), row-major; bit-exact with the CPU.
    /// Long inputs go in bands of rows, each dispatch within the device's limits.
    pub fn band_dots(
        &self,
        fg: &Features,
        bg: &Features,
        lo: &[usize],
        width: usize,
    ) -> Result<Vec<i32>, String> {
        let (n, m) = (fg.len(), bg.len());
        if fg.d != bg.d {
            return Err(format!("feature lengths differ: {} and {}", fg.d, bg.d));
        }
        if lo.len() != n {
            return Err(format!("{} band starts for {n} rows", lo.len()));
        }
        if n == 0 || width == 0 || m == 0 || fg.d == 0 {
            return Ok(vec![0; n * width]);
        }
        let as_u32 = |v: usize| u32::try_from(v).map_err(|_| format!("{v} too large"));
        let ctx = &self.ctx;
        let words = fg.d.div_ceil(2);
        let b_bg = ctx.storage("bg features", bytemuck::cast_slice(&pack(bg, 0..m)), false);
        let max_rows = (DOTS_PER_DISPATCH_BYTES / (width * 4)).clamp(1, 65535);
        let mut out = Vec::with_capacity(n * width);
        let mut start = 0;
        while start < n {
            let rows = start..(start + max_rows).min(n);
            let lo_u32 = lo[rows.clone()]
                .iter()
                .map(|&l| as_u32(l))
                .collect::<Result<Vec<u32>, String>>()?;
            let params = [
                as_u32(words)?,
                as_u32(rows.len())?,
                as_u32(width)?,
                as_u32(m)?,
            ];
            let b_params = ctx.uniform(&params);
            let b_fg = ctx.storage(
                "fg features",
                bytemuck::cast_slice(&pack(fg, rows.clone())),
                false,
            );
            let b_lo = ctx.storage("band starts", bytemuck::cast_slice(&lo_u32), false);
            let b_out = ctx.storage("dots", &vec![0u8; rows.len() * width * 4], true);
            let bytes = ctx.run(
                &ctx.dots,
                &[&b_params, &b_fg, &b_bg, &b_lo, &b_out],
                (as_u32(width.div_ceil(64))?, as_u32(rows.len())?, 1),
                &b_out,
            )?;
            out.extend(read_back::<i32>(&bytes));
            start = rows.end;
        }
        Ok(out)
    }
}

/// Cells one DTW dispatch takes at most (their costs and back-pointers well below any binding
/// limit).
const DTW_CELLS_PER_DISPATCH: usize = 8 << 20;

/// Loop iterations an invocation of one DTW dispatch runs at most (a row costs each
/// invocation up to `1 + ceil(width / 256) · (max_step + 11)`): short dispatches, cancellable
/// between them, and within lavapipe's limit: Mesa 22.3's llvmpipe leaves a shader's loops
/// after 65535 iterations in all (measured: back-pointers of the rows after about 2100 of 2600
/// in one dispatch came back 0).
const DTW_ITERATIONS_PER_DISPATCH: usize = 1 << 15;

impl Gpu {
    /// As [`crate::align::temporal::accumulate`], bit-exact with it: rows in chunks, one
    /// workgroup each, the last row kept on the GPU between them; back-pointers come back.
    pub fn accumulate(&self, a: &Accumulation, cancel: &Cancel) -> Result<Accumulated, String> {
        let n = a.rows();
        if a.start.len() != n + 1 || a.start.last().map_or(0, |&s| s as usize) != a.cells.len() {
            return Err("DTW band does not match its cells".into());
        }
        if n == 0 {
            return Ok(Accumulated {
                back: Vec::new(),
                last: Vec::new(),
            });
        }
        let as_u32 = |v: usize| u32::try_from(v).map_err(|_| format!("{v} too large"));
        let ctx = &self.ctx;
        let half = a.width().max(1);
        // At least steps 0 and 1: the CPU path takes a missing penalty as 0.
        let mut pen = a.pen.clone();
        pen.resize(pen.len().max(2), 0);
        let k = as_u32(pen.len() - 1)?;
        let per_row = 1 + half.div_ceil(256) * (pen.len() + 10);
        let b_line = ctx.storage("dtw line", &vec![0u8; 7 * half * 4], true);
        let b_pen = ctx.storage("dtw penalties", bytemuck::cast_slice(&pen), false);
        let mut back = Vec::with_capacity(a.cells.len());
        let mut last = Vec::new();
        let (mut prev_lo, mut prev_len, mut flip) = (0u32, 0u32, 0u32);
        let mut r0 = 0;
        while r0 < n {
            if cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            // At least one row; more while within both limits.
            let base = a.start[r0] as usize;
            let mut r1 = r0 + 1;
            while r1 < n
                && (r1 - r0 + 1) * per_row <= DTW_ITERATIONS_PER_DISPATCH
                && (a.start[r1 + 1] as usize - base) <= DTW_CELLS_PER_DISPATCH
            {
                r1 += 1;
            }
            let rows = r1 - r0;
            let mut meta: Vec<u32> = a.lo[r0..r1].to_vec();
            meta.extend(a.start[r0..=r1].iter().map(|&s| s - a.start[r0]));
            let cells = &a.cells[base..a.start[r1] as usize];
            let params = [
                as_u32(rows)?,
                k,
                u32::from(a.jump.is_some()),
                a.jump.unwrap_or(0) as u32,
                (a.jump.unwrap_or(0) >> 32) as u32,
                prev_lo,
                prev_len,
                flip,
                u32::from(r0 == 0),
                as_u32(half)?,
                0,
                0,
            ];
            let b_params = ctx.uniform(&params);
            let b_meta = ctx.storage("dtw rows", bytemuck::cast_slice(&meta), false);
            // A binding is never empty.
            let padded;
            let cells_bytes: &[u8] = if cells.is_empty() {
                padded = [0u64];
                bytemuck::cast_slice(&padded)
            } else {
                bytemuck::cast_slice(cells)
            };
            let b_cells = ctx.storage("dtw cells", cells_bytes, false);
            let b_back = ctx.storage("dtw back", &vec![0u8; cells_bytes.len() / 2], true);
            // The row after this chunk's last is in the other half.
            flip ^= (rows % 2) as u32;
            let last_row = a.row(r1 - 1).len() as u64 * 8;
            let mut outs = vec![(&b_back, 0..cells.len() as u64 * 4)];
            if r1 == n && last_row > 0 {
                let at = u64::from(flip) * half as u64 * 8;
                outs.push((&b_line, at..at + last_row));
            }
            let outs: Vec<_> = outs.into_iter().filter(|(_, r)| !r.is_empty()).collect();
            let bytes = ctx.run_all(
                &ctx.dtw,
                &[&b_params, &b_meta, &b_cells, &b_pen, &b_line, &b_back],
                (1, 1, 1),
                &outs,
            )?;
            let mut bytes = bytes.into_iter();
            if !cells.is_empty() {
                back.extend(read_back::<u32>(&bytes.next().unwrap_or_default()));
            }
            if r1 == n && last_row > 0 {
                last = read_back::<u64>(&bytes.next().unwrap_or_default());
            }
            prev_lo = a.lo[r1 - 1];
            prev_len = as_u32(a.row(r1 - 1).len())?;
            r0 = r1;
        }
        if back.len() != a.cells.len() {
            return Err("GPU DTW returned too few back-pointers".into());
        }
        Ok(Accumulated { back, last })
    }
}

/// Loop iterations one invocation of the correlation kernel runs at most (lavapipe, Mesa
/// 22.3, leaves a shader's loops after 65535 iterations in all: measured, a 800 x 150
/// template's sum came back short).
const WINDOW_TASK_ITERATIONS: usize = 1 << 15;

impl Gpu {
    /// As [`crate::align::ncc::window_dots`], bit-exact with it: one invocation per band of
    /// rows of a job, over all templates and images uploaded once.
    pub fn window_dots(&self, w: &WindowDots<'_>) -> Result<Vec<i64>, String> {
        if !w.is_valid() {
            return Err("a correlation window lies outside its image".into());
        }
        let n = w.jobs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let as_u32 = |v: usize| u32::try_from(v).map_err(|_| format!("{v} too large"));
        let ctx = &self.ctx;
        // Templates, then images, each starting at an even value.
        let mut values: Vec<i16> = Vec::new();
        let mut planes = |list: Vec<(&[i16], usize, usize)>| -> Result<Vec<u32>, String> {
            let mut out = Vec::with_capacity(list.len() * 4);
            for (q, width, height) in list {
                out.extend([as_u32(values.len())?, as_u32(width)?, as_u32(height)?, 0]);
                values.extend_from_slice(q);
                if values.len() % 2 == 1 {
                    values.push(0);
                }
            }
            Ok(out)
        };
        let templates = planes(w.templates.iter().map(|t| (&t.q[..], t.w, t.h)).collect())?;
        let images = planes(
            w.images
                .iter()
                .map(|&(q, width)| (q, width, q.len() / width.max(1)))
                .collect(),
        )?;
        let words: Vec<u32> = values
            .chunks_exact(2)
            .map(|c| (c[0] as u16 as u32) | ((c[1] as u16 as u32) << 16))
            .collect();
        let jobs: Vec<u32> = w.jobs.iter().flatten().copied().collect();
        // Bands of rows of at most WINDOW_TASK_ITERATIONS loop iterations.
        let mut tasks: Vec<u32> = Vec::new();
        for (j, &[t, ..]) in w.jobs.iter().enumerate() {
            let t = w.templates[t as usize];
            let rows = (WINDOW_TASK_ITERATIONS / (t.w + 1)).max(1);
            for y0 in (0..t.h).step_by(rows) {
                tasks.extend([as_u32(j)?, as_u32(y0)?, as_u32((y0 + rows).min(t.h))?, 0]);
            }
        }
        let n_tasks = tasks.len() / 4;
        if n_tasks == 0 {
            return Ok(vec![0; n]);
        }
        let groups = as_u32(n_tasks.div_ceil(64))?;
        let b_params = ctx.uniform(&[as_u32(n_tasks)?, 0, 0, 0]);
        let b_tasks = ctx.storage("window tasks", bytemuck::cast_slice(&tasks), false);
        let b_values = ctx.storage("window values", bytemuck::cast_slice(&words), false);
        let b_templates = ctx.storage("templates", bytemuck::cast_slice(&templates), false);
        let b_images = ctx.storage("images", bytemuck::cast_slice(&images), false);
        let b_jobs = ctx.storage("window jobs", bytemuck::cast_slice(&jobs), false);
        let b_out = ctx.storage("window dots", &vec![0u8; n_tasks * 8], true);
        let bytes = ctx.run(
            &ctx.window_dots,
            &[
                &b_params,
                &b_values,
                &b_templates,
                &b_images,
                &b_jobs,
                &b_tasks,
                &b_out,
            ],
            (groups.min(65535), groups.div_ceil(65535), 1),
            &b_out,
        )?;
        let mut out = vec![0i64; n];
        for (task, part) in tasks.chunks_exact(4).zip(read_back::<i64>(&bytes)) {
            out[task[0] as usize] += part;
        }
        Ok(out)
    }
}

/// The values of a read-back buffer (little-endian, as the GPU and this CPU store them).
fn read_back<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

/// Words of 4 bytes covering `bytes` bytes.
fn words(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// The analysis's dot products on the GPU; if the device fails, on the CPU (the same numbers),
/// with the failure kept for [`Compute::take_failure`].
impl Kernels for Gpu {
    fn band_dots(&self, fg: &Features, bg: &Features, lo: &[usize], width: usize) -> Vec<i32> {
        match Gpu::band_dots(self, fg, bg, lo, width) {
            Ok(d) => d,
            Err(e) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert(e);
                }
                crate::align::temporal::band_dots(fg, bg, lo, width)
            }
        }
    }

    fn window_dots(&self, w: &WindowDots<'_>) -> Vec<i64> {
        match Gpu::window_dots(self, w) {
            Ok(d) => d,
            Err(e) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert(e);
                }
                crate::align::ncc::window_dots(w)
            }
        }
    }

    fn accumulate(&self, a: &Accumulation, cancel: &Cancel) -> Result<Accumulated, Cancelled> {
        match Gpu::accumulate(self, a, cancel) {
            Ok(d) => Ok(d),
            Err(_) if cancel.is_cancelled() => Err(Cancelled),
            Err(e) => {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert(e);
                }
                crate::align::temporal::accumulate(a, cancel)
            }
        }
    }
}

impl Compute for Gpu {
    fn name(&self) -> &str {
        &self.name
    }

    fn kernels(&self) -> &dyn Kernels {
        self
    }

    fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    fn composite(
        &self,
        layouts: &[PlaneLayout],
        bg_size: (u32, u32),
        dst: &mut [PlaneMut<'_>],
        src: &[PlaneRef<'_>],
        overlay: &Overlay,
    ) -> Result<(), CompositeError> {
        if !self.composites {
            return super::Cpu.composite(layouts, bg_size, dst, src, overlay);
        }
        let jobs = composite::plan(layouts, bg_size, dst, src, overlay)?;
        for ((job, d), s) in jobs.iter().zip(dst.iter_mut()).zip(src) {
            if job.rows == 0 || job.cols == 0 {
                continue;
            }
            self.device_planes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // A plane the device fails on is composited on the CPU (the same bytes).
            if let Err(e) = self.composite_plane(job, d, s) {
                if let Ok(mut f) = self.failure.lock() {
                    f.get_or_insert(e.to_string());
                }
                super::cpu::plane(job, d, s);
            }
        }
        Ok(())
    }
}

impl Gpu {
    /// Composites one planned plane on the device; `d` is untouched on error.
    fn composite_plane(
        &self,
        job: &composite::PlaneJob,
        d: &mut PlaneMut<'_>,
        s: &PlaneRef<'_>,
    ) -> Result<(), CompositeError> {
        let ctx = &self.ctx;
        let bpp = job.bytes_per_pixel;
        let col0_bytes = job.col0 * bpp;
        let width_bytes = job.cols * bpp;
        let first_word = col0_bytes / 4;
        let n_words = words(col0_bytes + width_bytes) - first_word;
        let src_words = words(width_bytes);
        // The bg's footprint rows, from `first_word` on, packed; the fg's rows packed.
        let mut packed = vec![0u8; job.rows * n_words * 4];
        for (r, out) in packed.chunks_exact_mut(n_words * 4).enumerate() {
            let row = &d.data[(job.row0 + r) * d.stride..];
            let row = &row[first_word * 4..row.len().min((first_word + n_words) * 4)];
            out[..row.len()].copy_from_slice(row);
        }
        let mut fg = vec![0u8; job.rows * src_words * 4];
        for (r, out) in fg.chunks_exact_mut(src_words * 4).enumerate() {
            out[..width_bytes].copy_from_slice(&s.data[r * s.stride..][..width_bytes]);
        }
        let col_alpha: Vec<u32> = job.col_alpha.iter().map(|&a| u32::from(a)).collect();
        let row_alpha: Vec<u32> = job.row_alpha.iter().map(|&a| u32::from(a)).collect();
        let as_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| CompositeError::Device(format!("{v} too large")))
        };
        let params = [
            as_u32(col0_bytes)?,
            as_u32(width_bytes)?,
            as_u32(job.rows)?,
            as_u32(bpp)?,
            as_u32(n_words)?,
            as_u32(src_words)?,
            as_u32(first_word)?,
            0,
        ];
        let b_params = ctx.uniform(&params);
        let b_dst = ctx.storage("bg rows", &packed, true);
        let b_src = ctx.storage("fg rows", &fg, false);
        let b_col = ctx.storage("column weights", bytemuck::cast_slice(&col_alpha), false);
        let b_row = ctx.storage("row weights", bytemuck::cast_slice(&row_alpha), false);
        let out = ctx
            .run(
                &ctx.composite,
                &[&b_params, &b_dst, &b_src, &b_col, &b_row],
                (as_u32(n_words.div_ceil(64))?, as_u32(job.rows)?, 1),
                &b_dst,
            )
            .map_err(CompositeError::Device)?;
        for (r, row) in out.chunks_exact(n_words * 4).enumerate() {
            let drow = &mut d.data[(job.row0 + r) * d.stride..][col0_bytes..][..width_bytes];
            let from = col0_bytes - first_word * 4;
            drow.copy_from_slice(&row[from..from + width_bytes]);
        }
        Ok(())
    }
}
