// The dataset browser: result JSON/JSONL files and images opened locally, paged through.
// Records are pixelground JSON v1 results, bare or wrapped as {"id", "result"} (eval's
// predictions.jsonl), or data-engine records (a dataset's shards/*.jsonl); each is matched
// to an image file by its image path's file name.
"use strict";
const browse = { records: [], images: new Map(), index: 0 };

function baseName(path) { return (path || "").split(/[\\/]/).pop(); }

// A data-engine record (shards/*.jsonl: image, width, height, objects, caption) as a result.
function engineRecord(record) {
  const caption = record.caption || "";
  const text = typeof caption === "string" ? caption : caption.text || "";
  const spans = new Map();
  for (const phrase of (typeof caption === "object" && caption.phrases) || []) {
    if (phrase.object !== null && phrase.object !== undefined && !spans.has(phrase.object)) spans.set(phrase.object, phrase.span);
  }
  const regions = record.objects.map((o) => ({
    id: o.id, mask: o.mask, box: o.box, score: o.score ?? 1,
    phrase: o.label || (o.labels || [])[0] || o.attribute || `object ${o.id}`,
    span: spans.has(o.id) && spans.get(o.id).length === 2 ? spans.get(o.id) : null,
  }));
  return { id: record.id, task: "engine", image: { path: record.image, width: record.width, height: record.height }, text, regions };
}

function recordsOf(text) {
  const out = [];
  const add = (value) => {
    if (Array.isArray(value)) { value.forEach(add); return; }
    if (value && value.result && value.result.regions) out.push({ id: value.id, ...value.result });
    else if (value && value.regions && value.image) out.push(value);
    else if (value && Array.isArray(value.objects) && value.width && value.status !== "failed") {
      out.push(engineRecord(value));
    }
  };
  try { add(JSON.parse(text)); } catch (err) {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try { add(JSON.parse(line)); } catch (lineErr) { /* a torn line is skipped */ }
    }
  }
  return out;
}

async function openBrowse(files) {
  showError("");
  browse.records = []; browse.images = new Map(); browse.index = 0;
  for (const file of files) {
    if (/\.(jsonl?|JSONL?)$/.test(file.name)) browse.records.push(...recordsOf(await file.text()));
    else if (file.type.startsWith("image/")) browse.images.set(file.name, file);
  }
  if (!browse.records.length) { showError("no pixelground results (JSON v1 / JSONL) among the files opened"); }
  showBrowse();
}

async function showBrowse() {
  const total = browse.records.length;
  $("browse-pos").textContent = `${total ? browse.index + 1 : 0} / ${total}`;
  if (!total) return;
  const result = browse.records[browse.index];
  const image = browse.images.get(baseName(result.image.path));
  const canvas = $("browse-canvas");
  canvas.width = result.image.width; canvas.height = result.image.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ccc"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (image) {
    const bitmap = await createImageBitmap(image).catch(() => null);
    if (bitmap) ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  }
  const colours = drawRegions($("browse-mask-canvas"), result, null);
  renderText($("browse-text"), result, colours, $("browse-legend"), $("browse-mask-canvas"));
  const label = document.createElement("p");
  label.textContent = `${result.id || baseName(result.image.path) || ""} — ${result.task}` + (image ? "" : " (image not opened)");
  $("browse-text").prepend(label);
  document.body.dataset.browseShown = String(browse.index);
}

function stepBrowse(delta) {
  if (!browse.records.length) return;
  browse.index = (browse.index + delta + browse.records.length) % browse.records.length;
  showBrowse();
}

$("browse-folder").addEventListener("change", (e) => openBrowse([...e.target.files]));
$("browse-files").addEventListener("change", (e) => openBrowse([...e.target.files]));
$("browse-prev").addEventListener("click", () => stepBrowse(-1));
$("browse-next").addEventListener("click", () => stepBrowse(1));
document.addEventListener("keydown", (e) => {
  if ($("browse-view").hidden || e.target.tagName === "INPUT") return;
  if (e.key === "ArrowLeft") stepBrowse(-1);
  if (e.key === "ArrowRight") stepBrowse(1);
});
