// COCO RLE (compressed counts string, pycocotools' rleToString format) to a mask.
"use strict";
function rleCounts(counts) {
  const values = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = counts.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (values.length > 2) x += values[values.length - 2];
    values.push(x);
  }
  return values;
}

// {size: [H, W], counts} -> Uint8Array of H*W in row-major order (1 inside).
function rleDecode(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  const runs = rleCounts(rle.counts);
  let i = 0, v = 0;
  for (const run of runs) {
    if (v) {
      for (let j = i; j < i + run; j++) {
        const col = Math.floor(j / h), row = j - col * h;  // runs go down columns
        out[row * w + col] = 1;
      }
    }
    i += run; v = 1 - v;
  }
  return out;
}

const PALETTE = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190], [0, 128, 128],
  [170, 110, 40], [128, 0, 0], [170, 255, 195], [128, 128, 0], [0, 0, 128]];

// Draw the regions' masks on a canvas of the image's size; colour by phrase (or region).
function drawRegions(canvas, result, highlight) {
  const { width, height } = result.image;
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(width, height);
  const colours = regionColours(result);
  result.regions.forEach((region, index) => {
    if (!region.mask) return;
    const mask = rleDecode(region.mask);
    const [r, g, b] = colours[index];
    const alpha = highlight === null || highlight === undefined ? 130 : (highlight === index ? 200 : 40);
    for (let p = 0; p < mask.length; p++) {
      if (!mask[p]) continue;
      data.data[4 * p] = r; data.data[4 * p + 1] = g; data.data[4 * p + 2] = b; data.data[4 * p + 3] = alpha;
    }
  });
  ctx.putImageData(data, 0, 0);
  return colours;
}

// One colour per phrase (regions of the same phrase share it), else per region.
function regionColours(result) {
  const byKey = new Map();
  return result.regions.map((region, index) => {
    const key = region.phrase || region.label || `#${index}`;
    if (!byKey.has(key)) byKey.set(key, PALETTE[byKey.size % PALETTE.length]);
    return byKey.get(key);
  });
}
