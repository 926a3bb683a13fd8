// The video view: upload a clip, start a track job (text, or a box drawn on the first frame),
// follow its progress (server-sent events), then scrub through frames with masks overlaid.
"use strict";
const video = { file: null, job: null, result: null, box: null, drag: null, size: null };

function videoStatus(text) { $("video-status").textContent = text; }

async function previewFirstFrame(file) {
  // the browser decodes the first frame itself when it can (box prompts are drawn on it)
  const element = document.createElement("video");
  element.muted = true; element.src = URL.createObjectURL(file);
  try {
    await new Promise((resolve, reject) => {
      element.onloadeddata = resolve; element.onerror = reject;
      setTimeout(reject, 5000);
    });
    const canvas = $("frame-canvas");
    canvas.width = element.videoWidth; canvas.height = element.videoHeight;
    canvas.getContext("2d").drawImage(element, 0, 0);
    video.size = [element.videoWidth, element.videoHeight];
    sizeOverlay(canvas.width, canvas.height);
  } catch (err) {
    videoStatus("this browser cannot preview the clip; track by text, or start and scrub the result");
  } finally { URL.revokeObjectURL(element.src); }
}

function sizeOverlay(width, height) {
  const overlay = $("frame-mask-canvas");
  overlay.width = width; overlay.height = height;
}

async function startVideoJob() {
  if (!video.file) return;
  showError("");
  const form = new FormData();
  form.append("file", video.file, video.file.name);
  const task = $("video-task").value;
  form.append("kind", task.startsWith("track") ? "track" : task);
  if (task === "track-box" || task === "describe") {
    if (!video.box) { showError("draw a box on the frame first"); return; }
    form.append("box", `${video.box.join(",")}@0`);
  } else if (task === "caption") {
    form.append("grounded", "true");
  } else {
    form.append("text", $("video-text").value);
  }
  try {
    const { body } = await api("/v1/jobs", { method: "POST", body: form });
    video.job = body; video.result = null;
    $("video-cancel").disabled = false; $("video-downloads").hidden = true;
    followJob(body);
  } catch (err) { showError(err.message); }
}

function followJob(job) {
  // EventSource cannot send an Authorization header: with an API key, poll instead
  if ($("api-key").value.trim()) { pollJob(job.id); return; }
  const source = new EventSource(`/v1/jobs/${job.id}/events`);
  source.addEventListener("progress", (event) => {
    const info = JSON.parse(event.data);
    showJobState(info);
    if (["done", "failed", "cancelled", "interrupted"].includes(info.state)) { source.close(); jobEnded(info); }
  });
  source.onerror = () => { source.close(); pollJob(job.id); };
}

async function pollJob(jobId) {
  for (;;) {
    let info;
    try { info = (await api(`/v1/jobs/${jobId}`)).body; } catch (err) { showError(err.message); return; }
    showJobState(info);
    if (["done", "failed", "cancelled", "interrupted"].includes(info.state)) { jobEnded(info); return; }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function showJobState(info) {
  $("video-progress").value = info.progress;
  videoStatus(`${info.state}: ${info.done} / ${info.total || "?"} frames`);
  document.body.dataset.jobState = info.state;
}

async function jobEnded(info) {
  $("video-cancel").disabled = true;
  if (info.state !== "done") {
    if (info.error) showError(`${info.error.message} (${info.error.code})`);
    return;
  }
  $("dl-json").href = info.downloads["result.json"];
  $("dl-zip").href = info.downloads["masks.zip"];
  $("dl-mp4").href = info.downloads["overlay.mp4"];
  $("video-downloads").hidden = false;
  try {
    video.result = (await api(info.downloads["result.json"])).body;
  } catch (err) { showError(err.message); return; }
  showVideoText(video.result, 0);
  const count = video.result.video.num_frames || info.total;
  $("scrubber").max = String(count - 1); $("scrubber").value = "0"; $("scrubber").disabled = false;
  await showFrame(0);
}

// The masks of every track on one frame, as a result-like object drawRegions understands.
function frameRegions(result, index, width, height) {
  const regions = [];
  for (const track of result.tracks) {
    const found = (track.frames || []).find((f) => f.frame === index);
    if (found && found.mask) regions.push({ phrase: track.phrase || `object ${track.id}`, mask: found.mask, score: found.score ?? 1 });
  }
  return { image: { width, height }, regions };
}

// The result's text (a caption) and the caption event covering this frame, if any.
function showVideoText(result, index) {
  const events = (result.events || []).filter((e) => e.start_frame <= index && index <= e.end_frame);
  const parts = [result.text, ...events.map((e) => `frames ${e.start_frame}-${e.end_frame}: ${e.text}`)];
  $("video-text-out").textContent = parts.filter(Boolean).join("\n");
}

async function showFrame(index) {
  $("frame-index").textContent = String(index);
  const response = await fetch(`/v1/jobs/${video.job.id}/frames/${index}`, { headers: headers() });
  if (!response.ok) { showError(`frame ${index}: ${response.status}`); return; }
  const bitmap = await createImageBitmap(await response.blob());
  const canvas = $("frame-canvas");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  drawRegions($("frame-mask-canvas"), frameRegions(video.result, index, bitmap.width, bitmap.height), null);
  showVideoText(video.result, index);
  document.body.dataset.frameShown = String(index);
}

function setupVideoView() {
  $("video-file").addEventListener("change", (e) => {
    video.file = e.target.files[0] || null; video.box = null;
    $("video-run").disabled = !video.file;
    if (video.file) previewFirstFrame(video.file);
  });
  $("video-run").addEventListener("click", startVideoJob);
  $("video-cancel").addEventListener("click", async () => {
    if (!video.job) return;
    try { await api(`/v1/jobs/${video.job.id}`, { method: "DELETE" }); } catch (err) { showError(err.message); }
  });
  $("scrubber").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  const overlay = $("frame-mask-canvas");
  overlay.addEventListener("mousedown", (e) => { video.drag = imagePoint(overlay, e); });
  overlay.addEventListener("mouseup", (e) => {
    if (!video.drag) return;
    const [x, y] = imagePoint(overlay, e), [x0, y0] = video.drag;
    video.drag = null;
    video.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)].map(Math.round);
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    ctx.strokeStyle = "#ff0"; ctx.lineWidth = 2;
    ctx.strokeRect(video.box[0], video.box[1], video.box[2] - video.box[0], video.box[3] - video.box[1]);
    if ($("video-task").value !== "describe") $("video-task").value = "track-box";
  });
}

setupVideoView();
