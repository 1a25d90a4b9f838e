// SPDX-License-Identifier: MIT
//
// The spatial refinement's correlations (`align::ncc::WindowDots`): for each task (a band of
// rows of one job), the sum of products of a fixed-point template with the window of a
// fixed-point image at (u, v). Each row's sum in an i32 (it fits: the templates are scaled
// so), rows summed into 64 bits (two words, low first); the host adds a job's bands: the same
// integers as the CPU path, whatever the order. Bands keep an invocation's loop iterations
// under lavapipe's limit (it leaves a shader's loops after 65535 iterations in all).

struct Params {
    tasks: u32,
}

// A template or an image: where its values start (in values, two per word, low half first),
// its width and (templates) height.
struct Plane {
    start: u32,
    width: u32,
    height: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<u32>;
@group(0) @binding(2) var<storage, read> templates: array<Plane>;
@group(0) @binding(3) var<storage, read> images: array<Plane>;
// template, image, u, v.
@group(0) @binding(4) var<storage, read> jobs: array<vec4<u32>>;
// job, first row, end row.
@group(0) @binding(5) var<storage, read> tasks: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

fn value(i: u32) -> i32 {
    let w = values[i >> 1u];
    if ((i & 1u) == 0u) {
        return bitcast<i32>(w << 16u) >> 16u;
    }
    return bitcast<i32>(w) >> 16u;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x + id.y * 65535u * 64u;
    if (k >= p.tasks) {
        return;
    }
    let task = tasks[k];
    let job = jobs[task.x];
    let t = templates[job.x];
    let img = images[job.y];
    var lo = 0u;
    var hi = 0u;
    for (var y = task.y; y < task.z; y = y + 1u) {
        var s = 0i;
        let trow = t.start + y * t.width;
        let irow = img.start + (job.w + y) * img.width + job.z;
        for (var x = 0u; x < t.width; x = x + 1u) {
            s = s + value(trow + x) * value(irow + x);
        }
        // Add the row's sum, sign-extended, to the 64-bit total.
        let add = bitcast<u32>(s);
        let sum = lo + add;
        hi = hi + select(0u, 1u, sum < lo) + select(0u, 4294967295u, s < 0i);
        lo = sum;
    }
    out[2u * k] = lo;
    out[2u * k + 1u] = hi;
}
